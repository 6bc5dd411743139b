import { createHash } from "node:crypto";
import type { SecureClientSessionOptions } from "node:http2";

import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  createClient,
  type CallOptions as ConnectCallOptions,
  type Client,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import type { HookPoint, ModelRef, ModelRefSchema } from "./gen/chunkscope/v1/common_pb.js";
import {
  DetectionService,
  type DetectRequestSchema,
  type DetectResponse,
  type StreamDetectRequestSchema,
  type StreamDetectResponse,
} from "./gen/chunkscope/v1/detection_pb.js";
import {
  DictionaryService,
  type Dictionary,
  type ExportDictionaryResponse,
  type ExtractDictionaryRequestSchema,
  type ExtractDictionaryResponse,
  type ExtractionProgress,
  type ExtractionResult,
} from "./gen/chunkscope/v1/dictionaries_pb.js";
import {
  ModelService,
  type Model,
  type RegisterModelRequestSchema,
} from "./gen/chunkscope/v1/models_pb.js";
import {
  PerturbationService,
  type GenerateRequestSchema,
  type GenerateResponse,
  type PerturbRequestSchema,
  type PerturbResponse,
} from "./gen/chunkscope/v1/perturbation_pb.js";
import {
  AnalysisService,
  type AnalysisProgress,
  type CompareRepresentationsRequestSchema,
  type CompareRepresentationsResponse,
  type CompareRepresentationsResult,
  type ConnectionCostRequestSchema,
  type ConnectionCostResponse,
  type LayerSimilarityRequestSchema,
  type LayerSimilarityResponse,
  type LayerSimilarityResult,
  type OptimizeNeuronLayoutRequestSchema,
  type OptimizeNeuronLayoutResponse,
} from "./gen/chunkscope/v1/analysis_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "./gen/grpc/health/v1/health_pb.js";
import { ChunkscopeError, Code } from "./errors.js";
import { BalancedTransport, parseTarget } from "./balance.js";

/** The server's default `--max-message-bytes`; gRPC's usual 4 MiB breaks on large exports. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Deadline of ordinary calls unless `timeoutMs` says otherwise. */
export const DEFAULT_TIMEOUT_MS = 30_000;
/** Floors for the long calls' deadlines (as the Python client): raised, never lowered. */
export const LONG_TIMEOUTS_MS = {
  registerModelWait: 300_000,
  extractDictionary: 3_600_000,
  streamDetect: 3_600_000,
  generate: 600_000,
  analysis: 3_600_000,
} as const;

const ARCHIVE_PIECE_BYTES = 1 << 20;

type PEM = string | Uint8Array;

/** TLS settings. Without `rootCerts`, Node's bundled trust store (Mozilla's roots) is used. */
export interface TlsOptions {
  /** PEM of the CA(s) that signed the server's certificate. */
  rootCerts?: PEM;
  /** PEM client certificate chain, for mutual TLS (with `privateKey`). */
  certChain?: PEM;
  /** PEM private key of `certChain`. */
  privateKey?: PEM;
  /** Name to verify the server's certificate against, when it differs from the address's host. */
  serverName?: string;
}

export interface ClientOptions {
  /**
   * "host:port" of the server (a full "http://" or "https://" URL is accepted too); several
   * replicas as a comma-separated list of them, or "dns:///name:port" for every address of a name.
   * Calls go round-robin over the addresses; the idempotent RPCs are retried on Unavailable
   * (IDEMPOTENT_METHODS, RETRY_POLICY).
   */
  address: string;
  /** Bearer token, sent as `authorization: Bearer <token>` on every call when non-empty. */
  token?: string;
  /** TLS: `false` (default) for plaintext, `true` for TLS with Node's trust store, or options. */
  tls?: boolean | TlsOptions;
  /** Default deadline of every call in ms (default 30 s); long calls get larger floors. */
  timeoutMs?: number;
  /** Largest reply message accepted, in bytes (default 64 MiB, the server's default). */
  maxReceiveMessageBytes?: number;
  /** Largest request message sent, in bytes (default 64 MiB). */
  maxSendMessageBytes?: number;
  /** Extra Connect interceptors, run after the one that adds the bearer token. */
  interceptors?: Interceptor[];
}

/** Per-call options: a deadline overriding the default, cancellation, extra headers. */
export interface CallOptions {
  /** Deadline of this call in ms. */
  timeoutMs?: number;
  /** Cancels the call when aborted (the call fails with CANCELLED). */
  signal?: AbortSignal;
  /** Extra request headers (gRPC metadata). */
  headers?: ConnectCallOptions["headers"];
}

export interface ExtractOptions extends CallOptions {
  /** Called with every progress message before the result arrives. */
  onProgress?: (progress: ExtractionProgress) => void;
}

export interface AnalysisOptions extends CallOptions {
  /** Called with every progress message before the result arrives. */
  onProgress?: (progress: AnalysisProgress) => void;
}

export interface ListOptions extends CallOptions {
  /** Items per page fetched (0: the server's default of 50). Iteration fetches every page. */
  pageSize?: number;
}

/** The generated Connect clients, for anything the wrapper does not cover. */
export interface RawClients {
  models: Client<typeof ModelService>;
  dictionaries: Client<typeof DictionaryService>;
  detection: Client<typeof DetectionService>;
  perturbation: Client<typeof PerturbationService>;
  analysis: Client<typeof AnalysisService>;
  health: Client<typeof Health>;
}

type ModelSpec = string | MessageInitShape<typeof ModelRefSchema>;
type CallOpts = Pick<ConnectCallOptions, "timeoutMs" | "signal" | "headers">;
type OneOfStream<P, R> = {
  event:
    | { case: "progress"; value: P }
    | { case: "result"; value: R }
    | { case: undefined; value?: undefined };
};

function toBuffer(pem: PEM | undefined): Buffer | undefined {
  if (pem === undefined) return undefined;
  return typeof pem === "string"
    ? Buffer.from(pem)
    : Buffer.from(pem.buffer, pem.byteOffset, pem.byteLength);
}

async function* fromSync<T>(items: Iterable<T> | AsyncIterable<T>): AsyncIterable<T> {
  yield* items;
}

function sha256(data: Uint8Array): string {
  return "sha256:" + createHash("sha256").update(data).digest("hex");
}

function concat(pieces: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}

/**
 * A connection to one chunkscope server over gRPC (HTTP/2). Every call has a deadline; failures
 * throw {@link ChunkscopeError}; streams are async iterables.
 *
 * ```ts
 * const client = new ChunkscopeClient({ address: "127.0.0.1:50051" });
 * for await (const model of client.listModels()) console.log(model.name);
 * client.close();
 * ```
 */
export class ChunkscopeClient {
  /** Default deadline in ms. */
  readonly timeoutMs: number;
  /**
   * The transport (real gRPC over HTTP/2, balanced and retrying over the addresses), e.g. for
   * `createClient` on other services.
   */
  readonly transport: Transport;
  /** The generated Connect clients. Their errors are ConnectErrors; see ChunkscopeError.from. */
  readonly raw: RawClients;
  private readonly balanced: BalancedTransport;

  constructor(options: ClientOptions) {
    const tls = options.tls ?? false;
    const tlsOptions: TlsOptions = typeof tls === "object" ? tls : {};
    const nodeOptions: SecureClientSessionOptions = {};
    if (tls !== false) {
      Object.assign(
        nodeOptions,
        tlsOptions.rootCerts !== undefined && { ca: toBuffer(tlsOptions.rootCerts) },
        tlsOptions.certChain !== undefined && { cert: toBuffer(tlsOptions.certChain) },
        tlsOptions.privateKey !== undefined && { key: toBuffer(tlsOptions.privateKey) },
        tlsOptions.serverName !== undefined && { servername: tlsOptions.serverName },
      );
    }
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const token = options.token ?? "";
    const auth: Interceptor = (next) => (req) => {
      if (token) req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    };
    // One HTTP/2 connection and Connect transport per address; BalancedTransport spreads calls.
    const connect = (baseUrl: string, servername?: string) => {
      const sessionOptions: SecureClientSessionOptions = { ...nodeOptions };
      if (tls !== false && servername !== undefined && tlsOptions.serverName === undefined) {
        sessionOptions.servername = servername; // dns target: verify the name, not the IP
      }
      const session = new Http2SessionManager(baseUrl, {}, sessionOptions);
      const transport = createGrpcTransport({
        baseUrl,
        sessionManager: session,
        nodeOptions: sessionOptions,
        interceptors: [auth, ...(options.interceptors ?? [])],
        readMaxBytes: options.maxReceiveMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
        writeMaxBytes: options.maxSendMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
        defaultTimeoutMs: this.timeoutMs,
      });
      return { transport, close: () => session.abort() };
    };
    this.balanced = new BalancedTransport(
      parseTarget(options.address),
      connect,
      tls === false ? "http" : "https",
      this.timeoutMs,
    );
    this.transport = this.balanced;
    this.raw = {
      models: createClient(ModelService, this.transport),
      dictionaries: createClient(DictionaryService, this.transport),
      detection: createClient(DetectionService, this.transport),
      perturbation: createClient(PerturbationService, this.transport),
      analysis: createClient(AnalysisService, this.transport),
      health: createClient(Health, this.transport),
    };
  }

  /** Closes the HTTP/2 connections; calls still in flight fail. */
  close(): void {
    this.balanced.close();
  }

  private opts(options: CallOptions | undefined, floorMs = 0): CallOpts {
    return {
      timeoutMs: options?.timeoutMs ?? Math.max(this.timeoutMs, floorMs),
      signal: options?.signal,
      headers: options?.headers,
    };
  }

  /**
   * A streaming call as an async iterable that starts on first iteration, turns failures into
   * ChunkscopeErrors and, when the consumer stops early (`break`, `return`, a throw in the loop),
   * cancels the call: Connect's own iterables omit `return()`, which would leave the server
   * working and the deadline timer holding the process open.
   */
  private stream<T>(
    start: (options: CallOpts) => AsyncIterable<T>,
    options: CallOptions | undefined,
    floorMs = 0,
  ): AsyncIterable<T> {
    const callOptions = this.opts(options, floorMs);
    return (async function* () {
      const controller = new AbortController();
      const outer = callOptions.signal;
      const forward = () => controller.abort(outer?.reason);
      if (outer?.aborted) forward();
      outer?.addEventListener("abort", forward, { once: true });
      const replies = start({ ...callOptions, signal: controller.signal })[Symbol.asyncIterator]();
      let settled = false;
      try {
        for (;;) {
          const next = await replies.next();
          if (next.done) break;
          yield next.value;
        }
        settled = true;
      } catch (error) {
        settled = true;
        throw ChunkscopeError.from(error);
      } finally {
        outer?.removeEventListener("abort", forward);
        if (!settled) {
          // Cancel, then read once more so that Connect sees the cancellation and clears its
          // deadline timer (it only does so while a read is in progress).
          controller.abort();
          await replies.next().catch(() => undefined);
        }
      }
    })();
  }

  private async unary<T>(call: Promise<T>): Promise<T> {
    try {
      return await call;
    } catch (error) {
      throw ChunkscopeError.from(error);
    }
  }

  /** Runs a progress-then-result stream to its end; returns the result. */
  private async untilResult<P, R>(
    stream: AsyncIterable<OneOfStream<P, R>>,
    onProgress?: (progress: P) => void,
  ): Promise<R> {
    let result: R | undefined;
    for await (const message of stream) {
      if (message.event.case === "progress") {
        onProgress?.(message.event.value);
      } else if (message.event.case === "result") {
        result = message.event.value;
      }
    }
    if (result === undefined)
      throw new ChunkscopeError(Code.Unknown, "the stream ended without a result");
    return result;
  }

  // ----- health -------------------------------------------------------------------------------

  /** Serving status ("SERVING", "NOT_SERVING", ...) of the server, or of one service by name. */
  async health(service = "", options?: CallOptions): Promise<string> {
    const reply = await this.unary(this.raw.health.check({ service }, this.opts(options)));
    return HealthCheckResponse_ServingStatus[reply.status] ?? String(reply.status);
  }

  // ----- ModelService -------------------------------------------------------------------------

  /**
   * Registers a model from a path under one of the server's model roots. With `wait: true` it
   * resolves once the model is READY (deadline at least 5 minutes).
   */
  async registerModel(
    request: MessageInitShape<typeof RegisterModelRequestSchema>,
    options?: CallOptions,
  ): Promise<Model> {
    const floor = request.wait ? LONG_TIMEOUTS_MS.registerModelWait : 0;
    const reply = await this.unary(
      this.raw.models.registerModel(request, this.opts(options, floor)),
    );
    return reply.model!;
  }

  async getModel(name: string, options?: CallOptions): Promise<Model> {
    return (await this.unary(this.raw.models.getModel({ name }, this.opts(options)))).model!;
  }

  /** Every registered model in name order, fetching pages as iteration goes. */
  async *listModels(options?: ListOptions): AsyncGenerator<Model, void, undefined> {
    let pageToken = "";
    do {
      const page = { pageSize: options?.pageSize ?? 0, pageToken };
      const reply = await this.unary(this.raw.models.listModels({ page }, this.opts(options)));
      yield* reply.models;
      pageToken = reply.page?.nextPageToken ?? "";
    } while (pageToken);
  }

  /** Unloads a model and forgets it; resolves to the model as it was. */
  async unregisterModel(name: string, options?: CallOptions): Promise<Model> {
    return (await this.unary(this.raw.models.unregisterModel({ name }, this.opts(options)))).model!;
  }

  /** Hook points of a READY model, in forward order. */
  async listHookPoints(model: ModelSpec, options?: CallOptions): Promise<HookPoint[]> {
    const ref = typeof model === "string" ? { name: model } : model;
    const reply = await this.unary(
      this.raw.models.listHookPoints({ model: ref }, this.opts(options)),
    );
    return reply.hookPoints;
  }

  // ----- DictionaryService --------------------------------------------------------------------

  /** The raw ExtractDictionary stream: progress messages, then the result (deadline >= 1 h). */
  extractDictionaryStream(
    request: MessageInitShape<typeof ExtractDictionaryRequestSchema>,
    options?: CallOptions,
  ): AsyncIterable<ExtractDictionaryResponse> {
    const call = (opts: CallOpts) => this.raw.dictionaries.extractDictionary(request, opts);
    return this.stream(call, options, LONG_TIMEOUTS_MS.extractDictionary);
  }

  /** Runs an extraction to its end; resolves to the stored dictionaries (one per hook point). */
  async extractDictionary(
    request: MessageInitShape<typeof ExtractDictionaryRequestSchema>,
    options?: ExtractOptions,
  ): Promise<Dictionary[]> {
    const stream = this.extractDictionaryStream(request, options);
    return (
      await this.untilResult<ExtractionProgress, ExtractionResult>(stream, options?.onProgress)
    ).dictionaries;
  }

  /** One dictionary with its entries (prototype tensors only with `includePrototypes`). */
  async getDictionary(
    id: string,
    options?: CallOptions & { includePrototypes?: boolean },
  ): Promise<Dictionary> {
    const request = { id, includePrototypes: options?.includePrototypes ?? false };
    const reply = await this.unary(
      this.raw.dictionaries.getDictionary(request, this.opts(options)),
    );
    return reply.dictionary!;
  }

  /** Stored dictionaries, newest first, optionally of one model; fetches pages as needed. */
  async *listDictionaries(
    options?: ListOptions & { model?: string },
  ): AsyncGenerator<Dictionary, void, undefined> {
    let pageToken = "";
    do {
      const request = {
        model: options?.model ?? "",
        page: { pageSize: options?.pageSize ?? 0, pageToken },
      };
      const reply = await this.unary(
        this.raw.dictionaries.listDictionaries(request, this.opts(options)),
      );
      yield* reply.dictionaries;
      pageToken = reply.page?.nextPageToken ?? "";
    } while (pageToken);
  }

  /** Deletes a stored dictionary; resolves to it as it was (without entries). */
  async deleteDictionary(id: string, options?: CallOptions): Promise<Dictionary> {
    return (await this.unary(this.raw.dictionaries.deleteDictionary({ id }, this.opts(options))))
      .dictionary!;
  }

  /**
   * The archive of a dictionary as a stream of byte pieces (e.g. for
   * `pipeline(Readable.from(pieces), createWriteStream(path))`). After the last piece, the whole
   * is checked against the server's sha256 and size; a mismatch throws DATA_LOSS.
   */
  async *exportDictionaryPieces(
    id: string,
    options?: CallOptions,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    const hash = createHash("sha256");
    let expected = "";
    let total = 0n;
    let seen = 0n;
    const stream: AsyncIterable<ExportDictionaryResponse> = this.stream(
      (opts) => this.raw.dictionaries.exportDictionary({ id }, opts),
      options,
    );
    for await (const piece of stream) {
      expected ||= piece.sha256;
      total = total || piece.totalBytes;
      seen += BigInt(piece.data.length);
      hash.update(piece.data);
      yield piece.data;
    }
    const actual = "sha256:" + hash.digest("hex");
    if (actual !== expected || seen !== total) {
      throw new ChunkscopeError(
        Code.DataLoss,
        `exported archive failed its check: ${seen} of ${total} bytes, ${actual} != ${expected}`,
      );
    }
  }

  /** The dictionary as a portable archive (verified against the server's sha256). */
  async exportDictionary(id: string, options?: CallOptions): Promise<Uint8Array> {
    const pieces: Uint8Array[] = [];
    for await (const piece of this.exportDictionaryPieces(id, options)) pieces.push(piece);
    return concat(pieces);
  }

  /**
   * Stores a dictionary from an archive made by exportDictionary. A whole archive is sent in
   * 1 MiB pieces with its sha256 (checked by the server); a stream of pieces is sent as it comes.
   */
  async importDictionary(
    archive: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
    options?: CallOptions,
  ): Promise<Dictionary> {
    let requests: AsyncIterable<{ data: Uint8Array; sha256?: string }>;
    if (archive instanceof Uint8Array) {
      const digest = sha256(archive);
      requests = fromSync(
        (function* () {
          for (let at = 0; at < Math.max(archive.length, 1); at += ARCHIVE_PIECE_BYTES) {
            const data = archive.subarray(at, at + ARCHIVE_PIECE_BYTES);
            yield at === 0 ? { data, sha256: digest } : { data };
          }
        })(),
      );
    } else {
      requests = (async function* () {
        for await (const data of archive) yield { data };
      })();
    }
    const reply = await this.unary(
      this.raw.dictionaries.importDictionary(requests, this.opts(options)),
    );
    return reply.dictionary!;
  }

  // ----- DetectionService ---------------------------------------------------------------------

  /** Chunks active per token for a batch of inputs. */
  async detect(
    request: MessageInitShape<typeof DetectRequestSchema>,
    options?: CallOptions,
  ): Promise<DetectResponse> {
    return this.unary(this.raw.detection.detect(request, this.opts(options)));
  }

  /**
   * A monitoring stream: send the config first, then inputs (from an array, a generator or any
   * async iterable); one reply per input, in order. Deadline at least 1 h.
   */
  streamDetect(
    requests:
      | Iterable<MessageInitShape<typeof StreamDetectRequestSchema>>
      | AsyncIterable<MessageInitShape<typeof StreamDetectRequestSchema>>,
    options?: CallOptions,
  ): AsyncIterable<StreamDetectResponse> {
    const call = (opts: CallOpts) => this.raw.detection.streamDetect(fromSync(requests), opts);
    return this.stream(call, options, LONG_TIMEOUTS_MS.streamDetect);
  }

  // ----- PerturbationService ------------------------------------------------------------------

  /** One forward pass with interventions: next-token log-probabilities before and after. */
  async perturb(
    request: MessageInitShape<typeof PerturbRequestSchema>,
    options?: CallOptions,
  ): Promise<PerturbResponse> {
    return this.unary(this.raw.perturbation.perturb(request, this.opts(options)));
  }

  /**
   * Streamed generation: one message per token and arm, then a message with `done` and the
   * whole `text` per arm. Deadline at least 10 minutes.
   */
  generate(
    request: MessageInitShape<typeof GenerateRequestSchema>,
    options?: CallOptions,
  ): AsyncIterable<GenerateResponse> {
    const call = (opts: CallOpts) => this.raw.perturbation.generate(request, opts);
    return this.stream(call, options, LONG_TIMEOUTS_MS.generate);
  }

  // ----- AnalysisService ----------------------------------------------------------------------

  /** The raw CompareRepresentations stream: progress, then the result. */
  compareRepresentationsStream(
    request: MessageInitShape<typeof CompareRepresentationsRequestSchema>,
    options?: CallOptions,
  ): AsyncIterable<CompareRepresentationsResponse> {
    const call = (opts: CallOpts) => this.raw.analysis.compareRepresentations(request, opts);
    return this.stream(call, options, LONG_TIMEOUTS_MS.analysis);
  }

  /** Compares two sets of states with one or more measures; resolves to the result. */
  async compareRepresentations(
    request: MessageInitShape<typeof CompareRepresentationsRequestSchema>,
    options?: AnalysisOptions,
  ): Promise<CompareRepresentationsResult> {
    return this.untilResult<AnalysisProgress, CompareRepresentationsResult>(
      this.compareRepresentationsStream(request, options),
      options?.onProgress,
    );
  }

  /** The raw LayerSimilarity stream: progress, then the result. */
  layerSimilarityStream(
    request: MessageInitShape<typeof LayerSimilarityRequestSchema>,
    options?: CallOptions,
  ): AsyncIterable<LayerSimilarityResponse> {
    const call = (opts: CallOpts) => this.raw.analysis.layerSimilarity(request, opts);
    return this.stream(call, options, LONG_TIMEOUTS_MS.analysis);
  }

  /** The similarity matrix between layers and the groups of similar layers. */
  async layerSimilarity(
    request: MessageInitShape<typeof LayerSimilarityRequestSchema>,
    options?: AnalysisOptions,
  ): Promise<LayerSimilarityResult> {
    return this.untilResult<AnalysisProgress, LayerSimilarityResult>(
      this.layerSimilarityStream(request, options),
      options?.onProgress,
    );
  }

  /** The BIMT connection cost of a network under its current neuron placement. */
  async connectionCost(
    request: MessageInitShape<typeof ConnectionCostRequestSchema>,
    options?: CallOptions,
  ): Promise<ConnectionCostResponse> {
    return this.unary(this.raw.analysis.connectionCost(request, this.opts(options)));
  }

  /** Function-preserving neuron swaps that lower the connection cost. */
  async optimizeNeuronLayout(
    request: MessageInitShape<typeof OptimizeNeuronLayoutRequestSchema>,
    options?: CallOptions,
  ): Promise<OptimizeNeuronLayoutResponse> {
    return this.unary(
      this.raw.analysis.optimizeNeuronLayout(
        request,
        this.opts(options, LONG_TIMEOUTS_MS.analysis),
      ),
    );
  }
}

/** `new ChunkscopeClient(options)`. */
export function createChunkscopeClient(options: ClientOptions): ChunkscopeClient {
  return new ChunkscopeClient(options);
}

export type { ModelRef };
