// Failures as the wrapper reports them: status codes, the rich details from grpc-status-details-bin,
// deadlines, cancellation and the receive-size limit, all against the live server.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";

import { ChunkscopeError, Code, codeName } from "../src/index.js";
import { collect, connect, env, failure } from "./support.js";

describe("errors", () => {
  const client = connect();
  after(() => client.close());

  it("an unknown model is NOT_FOUND with the message and the ErrorInfo reason", async () => {
    const error = await failure(() => client.getModel("no-such-model"));
    assert.equal(error.code, Code.NotFound);
    assert.equal(error.codeName, "NOT_FOUND");
    assert.equal(
      error.message,
      "no model named 'no-such-model' is registered; ListModels shows the registered ones",
    );
    assert.equal(error.reason, "MODEL_NOT_FOUND");
    assert.equal(error.metadata.model, "no-such-model");
    assert.deepEqual(error.fieldViolations, []);
    assert.equal(String(error), `ChunkscopeError: NOT_FOUND: ${error.message}`);
  });

  it("an invalid argument carries a BadRequest field violation", async () => {
    const error = await failure(() =>
      client.registerModel({ name: "Bad Name!", sourcePath: env.modelSource }),
    );
    assert.equal(error.code, Code.InvalidArgument);
    assert.equal(error.reason, "INVALID_ARGUMENT");
    assert.deepEqual(error.fieldViolations, [
      {
        field: "name",
        description:
          "'Bad Name!' must be 1-64 characters of [a-z0-9._-], starting with a letter or digit",
      },
    ]);
  });

  it("errors on a stream surface while iterating", async () => {
    const stream = client.generate({
      model: { name: "no-such-model" },
      prompt: { content: { case: "text", value: "The cat" } },
    });
    const error = await failure(() => collect(stream));
    assert.equal(error.code, Code.NotFound);
    assert.equal(error.reason, "MODEL_NOT_FOUND");
  });

  it("an unreachable server is UNAVAILABLE", async () => {
    const nowhere = connect({ address: "127.0.0.1:1", timeoutMs: 5000 });
    try {
      const error = await failure(() => nowhere.getModel(env.model));
      assert.equal(error.code, Code.Unavailable);
    } finally {
      nowhere.close();
    }
  });

  it("a deadline that expires is DEADLINE_EXCEEDED", async () => {
    const started = Date.now();
    const stream = client.generate(
      {
        model: { name: env.model },
        prompt: { content: { case: "text", value: "The cat" } },
        sampling: { maxNewTokens: 512 },
      },
      { timeoutMs: 50 },
    );
    const error = await failure(() => collect(stream));
    assert.equal(error.codeName, "DEADLINE_EXCEEDED");
    assert.ok(Date.now() - started < 10_000, "the deadline was not enforced promptly");
  });

  it("the client's default deadline applies to calls without their own", async () => {
    const impatient = connect({ timeoutMs: 1 });
    try {
      const error = await failure(() =>
        impatient.perturb({
          model: { name: env.model },
          input: { content: { case: "text", value: "On day 3 the cat slept near the window." } },
          topK: 50,
        }),
      );
      assert.equal(error.code, Code.DeadlineExceeded);
    } finally {
      impatient.close();
    }
  });

  it("cancelling through an AbortSignal is CANCELLED", async () => {
    const abort = new AbortController();
    const stream = client.generate(
      {
        model: { name: env.model },
        prompt: { content: { case: "text", value: "The cat" } },
        sampling: { maxNewTokens: 512 },
      },
      { signal: abort.signal },
    );
    const error = await failure(async () => {
      for await (const step of stream) {
        if (step.step >= 1) abort.abort();
      }
    });
    assert.equal(error.code, Code.Canceled);
    assert.equal(codeName(error.code), "CANCELLED");
  });

  it("breaking out of a stream cancels the call and leaves no timer behind", async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const before = timers();
    let steps = 0;
    for await (const step of client.generate({
      model: { name: env.model },
      prompt: { content: { case: "text", value: "The cat" } },
      sampling: { maxNewTokens: 512 },
    })) {
      steps += step.done ? 0 : 1;
      if (steps === 2) break;
    }
    assert.equal(steps, 2);
    assert.equal(timers(), before, "the call's 10-minute deadline timer is still pending");
  });

  it("replies above maxReceiveMessageBytes are refused; the 64 MiB default accepts them", async () => {
    const small = connect({ maxReceiveMessageBytes: 1024 });
    try {
      const error = await failure(() =>
        small.getDictionary(env.dictionary, { includePrototypes: true }),
      );
      assert.equal(error.code, Code.ResourceExhausted);
    } finally {
      small.close();
    }
    const full = await client.getDictionary(env.dictionary, { includePrototypes: true });
    assert.equal(full.entries.length, 2);
  });

  describe(
    "with auth on (CHUNKSCOPE_TEST_TOKEN set)",
    { skip: env.token === "" && "auth is off" },
    () => {
      it("no token is UNAUTHENTICATED, a wrong one too; health needs none", async () => {
        for (const token of ["", "not-a-valid-token"]) {
          const stranger = connect({ token });
          try {
            const error = await failure(() => stranger.getModel(env.model));
            assert.equal(error.code, Code.Unauthenticated, `token ${JSON.stringify(token)}`);
            assert.notEqual(error.reason, "");
            assert.equal(await stranger.health(), "SERVING");
          } finally {
            stranger.close();
          }
        }
      });

      it(
        "the monitor role may detect but not register: PERMISSION_DENIED with its role",
        { skip: !process.env.CHUNKSCOPE_TEST_MONITOR_TOKEN && "no CHUNKSCOPE_TEST_MONITOR_TOKEN" },
        async () => {
          const monitor = connect({ token: process.env.CHUNKSCOPE_TEST_MONITOR_TOKEN });
          try {
            const detected = await monitor.detect({
              config: {
                model: { name: env.model },
                dictionaryIds: [env.dictionary],
                summaryOnly: true,
              },
              inputs: [{ content: { case: "text", value: "the cat" } }],
            });
            assert.equal(detected.results.length, 1);
            const error = await failure(() =>
              monitor.registerModel({ name: "typescript-denied", sourcePath: env.modelSource }),
            );
            assert.equal(error.code, Code.PermissionDenied);
            assert.equal(error.metadata.role, "monitor");
          } finally {
            monitor.close();
          }
        },
      );
    },
  );
});
