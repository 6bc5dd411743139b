package chunkscope_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"

	chunkscope "github.com/chunkscope/chunkscope/clients/go"
	pb "github.com/chunkscope/chunkscope/clients/go/chunkscopev1"
)

// streamEnds records, per method, the error that ended a stream's reads (io.EOF: the call ended
// with OK); a stream the caller abandoned has no entry.
type streamEnds struct {
	mu   sync.Mutex
	ends map[string]error
}

func (r *streamEnds) intercept(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn,
	method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &recordedStream{ClientStream: s, method: method, ends: r}, nil
}

func (r *streamEnds) end(method string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ends[method]
}

type recordedStream struct {
	grpc.ClientStream
	method string
	ends   *streamEnds
}

func (s *recordedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		s.ends.mu.Lock()
		s.ends.ends[s.method] = err
		s.ends.mu.Unlock()
	}
	return err
}

var handledLine = regexp.MustCompile(`^grpc_server_handled_total\{([^}]*)\} (\S+)$`)
var codeLabel = regexp.MustCompile(`grpc_code="(\w+)"`)

// handled reads the server's grpc_server_handled_total for one method, by grpc_code.
func handled(t *testing.T, metricsURL, method string) map[string]float64 {
	t.Helper()
	reply, err := http.Get(metricsURL)
	if err != nil {
		t.Fatalf("scraping %s: %v", metricsURL, err)
	}
	defer reply.Body.Close()
	counts := map[string]float64{}
	lines := bufio.NewScanner(reply.Body)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	for lines.Scan() {
		m := handledLine.FindStringSubmatch(lines.Text())
		if m == nil || !strings.Contains(m[1], `grpc_method="`+method+`"`) {
			continue
		}
		n, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", lines.Text(), err)
		}
		counts[codeLabel.FindStringSubmatch(m[1])[1]] = n
	}
	return counts
}

// TestExtractDictionaryReadsToTheServersOK: ExtractDictionary returns only once the call has
// ended with OK, so the server records OK (it used to return on the result, cancelling the call).
func TestExtractDictionaryReadsToTheServersOK(t *testing.T) {
	ends := &streamEnds{ends: map[string]error{}}
	c, e := dial(t, chunkscope.WithDialOptions(grpc.WithChainStreamInterceptor(ends.intercept)))
	metricsURL := e["CHUNKSCOPE_TEST_METRICS_URL"]
	if metricsURL == "" {
		t.Fatal("CHUNKSCOPE_TEST_METRICS_URL is not set (scripts/client_fixture.py sets it)")
	}
	ctx := context.Background()
	before := handled(t, metricsURL, "ExtractDictionary")
	dictionaries, err := c.ExtractDictionary(ctx, &pb.ExtractDictionaryRequest{
		Model:      &pb.ModelRef{Name: e["CHUNKSCOPE_TEST_MODEL"]},
		HookPoints: []string{"blocks.0.resid_post"}, // not the fixture's: the examples pick that
		Corpus:     &pb.Corpus{Source: &pb.Corpus_Texts{Texts: &pb.TextList{Texts: trainingTexts()}}},
		Method: &pb.ExtractDictionaryRequest_PopulationAveraging{PopulationAveraging: &pb.PopulationAveragingParams{
			Concepts: []*pb.ConceptWords{{Concept: "cat"}, {Concept: "cake"}}, NSamples: 4}},
	}, nil)
	if err != nil {
		t.Fatalf("ExtractDictionary: %v", err)
	}
	if len(dictionaries) != 1 || dictionaries[0].GetNEntries() != 2 {
		t.Fatalf("ExtractDictionary returned %v", dictionaries)
	}
	if _, err := c.DeleteDictionary(ctx, dictionaries[0].GetId()); err != nil {
		t.Errorf("cleanup: DeleteDictionary: %v", err)
	}
	if end := ends.end(pb.DictionaryService_ExtractDictionary_FullMethodName); !errors.Is(end, io.EOF) {
		t.Errorf("the ExtractDictionary stream was not read to its OK status (its reads ended with %v)", end)
	}
	after := handled(t, metricsURL, "ExtractDictionary")
	for code, n := range after {
		want := before[code]
		if code == "OK" {
			want++
		}
		if n != want {
			t.Errorf("server recorded ExtractDictionary %s %v times, want %v (before: %v, after: %v)",
				code, n, want, before, after)
		}
	}
}
