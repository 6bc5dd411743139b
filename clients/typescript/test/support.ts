// What every test file shares: the live fixture's environment (scripts/client_fixture.py) and a
// client connected to it. No mocks: every test talks to the real server.
import { ChunkscopeClient, ChunkscopeError, type ClientOptions } from "../src/index.js";
import assert from "node:assert/strict";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the suite under scripts/client_fixture.py`);
  return value;
}

export const env = {
  address: required("CHUNKSCOPE_TEST_ADDRESS"),
  token: process.env.CHUNKSCOPE_TEST_TOKEN ?? "",
  model: required("CHUNKSCOPE_TEST_MODEL"),
  modelSource: required("CHUNKSCOPE_TEST_MODEL_SOURCE"),
  contentHash: required("CHUNKSCOPE_TEST_CONTENT_HASH"),
  dictionary: required("CHUNKSCOPE_TEST_DICTIONARY"),
  hookPoint: required("CHUNKSCOPE_TEST_HOOK_POINT"),
  vectors: required("CHUNKSCOPE_TEST_VECTORS"),
};

export function connect(options: Partial<ClientOptions> = {}): ChunkscopeClient {
  return new ChunkscopeClient({
    address: env.address,
    token: env.token,
    timeoutMs: 120_000,
    ...options,
  });
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** Awaits `work` and returns the ChunkscopeError it must fail with. */
export async function failure(work: () => Promise<unknown>): Promise<ChunkscopeError> {
  try {
    await work();
  } catch (error) {
    assert.ok(error instanceof ChunkscopeError, `expected a ChunkscopeError, got ${String(error)}`);
    return error;
  }
  assert.fail("the call succeeded but should have failed");
}
