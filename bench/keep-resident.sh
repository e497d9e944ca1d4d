#!/usr/bin/env bash
# How much of a pool slot to keep resident between instances (`wasm.keep_resident_mb`), for
# an interpreter guest: the Python wasi:http handler route, saturated by wrk (-t1 -c16, CPU
# 1), on nodes (server.threads: 1, CPU 0) that differ only in that setting, rounds
# alternating. Reports req/s and the node's RSS after each run.
#
#   bench/keep-resident.sh [ROUNDS] [SECONDS] [MIB...]    (defaults: 3 rounds, 10 s, 1 16 64)
set -euo pipefail
rounds="${1:-3}"
secs="${2:-10}"
shift 2 2>/dev/null || shift $#
sizes=("$@")
[ $# -gt 0 ] || sizes=(1 16 64)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
scratch
need_tools
release_and_guests
out="$root/bench/results/keep-resident-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"

declare -A port pid
n=0
for mb in "${sizes[@]}"; do
  p=$((18400 + n)); a=$((18450 + n)); n=$((n + 1))
  cat > "$work/$mb.yaml" <<YAML
server: { threads: 1 }
listeners: [{ name: web, address: "127.0.0.1:$p" }]
admin: { address: "127.0.0.1:$a" }
access_log: { format: off }
wasm: { keep_resident_mb: $mb, cache_dir: "$guests/cache" }
components:
  py: { path: "$guests/py-handler.wasm", kind: handler, config: { GREETING: edge } }
routes:
  - { handler: py }
YAML
  start_node "$mb" "$p" /py/x
  pid[$mb]=$node_pid; port[$mb]=$p
done

printf "| round | keep_resident_mb | req/s | node RSS after, MiB |\n|---|---|---|---|\n" > "$work/rows"
for r in $(seq 1 "$rounds"); do
  for mb in "${sizes[@]}"; do
    f="$out/r$r-$mb.wrk"
    taskset -c 1 wrk -t1 -c16 -d"${secs}s" "http://127.0.0.1:${port[$mb]}/py/x" > "$f"
    rss=$(awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/${pid[$mb]}/status")
    echo "| $r | $mb | $(awk '/^Requests\/sec/ { print $2 }' "$f") | $rss |" >> "$work/rows"
  done
done
{
  echo "# Python handler route by keep_resident_mb"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD), $rounds rounds of ${secs} s; node on CPU 0, wrk -t1 -c16 on CPU 1."
  echo
  cat "$work/rows"
  echo
  echo "| keep_resident_mb | median req/s | RSS after the last round, MiB |"
  echo "|---|---|---|"
  for mb in "${sizes[@]}"; do
    med=$(awk -F'|' -v m="$mb" '$3 + 0 == m { print $4 + 0 }' "$work/rows" | median)
    last=$(awk -F'|' -v m="$mb" '$3 + 0 == m { v = $5 + 0 } END { print v }' "$work/rows")
    echo "| $mb | $med | $last |"
  done
} > "$out/summary.md"
cat "$out/summary.md"
