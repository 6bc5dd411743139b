// Replays every tests/vectors/*.json against the live server with the rules of
// tests/vectors/README.md (the Python reference is tests/vector_replay.py). Generic: the service and
// method are looked up by name in a registry built from every generated file descriptor, requests
// are parsed and replies printed with protobuf-es's proto3 JSON, and calls go through Connect's
// dynamic client for that service, so a new vector or RPC needs no code here.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { after, describe, it } from "node:test";

import {
  createRegistry,
  fromJson,
  toJson,
  type DescFile,
  type DescMethod,
  type JsonValue,
  type Message,
} from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";

import { ChunkscopeError } from "../src/index.js";
import { connect, env } from "./support.js";

type Json = JsonValue;
interface Vector {
  description: string;
  service: string;
  method: string;
  kind: "unary" | "server_stream" | "bidi_stream";
  request?: Json;
  requests?: Json[];
  ignore_fields?: string[];
  response?: Json;
  responses?: Json[];
  error?: Json;
}

const REL_TOLERANCE = 1e-5;
const ABS_TOLERANCE = 1e-9;
const KINDS: Record<Vector["kind"], DescMethod["methodKind"]> = {
  unary: "unary",
  server_stream: "server_streaming",
  bidi_stream: "bidi_streaming",
};

/** Every generated file descriptor (src/gen/**\/*_pb.js), found on disk rather than listed. */
async function generatedFiles(): Promise<DescFile[]> {
  const root = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "gen");
  const files: DescFile[] = [];
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith("_pb.js")) continue;
    const module: Record<string, unknown> = await import(
      pathToFileURL(join(entry.parentPath, entry.name)).href
    );
    for (const value of Object.values(module)) {
      if (typeof value === "object" && value !== null && (value as DescFile).kind === "file") {
        files.push(value as DescFile);
      }
    }
  }
  return files;
}

/** `{{NAME}}` -> process.env.NAME in every string of a JSON value. */
function substitute(value: Json): Json {
  if (typeof value === "string") {
    return value.replace(/\{\{([A-Z0-9_]+)\}\}/g, (_, name: string) => {
      const found = process.env[name];
      if (found === undefined) throw new Error(`vector needs ${name}, which is not set`);
      return found;
    });
  }
  if (Array.isArray(value)) return value.map(substitute);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v as Json)]));
  }
  return value;
}

/** Drops the keys in `ignore` at any depth (map keys included). */
function strip(value: Json, ignore: Set<string>): Json {
  if (Array.isArray(value)) return value.map((v) => strip(v, ignore));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k]) => !ignore.has(k))
        .map(([k, v]) => [k, strip(v as Json, ignore)]),
    );
  }
  return value;
}

/** Where `actual` differs from `expected`, or undefined when they match (the README's rule 4). */
export function mismatch(expected: Json, actual: Json, path = "$"): string | undefined {
  const show = (v: Json) => JSON.stringify(v);
  if (typeof expected === "boolean" || typeof actual === "boolean") {
    return expected === actual
      ? undefined
      : `${path}: expected ${show(expected)}, got ${show(actual)}`;
  }
  if (typeof expected === "number" && typeof actual === "number") {
    const close =
      Math.abs(expected - actual) <=
      Math.max(REL_TOLERANCE * Math.max(Math.abs(expected), Math.abs(actual)), ABS_TOLERANCE);
    return close ? undefined : `${path}: expected ${expected}, got ${actual}`;
  }
  if (Array.isArray(expected) && Array.isArray(actual)) {
    if (expected.length !== actual.length) {
      return `${path}: expected ${expected.length} items, got ${actual.length}`;
    }
    for (let i = 0; i < expected.length; i++) {
      const found = mismatch(expected[i]!, actual[i]!, `${path}[${i}]`);
      if (found) return found;
    }
    return undefined;
  }
  const isObject = (v: Json) => v !== null && typeof v === "object" && !Array.isArray(v);
  if (isObject(expected) && isObject(actual)) {
    const e = expected as Record<string, Json>;
    const a = actual as Record<string, Json>;
    const ek = Object.keys(e).sort();
    const ak = Object.keys(a).sort();
    if (show(ek) !== show(ak)) return `${path}: keys differ: expected ${show(ek)}, got ${show(ak)}`;
    for (const key of ek) {
      const found = mismatch(e[key]!, a[key]!, `${path}.${key}`);
      if (found) return found;
    }
    return undefined;
  }
  return expected === actual
    ? undefined
    : `${path}: expected ${show(expected)}, got ${show(actual)}`;
}

const registry = createRegistry(...(await generatedFiles()));
const client = connect();

/** Makes the vector's call; the outcome in the vector's own form. */
async function replay(vector: Vector): Promise<Record<string, Json>> {
  const service = registry.getService(vector.service);
  assert.ok(service, `no service ${vector.service} in the generated code`);
  const method = service.methods.find((m) => m.name === vector.method);
  assert.ok(method, `no method ${vector.method} in ${vector.service}`);
  assert.equal(method.methodKind, KINDS[vector.kind], `${vector.method} is not ${vector.kind}`);
  const ignore = new Set(vector.ignore_fields ?? []);
  const parse = (body: Json | undefined) =>
    fromJson(method.input, substitute(body ?? {}), { registry });
  const render = (reply: Message) =>
    strip(toJson(method.output, reply as never, { registry }), ignore);
  // Connect's client for the service, called by the method's local name: no per-RPC code.
  const rpc = (createClient(service, client.transport) as unknown as Record<string, Function>)[
    method.localName
  ]!;
  const options = { timeoutMs: 120_000 };
  try {
    switch (vector.kind) {
      case "unary":
        return { response: render(await rpc(parse(vector.request), options)) };
      case "server_stream": {
        const replies: Json[] = [];
        for await (const reply of rpc(parse(vector.request), options)) replies.push(render(reply));
        return { responses: replies };
      }
      case "bidi_stream": {
        const requests = (vector.requests ?? []).map(parse);
        async function* send() {
          yield* requests;
        }
        const replies: Json[] = [];
        for await (const reply of rpc(send(), options)) replies.push(render(reply));
        return { responses: replies };
      }
    }
  } catch (raw) {
    const error = ChunkscopeError.from(raw);
    const outcome: Record<string, Json> = { code: error.codeName, message: error.message };
    if (error.reason) outcome.reason = error.reason;
    if (error.fieldViolations.length > 0) {
      outcome.field_violations = error.fieldViolations.map((v) => ({
        field: v.field,
        description: v.description,
      }));
    }
    return { error: outcome };
  }
}

describe("shared vectors", () => {
  after(() => client.close());
  const files = readdirSync(env.vectors)
    .filter((name) => name.endsWith(".json"))
    .sort();

  it("finds vectors to replay", () => {
    assert.ok(files.length > 0, `no vectors in ${env.vectors}`);
  });

  for (const file of files) {
    const vector = JSON.parse(readFileSync(join(env.vectors, file), "utf8")) as Vector;
    it(`${file}: ${vector.description}`, async () => {
      const outcome = await replay(vector);
      const key = (["response", "responses", "error"] as const).find((k) => k in vector);
      assert.ok(key, "the vector has no expected outcome");
      assert.ok(key in outcome, `expected ${key}, got ${JSON.stringify(outcome).slice(0, 400)}`);
      const found = mismatch(substitute(vector[key]!), outcome[key]!, key);
      assert.equal(found, undefined, found);
    });
  }
});

it("the vector comparison catches what it must", () => {
  assert.equal(mismatch({ a: [1, "x", true] }, { a: [1 + 1e-7, "x", true] }), undefined);
  assert.equal(mismatch({ a: 0 }, { a: 1e-10 }), undefined);
  assert.ok(mismatch({ a: 1 }, { a: 1.001 }));
  assert.ok(mismatch({ a: 1 }, { a: 1, b: 2 }));
  assert.ok(mismatch([1, 2], [1]));
  assert.ok(mismatch({ a: true }, { a: 1 }));
  assert.ok(mismatch({ a: "1" }, { a: 1 }));
  assert.deepEqual(strip({ a: 1, b: [{ a: 2, c: 3 }] }, new Set(["a"])), { b: [{ c: 3 }] });
});
