#!/usr/bin/env bash
# What connections cost (issue #18): resident memory of idle keep-alive connections, HTTP/1.1
# and HTTP/2 (no stream open), in clear (h2c) and over TLS, and latency at many active
# connections, Breakwater beside nginx as a reverse proxy (upstream keep-alive), both in front
# of the same nginx origin, one worker each on CPU 0, clients on CPU 1, in the same run:
#
#   bench/connections.sh [IDLE] [ROUNDS]     (defaults: 10 000 idle connections, 3 rounds)
#
# Idle: a client opens IDLE connections to one server, sends one request on each (HTTP/1.1:
# GET /1k; HTTP/2: the preface, SETTINGS and one GET /1k), reads every answer, and keeps them
# open; the server's RSS before and with them, once they have idled for IDLE_SETTLE seconds
# (default 3; also read at once, the "at once" rows), gives the cost per connection (a fresh
# server for each). Active: wrk -t1 with 1 000 and 5 000 connections (not 10 000: each proxy then
# needs a descriptor per client and per origin connection, over this machine's hard limit of
# 20 000 open files) for 5 s each (p50, p99, req/s). Contenders alternate per round. Output: bench/results/connections-DATE/summary.md and the raw client output.
# SERVER='work_stealing: true' (say) adds keys to Breakwater's `server:` settings; ONLY=active
# skips the idle measurements, ONLY=idle the active ones; BW_ENV='NAME=VALUE ...' sets the
# node's environment (an allocator setting, say). IDLE_OPEN=one opens the idle connections
# one at a time, each answered before the next opens (the default, burst, sends every request
# before it reads an answer: all in flight at once, so the servers' RSS also keeps what the
# burst's buffers and origin connections left behind). PROTOS (default `h1 h2 tls-h1 tls-h2`)
# chooses the idle cases; TLS is 1.3 with an RSA 2048 certificate, HTTP/1.1 or HTTP/2 by ALPN
# on one listener of each server.
set -euo pipefail
idle="${1:-10000}"
rounds="${2:-3}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_tools
release_and_guests > /dev/null
ulimit -n "$(ulimit -Hn)"   # 20 000 here: enough for 10 000 connections per process
scratch
out="$root/bench/results/connections-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"

ORIGIN=18301 BW=18302 ADMIN=18312 NGINX=18303 BWTLS=18304 NGINXTLS=18305
# 5 000 client connections may each need an origin connection at once (both proxies open
# one per request in flight): the origin must not be what refuses them.
ORIGIN_CONNECTIONS=19000 start_origin $ORIGIN

self_signed_cert bench.test
many_clients_node_config $BW $ADMIN $ORIGIN $BWTLS > "$work/bw.yaml"
nginx_proxy_conf $NGINX 1 19000 "    listen 127.0.0.1:$((NGINX + 10)) http2;
    listen 127.0.0.1:$NGINXTLS ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;" > "$work/nginx.conf"

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

# idle_cost PID PORT PROTO: RSS growth in KiB with $idle idle connections, read as the last
# one is answered and again after they have idled for IDLE_SETTLE seconds (default 3): "AT
# SETTLED".
idle_cost() {
  local pid="$1" port="$2" proto="$3"
  local before; before=$(rss_kib "$pid")
  hold_idle "$port" "$idle" "$proto" "${IDLE_OPEN:-burst}"
  local at_once; at_once=$(rss_kib "$pid")
  sleep "${IDLE_SETTLE:-3}"
  local settled; settled=$(rss_kib "$pid")
  release_idle
  echo "$(( at_once - before )) $(( settled - before ))"
}

start_bw() {
  # shellcheck disable=SC2086  # BW_ENV is words
  env ${BW_ENV:-} taskset -c 0 "$bw" run --config "$work/bw.yaml" > "$work/logs/bw.out" 2> "$work/logs/bw.err" &
  bw_pid=$!; pids+=($!)
  for _ in $(seq 1 300); do grep -q "breakwater ready" "$work/logs/bw.out" 2>/dev/null && break; sleep 0.1; done
  curl -sf -o /dev/null "http://127.0.0.1:$BW/1k"
}
start_nginx() {
  taskset -c 0 nginx -c "$work/nginx.conf" &
  nginx_pid=$!; pids+=($!)
  for _ in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:$NGINX/1k" && break; sleep 0.1; done
  # The worker holds the connections (the master is $nginx_pid).
  nginx_worker=$(pgrep -P "$nginx_pid" | head -1)
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

echo "round|contender|case|value" > "$out/runs.psv"
for r in $(seq 1 "$rounds"); do
  order="bw nginx"; [ $((r % 2)) = 0 ] && order="nginx bw"
  for c in $order; do
    # A fresh server per measurement: RSS growth is measured from the same starting point,
    # and no measurement reuses memory another freed.
    for proto in ${PROTOS:-h1 h2 tls-h1 tls-h2}; do
      [ "${ONLY:-}" = active ] && break
      if [ "$c" = bw ]; then
        start_bw; pid=$bw_pid; p=$BW; [[ "$proto" = tls-* ]] && p=$BWTLS
      else
        start_nginx; pid=$nginx_worker
        case "$proto" in h1) p=$NGINX ;; h2) p=$((NGINX + 10)) ;; *) p=$NGINXTLS ;; esac
      fi
      read -r at_once settled < <(idle_cost "$pid" "$p" "$proto")
      echo "$r|$c|idle $proto KiB|$settled" >> "$out/runs.psv"
      echo "$r|$c|idle $proto at once KiB|$at_once" >> "$out/runs.psv"
      if [ "$c" = bw ]; then stop "$bw_pid"; else stop "$nginx_pid"; fi
    done
    [ "${ONLY:-}" = idle ] && continue
    if [ "$c" = bw ]; then start_bw; port=$BW; else start_nginx; port=$NGINX; fi
    for conns in 1000 5000; do
      taskset -c 1 wrk -t1 -c"$conns" -d5s --latency "http://127.0.0.1:$port/1k" > "$out/wrk-$r-$c-$conns.txt" 2>&1 || true
      rps=$(awk '/^Requests\/sec/ { print $2 }' "$out/wrk-$r-$c-$conns.txt")
      p50=$(awk '$1 == "50%" { print $2 }' "$out/wrk-$r-$c-$conns.txt")
      p99=$(awk '$1 == "99%" { print $2 }' "$out/wrk-$r-$c-$conns.txt")
      echo "$r|$c|$conns conns req/s|$rps" >> "$out/runs.psv"
      echo "$r|$c|$conns conns p50|$p50" >> "$out/runs.psv"
      echo "$r|$c|$conns conns p99|$p99" >> "$out/runs.psv"
    done
    if [ "$c" = bw ]; then stop "$bw_pid"; else stop "$nginx_pid"; fi
  done
done

python3 - "$out/runs.psv" "$idle" "tree $(git rev-parse --short HEAD), binary $bw${SERVER:+, server settings added: $SERVER}${BW_ENV:+, node environment: $BW_ENV}, idle connections opened: ${IDLE_OPEN:-burst}" > "$out/summary.md" <<'PY'
import re, statistics, sys
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1])][1:]
idle, rev = int(sys.argv[2]), sys.argv[3]
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)$", v or "")
    if not m: return None
    x = float(m.group(1)); return x / 1000 if m.group(2) == "us" else x * 1000 if m.group(2) == "s" else x
vals = {}
for r, c, case, v in rows:
    vals.setdefault((case, c), []).append(ms(v) if case.endswith(("p50", "p99")) else float(v or 0))
cases = []
for _, _, case, _ in rows:
    if case not in cases: cases.append(case)
print(f"# Connections: Breakwater beside nginx\n\n{rev}\n")
print(f"One worker each on CPU 0 (`server.threads: 1`, access log off), clients on CPU 1; {idle} idle")
print("connections each served one request (RSS growth of the server process; for nginx its worker);")
print("active: wrk -t1 -d5s on /1k (1 KiB). Medians of the rounds; every round in runs.psv.\n")
print("| case | Breakwater | nginx | Breakwater / nginx |")
print("|---|---|---|---|")
for case in cases:
    b = statistics.median(vals[(case, "bw")]); n = statistics.median(vals[(case, "nginx")])
    unit = ""
    if case.startswith("idle"):
        print(f"| {case.replace(' KiB', '')}: MiB total, bytes each | {b/1024:.1f} MiB, {b*1024/idle:.0f} B | {n/1024:.1f} MiB, {n*1024/idle:.0f} B | {b/n if n else float('inf'):.2f} |")
    elif case.endswith(("p50", "p99")):
        print(f"| {case} ms | {b:.2f} | {n:.2f} | {b/n if n else 0:.2f} |")
    else:
        print(f"| {case} | {b:.0f} | {n:.0f} | {b/n if n else 0:.2f} |")
PY
cat "$out/summary.md"
