#!/usr/bin/env bash
# What the cache's disk tier costs in memory, whatever the disk holds:
#   1. The index: a node whose memory tier is 1 MiB (so what it stores lives on disk only)
#      and whose disk tier is 8 GiB, filled with distinct 1 KiB objects (every request a new
#      URL, so every request stores one; wrk -t1 -c32 on CPU 1, the node on CPU 0) in two
#      rounds of SECONDS each. RSS and objects stored (the origin's requests) after each: the
#      RSS the second round added over the objects it added is the memory one object on disk
#      costs (its index entry and bookkeeping), as the node grows.
#   2. One 1 GiB object (`max_object_mb: 1100`) fetched twice through a fresh node with a
#      4 GiB disk tier (curl, the second fetch from disk), then through a node without one:
#      RSS before, and its peak (VmHWM) after each fetch. A body over 4 MiB is streamed to
#      disk in 1 MiB pieces and read back a piece at a time; without a disk tier it is
#      buffered whole in memory.
#
#   bench/disk-index.sh [SECONDS]     (default 20)
set -euo pipefail
seconds="${1:-20}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
scratch
need_tools
release_and_guests
out="$root/bench/results/disk-index-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"

origin_port=$(free_port); bw_port=$(free_port); bw_admin=$(free_port)
ORIGIN_CPUS=1 start_object_origin "$origin_port" 1024 3600 "$work/logs/origin.access" \
  /big $((1024 * 1024 * 1024))

# node_yaml MEMORY_MB DISK (a `disk:` mapping or empty)
node_yaml() {
  cat <<YAML
server: { threads: 1 }
listeners: [{ name: web, address: "127.0.0.1:$bw_port" }]
admin: { address: "127.0.0.1:$bw_admin" }
access_log: { format: off }
cache: { memory_mb: $1, max_object_mb: 1100${2:+, disk: $2} }
pools:
  origin: { endpoints: ["127.0.0.1:$origin_port"] }
routes:
  - { pool: origin, cache: {} }
YAML
}
stop_node() { kill "$node_pid"; wait "$node_pid" 2>/dev/null || true; }
origin_count() { wc -l < "$work/logs/origin.access"; }

# Round NAME: every request a new URL /NAME/1, /NAME/2, ...
round() {
  cat > "$work/round.lua" <<LUA
local i = 0
request = function() i = i + 1; return wrk.format("GET", "/$1/" .. i) end
LUA
  taskset -c 1 wrk -t1 -c32 -d"${seconds}s" -s "$work/round.lua" "http://127.0.0.1:$bw_port/" > "$out/wrk-$1.txt"
}

{
  echo "# Disk tier memory: index per object, and one 1 GiB object"
  echo
  node_yaml 1 "{ path: \"$work/disk-index\", size_gb: 8 }" > "$work/bw.yaml"
  start_node bw "$bw_port"; wait_disk "$bw_admin"
  rss0=$(status_kib "$node_pid" VmRSS); n0=$(origin_count)
  round a
  rss1=$(status_kib "$node_pid" VmRSS); n1=$(origin_count)
  round b
  rss2=$(status_kib "$node_pid" VmRSS); n2=$(origin_count)
  metrics=$(curl -s "http://127.0.0.1:$bw_admin/metrics" | grep -E '^breakwater_cache_(disk|objects|bytes)')
  stop_node
  echo "## 1 KiB objects on disk (memory tier 1 MiB, disk tier 8 GiB, ${seconds} s rounds)"
  echo
  echo "| after | objects stored | RSS MiB |"
  echo "|---|---|---|"
  echo "| start | 0 | $((rss0 / 1024)) |"
  echo "| round 1 | $((n1 - n0)) | $((rss1 / 1024)) |"
  echo "| round 2 | $((n2 - n0)) | $((rss2 / 1024)) |"
  echo
  awk -v r1="$rss1" -v r2="$rss2" -v a="$((n1 - n0))" -v b="$((n2 - n1))" 'BEGIN {
    printf "Round 2 added %d objects and %.1f MiB of RSS: %.0f bytes per object on disk.\n", b, (r2 - r1) / 1024, (r2 - r1) * 1024 / b }'
  echo "Disk directory: $(du -sm "$work/disk-index" | cut -f1) MiB (du). Metrics at the end:"
  echo
  echo "$metrics" | sed 's/^/    /'
  echo
  echo "## One 1 GiB object (max_object_mb 1100, memory tier 256 MiB)"
  echo
  echo "| node | fetch | from | seconds | RSS before MiB | peak RSS after MiB |"
  echo "|---|---|---|---|---|---|"
  node_yaml 256 "{ path: \"$work/disk-big\", size_gb: 4 }" > "$work/bw.yaml"
  start_node bw "$bw_port"; wait_disk "$bw_admin"
  for fetch in 1 2; do
    before=$(status_kib "$node_pid" VmRSS); o=$(origin_count)
    secs=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$bw_port/big")
    from=origin; [ "$(origin_count)" -eq "$o" ] && from=disk
    echo "| disk tier 4 GiB | $fetch | $from | $secs | $((before / 1024)) | $(( $(status_kib "$node_pid" VmHWM) / 1024 )) |"
  done
  stop_node
  node_yaml 256 "" > "$work/bw.yaml"
  start_node bw "$bw_port"
  before=$(status_kib "$node_pid" VmRSS); o=$(origin_count)
  secs=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$bw_port/big")
  from=origin; [ "$(origin_count)" -eq "$o" ] && from=memory
  echo "| no disk tier | 1 | $from | $secs | $((before / 1024)) | $(( $(status_kib "$node_pid" VmHWM) / 1024 )) |"
  stop_node
} | tee "$out/summary.md"
cp "$work/bw.yaml" "$work/origin.conf" "$out/"
