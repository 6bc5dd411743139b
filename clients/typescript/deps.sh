# Sourced by generate.sh and test.sh: `npm ci` from the committed lock file into node_modules
# (git-ignored), again only when package-lock.json changes. npm's cache (~/.npm) keeps later
# installs offline-fast.
ensure_node_modules() {
  local stamp=node_modules/.chunkscope-lock.sha256
  local want
  want="$(sha256sum package-lock.json | cut -d' ' -f1)"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "npm ci (package-lock.json changed or node_modules missing)" >&2
    # No install scripts: none of the dependencies needs one (@bufbuild/buf's only checks its
    # binary, and races npm's own extraction of it: ETXTBSY).
    rm -rf node_modules
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2
    echo "$want" >"$stamp"
  fi
}
