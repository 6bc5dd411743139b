# chunkscope: one entry point per job. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_DIR ?= data
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

LITELLM := build/litellm

.PHONY: litellm help venv toolchains proto proto-check breaking analysis-example lint fmt typecheck tools docker-check deploy-check release-check test test-fast demo demo-model serve reproduce bench vectors fuzz soak lock clean

# Code generated from protos/ and committed, one directory per client language.
GENERATED := clients/python/src/chunkscope_client/v1 clients/go/chunkscopev1 \
	clients/typescript/src/gen clients/java/src/generated/java
# The API as last released: `make breaking` refuses changes that would break its clients.
RELEASED_API := protos/released/chunkscope-v0.1.0.binpb

help:
	@echo "make demo        set up, fetch the demo model, start a server, register it, show hook points"
	@echo "make test        set up, lint, check generated code, run the test suite"
	@echo "make serve       run a server on 127.0.0.1:50051 with data in ./$(DATA_DIR)"
	@echo "make reproduce   the paper's results through the API -> docs/REPRODUCTION.md"
	@echo "make bench       capture overhead, gRPC vs in-process, fit times, Check -> BENCHMARKS.md"
	@echo "make proto       regenerate the Python, Go, TypeScript and Java code from protos/"
	@echo "make vectors     re-record tests/vectors (the shared client test vectors)"
	@echo "make fuzz        a long fuzzing run against a live server"
	@echo "make soak        32 clients for 10 minutes (RELIABILITY.md)"
	@echo "make lint        ruff, mypy, buf lint, hadolint"
	@echo "make release-check  build every package, install each fresh, run each README quick start"

# The environment: created once, reinstalled when the dependency files change.
$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "chunkscope needs Python >= 3.11"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e clients/python -e '.[dev]'
	# xds-protos (Envoy's ext_proc protos) ships older copies of opentelemetry-proto's and
	# googleapis-common-protos' modules, and whichever pip writes last wins: put theirs back.
	$(PY) -m pip install --quiet --no-deps --force-reinstall -c constraints.txt \
	  opentelemetry-proto googleapis-common-protos
	touch $@

venv: $(VENV)/.installed

# The client toolchains, for generating code and running the client suites.
toolchains:
	@missing=""; for t in go node npm java mvn; do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	  test -z "$$missing" || { echo "missing on PATH:$$missing (needed: Go >= 1.26, Node >= 20 with npm, JDK >= 17, Maven)"; exit 1; }

# Each language's ordinary generators, run locally at pinned versions (see each generate.sh).
proto: venv toolchains
	$(PY) scripts/genproto.py
	bash clients/go/generate.sh
	bash clients/typescript/generate.sh
	bash clients/java/generate.sh

# Fails when the committed code differs from what the protos generate.
proto-check: proto
	@git diff --exit-code --stat -- $(GENERATED) \
	  || { echo "generated code is stale: run 'make proto' and commit"; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- $(GENERATED))" \
	  || { echo "untracked generated files: run 'make proto' and commit"; exit 1; }

breaking: venv
	$(VENV)/bin/buf breaking --against $(RELEASED_API)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/buf lint
	$(VENV)/bin/buf breaking --against $(RELEASED_API)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint --failure-threshold warning Dockerfile

fmt: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: venv
	$(VENV)/bin/mypy

# Debian's prometheus, for the test where a real Prometheus scrapes the server, PostgreSQL,
# for the replicas that share a store (the tests start their own server with initdb), and
# Chromium with its chromedriver, for the test that opens a chunk page in a real browser.
tools:
	@command -v prometheus >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else echo "note: prometheus not installed and not root: its test will be skipped"; fi; }
	@{ command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
	  else echo "note: PostgreSQL not installed and not root: its tests will be skipped (and fail under CI)"; fi; }
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
	  else echo "note: chromium or chromedriver not installed and not root: the chunk-page tests will be skipped (and fail under CI)"; fi; }

# The LiteLLM proxy from PyPI in an environment of its own (pinned by tests/litellm-constraints.txt),
# for the test that runs it with chunkscope as its model and its guardrail. About 2 minutes once.
$(LITELLM)/.installed: tests/litellm-constraints.txt
	rm -rf $(LITELLM)
	$(PYTHON) -m venv $(LITELLM)
	$(LITELLM)/bin/pip install --quiet -c tests/litellm-constraints.txt 'litellm[proxy]'
	touch $@

litellm: $(LITELLM)/.installed

# The Dockerfile's install steps, outside Docker: non-editable build of both packages + import.
docker-check: venv
	rm -rf build/docker-check
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --target build/docker-check ./clients/python .
	PYTHONPATH=build/docker-check $(PY) -c 'import chunkscope, chunkscope.server, chunkscope_client.v1.models_pb2; assert "build/docker-check" in chunkscope.__file__, chunkscope.__file__'

# deploy/ validated offline with real tools: promtool (rules, alert unit tests, scrape config),
# the Compose Specification's loader, kustomize + kubeconform on vendored schemas (deploy/check.sh;
# tools are built once into ~/.cache/chunkscope-deploy-tools). Needs no venv rebuild.
deploy-check:
	bash deploy/check.sh

# Every package built (wheels and sdists, npm tarball, Maven jars, the Go module), installed into a
# fresh environment under build/release-check and its README quick start run from there against a
# live server; VERSION agrees with every manifest (scripts/version.py). About 1.5 min warm.
release-check: venv toolchains
	$(PY) scripts/release_check.py

# pytest exits 5 when it collects nothing: that is a broken suite here, not a pass.
test: lint proto-check docker-check tools litellm deploy-check release-check
	$(PY) -m pytest -q --durations=15; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

test-fast: venv
	$(PY) -m pytest -q -x tests/unit

demo-model: venv
	$(PY) -m chunkscope demo-model --models-root $(DATA_DIR)/models

demo: demo-model
	$(PY) scripts/demo.py --data-dir $(DATA_DIR)

# The paper's figures through the service API (about 60 min on 2 CPU cores): the extraction
# results, then the steering effects appended to the same document.
reproduce: demo-model
	$(PY) scripts/reproduce.py --data-dir $(DATA_DIR) --out docs/REPRODUCTION.md
	$(PY) scripts/effects.py --data-dir $(DATA_DIR)/effects --doc docs/REPRODUCTION.md

# Ratios measured interleaved in one run; writes BENCHMARKS.md.
bench: demo-model
	$(PY) scripts/bench.py --out BENCHMARKS.md
	$(PY) scripts/bench_serving.py --out BENCHMARKS.md
	$(PY) scripts/bench_batching.py --out BENCHMARKS.md
	$(PY) scripts/bench_store.py --out BENCHMARKS.md
	$(PY) scripts/bench_guard.py --out BENCHMARKS.md
	$(PY) scripts/bench_http.py --out BENCHMARKS.md

serve: venv
	$(PY) -m chunkscope serve --data-dir $(DATA_DIR)

# Re-record the shared client vectors from a fresh client fixture (review the diff).
vectors: venv
	$(PY) scripts/record_vectors.py

# Many more hostile requests than the CI portion of tests/fuzz (RELIABILITY.md).
fuzz: venv
	CHUNKSCOPE_FUZZ_EXAMPLES=400 CHUNKSCOPE_FUZZ_REPORT=build/fuzz.json $(PY) -m pytest -q tests/fuzz

# 32 clients for 10 minutes against a fresh server (RELIABILITY.md).
soak: venv
	$(PY) scripts/loadgen.py --clients 32 --seconds 600 --json build/soak.json

# The worked example of docs/ANALYSIS.md (demo model layer maps, RNN DSA, BIMT).
analysis-example: demo-model
	$(PY) scripts/analysis_example.py

# Refresh the pins after changing dependencies (review the diff before committing).
lock: venv
	{ sed -n '1,2p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^-e'; } > constraints.tmp
	mv constraints.tmp constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
