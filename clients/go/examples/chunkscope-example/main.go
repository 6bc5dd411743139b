// Command chunkscope-example does the whole job against a running chunkscope server: it lists the
// models, picks the newest Population Averaging dictionary at a hook point, detects its concepts
// in a text and generates with one concept inhibited, next to a control arm.
//
//	go run ./examples/chunkscope-example --address 127.0.0.1:50051
//
// The server is `make serve` after `make demo`; the output has the same form in every client
// language, so their results can be diffed.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	chunkscope "github.com/chunkscope/chunkscope/clients/go"
	pb "github.com/chunkscope/chunkscope/clients/go/chunkscopev1"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "chunkscope-example:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	flags := flag.NewFlagSet("chunkscope-example", flag.ContinueOnError)
	address := flags.String("address", "127.0.0.1:50051", "server address (host:port)")
	token := flags.String("token", os.Getenv("CHUNKSCOPE_TOKEN"), "bearer token (default $CHUNKSCOPE_TOKEN)")
	model := flags.String("model", "smollm2-135m-instruct", "registered model")
	hookPoint := flags.String("hook-point", "blocks.16.resid_post", "hook point of the dictionary")
	text := flags.String("text", "After the concert we ate bread and cheese on the river bank.", "text to detect on")
	prompt := flags.String("prompt", "My favourite food is", "prompt to generate from")
	if err := flags.Parse(args); err != nil {
		return err
	}

	client, err := chunkscope.Dial(ctx, *address, chunkscope.WithToken(*token))
	if err != nil {
		return err
	}
	defer client.Close()

	fmt.Fprintln(out, "models:")
	for m, err := range client.ListModels(ctx) {
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  %s %s %s %d blocks\n", m.GetName(),
			strings.TrimPrefix(m.GetState().String(), "MODEL_STATE_"), m.GetArchitecture(), m.GetNumBlocks())
	}

	chosen, err := newestPA(ctx, client, *model, *hookPoint)
	if err != nil {
		return err
	}
	dictionary, err := client.GetDictionary(ctx, chosen.GetId())
	if err != nil {
		return err
	}
	labels := make([]string, len(dictionary.GetEntries()))
	for i, entry := range dictionary.GetEntries() {
		labels[i] = entry.GetLabel()
	}
	fmt.Fprintf(out, "dictionary %s at %s: %s\n", dictionary.GetId(), dictionary.GetHookPoint(), strings.Join(labels, ", "))

	results, err := client.DetectTexts(ctx, &pb.DetectionConfig{
		Model:         &pb.ModelRef{Name: *model},
		DictionaryIds: []string{dictionary.GetId()},
		SummaryOnly:   true,
	}, *text)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "detect: %s\n", *text)
	var inhibit *pb.ChunkRef
	label := ""
	for _, s := range results[0].GetSummaries() {
		if s.GetFired() {
			fmt.Fprintf(out, "  %s: fired %d times, first at token %d\n", s.GetLabel(), s.GetCount(), s.GetFirstPosition())
			if inhibit == nil {
				inhibit = &pb.ChunkRef{DictionaryId: s.GetDictionaryId(), EntryId: s.GetEntryId()}
				label = s.GetLabel()
			}
		} else {
			fmt.Fprintf(out, "  %s: not fired\n", s.GetLabel())
		}
	}
	if inhibit == nil {
		if len(dictionary.GetEntries()) == 0 {
			return fmt.Errorf("dictionary %s has no entries", dictionary.GetId())
		}
		first := dictionary.GetEntries()[0]
		inhibit = &pb.ChunkRef{DictionaryId: dictionary.GetId(), EntryId: first.GetId()}
		label = first.GetLabel()
	}

	const newTokens = 24
	texts, err := client.GenerateTexts(ctx, &pb.GenerateRequest{
		Model:  &pb.ModelRef{Name: *model},
		Prompt: chunkscope.TextInput(*prompt),
		Interventions: []*pb.Intervention{{
			Target:    &pb.Intervention_Chunk{Chunk: inhibit},
			Mode:      pb.InterventionMode_INTERVENTION_MODE_PROJECT_OUT,
			Positions: &pb.Positions{AllPrompt: true, Generated: true},
		}},
		Sampling: &pb.SamplingParams{MaxNewTokens: newTokens}, // temperature 0: greedy
		Control:  true,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "generate with %s inhibited (project_out), greedy, %d tokens:\n", label, newTokens)
	fmt.Fprintf(out, "  perturbed: %s%s\n", *prompt, texts[pb.Arm_ARM_PERTURBED])
	fmt.Fprintf(out, "  control:   %s%s\n", *prompt, texts[pb.Arm_ARM_CONTROL])
	return nil
}

// newestPA is the model's newest Population Averaging dictionary at the hook point (ties: the
// smallest id).
func newestPA(ctx context.Context, client *chunkscope.Client, model, hookPoint string) (*pb.Dictionary, error) {
	var candidates []*pb.Dictionary
	for d, err := range client.ListDictionaries(ctx, model) {
		if err != nil {
			return nil, err
		}
		if d.GetMethod() == pb.ChunkMethod_CHUNK_METHOD_POPULATION_AVERAGING && d.GetHookPoint() == hookPoint {
			candidates = append(candidates, d)
		}
	}
	if len(candidates) == 0 {
		return nil, errors.New("no Population Averaging dictionary of model " + model + " at " + hookPoint +
			": run `make demo` first")
	}
	slices.SortFunc(candidates, func(a, b *pb.Dictionary) int {
		if c := b.GetCreatedAt().AsTime().Compare(a.GetCreatedAt().AsTime()); c != 0 {
			return c // newest first
		}
		return cmp.Compare(a.GetId(), b.GetId())
	})
	return candidates[0], nil
}
