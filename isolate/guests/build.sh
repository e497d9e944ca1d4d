#!/usr/bin/env bash
# Builds the guest components in isolate/guests from source with the real toolchains:
#   py-handler.wasm  wasi:http handler in Python (componentize-py, PyPI)
#   py-filter.wasm   Breakwater filter in Python (componentize-py)
#   js-handler.wasm  wasi:http handler in JavaScript (componentize-js, npm)
# Usage: isolate/guests/build.sh [OUT_DIR]   (default: $CARGO_TARGET_DIR or target, + /guests)
# Installs the toolchains when missing; rebuilds only what changed. Tests read OUT_DIR from
# BREAKWATER_GUESTS (tests/run.sh sets it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-${CARGO_TARGET_DIR:-$root/target}/guests}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

COMPONENTIZE_PY=0.25.1

# Rebuild $1 when it is missing or older than any of the other arguments (files or dirs).
stale() {
  local target="$1"; shift
  [ -f "$target" ] || return 0
  [ -n "$(find "$@" -newer "$target" -print -quit 2>/dev/null)" ]
}

if ! componentize-py --version 2>/dev/null | grep -q "$COMPONENTIZE_PY"; then
  python3 -m pip install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY"
fi

if stale "$out/py-handler.wasm" "$here/python" "$here/wit" "$here/build.sh"; then
  componentize-py -d "$here/wit" -w breakwater:guests/http-handler componentize app \
    -p "$here/python" -o "$out/py-handler.wasm"
fi
if stale "$out/py-filter.wasm" "$here/python-filter" "$root/isolate/wit" "$here/build.sh"; then
  componentize-py -d "$root/isolate/wit" -w breakwater:filter/filter@0.1.0 componentize app \
    -p "$here/python-filter" -o "$out/py-filter.wasm"
fi

if stale "$out/js-handler.wasm" "$here/js/handler.js" "$here/js/build.mjs" "$here/build.sh"; then
  if [ ! -d "$out/node/node_modules/@bytecodealliance/componentize-js" ]; then
    mkdir -p "$out/node"
    cp "$here/js/package.json" "$out/node/"
    (cd "$out/node" && npm install --no-audit --no-fund --loglevel=error)
  fi
  # StarlingMonkey exports wasi:http@0.2.10: the same WIT, labelled 0.2.10.
  wit="$out/wit-0.2.10"
  rm -rf "$wit" && mkdir -p "$wit/deps"
  for f in "$root"/isolate/wit/deps/*.wit; do
    sed 's/@0\.2\.12/@0.2.10/g; s/@since(version = 0\.2\.1[12])/@since(version = 0.2.10)/g' \
      "$f" > "$wit/deps/$(basename "$f")"
  done
  sed 's/@0\.2\.12/@0.2.10/' "$here/wit/world.wit" > "$wit/world.wit"
  cp "$here/js/build.mjs" "$here/js/handler.js" "$out/node/"
  node "$out/node/build.mjs" "$wit" "$out/js-handler.wasm"
fi
ls -l "$out"/*.wasm
