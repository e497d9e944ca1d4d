#!/usr/bin/env bash
# Heap allocations per request on the request path (issue #18: "count them per request and
# cut them"). heaptrack (Debian) cannot see mimalloc, so the node is built once with the
# system allocator (`--features system-alloc`, a debug build: the same code, and heaptrack
# needs its symbols); nginx origin on CPU 0 with the node, wrk -t1 -c16 on CPU 1 for each
# case, one node per case under heaptrack, stopped with SIGINT; then the allocations whose
# stacks pass through the request path, divided by the requests wrk made.
#
#   bench/allocations.sh [SECONDS]       (default 3 s per case)
#   CASES="pass-through|/1k one-filter|/filter1/1k" bench/allocations.sh
#
# Output in bench/results/allocations-DATE/: summary.md (allocations per request, and per
# request by the call site in pingora or Breakwater that made them), CASE.folded.gz
# (heaptrack's allocation stacks through the request path, their innermost 14 frames, counts
# of calls), wrk-CASE.txt.
set -euo pipefail
secs="${1:-3}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
scratch
command -v heaptrack >/dev/null || need_tools heaptrack
command -v heaptrack_print >/dev/null || need_tools heaptrack
need_tools

cargo build --locked -q -p breakwater-proxy --features system-alloc
cp "$CARGO_TARGET_DIR/debug/breakwater" "$work/bw-system-alloc"
# Leave the debug binary as the tests expect it (mimalloc).
cargo build --locked -q -p breakwater-proxy
bw="$work/bw-system-alloc"

out="$root/bench/results/allocations-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
ORIGIN=18501 BW=18502 ADMIN=18512
start_origin $ORIGIN
"$bw" demo-components "$work/wasm" > /dev/null
filter_node_config $BW $ADMIN $ORIGIN > "$work/node.yaml"

{
  echo "# Heap allocations per request"
  echo
  echo "$(date -u +%Y-%m-%d), $(git rev-parse --short HEAD), debug build with the system allocator under"
  echo "heaptrack, nginx origin and node on CPU 0, wrk -t1 -c16 -d${secs}s on CPU 1, 1 KiB."
  echo "Counted: allocation calls whose stack passes through the request path (pingora's"
  echo "process_new_http or Breakwater's client front end), per request wrk completed."
  echo
} > "$out/summary.md"

cases=(${CASES:-pass-through|/1k one-filter|/filter1/1k})
for c in "${cases[@]}"; do
  name="${c%%|*}"; path="${c##*|}"
  NODE_WRAPPER="heaptrack -o $work/$name" start_node node $BW "$path"
  taskset -c 1 wrk -t1 -c16 -d"${secs}s" "http://127.0.0.1:$BW$path" > "$out/wrk-$name.txt"
  # The node itself (heaptrack's command line names it too: match the binary, not a shell).
  node=$(pgrep -x -f "$bw run --config $work/node.yaml")
  kill -INT "$node"
  while kill -0 "$node" 2>/dev/null; do sleep 0.2; done
  wait "$node_pid" || true
  reqs=$(awk '/requests in/ { print $1 + 1 }' "$out/wrk-$name.txt")   # + the check above
  heaptrack_print -f "$work/$name.zst" -F "$work/$name.folded" --flamegraph-cost-type allocations > /dev/null 2>&1
  path_re='process_new_http|Limited.*process_new'
  {
    awk -v r="$reqs" -v re="$path_re" -v n="$name" '$0 ~ re { a += $NF } END { printf "## %s: %.1f allocations per request (%d requests)\n\n", n, a / r, r - 1 }' "$work/$name.folded"
    echo "| per request | call site (the innermost pingora, Breakwater, wasmtime or tokio frame) |"
    echo "|---|---|"
    awk -v r="$reqs" -v re="$path_re" '$0 ~ re {
        n = $NF; $NF = ""; k = split($0, f, ";"); site = "?"
        for (i = k; i > 0; i--) if (f[i] ~ /pingora|breakwater|wasmtime|tokio::sync|tokio::time|tokio::runtime::task::spawn/) { site = f[i]; break }
        sub(/ \(.*$/, "", site); sub(/::h[0-9a-f]+$/, "", site)
        # Rust symbol escapes, as heaptrack prints them.
        gsub(/\$LT\$/, "<", site); gsub(/\$GT\$/, ">", site); gsub(/\$u20\$/, " ", site)
        gsub(/\$u7b\$/, "{", site); gsub(/\$u7d\$/, "}", site); gsub(/\$C\$/, ",", site)
        gsub(/\.\./, "::", site); sub(/^_</, "<", site); s[site] += n }
      END { for (x in s) printf "%.2f\t%s\n", s[x] / r, x }' "$work/$name.folded" \
      | sort -gr | awk -F'\t' 'NR <= 25 { gsub(/\|/, "\\|", $2); printf "| %s | `%s` |\n", $1, $2 }'
    echo
  } >> "$out/summary.md"
  # Kept beside the figures: the request path's stacks, their innermost 14 frames (the whole
  # of heaptrack's output, startup included, is megabytes).
  awk -v re="$path_re" '$0 ~ re { n = $NF; $NF = ""; k = split($0, f, ";"); s = ""
      for (i = (k > 14 ? k - 13 : 1); i <= k; i++) { g = f[i]; sub(/ \(.*$/, "", g); sub(/::h[0-9a-f]+$/, "", g); s = s (s == "" ? "" : ";") g }
      c[s] += n } END { for (x in c) print x, c[x] }' "$work/$name.folded" | gzip -9 > "$out/$name.folded.gz"
done
cat "$out/summary.md"
echo "raw output: $out" >&2
