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

python3 - "$work" "$web" "$admin" <<'PY'
import os, sys
work, web, admin = sys.argv[1], sys.argv[2], sys.argv[3]
body = open(f"{work}/wasm/hello-handler.wasm", "rb").read()
def leb(v):
    out = bytearray()
    while True:
        b = v & 0x7F; v >>= 7; out.append(b | (0x80 if v else 0))
        if not v: return bytes(out)
os.makedirs(f"{work}/h", exist_ok=True)
for i in range(1000):
    content = leb(4) + b"copy" + str(i).encode()
    open(f"{work}/h/h{i}.wasm", "wb").write(body + b"\x00" + leb(len(content)) + content)
with open(f"{work}/cold.yaml", "w") as f:
    f.write(f'server: {{ threads: 1 }}\nlisteners: [{{ name: web, address: "127.0.0.1:{web}" }}]\n'
            f'admin: {{ address: "127.0.0.1:{admin}" }}\naccess_log: {{ format: off }}\n'
            f'wasm: {{ cache_dir: "{work}/cache" }}\ncomponents:\n')
    for i in range(1000): f.write(f'  h{i}: {{ path: "{work}/h/h{i}.wasm", kind: handler }}\n')
    f.write("routes:\n")
    for i in range(1000): f.write(f'  - {{ match: {{ hosts: [h{i}.example] }}, handler: h{i} }}\n')
PY
RUST_LOG=warn "$bw" check --config "$work/cold.yaml" > /dev/null
cat > "$work/pass.yaml" <<YAML
server: { threads: 1 }
listeners: [{ name: web, address: "127.0.0.1:$web" }]
admin: { address: "127.0.0.1:$admin" }
access_log: { format: off }
pools: { origin: { endpoints: ["127.0.0.1:$origin"] } }
routes: [{ pool: origin }]
YAML

# node MODE YAML: start the node (MODE thp or nothp), its pid in $pid.
node() {
  local env=(MIMALLOC_ALLOW_THP=1); [ "$1" = nothp ] && env=(MIMALLOC_ALLOW_THP=0)
  env "${env[@]}" RUST_LOG=warn taskset -c 0 "$bw" run --config "$2" > "$work/node.out" 2> "$work/node.err" &
  pid=$!
  for _ in $(seq 1 1000); do grep -q "breakwater ready" "$work/node.out" 2>/dev/null && return; sleep 0.01; done
  echo "the node did not start" >&2; exit 1
}
rss() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }

{
  echo "# mimalloc's transparent huge pages on and off"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD), release build; node on CPU 0 (server.threads: 1), clients on CPU 1."
  echo
  echo "| round | heap | cold p50 ms | cold p99 ms | slowest cold ms | RSS after 200 cold MiB | pass-through req/s | p99 ms | RSS MiB | ${CONNS:-1000} conns req/s | p99 ms |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for r in $(seq 1 "$rounds"); do
    for mode in thp nothp; do
      node "$mode" "$work/cold.yaml"
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
      cold_rss=$(rss "$pid"); stop
      node "$mode" "$work/pass.yaml"
      taskset -c 1 wrk -t1 -c64 -d10s --latency "http://127.0.0.1:$web/1k" > "$out/wrk-$mode-$r.txt"
      pass_rss=$(rss "$pid")
      taskset -c 1 wrk -t1 -c"${CONNS:-1000}" -d5s --latency "http://127.0.0.1:$web/1k" > "$out/wrk-$mode-$r-many.txt"
      stop
      read -r c50 c99 cmax <<< "$cold"
      rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$out/wrk-$mode-$r.txt")
      many=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$out/wrk-$mode-$r-many.txt")
      echo "| $r | $mode | $c50 | $c99 | $cmax | $cold_rss | $rps | $(wrk_p99_ms < "$out/wrk-$mode-$r.txt") | $pass_rss | $many | $(wrk_p99_ms < "$out/wrk-$mode-$r-many.txt") |"
    done
  done
} | tee "$out/summary.md"
