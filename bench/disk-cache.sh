#!/usr/bin/env bash
# The cache's disk tier against nginx's proxy_cache on disk, same run, same origin (nginx
# serving one 100 KiB body under KEYS distinct URLs, `Cache-Control: max-age=3600`). The working set is KEYS x 100 KiB,
# four times the memory tier (Breakwater: `cache.memory_mb` = MEMORY_MB, disk tier 2 GiB;
# nginx: `proxy_cache_path` with a 2 GiB max_size, its memory being the kernel's page cache
# as nginx users run it). wrk (CPU 1) asks for the URLs in Zipf order (s = 1); the proxies
# have one worker on CPU 0, the origin is unpinned.
#   1. fill: DURATION seconds of load, then
#   2. measure: DURATION seconds: req/s, p99, and the hit rate (1 - origin requests /
#      requests, the origin's requests counted from its access log);
#   then Breakwater's RSS, and the same hit rate after a restart of Breakwater (the disk
#   tier is recovered; its memory tier starts empty).
#
# KEYS overrides the number of URLs (the working set is KEYS x 100 KiB).
# DISK_MB (default 2048) sizes both disk caches alike: below the working set, it shows the
# tiers evicting to stay within it (their directories' sizes are reported).
#
#   bench/disk-cache.sh [MEMORY_MB] [DURATION]     (default 64 15)
set -euo pipefail
memory_mb="${1:-64}"
duration="${2:-15}"
disk_mb="${DISK_MB:-2048}"
keys="${KEYS:-$((memory_mb * 4 * 10))}"   # 100 KiB objects: 10 per MiB
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
scratch
need_tools
release_and_guests
out="$root/bench/results/disk-cache-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"

origin_port=$(free_port); bw_port=$(free_port); bw_admin=$(free_port); ngx_port=$(free_port)

start_object_origin "$origin_port" $((100 * 1024)) 3600 "$work/logs/origin.access"
mkdir -p "$work/ngx-cache"

cat > "$work/nginx-cache.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx-cache.pid;
error_log $work/logs/nginx-cache.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  proxy_cache_path $work/ngx-cache levels=1:2 keys_zone=objects:32m max_size=${disk_mb}m inactive=1h use_temp_path=off;
  upstream origin { server 127.0.0.1:$origin_port; keepalive 64; }
  server {
    listen 127.0.0.1:$ngx_port;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache objects;
      proxy_cache_valid 200 1h;
      proxy_cache_lock on;
    }
  }
}
EOF
taskset -c 0 nginx -c "$work/nginx-cache.conf" &
pids+=($!)

cat > "$work/bw.yaml" <<EOF
server: { threads: 1 }
listeners: [{ name: web, address: "127.0.0.1:$bw_port" }]
admin: { address: "127.0.0.1:$bw_admin" }
access_log: { format: off }
cache: { memory_mb: $memory_mb, disk: { path: "$work/bw-disk", size_mb: $disk_mb } }
pools:
  origin: { endpoints: ["127.0.0.1:$origin_port"] }
routes:
  - { pool: origin, cache: { default_ttl: 1h } }
EOF
start_node bw "$bw_port"
wait_disk "$bw_admin"

# wrk's Lua: URLs /obj/1 .. /obj/KEYS drawn from a Zipf(1) distribution (a CDF searched by
# bisection), each thread seeded apart.
cat > "$work/zipf.lua" <<EOF
local n = $keys
local cdf, sum = {}, 0
for i = 1, n do sum = sum + 1 / i; cdf[i] = sum end
for i = 1, n do cdf[i] = cdf[i] / sum end
math.randomseed(os.time())
request = function()
  local r, lo, hi = math.random(), 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < r then lo = mid + 1 else hi = mid end
  end
  return wrk.format("GET", "/obj/" .. lo)
end
EOF

origin_count() { wc -l < "$work/logs/origin.access"; }
# run NAME PORT: fill, then measure; one line of the table.
run() {
  local name="$1" port="$2"
  taskset -c 1 wrk -t1 -c32 -d"${duration}s" -s "$work/zipf.lua" "http://127.0.0.1:$port/" > "$out/wrk-$name-fill.txt"
  local before; before=$(origin_count)
  taskset -c 1 wrk -t1 -c32 -d"${duration}s" --latency -s "$work/zipf.lua" "http://127.0.0.1:$port/" > "$out/wrk-$name.txt"
  local after; after=$(origin_count)
  local requests rps p99
  requests=$(awk '/requests in/ { print $1 }' "$out/wrk-$name.txt")
  rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$out/wrk-$name.txt")
  p99=$(wrk_p99_ms < "$out/wrk-$name.txt")
  local hit; hit=$(awk -v o="$((after - before))" -v r="$requests" 'BEGIN { printf "%.1f", 100 * (1 - o / r) }')
  echo "| $name | $rps | $p99 | $hit % | $((after - before)) of $requests |"
}

{
  echo "# Disk tier: working set ${keys} x 100 KiB ($((keys / 10)) MiB), memory tier ${memory_mb} MiB, disk caches ${disk_mb} MiB, Zipf(1), wrk -t1 -c32, ${duration} s fill + ${duration} s measured"
  echo
  echo "| proxy | req/s | p99 ms | hit rate | origin requests |"
  echo "|---|---|---|---|---|"
  run breakwater "$bw_port"
  run nginx-proxy-cache "$ngx_port"
  rss=$(awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$node_pid/status")
  echo
  echo "Breakwater RSS after the runs: $rss MiB (memory tier ${memory_mb} MiB)."
  echo "On disk: Breakwater $(du -sm "$work/bw-disk" | cut -f1) MiB, nginx $(du -sm "$work/ngx-cache" | cut -f1) MiB (du)."
  echo "Its cache metrics:"
  echo
  curl -s "http://127.0.0.1:$bw_admin/metrics" | grep -E '^breakwater_cache_(disk|objects|bytes|evictions)' | sed 's/^/    /' 
  # Restart: the disk tier is recovered, the memory tier starts empty.
  kill "$node_pid"; wait "$node_pid" 2>/dev/null || true
  start_node bw "$bw_port"
  wait_disk "$bw_admin"
  echo
  echo "After a restart of Breakwater (same disk tier), no fill:"
  echo
  echo "| proxy | req/s | p99 ms | hit rate | origin requests |"
  echo "|---|---|---|---|---|"
  before=$(origin_count)
  taskset -c 1 wrk -t1 -c32 -d"${duration}s" --latency -s "$work/zipf.lua" "http://127.0.0.1:$bw_port/" > "$out/wrk-breakwater-restarted.txt"
  after=$(origin_count)
  requests=$(awk '/requests in/ { print $1 }' "$out/wrk-breakwater-restarted.txt")
  rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$out/wrk-breakwater-restarted.txt")
  p99=$(wrk_p99_ms < "$out/wrk-breakwater-restarted.txt")
  hit=$(awk -v o="$((after - before))" -v r="$requests" 'BEGIN { printf "%.1f", 100 * (1 - o / r) }')
  echo "| breakwater, restarted | $rps | $p99 | $hit % | $((after - before)) of $requests |"
  # Started in this subshell: the exit trap does not know it.
  kill "$node_pid"; wait "$node_pid" 2>/dev/null || true
} | tee "$out/summary.md"
cp "$work/bw.yaml" "$work/nginx-cache.conf" "$out/"
