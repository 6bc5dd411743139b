// Several replicas behind one client. Connect balances nothing and retries nothing, so this is a
// Transport of its own: one Connect gRPC transport per address, picked round-robin, skipping
// addresses that recently failed with Unavailable, and retrying the idempotent RPCs on Unavailable
// with gRPC's retry policy (the other clients get the same from gRPC's service config).
import { lookup } from "node:dns/promises";

import type {
  DescMessage,
  DescMethodStreaming,
  DescMethodUnary,
  MessageInitShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  type StreamResponse,
  type Transport,
  type UnaryResponse,
} from "@connectrpc/connect";

/**
 * The RPCs retried when a replica answers Unavailable (it is down, restarting or draining): they
 * only read server state or compute from their request, so running one twice changes nothing.
 * The others change state (RegisterModel, UnregisterModel, ExtractDictionary, DeleteDictionary,
 * ImportDictionary): a call that failed mid-way may already have taken effect, and a retry could
 * register, store or delete twice. StreamDetect is a bidirectional stream whose replies depend on
 * what was sent before; it is not retried either. Server streams (Generate, ExportDictionary, the
 * analysis streams) are retried only until their first reply arrives, as gRPC does.
 */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set([
  "chunkscope.v1.ModelService/GetModel",
  "chunkscope.v1.ModelService/ListModels",
  "chunkscope.v1.ModelService/ListHookPoints",
  "chunkscope.v1.DictionaryService/GetDictionary",
  "chunkscope.v1.DictionaryService/ListDictionaries",
  "chunkscope.v1.DictionaryService/ExportDictionary",
  "chunkscope.v1.DetectionService/Detect",
  "chunkscope.v1.PerturbationService/Perturb",
  "chunkscope.v1.PerturbationService/Generate",
  "chunkscope.v1.AnalysisService/ConnectionCost",
  "chunkscope.v1.AnalysisService/CompareRepresentations",
  "chunkscope.v1.AnalysisService/LayerSimilarity",
  "chunkscope.v1.AnalysisService/OptimizeNeuronLayout",
  "grpc.health.v1.Health/Check",
]);

/**
 * gRPC's retry policy, as the other clients' service config has it: up to 4 attempts, waiting a
 * random time up to 0.1 s, 0.2 s, 0.4 s (at most 1 s) between them, on Unavailable only.
 */
export const RETRY_POLICY = {
  maxAttempts: 4,
  initialBackoffMs: 100,
  maxBackoffMs: 1000,
  backoffMultiplier: 2,
} as const;

/** The request headers a Transport takes (HeadersInit, a type of the DOM's and undici's). */
type Header = Parameters<Transport["unary"]>[3];

/** How long an address that failed with Unavailable is skipped: 1 s, doubling up to 30 s. */
const DOWN_MS = { first: 1000, max: 30_000 } as const;

/** One address's transport, and what closing it takes. */
export interface Connection {
  transport: Transport;
  close(): void;
}

/** Opens a connection to a base URL ("http://10.0.0.1:50051"); `servername` is for TLS. */
export type Connect = (baseUrl: string, servername?: string) => Connection;

/**
 * Where the replicas are. A comma-separated list of "host:port" (or URLs) is used as given (a
 * hostname is one address, connected by name); "dns:///name:port" is resolved to every address
 * of the name when the first call is made; anything else is one address.
 */
export function parseTarget(address: string): { urls: string[] } | { dns: string; port: string } {
  const dns = /^dns:(?:\/\/[^/]*\/)?([^/]+)$/.exec(address.trim());
  if (dns) {
    const hostPort = dns[1]!;
    const colon = hostPort.lastIndexOf(":");
    if (colon <= 0) throw new Error(`${address}: a dns target needs a port (dns:///name:port)`);
    return {
      dns: hostPort.slice(0, colon).replace(/^\[|\]$/g, ""),
      port: hostPort.slice(colon + 1),
    };
  }
  const entries = address
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  if (entries.length === 0) throw new Error(`no address in "${address}"`);
  return { urls: entries };
}

class Endpoint {
  private failures = 0;
  downUntil = 0;

  constructor(
    readonly name: string,
    readonly connection: Connection,
  ) {}

  failed(now: number): void {
    this.downUntil = now + Math.min(DOWN_MS.first * 2 ** this.failures, DOWN_MS.max);
    this.failures++;
  }

  succeeded(): void {
    this.failures = 0;
    this.downUntil = 0;
  }
}

function methodName(method: { parent: { typeName: string }; name: string }): string {
  return `${method.parent.typeName}/${method.name}`;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

async function* replay<T>(items: readonly T[]): AsyncIterable<T> {
  yield* items;
}

/** A Transport over several addresses: round-robin, failover, retries of idempotent RPCs. */
export class BalancedTransport implements Transport {
  private endpoints: Endpoint[] | undefined;
  private resolving: Promise<Endpoint[]> | undefined;
  private next = 0;
  private closed = false;

  /**
   * @param target from {@link parseTarget}
   * @param connect opens one address's connection
   * @param scheme "http" or "https", for the base URLs of bare host:port entries
   * @param defaultTimeoutMs the deadline of calls made without one (it spans every attempt)
   */
  constructor(
    private readonly target: ReturnType<typeof parseTarget>,
    private readonly connect: Connect,
    private readonly scheme: "http" | "https",
    private readonly defaultTimeoutMs: number,
  ) {
    if ("urls" in target) this.endpoints = target.urls.map((url) => this.open(url));
  }

  private open(entry: string, servername?: string): Endpoint {
    const url = /^https?:\/\//.test(entry) ? entry : `${this.scheme}://${entry}`;
    return new Endpoint(entry, this.connect(url, servername));
  }

  /** The endpoints, resolving a dns target on first use (again after a failed resolution). */
  private async all(): Promise<Endpoint[]> {
    if (this.endpoints) return this.endpoints;
    if (!("dns" in this.target)) throw new Error("unreachable");
    const { dns, port } = this.target;
    this.resolving ??= lookup(dns, { all: true }).then(
      (found) => {
        if (this.closed) throw new ConnectError("the client is closed", Code.Canceled);
        const hosts = [
          ...new Set(found.map((a) => (a.family === 6 ? `[${a.address}]` : a.address))),
        ];
        this.endpoints = hosts.map((host) => this.open(`${host}:${port}`, dns));
        return this.endpoints;
      },
      (error: unknown) => {
        this.resolving = undefined;
        throw new ConnectError(`resolving ${dns}: ${String(error)}`, Code.Unavailable);
      },
    );
    return this.resolving;
  }

  /** The next endpoint round-robin that is not marked down (any, when all are). */
  private async pick(): Promise<Endpoint> {
    const endpoints = await this.all();
    const now = Date.now();
    for (let i = 0; i < endpoints.length; i++) {
      const endpoint = endpoints[(this.next + i) % endpoints.length]!;
      if (endpoint.downUntil <= now) {
        this.next = (this.next + i + 1) % endpoints.length;
        return endpoint;
      }
    }
    const soonest = endpoints.reduce((a, b) => (b.downUntil < a.downUntil ? b : a));
    this.next = (endpoints.indexOf(soonest) + 1) % endpoints.length;
    return soonest;
  }

  /**
   * Runs `attempt` on picked endpoints until it succeeds, fails with another code, is not
   * retryable, runs out of attempts or of time; an Unavailable endpoint is skipped for a while.
   */
  private async run<R>(
    retryable: boolean,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    attempt: (endpoint: Endpoint, timeoutMs: number) => Promise<R>,
  ): Promise<R> {
    // As in Connect: no timeout given means the default, zero or less means none.
    const total = timeoutMs ?? this.defaultTimeoutMs;
    const deadline = total > 0 ? Date.now() + total : Infinity;
    let backoff: number = RETRY_POLICY.initialBackoffMs;
    for (let n = 1; ; n++) {
      const endpoint = await this.pick();
      try {
        const left = deadline === Infinity ? 0 : Math.max(1, deadline - Date.now());
        const result = await attempt(endpoint, left);
        endpoint.succeeded();
        return result;
      } catch (error) {
        const code = ConnectError.from(error).code;
        if (code !== Code.Unavailable) throw error;
        endpoint.failed(Date.now());
        if (!retryable || n >= RETRY_POLICY.maxAttempts || signal?.aborted) throw error;
        const wait = Math.random() * backoff;
        if (Date.now() + wait >= deadline) throw error;
        await sleep(wait, signal);
        if (signal?.aborted) throw error;
        backoff = Math.min(backoff * RETRY_POLICY.backoffMultiplier, RETRY_POLICY.maxBackoffMs);
      }
    }
  }

  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: Header,
    input: MessageInitShape<I>,
    contextValues?: ContextValues,
  ): Promise<UnaryResponse<I, O>> {
    const retryable = IDEMPOTENT_METHODS.has(methodName(method));
    return this.run(retryable, signal, timeoutMs, (endpoint, ms) =>
      endpoint.connection.transport.unary(method, signal, ms, header, input, contextValues),
    );
  }

  async stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodStreaming<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: Header,
    input: AsyncIterable<MessageInitShape<I>>,
    contextValues?: ContextValues,
  ): Promise<StreamResponse<I, O>> {
    const retryable =
      method.methodKind === "server_streaming" && IDEMPOTENT_METHODS.has(methodName(method));
    if (!retryable) {
      return this.run(false, signal, timeoutMs, (endpoint, ms) =>
        endpoint.connection.transport.stream(method, signal, ms, header, input, contextValues),
      );
    }
    // A server stream: its one request is kept so that it can be sent again, and an attempt
    // counts as failed only until its first reply (or its end) has arrived, as in gRPC.
    const requests: MessageInitShape<I>[] = [];
    for await (const request of input) requests.push(request);
    return this.run(true, signal, timeoutMs, async (endpoint, ms) => {
      const response = await endpoint.connection.transport.stream(
        method,
        signal,
        ms,
        header,
        replay(requests),
        contextValues,
      );
      const replies = response.message[Symbol.asyncIterator]();
      const first = await replies.next();
      async function* rest() {
        if (first.done) return;
        yield first.value;
        for (;;) {
          const next = await replies.next();
          if (next.done) return;
          yield next.value;
        }
      }
      return { ...response, message: rest() };
    });
  }

  /** Closes every address's connection. */
  close(): void {
    this.closed = true;
    for (const endpoint of this.endpoints ?? []) endpoint.connection.close();
  }
}
