#!/usr/bin/env bash
# Side-by-side comparison of Breakwater with nginx (reverse proxy), HAProxy and Varnish
# (cache), all in front of the same nginx origin serving static 1 KiB and 100 KiB files, on
# loopback. One command:
#
#   bench/compare.sh [ROUNDS] [SECONDS]      (defaults: 3 rounds of 5 s per run)
#
# Servers run pinned to CPU 0, the load generator (bench's `breakwater-bench`) to CPU 1.
# Contenders run one at a time, alternated round by round so machine drift spreads over all
# of them; the report gives every round, the medians, and each contender's ratio to
# Breakwater, with CPU seconds and peak RSS of each server. Results go to
# bench/results/DATE/ (summary.md and one JSON per run).
set -euo pipefail
rounds="${1:-3}"
secs="${2:-5}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source deploy/build-deps.sh

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v varnishd >/dev/null || need+=(varnish)
command -v haproxy >/dev/null || need+=(haproxy)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
cargo build --release --locked -p breakwater-proxy -p breakwater-bench
target="${CARGO_TARGET_DIR:-$root/target}/release"
bw="$target/breakwater"
load="$target/breakwater-bench"

out="$root/bench/results/$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
work="$(mktemp -d)"
chmod 755 "$work"   # varnishd reads its VCL as its own user
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  cp -r "$work/logs" "$out/" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Ports (loopback only).
ORIGIN=18001 BW=18002 BWADMIN=18012 NGINX=18003 HAPROXY=18004 VARNISH=18005

# --- the origin: nginx serving static files -------------------------------------------
mkdir -p "$work/www" "$work/logs"
# base64 of 768 and 76 800 random bytes: exactly 1 KiB and 100 KiB (no SIGPIPE'd pipes).
head -c 768 /dev/urandom | base64 -w0 > "$work/www/1k"
head -c 76800 /dev/urandom | base64 -w0 > "$work/www/100k"
cat > "$work/origin.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/origin.pid;
error_log $work/logs/origin.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$ORIGIN;
    root $work/www;
    location / { add_header cache-control "public, max-age=3600"; }
  }
}
EOF
taskset -c 0 nginx -c "$work/origin.conf" -p "$work" &
pids+=($!)

# --- contenders ----------------------------------------------------------------------
"$bw" demo-components "$work/wasm"
cat > "$work/breakwater.yaml" <<EOF
server: { threads: 1 }
listeners: [{ name: web, address: "127.0.0.1:$BW", h2c: true }]
admin: { address: "127.0.0.1:$BWADMIN" }
access_log: { format: off }
cache: { memory_mb: 512 }
pools:
  origin: { endpoints: ["127.0.0.1:$ORIGIN"] }
components:
  f1: { path: "$work/wasm/demo-filter.wasm", prewarm: 64 }
  f2: { path: "$work/wasm/demo-filter.wasm", prewarm: 64 }
  f3: { path: "$work/wasm/demo-filter.wasm", prewarm: 64 }
  hello: { path: "$work/wasm/hello-handler.wasm", kind: handler, prewarm: 64 }
routes:
  - { match: { path: /hello }, handler: hello }
  - { match: { path_prefix: /cache/ }, pool: origin, cache: {} }
  - { match: { path_prefix: /filter1/ }, pool: origin, filters: [f1] }
  - { match: { path_prefix: /filter3/ }, pool: origin, filters: [f1, f2, f3] }
  - { match: { path_prefix: /mixed/ }, pool: origin, filters: [f1], cache: {} }
  - { pool: origin }
EOF
# Routes forward their path as is: the origin has the files under each prefix too.
for p in cache filter1 filter3 mixed; do mkdir -p "$work/www/$p"; cp "$work/www/1k" "$work/www/100k" "$work/www/$p/"; done
RUST_LOG=warn taskset -c 0 "$bw" run --config "$work/breakwater.yaml" > "$work/logs/bw.out" 2> "$work/logs/bw.err" &
pids+=($!); bw_pid=$!

cat > "$work/nginx-proxy.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx-proxy.pid;
error_log $work/logs/nginx-proxy.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
taskset -c 0 nginx -c "$work/nginx-proxy.conf" -p "$work" &
pids+=($!); nginx_pid=$!

cat > "$work/haproxy.cfg" <<EOF
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:$HAPROXY
  default_backend be
backend be
  http-reuse always
  server o 127.0.0.1:$ORIGIN
EOF
taskset -c 0 haproxy -f "$work/haproxy.cfg" -db > "$work/logs/haproxy.out" 2>&1 &
pids+=($!); haproxy_pid=$!

cat > "$work/varnish.vcl" <<EOF
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$ORIGIN"; }
EOF
taskset -c 0 varnishd -F -a "127.0.0.1:$VARNISH" -f "$work/varnish.vcl" -s malloc,512m \
  -n "$work/varnish" -p thread_pools=1 > "$work/logs/varnish.out" 2>&1 &
pids+=($!); varnish_pid=$!

wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 never opened; logs in $out/logs" >&2; exit 1
}
for p in $ORIGIN $BW $NGINX $HAPROXY $VARNISH; do wait_port "$p"; done

# Process CPU seconds (user + system) and peak RSS (MiB) of a pid and its children.
cpu_of() {
  local total=0
  for p in "$1" $(pgrep -P "$1" || true); do
    total=$(awk -v t="$total" '{ printf "%.2f", t + ($14 + $15) / 100 }' "/proc/$p/stat" 2>/dev/null || echo "$total")
  done
  echo "$total"
}
rss_of() {
  local total=0
  for p in "$1" $(pgrep -P "$1" || true); do
    local kb; kb=$(awk '/VmHWM/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  echo $((total / 1024))
}

# scenario|contender|url|proto|pid
scenarios=(
  "pass 1k|origin|http://127.0.0.1:$ORIGIN/1k|h1|"
  "pass 1k|breakwater|http://127.0.0.1:$BW/1k|h1|$bw_pid"
  "pass 1k|nginx|http://127.0.0.1:$NGINX/1k|h1|$nginx_pid"
  "pass 1k|haproxy|http://127.0.0.1:$HAPROXY/1k|h1|$haproxy_pid"
  "pass 100k|breakwater|http://127.0.0.1:$BW/100k|h1|$bw_pid"
  "pass 100k|nginx|http://127.0.0.1:$NGINX/100k|h1|$nginx_pid"
  "pass 100k|haproxy|http://127.0.0.1:$HAPROXY/100k|h1|$haproxy_pid"
  "cache hit 1k|breakwater|http://127.0.0.1:$BW/cache/1k|h1|$bw_pid"
  "cache hit 1k|varnish|http://127.0.0.1:$VARNISH/cache/1k|h1|$varnish_pid"
  "cache hit 100k|breakwater|http://127.0.0.1:$BW/cache/100k|h1|$bw_pid"
  "cache hit 100k|varnish|http://127.0.0.1:$VARNISH/cache/100k|h1|$varnish_pid"
  "h2c pass 1k|breakwater|http://127.0.0.1:$BW/1k|h2c|$bw_pid"
  "one filter 1k|breakwater|http://127.0.0.1:$BW/filter1/1k|h1|$bw_pid"
  "three filters 1k|breakwater|http://127.0.0.1:$BW/filter3/1k|h1|$bw_pid"
  "handler hello|breakwater|http://127.0.0.1:$BW/hello|h1|$bw_pid"
  "cache hit + filter 1k|breakwater|http://127.0.0.1:$BW/mixed/1k|h1|$bw_pid"
)

echo "round|scenario|contender|req/s|p50 ms|p99 ms|errors|cpu s|peak rss MiB" > "$out/runs.psv"
for round in $(seq 1 "$rounds"); do
  for s in "${scenarios[@]}"; do
    IFS='|' read -r scenario contender url proto pid <<< "$s"
    name="$(echo "r$round-$scenario-$contender" | tr ' +' '__')"
    cpu0=0; [ -n "$pid" ] && cpu0=$(cpu_of "$pid")
    streams=1; [ "$proto" = h2c ] && streams=8
    taskset -c 1 "$load" "$url" --proto "$proto" -c 64 --streams "$streams" \
      --warmup 1s -d "${secs}s" --label "$scenario/$contender" --json "$out/$name.json" \
      2>/dev/null | tail -1
    cpu=""; rss=""
    if [ -n "$pid" ]; then
      cpu=$(awk -v a="$(cpu_of "$pid")" -v b="$cpu0" 'BEGIN { printf "%.2f", a - b }')
      rss=$(rss_of "$pid")
    fi
    python3 - "$out/$name.json" "$round" "$scenario" "$contender" "$cpu" "$rss" >> "$out/runs.psv" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("|".join([sys.argv[2], sys.argv[3], sys.argv[4], f"{r['requests_per_sec']:.0f}",
                f"{r['p50_us']/1000:.2f}", f"{r['p99_us']/1000:.2f}",
                str(r['errors_status'] + r['errors_io']), sys.argv[5], sys.argv[6]]))
PY
  done
done

python3 - "$out/runs.psv" "$rounds" "$secs" > "$out/summary.md" <<'PY'
import statistics, sys, collections, platform, datetime, os
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1])][1:]
by = collections.OrderedDict()
for r in rows:
    by.setdefault((r[1], r[2]), []).append(r)
print(f"# Breakwater comparison, {datetime.date.today()}\n")
print(f"{os.cpu_count()} CPUs ({platform.machine()}), servers on CPU 0, load on CPU 1; "
      f"{sys.argv[2]} rounds of {sys.argv[3]} s, 64 connections, HTTP/1.1 unless noted.\n")
print("| scenario | contender | req/s (median) | per round | p50 ms | p99 ms | errors | "
      "CPU s | peak RSS MiB | vs Breakwater |")
print("|---|---|---|---|---|---|---|---|---|---|")
med = {k: statistics.median(float(r[3]) for r in v) for k, v in by.items()}
for (scenario, contender), v in by.items():
    bw = med.get((scenario, "breakwater"))
    ratio = f"{med[(scenario, contender)] / bw:.2f}" if bw else ""
    print(f"| {scenario} | {contender} | {med[(scenario, contender)]:.0f} | "
          f"{', '.join(r[3] for r in v)} | {statistics.median(float(r[4]) for r in v):.2f} | "
          f"{statistics.median(float(r[5]) for r in v):.2f} | {sum(int(r[6]) for r in v)} | "
          f"{v[-1][7]} | {v[-1][8]} | {ratio} |")
PY
cat "$out/summary.md"
echo "results: $out"
