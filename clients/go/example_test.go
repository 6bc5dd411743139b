package chunkscope_test

// Runnable examples. Those with an Output comment need no server and go test checks their output.
// The others talk to a server at $CHUNKSCOPE_ADDRESS with the key $CHUNKSCOPE_TOKEN: go test only
// compiles them, and TestExamplesAgainstFixture (live_test.go's fixture) runs them against the
// client fixture's server and checks what they print.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	chunkscope "github.com/chunkscope/chunkscope/clients/go"
	pb "github.com/chunkscope/chunkscope/clients/go/chunkscopev1"
)

// Connect, check health, and detect the concepts of every stored dictionary in one text.
func Example() {
	ctx := context.Background()
	c, err := chunkscope.Dial(ctx, os.Getenv("CHUNKSCOPE_ADDRESS"),
		chunkscope.WithToken(os.Getenv("CHUNKSCOPE_TOKEN")), chunkscope.WithTimeout(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	health, err := c.Health(ctx, "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("health:", health)
	for d, err := range c.ListDictionaries(ctx, "") {
		if err != nil {
			log.Fatal(err)
		}
		config := &pb.DetectionConfig{Model: d.GetModel(), DictionaryIds: []string{d.GetId()}, SummaryOnly: true}
		results, err := c.DetectTexts(ctx, config, "On day 3 the cat slept near the window while the cake cooled.")
		if err != nil {
			log.Fatal(err)
		}
		for _, s := range results[0].GetSummaries() {
			fmt.Printf("%s: fired %d times, first at token %d\n", s.GetLabel(), s.GetCount(), s.GetFirstPosition())
		}
	}
}

// The registered models, one page after another (ListModels is an iterator).
func ExampleClient_ListModels() {
	ctx := context.Background()
	c, err := chunkscope.Dial(ctx, os.Getenv("CHUNKSCOPE_ADDRESS"), chunkscope.WithToken(os.Getenv("CHUNKSCOPE_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for m, err := range c.ListModels(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(m.GetName(), m.GetState(), m.GetArchitecture())
	}
}

// A failed call is an *Error with the status code and the server's error details.
func ExampleClient_GetModel_notFound() {
	ctx := context.Background()
	c, err := chunkscope.Dial(ctx, os.Getenv("CHUNKSCOPE_ADDRESS"), chunkscope.WithToken(os.Getenv("CHUNKSCOPE_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_, err = c.GetModel(ctx, "no-such-model")
	var e *chunkscope.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, e.Reason)
	}
}

// ErrorFromStatus decodes the details a chunkscope server attaches to a status.
func ExampleErrorFromStatus() {
	s, _ := status.New(codes.InvalidArgument, "max_new_tokens must be positive").WithDetails(
		&errdetails.ErrorInfo{Reason: "INVALID_ARGUMENT", Domain: "chunkscope"},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "sampling.max_new_tokens", Description: "must be positive"},
		}},
	)
	e := chunkscope.ErrorFromStatus(s)
	fmt.Println(e)
	fmt.Println(e.Reason, e.Domain)
	for _, v := range e.FieldViolations {
		fmt.Println(v.Field+":", v.Description)
	}
	fmt.Println(chunkscope.Code(e), errors.Is(e, &chunkscope.Error{Code: codes.InvalidArgument}))
	// Output:
	// chunkscope: InvalidArgument: max_new_tokens must be positive
	// INVALID_ARGUMENT chunkscope
	// sampling.max_new_tokens: must be positive
	// InvalidArgument true
}

// Code is codes.OK for nil, the *Error's code for a failed call, and Unknown for other errors.
func ExampleCode() {
	fmt.Println(chunkscope.Code(nil))
	fmt.Println(chunkscope.Code(&chunkscope.Error{Code: codes.NotFound}))
	fmt.Println(chunkscope.Code(errors.New("not a gRPC error")))
	// Output:
	// OK
	// NotFound
	// Unknown
}
