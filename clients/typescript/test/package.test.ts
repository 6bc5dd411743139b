// The published shape: the package resolves by its own name through the exports map to dist/
// (ESM with type declarations next to it), as a dependent project would import it.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { it } from "node:test";

it("imports as @chunkscope/client from dist/, with types", async () => {
  const pkg = await import("@chunkscope/client");
  assert.equal(typeof pkg.ChunkscopeClient, "function");
  assert.equal(typeof pkg.ChunkscopeError, "function");
  assert.equal(pkg.DEFAULT_MAX_MESSAGE_BYTES, 64 * 1024 * 1024);
  assert.equal(typeof pkg.ModelService, "object");
  const resolved = import.meta.resolve("@chunkscope/client");
  assert.match(resolved, /\/dist\/index\.js$/);
  assert.ok(existsSync(new URL("index.d.ts", resolved)));
  const manifest = createRequire(import.meta.url)("@chunkscope/client/package.json") as {
    type: string;
  };
  assert.equal(manifest.type, "module");
});
