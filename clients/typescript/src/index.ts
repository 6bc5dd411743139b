// @chunkscope/client: a thin, typed wrapper over the generated protobuf-es messages and Connect
// service descriptors (src/gen), speaking real gRPC over HTTP/2 through @connectrpc/connect-node.
export {
  ChunkscopeClient,
  createChunkscopeClient,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_TIMEOUT_MS,
  LONG_TIMEOUTS_MS,
  type AnalysisOptions,
  type CallOptions,
  type ClientOptions,
  type ExtractOptions,
  type ListOptions,
  type RawClients,
  type TlsOptions,
} from "./client.js";
export { ChunkscopeError, Code, codeName, type FieldViolation } from "./errors.js";
export { IDEMPOTENT_METHODS, RETRY_POLICY } from "./balance.js";
export { VERSION } from "./version.js";

// The generated messages, enums and services of chunkscope.v1 (and the health protocol).
export * from "./gen/chunkscope/v1/common_pb.js";
export * from "./gen/chunkscope/v1/models_pb.js";
export * from "./gen/chunkscope/v1/dictionaries_pb.js";
export * from "./gen/chunkscope/v1/detection_pb.js";
export * from "./gen/chunkscope/v1/perturbation_pb.js";
export * from "./gen/chunkscope/v1/analysis_pb.js";
export * as health from "./gen/grpc/health/v1/health_pb.js";
