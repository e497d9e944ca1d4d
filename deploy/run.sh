#!/usr/bin/env bash
# Builds Breakwater (release) on a fresh Debian machine and runs it. With no arguments it
# serves the embedded demo on http://127.0.0.1:8080; arguments are passed to `breakwater`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
exec cargo run --locked --release -p breakwater-proxy --bin breakwater -- "$@"
