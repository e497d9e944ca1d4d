#!/usr/bin/env bash
# The fleet: three nodes (release build) sharing one Redis (redis-server from Debian) in
# front of an nginx origin, all on loopback.
#  1. Purge fan-out: an object cached on nodes B and C is purged through node A's admin API;
#     the time from A's answer until B and C each answer a miss (polled back to back over
#     keep-alive connections), for PURGES objects: p50, p99, max.
#  2. Key-value: the Spin Python SDK example on node A, once with its store in memory and
#     once in Redis (key_value: redis): latency of PUT /kv/NAME and GET /kv/NAME, sequential
#     over one keep-alive connection, REQUESTS each: p50, p99.
#
#   bench/fleet.sh [PURGES] [REQUESTS]     (default 200 200)
set -euo pipefail
purges="${1:-200}"
requests="${2:-200}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
scratch
need_tools
command -v redis-server >/dev/null || need_tools redis-server
release_and_guests
out="$root/bench/results/fleet-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"

redis_port=$(free_port); origin_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no > "$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done

start_object_origin "$origin_port" 1024 600

# node NAME WEB ADMIN [COMPONENTS]: a fleet member's config.
node_config() {
  cat <<EOF
server: { threads: 1 }
listeners: [{ name: web, address: "127.0.0.1:$2" }]
admin: { address: "127.0.0.1:$3", token: bench }
access_log: { format: off }
fleet: { redis: "redis://127.0.0.1:$redis_port/0" }
wasm: { cache_dir: "$work/cache" }
pools:
  origin: { endpoints: ["127.0.0.1:$origin_port"] }
EOF
  if [ "${4:-}" = spin ]; then
    cat <<EOF
components:
  mem: { path: "$guests/spin-hello.wasm", kind: handler, warmup: off }
  red: { path: "$guests/spin-hello.wasm", kind: handler, warmup: off, key_value: redis }
routes:
  - { match: { hosts: [mem] }, handler: mem }
  - { match: { hosts: [red] }, handler: red }
  - { pool: origin, cache: {} }
EOF
  else
    cat <<EOF
routes:
  - { pool: origin, cache: {} }
EOF
  fi
}
ports=()
for name in a b c; do
  web=$(free_port); admin=$(free_port); ports+=("$web" "$admin")
  node_config "$name" "$web" "$admin" "$([ $name = a ] && echo spin)" > "$work/$name.yaml"
  "$bw" run --config "$work/$name.yaml" > "$work/$name.out" 2> "$work/$name.err" &
  pids+=($!)
  for _ in $(seq 1 900); do grep -q "breakwater ready" "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  grep -q "breakwater ready" "$work/$name.out" || { cat "$work/$name.err" >&2; exit 1; }
done

python3 - "$purges" "$requests" "${ports[@]}" > "$out/summary.md" <<'PY'
import http.client, sys, time
purges, requests = int(sys.argv[1]), int(sys.argv[2])
a_web, a_admin, b_web, _, c_web, _ = map(int, sys.argv[3:9])
conn = lambda port: http.client.HTTPConnection("127.0.0.1", port)
def get(c, path, host="example.com", method="GET", body=None, headers=None):
    h = {"Host": host}; h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse(); r.read()
    return r
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(len(v) * p))]
a, admin, b, c = conn(a_web), conn(a_admin), conn(b_web), conn(c_web)
hit = lambda r: (r.getheader("cache-status") or "").startswith("breakwater; hit")
fan = {"B": [], "C": []}
for i in range(purges):
    path = f"/object/{i}"
    for node in (b, c):
        get(node, path)
        assert hit(get(node, path)), "not cached"
    r = get(admin, f"/cache/purge?url=example.com{path}", host="localhost", method="POST",
            headers={"Authorization": "Bearer bench"})
    assert r.status == 200, r.status
    t0 = time.perf_counter()
    pending = {"B": b, "C": c}
    while pending:
        for name, node in list(pending.items()):
            if not hit(get(node, path)):
                fan[name].append((time.perf_counter() - t0) * 1000)
                del pending[name]
        assert time.perf_counter() - t0 < 10, "purge never arrived"
kv = {}
for store in ("mem", "red"):
    s = conn(a_web)
    for op in ("PUT", "GET"):
        lat = []
        for i in range(requests):
            t = time.perf_counter()
            r = get(s, f"/kv/k{i}", host=store, method=op, body=b"v" * 100 if op == "PUT" else None)
            lat.append((time.perf_counter() - t) * 1000)
            assert r.status in (200, 201), (store, op, r.status)
        kv[(store, op)] = lat
print("# The fleet: purge fan-out and key-value latency\n")
print(f"{time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}; three nodes (server.threads: 1), one redis-server and one nginx origin on loopback, 2 CPUs shared; latencies from Python's http.client (its own overhead included).\n")
print(f"Purge fan-out, {purges} purges sent to node A; time from A's answer until the node answers a miss:\n")
print("| node | p50 ms | p99 ms | max ms |\n|---|---|---|---|")
for name, v in fan.items():
    print(f"| {name} | {pct(v, .5):.2f} | {pct(v, .99):.2f} | {max(v):.2f} |")
print(f"\nSpin Python SDK example, key-value requests on node A, {requests} each, one connection:\n")
print("| store | PUT p50 ms | PUT p99 ms | GET p50 ms | GET p99 ms |\n|---|---|---|---|---|")
for store, label in (("mem", "memory"), ("red", "Redis (key_value: redis)")):
    p, g = kv[(store, "PUT")], kv[(store, "GET")]
    print(f"| {label} | {pct(p, .5):.2f} | {pct(p, .99):.2f} | {pct(g, .5):.2f} | {pct(g, .99):.2f} |")
PY
cat "$out/summary.md"
echo "results: $out"
