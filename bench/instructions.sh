#!/usr/bin/env bash
# User-space instructions per request, counted by callgrind (valgrind, Debian), for Breakwater
# binaries and nginx as a reverse proxy, one at a time in front of the same nginx origin:
#
#   bench/instructions.sh [REQUESTS]     (default 2000; BINS="NAME=PATH ...", CASES as below)
#
# Wall-clock figures on this VM move by a third between rounds of one binary; an instruction
# count does not, so it shows a change of a few percent in the request path that throughput
# cannot. What it leaves out: the kernel (see bench/syscalls.sh), cache misses and stalls.
# Each contender runs under `valgrind --tool=callgrind` (Breakwater: one thread, access log
# off, `wasm.max_instances: 4` so the instance pool's reservation fits valgrind's address
# space, the demo filter on /filter1/ with `prewarm: 1`; nginx: one process, upstream
# keep-alive pool, pass-through only); for each case it gets 300 requests to warm up, has its
# counters zeroed, then REQUESTS requests from h2load (HTTP/1.1, 16 connections); the counters
# are dumped and divided by REQUESTS. Every thread is counted. CASES (default
# "pass-through|/1k;one filter|/filter1/1k") lists NAME|PATH pairs. The filter's instances must
# be reset in place after each request as they are natively (the summary shows resets per
# request from the node's metrics): with the pool's default prewarming, valgrind's slowness
# makes the filler keep three instances ready, which leaves no room in four slots to keep a
# reset one, and half the requests would pay an instantiation instead; `prewarm: 1` keeps the
# native regime. Three filters cannot be measured so in four slots.
# ACCESS_LOG replaces the nodes' `access_log:` value (default `{ format: off }`; the node's own
# default is JSON lines to standard output; a path under the run's scratch folder: $work).
# TLS=1 puts the node's listener and nginx's behind TLS (1.3, an ECDSA P-256 certificate);
# h2load makes its 16 connections anew for each run, so the count includes 16 handshakes
# (the same number for every contender). With H2C=1 it speaks HTTP/2 by ALPN.
# H2C=1 speaks HTTP/2 with prior knowledge instead (h2c: the node's listener with `h2c: true`,
# nginx's with `http2`; h2load with one stream per connection at a time, as HTTP/1.1 has).
# Results: bench/results/instructions-DATE/ (summary.md with the instructions per request and
# each run's top functions by their own instructions; BINARY-CASE.callgrind.gz, the raw data).
set -euo pipefail
requests="${1:-2000}"
IFS=';' read -ra cases <<< "${CASES:-pass-through|/1k;one filter|/filter1/1k}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_tools valgrind nghttp2-client
scratch

out="$root/bench/results/instructions-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
if [ -z "${BINS:-}" ]; then
  (cd "$root" && cargo build --release --locked -q -p breakwater-proxy)
  BINS="breakwater=$CARGO_TARGET_DIR/release/breakwater"
fi
ORIGIN=18401 NODE=18402 ADMIN=18412 NGINX=18403
start_origin $ORIGIN

# count RUN PORT PID PATH: warm up, zero, load, dump; $out/RUN.callgrind.gz.
count() {
  local run="$1" port="$2" pid="$3" target="$4"
  for _ in $(seq 1 600); do curl -skf -o /dev/null "$scheme://127.0.0.1:$port$target" && break; sleep 0.2; done
  h2load "${h2load_proto[@]}" -n 300 -c 16 "$scheme://127.0.0.1:$port$target" > /dev/null
  local resets_before; resets_before=$(resets)
  callgrind_control -z "$pid" > /dev/null 2>&1
  h2load "${h2load_proto[@]}" -n "$requests" -c 16 "$scheme://127.0.0.1:$port$target" > "$out/h2load-$run.txt"
  grep -q "$requests succeeded" "$out/h2load-$run.txt" \
    || { echo "$run: not every request succeeded" >&2; cat "$out/h2load-$run.txt" >&2; exit 1; }
  local before; before=$(find "$work" -name '*.cg.*' | wc -l)
  callgrind_control -d "$pid" > /dev/null 2>&1
  [ "$(find "$work" -name '*.cg.*' | wc -l)" -gt "$before" ] || { echo "$run: no dump" >&2; exit 1; }
  gzip -c "$(ls -t "$work"/*.cg.* | head -1)" > "$out/$run.callgrind.gz"
  awk -v a="$resets_before" -v b="$(resets)" -v n="$requests" 'BEGIN { printf "%.3f\n", (b - a) / n }' > "$out/resets-$run.txt"
}
# Instances reset in place so far, from the node's metrics (0 for nginx).
resets() {
  { curl -sf "http://127.0.0.1:$ADMIN/metrics" 2> /dev/null || true; } \
    | awk '/^breakwater_component_instance_resets/ { s += $2 } END { printf "%d", s }'
}
slug() { tr ' ' '-' <<< "$1"; }
h2load_proto=(--h1) h2c=false proto="HTTP/1.1" nginx_listen="" scheme=http
if [ "${H2C:-0}" = 1 ]; then
  h2load_proto=(-m 1) h2c=true proto="HTTP/2 with prior knowledge (h2c), one stream per connection at a time"
  nginx_listen=" http2"
fi
listener="{ name: web, address: \"127.0.0.1:$NODE\", h2c: $h2c }"
nginx_tls=""
if [ "${TLS:-0}" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=bench.test" -addext "subjectAltName=DNS:bench.test" \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2> /dev/null
  scheme=https proto="$proto over TLS (16 handshakes per run included)"
  [ "$h2c" = true ] && proto="HTTP/2 over TLS (ALPN; 16 handshakes per run included)"
  listener="$(tls_listener $NODE)"
  nginx_listen=" ssl$nginx_listen"
  nginx_tls="    ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;"
fi

valgrind_cmd=(valgrind --tool=callgrind --callgrind-out-file="$work/NAME.cg")
runs=()
for entry in $BINS; do
  name="${entry%%=*}"; bin="${entry#*=}"
  # Each binary's own demo filter (its interface may differ between revisions).
  "$bin" demo-components "$work/wasm-$name"
  cat > "$work/$name.yaml" <<EOF
server: { threads: 1 }
listeners: [$listener]
admin: { address: "127.0.0.1:$ADMIN" }
access_log: ${ACCESS_LOG:-{ format: off \}}
wasm: { max_instances: 4 }
pools:
  origin: { endpoints: ["127.0.0.1:$ORIGIN"] }
components:
  f1: { path: "$work/wasm-$name/demo-filter.wasm", prewarm: 1 }
routes:
  - { match: { path_prefix: /filter1/ }, pool: origin, filters: [f1] }
  - { pool: origin }
EOF
  "${valgrind_cmd[@]/NAME/$name}" "$bin" run --config "$work/$name.yaml" > "$work/$name.out" 2>&1 &
  pid=$!; pids+=($!)
  for c in "${cases[@]}"; do
    run="$name-$(slug "${c%%|*}")"
    count "$run" $NODE $pid "${c##*|}"
    runs+=("$run")
  done
  kill "$pid"; wait "$pid" 2> /dev/null || true
done
{ echo "master_process off;"; nginx_proxy_conf $NGINX 1 4096 "$nginx_tls"; } \
  | sed "s/listen 127.0.0.1:$NGINX;/listen 127.0.0.1:$NGINX$nginx_listen;/" > "$work/nginx.conf"
"${valgrind_cmd[@]/NAME/nginx}" nginx -c "$work/nginx.conf" > "$work/nginx.out" 2>&1 &
pid=$!; pids+=($!)
count nginx-pass-through $NGINX $pid /1k
runs+=(nginx-pass-through)
kill "$pid"; wait "$pid" 2> /dev/null || true

PROTO="$proto" python3 - "$out" "$requests" "${runs[@]}" > "$out/summary.md" <<'EOF'
import gzip, os, re, sys
from collections import defaultdict
out, requests = sys.argv[1], int(sys.argv[2])
names = sys.argv[3:]

def own_costs(path):
    """Instructions each function executed itself, from a callgrind dump."""
    table, own, fn, in_call = {}, defaultdict(int), None, False
    def name(tok):
        m = re.match(r"\((\d+)\)(?: (.*))?", tok)
        if not m:
            return tok
        if m.group(2):
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), m.group(1))
    for line in gzip.open(path, "rt", errors="replace"):
        if line.startswith("fn="):
            fn = name(line[3:].strip())
        elif line.startswith("cfn="):
            name(line[4:].strip())
        elif line.startswith("calls="):
            in_call = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            parts = line.split()
            if len(parts) >= 2:
                if not in_call:
                    own[fn] += int(parts[-1])
                in_call = False
    return own

costs = {n: own_costs(f"{out}/{n}.callgrind.gz") for n in names}
print("# User-space instructions per request (callgrind)\n")
print(f"1 KiB GETs, {os.environ['PROTO']}, {requests} requests per run from h2load (16 connections) after 300")
print("to warm up; every thread of the server counted, the kernel not. Breakwater: one thread,")
print("access log off, the demo filter on /filter1/ (`prewarm: 1`); nginx: one")
print("process, upstream keep-alive pool. A run is named BINARY-CASE.\n")
print("valgrind counts a `rep movsb` / `rep stosb` once per byte moved, so the rows of glibc's")
print("`memcpy`/`memmove` and `memset` are about the bytes they copied or zeroed, which the hardware")
print("moves 32 or more a cycle: the last column leaves them out.\n")
print("| run | instructions per request (callgrind's count) | of it in memcpy/memmove, memset | without them | instances reset per request |")
print("|---|---|---|---|---|")
string_ops = re.compile(r"__mem(cpy|move|set)_")
for n in names:
    total = sum(costs[n].values())
    strings = sum(c for f, c in costs[n].items() if string_ops.search(f))
    resets = open(f"{out}/resets-{n}.txt").read().strip()
    print(f"| {n} | {total / requests:,.0f} | {strings / requests:,.0f} | {(total - strings) / requests:,.0f} | {resets} |")
for n in names:
    total = sum(costs[n].values())
    print(f"\n## {n}: functions by their own instructions per request\n")
    print("| per request | share | function |")
    print("|---|---|---|")
    for f, c in sorted(costs[n].items(), key=lambda x: -x[1])[:25]:
        f = f.replace("|", "\\|")[:150]
        print(f"| {c / requests:,.0f} | {100 * c / total:.1f}% | `{f}` |")
EOF
sed -n "1,/^## /p" "$out/summary.md" | head -n -1
echo "results in ${out#"$root"/}"
