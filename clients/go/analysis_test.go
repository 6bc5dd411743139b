package chunkscope_test

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	pb "github.com/chunkscope/chunkscope/clients/go/chunkscopev1"
)

// float32Tensor packs values as a little-endian float32 tensor of the given shape.
func float32Tensor(shape []int64, values []float32) *pb.Tensor {
	data := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	}
	return &pb.Tensor{Dtype: pb.Dtype_DTYPE_FLOAT32, Shape: shape, Data: data}
}

func randomTensor(r *rand.Rand, shape ...int64) *pb.Tensor {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	values := make([]float32, n)
	for i := range values {
		values[i] = float32(r.NormFloat64())
	}
	return float32Tensor(shape, values)
}

func TestAnalysis(t *testing.T) {
	c, e := dial(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))

	// Linear CKA of a set of states with itself is 1.
	states := randomTensor(r, 40, 6)
	var progress int
	compared, err := c.CompareRepresentations(ctx, &pb.CompareRepresentationsRequest{
		A:        &pb.StateSet{Source: &pb.StateSet_Tensor{Tensor: states}},
		B:        &pb.StateSet{Source: &pb.StateSet_Tensor{Tensor: states}},
		Measures: []pb.Measure{pb.Measure_MEASURE_LINEAR_CKA, pb.Measure_MEASURE_PROCRUSTES},
	}, func(*pb.AnalysisProgress) { progress++ })
	if err != nil {
		t.Fatalf("CompareRepresentations: %v", err)
	}
	results := compared.GetResults()
	if len(results) != 2 || math.Abs(results[0].GetValue()-1) > 1e-5 || math.Abs(results[1].GetValue()) > 1e-3 {
		t.Errorf("CompareRepresentations of a set with itself: %v", results)
	}

	// Layer similarity over the fixture model's hook points.
	layers, err := c.LayerSimilarity(ctx, &pb.LayerSimilarityRequest{
		Source: &pb.LayerSimilarityRequest_Model{Model: &pb.ModelLayers{
			Model:      &pb.ModelRef{Name: e["CHUNKSCOPE_TEST_MODEL"]},
			HookPoints: []string{"blocks.0.resid_post", e["CHUNKSCOPE_TEST_HOOK_POINT"]},
			Inputs:     &pb.Corpus{Source: &pb.Corpus_Texts{Texts: &pb.TextList{Texts: trainingTexts()[:4]}}},
			Pooling:    pb.Pooling_POOLING_ALL_TOKENS,
		}},
		Measure: pb.Measure_MEASURE_LINEAR_CKA,
	}, nil)
	if err != nil {
		t.Fatalf("LayerSimilarity: %v", err)
	}
	if len(layers.GetLayers()) != 2 || len(layers.GetMatrix()) != 4 || math.Abs(layers.GetMatrix()[0]-1) > 1e-5 {
		t.Errorf("LayerSimilarity: layers %v, matrix %v", layers.GetLayers(), layers.GetMatrix())
	}

	// Connection cost of an inline network, and a layout that does not raise it.
	network := &pb.DenseNetwork{Layers: []*pb.DenseLayer{
		{Weight: randomTensor(r, 8, 3), Bias: randomTensor(r, 8)},
		{Weight: randomTensor(r, 2, 8)},
	}}
	source := &pb.NetworkSource{Source: &pb.NetworkSource_Network{Network: network}}
	cost, err := c.ConnectionCost(ctx, &pb.ConnectionCostRequest{Network: source})
	if err != nil {
		t.Fatalf("ConnectionCost: %v", err)
	}
	if cost.GetCost() <= 0 || len(cost.GetTerms()) != 2 {
		t.Errorf("ConnectionCost: %v", cost)
	}
	layout, err := c.OptimizeNeuronLayout(ctx, &pb.OptimizeNeuronLayoutRequest{Network: source})
	if err != nil {
		t.Fatalf("OptimizeNeuronLayout: %v", err)
	}
	if math.Abs(layout.GetCostBefore()-cost.GetCost()) > 1e-6*cost.GetCost() || layout.GetCostAfter() > layout.GetCostBefore() ||
		len(layout.GetPermutations()) != 1 || len(layout.GetPermutations()[0].GetOrder()) != 8 {
		t.Errorf("OptimizeNeuronLayout: %v", layout)
	}
}
