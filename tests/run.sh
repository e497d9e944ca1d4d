#!/usr/bin/env bash
# Runs every test of the workspace on a fresh Debian machine: installs what the build needs,
# builds the `breakwater` binary the end-to-end tests start, then runs all tests.
set -euo pipefail
cd "$(dirname "$0")/.."

source deploy/build-deps.sh

cargo build --locked -p breakwater-proxy --bin breakwater
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "\nworkspace: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
