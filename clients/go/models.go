package chunkscope

import (
	"context"
	"iter"

	pb "github.com/chunkscope/chunkscope/clients/go/chunkscopev1"
)

// RegisterModel registers a model from a path under one of the server's model roots. With
// req.Wait the call returns once the model is READY (or FAILED), with a longer default deadline.
func (c *Client) RegisterModel(ctx context.Context, req *pb.RegisterModelRequest) (*pb.Model, error) {
	reply, err := c.ModelService.RegisterModel(ctx, req)
	return reply.GetModel(), err
}

// GetModel describes one registered model.
func (c *Client) GetModel(ctx context.Context, name string) (*pb.Model, error) {
	reply, err := c.ModelService.GetModel(ctx, &pb.GetModelRequest{Name: name})
	return reply.GetModel(), err
}

// ListModels yields every registered model, fetching pages as needed.
func (c *Client) ListModels(ctx context.Context) iter.Seq2[*pb.Model, error] {
	return paged(ctx, 0, func(ctx context.Context, size int32, token string) ([]*pb.Model, string, error) {
		reply, err := c.ModelService.ListModels(ctx, &pb.ListModelsRequest{
			Page: &pb.PageRequest{PageSize: size, PageToken: token}})
		return reply.GetModels(), reply.GetPage().GetNextPageToken(), err
	})
}

// UnregisterModel removes a model (its stored dictionaries stay) and returns it as it was.
func (c *Client) UnregisterModel(ctx context.Context, name string) (*pb.Model, error) {
	reply, err := c.ModelService.UnregisterModel(ctx, &pb.UnregisterModelRequest{Name: name})
	return reply.GetModel(), err
}

// ListHookPoints lists the places in a model's forward pass that can be read or changed. Set
// model.ContentHash to refuse other weights than the ones expected.
func (c *Client) ListHookPoints(ctx context.Context, model *pb.ModelRef) ([]*pb.HookPoint, error) {
	reply, err := c.ModelService.ListHookPoints(ctx, &pb.ListHookPointsRequest{Model: model})
	return reply.GetHookPoints(), err
}
