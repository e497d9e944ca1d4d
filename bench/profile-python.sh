#!/usr/bin/env bash
# Where a Python request's CPU goes: perf (DWARF call graphs) on the pinned node while wrk
# saturates a route served by the componentize-py `wasi:http` handler (WASI 0.2), or with
# TARGET=spin by the Spin SDK Python hello (WASI 0.3) from its warm snapshot (`warmup: auto`),
# or with TARGET=js by the componentize-js JavaScript hello (WASI 0.2).
#
#   bench/profile-python.sh [SECONDS]      (default 8; BREAKWATER_BIN=PATH skips the build)
#
# Writes bench/results/profile-python-DATE/: python.svg (flamegraph), python.folded,
# wrk-python.txt and summary.md (CPU per request by thread, the share spent initialising
# function references, the top self times).
set -euo pipefail
secs="${1:-8}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
scratch
need_profilers
release_and_guests
target="${TARGET:-py}"
out="$root/bench/results/profile-python-$target-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
case "$target" in
  py) component="py: { path: \"$guests/py-handler.wasm\", kind: handler, config: { GREETING: edge } }"; path=/py/x ;;
  spin) component="py: { path: \"$guests/spin-hello.wasm\", kind: handler, warmup: auto }"; path=/ ;;
  js) component="py: { path: \"$guests/js-handler.wasm\", kind: handler }"; path=/js/x ;;
  *) echo "TARGET is py, spin or js" >&2; exit 2 ;;
esac

BW=18302 ADMIN=18312
cat > "$work/node.yaml" <<YAML
server: { threads: 1 }
listeners: [{ name: web, address: "127.0.0.1:$BW" }]
admin: { address: "127.0.0.1:$ADMIN" }
access_log: { format: off }
wasm: { cache_dir: "$guests/cache" }
components:
  $component
routes:
  - { handler: py }
YAML
start_node node $BW "$path"

# 149 Hz: Python's deep stacks make DWARF unwinding in `perf script` slow.
profile_under_load python "http://127.0.0.1:$BW$path" 16 149 "$node_pid"

rps=$(awk '/^Requests\/sec/ { print $2 }' "$out/wrk-python.txt")
{
  echo "# CPU profile of an interpreted wasi:http handler route ($target)"
  echo
  echo "$(date -u +%Y-%m-%d), $(git rev-parse --short HEAD), node on CPU 0 (server.threads: 1), wrk -t1 -c16 on CPU 1,"
  echo "perf record -F 149 --call-graph dwarf of the node for ${secs} s; $rps req/s under perf."
  echo
  echo "By thread (the listener's event loop, the guest threads that run the handler, the"
  echo "filler thread that instantiates ahead), and the share spent initialising function"
  echo "references (\`ref.func\` run by a fresh instance: per instance, so per request):"
  echo
  echo "| part | share of the node's CPU | µs per request |"
  echo "|---|---|---|"
  awk -v r="$rps" -v t="$secs" '
    { n = $NF; total += n; split($1, f, ";"); s["thread " f[1]] += n
      if ($0 ~ /ref_func|initialize_and_return_funcref/) s["of which funcref initialisation"] += n
      if ($0 ~ /exc_page_fault/) s["of which page faults"] += n
      if ($0 ~ /deallocate_module|drop_in_place<wasmtime::runtime::store::StoreInner/) s["of which store drop and slot reset"] += n }
    END { for (k in s) printf "| %s | %.1f%% | %.1f |\n", k, 100 * s[k] / total, s[k] / 1000 / (r * t)
          printf "| total | 100%% | %.1f |\n", total / 1000 / (r * t) }' "$out/python.folded" | sort -t'|' -k3 -gr
  echo
  echo "Top self times (µs per request):"
  echo
  echo "| function | µs |"
  echo "|---|---|"
  awk -v r="$rps" -v t="$secs" '{ n = $NF; $NF = ""; k = split($0, f, ";"); leaf = f[k]; gsub(/ +$/, "", leaf); s[leaf] += n }
    END { for (l in s) printf "%s\t%.2f\n", l, s[l] / 1000 / (r * t) }' "$out/python.folded" \
    | sort -t $'\t' -k2 -gr | awk 'NR <= 25' | awk -F'\t' '{ gsub(/\|/, "\\|", $1); printf "| `%s` | %s |\n", $1, $2 }'
} > "$out/summary.md"
cat "$out/summary.md"
