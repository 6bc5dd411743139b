#!/usr/bin/env bash
# Regenerates clients/go/chunkscopev1 from every .proto in protos/chunkscope/v1 with the ordinary
# Go generators (protoc-gen-go, protoc-gen-go-grpc) run as local buf plugins. The plugins are
# installed at pinned versions into clients/go/.bin (git-ignored) when missing. Deterministic and
# idempotent: running it twice leaves no diff.
set -euo pipefail
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="$HERE/.bin"
PROTOC_GEN_GO_VERSION=v1.36.12       # google.golang.org/protobuf (matches go.mod)
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2    # google.golang.org/grpc/cmd/protoc-gen-go-grpc
BUF="${BUF:-$ROOT/.venv/bin/buf}"
command -v "$BUF" >/dev/null || BUF=buf

install() {  # install <binary> <package> <version>
  local stamp="$BIN/.$1-$3"
  if [[ ! -x "$BIN/$1" || ! -e "$stamp" ]]; then
    echo "installing $2@$3 into $BIN" >&2
    GOBIN="$BIN" go install "$2@$3"
    rm -f "$BIN/.$1-"*
    touch "$stamp"
  fi
}
mkdir -p "$BIN"
install protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"

cd "$ROOT"
# Start clean so a removed or renamed .proto leaves no stale Go file behind.
rm -f clients/go/chunkscopev1/*.pb.go
"$BUF" generate --template clients/go/buf.gen.yaml --path protos/chunkscope/v1
gofmt -l clients/go/chunkscopev1 | (! grep .) || { echo "generated code is not gofmt-clean" >&2; exit 1; }
