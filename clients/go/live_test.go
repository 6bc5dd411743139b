package chunkscope_test

// Tests against a live chunkscope server in the client fixture's state
// (scripts/client_fixture.py): every RPC, errors with details, deadlines. test.sh runs them with
// the fixture's environment; a bare `go test` without CHUNKSCOPE_TEST_ADDRESS skips them.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	chunkscope "github.com/chunkscope/chunkscope/clients/go"
	pb "github.com/chunkscope/chunkscope/clients/go/chunkscopev1"
)

// ownModel is this suite's copy of the fixture model; it is unregistered at the end.
const ownModel = "go-model"

// trainingTexts are like the fixture's: "cat" and "cake" occur often enough for PA.
func trainingTexts() []string {
	texts := make([]string, 12)
	for i := range texts {
		texts[i] = fmt.Sprintf("On day %d the cat slept near the window while the cake cooled.", i)
	}
	return texts
}

// TestMain fails the whole suite at once when the fixture's server is named but unreachable,
// instead of letting every test wait for it.
func TestMain(m *testing.M) {
	if address := os.Getenv("CHUNKSCOPE_TEST_ADDRESS"); address != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c, err := chunkscope.Dial(ctx, address, chunkscope.WithToken(os.Getenv("CHUNKSCOPE_TEST_TOKEN")))
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "the fixture server at %s is unreachable: %v\n", address, err)
			os.Exit(1)
		}
		_ = c.Close()
	}
	os.Exit(m.Run())
}

// env is the fixture's environment; the test is skipped when there is no server.
func env(t *testing.T) map[string]string {
	t.Helper()
	if os.Getenv("CHUNKSCOPE_TEST_ADDRESS") == "" {
		t.Skip("CHUNKSCOPE_TEST_ADDRESS is not set: run clients/go/test.sh (it starts the fixture)")
	}
	out := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "CHUNKSCOPE_TEST_") {
			out[k] = v
		}
	}
	return out
}

// dial connects to the fixture server with its token.
func dial(t *testing.T, opts ...chunkscope.Option) (*chunkscope.Client, map[string]string) {
	t.Helper()
	e := env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := chunkscope.Dial(ctx, e["CHUNKSCOPE_TEST_ADDRESS"],
		append([]chunkscope.Option{chunkscope.WithToken(e["CHUNKSCOPE_TEST_TOKEN"])}, opts...)...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, e
}

// asError requires err to be an *chunkscope.Error with the given code.
func asError(t *testing.T, err error, code codes.Code) *chunkscope.Error {
	t.Helper()
	var e *chunkscope.Error
	if !errors.As(err, &e) {
		t.Fatalf("expected a *chunkscope.Error with code %s, got %T %v", code, err, err)
	}
	if e.Code != code {
		t.Fatalf("expected code %s, got %s (%q)", code, e.Code, e.Message)
	}
	if status.Code(err) != code || chunkscope.Code(err) != code {
		t.Fatalf("status.Code/chunkscope.Code disagree with %s: %s, %s", code, status.Code(err), chunkscope.Code(err))
	}
	return e
}

func TestHealth(t *testing.T) {
	c, _ := dial(t)
	for _, service := range []string{"", "chunkscope.v1.ModelService", "chunkscope.v1.DetectionService"} {
		got, err := c.Health(context.Background(), service)
		if err != nil {
			t.Fatalf("Health(%q): %v", service, err)
		}
		if got != grpc_health_v1.HealthCheckResponse_SERVING {
			t.Errorf("Health(%q) = %s, want SERVING", service, got)
		}
	}
}

func TestFixtureModelAndDictionary(t *testing.T) {
	c, e := dial(t)
	ctx := context.Background()
	model, err := c.GetModel(ctx, e["CHUNKSCOPE_TEST_MODEL"])
	if err != nil {
		t.Fatal(err)
	}
	if model.GetState() != pb.ModelState_MODEL_STATE_READY || model.GetContentHash() != e["CHUNKSCOPE_TEST_CONTENT_HASH"] {
		t.Errorf("fixture model: %v", model)
	}
	models, err := chunkscope.Collect(c.ListModels(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(models, func(m *pb.Model) bool { return m.GetName() == e["CHUNKSCOPE_TEST_MODEL"] }) {
		t.Errorf("ListModels lacks the fixture model: %v", models)
	}
	d, err := c.GetDictionary(ctx, e["CHUNKSCOPE_TEST_DICTIONARY"])
	if err != nil {
		t.Fatal(err)
	}
	labels := []string{}
	for _, entry := range d.GetEntries() {
		labels = append(labels, entry.GetLabel())
		if entry.GetPrototype() != nil {
			t.Errorf("GetDictionary returned a prototype for %q", entry.GetLabel())
		}
	}
	if !slices.Equal(labels, []string{"cat", "cake"}) || d.GetHookPoint() != e["CHUNKSCOPE_TEST_HOOK_POINT"] {
		t.Errorf("fixture dictionary: labels %v at %s", labels, d.GetHookPoint())
	}
	withPrototypes, err := c.GetDictionaryWithPrototypes(ctx, d.GetId())
	if err != nil {
		t.Fatal(err)
	}
	for _, entry := range withPrototypes.GetEntries() {
		if len(entry.GetPrototype().GetData()) == 0 {
			t.Errorf("GetDictionaryWithPrototypes: no prototype for %q", entry.GetLabel())
		}
	}
}

// TestLifecycle registers a model copy and runs every other RPC on it, then removes what it made.
func TestLifecycle(t *testing.T) {
	c, e := dial(t)
	ctx := context.Background()

	// ModelService.
	model, err := c.RegisterModel(ctx, &pb.RegisterModelRequest{
		Name: ownModel, SourcePath: e["CHUNKSCOPE_TEST_MODEL_SOURCE"], Wait: true})
	if err != nil {
		t.Fatalf("RegisterModel: %v", err)
	}
	t.Cleanup(func() {
		if _, err := c.UnregisterModel(context.Background(), ownModel); err != nil && chunkscope.Code(err) != codes.NotFound {
			t.Errorf("cleanup: UnregisterModel: %v", err)
		}
	})
	if model.GetState() != pb.ModelState_MODEL_STATE_READY || model.GetContentHash() != e["CHUNKSCOPE_TEST_CONTENT_HASH"] {
		t.Fatalf("registered model: %v", model)
	}
	got, err := c.GetModel(ctx, ownModel)
	if err != nil || got.GetName() != ownModel || got.GetNumBlocks() != model.GetNumBlocks() {
		t.Fatalf("GetModel: %v, %v", got, err)
	}
	names := []string{}
	for m, err := range c.ListModels(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, m.GetName())
	}
	if !slices.Contains(names, ownModel) || !slices.Contains(names, e["CHUNKSCOPE_TEST_MODEL"]) {
		t.Errorf("ListModels: %v", names)
	}
	hooks, err := c.ListHookPoints(ctx, &pb.ModelRef{Name: ownModel, ContentHash: model.GetContentHash()})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(hooks, func(h *pb.HookPoint) bool { return h.GetName() == e["CHUNKSCOPE_TEST_HOOK_POINT"] }) {
		t.Errorf("ListHookPoints lacks %s: %v", e["CHUNKSCOPE_TEST_HOOK_POINT"], hooks)
	}
	_, err = c.ListHookPoints(ctx, &pb.ModelRef{Name: ownModel, ContentHash: "sha256:" + strings.Repeat("0", 64)})
	asError(t, err, codes.FailedPrecondition)

	// DictionaryService: extraction with progress.
	var progress []*pb.ExtractionProgress
	dictionaries, err := c.ExtractDictionary(ctx, &pb.ExtractDictionaryRequest{
		Model:      &pb.ModelRef{Name: ownModel},
		HookPoints: []string{e["CHUNKSCOPE_TEST_HOOK_POINT"]},
		Corpus:     &pb.Corpus{Source: &pb.Corpus_Texts{Texts: &pb.TextList{Texts: trainingTexts()}}},
		Method: &pb.ExtractDictionaryRequest_PopulationAveraging{PopulationAveraging: &pb.PopulationAveragingParams{
			Concepts: []*pb.ConceptWords{{Concept: "cat"}, {Concept: "cake"}}, NSamples: 4}},
		Description: "go client test",
	}, func(p *pb.ExtractionProgress) { progress = append(progress, p) })
	if err != nil {
		t.Fatalf("ExtractDictionary: %v", err)
	}
	if len(dictionaries) != 1 {
		t.Fatalf("ExtractDictionary returned %d dictionaries", len(dictionaries))
	}
	dict := dictionaries[0]
	id := dict.GetId()
	t.Cleanup(func() {
		if _, err := c.DeleteDictionary(context.Background(), id); err != nil && chunkscope.Code(err) != codes.NotFound {
			t.Errorf("cleanup: DeleteDictionary: %v", err)
		}
	})
	if len(progress) == 0 {
		t.Error("ExtractDictionary reported no progress")
	}
	if dict.GetModel().GetName() != ownModel || dict.GetMethod() != pb.ChunkMethod_CHUNK_METHOD_POPULATION_AVERAGING ||
		dict.GetNEntries() != 2 || dict.GetDescription() != "go client test" {
		t.Errorf("extracted dictionary: %v", dict)
	}
	fetched, err := c.GetDictionary(ctx, id)
	if err != nil || fetched.GetId() != id || len(fetched.GetEntries()) != 2 {
		t.Fatalf("GetDictionary: %v, %v", fetched, err)
	}
	listed, err := chunkscope.Collect(c.ListDictionaries(ctx, ownModel))
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].GetId() != id {
		t.Errorf("ListDictionaries(%s): %v", ownModel, listed)
	}

	// Export, delete, import, compare.
	var archive bytes.Buffer
	n, err := c.ExportDictionary(ctx, id, &archive)
	if err != nil || n == 0 || int64(archive.Len()) != n {
		t.Fatalf("ExportDictionary: %d bytes, %v", n, err)
	}
	again, err := c.ExportDictionaryBytes(ctx, id)
	if err != nil || !bytes.Equal(again, archive.Bytes()) {
		t.Fatalf("ExportDictionaryBytes differs from ExportDictionary (%v)", err)
	}
	before, err := c.GetDictionaryWithPrototypes(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteDictionary(ctx, id); err != nil {
		t.Fatalf("DeleteDictionary: %v", err)
	}
	_, err = c.GetDictionary(ctx, id)
	asError(t, err, codes.NotFound)
	imported, err := c.ImportDictionaryBytes(ctx, archive.Bytes())
	if err != nil || imported.GetId() != id {
		t.Fatalf("ImportDictionaryBytes: %v, %v", imported, err)
	}
	after, err := c.GetDictionaryWithPrototypes(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(before, after) {
		t.Errorf("dictionary changed by export/delete/import:\nbefore %v\nafter  %v", before, after)
	}
	// The reader form, over the same archive: delete and import once more.
	if _, err := c.DeleteDictionary(ctx, id); err != nil {
		t.Fatal(err)
	}
	if imported, err := c.ImportDictionary(ctx, bytes.NewReader(archive.Bytes())); err != nil || imported.GetId() != id {
		t.Fatalf("ImportDictionary: %v, %v", imported, err)
	}
	// A corrupted archive is refused by the server (its sha256 no longer matches).
	corrupt := bytes.Clone(archive.Bytes())
	corrupt[len(corrupt)/2] ^= 0xff
	sum := "sha256:" + strings.Repeat("0", 64)
	stream, err := c.DictionaryService.ImportDictionary(ctx)
	if err == nil {
		err = stream.Send(&pb.ImportDictionaryRequest{Data: corrupt, Sha256: sum})
	}
	if err == nil {
		_, err = stream.CloseAndRecv()
	}
	if err == nil {
		t.Error("import of a corrupted archive succeeded")
	} else {
		var ce *chunkscope.Error
		if !errors.As(err, &ce) {
			t.Errorf("corrupted import: %T %v is not a *chunkscope.Error", err, err)
		}
	}

	// DetectionService.
	config := &pb.DetectionConfig{Model: &pb.ModelRef{Name: ownModel}, DictionaryIds: []string{id}}
	text := "On day 3 the cat slept near the window while the cake cooled."
	results, err := c.DetectTexts(ctx, config, text, "Nothing here.")
	if err != nil {
		t.Fatalf("Detect: %v", err)
	}
	if len(results) != 2 || len(results[0].GetTokens()) != int(results[0].GetNTokens()) {
		t.Fatalf("Detect results: %v", results)
	}
	fired := map[string]bool{}
	for _, s := range results[0].GetSummaries() {
		fired[s.GetLabel()] = s.GetFired()
	}
	if len(fired) != 2 {
		t.Errorf("Detect summaries: %v", results[0].GetSummaries())
	}

	requests := []*pb.StreamDetectRequest{
		chunkscope.StreamConfig(&pb.DetectionConfig{Model: config.Model, DictionaryIds: config.DictionaryIds, SummaryOnly: true}),
		chunkscope.StreamText(text, false),
		chunkscope.StreamText("On day 3 the cat slept", false),
		chunkscope.StreamText(" near the window while the cake cooled.", true),
	}
	var replies []*pb.StreamDetectResponse
	for reply, err := range c.StreamDetect(ctx, slices.Values(requests)) {
		if err != nil {
			t.Fatalf("StreamDetect: %v", err)
		}
		replies = append(replies, reply)
	}
	if len(replies) != 3 {
		t.Fatalf("StreamDetect: %d replies, want 3", len(replies))
	}
	for i, reply := range replies {
		if len(reply.GetResult().GetSummaries()) != 2 || len(reply.GetResult().GetTokens()) != 0 {
			t.Errorf("StreamDetect reply %d: %v", i, reply)
		}
	}
	if !proto.Equal(replies[0].GetResult().GetSummaries()[0], results[0].GetSummaries()[0]) {
		t.Errorf("StreamDetect and Detect disagree: %v vs %v", replies[0].GetResult().GetSummaries()[0], results[0].GetSummaries()[0])
	}
	// Breaking out of a stream early ends the call cleanly.
	for reply, err := range c.StreamDetect(ctx, slices.Values(requests)) {
		if err != nil || reply == nil {
			t.Fatalf("StreamDetect: %v", err)
		}
		break
	}

	// PerturbationService.
	cake := &pb.ChunkRef{DictionaryId: id, EntryId: 1}
	perturbed, err := c.Perturb(ctx, &pb.PerturbRequest{
		Model: &pb.ModelRef{Name: ownModel}, Input: chunkscope.TextInput("The cake"),
		Interventions: []*pb.Intervention{{Target: &pb.Intervention_Chunk{Chunk: cake},
			Mode: pb.InterventionMode_INTERVENTION_MODE_PROJECT_OUT, Positions: &pb.Positions{AllPrompt: true}}},
		TopK: 3,
	})
	if err != nil {
		t.Fatalf("Perturb: %v", err)
	}
	if len(perturbed.GetTopBefore()) != 3 || len(perturbed.GetTopAfter()) != 3 || perturbed.GetApplied() == 0 {
		t.Errorf("Perturb: %v", perturbed)
	}
	request := &pb.GenerateRequest{
		Model: &pb.ModelRef{Name: ownModel}, Prompt: chunkscope.TextInput("The cat"),
		Interventions: []*pb.Intervention{{Target: &pb.Intervention_Chunk{Chunk: cake},
			Mode: pb.InterventionMode_INTERVENTION_MODE_PROJECT_OUT, Positions: &pb.Positions{AllPrompt: true, Generated: true}}},
		Sampling: &pb.SamplingParams{MaxNewTokens: 5}, Control: true,
	}
	steps := map[pb.Arm]int{}
	last := map[pb.Arm]int32{pb.Arm_ARM_PERTURBED: -1, pb.Arm_ARM_CONTROL: -1}
	done := map[pb.Arm]*pb.GenerateResponse{}
	for message, err := range c.Generate(ctx, request) {
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		arm := message.GetArm()
		if done[arm] != nil {
			t.Fatalf("Generate: a message after the done message of %s: %v", arm, message)
		}
		if message.GetDone() {
			done[arm] = message
			continue
		}
		if message.GetStep() <= last[arm] || message.GetToken() == "" && message.GetTokenId() == 0 {
			t.Errorf("Generate: step %v after step %d", message, last[arm])
		}
		last[arm] = message.GetStep()
		steps[arm]++
	}
	// The done message's step is the number of new tokens (greedy, no EOS stop: all 5). The
	// server may drop a step message when the arm finishes in the same event-loop turn (seen with
	// the Python client too), so the per-token messages are only bounded here, not counted.
	for _, arm := range []pb.Arm{pb.Arm_ARM_PERTURBED, pb.Arm_ARM_CONTROL} {
		if done[arm].GetStep() != 5 || steps[arm] == 0 || steps[arm] > 5 {
			t.Errorf("Generate %s: %d step messages, done %v", arm, steps[arm], done[arm])
		}
	}
	texts, err := c.GenerateTexts(ctx, request)
	if err != nil || texts[pb.Arm_ARM_PERTURBED] != done[pb.Arm_ARM_PERTURBED].GetText() ||
		texts[pb.Arm_ARM_CONTROL] != done[pb.Arm_ARM_CONTROL].GetText() {
		t.Errorf("GenerateTexts (greedy) = %q, %v; Generate gave %v", texts, err, done)
	}

	// Clean up explicitly (the deferred cleanups then find nothing left).
	if deleted, err := c.DeleteDictionary(ctx, id); err != nil || deleted.GetId() != id {
		t.Fatalf("DeleteDictionary: %v, %v", deleted, err)
	}
	if gone, err := c.UnregisterModel(ctx, ownModel); err != nil || gone.GetName() != ownModel {
		t.Fatalf("UnregisterModel: %v, %v", gone, err)
	}
	_, err = c.GetModel(ctx, ownModel)
	asError(t, err, codes.NotFound)
}

func TestErrorDetails(t *testing.T) {
	c, e := dial(t)
	ctx := context.Background()

	_, err := c.GetModel(ctx, "no-such-model")
	notFound := asError(t, err, codes.NotFound)
	if notFound.Message != "no model named 'no-such-model' is registered; ListModels shows the registered ones" ||
		notFound.Reason != "MODEL_NOT_FOUND" {
		t.Errorf("unknown model: %+v", notFound)
	}
	if !errors.Is(err, &chunkscope.Error{Code: codes.NotFound}) || errors.Is(err, &chunkscope.Error{Code: codes.Internal}) {
		t.Error("errors.Is does not match by code")
	}
	if !strings.Contains(err.Error(), "NotFound") || !strings.Contains(err.Error(), "no-such-model") {
		t.Errorf("Error() = %q", err.Error())
	}

	_, err = c.RegisterModel(ctx, &pb.RegisterModelRequest{Name: "Bad Name!", SourcePath: e["CHUNKSCOPE_TEST_MODEL_SOURCE"]})
	invalid := asError(t, err, codes.InvalidArgument)
	if len(invalid.FieldViolations) != 1 || invalid.FieldViolations[0].Field != "name" ||
		!strings.Contains(invalid.FieldViolations[0].Description, "[a-z0-9._-]") {
		t.Errorf("bad name: field violations %+v", invalid.FieldViolations)
	}

	// Errors of streams arrive while iterating, as *Error too.
	var streamErr error
	for _, err := range c.Generate(ctx, &pb.GenerateRequest{Model: &pb.ModelRef{Name: "no-such-model"},
		Prompt: chunkscope.TextInput("x"), Sampling: &pb.SamplingParams{MaxNewTokens: 1}}) {
		streamErr = err
	}
	if e := asError(t, streamErr, codes.NotFound); e.Reason != "MODEL_NOT_FOUND" {
		t.Errorf("Generate on an unknown model: %+v", e)
	}
	// A dictionary of another model is refused in a stream's config.
	var detectErr error
	for _, err := range c.StreamDetect(ctx, slices.Values([]*pb.StreamDetectRequest{
		chunkscope.StreamConfig(&pb.DetectionConfig{Model: &pb.ModelRef{Name: e["CHUNKSCOPE_TEST_MODEL"]},
			DictionaryIds: []string{"dict-000000000000"}}),
		chunkscope.StreamText("x", false),
	})) {
		detectErr = err
	}
	if detectErr == nil || chunkscope.Code(detectErr) == codes.OK {
		t.Errorf("StreamDetect with an unknown dictionary: %v", detectErr)
	}
	var ce *chunkscope.Error
	if !errors.As(detectErr, &ce) {
		t.Errorf("StreamDetect error %T is not a *chunkscope.Error", detectErr)
	}
}

func TestDeadlines(t *testing.T) {
	c, e := dial(t)
	long := &pb.GenerateRequest{Model: &pb.ModelRef{Name: e["CHUNKSCOPE_TEST_MODEL"]},
		Prompt: chunkscope.TextInput("The cat"), Sampling: &pb.SamplingParams{MaxNewTokens: 512}}

	// The caller's deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.GenerateTexts(ctx, long)
	asError(t, err, codes.DeadlineExceeded)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("a 50 ms deadline took %s to expire", elapsed)
	}

	// The client's default deadline, when the context has none.
	short, _ := dial(t, chunkscope.WithCallTimeout(pb.PerturbationService_Generate_FullMethodName, 50*time.Millisecond))
	_, err = short.GenerateTexts(context.Background(), long)
	asError(t, err, codes.DeadlineExceeded)
	// ... also through the raw stubs.
	stream, err := short.PerturbationService.Generate(context.Background(), long)
	if err == nil {
		for err == nil {
			_, err = stream.Recv()
		}
	}
	asError(t, err, codes.DeadlineExceeded)
	shortUnary, _ := dial(t, chunkscope.WithTimeout(time.Nanosecond))
	_, err = shortUnary.GetModel(context.Background(), e["CHUNKSCOPE_TEST_MODEL"])
	asError(t, err, codes.DeadlineExceeded)
}

func TestMessageSizeLimit(t *testing.T) {
	e := env(t)
	c, _ := dial(t, chunkscope.WithMaxMessageBytes(512))
	_, err := c.GetDictionaryWithPrototypes(context.Background(), e["CHUNKSCOPE_TEST_DICTIONARY"])
	asError(t, err, codes.ResourceExhausted)
}

func TestDialUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := chunkscope.Dial(ctx, "127.0.0.1:1")
	asError(t, err, codes.DeadlineExceeded)
}

func TestTLSOptions(t *testing.T) {
	if _, err := chunkscope.New("127.0.0.1:1", chunkscope.WithCA([]byte("not a certificate"))); err == nil {
		t.Error("WithCA accepted data without a certificate")
	}
	if _, err := chunkscope.New("127.0.0.1:1", chunkscope.WithClientCertificate([]byte("x"), []byte("y"))); err == nil {
		t.Error("WithClientCertificate accepted an invalid pair")
	}
	// A TLS client cannot talk to the plaintext fixture server.
	e := env(t)
	c, err := chunkscope.New(e["CHUNKSCOPE_TEST_ADDRESS"], chunkscope.WithTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.GetModel(ctx, e["CHUNKSCOPE_TEST_MODEL"])
	asError(t, err, codes.Unavailable)
}

// TestAuth checks that the token really travels: without it the server refuses, with a key of
// the monitor role it may detect but not register. Skipped (saying so) when auth is off.
func TestAuth(t *testing.T) {
	e := env(t)
	if e["CHUNKSCOPE_TEST_TOKEN"] == "" {
		t.Skip("the fixture server runs without API keys (CHUNKSCOPE_TEST_TOKEN is empty)")
	}
	ctx := context.Background()
	anonymous, err := chunkscope.New(e["CHUNKSCOPE_TEST_ADDRESS"])
	if err != nil {
		t.Fatal(err)
	}
	defer anonymous.Close()
	_, err = anonymous.GetModel(ctx, e["CHUNKSCOPE_TEST_MODEL"])
	if missing := asError(t, err, codes.Unauthenticated); missing.Reason != "API_KEY_MISSING" {
		t.Errorf("no token: %+v", missing)
	}
	wrong, err := chunkscope.New(e["CHUNKSCOPE_TEST_ADDRESS"], chunkscope.WithToken("cks_not_a_key"))
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	_, err = wrong.GetModel(ctx, e["CHUNKSCOPE_TEST_MODEL"])
	if invalid := asError(t, err, codes.Unauthenticated); invalid.Reason != "API_KEY_INVALID" {
		t.Errorf("wrong token: %+v", invalid)
	}
	if e["CHUNKSCOPE_TEST_MONITOR_TOKEN"] == "" {
		return
	}
	monitor, err := chunkscope.New(e["CHUNKSCOPE_TEST_ADDRESS"], chunkscope.WithToken(e["CHUNKSCOPE_TEST_MONITOR_TOKEN"]))
	if err != nil {
		t.Fatal(err)
	}
	defer monitor.Close()
	if _, err := monitor.DetectTexts(ctx, &pb.DetectionConfig{Model: &pb.ModelRef{Name: e["CHUNKSCOPE_TEST_MODEL"]},
		DictionaryIds: []string{e["CHUNKSCOPE_TEST_DICTIONARY"]}, SummaryOnly: true}, "the cat"); err != nil {
		t.Errorf("monitor key: Detect: %v", err)
	}
	_, err = monitor.RegisterModel(ctx, &pb.RegisterModelRequest{Name: "go-denied", SourcePath: e["CHUNKSCOPE_TEST_MODEL_SOURCE"]})
	if denied := asError(t, err, codes.PermissionDenied); denied.Reason != "ROLE_NOT_PERMITTED" {
		t.Errorf("monitor key: RegisterModel: %+v", denied)
	}
}
