#!/usr/bin/env bash
# The TypeScript client's checks and suite, against a live server started by
# scripts/client_fixture.py (which sets CHUNKSCOPE_TEST_*):
#   python scripts/client_fixture.py -- bash clients/typescript/test.sh
# Installs the pinned dependencies (npm ci, again only when package-lock.json changes), checks
# formatting (prettier) and types (tsc, strict), builds the package, then runs the node test runner.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [[ -z "${CHUNKSCOPE_TEST_ADDRESS:-}" ]]; then
  echo "CHUNKSCOPE_TEST_ADDRESS is not set: run under scripts/client_fixture.py" >&2
  exit 2
fi
source ./deps.sh
ensure_node_modules

echo "== prettier --check" >&2
./node_modules/.bin/prettier --check --log-level warn .
echo "== tsc (package: dist/, with declarations)" >&2
rm -rf dist build
./node_modules/.bin/tsc -p tsconfig.json
echo "== tsc (tests and example: build/)" >&2
./node_modules/.bin/tsc -p tsconfig.test.json
echo "== node --test against ${CHUNKSCOPE_TEST_ADDRESS}" >&2
# One file at a time: they share the server (and this machine's two cores).
node --test --test-concurrency=1 --test-reporter=spec build/test/*.test.js
