#!/usr/bin/env bash
# Regenerates src/generated/java from protos/chunkscope/v1/*.proto with protoc and the
# protoc-gen-grpc-java plugin, both pinned in pom.xml (protobuf.version, grpc.version) and fetched
# from Maven Central into the git-ignored .tools/ on first use. Idempotent and deterministic:
# the output directory is rebuilt from scratch and protoc's output depends only on its inputs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) classifier=linux-x86_64 ;;
  Linux-aarch64 | Linux-arm64) classifier=linux-aarch_64 ;;
  Darwin-x86_64) classifier=osx-x86_64 ;;
  Darwin-arm64) classifier=osx-aarch_64 ;;
  *) echo "generate.sh: no protoc build for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac

prop() { sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p" pom.xml | head -n1; }
protobuf_version="$(prop protobuf.version)"
grpc_version="$(prop grpc.version)"
protoc=".tools/protoc-${protobuf_version}-${classifier}.exe"
plugin=".tools/protoc-gen-grpc-java-${grpc_version}-${classifier}.exe"
include=".tools/include-${protobuf_version}"

if [[ ! -x "$protoc" || ! -x "$plugin" || ! -f "$include/google/protobuf/timestamp.proto" ]]; then
  mvn -B -q -Dprotoc.classifier="$classifier" \
    dependency:copy@fetch-codegen dependency:unpack@fetch-wkt
  chmod +x "$protoc" "$plugin"
fi

out="src/generated/java"
rm -rf "$out"
mkdir -p "$out"
# Sorted, relative paths: the same command line (and so the same output) on every machine.
mapfile -t protos < <(cd "$root/protos" && find chunkscope/v1 -name '*.proto' | LC_ALL=C sort)
"$protoc" \
  --proto_path="$root/protos" \
  --proto_path="$include" \
  --plugin=protoc-gen-grpc-java="$plugin" \
  --java_out="$out" \
  --grpc-java_out="$out" \
  "${protos[@]}"
echo "generated $(find "$out" -name '*.java' | wc -l) files in clients/java/$out from ${#protos[@]} protos (protoc ${protobuf_version}, grpc-java ${grpc_version})"
