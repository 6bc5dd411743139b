// Every RPC of the wrapper against the live fixture, on a model copy of our own ("typescript-model")
// so the fixture's model and dictionary stay as they were. Tests run in order and share state.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { toJson } from "@bufbuild/protobuf";

import {
  Arm,
  ChunkMethod,
  Code,
  DictionarySchema,
  ExtractionPhase,
  InterventionMode,
  ModelState,
  type Dictionary,
  type ExtractionProgress,
} from "../src/index.js";
import { collect, connect, env, failure } from "./support.js";

const MODEL = "typescript-model";
const TRAIN = Array.from(
  { length: 14 },
  (_, i) => `On day ${i} the cat slept near the window while the cake cooled.`,
);
const TEXT = "On day 3 the cat slept near the window while the cake cooled.";

describe("ChunkscopeClient against the live server", () => {
  const client = connect();
  const created = new Set<string>();
  let dictionary: Dictionary;

  before(async () => {
    // A run that crashed may have left our model behind: start clean.
    for await (const d of client.listDictionaries({ model: MODEL }))
      await client.deleteDictionary(d.id);
    for await (const m of client.listModels())
      if (m.name === MODEL) await client.unregisterModel(MODEL);
  });

  after(async () => {
    for (const id of created) {
      await client.deleteDictionary(id).catch(() => undefined);
    }
    await client.unregisterModel(MODEL).catch(() => undefined);
    client.close();
  });

  it("reports the server as SERVING", async () => {
    assert.equal(await client.health(), "SERVING");
    assert.equal(await client.health("chunkscope.v1.ModelService"), "SERVING");
  });

  it("registers a model and waits until it is READY", async () => {
    const model = await client.registerModel({
      name: MODEL,
      sourcePath: env.modelSource,
      wait: true,
    });
    assert.equal(model.name, MODEL);
    assert.equal(model.state, ModelState.READY);
    assert.equal(model.contentHash, env.contentHash);
    assert.equal(model.architecture, "llama");
    assert.ok(model.registeredAt !== undefined);
  });

  it("gets the model, lists models across pages and lists hook points", async () => {
    const model = await client.getModel(MODEL);
    assert.equal(model.state, ModelState.READY);
    const names = (await collect(client.listModels({ pageSize: 1 }))).map((m) => m.name);
    assert.deepEqual(names, [...names].sort());
    assert.ok(names.includes(MODEL) && names.includes(env.model), names.join(","));
    assert.equal(new Set(names).size, names.length, "a page was repeated");
    const hooks = await client.listHookPoints(MODEL);
    const hook = hooks.find((h) => h.name === env.hookPoint);
    assert.ok(hook, hooks.map((h) => h.name).join(","));
    assert.equal(hook.block, 1);
    assert.equal(hook.shape.at(-1), BigInt(model.hiddenSize));
    const pinned = await client.listHookPoints({ name: MODEL, contentHash: env.contentHash });
    assert.equal(pinned.length, hooks.length);
  });

  it("extracts a dictionary, reporting progress", async () => {
    const progress: ExtractionProgress[] = [];
    const result = await client.extractDictionary(
      {
        model: { name: MODEL },
        hookPoints: [env.hookPoint],
        corpus: { source: { case: "texts", value: { texts: TRAIN } } },
        method: {
          case: "populationAveraging",
          value: { concepts: [{ concept: "cat" }, { concept: "cake" }], nSamples: 10, seed: 0n },
        },
        description: "typescript client test",
      },
      { onProgress: (p) => progress.push(p) },
    );
    assert.equal(result.length, 1);
    dictionary = result[0]!;
    created.add(dictionary.id);
    assert.equal(dictionary.method, ChunkMethod.POPULATION_AVERAGING);
    assert.equal(dictionary.hookPoint, env.hookPoint);
    assert.deepEqual(
      dictionary.entries.map((e) => e.label),
      ["cat", "cake"],
    );
    assert.ok(progress.length > 0, "no progress messages");
    assert.ok(progress.some((p) => p.phase === ExtractionPhase.CAPTURE));
  });

  it("gets and lists dictionaries", async () => {
    const full = await client.getDictionary(dictionary.id, { includePrototypes: true });
    assert.equal(full.nEntries, 2);
    assert.ok(full.entries.every((e) => (e.prototype?.data.length ?? 0) > 0));
    const plain = await client.getDictionary(dictionary.id);
    assert.ok(plain.entries.every((e) => e.prototype === undefined));
    const ours = await collect(client.listDictionaries({ model: MODEL }));
    assert.deepEqual(
      ours.map((d) => d.id),
      [dictionary.id],
    );
    const all = (await collect(client.listDictionaries({ pageSize: 1 }))).map((d) => d.id);
    assert.ok(all.includes(env.dictionary) && all.includes(dictionary.id), all.join(","));
  });

  it("exports, deletes and imports a dictionary back unchanged", async () => {
    const before = await client.getDictionary(dictionary.id, { includePrototypes: true });
    const archive = await client.exportDictionary(dictionary.id);
    assert.ok(archive.length > 0);
    const deleted = await client.deleteDictionary(dictionary.id);
    assert.equal(deleted.id, dictionary.id);
    const gone = await failure(() => client.getDictionary(dictionary.id));
    assert.equal(gone.code, Code.NotFound);

    const imported = await client.importDictionary(archive);
    assert.equal(imported.id, dictionary.id);
    const after = await client.getDictionary(dictionary.id, { includePrototypes: true });
    assert.deepEqual(toJson(DictionarySchema, after), toJson(DictionarySchema, before));

    // The streamed form: pieces out, pieces back in (no sha256 given), same dictionary.
    const pieces = await collect(client.exportDictionaryPieces(dictionary.id));
    assert.deepEqual(Buffer.concat(pieces), Buffer.from(archive));
    await client.deleteDictionary(dictionary.id);
    const again = await client.importDictionary(pieces);
    assert.equal(again.id, dictionary.id);
  });

  it("detects concepts, the same as the fixture's identically extracted dictionary", async () => {
    const detect = (model: string, id: string) =>
      client.detect({
        config: { model: { name: model }, dictionaryIds: [id], positivesOnly: true },
        inputs: [
          { content: { case: "text", value: TEXT } },
          { content: { case: "text", value: "Hello." } },
        ],
      });
    const ours = await detect(MODEL, dictionary.id);
    assert.equal(ours.results.length, 2);
    const [first, second] = ours.results;
    assert.deepEqual(
      first!.summaries.filter((s) => s.fired).map((s) => s.label),
      ["cat", "cake"],
    );
    assert.ok(first!.tokens.length > 0 && first!.tokens.every((t) => t.matches.length > 0));
    assert.deepEqual(
      second!.summaries.filter((s) => s.fired),
      [],
    );
    assert.ok(ours.forwardNs > 0n);
    const theirs = await detect(env.model, env.dictionary);
    const firing = (r: typeof ours) =>
      r.results.map((x) => x.summaries.map((s) => [s.label, s.fired, s.count, s.firstPosition]));
    assert.deepEqual(firing(ours), firing(theirs));
    // A dictionary is bound to its model: using it with another is refused with details.
    const refused = await failure(() => detect(MODEL, env.dictionary));
    assert.equal(refused.code, Code.FailedPrecondition);
    assert.notEqual(refused.reason, "");
  });

  it("streams detection over continued inputs", async () => {
    async function* requests() {
      yield {
        message: {
          case: "config" as const,
          value: { model: { name: MODEL }, dictionaryIds: [dictionary.id], summaryOnly: true },
        },
      };
      yield {
        message: {
          case: "input" as const,
          value: { content: { case: "text" as const, value: "On day 3 the cat slept" } },
        },
      };
      yield {
        message: {
          case: "input" as const,
          value: { content: { case: "text" as const, value: " while the cake cooled." } },
        },
        continues: true,
      };
    }
    const replies = await collect(client.streamDetect(requests()));
    assert.deepEqual(
      replies.map((r) => r.sequence),
      [0n, 1n],
    );
    // "cat" fires in the first segment; the second continues it (positions go on).
    assert.deepEqual(
      replies[0]!.result!.summaries.filter((s) => s.fired).map((s) => s.label),
      ["cat"],
    );
    assert.deepEqual(
      replies[1]!.result!.summaries.map((s) => s.label),
      ["cat", "cake"],
    );
    assert.ok(replies[1]!.result!.nTokens > 0);
  });

  it("perturbs one forward pass", async () => {
    const reply = await client.perturb({
      model: { name: MODEL },
      input: { content: { case: "text", value: "The cat" } },
      interventions: [
        {
          target: { case: "chunk", value: { dictionaryId: dictionary.id, entryId: 0 } },
          mode: InterventionMode.INHIBIT,
          positions: { allPrompt: true },
        },
      ],
      topK: 5,
    });
    assert.equal(reply.topBefore.length, 5);
    assert.equal(reply.topAfter.length, 5);
    assert.ok(reply.applied > 0);
    assert.ok(reply.klDivergence >= 0);
  });

  it("generates a perturbed and a control arm, streamed", async () => {
    const steps = await collect(
      client.generate({
        model: { name: MODEL },
        prompt: { content: { case: "text", value: "The cat" } },
        interventions: [
          {
            target: { case: "chunk", value: { dictionaryId: dictionary.id, entryId: 0 } },
            mode: InterventionMode.PROJECT_OUT,
            positions: { allPrompt: true, generated: true },
          },
        ],
        sampling: { maxNewTokens: 4 },
        control: true,
      }),
    );
    for (const arm of [Arm.PERTURBED, Arm.CONTROL]) {
      const mine = steps.filter((s) => s.arm === arm);
      const done = mine.filter((s) => s.done);
      assert.equal(done.length, 1, `arm ${Arm[arm]}: one done message`);
      assert.equal(mine.filter((s) => !s.done).length, 4, `arm ${Arm[arm]}: 4 tokens`);
    }
  });

  it("unregisters the model", async () => {
    for (const id of created) await client.deleteDictionary(id);
    created.clear();
    const model = await client.unregisterModel(MODEL);
    assert.equal(model.name, MODEL);
    const error = await failure(() => client.getModel(MODEL));
    assert.equal(error.code, Code.NotFound);
    // The fixture's own state is untouched.
    assert.equal((await client.getModel(env.model)).state, ModelState.READY);
    assert.equal((await client.getDictionary(env.dictionary)).id, env.dictionary);
  });
});
