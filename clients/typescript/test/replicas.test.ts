// The client against the fixture's two replicas (CHUNKSCOPE_TEST_ADDRESSES): round-robin reaches
// both, a dead address in the target costs no idempotent call, and a call that changes state is
// not sent again.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ChunkscopeClient, Code, Dtype, InterventionMode, Measure } from "../src/index.js";
import { collect, connect, env, failure } from "./support.js";

function required(name: string): string {
  const value = process.env[name];
  assert.ok(value, `${name} is not set (scripts/client_fixture.py sets it)`);
  return value;
}

/** grpc_server_handled_total of one method on one server, every code together. */
async function handled(metricsUrl: string, method: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("grpc_server_handled_total{") && line.includes(`grpc_method="${method}"`)) {
      total += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return total;
}

/** How many calls of `method` each replica served while `calls` ran `n` times on `address`. */
async function servedBy(
  address: string,
  method: string,
  n: number,
  call: (client: ChunkscopeClient) => Promise<unknown>,
): Promise<number[]> {
  const urls = required("CHUNKSCOPE_TEST_METRICS_URLS").split(",");
  const before = await Promise.all(urls.map((url) => handled(url, method)));
  const client = connect({ address });
  try {
    for (let i = 0; i < n; i++) await call(client);
  } finally {
    client.close();
  }
  const after = await Promise.all(urls.map((url) => handled(url, method)));
  return after.map((count, i) => count - before[i]!);
}

const detectRequest = () => ({
  config: { model: { name: env.model }, dictionaryIds: [env.dictionary], summaryOnly: true },
  inputs: [
    {
      content: {
        case: "text" as const,
        value: "On day 3 the cat slept near the window while the cake cooled.",
      },
    },
  ],
});

function tensor(shape: number[], values: number[]) {
  const data = new Uint8Array(new Float32Array(values).buffer);
  return { dtype: Dtype.FLOAT32, shape: shape.map(BigInt), data };
}

const values = (n: number) => Array.from({ length: n }, (_, i) => (((i * 7919) % 23) - 11) / 7);

describe("several replicas", () => {
  it("spreads Detect calls round-robin over both replicas", async () => {
    const served = await servedBy(
      required("CHUNKSCOPE_TEST_ADDRESSES"),
      "Detect",
      12,
      async (c) => {
        const reply = await c.detect(detectRequest());
        assert.equal(reply.results[0]!.summaries[0]!.label, "cat");
      },
    );
    assert.equal(served[0]! + served[1]!, 12, `served ${served}`);
    assert.ok(served[0]! > 0 && served[1]! > 0, `served ${served}`);
  });

  it("takes hostnames in the list", async () => {
    const address = required("CHUNKSCOPE_TEST_ADDRESSES").replaceAll("127.0.0.1", "localhost");
    const served = await servedBy(address, "GetModel", 8, async (c) => {
      assert.equal((await c.getModel(env.model)).name, env.model);
    });
    assert.equal(served[0]! + served[1]!, 8, `served ${served}`);
    assert.ok(served[0]! > 0 && served[1]! > 0, `served ${served}`);
  });

  it("resolves a dns:/// target", async () => {
    const port = env.address.slice(env.address.lastIndexOf(":") + 1);
    const client = connect({ address: `dns:///localhost:${port}` });
    try {
      for (let i = 0; i < 4; i++) assert.equal((await client.getModel(env.model)).name, env.model);
    } finally {
      client.close();
    }
  });

  it("makes every idempotent call past a dead address", async () => {
    const client = connect({
      address: `${required("CHUNKSCOPE_TEST_DEAD_ADDRESS")},${env.address}`,
    });
    const network = {
      layers: [
        { weight: tensor([8, 3], values(24)), bias: tensor([8], values(8)) },
        { weight: tensor([2, 8], values(16)) },
      ],
    };
    const source = { source: { case: "network" as const, value: network } };
    const states = { source: { case: "tensor" as const, value: tensor([20, 4], values(80)) } };
    const layer = (name: string) => ({ name, states: tensor([20, 4], values(80)) });
    try {
      for (let round = 0; round < 3; round++) {
        assert.equal(await client.health(), "SERVING");
        assert.equal((await client.getModel(env.model)).name, env.model);
        assert.ok((await collect(client.listModels())).some((m) => m.name === env.model));
        const hookPoints = await client.listHookPoints(env.model);
        assert.ok(hookPoints.some((p) => p.name === env.hookPoint));
        assert.equal((await client.getDictionary(env.dictionary)).id, env.dictionary);
        const dictionaries = await collect(client.listDictionaries({ model: env.model }));
        assert.ok(dictionaries.some((d) => d.id === env.dictionary));
        assert.ok((await client.exportDictionary(env.dictionary)).length > 0);
        const detected = await client.detect(detectRequest());
        assert.equal(detected.results[0]!.summaries[0]!.label, "cat");
        const perturbed = await client.perturb({
          model: { name: env.model },
          input: { content: { case: "text", value: "The window and the" } },
          interventions: [
            {
              target: { case: "chunk", value: { dictionaryId: env.dictionary, entryId: 0 } },
              mode: InterventionMode.ACTIVATE,
              positions: { indices: [-1] },
            },
          ],
          topK: 3,
        });
        assert.equal(perturbed.topBefore.length, 3);
        const generated = await collect(
          client.generate({
            model: { name: env.model },
            prompt: { content: { case: "text", value: "The cat" } },
            sampling: { maxNewTokens: 4 },
          }),
        );
        assert.ok(generated.some((m) => m.done));
        const compared = await client.compareRepresentations({
          a: states,
          b: states,
          measures: [Measure.LINEAR_CKA],
        });
        assert.ok(Math.abs(compared.results[0]!.value - 1) < 1e-5);
        const layers = await client.layerSimilarity({
          source: { case: "layers", value: { layers: [layer("a"), layer("b")] } },
          measure: Measure.LINEAR_CKA,
        });
        assert.deepEqual(layers.layers, ["a", "b"]);
        assert.ok((await client.connectionCost({ network: source })).cost > 0);
        const layout = await client.optimizeNeuronLayout({ network: source });
        assert.ok(layout.costAfter <= layout.costBefore);
      }
    } finally {
      client.close();
    }
  });

  it("does not send a call that changes state again", async () => {
    // A fresh client starts at the first address, the dead one: UnregisterModel fails there with
    // Unavailable and is not retried; the next call skips the dead address and reaches the live
    // server, which knows no such model.
    const client = connect({
      address: `${required("CHUNKSCOPE_TEST_DEAD_ADDRESS")},${env.address}`,
    });
    try {
      assert.equal(
        (await failure(() => client.unregisterModel("no-such-model"))).code,
        Code.Unavailable,
      );
      assert.equal(
        (await failure(() => client.unregisterModel("no-such-model"))).code,
        Code.NotFound,
      );
    } finally {
      client.close();
    }
  });
});
