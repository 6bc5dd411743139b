// The calls that wait for a stream's result read the stream to its end, so the call ends with
// the server's OK status (returning at the result would leave the call to be cancelled).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import type { Interceptor } from "@connectrpc/connect";

import { connect, env } from "./support.js";

/** Per method, whether its last server stream was read to its end (an error status throws). */
const readToEnd = new Map<string, boolean>();
const watchEnds: Interceptor = (next) => async (req) => {
  const res = await next(req);
  if (!res.stream) return res;
  const method = req.method.name;
  readToEnd.set(method, false);
  const replies = res.message;
  return {
    ...res,
    message: (async function* () {
      yield* replies;
      readToEnd.set(method, true);
    })(),
  };
};

/** grpc_server_handled_total of one method on the fixture's server, by grpc_code. */
async function handled(method: string): Promise<Map<string, number>> {
  const url = process.env.CHUNKSCOPE_TEST_METRICS_URL;
  assert.ok(url, "CHUNKSCOPE_TEST_METRICS_URL is not set (scripts/client_fixture.py sets it)");
  const text = await (await fetch(url)).text();
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^grpc_server_handled_total\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || !m[1]!.includes(`grpc_method="${method}"`)) continue;
    counts.set(/grpc_code="(\w+)"/.exec(m[1]!)![1]!, Number(m[2]));
  }
  return counts;
}

describe("result-returning streams", () => {
  it("extractDictionary reads to the server's OK status", async () => {
    const client = connect({ interceptors: [watchEnds] });
    try {
      const before = await handled("ExtractDictionary");
      const [stored] = await client.extractDictionary({
        model: { name: env.model },
        hookPoints: ["blocks.0.resid_post"], // not the fixture's: the examples pick that one
        corpus: {
          source: {
            case: "texts",
            value: {
              texts: Array.from(
                { length: 12 },
                (_, i) => `On day ${i} the cat slept near the window while the cake cooled.`,
              ),
            },
          },
        },
        method: {
          case: "populationAveraging",
          value: { concepts: [{ concept: "cat" }, { concept: "cake" }], nSamples: 4 },
        },
      });
      assert.equal(readToEnd.get("ExtractDictionary"), true, "the stream was not read to its end");
      const after = await handled("ExtractDictionary");
      await client.deleteDictionary(stored!.id);
      assert.equal(stored!.entries.length, 2);
      const changed = [...after].filter(([code, n]) => n !== (before.get(code) ?? 0));
      assert.deepEqual(
        changed.map(([code, n]) => [code, n - (before.get(code) ?? 0)]),
        [["OK", 1]],
      );
    } finally {
      client.close();
    }
  });
});
