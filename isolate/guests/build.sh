#!/usr/bin/env bash
# Builds the guest components in isolate/guests from source with the real toolchains:
#   py-handler.wasm  wasi:http handler in Python (componentize-py, PyPI)
#   py-filter.wasm   Breakwater filter in Python (componentize-py; filter interface 0.2)
#   js-handler.wasm  wasi:http handler in JavaScript (componentize-js, npm)
#   spin-hello.wasm  Spin HTTP component written with the Spin Python SDK (spin-sdk, PyPI),
#                    built unchanged as `spin build` would (WASI 0.3, spin:* imports)
#   spin2-hello.wasm Spin 2 HTTP component written with the Spin Python SDK 3 (WASI 0.2,
#                    fermyon:spin@2.0.0 imports), built with the toolchain that SDK names
#   c-*.wasm         the C filters and the C wasi:http handler of isolate/examples (clang + wasi-libc from Debian,
#                    wit-bindgen's C generator and the preview1 adapter via guest-tool)
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
SPIN_SDK=5.0.0

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
if ! python3 -m pip show spin-sdk 2>/dev/null | grep -q "^Version: $SPIN_SDK$"; then
  python3 -m pip install --quiet --disable-pip-version-check "spin-sdk==$SPIN_SDK"
fi
if stale "$out/spin-hello.wasm" "$root/isolate/examples/spin-python" "$here/build.sh"; then
  componentize-py -w spin:up/http-trigger@4.1.0 componentize app \
    -p "$root/isolate/examples/spin-python" -o "$out/spin-hello.wasm"
fi
# The Spin Python SDK 3 (the SDK of Spin 2 and 3 apps) with the componentize-py it names, in a
# virtual environment of their own: componentize-py finds the SDK's WIT through the `python3`
# on PATH, which must not see spin-sdk 5.
SPIN2_VENV="$out/spin2-venv"
if [ ! -x "$SPIN2_VENV/bin/componentize-py" ] \
  || ! "$SPIN2_VENV/bin/python3" -m pip show spin-sdk 2>/dev/null | grep -q "^Version: 3.4.1$"; then
  python3 -m venv "$SPIN2_VENV"
  "$SPIN2_VENV/bin/python3" -m pip install --quiet --disable-pip-version-check \
    componentize-py==0.17.2 spin-sdk==3.4.1
fi
if stale "$out/spin2-hello.wasm" "$root/isolate/examples/spin-python-v2" "$here/build.sh"; then
  (cd "$out" && PATH="$SPIN2_VENV/bin:$PATH" VIRTUAL_ENV="$SPIN2_VENV" componentize-py \
    -w spin-http componentize app -p "$root/isolate/examples/spin-python-v2" \
    -o "$out/spin2-hello.wasm")
fi
if stale "$out/py-filter.wasm" "$here/python-filter" "$root/isolate/wit/0.2" "$here/build.sh"; then
  componentize-py -d "$root/isolate/wit/0.2" -w breakwater:filter/filter@0.2.0 componentize app \
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
# C: clang + wasi-libc (Debian) compile; `guest-tool` (isolate/guests/tool: wit-bindgen's C
# generator and wit-component with wasmtime's preview1 adapter) makes bindings and components.
if ! command -v clang-14 >/dev/null 2>&1 || [ ! -d /usr/lib/wasm32-wasi ] \
  || ! compgen -G "/usr/lib/llvm-14/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a" >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32 >/dev/null
fi
(cd "$root" && cargo build --quiet --locked -p breakwater-guest-tool)
tool="${CARGO_TARGET_DIR:-$root/target}/debug/guest-tool"
case "$tool" in /*) ;; *) tool="$root/$tool" ;; esac

# build_c OUT_NAME WORLD SOURCE.c [WIT_DIR ADAPTER]: a component of `world` from one C file
# (default: a filter of isolate/wit (interface 0.1), with the reactor adapter).
build_c() {
  local name="$1" world="$2" src="$3" wit="${4:-$root/isolate/wit}" adapter="${5:-reactor}"
  local gen="$out/c-gen/${name%.wasm}" core="$out/c-gen/$name.core.wasm"
  if stale "$out/$name" "$src" "$root/isolate/examples/c" "$wit" "$here/build.sh" "$tool"; then
    "$tool" c-bindings "$wit" "$world" "$gen"
    clang-14 --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor -Wall -Werror \
      -Wno-unused-function -I"$gen" -o "$core" "$src" "$gen/${world//-/_}.c" \
      "$gen/${world//-/_}_component_type.o"
    "$tool" component "$core" "$out/$name" "$adapter"
  fi
}
ex="$root/isolate/examples"
build_c c-header-rewrite.wasm filter "$ex/header-rewrite/header_rewrite.c" "$root/isolate/wit/0.2"
build_c c-hmac-auth.wasm request-filter "$ex/hmac-auth/hmac_auth.c"
build_c c-ab-cookie.wasm request-filter "$ex/ab-cookie/ab_cookie.c"
build_c c-handler.wasm http-handler "$ex/c-handler/hello.c" "$here/wit" proxy

ls -l "$out"/*.wasm
