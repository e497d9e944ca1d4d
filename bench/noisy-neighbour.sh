#!/usr/bin/env bash
# The noisy neighbour: does a saturated Python route slow down the pass-through route next
# to it on the same node? One node (`server.threads: 1`) and an nginx origin on CPU 0, wrk on
# CPU 1. Each round measures the pass-through route (1 KiB from nginx) alone, then again
# while a second wrk saturates the route served by the Python wasi:http handler
# (componentize-py), for these placements of the guest:
#
#   inline   `wasm.offload_above: off`: every guest runs on the listener's event loop
#   low      the default: off the loop (a guest costing more than 100 us per call), on guest
#            threads 10 nice levels down (`wasm.guest_priority: low`)
#   idle     off the loop, on guest threads under SCHED_IDLE (`wasm.guest_priority: idle`)
#
#   bench/noisy-neighbour.sh [ROUNDS] [SECONDS]      (defaults: 3 rounds of 10 s per run)
#   PLACEMENTS="low idle" bench/noisy-neighbour.sh   (default: all three)
#
# Reports wrk's p50 and p99 of the pass-through route and both routes' throughput, per round
# and as medians, and the median of the per-round ratios (p99 with Python / p99 alone, the two
# measured back to back: this VM's speed drifts over a run, which the medians of each column
# mix in). Results go to bench/results/noisy-DATE/ (summary.md, raw wrk output).
set -euo pipefail
rounds="${1:-3}"
secs="${2:-10}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
scratch
need_tools

release_and_guests
out="$root/bench/results/noisy-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"

ORIGIN=18201
start_origin $ORIGIN

# node CONFIG_NAME PORT ADMIN OFFLOAD PRIORITY: a node with the pass-through and the Python
# routes.
node() {
  local name="$1" port="$2" admin="$3" offload="$4" priority="$5"
  cat > "$work/$name.yaml" <<YAML
server: { threads: 1 }
listeners: [{ name: web, address: "127.0.0.1:$port" }]
admin: { address: "127.0.0.1:$admin" }
access_log: { format: off }
wasm: { offload_above: $offload, guest_priority: $priority, cache_dir: "$guests/cache" }
pools:
  origin: { endpoints: ["127.0.0.1:$ORIGIN"] }
components:
  py: { path: "$guests/py-handler.wasm", kind: handler, config: { GREETING: edge } }
routes:
  - { match: { path_prefix: /py }, handler: py }
  - { pool: origin }
YAML
  start_node "$name" "$port" /1k /py/x
}
placements="${PLACEMENTS:-inline low idle}"
declare -A port=([inline]=18202 [low]=18204 [idle]=18203)
for name in $placements; do
  case "$name" in
    inline) node inline 18202 18212 off idle ;;
    low) node low 18204 18214 100us low ;;
    idle) node idle 18203 18213 100us idle ;;
    *) echo "unknown placement $name" >&2; exit 1 ;;
  esac
done

# wrk's "99%" and "50%" lines in ms, and Requests/sec.
ms() { awk -v q="$1" '$1 == q { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } print v }' "$2"; }
rps() { awk '/^Requests\/sec/ { print $2 }' "$1"; }

printf "| round | placement | load | pass p50 ms | pass p99 ms | pass req/s | python req/s |\n|---|---|---|---|---|---|---|\n" > "$work/rows"
for r in $(seq 1 "$rounds"); do
  for name in $placements; do
    p=${port[$name]}
    for load in alone python; do
      f="$out/r$r-$name-$load"
      if [ "$load" = python ]; then
        taskset -c 1 wrk -t1 -c16 -d"$((secs + 2))s" "http://127.0.0.1:$p/py/x" > "$f.py" &
        noisy=$!
        sleep 1   # let the Python load reach its steady state before measuring
      fi
      taskset -c 1 wrk -t1 -c16 -d"${secs}s" --latency "http://127.0.0.1:$p/1k" > "$f.pass"
      py="-"
      if [ "$load" = python ]; then wait "$noisy"; py=$(rps "$f.py"); fi
      echo "| $r | $name | $load | $(ms 50% "$f.pass") | $(ms 99% "$f.pass") | $(rps "$f.pass") | $py |" >> "$work/rows"
    done
  done
done

{
  echo "# Noisy neighbour: pass-through next to a saturated Python route"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD), $rounds rounds of ${secs} s;"
  echo "node (server.threads: 1) and nginx origin on CPU 0, wrk -t1 -c16 on CPU 1 for each route."
  echo
  cat "$work/rows"
  echo
  echo "Medians:"
  echo
  echo "| placement | pass p99 alone ms | pass p99 with Python ms | ratio | per-round ratios | their median | pass req/s with Python | python req/s |"
  echo "|---|---|---|---|---|---|---|---|"
  for name in $placements; do
    col() { awk -F'|' -v n="$name" -v l="$1" -v c="$2" '$3 ~ " "n" " && $4 ~ " "l" " { gsub(/ /, "", $c); print $c }' "$work/rows" | median; }
    alone=$(col alone 6); noisy=$(col python 6)
    ratio=$(awk -v a="$alone" -v b="$noisy" 'BEGIN { printf "%.2f", b / a }')
    rounds_ratios=$(awk -F'|' -v n="$name" '$3 ~ " "n" " && $4 ~ " alone " { a[$2] = $6 } $3 ~ " "n" " && $4 ~ " python " { printf "%.2f\n", $6 / a[$2] }' "$work/rows")
    echo "| $name | $alone | $noisy | $ratio | $(echo $rounds_ratios | tr ' ' ',') | $(echo "$rounds_ratios" | median) | $(col python 7) | $(col python 8) |"
  done
} > "$out/summary.md"
cat "$out/summary.md"
echo "raw output: $out" >&2
