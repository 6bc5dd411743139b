package chunkscope_test

// Replay of the shared vectors (tests/vectors/*.json, rules in tests/vectors/README.md): every
// file in the directory, each call made by service and method name through the generated
// descriptors (protoregistry), requests parsed and replies printed with protojson.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	chunkscope "github.com/chunkscope/chunkscope/clients/go"
)

const relTolerance, absTolerance = 1e-5, 1e-9

// codeNames are the canonical gRPC status code names the vectors use.
var codeNames = map[codes.Code]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN",
	codes.InvalidArgument: "INVALID_ARGUMENT", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
	codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED",
	codes.OutOfRange: "OUT_OF_RANGE", codes.Unimplemented: "UNIMPLEMENTED", codes.Internal: "INTERNAL",
	codes.Unavailable: "UNAVAILABLE", codes.DataLoss: "DATA_LOSS", codes.Unauthenticated: "UNAUTHENTICATED",
}

type vector struct {
	Description  string            `json:"description"`
	Service      string            `json:"service"`
	Method       string            `json:"method"`
	Kind         string            `json:"kind"`
	Request      json.RawMessage   `json:"request"`
	Requests     []json.RawMessage `json:"requests"`
	IgnoreFields []string          `json:"ignore_fields"`
	Response     json.RawMessage   `json:"response"`
	Responses    json.RawMessage   `json:"responses"`
	Error        json.RawMessage   `json:"error"`
}

var placeholder = regexp.MustCompile(`\{\{([A-Z0-9_]+)\}\}`)

// substitute replaces {{NAME}} by env[NAME] in every string of a JSON document.
func substitute(t *testing.T, raw json.RawMessage, env map[string]string) any {
	t.Helper()
	value := decode(t, raw)
	var walk func(any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case string:
			return placeholder.ReplaceAllStringFunc(v, func(m string) string {
				name := placeholder.FindStringSubmatch(m)[1]
				value, ok := env[name]
				if !ok {
					t.Fatalf("vector uses {{%s}}, which the fixture does not set", name)
				}
				return value
			})
		case []any:
			for i := range v {
				v[i] = walk(v[i])
			}
		case map[string]any:
			for k := range v {
				v[k] = walk(v[k])
			}
		}
		return v
	}
	return walk(value)
}

// decode parses JSON keeping numbers exact (json.Number).
func decode(t *testing.T, raw []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("bad JSON %s: %v", raw, err)
	}
	return v
}

// strip drops the keys in ignore at any depth.
func strip(v any, ignore map[string]bool) any {
	switch v := v.(type) {
	case []any:
		for i := range v {
			v[i] = strip(v[i], ignore)
		}
	case map[string]any:
		for k := range v {
			if ignore[k] {
				delete(v, k)
			} else {
				v[k] = strip(v[k], ignore)
			}
		}
	}
	return v
}

// mismatch says where actual differs from expected ("" when they agree), with the vectors'
// tolerance for numbers.
func mismatch(expected, actual any, path string) string {
	switch e := expected.(type) {
	case json.Number:
		a, ok := actual.(json.Number)
		if !ok {
			return fmt.Sprintf("%s: expected %v, got %#v", path, e, actual)
		}
		ef, err1 := e.Float64()
		af, err2 := a.Float64()
		if err1 != nil || err2 != nil {
			return fmt.Sprintf("%s: bad numbers %v, %v", path, e, a)
		}
		if math.Abs(ef-af) <= max(relTolerance*max(math.Abs(ef), math.Abs(af)), absTolerance) {
			return ""
		}
		return fmt.Sprintf("%s: expected %v, got %v", path, e, a)
	case map[string]any:
		a, ok := actual.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: expected an object, got %#v", path, actual)
		}
		ek, ak := keys(e), keys(a)
		if !slices.Equal(ek, ak) {
			return fmt.Sprintf("%s: keys differ: expected %v, got %v", path, ek, ak)
		}
		for _, k := range ek {
			if m := mismatch(e[k], a[k], path+"."+k); m != "" {
				return m
			}
		}
		return ""
	case []any:
		a, ok := actual.([]any)
		if !ok {
			return fmt.Sprintf("%s: expected a list, got %#v", path, actual)
		}
		if len(e) != len(a) {
			return fmt.Sprintf("%s: expected %d items, got %d", path, len(e), len(a))
		}
		for i := range e {
			if m := mismatch(e[i], a[i], fmt.Sprintf("%s[%d]", path, i)); m != "" {
				return m
			}
		}
		return ""
	default: // strings, booleans, null: exactly
		if expected != actual {
			return fmt.Sprintf("%s: expected %#v, got %#v", path, expected, actual)
		}
		return ""
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// replay makes the vector's call through the generated descriptors and returns the outcome in
// the vector's form: {"response": ...}, {"responses": [...]} or {"error": {...}}.
func replay(t *testing.T, c *chunkscope.Client, v vector, env map[string]string) map[string]any {
	t.Helper()
	desc, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(v.Service))
	if err != nil {
		t.Fatalf("service %s is not in the generated code: %v", v.Service, err)
	}
	service, ok := desc.(protoreflect.ServiceDescriptor)
	if !ok {
		t.Fatalf("%s is not a service", v.Service)
	}
	method := service.Methods().ByName(protoreflect.Name(v.Method))
	if method == nil {
		t.Fatalf("%s has no method %s", v.Service, v.Method)
	}
	kind := map[[2]bool]string{{false, false}: "unary", {false, true}: "server_stream",
		{true, true}: "bidi_stream", {true, false}: "client_stream"}[[2]bool{method.IsStreamingClient(), method.IsStreamingServer()}]
	if kind != v.Kind {
		t.Fatalf("vector kind %q, but %s.%s is %s", v.Kind, v.Service, v.Method, kind)
	}
	inputType, err := protoregistry.GlobalTypes.FindMessageByName(method.Input().FullName())
	if err != nil {
		t.Fatal(err)
	}
	outputType, err := protoregistry.GlobalTypes.FindMessageByName(method.Output().FullName())
	if err != nil {
		t.Fatal(err)
	}
	parse := func(raw json.RawMessage) proto.Message {
		body, err := json.Marshal(substitute(t, raw, env))
		if err != nil {
			t.Fatal(err)
		}
		msg := inputType.New().Interface()
		if err := protojson.Unmarshal(body, msg); err != nil {
			t.Fatalf("request %s is not a %s: %v", body, method.Input().FullName(), err)
		}
		return msg
	}
	ignore := map[string]bool{}
	for _, f := range v.IgnoreFields {
		ignore[f] = true
	}
	render := func(reply proto.Message) any {
		body, err := protojson.Marshal(reply)
		if err != nil {
			t.Fatal(err)
		}
		return strip(decode(t, body), ignore)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	path := fmt.Sprintf("/%s/%s", v.Service, v.Method)
	var requests []proto.Message
	if kind == "unary" || kind == "server_stream" {
		requests = []proto.Message{parse(v.Request)}
	} else {
		for _, r := range v.Requests {
			requests = append(requests, parse(r))
		}
	}

	var replies []any
	err = func() error {
		if kind == "unary" {
			reply := outputType.New().Interface()
			if err := c.Conn().Invoke(ctx, path, requests[0], reply); err != nil {
				return err
			}
			replies = append(replies, render(reply))
			return nil
		}
		stream, err := c.Conn().NewStream(ctx, &grpc.StreamDesc{
			ServerStreams: method.IsStreamingServer(), ClientStreams: method.IsStreamingClient()}, path)
		if err != nil {
			return err
		}
		for _, r := range requests {
			if err := stream.SendMsg(r); err != nil {
				if errors.Is(err, io.EOF) {
					break // the server ended the call; RecvMsg has its status
				}
				return err
			}
		}
		if err := stream.CloseSend(); err != nil {
			return err
		}
		for {
			reply := outputType.New().Interface()
			if err := stream.RecvMsg(reply); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return err
			}
			replies = append(replies, render(reply))
		}
	}()
	if err != nil {
		var e *chunkscope.Error
		if !errors.As(err, &e) {
			t.Fatalf("call failed without a status: %T %v", err, err)
		}
		outcome := map[string]any{"code": codeNames[e.Code], "message": e.Message}
		if e.Reason != "" {
			outcome["reason"] = e.Reason
		}
		if len(e.FieldViolations) > 0 {
			violations := []any{}
			for _, fv := range e.FieldViolations {
				violations = append(violations, map[string]any{"field": fv.Field, "description": fv.Description})
			}
			outcome["field_violations"] = violations
		}
		return map[string]any{"error": outcome}
	}
	if kind == "unary" {
		return map[string]any{"response": replies[0]}
	}
	if replies == nil {
		replies = []any{}
	}
	return map[string]any{"responses": replies}
}

// check compares a replayed outcome with the vector's expectation ("" when they agree).
func check(t *testing.T, v vector, outcome map[string]any, env map[string]string) string {
	t.Helper()
	for _, expected := range []struct {
		key string
		raw json.RawMessage
	}{{"response", v.Response}, {"responses", v.Responses}, {"error", v.Error}} {
		if expected.raw == nil {
			continue
		}
		actual, ok := outcome[expected.key]
		if !ok {
			got, _ := json.Marshal(outcome)
			return fmt.Sprintf("expected %s, got %.400s", expected.key, got)
		}
		// Print the actual outcome to JSON and back so both sides have the same Go types.
		body, err := json.Marshal(actual)
		if err != nil {
			t.Fatal(err)
		}
		return mismatch(substitute(t, expected.raw, env), decode(t, body), expected.key)
	}
	return "vector has no expected outcome"
}

func TestVectors(t *testing.T) {
	c, e := dial(t)
	dir := e["CHUNKSCOPE_TEST_VECTORS"]
	if dir == "" {
		dir = filepath.Join("..", "..", "tests", "vectors")
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no vectors in %s", dir)
	}
	sort.Strings(files)
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var v vector
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if m := check(t, v, replay(t, c, v, e), e); m != "" {
				t.Errorf("%s (%s): %s", name, v.Description, m)
			}
		})
	}
}

// The comparison itself must be strict where the rules say so (a replay that accepted anything
// would pass against any server).
func TestMismatchRules(t *testing.T) {
	j := func(s string) any { return decode(t, []byte(s)) }
	cases := []struct {
		expected, actual string
		agree            bool
	}{
		{`{"a": 1.0}`, `{"a": 1.000001}`, true},
		{`{"a": 1.0}`, `{"a": 1.001}`, false},
		{`{"a": 0}`, `{"a": 1e-10}`, true},
		{`{"a": 0}`, `{"a": 1e-8}`, false},
		{`{"a": "5"}`, `{"a": 5}`, false},
		{`{"a": true}`, `{"a": 1}`, false},
		{`{"a": [1, 2]}`, `{"a": [1]}`, false},
		{`{"a": 1}`, `{"a": 1, "b": 2}`, false},
		{`{"a": {"b": "x"}}`, `{"a": {"b": "x"}}`, true},
		{`{"a": {"b": "x"}}`, `{"a": {"b": "y"}}`, false},
	}
	for _, tc := range cases {
		if got := mismatch(j(tc.expected), j(tc.actual), "$") == ""; got != tc.agree {
			t.Errorf("mismatch(%s, %s): agree=%v, want %v", tc.expected, tc.actual, got, tc.agree)
		}
	}
	stripped, _ := json.Marshal(strip(j(`{"a": {"forwardNs": "1", "m": {"forwardNs": 2, "k": 3}}, "forwardNs": 1}`),
		map[string]bool{"forwardNs": true}))
	if string(stripped) != `{"a":{"m":{"k":3}}}` {
		t.Errorf("strip: %s", stripped)
	}
}
