#!/usr/bin/env bash
# Scale to zero: one node (server.threads: 1, CPU 0) loading N distinct copies of a handler
# (each its own bytes: a custom section with its number), one host name each, compiled into
# wasm.cache_dir by `breakwater check` first. For N = 1, 100, 1 000 and 10 000: how long
# `check` took (compiling), how long `run` took to be ready with a warm cache, RSS once
# ready, then for up to 200 never-requested components the latency of the first request (a
# cold start) and of the second (warm), over one keep-alive connection from CPU 1, and RSS
# after them. The WAT hello handler (the demo's) for every N; the C hello handler (clang +
# wasi-libc, isolate/guests) at N = 100; the demo's WAT filter (each copy on a route that
# answers itself) for FILTER_SIZES. ONLY=filter runs the filter cases alone, ONLY=wat the
# WAT handler's SIZES alone; ONLY=peer only
# the peer: `wasmtime serve` (wasmtime-cli 48.0.8, installed with cargo when missing) on the
# same WAT hello handler, precompiled, started 20 times: the time from its start to its first
# answer (its cold start: it has no other) and a warm request after it. ONLY=interpreted: the
# Python (componentize-py) and JavaScript (componentize-js) hello handlers of isolate/guests,
# INTERPRETED copies of each (default 5: each copy is compiled with its warm snapshot, tens
# of MiB of code and data).
#
#   bench/scale-to-zero.sh [SIZES...]     (default: 1 100 1000 10000; FILTER_SIZES="1000 10000")
set -euo pipefail
sizes=("$@")
[ $# -gt 0 ] || sizes=(1 100 1000 10000)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
scratch
need_tools
release_and_guests
out="$root/bench/results/scale-to-zero-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
"$bw" demo-components "$work/wasm" > /dev/null

# probe PORT N SAMPLES: first and second request latency to up to 200 components, in ms;
# every pair, in the order taken, to the file SAMPLES.
probe() {
  taskset -c 1 python3 - "$1" "$2" "$3" <<'PY'
import http.client, random, sys, time
port, n, samples = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
picked = random.Random(7).sample(range(n), min(n, 200))
c = http.client.HTTPConnection("127.0.0.1", port)
cold, warm = [], []
for i in picked:
    for bucket in (cold, warm):
        t = time.perf_counter()
        c.request("GET", "/", headers={"Host": f"h{i}.example"})
        r = c.getresponse(); r.read()
        assert r.status == 200, (i, r.status)
        bucket.append((time.perf_counter() - t) * 1000)
with open(samples, "w") as f:
    for c_ms, w_ms in zip(cold, warm):
        f.write(f"{c_ms:.3f} {w_ms:.3f}\n")
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(len(v) * p))]
print(f"{len(picked)} {pct(cold, .5):.3f} {pct(cold, .99):.3f} {pct(warm, .5):.3f} {pct(warm, .99):.3f}")
PY
}


run_case() { # run_case LABEL SRC N [filter]
  local label="$1" src="$2" n="$3" d="$work/$1-$3" kind="${4:-handler}"
  component_copies "$src" "$n" "$d/wasm"
  {
    echo "server: { threads: 1 }"
    echo "listeners: [{ name: web, address: \"127.0.0.1:18700\" }]"
    echo "admin: { address: \"127.0.0.1:18750\" }"
    echo "access_log: { format: off }"
    echo "wasm: { cache_dir: \"$d/cache\" }"
    echo "components:"
    for i in $(seq 0 $((n - 1))); do echo "  h$i: { path: \"$d/wasm/h$i.wasm\", kind: $kind }"; done
    echo "routes:"
    if [ "$kind" = filter ]; then
      for i in $(seq 0 $((n - 1))); do echo "  - { match: { hosts: [h$i.example] }, respond: { body: hi }, filters: [h$i] }"; done
    else
      for i in $(seq 0 $((n - 1))); do echo "  - { match: { hosts: [h$i.example] }, handler: h$i }"; done
    fi
  } > "$d/node.yaml"
  local t0 t1 check_ms ready_ms
  t0=$(date +%s%N)
  RUST_LOG=warn "$bw" check --config "$d/node.yaml" > "$d/check.out" 2>&1
  t1=$(date +%s%N); check_ms=$(( (t1 - t0) / 1000000 ))
  t0=$(date +%s%N)
  RUST_LOG=warn taskset -c 0 "$bw" run --config "$d/node.yaml" > "$d/node.out" 2> "$d/node.err" &
  local pid=$!
  for _ in $(seq 1 6000); do grep -q "breakwater ready" "$d/node.out" 2>/dev/null && break; sleep 0.01; done
  t1=$(date +%s%N); ready_ms=$(( (t1 - t0) / 1000000 ))
  local rss_ready; rss_ready=$(rss_mib "$pid")
  local probed; probed=$(probe 18700 "$n" "$out/samples-$label-$n.txt")
  local rss_after; rss_after=$(rss_mib "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  read -r k cold50 cold99 warm50 warm99 <<< "$probed"
  echo "| $label | $n | $check_ms | $ready_ms | $rss_ready | $k | $cold50 | $cold99 | $warm50 | $warm99 | $rss_after |"
}

# The peer's cold start (see the header).
peer_case() {
  local wasmtime_bin; need_wasmtime
  "$wasmtime_bin" compile "$work/wasm/hello-handler.wasm" -o "$work/hello.cwasm"
  taskset -c 1 python3 - "$wasmtime_bin" "$work/hello.cwasm" <<'PY'
import http.client, socket, subprocess, sys, time
wasmtime, cwasm = sys.argv[1], sys.argv[2]
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(len(v) * p))]
first, warm = [], []
for _ in range(20):
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(["taskset", "-c", "0", wasmtime, "serve", "--addr", f"127.0.0.1:{port}",
                             "--allow-precompiled", cwasm],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/"); r = c.getresponse(); r.read()
                break
            except OSError:
                assert time.perf_counter() - t0 < 10, "wasmtime serve did not answer"
                time.sleep(0.0005)
        first.append((time.perf_counter() - t0) * 1000)
        assert r.status == 200, r.status
        t = time.perf_counter()
        c.request("GET", "/"); r = c.getresponse(); r.read()
        warm.append((time.perf_counter() - t) * 1000)
    finally:
        proc.kill(); proc.wait()
print(f"| wasmtime serve (peer) | 1 | - | - | - | 20 | {pct(first, .5):.3f} | {pct(first, .99):.3f} | {pct(warm, .5):.3f} | {pct(warm, .99):.3f} | - |")
PY
}

{
  echo "# Scale to zero: N components on one node"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD); node on CPU 0 (server.threads: 1), client on CPU 1; latencies over one keep-alive HTTP/1.1 connection (Python http.client, its own overhead included in both)."
  echo
  echo "| component | components | check (compile) ms | run ready ms | RSS ready MiB | probed | cold p50 ms | cold p99 ms | warm p50 ms | warm p99 ms | RSS after MiB |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  if [ -z "${ONLY:-}" ] || [ "$ONLY" = wat ]; then
    for n in "${sizes[@]}"; do run_case wat "$work/wasm/hello-handler.wasm" "$n"; done
  fi
  if [ -z "${ONLY:-}" ]; then
    run_case c "$guests/c-handler.wasm" 100
  fi
  if [ "${ONLY:-}" = interpreted ]; then
    run_case python "$guests/py-handler.wasm" "${INTERPRETED:-5}"
    run_case javascript "$guests/js-handler.wasm" "${INTERPRETED:-5}"
  fi
  if [ -z "${ONLY:-}" ] || [ "$ONLY" = filter ]; then
    for n in ${FILTER_SIZES:-1000 10000}; do run_case filter "$work/wasm/demo-filter.wasm" "$n" filter; done
  fi
  if [ -z "${ONLY:-}" ] || [ "$ONLY" = peer ]; then
    echo
    echo "For the peer, cold p50/p99 is the time from starting \`wasmtime serve\` to its first answer (20 starts); warm, the next request."
    echo
    echo "| component | components | check (compile) ms | run ready ms | RSS ready MiB | probed | cold p50 ms | cold p99 ms | warm p50 ms | warm p99 ms | RSS after MiB |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    peer_case
  fi
} | tee "$out/summary.md"
