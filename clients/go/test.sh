#!/usr/bin/env bash
# The Go client's checks and its test suite against a live chunkscope server.
#
#   python scripts/client_fixture.py -- bash clients/go/test.sh
#
# Needs the fixture's environment (CHUNKSCOPE_TEST_ADDRESS, ...; see scripts/client_fixture.py):
# without a server the live tests could only be skipped, so this refuses to run. Modules come from
# the Go module proxy into the module cache (downloaded once); no toolchain is downloaded.
set -euo pipefail
cd "$(dirname "$0")"
if [[ -z "${CHUNKSCOPE_TEST_ADDRESS:-}" ]]; then
  echo "clients/go/test.sh: CHUNKSCOPE_TEST_ADDRESS is not set; run it under scripts/client_fixture.py" >&2
  exit 2
fi
export GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false"
command -v go >/dev/null || { echo "clients/go/test.sh: go is not installed" >&2; exit 2; }
go version

# One package at a time: the machine is small and shared.
go mod download
go mod verify >/dev/null
unformatted="$(gofmt -l .)"
if [[ -n "$unformatted" ]]; then
  echo "gofmt: these files need formatting:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet -p 1 ./...
go test -p 1 -count=1 -timeout 5m ./...
