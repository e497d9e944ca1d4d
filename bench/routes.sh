#!/usr/bin/env bash
# What the number of routes costs a request (issue #18): a node with one route beside a node
# with 100 000 routes over 10 000 hosts (ten path prefixes each, plus 1 000 wildcard hosts),
# both forwarding to the same nginx origin, the request going to the last host's last prefix
# (the worst place for a scan in file order):
#
#   bench/routes.sh [ROUNDS] [SECONDS]      (defaults: 6 rounds of 3 s)
#
# Nodes and origin on CPU 0 (`server.threads: 1`, access log off), wrk -t1 -c64 on CPU 1,
# rounds alternating which node goes first. Reports req/s, p99 and the node's CPU µs per
# request (median of the rounds), startup time and RSS of each node. Output:
# bench/results/routes-DATE/summary.md and the raw wrk output.
set -euo pipefail
rounds="${1:-6}"
secs="${2:-3}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_tools
release_and_guests > /dev/null
scratch
out="$root/bench/results/routes-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"

ORIGIN=18601 ONE=18602 MANY=18603
start_origin $ORIGIN
mkdir -p "$work/www/p9" && cp "$work/www/1k" "$work/www/p9/"
head=$'server: { threads: 1 }\naccess_log: { format: off }\npools:\n  origin: { endpoints: ["127.0.0.1:'$ORIGIN$'"] }'
printf '%s\nlisteners: [{ name: web, address: "127.0.0.1:%s" }]\nadmin: { address: "127.0.0.1:%s" }\nroutes: [{ pool: origin }]\n' \
  "$head" $ONE $((ONE + 10)) > "$work/one.yaml"
{
  printf '%s\nlisteners: [{ name: web, address: "127.0.0.1:%s" }]\nadmin: { address: "127.0.0.1:%s" }\nroutes:\n' \
    "$head" $MANY $((MANY + 10))
  python3 - <<'PY'
for i in range(1000):
    print(f'  - {{ match: {{ hosts: ["*.w{i}.test"] }}, pool: origin }}')
for h in range(10000):
    for p in range(10):
        print(f'  - {{ match: {{ hosts: [h{h}.test], path_prefix: /p{p}/ }}, pool: origin }}')
PY
} > "$work/many.yaml"

declare -A pid started_ms
for n in one many; do
  t0=$(date +%s%N)
  port=$ONE; [ $n = many ] && port=$MANY
  taskset -c 0 "$bw" run --config "$work/$n.yaml" > "$work/logs/$n.out" 2> "$work/logs/$n.err" &
  pid[$n]=$!; pids+=($!)
  for _ in $(seq 1 1200); do grep -q "breakwater ready" "$work/logs/$n.out" 2>/dev/null && break; sleep 0.05; done
  started_ms[$n]=$(( ($(date +%s%N) - t0) / 1000000 ))
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: h9999.test" "http://127.0.0.1:$port/p9/1k")
  [ "$code" = 200 ] || { echo "$n answered $code" >&2; cat "$work/logs/$n.err" >&2; exit 1; }
done

: > "$out/wrk-raw.txt"
echo "round|node|req/s|p99 ms|cpu us/req" > "$out/runs.psv"
for r in $(seq 1 "$rounds"); do
  order="one many"; [ $((r % 2)) = 0 ] && order="many one"
  for n in $order; do
    port=$ONE; [ $n = many ] && port=$MANY
    url="http://127.0.0.1:$port/p9/1k"
    taskset -c 1 wrk -t1 -c64 -d1s -H "Host: h9999.test" "$url" > /dev/null
    before=$(cpu_ticks "${pid[$n]}")
    res=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" --latency -H "Host: h9999.test" "$url")
    after=$(cpu_ticks "${pid[$n]}")
    { echo "### round $r, $n"; echo "$res"; } >> "$out/wrk-raw.txt"
    rps=$(awk '/^Requests\/sec/ { print $2 }' <<< "$res")
    p99=$(wrk_p99_ms <<< "$res")
    us=$(cpu_us_per_request $((after - before)) "$rps" "$secs")
    echo "$r|$n|$rps|$p99|$us" >> "$out/runs.psv"
  done
done

rss_one=$(awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/${pid[one]}/status")
rss_many=$(awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/${pid[many]}/status")
python3 - "$out/runs.psv" "tree $(git rev-parse --short HEAD), binary $bw" "${started_ms[one]}" "${started_ms[many]}" "$rss_one" "$rss_many" > "$out/summary.md" <<'PY'
import statistics, sys
rows = [l.strip().split("|") for l in open(sys.argv[1])][1:]
rev, s1, s2, m1, m2 = sys.argv[2:]
med = lambda n, c: statistics.median(float(r[c]) for r in rows if r[1] == n)
ratios = {}
for r in rows: ratios.setdefault(r[0], {})[r[1]] = float(r[2])
ratio = statistics.median(v["many"] / v["one"] for v in ratios.values())
print(f"# Routes: one against 100 000\n\n{rev}\n")
print("Node and nginx origin on CPU 0 (`server.threads: 1`, access log off), wrk -t1 -c64 on CPU 1,")
print("request to host h9999.test, path /p9/1k (the last route of 100 000; 1 000 wildcard hosts first).")
print("Medians of the rounds; every round in runs.psv.\n")
print("| node | routes | req/s | p99 ms | CPU µs/req | ready after ms | RSS MiB |")
print("|---|---|---|---|---|---|---|")
print(f"| one | 1 | {med('one', 2):.0f} | {med('one', 3):.2f} | {med('one', 4):.1f} | {s1} | {m1} |")
print(f"| many | 101 000 | {med('many', 2):.0f} | {med('many', 3):.2f} | {med('many', 4):.1f} | {s2} | {m2} |")
print(f"\nmany / one, median of the per-round ratios of req/s: {ratio:.3f}")
PY
cat "$out/summary.md"
