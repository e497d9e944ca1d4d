#!/usr/bin/env bash
# What an idle connection holds on the heap, by allocation site: heaptrack (Debian) on the node
# (a debug build with the system allocator, `--features system-alloc`: heaptrack cannot see
# mimalloc) while N idle connections, opened one at a time (each answered before the next
# opens, so the heap's peak is the idle state, not a burst's buffers), stay open; h2c by
# default. The node and an nginx origin on CPU 0, the client on CPU 1.
#
#   bench/idle-heap.sh [N] [h1|h2|tls-h1|tls-h2]      (defaults: 2 000 connections, h2)
#   BREAKWATER_BIN=PATH bench/idle-heap.sh   # a prebuilt system-alloc binary (another revision)
#
# Output in bench/results/idle-heap-DATE/summary.md: the node's peak heap and the allocation
# sites holding the most of it, in bytes per connection (each site named by its innermost
# pingora, Breakwater, h2, tokio or bytes frames).
set -euo pipefail
n="${1:-2000}"; proto="${2:-h2}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_tools heaptrack
bw="${BREAKWATER_BIN:-}"
if [ -z "$bw" ]; then
  cargo build --locked -p breakwater-proxy --features system-alloc
  bw="$CARGO_TARGET_DIR/debug/breakwater"
fi
scratch
ulimit -n "$(ulimit -Hn)"
out="$root/bench/results/idle-heap-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
ORIGIN=18401 BW=18402 ADMIN=18412 BWTLS=18403
start_origin $ORIGIN
self_signed_cert bench.test
many_clients_node_config $BW $ADMIN $ORIGIN $BWTLS > "$work/node.yaml"
NODE_WRAPPER="heaptrack -o $work/heap" start_node node $BW /1k
# The node itself (heaptrack's command line names it too: match the binary, not a shell).
node=$(pgrep -x -f "$bw run --config $work/node.yaml")
port=$BW; [[ "$proto" = tls-* ]] && port=$BWTLS
hold_idle $port "$n" "$proto" one
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$node/status")
# Stopped while the connections are open (SIGINT: pingora's fast shutdown; heaptrack writes
# its data at exit).
kill -INT "$node"
while kill -0 "$node" 2>/dev/null; do sleep 0.2; done
wait "$node_pid" || true
release_idle
heaptrack_print -f "$work/heap.zst" -F "$work/peak.folded" --flamegraph-cost-type peak > "$work/print.txt" 2>&1
python3 - "$work/peak.folded" "$n" "$proto" "$bw (tree $(git rev-parse --short HEAD))" "$rss" "$(grep 'peak heap memory' "$work/print.txt")" > "$out/summary.md" <<'PY'
import collections, re, sys
folded, n, proto, bw, rss, peak = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
sites = collections.Counter()
for line in open(folded):
    stack, cost = line.rstrip().rsplit(" ", 1)
    frames = [f for f in stack.split(";") if re.search(r"h2::|pingora|breakwater|tokio::runtime::task|tokio::runtime::io|hpack|bytes::|rustls", f)]
    name = lambda f: re.sub(r"::h[0-9a-f]{16}", "", re.sub(r" \(.*", "", f)).replace("$LT$", "<").replace("$GT$", ">").replace("$u20$", " ").replace("$u7b$", "{").replace("$u7d$", "}").replace("$C$", ",")[:110]
    sites[" <- ".join(name(f) for f in frames[-2:][::-1]) or "(other)"] += int(cost)
print(f"# What an idle connection holds on the heap\n")
print(f"{n} idle {proto} connections opened one at a time; node {bw} (system allocator, under heaptrack),")
print(f"server.threads: 1; its RSS with them under heaptrack {int(rss) // 1024} MiB; heaptrack: {peak.strip()}.\n")
print("| bytes per connection at the peak | allocation site (innermost frames) |")
print("|---|---|")
for site, cost in sites.most_common(20):
    print(f"| {cost / n:.0f} | `{site}` |")
PY
cat "$out/summary.md"
echo "raw output: $out" >&2
