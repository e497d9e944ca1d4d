#!/usr/bin/env bash
# Runs every test of the workspace on a fresh Debian machine: installs what the build needs,
# then builds and runs all tests (the end-to-end tests start the real `breakwater` binary).
set -euo pipefail
cd "$(dirname "$0")/.."

source deploy/build-deps.sh

# redis-server for the fleet tests (each starts its own on a free loopback port).
if ! command -v redis-server >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
fi

# Guest components built from source with the real toolchains (componentize-py from PyPI,
# componentize-js from npm), installed on first use; the tests read them from here.
export BREAKWATER_GUESTS="${CARGO_TARGET_DIR:-$PWD/target}/guests"
bash isolate/guests/build.sh "$BREAKWATER_GUESTS"

# `cargo test` builds the `breakwater` binary too (proxy/tests/cli.rs needs it), with the
# same features as everything else, so the end-to-end tests in tests/ find it in the target dir.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "\nworkspace: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
