#!/usr/bin/env bash
# Builds the Java client and runs its JUnit suite against a live chunkscope server.
#
#   python scripts/client_fixture.py -- bash clients/java/test.sh
#
# Needs the fixture's CHUNKSCOPE_TEST_* environment (scripts/client_fixture.py). Maven resolves
# the pinned dependencies from Maven Central into ~/.m2 the first time; later runs use the cache.
# The compile step is also the static check: javac -Xlint:all -Werror on main, generated and
# test code (pom.xml).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if [[ -z "${CHUNKSCOPE_TEST_ADDRESS:-}" ]]; then
  echo "clients/java/test.sh: CHUNKSCOPE_TEST_ADDRESS is unset; run it under scripts/client_fixture.py" >&2
  exit 2
fi
command -v mvn >/dev/null || { echo "clients/java/test.sh: Maven (mvn) is not installed" >&2; exit 2; }

# One JVM fork, no parallel builds: the machine is shared and has two cores.
exec mvn -B --no-transfer-progress -Dstyle.color=never test
