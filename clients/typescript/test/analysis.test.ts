// AnalysisService through the wrapper: representation comparison (inline states), layer
// similarity on the fixture model (server-captured states, with progress), and the BIMT connection
// cost and neuron layout of an inline network.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";

import { Dtype, Measure, type AnalysisProgress } from "../src/index.js";
import { connect, env } from "./support.js";

/** A float32 tensor from row-major values. */
function tensor(shape: number[], values: number[]) {
  const data = new Uint8Array(new Float32Array(values).buffer);
  return { dtype: Dtype.FLOAT32, shape: shape.map(BigInt), data };
}

/** Deterministic pseudo-random values in [-1, 1). */
function values(n: number, seed: number): number[] {
  let x = seed;
  return Array.from({ length: n }, () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return (x / 2147483648) * 2 - 1;
  });
}

describe("AnalysisService", () => {
  const client = connect();
  after(() => client.close());

  it("compares representations: a rotated, scaled copy has CKA 1 and Procrustes distance 0", async () => {
    const a = values(40 * 3, 7);
    // b = 2 * a with the first two columns swapped: an orthogonal map and an isotropic scale.
    const b = a.map((_, i) => 2 * a[i - (i % 3) + [1, 0, 2][i % 3]!]!);
    const result = await client.compareRepresentations({
      a: { source: { case: "tensor", value: tensor([40, 3], a) } },
      b: { source: { case: "tensor", value: tensor([40, 3], b) } },
      measures: [Measure.LINEAR_CKA, Measure.PROCRUSTES],
    });
    assert.deepEqual(
      result.results.map((r) => r.measure),
      [Measure.LINEAR_CKA, Measure.PROCRUSTES],
    );
    assert.ok(Math.abs(result.results[0]!.value - 1) < 1e-5, `CKA ${result.results[0]!.value}`);
    assert.ok(Math.abs(result.results[1]!.value) < 1e-3, `Procrustes ${result.results[1]!.value}`);
    assert.deepEqual(result.shapeA, [40n, 3n]);
  });

  it("maps layer similarity over the fixture model's hook points", async () => {
    const progress: AnalysisProgress[] = [];
    const hookPoints = ["blocks.0.resid_post", env.hookPoint];
    const result = await client.layerSimilarity(
      {
        source: {
          case: "model",
          value: {
            model: { name: env.model },
            hookPoints,
            inputs: {
              source: { case: "texts", value: { texts: ["The cat slept.", "The cake cooled."] } },
            },
          },
        },
        measure: Measure.LINEAR_CKA,
      },
      { onProgress: (p) => progress.push(p) },
    );
    assert.deepEqual(result.layers, hookPoints);
    assert.equal(result.matrix.length, 4);
    assert.ok(Math.abs(result.matrix[0]! - 1) < 1e-6 && Math.abs(result.matrix[3]! - 1) < 1e-6);
    assert.ok(Math.abs(result.matrix[1]! - result.matrix[2]!) < 1e-9, "not symmetric");
    assert.ok(progress.length > 0, "no progress messages");
  });

  it("measures and lowers the connection cost of an inline network", async () => {
    const network = {
      layers: [
        { weight: tensor([4, 3], values(12, 1)), bias: tensor([4], values(4, 2)) },
        { weight: tensor([2, 4], values(8, 3)), bias: tensor([2], values(2, 4)) },
      ],
    };
    const source = { source: { case: "network" as const, value: network } };
    const cost = await client.connectionCost({ network: source });
    assert.ok(cost.cost > 0);
    assert.notEqual(cost.definition, "");
    const layout = await client.optimizeNeuronLayout({ network: source });
    assert.ok(Math.abs(layout.costBefore - cost.cost) < 1e-6 * cost.cost);
    assert.ok(layout.costAfter <= layout.costBefore);
    assert.ok(
      layout.maxOutputDifference < 1e-4,
      `outputs changed by ${layout.maxOutputDifference}`,
    );
  });
});
