package chunkscope

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	pb "github.com/chunkscope/chunkscope/clients/go/chunkscopev1"
)

// importChunkBytes is the size of the pieces ImportDictionary sends.
const importChunkBytes = 1 << 20

// ExtractDictionaryStream runs an extraction and yields its messages: progress updates, then the
// result. The default deadline is DefaultLongTimeout; breaking out of the loop cancels the job.
func (c *Client) ExtractDictionaryStream(ctx context.Context, req *pb.ExtractDictionaryRequest) iter.Seq2[*pb.ExtractDictionaryResponse, error] {
	return serverStream(ctx, func(ctx context.Context) (grpc.ServerStreamingClient[pb.ExtractDictionaryResponse], error) {
		return c.DictionaryService.ExtractDictionary(ctx, req)
	})
}

// ExtractDictionary runs an extraction to the end and returns the stored dictionaries, one per
// hook point. onProgress, when not nil, sees every progress update.
func (c *Client) ExtractDictionary(ctx context.Context, req *pb.ExtractDictionaryRequest,
	onProgress func(*pb.ExtractionProgress)) ([]*pb.Dictionary, error) {
	result, err := resultOf(c.ExtractDictionaryStream(ctx, req), onProgress, "extraction")
	return result.GetDictionaries(), err
}

// GetDictionary returns a stored dictionary with its entries (without their prototype tensors).
func (c *Client) GetDictionary(ctx context.Context, id string) (*pb.Dictionary, error) {
	reply, err := c.DictionaryService.GetDictionary(ctx, &pb.GetDictionaryRequest{Id: id})
	return reply.GetDictionary(), err
}

// GetDictionaryWithPrototypes returns a stored dictionary with its entries' prototype and neuron
// tensors.
func (c *Client) GetDictionaryWithPrototypes(ctx context.Context, id string) (*pb.Dictionary, error) {
	reply, err := c.DictionaryService.GetDictionary(ctx,
		&pb.GetDictionaryRequest{Id: id, IncludePrototypes: true})
	return reply.GetDictionary(), err
}

// ListDictionaries yields the stored dictionaries, newest first, of one model (all models when
// model is empty), fetching pages as needed.
func (c *Client) ListDictionaries(ctx context.Context, model string) iter.Seq2[*pb.Dictionary, error] {
	return paged(ctx, 0, func(ctx context.Context, size int32, token string) ([]*pb.Dictionary, string, error) {
		reply, err := c.DictionaryService.ListDictionaries(ctx, &pb.ListDictionariesRequest{
			Model: model, Page: &pb.PageRequest{PageSize: size, PageToken: token}})
		return reply.GetDictionaries(), reply.GetPage().GetNextPageToken(), err
	})
}

// DeleteDictionary deletes a stored dictionary and returns it as it was.
func (c *Client) DeleteDictionary(ctx context.Context, id string) (*pb.Dictionary, error) {
	reply, err := c.DictionaryService.DeleteDictionary(ctx, &pb.DeleteDictionaryRequest{Id: id})
	return reply.GetDictionary(), err
}

// ExportDictionary writes a dictionary's portable archive to w as it arrives and returns its
// size. The archive is checked against the size and sha256 the server announces; a mismatch is
// an *Error with code DataLoss (w has then received bad data).
func (c *Client) ExportDictionary(ctx context.Context, id string, w io.Writer) (int64, error) {
	digest := sha256.New()
	var written, total int64
	expected := ""
	pieces := serverStream(ctx, func(ctx context.Context) (grpc.ServerStreamingClient[pb.ExportDictionaryResponse], error) {
		return c.DictionaryService.ExportDictionary(ctx, &pb.ExportDictionaryRequest{Id: id})
	})
	for piece, err := range pieces {
		if err != nil {
			return written, err
		}
		if expected == "" {
			expected, total = piece.GetSha256(), piece.GetTotalBytes()
		}
		n, err := w.Write(piece.GetData())
		written += int64(n)
		if err != nil {
			return written, fmt.Errorf("chunkscope: writing the archive of %s: %w", id, err)
		}
		digest.Write(piece.GetData())
	}
	got := "sha256:" + hex.EncodeToString(digest.Sum(nil))
	if got != expected || (total != 0 && total != written) {
		return written, &Error{Code: codes.DataLoss, Message: fmt.Sprintf(
			"exported archive of %s failed its check: %d bytes with %s, server announced %d bytes with %s",
			id, written, got, total, expected)}
	}
	return written, nil
}

// ExportDictionaryBytes returns a dictionary's portable archive (checked like ExportDictionary).
func (c *Client) ExportDictionaryBytes(ctx context.Context, id string) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := c.ExportDictionary(ctx, id, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ImportDictionary stores an archive made by ExportDictionary, read from r and streamed to the
// server in pieces; the server validates it. The dictionary keeps its id.
func (c *Client) ImportDictionary(ctx context.Context, r io.Reader) (*pb.Dictionary, error) {
	return c.importDictionary(ctx, r, "")
}

// ImportDictionaryBytes stores an archive held in memory, sending its sha256 so the server checks
// it arrived intact.
func (c *Client) ImportDictionaryBytes(ctx context.Context, archive []byte) (*pb.Dictionary, error) {
	sum := sha256.Sum256(archive)
	return c.importDictionary(ctx, bytes.NewReader(archive), "sha256:"+hex.EncodeToString(sum[:]))
}

func (c *Client) importDictionary(ctx context.Context, r io.Reader, digest string) (*pb.Dictionary, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.DictionaryService.ImportDictionary(ctx)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, importChunkBytes)
	for first := true; ; first = false {
		n, readErr := io.ReadFull(r, buf)
		if readErr != nil && !errors.Is(readErr, io.EOF) && !errors.Is(readErr, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("chunkscope: reading the archive: %w", readErr)
		}
		if n > 0 || first {
			req := &pb.ImportDictionaryRequest{Data: buf[:n]}
			if first {
				req.Sha256 = digest
			}
			if err := stream.Send(req); err != nil {
				if errors.Is(err, io.EOF) {
					break // the server ended the call: CloseAndRecv has its status
				}
				return nil, err
			}
		}
		if readErr != nil {
			break
		}
	}
	reply, err := stream.CloseAndRecv()
	return reply.GetDictionary(), err
}
