#!/usr/bin/env bash
# Side-by-side comparison of Breakwater with nginx (reverse proxy), HAProxy, Varnish (cache)
# and `wasmtime serve` (the same wasi:http components: the WAT hello handler and, when the guests
# are built, the C one), all in front of the same nginx origin
# serving static 1 KiB and 100 KiB files, on loopback. One command:
#
#   bench/compare.sh [ROUNDS] [SECONDS]      (defaults: 3 rounds of 5 s per run)
#
# then bench/scaling.sh (skip it with SKIP_SCALING=1). ONLY=REGEX runs only the scenarios
# whose name matches (e.g. ONLY='h3 vs h2'), without the load generator validation.
#
# Servers run pinned to CPU 0, the load generator (bench's `breakwater-bench`) to CPU 1.
# Contenders run one at a time, alternated round by round so machine drift spreads over all
# of them; the report gives every round, the medians, and each contender's ratio to
# Breakwater, with CPU seconds and peak RSS of each server, a latency plot per scenario
# (SVG), and a validation of the load generator against wrk (HTTP/1.1) and h2load (h2c) on
# the same targets. Results go to bench/results/DATE/ (summary.md, plots, one JSON per run).
# `wasmtime serve` comes from `cargo install wasmtime-cli --version 48.0.8 --locked` (cached
# in ~/.cargo/bin; the first install compiles for a while).
set -euo pipefail
rounds="${1:-3}"
secs="${2:-5}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v varnishd >/dev/null || need+=(varnish)
command -v haproxy >/dev/null || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
cargo build --release --locked -p breakwater-proxy -p breakwater-bench
target="${CARGO_TARGET_DIR:-$root/target}/release"
bw="$target/breakwater"
load="$target/breakwater-bench"
plot="$target/breakwater-plot"
wasmtime_bin="$(command -v wasmtime || echo "$HOME/.cargo/bin/wasmtime")"
# `wasmtime serve` is only needed by the handler scenario.
if [[ -z "${ONLY:-}" || "handler hello C handler hello" =~ $ONLY ]]; then need_wasmtime; fi

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
ORIGIN=18001 BW=18002 BWADMIN=18012 NGINX=18003 HAPROXY=18004 VARNISH=18005 WASMTIME=18006
WASMTIME_C=18007
BWTLS=18443 NGINXTLS=18444 HAPROXYTLS=18445

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
self_signed_cert bench.test
cat "$work/cert.pem" "$work/key.pem" > "$work/haproxy.pem"
cat > "$work/breakwater.yaml" <<EOF
server: { threads: 1 }
listeners:
  - { name: web, address: "127.0.0.1:$BW", h2c: true }
  - name: tls
    address: "127.0.0.1:$BWTLS"
    protocol: https
    http3: true
    certificates: [{ names: [bench.test], cert: "$work/cert.pem", key: "$work/key.pem" }]
admin: { address: "127.0.0.1:$BWADMIN" }
access_log: { format: off }
cache: { memory_mb: 512 }
pools:
  origin: { endpoints: ["127.0.0.1:$ORIGIN"] }
components:
  f1: { path: "$work/wasm/demo-filter.wasm" }
  f2: { path: "$work/wasm/demo-filter.wasm" }
  f3: { path: "$work/wasm/demo-filter.wasm" }
  hello: { path: "$work/wasm/hello-handler.wasm", kind: handler }
routes:
  - { match: { path: /hello }, handler: hello }
  - { match: { path_prefix: /cache/ }, pool: origin, cache: {} }
  - { match: { path_prefix: /filter1/ }, pool: origin, filters: [f1] }
  - { match: { path_prefix: /filter3/ }, pool: origin, filters: [f1, f2, f3] }
  - { match: { path_prefix: /mixed/ }, pool: origin, filters: [f1], cache: {} }
  - { match: { path_prefix: /mixed-origin/ }, pool: origin, filters: [f1] }
  - { pool: origin }
EOF
# A Spin SDK (Python) component, when the guests are built (isolate/guests/build.sh, which the
# test command runs): served on the host spin.test.
spin_wasm="${BREAKWATER_GUESTS:-${CARGO_TARGET_DIR:-$root/target}/guests}/spin-hello.wasm"
if [ -f "$spin_wasm" ]; then
  sed -i "s|^components:|components:\n  spin: { path: \"$spin_wasm\", kind: handler }|; s|^routes:|routes:\n  - { match: { hosts: [spin.test] }, handler: spin }|" \
    "$work/breakwater.yaml"
fi
# The C hello handler (clang + wasi-libc, isolate/guests/build.sh), when built: /c-hello.
c_wasm="${BREAKWATER_GUESTS:-${CARGO_TARGET_DIR:-$root/target}/guests}/c-handler.wasm"
if [ -f "$c_wasm" ]; then
  sed -i "s|^components:|components:\n  chello: { path: \"$c_wasm\", kind: handler }|; s|^routes:|routes:\n  - { match: { path: /c-hello }, handler: chello }|" \
    "$work/breakwater.yaml"
fi
# Routes forward their path as is: the origin has the files under each prefix too.
for p in cache filter1 filter3 mixed mixed-origin; do mkdir -p "$work/www/$p"; cp "$work/www/1k" "$work/www/100k" "$work/www/$p/"; done
RUST_LOG=warn taskset -c 0 "$bw" run --config "$work/breakwater.yaml" > "$work/logs/bw.out" 2> "$work/logs/bw.err" &
pids+=($!); bw_pid=$!

nginx_proxy_conf $NGINX 1 4096 "    listen 127.0.0.1:$NGINXTLS ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;" > "$work/nginx-proxy.conf"
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
  bind 127.0.0.1:$HAPROXYTLS ssl crt $work/haproxy.pem alpn h2,http/1.1
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

wasmtime_pid=""
if [ "$want_wasmtime" = 1 ]; then
  taskset -c 0 "$wasmtime_bin" serve --addr "127.0.0.1:$WASMTIME" "$work/wasm/hello-handler.wasm" \
    > "$work/logs/wasmtime.out" 2>&1 &
  pids+=($!); wasmtime_pid=$!
  wasmtime_c_pid=""
  if [ -f "$c_wasm" ]; then
    taskset -c 0 "$wasmtime_bin" serve --addr "127.0.0.1:$WASMTIME_C" "$c_wasm" \
      > "$work/logs/wasmtime-c.out" 2>&1 &
    pids+=($!); wasmtime_c_pid=$!
  fi
fi

wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 never opened; logs in $out/logs" >&2; exit 1
}
ports=($ORIGIN $BW $BWTLS $NGINX $NGINXTLS $HAPROXY $HAPROXYTLS $VARNISH)
[ "$want_wasmtime" = 1 ] && ports+=($WASMTIME)
[ "$want_wasmtime" = 1 ] && [ -f "$c_wasm" ] && ports+=($WASMTIME_C)
for p in "${ports[@]}"; do wait_port "$p"; done

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
  "handler hello|wasmtime serve|http://127.0.0.1:$WASMTIME/hello|h1|$wasmtime_pid"
  "C handler hello|breakwater|http://127.0.0.1:$BW/c-hello|h1|$bw_pid"
  "C handler hello|wasmtime serve|http://127.0.0.1:$WASMTIME_C/c-hello|h1|${wasmtime_c_pid:-}"
  "Spin SDK Python hello|breakwater|http://127.0.0.1:$BW/|h1|$bw_pid"
  "cache hit + filter 1k|breakwater|http://127.0.0.1:$BW/mixed/1k|h1|$bw_pid"
  "mixed 80% hit 20% origin, filter|breakwater|http://127.0.0.1:$BW/mixed/1k|h1|$bw_pid"
  "TLS h1 pass 1k|breakwater|https://127.0.0.1:$BWTLS/1k|h1|$bw_pid"
  "TLS h1 pass 1k|nginx|https://127.0.0.1:$NGINXTLS/1k|h1|$nginx_pid"
  "TLS h1 pass 1k|haproxy|https://127.0.0.1:$HAPROXYTLS/1k|h1|$haproxy_pid"
  "TLS h2 pass 1k|breakwater|https://127.0.0.1:$BWTLS/1k|h2|$bw_pid"
  "TLS h2 pass 1k|nginx|https://127.0.0.1:$NGINXTLS/1k|h2|$nginx_pid"
  "TLS h2 pass 1k|haproxy|https://127.0.0.1:$HAPROXYTLS/1k|h2|$haproxy_pid"
  "h3 vs h2: pass 1k|breakwater h2|https://127.0.0.1:$BWTLS/1k|h2|$bw_pid"
  "h3 vs h2: pass 1k|breakwater h3|https://127.0.0.1:$BWTLS/1k|h3|$bw_pid"
  "h3 vs h2: cache hit 1k|breakwater h2|https://127.0.0.1:$BWTLS/cache/1k|h2|$bw_pid"
  "h3 vs h2: cache hit 1k|breakwater h3|https://127.0.0.1:$BWTLS/cache/1k|h3|$bw_pid"
)

echo "round|scenario|contender|req/s|p50 ms|p99 ms|errors|cpu s|peak rss MiB" > "$out/runs.psv"
for round in $(seq 1 "$rounds"); do
  for s in "${scenarios[@]}"; do
    IFS='|' read -r scenario contender url proto pid <<< "$s"
    [[ -n "${ONLY:-}" && ! "$scenario" =~ $ONLY ]] && continue
    name="$(echo "r$round-$scenario-$contender" | tr ' +' '__')"
    cpu0=0; [ -n "$pid" ] && cpu0=$(cpu_of "$pid")
    streams=1; conns=64; extra=()
    case "$proto" in h2c | h2 | h3) streams=8; conns=8 ;; esac
    case "$url" in https://*) extra+=(--insecure --host bench.test) ;; esac
    case "$scenario" in
      mixed*) extra+=(--mix /mixed/1k --mix /mixed/1k --mix /mixed/1k --mix /mixed-origin/1k) ;;
      Spin*) [ -f "$spin_wasm" ] || continue; extra+=(--host spin.test) ;;
      C\ *) [ -f "$c_wasm" ] || continue ;;
    esac
    taskset -c 1 "$load" "$url" --proto "$proto" -c "$conns" --streams "$streams" "${extra[@]}" \
      --warmup 1s -d "${secs}s" --label "$contender" --json "$out/$name.json" \
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

# One latency plot per scenario, from the last round's runs.
for s in "${scenarios[@]}"; do
  IFS='|' read -r scenario _ <<< "$s"
  slug="$(echo "$scenario" | tr -c 'a-zA-Z0-9\n' '_')"
  [ -f "$out/plot-$slug.svg" ] && continue
  files=()
  for f in "$out"/r"$rounds"-"$(echo "$scenario" | tr ' +' '__')"-*.json; do [ -f "$f" ] && files+=("$f"); done
  [ ${#files[@]} -gt 0 ] && "$plot" "$out/plot-$slug.svg" "$scenario" "${files[@]}"
done

# The load generator against wrk (HTTP/1.1) and h2load (h2c), same targets and connections.
[ -n "${ONLY:-}" ] && echo "(left out: ONLY=$ONLY)" > "$out/validation.md" || {
  echo "| target | tool | req/s |"
  echo "|---|---|---|"
  for t in "breakwater pass 1k|http://127.0.0.1:$BW/1k" "nginx pass 1k|http://127.0.0.1:$NGINX/1k" \
           "origin 1k|http://127.0.0.1:$ORIGIN/1k"; do
    IFS='|' read -r label url <<< "$t"
    ours=$(taskset -c 1 "$load" "$url" -c 64 --warmup 1s -d "${secs}s" --json "$work/v.json" >/dev/null 2>&1;
      python3 -c "import json; print(round(json.load(open('$work/v.json'))['requests_per_sec']))")
    theirs=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" "$url" 2>/dev/null | awk '/Requests\/sec/ { printf "%d", $2 }')
    echo "| $label | breakwater-bench h1 | $ours |"
    echo "| $label | wrk | $theirs |"
  done
  ours=$(taskset -c 1 "$load" "http://127.0.0.1:$BW/1k" --proto h2c -c 8 --streams 8 --warmup 1s -d "${secs}s" \
    --json "$work/v.json" >/dev/null 2>&1; python3 -c "import json; print(round(json.load(open('$work/v.json'))['requests_per_sec']))")
  theirs=$(taskset -c 1 h2load -c8 -m8 -D "$secs" "http://127.0.0.1:$BW/1k" 2>/dev/null | awk '/^finished in/ { gsub(",", "", $4); printf "%d", $4 }')
  echo "| breakwater h2c pass 1k | breakwater-bench h2c | $ours |"
  echo "| breakwater h2c pass 1k | h2load | $theirs |"
} > "$out/validation.md"

python3 - "$out/runs.psv" "$rounds" "$secs" > "$out/summary.md" <<'PY'
import statistics, sys, collections, platform, datetime, os
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1])][1:]
by = collections.OrderedDict()
for r in rows:
    by.setdefault((r[1], r[2]), []).append(r)
print(f"# Breakwater comparison, {datetime.date.today()}\n")
print(f"{os.cpu_count()} CPUs ({platform.machine()}), servers on CPU 0, load on CPU 1; "
      f"{sys.argv[2]} rounds of {sys.argv[3]} s; HTTP/1.1 with 64 connections, HTTP/2 and "
      f"HTTP/3 with 8 connections x 8 streams.\n")
print("| scenario | contender | req/s (median) | per round | p50 ms | p99 ms | errors | "
      "CPU s | peak RSS MiB | vs Breakwater |")
print("|---|---|---|---|---|---|---|---|---|---|")
med = {k: statistics.median(float(r[3]) for r in v) for k, v in by.items()}
for (scenario, contender), v in by.items():
    bw = med.get((scenario, "breakwater")) or med.get((scenario, "breakwater h2"))
    ratio = f"{med[(scenario, contender)] / bw:.2f}" if bw else ""
    print(f"| {scenario} | {contender} | {med[(scenario, contender)]:.0f} | "
          f"{', '.join(r[3] for r in v)} | {statistics.median(float(r[4]) for r in v):.2f} | "
          f"{statistics.median(float(r[5]) for r in v):.2f} | {sum(int(r[6]) for r in v)} | "
          f"{v[-1][7]} | {v[-1][8]} | {ratio} |")
PY
{
  echo
  echo "## Load generator validation (same targets, same connections)"
  echo
  cat "$out/validation.md"
  echo
  echo "Latency plots: plot-*.svg"
} >> "$out/summary.md"
cat "$out/summary.md"
echo "results: $out"
# The scaling curves (connections, routes, components, cache size, idle memory) belong to the
# same report; SKIP_SCALING=1 leaves them out.
if [ "${SKIP_SCALING:-0}" != 1 ]; then
  trap - EXIT
  cleanup
  bench/scaling.sh "$secs"
fi
