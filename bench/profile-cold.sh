#!/usr/bin/env bash
# Where the cold start of an interpreted component goes: the Python (componentize-py) and
# JavaScript (componentize-js) hello handlers of isolate/guests, each compiled with its warm
# snapshot into `wasm.cache_dir` by `breakwater check` (as scale-to-zero.sh does); then
# ROUNDS times: the node started on that warm cache (server.threads: 1, CPU 0), perf
# attached to it (DWARF call graphs at HZ), one request (the cold start: the component has
# never run in this process) and a second one (warm), from CPU 1 with curl; perf stopped.
# The samples of all rounds are folded (LANG.folded.gz) into one flamegraph per language
# (LANG.svg, frames under half a pixel wide left out to keep it small), and the summary
# splits them by phase of the cold path.
#
#   bench/profile-cold.sh [ROUNDS]     (default 20; HZ default 9999)
#   SUMMARY_ONLY=bench/results/profile-cold-DATE bench/profile-cold.sh   (summary.md again)
set -euo pipefail
rounds="${1:-20}"
hz="${HZ:-9999}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
scratch
if [ -z "${SUMMARY_ONLY:-}" ]; then
  need_profilers
  release_and_guests
  out="$root/bench/results/profile-cold-$(date -u +%Y%m%d-%H%M%S)"
  mkdir -p "$out"
fi
port=$(free_port); admin=$(free_port)

# phases (folded stacks on stdin): the share of the samples in each phase of the cold path
# (a stack counts in the first phase it matches).
phases() {
  awk '
    { n = $NF; total += n
      if ($0 ~ /load_artifact|deserialize_file|Component::deserialize|CodeMemory/) p = "map the compiled code (deserialize, publish)"
      else if ($0 ~ /instantiate_pre|InstancePre|Linker.*instantiate_pre|Handler::new|handler::Handler::new/) p = "pre-link (linker, InstancePre, pool)"
      else if ($0 ~ /MemoryImage|memfd|create_memory_image|ModuleMemoryImages/) p = "memory images (CoW setup)"
      else if ($0 ~ /instantiate|Instance::new|allocate_module|InstanceAllocator/) p = "instantiate"
      else if ($0 ~ /wasm\[|wasm_to_array|array_to_wasm|call_host|VMContext|wasmtime_fiber|fiber_start/) p = "guest code and host calls"
      else p = "other (HTTP, runtime, kernel)"
      s[p] += n
      if ($0 ~ /page_fault/) pf += n }
    END { for (p in s) printf "| %s | %.1f %% |\n", p, 100 * s[p] / total
          printf "| of all: page faults | %.1f %% |\n", 100 * pf / total
          printf "| cycles sampled | %d |\n", total }' | sort -t'|' -k3 -rn
}

# One language: build its config, compile it with `check`, then the rounds.
profile() {
  local lang="$1" wasm="$2" d="$work/$1"
  mkdir -p "$d"
  cat > "$d/node.yaml" <<YAML
server: { threads: 1 }
listeners: [{ name: web, address: "127.0.0.1:$port" }]
admin: { address: "127.0.0.1:$admin" }
access_log: { format: off }
wasm: { cache_dir: "$d/cache" }
components:
  h: { path: "$wasm", kind: handler }
routes:
  - { handler: h }
YAML
  RUST_LOG=warn "$bw" check --config "$d/node.yaml" > "$d/check.out" 2>&1
  : > "$d/times"
  for i in $(seq 1 "$rounds"); do
    RUST_LOG=warn taskset -c 0 "$bw" run --config "$d/node.yaml" > "$d/node.out" 2> "$d/node.err" &
    local pid=$!
    for _ in $(seq 1 3000); do grep -q "breakwater ready" "$d/node.out" 2>/dev/null && break; sleep 0.01; done
    perf record -F "$hz" --call-graph dwarf,32768 -p "$pid" -o "$d/$i.data" 2> /dev/null &
    local perf_pid=$!
    sleep 0.5   # perf attaches
    local cold warm
    cold=$(taskset -c 1 curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/")
    warm=$(taskset -c 1 curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/")
    kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$cold $warm" >> "$d/times"
  done
  for i in $(seq 1 "$rounds"); do
    perf script --no-inline -i "$d/$i.data" 2> /dev/null | inferno-collapse-perf
  done | sort | awk '{ n = $NF; $NF = ""; s[$0] += n } END { for (k in s) print k s[k] }' | gzip -9 > "$out/$lang.folded.gz"
  folded "$lang" | inferno-flamegraph --minwidth 0.5 --title "breakwater: $lang cold start ($rounds rounds)" > "$out/$lang.svg"
  cp "$d/times" "$out/$lang-times.txt"
  summary "$lang"
}

# folded LANG: the folded stacks of LANG.
folded() { gzip -dc "$out/$1.folded.gz"; }

# summary LANG: its section of summary.md, from $out/LANG.folded.gz and $out/LANG-times.txt.
summary() {
  local lang="$1" cold50 warm50
  echo "## $lang"
  echo
  cold50=$(awk '{ print $1 * 1000 }' "$out/$lang-times.txt" | sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }')
  warm50=$(awk '{ print $2 * 1000 }' "$out/$lang-times.txt" | sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }')
  echo "Cold request p50 $cold50 ms, warm $warm50 ms (curl, $(wc -l < "$out/$lang-times.txt") rounds, perf attached)."
  echo
  echo "| phase | share of the node's samples during the two requests |"
  echo "|---|---|"
  folded "$lang" | phases
  echo
  echo "The kernel zeroing fresh pages (\`clear_page_erms\`), by what touched them first:"
  echo
  echo "| first touched by | share of the page zeroing |"
  echo "|---|---|"
  awk '/clear_page_erms/ { n = $NF; k = split($0, f, ";"); key = "the guest and the rest (its memory, HTTP)"
      for (i = 1; i <= k; i++) {
        if (f[i] ~ /vm::instance::Instance::new/) { key = "instance allocation in a pool slot (VMContext, tables)"; break }
        if (f[i] ~ /current_thread_runtime/) { key = "a tokio runtime for the new filler thread"; break }
        if (f[i] ~ /deserialize_file/) { key = "mapping the compiled code"; break } }
      s[key] += n; t += n }
    END { for (x in s) printf "| %s | %.1f %% |\n", x, 100 * s[x] / t }' <(folded "$lang") | sort -t'|' -k3 -rn
  echo
  echo "Top self frames:"
  echo
  awk '{ n = $NF; $NF = ""; k = split($0, f, ";"); sub(/ +$/, "", f[k]); s[f[k]] += n; t += n }
       END { for (x in s) printf "%6.1f %%  %s\n", 100 * s[x] / t, x }' <(folded "$lang") | sort -rn | sed -n 1,15p | sed 's/^/    /'
  echo
}

# SUMMARY_ONLY=DIR: write DIR/summary.md again from its folded stacks and times.
if [ -n "${SUMMARY_ONLY:-}" ]; then
  out="$SUMMARY_ONLY"
  head -3 "$out/summary.md" > "$out/summary.head"
  { cat "$out/summary.head"; summary python; summary javascript; } > "$out/summary.new"
  mv "$out/summary.new" "$out/summary.md"; rm "$out/summary.head"
  cat "$out/summary.md"
  exit 0
fi

{
  echo "# Cold starts of interpreted components, profiled"
  echo
  echo "$(date -u +%Y-%m-%d), $(git rev-parse --short HEAD); perf record -F $hz --call-graph dwarf on the node (CPU 0) from 0.5 s before the cold request to after the warm one; curl on CPU 1."
  echo
  profile python "$guests/py-handler.wasm"
  profile javascript "$guests/js-handler.wasm"
} | tee "$out/summary.md"
