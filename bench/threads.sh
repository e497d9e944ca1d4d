#!/usr/bin/env bash
# Scaling with threads (issue #18): Breakwater with `server.threads` 1 and 2 beside nginx (a
# reverse proxy with an upstream keep-alive pool) with 1 and 2 workers, in front of the same
# nginx origin (2 workers), 1 KiB pass-through, wrk -t2 -c64. Nothing is pinned: with 2 CPUs
# the origin and the load generator share the cores with the server, so this shows how each
# server's throughput moves when it may use a second thread, side by side in the same run;
# it is not the clean two-core figure a bigger machine would give. A fresh server for each
# measurement (1 s of warm-up first), contenders in a rotating order per round.
#
#   bench/threads.sh [ROUNDS] [SECONDS]     (defaults: 3 rounds of 5 s)
#
# Output: bench/results/threads-DATE/summary.md and every wrk output (wrk-*.txt).
set -euo pipefail
rounds="${1:-3}"
secs="${2:-5}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_tools
release_and_guests > /dev/null
scratch
out="$root/bench/results/threads-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"

ORIGIN=18601 BW=18602 ADMIN=18612 NGINX=18603
ORIGIN_WORKERS=2 ORIGIN_CPUS=all start_origin $ORIGIN

# node_conf THREADS: Breakwater on $BW.
node_conf() {
  cat <<EOF
server: { threads: $1 }
listeners: [{ name: web, address: "127.0.0.1:$BW" }]
admin: { address: "127.0.0.1:$ADMIN" }
access_log: { format: off }
pools: { origin: { endpoints: ["127.0.0.1:$ORIGIN"] } }
routes: [{ pool: origin }]
EOF
}

wait_200() {
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/1k")" = 200 ] && return 0
    sleep 0.1
  done
  echo "port $1 never answered 200; logs in $work/logs" >&2
  exit 1
}
wait_200 $ORIGIN

# measure NAME: start NAME (bw1, bw2, nginx1, nginx2), load it, stop it; appends to runs.psv.
measure() {
  local name="$1" round="$2" port pid n="${1: -1}"
  case "$name" in
    bw*)
      node_conf "$n" > "$work/$name.yaml"
      RUST_LOG=warn "$bw" run --config "$work/$name.yaml" > "$work/logs/$name.out" 2>&1 &
      pid=$!; port=$BW ;;
    nginx*)
      nginx_proxy_conf $NGINX "$n" > "$work/$name.conf"
      nginx -c "$work/$name.conf" &
      pid=$!; port=$NGINX ;;
  esac
  wait_200 "$port"
  wrk -t2 -c64 -d1s "http://127.0.0.1:$port/1k" > /dev/null
  wrk -t2 -c64 -d"${secs}s" --latency "http://127.0.0.1:$port/1k" > "$out/wrk-$round-$name.txt"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local rps p99
  rps=$(awk '/^Requests\/sec/ { print $2 }' "$out/wrk-$round-$name.txt")
  p99=$(awk '$1 == "99%" { print $2 }' "$out/wrk-$round-$name.txt")
  echo "$round|$name|$rps|$p99" >> "$out/runs.psv"
  echo "round $round $name: $rps req/s, p99 $p99" >&2
}

echo "round|contender|req/s|p99" > "$out/runs.psv"
order=(bw1 bw2 nginx1 nginx2)
for round in $(seq 1 "$rounds"); do
  for i in 0 1 2 3; do measure "${order[$(( (i + round) % 4 ))]}" "$round"; done
done

python3 - "$out/runs.psv" "$rounds" "$secs" "$(git rev-parse --short HEAD)" > "$out/summary.md" <<'PY'
import statistics, sys
path, rounds, secs, rev = sys.argv[1:5]
runs = {}
for line in open(path).read().splitlines()[1:]:
    _, name, rps, p99 = line.split("|")
    runs.setdefault(name, []).append((float(rps), p99))
med = {k: statistics.median(r for r, _ in v) for k, v in runs.items()}
print("# Threads: Breakwater and nginx with one and two\n")
print(f"{rev}; 2 CPUs, nothing pinned (origin: nginx, 2 workers; load: wrk -t2 -c64, 1 KiB); "
      f"{rounds} rounds of {secs} s, medians; every wrk output beside this file.\n")
print("| server | 1 thread / worker req/s | 2 req/s | 2 / 1 | per round (1; 2) |")
print("|---|---|---|---|---|")
for who, a, b in (("Breakwater", "bw1", "bw2"), ("nginx", "nginx1", "nginx2")):
    per = "; ".join(", ".join(f"{r:.0f}" for r, _ in runs[k]) for k in (a, b))
    print(f"| {who} | {med[a]:.0f} | {med[b]:.0f} | {med[b] / med[a]:.2f} | {per} |")
print(f"\nBreakwater / nginx: {med['bw1'] / med['nginx1']:.2f} with one, "
      f"{med['bw2'] / med['nginx2']:.2f} with two.")
PY
cat "$out/summary.md"
