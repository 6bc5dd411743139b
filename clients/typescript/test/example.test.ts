// The example program, run as a user would (compiled, in its own process) against the fixture.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { it } from "node:test";

import { env } from "./support.js";

const EXAMPLE = join(dirname(fileURLToPath(import.meta.url)), "..", "examples", "example.js");
const TEXT = "On day 3 the cat slept near the window while the cake cooled.";

it("the example lists, detects and generates against the fixture", async () => {
  const args = [
    EXAMPLE,
    "--address",
    env.address,
    "--token",
    env.token,
    "--model",
    env.model,
    "--hook-point",
    env.hookPoint,
    "--text",
    TEXT,
    "--prompt",
    "The cat",
  ];
  const { stdout } = await promisify(execFile)(process.execPath, args, { timeout: 120_000 });
  const lines = stdout.trimEnd().split("\n");
  assert.equal(lines[0], "models:");
  assert.ok(lines.includes(`  ${env.model} READY llama 2 blocks`), stdout);
  assert.ok(lines.includes(`dictionary ${env.dictionary} at ${env.hookPoint}: cat, cake`), stdout);
  const detect = lines.indexOf(`detect: ${TEXT}`);
  assert.ok(detect > 0, stdout);
  assert.match(lines[detect + 1]!, /^ {2}cat: fired \d+ times, first at token \d+$/);
  assert.match(lines[detect + 2]!, /^ {2}cake: fired \d+ times, first at token \d+$/);
  assert.equal(lines[detect + 3], "generate with cat inhibited (project_out), greedy, 24 tokens:");
  // Generated text may itself contain newlines: check the rest as one string.
  const rest = lines.slice(detect + 4).join("\n");
  assert.match(rest, /^ {2}perturbed: The cat[^]*\n {2}control: {3}The cat/, stdout);
});

it("the example exits non-zero, saying to run make demo, when no dictionary fits", async () => {
  const args = [EXAMPLE, "--address", env.address, "--token", env.token, "--model", env.model];
  const run = promisify(execFile)(process.execPath, args, { timeout: 60_000 });
  await assert.rejects(run, (error: { code?: number; stderr?: string }) => {
    assert.equal(error.code, 1);
    assert.match(error.stderr ?? "", /make demo/);
    return true;
  });
});
