#!/usr/bin/env bash
# Regenerates src/gen (committed) from every .proto in protos/chunkscope/v1 plus the vendored
# google.rpc error details and grpc.health.v1 under proto/. protoc-gen-es and buf are pinned in
# package.json and run from node_modules as local plugins (no remote codegen). Deterministic:
# running it twice leaves no diff.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
source ./deps.sh
ensure_node_modules
./node_modules/.bin/buf generate --template buf.gen.yaml
