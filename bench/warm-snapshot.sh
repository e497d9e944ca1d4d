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
node_pid_main=$node_pid


for c in "${contenders[@]}"; do
  body=$(curl -s -H "Host: ${host[$c]}" "${url[$c]}")
  echo "$c answers: $body" >> "$out/answers.txt"
  case "$body" in "Hello from Spin on Breakwater!"*) ;; *) echo "$c: unexpected answer: $body" >&2; exit 1 ;; esac
done

printf "| round | contender | req/s | p99 |\n|---|---|---|---|\n" > "$work/rows"
for r in $(seq 1 "$rounds"); do
  for c in "${contenders[@]}"; do
    f="$out/r$r-$c.wrk"
    taskset -c 1 wrk -t1 -c16 -d"${secs}s" --latency -H "Host: ${host[$c]}" "${url[$c]}" > "$f"
    echo "| $r | $c | $(awk '/^Requests\/sec/ { print $2 }' "$f") | $(awk '$1 == "99%" { print $2 }' "$f") |" >> "$work/rows"
  done
done
rss=$(awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$node_pid_main/status")
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
{
  echo "# Spin SDK Python hello: fresh cold, fresh warm and reset-in-place instances"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD), $rounds rounds of ${secs} s; servers on CPU 0, wrk -t1 -c16 on CPU 1. Node RSS after the runs: $rss MiB."
  echo
  cat "$work/rows"
  echo
  echo "| contender | median req/s |"
  echo "|---|---|"
  for c in "${contenders[@]}"; do
    echo "| $c | $(awk -F'|' -v c="$c" '$3 ~ " "c" " { print $4 + 0 }' "$work/rows" | median) |"
  done
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
