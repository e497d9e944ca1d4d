#!/usr/bin/env bash
# How Breakwater's cost grows with work (issue #7): throughput and p99 versus connections
# (1 to 10 000), versus number of routes (10 to 10 000), versus loaded components (1 to 500),
# versus cached objects (up to the memory budget); resident memory per idle connection.
#
#   bench/scaling.sh [SECONDS]      (default 3 s per point)
#
# Node on CPU 0 (one worker thread), nginx origin on CPU 0, load on CPU 1, all on loopback.
# Report: bench/results/scaling-DATE/scaling.md.
set -euo pipefail
secs="${1:-3}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source deploy/build-deps.sh
command -v nginx >/dev/null || {
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light
}
cargo build --release --locked -p breakwater-proxy -p breakwater-bench
target="${CARGO_TARGET_DIR:-$root/target}/release"
bw="$target/breakwater"
load="$target/breakwater-bench"
ulimit -n 65536 2>/dev/null || true

out="$root/bench/results/scaling-$(date -u +%Y%m%d-%H%M%S)"
work="$(mktemp -d)"
mkdir -p "$out" "$work/www" "$work/logs" "$work/wasm"
chmod 755 "$work"   # nginx workers (www-data) read the files
node_pid=""
cleanup() {
  pkill -f "$work/edge.yaml" 2>/dev/null || true
  [ -f "$work/origin.pid" ] && kill "$(cat "$work/origin.pid")" 2>/dev/null || true
  cp -r "$work/logs" "$out/" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ORIGIN=18201 WEB=18200 ADMIN=18210
head -c 768 /dev/urandom | base64 -w0 > "$work/www/1k"
cat > "$work/origin.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/origin.pid;
error_log $work/logs/origin.err;
events { worker_connections 16384; }
worker_rlimit_nofile 65536;
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$ORIGIN;
    root $work/www;
    location / { try_files /1k =404; add_header cache-control "max-age=3600"; }
  }
}
CONF
taskset -c 0 nginx -c "$work/origin.conf" -p "$work" > /dev/null 2>&1 &
"$bw" demo-components "$work/wasm"

rss() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
startup_ms=0
start_node() { # start_node CONFIG_BODY: (re)starts the node; sets node_pid and startup_ms
  if [ -n "$node_pid" ]; then
    kill "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  printf 'server: { threads: 1, grace_period: 0s }\nlisteners: [{ name: web, address: "127.0.0.1:%s" }]\nadmin: { address: "127.0.0.1:%s" }\naccess_log: { format: off }\n%s\n' \
    "$WEB" "$ADMIN" "$1" > "$work/edge.yaml"
  local t0; t0=$(date +%s%N)
  RUST_LOG=warn taskset -c 0 "$bw" run --config "$work/edge.yaml" > "$work/logs/bw.out" 2>> "$work/logs/bw.err" &
  node_pid=$!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$ADMIN/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
  startup_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
}
measure() { # measure URL CONNECTIONS -> "req/s p99ms"
  taskset -c 1 "$load" "$1" -c "$2" --warmup 1s -d "${secs}s" --json "$work/m.json" >/dev/null 2>&1 || true
  python3 -c "import json; r=json.load(open('$work/m.json')); print(f\"{r['requests_per_sec']:.0f} {r['p99_us']/1000:.2f}\")"
}
pool="pools: { origin: { endpoints: [\"127.0.0.1:$ORIGIN\"] } }"
{
  echo "# Breakwater scaling, $(date -u +%F), $(nproc) CPUs; node and origin on CPU 0, load on CPU 1; ${secs} s per point"
  echo
  echo "## Connections (pass-through, 1 KiB)"
  echo
  echo "| connections | req/s | p99 ms |"
  echo "|---|---|---|"
  start_node "$pool
routes: [{ pool: origin }]"
  for c in 1 10 100 1000 10000; do
    read -r rps p99 <<< "$(measure "http://127.0.0.1:$WEB/x" "$c")"
    echo "| $c | $rps | $p99 |"
  done
  echo
  echo "## Idle connections (a fresh node)"
  echo
  start_node "$pool
routes: [{ pool: origin }]"
  curl -sf -H "Host: a" "http://127.0.0.1:$WEB/x" > /dev/null || true
  before=$(rss "$node_pid")
  python3 - "$WEB" 10000 > "$work/idle.txt" <<'PY' &
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    socks.append(s)
for s in socks:
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
print("open", flush=True)
time.sleep(8)
PY
  idle_pid=$!
  for _ in $(seq 300); do grep -q open "$work/idle.txt" 2>/dev/null && break; sleep 0.2; done
  sleep 1
  after=$(rss "$node_pid")
  echo "10 000 idle keep-alive connections (each served one request): RSS $before KiB -> $after KiB, $(( (after - before) * 1024 / 10000 )) bytes per connection; growth $(( (after - before) / 1024 )) MiB"
  wait "$idle_pid" 2>/dev/null || true
  echo
  echo "## Routes (request to the last route, 64 connections)"
  echo
  echo "| routes | startup ms | req/s | p99 ms | RSS KiB |"
  echo "|---|---|---|---|---|"
  for n in 10 100 1000 10000; do
    routes="$(python3 -c "
n=$n
print('routes:')
for i in range(n): print(f'  - {{ match: {{ path: /r/{i} }}, pool: origin }}')")"
    start_node "$pool
$routes"
    read -r rps p99 <<< "$(measure "http://127.0.0.1:$WEB/r/$((n - 1))" 64)"
    echo "| $n | $startup_ms | $rps | $p99 | $(rss "$node_pid") |"
  done
  echo
  echo "## Loaded components (one filter on the measured route, 64 connections)"
  echo
  echo "| components | startup ms | req/s | p99 ms | RSS KiB |"
  echo "|---|---|---|---|---|"
  for n in 1 10 100 500; do
    comps="$(python3 -c "
n=$n
print('wasm: { max_instances: 2000 }')
print('components:')
for i in range(n): print(f'  f{i}: {{ path: \"$work/wasm/demo-filter.wasm\", prewarm: 1 }}')
print('routes: [{ pool: origin, filters: [f0] }]')")"
    start_node "$pool
$comps"
    read -r rps p99 <<< "$(measure "http://127.0.0.1:$WEB/x" 64)"
    echo "| $n | $startup_ms | $rps | $p99 | $(rss "$node_pid") |"
  done
  echo
  echo "## Cached objects (1 KiB each, memory budget 64 MiB; hits on one object, 64 connections)"
  echo
  echo "| objects stored | req/s | p99 ms | RSS KiB |"
  echo "|---|---|---|---|"
  start_node "cache: { memory_mb: 64 }
$pool
routes: [{ pool: origin, cache: {} }]"
  filled=0
  for n in 1000 10000 40000; do
    python3 - "$WEB" "$filled" "$n" <<'PY'
import http.client, sys
port, start, end = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
for i in range(start, end):
    c.request("GET", f"/obj/{i}", headers={"Host": "a"})
    c.getresponse().read()
PY
    filled=$n
    read -r rps p99 <<< "$(measure "http://127.0.0.1:$WEB/obj/1" 64)"
    echo "| $n | $rps | $p99 | $(rss "$node_pid") |"
  done
} | tee "$out/scaling.md"
echo "results in $out"
