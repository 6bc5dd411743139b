package chunkscope

import (
	"context"
	"iter"

	"google.golang.org/grpc"

	pb "github.com/chunkscope/chunkscope/clients/go/chunkscopev1"
)

// CompareRepresentationsStream compares two sets of states and yields progress updates, then the
// result. The default deadline is DefaultLongTimeout.
func (c *Client) CompareRepresentationsStream(ctx context.Context, req *pb.CompareRepresentationsRequest) iter.Seq2[*pb.CompareRepresentationsResponse, error] {
	return serverStream(ctx, func(ctx context.Context) (grpc.ServerStreamingClient[pb.CompareRepresentationsResponse], error) {
		return c.AnalysisService.CompareRepresentations(ctx, req)
	})
}

// CompareRepresentations runs a comparison to the end and returns its result; onProgress, when
// not nil, sees every progress update.
func (c *Client) CompareRepresentations(ctx context.Context, req *pb.CompareRepresentationsRequest,
	onProgress func(*pb.AnalysisProgress)) (*pb.CompareRepresentationsResult, error) {
	return resultOf(c.CompareRepresentationsStream(ctx, req), onProgress, "comparison")
}

// LayerSimilarityStream computes a similarity map between layers and yields progress updates,
// then the result. The default deadline is DefaultLongTimeout.
func (c *Client) LayerSimilarityStream(ctx context.Context, req *pb.LayerSimilarityRequest) iter.Seq2[*pb.LayerSimilarityResponse, error] {
	return serverStream(ctx, func(ctx context.Context) (grpc.ServerStreamingClient[pb.LayerSimilarityResponse], error) {
		return c.AnalysisService.LayerSimilarity(ctx, req)
	})
}

// LayerSimilarity runs LayerSimilarityStream to the end and returns its result; onProgress, when
// not nil, sees every progress update.
func (c *Client) LayerSimilarity(ctx context.Context, req *pb.LayerSimilarityRequest,
	onProgress func(*pb.AnalysisProgress)) (*pb.LayerSimilarityResult, error) {
	return resultOf(c.LayerSimilarityStream(ctx, req), onProgress, "layer-similarity")
}

// ConnectionCost returns the BIMT connection cost of a network under its current neuron placement.
func (c *Client) ConnectionCost(ctx context.Context, req *pb.ConnectionCostRequest) (*pb.ConnectionCostResponse, error) {
	return c.AnalysisService.ConnectionCost(ctx, req)
}

// OptimizeNeuronLayout reorders hidden neurons to lower the connection cost without changing the
// network's function.
func (c *Client) OptimizeNeuronLayout(ctx context.Context, req *pb.OptimizeNeuronLayoutRequest) (*pb.OptimizeNeuronLayoutResponse, error) {
	return c.AnalysisService.OptimizeNeuronLayout(ctx, req)
}
