package chunkscope

import (
	"context"
	"errors"
	"io"
	"iter"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
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

// progressThenResult is a stream reply that is either a progress update or the final result.
type progressThenResult[P, R any] interface {
	GetProgress() P
	GetResult() R
}

// resultOf reads a progress-then-result stream to its end and returns the result. It reads on
// after the result so that the call ends with the server's status: returning at the result would
// cancel the call, and the server would record the finished job as cancelled.
func resultOf[T progressThenResult[P, R], P, R comparable](seq iter.Seq2[T, error], onProgress func(P),
	what string) (R, error) {
	var result, none R
	var noProgress P
	for message, err := range seq {
		if err != nil {
			return none, err
		}
		if r := message.GetResult(); r != none {
			if result == none {
				result = r
			}
		} else if p := message.GetProgress(); onProgress != nil && p != noProgress {
			onProgress(p)
		}
	}
	if result == none {
		return none, &Error{Code: codes.Unknown, Message: "the " + what + " stream ended without a result"}
	}
	return result, nil
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
