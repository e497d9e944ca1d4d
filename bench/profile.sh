#!/usr/bin/env bash
# CPU profiles of the request path, as flamegraphs: the release node (`server.threads: 1`,
# access log off) and an nginx origin on CPU 0, wrk -t1 -c64 on CPU 1, `perf record` (DWARF
# call graphs) of the node while wrk runs, one case at a time (pass-through, one trivial
# filter, three; a cache hit with CASES):
#
#   bench/profile.sh [SECONDS]      (default 8 s per case; BREAKWATER_BIN=PATH to skip the build)
#   CASES="cache-hit|/cache/1k pass-through|/1k" bench/profile.sh   # other cases (NAME|PATH)
#   CASES="pass-through|/1k tls-h1|tls:/1k" COMPARE="pass-through tls-h1" bench/profile.sh
#                                   # a PATH tls:/P is served by the node's HTTPS listener,
#                                   # tls-h2:/P the same over HTTP/2 (h2load -m1)
#
# COMPARE="A B" (default "pass-through one-filter") names the two cases whose self times per
# request are set side by side in summary.md.
#
# Output in bench/results/profile-DATE/: CASE.svg (inferno flamegraph), CASE.folded.gz (the
# collapsed stacks; on a machine without hardware counters perf samples the cpu-clock event,
# and each stack's count is CPU nanoseconds), wrk-CASE.txt, and summary.md: CPU per request, the
# share of Wasm work and of the epoch ticker per case, and the functions whose self time grows
# most from pass-through to one filter. perf slows the node down (wrk's figures here are not
# throughput figures; bench/before-after.sh and bench/compare.sh measure that).
set -euo pipefail
secs="${1:-8}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_profilers
# BREAKWATER_BIN: profile that binary instead of building this tree's.
bw="${BREAKWATER_BIN:-}"
if [ -z "$bw" ]; then
  cargo build --release --locked -p breakwater-proxy
  bw="$CARGO_TARGET_DIR/release/breakwater"
fi

out="$root/bench/results/profile-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

ORIGIN=18201 BW=18202 ADMIN=18212 BWTLS=18243
start_origin $ORIGIN
"$bw" demo-components "$work/wasm"
filter_node_config $BW $ADMIN $ORIGIN > "$work/node.yaml"
# An HTTPS listener beside the plain one, for `tls:` cases (a self-signed certificate; wrk
# does not verify it).
self_signed_cert bench.test
sed -i "s|^listeners: \[\(.*\)\]$|listeners:\n  - \1\n  - { name: tls, address: \"127.0.0.1:$BWTLS\", protocol: https, certificates: [{ names: [bench.test], cert: \"$work/cert.pem\", key: \"$work/key.pem\" }] }|" "$work/node.yaml"
taskset -c 0 "$bw" run --config "$work/node.yaml" > "$work/logs/node.out" 2>&1 &
pids+=($!); node=$!
wait_routes $BW

{
  echo "# CPU profiles of the request path"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) CPUs, node and nginx origin on CPU 0 (server.threads: 1),"
  echo "wrk -t1 -c64 on CPU 1, 1 KiB, perf record -F 499 --call-graph dwarf of the node for ${secs} s per case."
  echo
  echo "| case | req/s under perf | CPU µs per request | Wasm (wasmtime, isolate) share | epoch ticker share |"
  echo "|---|---|---|---|---|"
} > "$out/summary.md"
cases=(${CASES:-pass-through|/1k one-filter|/filter1/1k three-filters|/filter3/1k})
for c in "${cases[@]}"; do
  name="${c%%|*}"; path="${c##*|}"
  url="http://127.0.0.1:$BW$path"
  case "$path" in
    tls:*) url="https://127.0.0.1:$BWTLS${path#tls:}" ;;
    tls-h2:*) url="h2:https://127.0.0.1:$BWTLS${path#tls-h2:}" ;;
  esac
  profile_under_load "$name" "$url" 64 499 "$node"
  rps=$(awk '/^Requests\/sec/ { print $2 }' "$out/wrk-$name.txt")
  awk -v r="$rps" -v t="$secs" -v name="$name" '{ n = $NF; total += n; if ($0 ~ /wasmtime|breakwater_isolate/) wasm += n; if ($0 ~ /^wasm-epoch/) tick += n }
    END { printf "| %s | %s | %.1f | %.1f%% | %.1f%% |\n", name, r, total / 1000 / (r * t), 100 * wasm / total, 100 * tick / total }' \
    "$out/$name.folded" >> "$out/summary.md"
done

# Self time per function (the leaf of each stack), per request, of the two COMPARE cases
# (pass-through against one filter by default: where the filter's extra CPU goes).
self_per_request() {
  local name="$1" rps; rps=$(awk '/^Requests\/sec/ { print $2 }' "$out/wrk-$name.txt")
  awk -v r="$rps" -v t="$secs" '{ n = $NF; $NF = ""; k = split($0, f, ";"); leaf = f[k]; gsub(/ +$/, "", leaf); s[leaf] += n }
    END { for (l in s) printf "%s\t%.3f\n", l, s[l] / 1000 / (r * t) }' "$out/$name.folded"
}
read -r base other <<< "${COMPARE:-pass-through one-filter}"
# Only when both of its cases ran (CASES may pick others).
if [ -f "$out/wrk-$other.txt" ] && [ -f "$out/wrk-$base.txt" ]; then
  self_per_request "$base" | sort > "$work/pass.tsv"
  self_per_request "$other" | sort > "$work/filter.tsv"
  {
    echo
    echo "Self CPU µs per request that grows most from $base to $other:"
    echo
    echo "| function | $base | $other | growth |"
    echo "|---|---|---|---|"
    join -t $'\t' -a 2 -e 0 -o 0,1.2,2.2 "$work/pass.tsv" "$work/filter.tsv" \
      | awk -F'\t' '{ printf "%s\t%s\t%s\t%.3f\n", $1, $2, $3, $3 - $2 }' | sort -t $'\t' -k4 -gr | awk 'NR <= 40' \
      | awk -F'\t' '{ gsub(/\|/, "\\|", $1); printf "| `%s` | %s | %s | %s |\n", $1, $2, $3, $4 }'
  } >> "$out/summary.md"
fi
cat "$out/summary.md"
# The collapsed stacks are the raw output kept beside the figures: compressed (a megabyte
# of text each otherwise).
gzip -9 "$out"/*.folded
