package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The example against the client fixture's server: the same lines every client's example prints.
func TestExampleAgainstFixture(t *testing.T) {
	address := os.Getenv("CHUNKSCOPE_TEST_ADDRESS")
	if address == "" {
		t.Skip("CHUNKSCOPE_TEST_ADDRESS is not set: run clients/go/test.sh (it starts the fixture)")
	}
	model, dictionary := os.Getenv("CHUNKSCOPE_TEST_MODEL"), os.Getenv("CHUNKSCOPE_TEST_DICTIONARY")
	text := "On day 3 the cat slept near the window while the cake cooled."
	var out bytes.Buffer
	err := run(context.Background(), []string{
		"--address", address, "--token", os.Getenv("CHUNKSCOPE_TEST_TOKEN"), "--model", model,
		"--hook-point", os.Getenv("CHUNKSCOPE_TEST_HOOK_POINT"), "--text", text, "--prompt", "The cat",
	}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Logf("output:\n%s", out.String())
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) < 8 {
		t.Fatalf("too few lines:\n%s", out.String())
	}
	if lines[0] != "models:" || !slicesContain(lines, "  "+model+" READY llama 2 blocks") {
		t.Errorf("models section:\n%s", out.String())
	}
	expect := []string{
		"dictionary " + dictionary + " at blocks.1.resid_post: cat, cake",
		"detect: " + text,
		"  cat: fired 1 times, first at token 10",
		"  cake: fired 1 times, first at token 31",
		"generate with cat inhibited (project_out), greedy, 24 tokens:",
	}
	rest := lines[len(lines)-len(expect)-2:]
	for i, want := range expect {
		if rest[i] != want {
			t.Errorf("line %q, want %q", rest[i], want)
		}
	}
	if !regexp.MustCompile(`^  perturbed: The cat.+`).MatchString(rest[5]) ||
		!regexp.MustCompile(`^  control:   The cat.+`).MatchString(rest[6]) {
		t.Errorf("generate lines: %q", rest[5:])
	}
}

// With no dictionary at the hook point, the example says to run `make demo` and fails.
func TestExampleWithoutDictionary(t *testing.T) {
	address := os.Getenv("CHUNKSCOPE_TEST_ADDRESS")
	if address == "" {
		t.Skip("CHUNKSCOPE_TEST_ADDRESS is not set: run clients/go/test.sh (it starts the fixture)")
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"--address", address, "--token", os.Getenv("CHUNKSCOPE_TEST_TOKEN"),
		"--model", os.Getenv("CHUNKSCOPE_TEST_MODEL"), "--hook-point", "blocks.0.resid_post"}, &out)
	if err == nil || !strings.Contains(err.Error(), "make demo") {
		t.Errorf("error %v, want one that says to run make demo", err)
	}
}

func slicesContain(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}
