#!/usr/bin/env bash
# Reset in place against `wasmtime serve`, end to end, on the wasi:http handlers that both can
# run (componentize-py's Python hello, componentize-js's JavaScript hello, the C hello; WASI
# 0.2): one node (server.threads: 1, CPU 0) serving each component twice, `reset` (the
# default: each instance reset in place after its request and served again) and `fresh`
# (`reset_in_place: false`: a new instance per request), told apart by host name; and
# `wasmtime serve` 48.0.8 on each (CPU 0), with its default instance reuse (instances serve
# up to 128 requests each with no reset between them: no isolation) and with
# --max-instance-reuse-count 1 (a fresh instance per request). wrk -t1 -c16 on CPU 1, rounds
# alternating. wasmtime-cli is installed with cargo when missing (long on this machine).
#
#   bench/reset-in-place.sh [ROUNDS] [SECONDS]     (defaults: 3 rounds of 10 s)
#
# GUESTS='js c' (say) measures only those of py, js, c; WASM='guest_threads: 1' (say) adds
# keys to the node's `wasm:` settings.
#
# The Spin SDK 5 component is not here: `wasmtime serve` cannot link it (its WASI 0.3
# release-candidate and Spin imports); bench/warm-snapshot.sh measures it on Breakwater.
set -euo pipefail
rounds="${1:-3}"
secs="${2:-10}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
scratch
need_tools
release_and_guests
out="$root/bench/results/reset-in-place-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
need_wasmtime

guests_used=()
for g in py:py-handler.wasm js:js-handler.wasm c:c-handler.wasm; do
  [[ " ${GUESTS:-py js c} " == *" ${g%%:*} "* ]] && guests_used+=("$g")
done
{
  echo "server: { threads: 1 }"
  echo 'listeners: [{ name: web, address: "127.0.0.1:18500" }]'
  echo 'admin: { address: "127.0.0.1:18550" }'
  echo "access_log: { format: off }"
  echo "wasm: { cache_dir: \"$guests/cache\"${WASM:+, $WASM} }"
  echo "components:"
  for g in "${guests_used[@]}"; do
    echo "  ${g%%:*}-reset: { path: \"$guests/${g#*:}\", kind: handler }"
    echo "  ${g%%:*}-fresh: { path: \"$guests/${g#*:}\", kind: handler, reset_in_place: false }"
  done
  echo "routes:"
  for g in "${guests_used[@]}"; do
    for v in reset fresh; do
      echo "  - { match: { hosts: [${g%%:*}-$v] }, handler: ${g%%:*}-$v }"
    done
  done
} > "$work/node.yaml"
start_node node 18500

declare -A url host
contenders=()
port=18600
for g in "${guests_used[@]}"; do
  name=${g%%:*}
  for v in reset fresh; do
    url[breakwater-$name-$v]="http://127.0.0.1:18500/"
    host[breakwater-$name-$v]=$name-$v
    contenders+=("breakwater-$name-$v")
  done
  for v in reuse fresh; do
    extra=()
    [ "$v" = fresh ] && extra=(--max-instance-reuse-count 1)
    taskset -c 0 "$wasmtime_bin" serve -S cli=y --addr "127.0.0.1:$port" "${extra[@]}" \
      "$guests/${g#*:}" > "$work/wasmtime-$name-$v.out" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
    url[wasmtime-$name-$v]="http://127.0.0.1:$port/"
    host[wasmtime-$name-$v]=localhost
    contenders+=("wasmtime-$name-$v")
    port=$((port + 1))
  done
done

wrk_contenders "$rounds" "$secs" "$out" "Hello from "
rss=$(awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$node_pid/status")
{
  echo "# wasi:http handlers: Breakwater reset in place / fresh instances, wasmtime serve reuse / fresh"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD), $rounds rounds of ${secs} s; servers on CPU 0, wrk -t1 -c16 on CPU 1. Node RSS after the runs: $rss MiB.${WASM:+ Node wasm settings added: $WASM.}"
  echo
  contender_medians
  echo
  echo "Instances reset in place (node metrics):"
  echo
  curl -s "http://127.0.0.1:18550/metrics" | grep "^breakwater_component_instance_resets" | sed 's/^/    /' || true
  echo
  echo "Node log lines about reset in place:"
  echo
  grep -h -i "reset" "$work/node.err" "$work/node.out" | sed 's/^/    /' || true
} > "$out/summary.md"
cat "$out/summary.md"
