#!/usr/bin/env bash
# Builds Breakwater (release) on a fresh Debian machine and runs it. With no arguments it
# serves the embedded demo on http://127.0.0.1:8080; arguments are passed to `breakwater`.
set -euo pipefail
cd "$(dirname "$0")/.."

source deploy/build-deps.sh
exec cargo run --locked --release -p breakwater-proxy --bin breakwater -- "$@"
