import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

export { Code };

/** One google.rpc.BadRequest field violation: which request field is wrong, and why. */
export interface FieldViolation {
  field: string;
  description: string;
}

/**
 * gRPC's status code names ("NOT_FOUND", "CANCELLED", ...), indexed by the numeric code. Connect's
 * `Code` enum uses the same numbers.
 */
const GRPC_CODE_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

/** An error and its causes, outermost first. */
function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  while (error instanceof Error && !chain.includes(error) && chain.length < 16) {
    chain.push(error);
    error = error.cause;
  }
  return chain;
}

/** Node's codes for a failed TLS handshake: ERR_TLS_*, ERR_SSL_* and OpenSSL's X509 verify codes. */
function isTlsFailure(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && /^ERR_(TLS|SSL)_|CERT|SIGNATURE|ISSUER/.test(code);
}

/** The gRPC name of a status code, e.g. `codeName(Code.NotFound) === "NOT_FOUND"`. */
export function codeName(code: Code): string {
  return GRPC_CODE_NAMES[code] ?? `CODE_${code}`;
}

/**
 * A failed call: the gRPC status code and message, plus the server's rich error details decoded
 * from the `grpc-status-details-bin` trailer (google.rpc.ErrorInfo and google.rpc.BadRequest).
 *
 * ```ts
 * try { await client.getModel("nope"); }
 * catch (e) { if (e instanceof ChunkscopeError && e.code === Code.NotFound) ... }
 * ```
 */
export class ChunkscopeError extends Error {
  override name = "ChunkscopeError";
  /** The status code (Connect's `Code` enum; the numbers are gRPC's). */
  readonly code: Code;
  /** google.rpc.ErrorInfo reason, e.g. "MODEL_NOT_FOUND"; "" when the server sent none. */
  readonly reason: string;
  /** google.rpc.ErrorInfo domain; "" when absent. */
  readonly domain: string;
  /** google.rpc.ErrorInfo metadata. */
  readonly metadata: Readonly<Record<string, string>>;
  /** google.rpc.BadRequest field violations, in the server's order. */
  readonly fieldViolations: readonly FieldViolation[];
  /** Response headers and trailers of the failed call. */
  readonly trailers: Headers;

  constructor(
    code: Code,
    message: string,
    details: {
      reason?: string;
      domain?: string;
      metadata?: Record<string, string>;
      fieldViolations?: FieldViolation[];
      trailers?: Headers;
      cause?: unknown;
    } = {},
  ) {
    super(message, { cause: details.cause });
    this.code = code;
    this.reason = details.reason ?? "";
    this.domain = details.domain ?? "";
    this.metadata = details.metadata ?? {};
    this.fieldViolations = details.fieldViolations ?? [];
    this.trailers = details.trailers ?? new Headers();
  }

  /** The gRPC name of `code`, e.g. "NOT_FOUND". */
  get codeName(): string {
    return codeName(this.code);
  }

  override toString(): string {
    return `${this.name}: ${this.codeName}: ${this.message}`;
  }

  /** Any error thrown by a call (ConnectError, abort, ...) as a ChunkscopeError. */
  static from(error: unknown): ChunkscopeError {
    if (error instanceof ChunkscopeError) {
      return error;
    }
    const connect = ConnectError.from(error);
    // A connection that could not be set up is UNAVAILABLE in gRPC (grpc-go, grpc-js and Python
    // agree); Connect reports failed TLS handshakes as INTERNAL.
    const code =
      connect.code === Code.Internal && causes(error).some(isTlsFailure)
        ? Code.Unavailable
        : connect.code;
    const [info] = connect.findDetails(ErrorInfoSchema);
    const fieldViolations = connect
      .findDetails(BadRequestSchema)
      .flatMap((bad) =>
        bad.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
      );
    return new ChunkscopeError(code, connect.rawMessage, {
      reason: info?.reason,
      domain: info?.domain,
      metadata: info ? { ...info.metadata } : undefined,
      fieldViolations,
      trailers: connect.metadata,
      cause: error,
    });
  }
}
