package chunkscope

import (
	"context"
	"errors"
	"io"
	"iter"
	"sync"

	pb "github.com/chunkscope/chunkscope/clients/go/chunkscopev1"
)

// Detect finds the chunks active per token in a batch of inputs.
func (c *Client) Detect(ctx context.Context, req *pb.DetectRequest) (*pb.DetectResponse, error) {
	return c.DetectionService.Detect(ctx, req)
}

// DetectTexts is Detect on texts: one result per text, in order.
func (c *Client) DetectTexts(ctx context.Context, config *pb.DetectionConfig, texts ...string) ([]*pb.DetectResult, error) {
	inputs := make([]*pb.DetectInput, len(texts))
	for i, text := range texts {
		inputs[i] = TextInput(text)
	}
	reply, err := c.Detect(ctx, &pb.DetectRequest{Config: config, Inputs: inputs})
	return reply.GetResults(), err
}

// StreamDetect is a monitoring stream: it sends requests (StreamConfig first, then inputs such
// as StreamText) while yielding one reply per input, in order. The default deadline is
// DefaultLongTimeout. Breaking out of the loop cancels the call; requests is then no longer
// read once it yields its next message (or ends).
func (c *Client) StreamDetect(ctx context.Context, requests iter.Seq[*pb.StreamDetectRequest]) iter.Seq2[*pb.StreamDetectResponse, error] {
	return func(yield func(*pb.StreamDetectResponse, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.DetectionService.StreamDetect(ctx)
		if err != nil {
			yield(nil, err)
			return
		}
		var (
			mu      sync.Mutex
			sendErr error
		)
		go func() {
			for req := range requests {
				if err := stream.Send(req); err != nil {
					if !errors.Is(err, io.EOF) { // io.EOF: the server ended the call; Recv says why
						mu.Lock()
						sendErr = err
						mu.Unlock()
						cancel()
					}
					return
				}
			}
			_ = stream.CloseSend()
		}()
		for {
			reply, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				mu.Lock()
				if sendErr != nil {
					err = sendErr
				}
				mu.Unlock()
				yield(nil, err)
				return
			}
			if !yield(reply, nil) {
				return
			}
		}
	}
}

// TextInput is a text to detect on (language models).
func TextInput(text string) *pb.DetectInput {
	return &pb.DetectInput{Content: &pb.DetectInput_Text{Text: text}}
}

// StreamConfig is the first message of a StreamDetect call.
func StreamConfig(config *pb.DetectionConfig) *pb.StreamDetectRequest {
	return &pb.StreamDetectRequest{Message: &pb.StreamDetectRequest_Config{Config: config}}
}

// StreamText is an input message of a StreamDetect call; continues marks a segment that
// continues the previous input.
func StreamText(text string, continues bool) *pb.StreamDetectRequest {
	return &pb.StreamDetectRequest{
		Message: &pb.StreamDetectRequest_Input{Input: TextInput(text)}, Continues: continues}
}
