package chunkscope_test

// The client against the fixture's two replicas (CHUNKSCOPE_TEST_ADDRESSES): round_robin reaches
// both, and a dead address in the target costs no idempotent call.

import (
	"context"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"

	chunkscope "github.com/chunkscope/chunkscope/clients/go"
	pb "github.com/chunkscope/chunkscope/clients/go/chunkscopev1"
)

// handledAll is grpc_server_handled_total of one method on one server, every code together.
func handledAll(t *testing.T, metricsURL, method string) float64 {
	t.Helper()
	total := 0.0
	for _, n := range handled(t, metricsURL, method) {
		total += n
	}
	return total
}

// newClient makes a client for target (no waiting: New, as a caller with a list would).
func newClient(t *testing.T, target string, e map[string]string) *chunkscope.Client {
	t.Helper()
	c, err := chunkscope.New(target, chunkscope.WithToken(e["CHUNKSCOPE_TEST_TOKEN"]))
	if err != nil {
		t.Fatalf("New(%q): %v", target, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func detectRequest(e map[string]string) *pb.DetectRequest {
	return &pb.DetectRequest{
		Config: &pb.DetectionConfig{
			Model:         &pb.ModelRef{Name: e["CHUNKSCOPE_TEST_MODEL"]},
			DictionaryIds: []string{e["CHUNKSCOPE_TEST_DICTIONARY"]},
			SummaryOnly:   true,
		},
		Inputs: []*pb.DetectInput{chunkscope.TextInput("On day 3 the cat slept near the window while the cake cooled.")},
	}
}

// servedBy runs calls n times against target and returns how many each replica served.
func servedBy(t *testing.T, e map[string]string, target, method string, n int, call func(*chunkscope.Client) error) []float64 {
	t.Helper()
	urls := strings.Split(e["CHUNKSCOPE_TEST_METRICS_URLS"], ",")
	before := make([]float64, len(urls))
	for i, url := range urls {
		before[i] = handledAll(t, url, method)
	}
	c := newClient(t, target, e)
	for i := range n {
		if err := call(c); err != nil {
			t.Fatalf("call %d of %d: %v", i+1, n, err)
		}
	}
	served := make([]float64, len(urls))
	for i, url := range urls {
		served[i] = handledAll(t, url, method) - before[i]
	}
	return served
}

func TestRoundRobinReachesBothReplicas(t *testing.T) {
	e := env(t)
	ctx := context.Background()
	served := servedBy(t, e, e["CHUNKSCOPE_TEST_ADDRESSES"], "Detect", 12, func(c *chunkscope.Client) error {
		reply, err := c.Detect(ctx, detectRequest(e))
		if err == nil && reply.GetResults()[0].GetSummaries()[0].GetLabel() != "cat" {
			t.Errorf("Detect: %v", reply)
		}
		return err
	})
	if served[0]+served[1] != 12 || served[0] == 0 || served[1] == 0 {
		t.Errorf("Detect calls served per replica: %v", served)
	}
}

func TestAListOfHostnamesReachesBothReplicas(t *testing.T) {
	e := env(t)
	ctx := context.Background()
	target := strings.ReplaceAll(e["CHUNKSCOPE_TEST_ADDRESSES"], "127.0.0.1", "localhost")
	served := servedBy(t, e, target, "GetModel", 8, func(c *chunkscope.Client) error {
		_, err := c.GetModel(ctx, e["CHUNKSCOPE_TEST_MODEL"])
		return err
	})
	if served[0]+served[1] != 8 || served[0] == 0 || served[1] == 0 {
		t.Errorf("GetModel calls served per replica: %v", served)
	}
}

func TestDNSTarget(t *testing.T) {
	e := env(t)
	_, port, _ := strings.Cut(e["CHUNKSCOPE_TEST_ADDRESS"], ":")
	c := newClient(t, "dns:///localhost:"+port, e)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.GetModel(ctx, e["CHUNKSCOPE_TEST_MODEL"]); err != nil {
		t.Fatalf("GetModel through dns:///localhost:%s: %v", port, err)
	}
}

func TestIdempotentCallsSucceedPastADeadAddress(t *testing.T) {
	e := env(t)
	ctx := context.Background()
	c := newClient(t, e["CHUNKSCOPE_TEST_DEAD_ADDRESS"]+","+e["CHUNKSCOPE_TEST_ADDRESS"], e)
	model, dictionary := e["CHUNKSCOPE_TEST_MODEL"], e["CHUNKSCOPE_TEST_DICTIONARY"]
	ref := &pb.ModelRef{Name: model}
	r := rand.New(rand.NewPCG(3, 4))
	states := &pb.StateSet{Source: &pb.StateSet_Tensor{Tensor: randomTensor(r, 20, 4)}}
	network := &pb.NetworkSource{Source: &pb.NetworkSource_Network{Network: &pb.DenseNetwork{Layers: []*pb.DenseLayer{
		{Weight: randomTensor(r, 8, 3), Bias: randomTensor(r, 8)},
		{Weight: randomTensor(r, 2, 8)},
	}}}}
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	for range 3 { // each call more than once, so round_robin would reach both addresses
		status, err := c.Health(ctx, "")
		check("Health", err)
		if status != grpc_health_v1.HealthCheckResponse_SERVING {
			t.Errorf("Health: %v", status)
		}
		_, err = c.GetModel(ctx, model)
		check("GetModel", err)
		_, err = chunkscope.Collect(c.ListModels(ctx))
		check("ListModels", err)
		_, err = c.ListHookPoints(ctx, ref)
		check("ListHookPoints", err)
		_, err = c.GetDictionary(ctx, dictionary)
		check("GetDictionary", err)
		_, err = chunkscope.Collect(c.ListDictionaries(ctx, model))
		check("ListDictionaries", err)
		_, err = c.ExportDictionary(ctx, dictionary, io.Discard)
		check("ExportDictionary", err)
		_, err = c.Detect(ctx, detectRequest(e))
		check("Detect", err)
		_, err = c.Perturb(ctx, &pb.PerturbRequest{
			Model: ref, Input: chunkscope.TextInput("The window and the"), TopK: 3,
			Interventions: []*pb.Intervention{{
				Target:    &pb.Intervention_Chunk{Chunk: &pb.ChunkRef{DictionaryId: dictionary, EntryId: 0}},
				Mode:      pb.InterventionMode_INTERVENTION_MODE_ACTIVATE,
				Positions: &pb.Positions{Indices: []int32{-1}},
			}},
		})
		check("Perturb", err)
		_, err = c.GenerateTexts(ctx, &pb.GenerateRequest{
			Model: ref, Prompt: chunkscope.TextInput("The cat"), Sampling: &pb.SamplingParams{MaxNewTokens: 4},
		})
		check("Generate", err)
		compared, err := c.CompareRepresentations(ctx, &pb.CompareRepresentationsRequest{
			A: states, B: states, Measures: []pb.Measure{pb.Measure_MEASURE_LINEAR_CKA},
		}, nil)
		check("CompareRepresentations", err)
		if math.Abs(compared.GetResults()[0].GetValue()-1) > 1e-5 {
			t.Errorf("CompareRepresentations: %v", compared)
		}
		_, err = c.LayerSimilarity(ctx, &pb.LayerSimilarityRequest{
			Source: &pb.LayerSimilarityRequest_Model{Model: &pb.ModelLayers{
				Model:      ref,
				HookPoints: []string{"blocks.0.resid_post", e["CHUNKSCOPE_TEST_HOOK_POINT"]},
				Inputs:     &pb.Corpus{Source: &pb.Corpus_Texts{Texts: &pb.TextList{Texts: trainingTexts()[:4]}}},
				Pooling:    pb.Pooling_POOLING_ALL_TOKENS,
			}},
			Measure: pb.Measure_MEASURE_LINEAR_CKA,
		}, nil)
		check("LayerSimilarity", err)
		_, err = c.ConnectionCost(ctx, &pb.ConnectionCostRequest{Network: network})
		check("ConnectionCost", err)
		_, err = c.OptimizeNeuronLayout(ctx, &pb.OptimizeNeuronLayoutRequest{Network: network})
		check("OptimizeNeuronLayout", err)
	}
}
