#!/usr/bin/env bash
# Two revisions of Breakwater side by side in one run, measured with wrk (Debian's, the
# reference HTTP/1.1 load generator), so a change to the request path shows what it costs:
#
#   bench/before-after.sh REV_A REV_B [ROUNDS] [SECONDS]     (defaults: 5 rounds of 5 s)
#
# Each revision's release binary is built from a git worktree into the shared target dir.
# Both nodes and the nginx origin (static 1 KiB file) run pinned to CPU 0 with
# `server.threads: 1` and the access log off; wrk -t1 -c64 runs pinned to CPU 1. Rounds
# alternate which revision goes first. Cases: pass-through, one trivial filter (the demo
# filter: `on-response` sets one header), three filters; or those CASES lists. The raw wrk
# output and a summary (medians, ratio B/A) go to bench/results/before-after-DATE/.
#
# Variants of one build: BIN_A / BIN_B run that binary instead of building the revision (the
# revision then only labels it), ENV_A / ENV_B set the node's environment (`RUST_LOG=warn`),
# SERVER_A / SERVER_B add keys to its `server:` settings (`work_stealing: false`), ACCESS_LOG_A
# / ACCESS_LOG_B replace its `access_log:` settings (default `{ format: off }`; a relative
# `path` is relative to the node's config, in the scratch dir). A case whose path starts with
# `tls:` (`tls:/1k`) goes over HTTPS (wrk's TLS, HTTP/1.1) to a second listener of each node,
# port + 20, with a self-signed RSA 2048 certificate for bench.test.
set -euo pipefail
rev_a="${1:?usage: bench/before-after.sh REV_A REV_B [ROUNDS] [SECONDS]}"
rev_b="${2:?usage: bench/before-after.sh REV_A REV_B [ROUNDS] [SECONDS]}"
rounds="${3:-5}"
secs="${4:-5}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_tools

out="$root/bench/results/before-after-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# --- the two binaries ---------------------------------------------------------------------
# Each revision's binary is kept under the target dir, keyed by the source it is built from
# (proxy/, isolate/, config/ and Cargo.lock), so a revision that changed only scripts or docs
# is not built again; its worktree stays there too, so cargo rebuilds only what changed.
cache="$CARGO_TARGET_DIR/before-after"
mkdir -p "$cache"
build() {
  local rev="$1" key bin tree
  key=$(git -C "$root" rev-parse "$rev:proxy" "$rev:isolate" "$rev:config" "$rev:Cargo.lock" | sha1sum | cut -c1-12)
  bin="$cache/breakwater-$key"
  if [ ! -x "$bin" ]; then
    tree="$cache/tree-$key"
    [ -d "$tree" ] || git -C "$root" worktree add --detach "$tree" "$rev" >/dev/null
    # The worktrees share the target dir, where cargo keys our crates' artifacts without
    # their path: a build in one tree would find another tree's artifacts "fresh" (their
    # dep-info names the other tree's files, unchanged). Cleaning our crates forces the build.
    (cd "$tree" && git checkout -q --detach "$rev" \
      && cargo clean --release -p breakwater-proxy -p breakwater-isolate -p breakwater-config >&2 \
      && cargo build --release --locked -p breakwater-proxy >&2)
    cp "$CARGO_TARGET_DIR/release/breakwater" "$bin"
    # And so that the checkout's own next release build is not fooled the same way.
    (cd "$root" && cargo clean --release -p breakwater-proxy -p breakwater-isolate -p breakwater-config >&2)
  fi
  echo "$bin"
}
bin_a="${BIN_A:-}"; [ -n "$bin_a" ] || bin_a=$(build "$rev_a")
bin_b="${BIN_B:-}"; [ -n "$bin_b" ] || bin_b=$(build "$rev_b")
cp "$bin_a" "$work/breakwater-a"; cp "$bin_b" "$work/breakwater-b"
sha_a=$(git -C "$root" rev-parse --short "$rev_a"); sha_b=$(git -C "$root" rev-parse --short "$rev_b")

# --- origin and nodes ---------------------------------------------------------------------
ORIGIN=18101 A=18102 B=18103 A_ADMIN=18112 B_ADMIN=18113
start_origin $ORIGIN
# Each binary's own demo components (the filter interface may differ between revisions).
"$work/breakwater-a" demo-components "$work/wasm-a"
"$work/breakwater-b" demo-components "$work/wasm-b"
# A relative access-log path is relative to the config, in the scratch dir.
self_signed_cert bench.test
node_config() {
  local port="$1" admin="$2" server="$3" log="$4" wasm="$5"
  local tls; tls=$(tls_listener $((port + 20)))
  filter_node_config "$port" "$admin" $ORIGIN "$wasm" \
    | sed "s|^server: { threads: 1 }|server: { threads: 1${server:+, $server} }|; s|^access_log: .*|access_log: ${log:-{ format: off \}}|; s|^listeners: \[\(.*\)\]$|listeners: [\1, $tls]|"
}
node_config $A $A_ADMIN "${SERVER_A:-}" "${ACCESS_LOG_A:-}" "$work/wasm-a" > "$work/a.yaml"
node_config $B $B_ADMIN "${SERVER_B:-}" "${ACCESS_LOG_B:-}" "$work/wasm-b" > "$work/b.yaml"
env_a=(${ENV_A:-}); env_b=(${ENV_B:-})
for n in a b; do
  if [ "$n" = a ]; then envs=("${env_a[@]}"); else envs=("${env_b[@]}"); fi
  env "${envs[@]}" taskset -c 0 "$work/breakwater-$n" run --config "$work/$n.yaml" > "$work/logs/$n.out" 2>&1 &
  pids+=($!); eval "pid_$n=\$!"
done
wait_routes $A
wait_routes $B

# --- rounds -------------------------------------------------------------------------------
cases=("pass-through|/1k" "one filter|/filter1/1k" "three filters|/filter3/1k")
# CASES="cache hit|/cache/1k;pass-through|/1k": other cases (NAME|PATH, separated by `;`).
[ -n "${CASES:-}" ] && IFS=';' read -ra cases <<< "$CASES"
raw="$out/wrk-raw.txt"
: > "$raw"
results="$work/results.tsv"
for round in $(seq 1 "$rounds"); do
  order=(a b); [ $((round % 2)) -eq 0 ] && order=(b a)
  for c in "${cases[@]}"; do
    name="${c%%|*}"; path="${c##*|}"
    for n in "${order[@]}"; do
      port=$A; [ "$n" = b ] && port=$B
      url="http://127.0.0.1:$port$path"
      [[ "$path" = tls:* ]] && url="https://127.0.0.1:$((port + 20))${path#tls:}"
      taskset -c 1 wrk -t1 -c64 -d1s "$url" > /dev/null  # warm-up
      pid_var="pid_$n"; cpu_before=$(cpu_ticks "${!pid_var}")
      res=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" --latency "$url")
      cpu_after=$(cpu_ticks "${!pid_var}")
      { echo "### round $round, $name, $n"; echo "$res"; } >> "$raw"
      rps=$(awk '/^Requests\/sec/ { print $2 }' <<< "$res")
      p99=$(wrk_p99_ms <<< "$res")
      errors=$(awk '/Non-2xx|Socket errors/ { print }' <<< "$res" | tr '\n' ' ')
      us=$(cpu_us_per_request $((cpu_after - cpu_before)) "$rps" "$secs")
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$n" "$rps" "$p99" "$us" >> "$results"
      [ -n "$errors" ] && echo "round $round $name $n: $errors" >> "$out/errors.txt"
    done
  done
done

# --- summary ------------------------------------------------------------------------------
{
  echo "# Before/after: $rev_a ($sha_a) vs $rev_b ($sha_b)"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) CPUs ($(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2 }')),"
  echo "nodes and nginx origin on CPU 0 (server.threads: 1, access log off), wrk -t1 -c64 -d${secs}s on CPU 1,"
  echo "1 KiB, $rounds rounds alternating the order; medians of the rounds."
  for n in A B; do
    v="BIN_$n"; e="ENV_$n"; sv="SERVER_$n"; al="ACCESS_LOG_$n"
    if [ -n "${!v:-}${!e:-}${!sv:-}${!al:-}" ]; then
      echo "$n: binary ${!v:-built from its revision}; environment: ${!e:-none}; server: threads: 1${!sv:+, ${!sv}}; access_log: ${!al:-{ format: off \}}"
    fi
  done
  echo
  echo "| case | A req/s | B req/s | B/A (median of per-round ratios) | A p99 ms | B p99 ms | A CPU µs/req | B CPU µs/req |"
  echo "|---|---|---|---|---|---|---|---|"
  median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
  for c in "${cases[@]}"; do
    name="${c%%|*}"
    med() { awk -F'\t' -v c="$name" -v n="$1" -v col="$2" '$2 == c && $3 == n { print $col }' "$results" | median; }
    a=$(med a 4); b=$(med b 4); pa=$(med a 5); pb=$(med b 5); ca=$(med a 6); cb=$(med b 6)
    ratio=$(awk -F'\t' -v c="$name" '$2 == c { v[$1, $3] = $4; r[$1] = 1 } END { for (i in r) printf "%.3f\n", v[i, "b"] / v[i, "a"] }' "$results" | median)
    echo "| $name | $a | $b | $ratio | $pa | $pb | $ca | $cb |"
  done
  echo
  echo "Per round (round, case, revision, req/s, p99 ms, node CPU µs per request):"
  echo
  echo '```'
  cat "$results"
  echo '```'
  [ -f "$out/errors.txt" ] && { echo; echo "wrk reported errors:"; cat "$out/errors.txt"; }
} > "$out/summary.md"
cat "$out/summary.md"
