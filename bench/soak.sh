#!/usr/bin/env bash
# The long soak (the short one runs with the tests: tests/tests/all/soak.rs):
#
#   bench/soak.sh [MINUTES] [RATE]     (defaults: 10 minutes; RATE req/s per protocol, default
#                                       half of a quick closed-loop measurement)
#
# Breakwater under steady mixed open-loop load - HTTP/1.1 on an origin route, h2c on a cached
# route, HTTP/3 on a Wasm handler route - while the config is reloaded every 5 s, one of the
# two origins flaps (down 10 s of every 30 s) and, half-way, the binary is upgraded in place
# (a new process takes the sockets over; the old one drains). Every 10 s window of each load
# stream is one JSON (requests, errors by kind, p50/p99); every second the node's RSS and
# open file descriptors are sampled. The report (bench/results/soak-DATE/summary.md) gives
# the totals, failures by cause, p99 over time, RSS growth after warm-up and descriptors
# after the load. Loopback only; bounded by MINUTES.
set -euo pipefail
minutes="${1:-10}"
rate="${2:-0}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
command -v nginx >/dev/null || {
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light openssl
}
cargo build --release --locked -p breakwater-proxy -p breakwater-bench
target="${CARGO_TARGET_DIR:-$root/target}/release"
bw="$target/breakwater"
load="$target/breakwater-bench"

out="$root/bench/results/soak-$(date -u +%Y%m%d-%H%M%S)"
work="$(mktemp -d)"
mkdir -p "$out" "$work/www" "$work/logs" "$work/wasm"
chmod 755 "$work"   # nginx workers (www-data) read the files
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f "$work/edge.yaml" 2>/dev/null || true
  cp -r "$work/logs" "$out/" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

A=18101 B=18102 WEB=18100 TLS=18443 ADMIN=18901
head -c 768 /dev/urandom | base64 -w0 > "$work/www/1k"
origin() { # origin PORT
  cat > "$work/origin-$1.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/origin-$1.pid;
error_log $work/logs/origin-$1.err;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$1;
    root $work/www;
    keepalive_requests 1000000;
    location = /healthz { return 200 ok; }
    location /cache/ { alias $work/www/; add_header Cache-Control "max-age=2"; }
  }
}
CONF
  nginx -c "$work/origin-$1.conf" -p "$work" > /dev/null 2>&1 &
  echo $!
}
pa="$(origin $A)"; pids+=("$pa")
pb="$(origin $B)"; pids+=("$pb")

self_signed_cert soak.test
"$bw" demo-components "$work/wasm"
write_config() { # write_config VERSION
  cat > "$work/edge.yaml" <<CONF
server: { grace_period: 5s, upgrade_sock: $work/upgrade.sock, pid_file: $work/bw.pid }
listeners:
  - { name: web, address: "127.0.0.1:$WEB", h2c: true }
  - name: tls
    address: "127.0.0.1:$TLS"
    protocol: https
    http3: true
    certificates: [{ names: [soak.test], cert: $work/cert.pem, key: $work/key.pem }]
admin: { address: "127.0.0.1:$ADMIN" }
access_log: { format: off }
pools:
  o:
    endpoints: ["127.0.0.1:$A", "127.0.0.1:$B"]
    retries: 1
    health_check: { path: /healthz, interval: 1s }
components: { hello: { path: $work/wasm/hello-handler.wasm, kind: handler } }
routes:
  - { match: { path_prefix: /cache/ }, pool: o, cache: {} }
  - { match: { path: /hello }, handler: hello }
  - { pool: o, response_headers: { set: { x-config-version: "$1" } } }
CONF
}
write_config 0
RUST_LOG=warn "$bw" run --config "$work/edge.yaml" > "$work/logs/bw.out" 2> "$work/logs/bw.err" &
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done
bwpid() { cat "$work/bw.pid" 2>/dev/null || pgrep -f "$work/edge.yaml" | head -1; }

if [ "$rate" = 0 ]; then
  peak=$("$load" "http://127.0.0.1:$WEB/1k" -c 32 -d 5s --warmup 1s --json "$work/peak.json" >/dev/null 2>&1;
    python3 -c "import json; print(int(json.load(open('$work/peak.json'))['requests_per_sec']))" 2>/dev/null || echo 4000)
  rate=$(( peak / 2 / 3 ))
  echo "peak (HTTP/1.1 closed loop) $peak req/s; soaking at $rate req/s per protocol (3 streams)"
fi

deadline=$(( $(date +%s) + minutes * 60 ))
# One load stream: consecutive 10 s windows until the deadline, one JSON per window.
stream() { # stream NAME PROTO URL [extra args]
  local name="$1" proto="$2" url="$3"; shift 3
  local i=0
  while [ "$(date +%s)" -lt "$deadline" ]; do
    "$load" "$url" --proto "$proto" --rate "$rate" -c 16 --warmup 0s -d 10s \
      --json "$out/$name-$(printf %04d $i).json" --label "$name" "$@" > /dev/null 2>&1 || true
    i=$((i + 1))
  done
}
stream h1-origin h1 "http://127.0.0.1:$WEB/1k" & pids+=($!)
stream h2c-cache h2c "http://127.0.0.1:$WEB/cache/1k" & pids+=($!)
stream h3-wasm h3 "https://127.0.0.1:$TLS/hello" --host soak.test --insecure & pids+=($!)

echo "second,rss_kib,fds" > "$out/resources.csv"
start=$(date +%s); upgraded=0; step=0
while [ "$(date +%s)" -lt "$deadline" ]; do
  now=$(( $(date +%s) - start ))
  pid="$(bwpid)"
  if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status"); fds=$(ls "/proc/$pid/fd" | wc -l)
    echo "$now,$rss,$fds" >> "$out/resources.csv"
  fi
  if [ $(( now % 5 )) -eq 0 ]; then step=$((step + 1)); write_config "$step"; kill -HUP "$pid" 2>/dev/null || true; fi
  case $(( now % 30 )) in
    10) kill "$(cat "$work/origin-$B.pid")" 2>/dev/null || true ;;
    20) pb="$(origin $B)"; pids+=("$pb") ;;
  esac
  if [ "$upgraded" = 0 ] && [ "$now" -ge $(( minutes * 30 )) ]; then
    upgraded=1; old="$pid"
    RUST_LOG=warn "$bw" run --upgrade --config "$work/edge.yaml" >> "$work/logs/bw.out" 2>> "$work/logs/bw.err" &
    for _ in $(seq 50); do [ -S "$work/upgrade.sock" ] && break; sleep 0.1; done
    kill -QUIT "$old"; echo "upgraded at ${now}s (old pid $old)"
  fi
  sleep 1
done
wait_streams=$(( $(date +%s) + 30 ))
while pgrep -f "$load" > /dev/null && [ "$(date +%s)" -lt "$wait_streams" ]; do sleep 1; done
sleep 3
pid="$(bwpid)"; fds_after=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)

python3 - "$out" "$fds_after" <<'PY'
import csv, glob, json, os, sys
out, fds_after = sys.argv[1], int(sys.argv[2])
lines = ["# Soak", ""]
total = failed = retried = 0
causes = {}
for name in ("h1-origin", "h2c-cache", "h3-wasm"):
    windows = sorted(glob.glob(os.path.join(out, f"{name}-*.json")))
    p99s = []
    for w in windows:
        r = json.load(open(w))
        total += r.get("requests", 0)
        retried += r.get("retried", 0)
        for kind in ("errors_status", "errors_io"):
            n = r.get(kind, 0)
            causes[kind] = causes.get(kind, 0) + n
            failed += n
        p99s.append(r.get("p99_us", 0) / 1000)
    lines.append(f"- {name}: {len(windows)} windows of 10 s; p99 per window (ms): " + ", ".join(f"{p:.2f}" for p in p99s))
rows = list(csv.DictReader(open(os.path.join(out, "resources.csv"))))
warm = [int(r["rss_kib"]) for r in rows[len(rows) // 10:]] or [0]
fds = [int(r["fds"]) for r in rows] or [0]
lines += ["", f"requests {total}, failed {failed} ({causes or 'none'}); retried on a new "
          f"connection after a reused connection failed before any response: {retried}",
          f"RSS after warm-up {warm[0]} KiB -> end {warm[-1]} KiB ({(warm[-1] - warm[0]) * 100 / max(warm[0], 1):+.1f}%), peak {max(warm)} KiB",
          f"open fds: first {fds[0]}, peak {max(fds)}, after the load {fds_after}"]
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "results in $out"
