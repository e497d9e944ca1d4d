#!/usr/bin/env bash
# System calls per request, by call, for Breakwater binaries and nginx as a reverse proxy,
# one at a time in front of the same nginx origin (static 1 KiB):
#
#   bench/syscalls.sh [SECONDS] [PATH]     (defaults: 3 s, /1k; BINS="NAME=PATH ..." binaries)
#
# Each contender runs on CPU 0 (`server.threads: 1`, access log off; nginx one worker with an
# upstream keep-alive pool) under `strace -f -c` (Debian's), while wrk -t1 -c64 (CPU 1) loads
# it for SECONDS after a 1 s warm-up; the calls strace counted are divided by the requests wrk
# made. strace slows every call, so the req/s here are not benchmark figures; the counts are
# what a request costs in system calls. BINS defaults to this checkout's release build.
# Results: bench/results/syscalls-DATE/ (summary.md, one strace table per contender).
set -euo pipefail
secs="${1:-3}"
target="${2:-/1k}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_tools strace

out="$root/bench/results/syscalls-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
scratch

if [ -z "${BINS:-}" ]; then
  (cd "$root" && cargo build --release --locked -q -p breakwater-proxy)
  BINS="breakwater=$CARGO_TARGET_DIR/release/breakwater"
fi
ORIGIN=18201 NODE=18202 ADMIN=18212 NGINX=18203
start_origin $ORIGIN
first_bin="${BINS%% *}"; "${first_bin#*=}" demo-components "$work/wasm"

# measure NAME PID PORT: strace PID while wrk loads 127.0.0.1:PORT$target; a row of the summary.
measure() {
  local name="$1" pid="$2" port="$3"
  taskset -c 1 wrk -t1 -c64 -d1s "http://127.0.0.1:$port$target" > /dev/null
  strace -f -c -q -o "$out/$name.strace" -p "$pid" &
  local strace_pid=$!
  sleep 0.5   # strace attaching to every thread; the window below is wrk's
  local res; res=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" "http://127.0.0.1:$port$target")
  kill -INT "$strace_pid"; wait "$strace_pid" || true
  echo "$res" > "$out/wrk-$name.txt"
  local requests; requests=$(awk '/requests in/ { print $1 }' <<< "$res")
  awk -v n="$name" -v r="$requests" '
    $NF ~ /^[a-z_0-9]+$/ && $(NF) != "total" && $4 ~ /^[0-9]+$/ { calls[$NF] = $4 }
    END { for (c in calls) printf "%s\t%s\t%.3f\n", n, c, calls[c] / r }' "$out/$name.strace" >> "$work/rows.tsv"
  printf '%s\t%s\n' "$name" "$requests" >> "$work/requests.tsv"
}

for entry in $BINS; do
  name="${entry%%=*}"; bin="${entry#*=}"
  filter_node_config $NODE $ADMIN $ORIGIN > "$work/$name.yaml"
  taskset -c 0 "$bin" run --config "$work/$name.yaml" > "$work/$name.out" 2>&1 &
  pid=$!; pids+=($!)
  wait_routes $NODE
  measure "$name" "$pid" $NODE
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
nginx_proxy_conf $NGINX 1 > "$work/nginx.conf"
taskset -c 0 nginx -c "$work/nginx.conf" &
pids+=($!)
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$NGINX$target" && break; sleep 0.1; done
nginx_worker=$(pgrep -P "$(cat "$work/nginx-proxy.pid")" | head -1)
measure nginx "$nginx_worker" $NGINX

{
  echo "# System calls per request"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) CPUs; each contender on CPU 0 in front of an nginx origin"
  echo "(CPU 0), wrk -t1 -c64 -d${secs}s on CPU 1, GET $target; \`strace -f -c\` of the server"
  echo "(for nginx, its one worker) during wrk's run, calls divided by wrk's requests."
  echo
  names=$(cut -f1 "$work/requests.tsv" | tr '\n' ' ')
  printf '| call |'; for n in $names; do printf ' %s |' "$n"; done; echo
  printf '|---|'; for _ in $names; do printf -- '---|'; done; echo
  printf '| requests measured |'; for n in $names; do printf ' %s |' "$(awk -v n="$n" '$1 == n { print $2 }' "$work/requests.tsv")"; done; echo
  for c in $(cut -f2 "$work/rows.tsv" | sort -u); do
    printf '| `%s` |' "$c"
    for n in $names; do printf ' %s |' "$(awk -v n="$n" -v c="$c" '$1 == n && $2 == c { v = $3 } END { print v ? v : "-" }' "$work/rows.tsv")"; done
    echo
  done
  printf '| all |'; for n in $names; do printf ' %s |' "$(awk -v n="$n" '$1 == n { s += $3 } END { printf "%.3f", s }' "$work/rows.tsv")"; done; echo
} > "$out/summary.md"
cat "$out/summary.md"
echo "results in ${out#"$root"/}"
