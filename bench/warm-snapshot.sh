#!/usr/bin/env bash
# Warm snapshots (`warmup:`) and reset in place (`reset_in_place:`), end to end: the Spin SDK
# Python hello (WASI 0.3) served by one node (server.threads: 1, CPU 0) from three components
# that differ only in those settings: `fresh-cold` (warmup off, a new instance per request, as
# built), `fresh-warm` (warmup auto: a new instance per request from a snapshot taken after
# one `GET /`), `reset` (the defaults: warm, and each instance reset in place after its
# request and served again); wrk -t1 -c16 on CPU 1, rounds alternating. (`wasmtime serve`
# 48.0.8 cannot link this component, its WASI 0.3 release-candidate and Spin imports:
# bench/reset-in-place.sh compares with it on the WASI 0.2 handlers.)
#
#   bench/warm-snapshot.sh [ROUNDS] [SECONDS]     (defaults: 3 rounds of 10 s)
set -euo pipefail
rounds="${1:-3}"
secs="${2:-10}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
scratch
need_tools
release_and_guests
out="$root/bench/results/warm-snapshot-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"

cat > "$work/node.yaml" <<YAML
server: { threads: 1 }
listeners: [{ name: web, address: "127.0.0.1:18500" }]
admin: { address: "127.0.0.1:18550" }
access_log: { format: off }
wasm: { cache_dir: "$guests/cache" }
components:
  fresh-cold: { path: "$guests/spin-hello.wasm", kind: handler, warmup: off, reset_in_place: false }
  fresh-warm: { path: "$guests/spin-hello.wasm", kind: handler, warmup: auto, reset_in_place: false }
  reset: { path: "$guests/spin-hello.wasm", kind: handler }
routes:
  - { match: { hosts: [fresh-cold] }, handler: fresh-cold }
  - { match: { hosts: [fresh-warm] }, handler: fresh-warm }
  - { match: { hosts: [reset] }, handler: reset }
YAML
# The app serves `/`: the two components are told apart by host name.
start_node node 18500
declare -A url host
contenders=()
for c in fresh-cold fresh-warm reset; do
  url[breakwater-$c]="http://127.0.0.1:18500/"
  host[breakwater-$c]=$c
  contenders+=("breakwater-$c")
done

wrk_contenders "$rounds" "$secs" "$out" "Hello from Spin on Breakwater!"
rss=$(awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$node_pid/status")
{
  echo "# Spin SDK Python hello: fresh cold, fresh warm and reset-in-place instances"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD), $rounds rounds of ${secs} s; servers on CPU 0, wrk -t1 -c16 on CPU 1. Node RSS after the runs: $rss MiB."
  echo
  contender_medians
  echo
  echo "Node log lines about warm-up and reset in place:"
  echo
  grep -h -i "warm\|reset" "$work/node.err" "$work/node.out" | sed 's/^/    /' || true
  echo
  echo "Instances reset in place (node metrics):"
  echo
  curl -s "http://127.0.0.1:18550/metrics" | grep "^breakwater_component_instance_resets" | sed 's/^/    /' || true
} > "$out/summary.md"
cat "$out/summary.md"
