#!/usr/bin/env bash
# The criterion micro-benchmarks of filter and handler calls (bench/benches/isolate.rs), on
# CPU 1, with their raw output kept:
#
#   bench/criterion.sh [FILTER]     (default 'filter-request|c-filter')
#   BEFORE_BIN=PATH bench/criterion.sh   # also a prebuilt bench binary of another revision
#                                        # (target/release/deps/isolate-*), rounds alternating
#   ROUNDS=N (default 1; 2 with BEFORE_BIN)
#   BEFORE_GUESTS=DIR    the guest components the "before" binary runs (default: the same as
#                        this tree's), e.g. a guest built from another revision's source
#
# Writes bench/results/criterion-DATE/output.txt (criterion's output, each round headed by
# the binary it ran) and summary.md (each benchmark's estimate per binary and round).
# RUST_BACKTRACE is unset: with it set, every error a benchmark makes on purpose (an
# on-demand instance refused a reset point, say) captures a backtrace, which is not what a
# node pays in production.
set -euo pipefail
filter="${1:-filter-request|c-filter}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
build_guests
bin="$(cargo bench -p breakwater-bench --bench isolate --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "isolate" and m.get("executable"):
        print(m["executable"])')"
out="$root/bench/results/criterion-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
rev="$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- . ':!bench/results' || echo '+changes')"
bins=("this:$bin")
if [ -n "${BEFORE_BIN:-}" ]; then bins=("before:$BEFORE_BIN" "this:$bin"); fi
rounds="${ROUNDS:-$([ -n "${BEFORE_BIN:-}" ] && echo 2 || echo 1)}"
{
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $rev: taskset -c 1 isolate --bench --warm-up-time 1 --measurement-time 3 '$filter'"
  echo "binaries: ${bins[*]}"
  echo "guests: this $guests, before ${BEFORE_GUESTS:-$guests}"
} > "$out/output.txt"
for r in $(seq 1 "$rounds"); do
  # Alternate which binary goes first, so that drift of the machine spreads over both.
  order=("${bins[@]}")
  if [ $((r % 2)) -eq 0 ] && [ "${#bins[@]}" -gt 1 ]; then order=("${bins[1]}" "${bins[0]}"); fi
  for b in "${order[@]}"; do
    echo "=== round $r, ${b%%:*} (${b#*:})" >> "$out/output.txt"
    dir="$guests"
    if [ "${b%%:*}" = before ] && [ -n "${BEFORE_GUESTS:-}" ]; then dir="$BEFORE_GUESTS"; fi
    BREAKWATER_GUESTS="$dir" taskset -c 1 "${b#*:}" --bench --warm-up-time 1 \
      --measurement-time 3 "$filter" >> "$out/output.txt" 2>&1 \
      || echo "=== exit status $? (the summary has what it measured before)" >> "$out/output.txt"
  done
done
python3 - "$out/output.txt" > "$out/summary.md" <<'PY'
import re, statistics, sys
lines = open(sys.argv[1]).read().splitlines()
rows, binary, rnd, name = [], None, None, None
for l in lines:
    m = re.match(r"=== round (\d+), (\S+)", l)
    if m: rnd, binary = m.group(1), m.group(2); continue
    if re.match(r"^[a-z0-9-]+/\S+$", l): name = l; continue
    m = re.search(r"time:\s+\[([\d.]+) (\S+) ([\d.]+) (\S+) ([\d.]+) (\S+)\]", l)
    if m and name:
        scale = {"ns": 0.001, "µs": 1, "ms": 1000}[m.group(4)]
        rows.append((rnd, binary, name, float(m.group(3)) * scale, m.group(1), m.group(5), m.group(6)))
print("# Criterion: per-request cost of filter calls\n")
print("\n".join(lines[:3]) + "\n")
binaries = list(dict.fromkeys(r[1] for r in rows))
names = list(dict.fromkeys(r[2] for r in rows))
print("Median over rounds of criterion's estimate, µs per request:\n")
print("| benchmark | " + " | ".join(binaries) + (" | this / before |" if len(binaries) > 1 else ""))
print("|---|" + "---|" * len(binaries) + ("---|" if len(binaries) > 1 else ""))
for n in names:
    med = {b: statistics.median([r[3] for r in rows if r[1] == b and r[2] == n]) for b in binaries
           if any(r[1] == b and r[2] == n for r in rows)}
    cells = " | ".join(f"{med[b]:.2f}" if b in med else "-" for b in binaries)
    ratio = f" | {med['this'] / med['before']:.2f} |" if len(binaries) > 1 and len(med) == 2 else ""
    print(f"| {n} | {cells}{ratio}")
print("\nEvery round:\n")
print("| round | binary | benchmark | estimate (95% interval) |")
print("|---|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} | **{r[3]:.3f} µs** ({r[4]}-{r[5]} {r[6]}) |")
PY
cat "$out/summary.md"
echo "raw output: $out/output.txt"
