package chunkscope

import (
	"context"
	"iter"

	"google.golang.org/grpc"

	pb "github.com/chunkscope/chunkscope/clients/go/chunkscopev1"
)

// Perturb runs one forward pass with interventions and returns the next-token log-probabilities
// before and after.
func (c *Client) Perturb(ctx context.Context, req *pb.PerturbRequest) (*pb.PerturbResponse, error) {
	return c.PerturbationService.Perturb(ctx, req)
}

// Generate streams a generation with interventions: one message per token and arm, then a message
// with Done set per arm carrying the whole text. The default deadline is DefaultGenerateTimeout;
// breaking out of the loop stops the generation.
func (c *Client) Generate(ctx context.Context, req *pb.GenerateRequest) iter.Seq2[*pb.GenerateResponse, error] {
	return serverStream(ctx, func(ctx context.Context) (grpc.ServerStreamingClient[pb.GenerateResponse], error) {
		return c.PerturbationService.Generate(ctx, req)
	})
}

// GenerateTexts runs Generate to the end and returns each arm's final text (ARM_PERTURBED, and
// ARM_CONTROL when req.Control is set).
func (c *Client) GenerateTexts(ctx context.Context, req *pb.GenerateRequest) (map[pb.Arm]string, error) {
	texts := map[pb.Arm]string{}
	for message, err := range c.Generate(ctx, req) {
		if err != nil {
			return nil, err
		}
		if message.GetDone() {
			texts[message.GetArm()] = message.GetText()
		}
	}
	return texts, nil
}
