#!/usr/bin/env bash
# Transparent huge pages for the node's heap: mimalloc asks the kernel for them
# (madvise(MADV_HUGEPAGE) on its 2 MiB-aligned arenas), so a thread that grows its heap can
# fault in and zero a whole 2 MiB page at once. The same binary, alternately with mimalloc's
# huge pages (default) and without (MIMALLOC_ALLOW_THP=0), ROUNDS times:
#   1. cold starts: a node (CPU 0) with 1 000 distinct copies of the WAT hello handler,
#      compiled by `check`; 200 of them requested once each (cold) over one keep-alive
#      connection from CPU 1: p50, p99 and the slowest, and RSS after;
#   2. 1 KiB pass-through to an nginx origin (CPU 0 shared), wrk -t1 -c64 on CPU 1, 10 s:
#      req/s, p99, RSS; then the same with 1 000 connections (CONNS), 5 s: req/s, p99.
#
#   bench/thp.sh [ROUNDS]     (default 2)
set -euo pipefail
rounds="${1:-2}"
ulimit -n "$(ulimit -Hn)"   # wrk's and the node's descriptors for CONNS connections
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
scratch
need_tools
release_and_guests
out="$root/bench/results/thp-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
"$bw" demo-components "$work/wasm" > /dev/null
origin=$(free_port); web=$(free_port); admin=$(free_port)
start_origin "$origin"

component_copies "$work/wasm/hello-handler.wasm" 1000 "$work/h"
{
  echo "server: { threads: 1 }"
  echo "listeners: [{ name: web, address: \"127.0.0.1:$web\" }]"
  echo "admin: { address: \"127.0.0.1:$admin\" }"
  echo "access_log: { format: off }"
  echo "wasm: { cache_dir: \"$work/cache\" }"
  echo "components:"
  for i in $(seq 0 999); do echo "  h$i: { path: \"$work/h/h$i.wasm\", kind: handler }"; done
  echo "routes:"
  for i in $(seq 0 999); do echo "  - { match: { hosts: [h$i.example] }, handler: h$i }"; done
} > "$work/cold.yaml"
RUST_LOG=warn "$bw" check --config "$work/cold.yaml" > /dev/null
cat > "$work/pass.yaml" <<YAML
server: { threads: 1 }
listeners: [{ name: web, address: "127.0.0.1:$web" }]
admin: { address: "127.0.0.1:$admin" }
access_log: { format: off }
pools: { origin: { endpoints: ["127.0.0.1:$origin"] } }
routes: [{ pool: origin }]
YAML

# node MODE NAME: $work/NAME.yaml on CPU 0 with mimalloc's huge pages (MODE thp) or without
# (nothp), its pid in $node_pid.
node() {
  local allow=1; [ "$1" = nothp ] && allow=0
  MIMALLOC_ALLOW_THP=$allow RUST_LOG=warn start_node "$2" "$web"
}
stop() { kill "$node_pid"; wait "$node_pid" 2>/dev/null || true; }

{
  echo "# mimalloc's transparent huge pages on and off"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD), release build; node on CPU 0 (server.threads: 1), clients on CPU 1."
  echo
  echo "| round | heap | cold p50 ms | cold p99 ms | slowest cold ms | RSS after 200 cold MiB | pass-through req/s | p99 ms | RSS MiB | ${CONNS:-1000} conns req/s | p99 ms |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for r in $(seq 1 "$rounds"); do
    for mode in thp nothp; do
      node "$mode" cold
      cold=$(taskset -c 1 python3 - "$web" "$r" <<'PY'
import http.client, random, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
ms = []
for i in random.Random(int(sys.argv[2])).sample(range(1000), 200):
    t = time.perf_counter()
    c.request("GET", "/", headers={"Host": f"h{i}.example"}); r = c.getresponse(); r.read()
    assert r.status == 200
    ms.append((time.perf_counter() - t) * 1000)
ms.sort()
print(f"{ms[100]:.3f} {ms[198]:.3f} {ms[199]:.3f}")
PY
)
      cold_rss=$(rss_mib "$node_pid"); stop
      node "$mode" pass
      taskset -c 1 wrk -t1 -c64 -d10s --latency "http://127.0.0.1:$web/1k" > "$out/wrk-$mode-$r.txt"
      pass_rss=$(rss_mib "$node_pid")
      taskset -c 1 wrk -t1 -c"${CONNS:-1000}" -d5s --latency "http://127.0.0.1:$web/1k" > "$out/wrk-$mode-$r-many.txt"
      stop
      read -r c50 c99 cmax <<< "$cold"
      rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$out/wrk-$mode-$r.txt")
      many=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$out/wrk-$mode-$r-many.txt")
      echo "| $r | $mode | $c50 | $c99 | $cmax | $cold_rss | $rps | $(wrk_p99_ms < "$out/wrk-$mode-$r.txt") | $pass_rss | $many | $(wrk_p99_ms < "$out/wrk-$mode-$r-many.txt") |"
    done
  done
} | tee "$out/summary.md"
