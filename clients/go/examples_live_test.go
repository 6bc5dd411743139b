package chunkscope_test

import (
	"io"
	"os"
	"strings"
	"testing"
)

// TestExamplesAgainstFixture runs the examples that need a server (example_test.go: they have no
// Output comment, so go test only compiles them) against the client fixture's server, with
// $CHUNKSCOPE_ADDRESS and $CHUNKSCOPE_TOKEN set as a reader of the examples would set them, and
// checks the lines each prints. Skipped, like the other live tests, without the fixture.
func TestExamplesAgainstFixture(t *testing.T) {
	e := env(t)
	t.Setenv("CHUNKSCOPE_ADDRESS", e["CHUNKSCOPE_TEST_ADDRESS"])
	t.Setenv("CHUNKSCOPE_TOKEN", e["CHUNKSCOPE_TEST_TOKEN"])
	for _, c := range []struct {
		name string
		run  func()
		want []string // lines the output must contain
	}{
		{"Example", Example, []string{"health: SERVING", "cat: fired 1 times, first at token 10"}},
		{"ExampleClient_ListModels", ExampleClient_ListModels,
			[]string{e["CHUNKSCOPE_TEST_MODEL"] + " MODEL_STATE_READY llama"}},
		{"ExampleClient_GetModel_notFound", ExampleClient_GetModel_notFound,
			[]string{"NotFound MODEL_NOT_FOUND"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			lines := strings.Split(captureStdout(t, c.run), "\n")
			for _, want := range c.want {
				found := false
				for _, line := range lines {
					found = found || line == want
				}
				if !found {
					t.Errorf("%s printed %q, without the line %q", c.name, lines, want)
				}
			}
		})
	}
}

// captureStdout runs f with os.Stdout going to a pipe and returns what it wrote.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	defer func() { os.Stdout = saved }()
	f()
	os.Stdout = saved
	_ = w.Close()
	return <-done
}
