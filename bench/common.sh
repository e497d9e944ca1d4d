# Sourced by the benchmark scripts (`source "$(dirname "${BASH_SOURCE[0]}")/common.sh"`): the
# setup they share. Sourcing it moves to the repository root ($root), installs the build
# dependencies and exports CARGO_TARGET_DIR. The helpers below that start processes expect
# $work (a scratch dir, see `scratch`) and the array pids (processes stopped at exit).

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source deploy/build-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

# Install from Debian what is missing of: nginx, wrk, curl and the extra names given.
need_tools() {
  local need=()
  command -v nginx >/dev/null || need+=(nginx-light)
  command -v wrk >/dev/null || need+=(wrk)
  command -v curl >/dev/null || need+=(curl)
  need+=("$@")
  [ ${#need[@]} -gt 0 ] || return 0
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
}

# An nginx origin on CPU 0 at 127.0.0.1:$1 serving a static 1 KiB file as /1k, /filter1/1k
# and /filter3/1k; ORIGIN_CONNECTIONS (default 4096) is its worker_connections,
# ORIGIN_WORKERS (default 1) its worker_processes, ORIGIN_CPUS (default 0) the CPUs it is
# pinned to ("all": not pinned).
start_origin() {
  chmod 755 "$work"   # nginx's workers read the files as their own user
  mkdir -p "$work/www/filter1" "$work/www/filter3" "$work/www/cache" "$work/logs"
  head -c 768 /dev/urandom | base64 -w0 > "$work/www/1k"
  head -c 76800 /dev/urandom | base64 -w0 > "$work/www/100k"
  for d in filter1 filter3 cache; do cp "$work/www/1k" "$work/www/100k" "$work/www/$d/"; done
  cat > "$work/origin.conf" <<EOF
worker_processes ${ORIGIN_WORKERS:-1};
daemon off;
pid $work/origin.pid;
error_log $work/logs/origin.err;
worker_rlimit_nofile ${ORIGIN_CONNECTIONS:-4096};
events { worker_connections ${ORIGIN_CONNECTIONS:-4096}; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$1; root $work/www; }
}
EOF
  case "${ORIGIN_CPUS:-0}" in
    all) nginx -c "$work/origin.conf" & ;;
    *) taskset -c "${ORIGIN_CPUS:-0}" nginx -c "$work/origin.conf" & ;;
  esac
  pids+=($!)
}

# self_signed_cert NAME: a certificate for the host NAME, $work/cert.pem, and its key,
# $work/key.pem (the load generators here do not verify it).
self_signed_cert() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$1" \
    -addext "subjectAltName=DNS:$1" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
}

# A free loopback TCP port (bound and released: for the benches only, never the tests).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_object_origin PORT BYTES MAX_AGE [ACCESS_LOG [PATH PATH_BYTES]]: an nginx origin at
# 127.0.0.1:PORT answering every path with one random body of about BYTES (base64 of 3/4 as
# many), and PATH, when given, with one of PATH_BYTES, both with `Cache-Control:
# max-age=MAX_AGE`; its requests logged to ACCESS_LOG (default: not logged, `off`). Pinned to
# ORIGIN_CPUS when set.
start_object_origin() {
  chmod 755 "$work"; mkdir -p "$work/www" "$work/logs"
  head -c $(($2 * 3 / 4)) /dev/urandom | base64 -w0 > "$work/www/object"
  local exact=""
  if [ -n "${5:-}" ]; then
    head -c $(($6 * 3 / 4)) /dev/urandom | base64 -w0 > "$work/www/exact"
    exact="location = $5 { add_header Cache-Control \"max-age=$3\"; try_files /exact =404; }"
  fi
  cat > "$work/origin.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/origin.pid;
error_log $work/logs/origin.err;
events { worker_connections 1024; }
http {
  access_log ${4:-off};
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$1; root $work/www;
    location / { add_header Cache-Control "max-age=$3"; try_files /object =404; }
    $exact
  }
}
EOF
  if [ -n "${ORIGIN_CPUS:-}" ]; then
    taskset -c "$ORIGIN_CPUS" nginx -c "$work/origin.conf" &
  else
    nginx -c "$work/origin.conf" &
  fi
  pids+=($!)
}

# nginx_proxy_conf PORT WORKERS [CONNECTIONS] [LINES]: the config of nginx as a reverse proxy
# on 127.0.0.1:PORT to the origin at $ORIGIN through an upstream keep-alive pool (nginx at
# its best for this), CONNECTIONS (default 4096) per worker; LINES go into its server block
# (more listeners, TLS).
nginx_proxy_conf() {
  local port="$1" workers="$2" connections="${3:-4096}" lines="${4:-}"
  cat <<EOF
worker_processes $workers;
worker_rlimit_nofile $((connections + 1000));
daemon off;
pid $work/nginx-proxy.pid;
error_log $work/logs/nginx-proxy.err;
events { worker_connections $connections; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  server {
    listen 127.0.0.1:$port;
$lines
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
}

# A node config: listener at port $1, admin at $2, origin at $3, the demo filter (written to
# $4, default $work/wasm, by `breakwater demo-components`) once on /filter1/ and three times on
# /filter3/.
filter_node_config() {
  local wasm="${4:-$work/wasm}"
  cat <<EOF
server: { threads: 1 }
listeners: [{ name: web, address: "127.0.0.1:$1" }]
admin: { address: "127.0.0.1:$2" }
access_log: { format: off }
pools:
  origin: { endpoints: ["127.0.0.1:$3"] }
components:
  f1: { path: "$wasm/demo-filter.wasm" }
  f2: { path: "$wasm/demo-filter.wasm" }
  f3: { path: "$wasm/demo-filter.wasm" }
  hello: { path: "$wasm/hello-handler.wasm", kind: handler }
routes:
  - { match: { path: /hello }, handler: hello }
  - { match: { path_prefix: /filter1/ }, pool: origin, filters: [f1] }
  - { match: { path_prefix: /filter3/ }, pool: origin, filters: [f1, f2, f3] }
  - { match: { path_prefix: /cache/ }, pool: origin, cache: { default_ttl: 1h } }
  - { pool: origin }
EOF
}

# tls_listener PORT [KEYS]: a node's HTTPS listener `tls` at 127.0.0.1:PORT (HTTP/1.1 and
# HTTP/2 by ALPN) with $work/cert.pem for bench.test (`self_signed_cert`), as one line of YAML;
# KEYS (say `clients: { ... }`) are added to it.
tls_listener() {
  echo "{ name: tls, address: \"127.0.0.1:$1\", protocol: https,${2:+ $2,} certificates: [{ names: [bench.test], cert: \"$work/cert.pem\", key: \"$work/key.pem\" }] }"
}

# A node for many client connections: one thread, an h2c listener at 127.0.0.1:$1 taking up
# to 15 000 clients, admin at $2, every request to the origin at 127.0.0.1:$3; with $4, an
# HTTPS listener (HTTP/1.1 and HTTP/2 by ALPN) there too, with $work/cert.pem for bench.test
# (`self_signed_cert`); SERVER (say `work_stealing: true`) adds keys to its `server:` settings.
many_clients_node_config() {
  local tls=""
  [ -n "${4:-}" ] && tls="
  - $(tls_listener "$4" "clients: { max_connections: 15000 }")"
  cat <<EOF
server: { threads: 1${SERVER:+, $SERVER} }
listeners:
  - { name: web, address: "127.0.0.1:$1", h2c: true, clients: { max_connections: 15000 } }$tls
admin: { address: "127.0.0.1:$2" }
access_log: { format: off }
pools:
  origin: { endpoints: ["127.0.0.1:$3"] }
routes: [{ pool: origin }]
EOF
}

# hold_idle PORT N PROTO MODE: bench/idle_client.py (CPU 1) opens N connections to
# 127.0.0.1:PORT (h1|h2|tls-h1|tls-h2, burst|one), each answered, and holds them until `release_idle`;
# returns once they are all open.
hold_idle() {
  local fifo="$work/hold"; rm -f "$fifo"; mkfifo "$fifo"
  taskset -c 1 python3 "$root/bench/idle_client.py" "$@" < "$fifo" > "$work/idle.out" &
  idle_client=$!
  exec 7> "$fifo"
  for _ in $(seq 1 1200); do grep -q open "$work/idle.out" 2>/dev/null && break; kill -0 "$idle_client" 2>/dev/null || break; sleep 0.1; done
  grep -q open "$work/idle.out" || { echo "idle client failed on port $1 ($3)" >&2; exit 1; }
}

# Close the connections `hold_idle` holds.
release_idle() {
  exec 7>&-
  wait "$idle_client" || true
}

# Wait for 127.0.0.1:$1 to accept, then require 200 on every case's path.
wait_routes() {
  for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && break; sleep 0.1; done
  for path in /1k /filter1/1k /filter3/1k; do
    local code; code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1$path")
    [ "$code" = 200 ] || { echo "127.0.0.1:$1$path answered $code" >&2; cat "$work"/logs/* >&2; exit 1; }
  done
}

# A scratch dir, $work, removed at exit, when the processes listed in the array pids are
# stopped too.
scratch() {
  work="$(mktemp -d)"
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
}

# $bw, the release binary (built as compare.sh builds it, the bench crate unifying features,
# unless BREAKWATER_BIN names one), and $guests, the guest components built from source.
release_and_guests() {
  bw="${BREAKWATER_BIN:-}"
  if [ -z "$bw" ]; then
    cargo build --release --locked -p breakwater-proxy -p breakwater-bench
    bw="$CARGO_TARGET_DIR/release/breakwater"
  fi
  build_guests
}

# $guests, the guest components (C, Python, JavaScript) built from source.
build_guests() {
  guests="$CARGO_TARGET_DIR/guests"
  bash isolate/guests/build.sh "$guests" >&2
}

# $wasmtime_bin, the peer's `wasmtime` (wasmtime-cli 48.0.8, the version Breakwater embeds),
# installed with cargo when missing (long on this machine; cached in ~/.cargo/bin).
need_wasmtime() {
  wasmtime_bin="$(command -v wasmtime || echo "$HOME/.cargo/bin/wasmtime")"
  if ! "$wasmtime_bin" --version 2>/dev/null | grep -q "48.0.8"; then
    cargo install wasmtime-cli --version 48.0.8 --locked >&2
    wasmtime_bin="$HOME/.cargo/bin/wasmtime"
  fi
}

# start_node NAME PORT: run $work/NAME.yaml on CPU 0 (its pid in node_pid, its output in
# $work/NAME.out and .err), wait until it is ready and answers 200 on each further path.
# NODE_WRAPPER (words, split by the shell) runs the node under a tool: `heaptrack -o FILE`.
start_node() {
  local name="$1" port="$2"; shift 2
  # shellcheck disable=SC2086 # the wrapper's words are meant to be split
  taskset -c 0 ${NODE_WRAPPER:-} "$bw" run --config "$work/$name.yaml" > "$work/$name.out" 2> "$work/$name.err" &
  node_pid=$!; pids+=($!)
  for _ in $(seq 1 900); do grep -q "breakwater ready" "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  for path in "$@"; do
    local code; code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$path")
    [ "$code" = 200 ] || { echo "$name: $path answered $code" >&2; cat "$work/$name.err" >&2; exit 1; }
  done
}

# perf (Debian) and inferno (crates.io), installed when missing.
need_profilers() {
  local extra=()
  command -v perf >/dev/null || extra+=(linux-perf)
  need_tools "${extra[@]}"
  command -v inferno-flamegraph >/dev/null || cargo install inferno --locked --version 0.12.8
}

# profile_under_load NAME URL CONNECTIONS HZ PID: after a 1 s warm-up, wrk (-t1, CPU 1) loads
# URL for $secs + 2 s while perf records PID for $secs s (DWARF call graphs at HZ); writes
# $out/wrk-NAME.txt, $out/NAME.folded and $out/NAME.svg. `--no-inline`: perf's addr2line
# hangs on the compiled-code files wasmtime maps from a `cache_dir`.
# A URL h2:https://... is loaded over HTTP/2 by h2load (-m1, like-for-like with wrk); its
# req/s is written to wrk-NAME.txt as wrk's `Requests/sec:` line, after h2load's output.
profile_under_load() {
  local name="$1" url="$2" conns="$3" hz="$4" pid="$5"
  load() {
    case "$url" in
      h2:*) taskset -c 1 h2load -t1 -c"$conns" -m1 -D "$1" "${url#h2:}" \
              | awk '{ print } /^finished in/ { print "Requests/sec: " $4 }' ;;
      *) taskset -c 1 wrk -t1 -c"$conns" -d"${1}s" "$url" ;;
    esac
  }
  load 1 > /dev/null
  load "$((secs + 2))" > "$out/wrk-$name.txt" &
  local wrk_pid=$!
  sleep 1
  perf record -F "$hz" --call-graph dwarf,16384 -p "$pid" -o "$work/$name.data" -- sleep "$secs" 2> /dev/null
  wait "$wrk_pid"
  perf script --no-inline -i "$work/$name.data" 2> /dev/null | inferno-collapse-perf > "$out/$name.folded"
  inferno-flamegraph --title "breakwater: $name" < "$out/$name.folded" > "$out/$name.svg"
}

# User + system CPU ticks of process $1 so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# CPU µs per request from a tick delta $1 over $3 seconds at $2 req/s: steadier than req/s on
# a noisy machine, since time a process waits for its core does not count.
cpu_us_per_request() {
  awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v r="$2" -v s="$3" 'BEGIN { printf "%.1f", t / hz * 1e6 / (r * s) }'
}

# wrk's p99 in ms, from its `--latency` output on stdin.
wrk_p99_ms() {
  awk '$1 == "99%" { v = $2; f = 1; if (v ~ /us$/) f = 0.001; else if (v ~ /ms$/) f = 1; else if (v ~ /s$/) f = 1000; gsub(/[a-z]+$/, "", v); printf "%.2f", v * f }'
}

# wait_disk ADMIN_PORT: until the node's cache disk tier is open (it opens in the background).
wait_disk() {
  for _ in $(seq 1 300); do
    curl -s "http://127.0.0.1:$1/metrics" | grep -q '^breakwater_cache_disk_up 1' && return
    sleep 0.1
  done
  echo "the disk tier did not open" >&2; exit 1
}

# status_kib PID FIELD: a kB field of /proc/PID/status (VmRSS, VmHWM); rss_mib PID: VmRSS in
# whole MiB.
status_kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
rss_mib() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

# component_copies SRC N DIR: N copies of the component SRC in DIR as h0.wasm ...
# h{N-1}.wasm, each with a custom section naming its number (different bytes, the same
# code: nothing is shared by accident).
component_copies() {
  python3 - "$1" "$2" "$3" <<'PY'
import os, sys
src, n, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(d, exist_ok=True)
body = open(src, "rb").read()
def leb(v):
    out = bytearray()
    while True:
        b = v & 0x7F; v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v: return bytes(out)
for i in range(n):
    name, payload = b"copy", str(i).encode()
    content = leb(len(name)) + name + payload
    open(f"{d}/h{i}.wasm", "wb").write(body + b"\x00" + leb(len(content)) + content)
PY
}

# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# wrk_contenders ROUNDS SECS OUT EXPECTED: the contenders named in the global array
# `contenders` (URL in url[NAME], Host header in host[NAME]) must each answer with a body
# starting with EXPECTED (their answers in OUT/answers.txt); then wrk -t1 -c16 --latency on
# CPU 1 against each, ROUNDS rounds of SECS seconds, alternating; each raw output in
# OUT/rROUND-NAME.wrk, the table of rounds in $work/rows.
wrk_contenders() {
  local rounds=$1 secs=$2 out=$3 expected=$4 c r f body
  for c in "${contenders[@]}"; do
    body=$(curl -s -H "Host: ${host[$c]}" "${url[$c]}")
    echo "$c answers: $body" >> "$out/answers.txt"
    case "$body" in "$expected"*) ;; *) echo "$c: unexpected answer: $body" >&2; exit 1 ;; esac
  done
  printf "| round | contender | req/s | p99 |\n|---|---|---|---|\n" > "$work/rows"
  for r in $(seq 1 "$rounds"); do
    for c in "${contenders[@]}"; do
      f="$out/r$r-$c.wrk"
      taskset -c 1 wrk -t1 -c16 -d"${secs}s" --latency -H "Host: ${host[$c]}" "${url[$c]}" > "$f"
      echo "| $r | $c | $(awk '/^Requests\/sec/ { print $2 }' "$f") | $(awk '$1 == "99%" { print $2 }' "$f") |" >> "$work/rows"
    done
  done
}

# contender_medians: the table of rounds ($work/rows) and each contender's median req/s.
contender_medians() {
  local c
  cat "$work/rows"
  echo
  echo "| contender | median req/s |"
  echo "|---|---|"
  for c in "${contenders[@]}"; do
    echo "| $c | $(awk -F'|' -v c="$c" '$3 ~ " "c" " { print $4 + 0 }' "$work/rows" | median) |"
  done
}
