package chunkscope

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	pb "github.com/chunkscope/chunkscope/clients/go/chunkscopev1"
)

// IdempotentMethods are the RPCs retried when a replica answers Unavailable (it is down,
// restarting or draining): they only read server state or compute from their request, so
// running one twice changes nothing. The others change state (RegisterModel, UnregisterModel,
// ExtractDictionary, DeleteDictionary, ImportDictionary): a call that failed mid-way may already
// have taken effect, and a retry could register, store or delete twice. StreamDetect is a
// bidirectional stream whose replies depend on what was sent before; it is not retried either.
// Server streams (Generate, ExportDictionary, the analysis streams) are retried only until
// their first reply arrives, as gRPC does for every stream.
var IdempotentMethods = []string{
	pb.ModelService_GetModel_FullMethodName,
	pb.ModelService_ListModels_FullMethodName,
	pb.ModelService_ListHookPoints_FullMethodName,
	pb.DictionaryService_GetDictionary_FullMethodName,
	pb.DictionaryService_ListDictionaries_FullMethodName,
	pb.DictionaryService_ExportDictionary_FullMethodName,
	pb.DetectionService_Detect_FullMethodName,
	pb.PerturbationService_Perturb_FullMethodName,
	pb.PerturbationService_Generate_FullMethodName,
	pb.AnalysisService_ConnectionCost_FullMethodName,
	pb.AnalysisService_CompareRepresentations_FullMethodName,
	pb.AnalysisService_LayerSimilarity_FullMethodName,
	pb.AnalysisService_OptimizeNeuronLayout_FullMethodName,
	grpc_health_v1.Health_Check_FullMethodName,
}

// ServiceConfig is the channel's gRPC service config: round_robin over every address of the
// target, and on the idempotent methods a retry policy of up to 4 attempts, waiting a random
// time up to 0.1 s, 0.2 s, 0.4 s (at most 1 s) between them, for the code Unavailable only.
var ServiceConfig = serviceConfig()

func serviceConfig() string {
	type name struct {
		Service string `json:"service"`
		Method  string `json:"method"`
	}
	names := make([]name, 0, len(IdempotentMethods))
	for _, full := range IdempotentMethods {
		service, method, _ := strings.Cut(strings.TrimPrefix(full, "/"), "/")
		names = append(names, name{service, method})
	}
	config := map[string]any{
		"loadBalancingConfig": []any{map[string]any{"round_robin": map[string]any{}}},
		"methodConfig": []any{map[string]any{
			"name": names,
			"retryPolicy": map[string]any{
				"maxAttempts":          4,
				"initialBackoff":       "0.1s",
				"maxBackoff":           "1s",
				"backoffMultiplier":    2,
				"retryableStatusCodes": []string{"UNAVAILABLE"},
			},
		}},
	}
	out, err := json.Marshal(config)
	if err != nil {
		panic(err)
	}
	return string(out)
}

// staticScheme names the resolver of a comma-separated address list (one per client).
const staticScheme = "chunkscope-static"

// targetOptions turns address into a gRPC target and the dial options it needs. One "host:port"
// or a target URI ("dns:///chunkscope.svc:50051", ...) is used as is; a comma-separated list of
// host:port becomes a static resolver's endpoints, with the first entry as the authority (the
// name TLS verifies, unless the TLS config sets ServerName). A hostname in a list is one endpoint:
// its connection is dialled by name (each of its addresses in turn).
func targetOptions(address string) (string, []grpc.DialOption, error) {
	if !strings.Contains(address, ",") || strings.Contains(address, "://") ||
		strings.HasPrefix(address, "ipv4:") || strings.HasPrefix(address, "ipv6:") {
		return address, nil, nil
	}
	var endpoints []resolver.Endpoint
	var first string
	for _, entry := range strings.Split(address, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(entry); err != nil {
			return "", nil, fmt.Errorf("chunkscope: %q in the address list is not host:port: %w", entry, err)
		}
		if first == "" {
			first = entry
		}
		endpoints = append(endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: entry}}})
	}
	if len(endpoints) == 0 {
		return "", nil, fmt.Errorf("chunkscope: no address in %q", address)
	}
	if len(endpoints) == 1 {
		return first, nil, nil
	}
	r := manual.NewBuilderWithScheme(staticScheme)
	r.InitialState(resolver.State{Endpoints: endpoints})
	return staticScheme + ":///" + first, []grpc.DialOption{grpc.WithResolvers(r), grpc.WithAuthority(first)}, nil
}
