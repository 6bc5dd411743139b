#!/usr/bin/env bash
# make deploy-check: validate everything under deploy/ offline, with the real tools.
#   promtool      check rules, unit-test every alert, check the compose Prometheus config
#   composecheck  deploy/compose.yaml through the Compose Specification's own loader
#                 (compose-go: schema, interpolation, consistency), with and without profiles
#   kustomize     build the base and every overlay, then
#   kubeconform   validate each rendered object against vendored strict Kubernetes schemas
#   check_static  what no schema says: dashboard datasource/uid use, runbooks, grace periods,
#                 probe ports, NetworkPolicy peers, CHUNKSCOPE_* names that the server knows
# Tools are built once from the Go module proxy into a cache outside the repository
# (CHUNKSCOPE_TOOLS_CACHE, default ~/.cache/chunkscope-deploy-tools); later runs reuse them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KUSTOMIZE_VERSION=v5.8.2  # v5.8.3 needs Go >= 1.27
KUBECONFORM_VERSION=v0.8.0
K8S_SCHEMAS=$ROOT/deploy/kubernetes/schemas/v1.33.0-standalone-strict
CACHE=${CHUNKSCOPE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chunkscope-deploy-tools}
OUT=$ROOT/build/deploy-check
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
started=$SECONDS
step() { printf '== %s (%ds)\n' "$*" $((SECONDS - started)); }

# --- tools -----------------------------------------------------------------------------------
if ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "installing Debian's prometheus (promtool)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "promtool not found: install Debian's prometheus package (or Prometheus' release)" >&2; exit 1
  fi
fi
command -v go >/dev/null || { echo "go not found: Go >= 1.24 builds kustomize, kubeconform, composecheck" >&2; exit 1; }

go_tool() {  # go_tool NAME PACKAGE@VERSION -> path of the cached binary
  local dir="$CACHE/$1-${2##*@}"
  if [ ! -x "$dir/$1" ]; then
    step "building $2 into $dir" >&2
    mkdir -p "$dir.tmp" && GOBIN="$dir.tmp" go install "$2" >&2
    [ "$1" = "$(basename "${2%@*}")" ] || mv "$dir.tmp/$(basename "${2%@*}")" "$dir.tmp/$1"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  echo "$dir/$1"
}
KUSTOMIZE=$(go_tool kustomize "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION")
KUBECONFORM=$(go_tool kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION")
composecheck_src=$ROOT/deploy/tools/composecheck
key=$(cat "$composecheck_src"/go.mod "$composecheck_src"/go.sum "$composecheck_src"/*.go | sha256sum | cut -c1-16)
COMPOSECHECK=$CACHE/composecheck-$key/composecheck
if [ ! -x "$COMPOSECHECK" ]; then
  step "building deploy/tools/composecheck"
  (cd "$composecheck_src" && go build -o "$COMPOSECHECK.tmp" . && mv "$COMPOSECHECK.tmp" "$COMPOSECHECK")
fi
rm -rf "$OUT" && mkdir -p "$OUT"

# --- Prometheus ------------------------------------------------------------------------------
step "promtool check rules"
promtool check rules deploy/prometheus/rules/*.rules.yml
step "promtool test rules (every alert fires and stays quiet in its unit test)"
promtool test rules deploy/prometheus/tests/*.test.yml
step "promtool check config (compose scrape config, with the repository's rule files)"
sed "s#/etc/prometheus/rules/#$ROOT/deploy/prometheus/rules/#" deploy/prometheus/prometheus.yml > "$OUT/prometheus.yml"
promtool check config "$OUT/prometheus.yml"

# --- Compose ---------------------------------------------------------------------------------
step "composecheck deploy/compose.yaml (default, --profile postgres)"
(cd deploy && env -u CHUNKSCOPE_STORE -u PGPASSWORD -u GRAFANA_ADMIN_PASSWORD \
  "$COMPOSECHECK" compose.yaml > "$OUT/compose.yaml")
(cd deploy && env -u CHUNKSCOPE_STORE -u PGPASSWORD -u GRAFANA_ADMIN_PASSWORD \
  "$COMPOSECHECK" -profile postgres compose.yaml > "$OUT/compose-postgres.yaml")

# --- Kubernetes ------------------------------------------------------------------------------
for target in base overlays/gpu overlays/gpu-tls; do
  name=${target##*/}
  step "kustomize build deploy/kubernetes/$target | kubeconform -strict (Kubernetes v1.33 schemas)"
  "$KUSTOMIZE" build "deploy/kubernetes/$target" > "$OUT/k8s-$name.yaml"
  "$KUBECONFORM" -strict -summary -schema-location "$K8S_SCHEMAS/{{.ResourceKind}}{{.KindSuffix}}.json" \
    "$OUT/k8s-$name.yaml"
done

# --- what the schemas do not say ------------------------------------------------------------
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3
step "deploy/check_static.py"
"$PY" deploy/check_static.py "$OUT"
step "deploy-check passed"
