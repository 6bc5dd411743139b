package chunkscope

import (
	"context"
	"errors"
	"io"
	"iter"

	"google.golang.org/grpc"
)

// serverStream runs a server-streaming call as an iterator: each reply, then at most one error.
// Breaking out of the loop cancels the call.
func serverStream[T any](ctx context.Context,
	open func(context.Context) (grpc.ServerStreamingClient[T], error)) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := open(ctx)
		if err != nil {
			yield(nil, err)
			return
		}
		for {
			reply, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(reply, nil) {
				return
			}
		}
	}
}

// paged walks a List call's pages as one sequence of items.
func paged[T any](ctx context.Context, pageSize int32,
	fetch func(ctx context.Context, size int32, token string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		token := ""
		for {
			items, next, err := fetch(ctx, pageSize, token)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, item := range items {
				if !yield(item, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			token = next
		}
	}
}

// Collect gathers a sequence from the client into a slice, stopping at the first error.
func Collect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	var out []T
	for item, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, item)
	}
	return out, nil
}
