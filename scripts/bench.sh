#!/usr/bin/env bash
# scripts/bench.sh: builds the benchmarks in Release and runs them all.
#
#   scripts/bench.sh [--long] [--rounds N] [--out DIR] [--impls a,b] [--workloads a,b]
#                    [--no-callgrind] [--no-strace] [--callgrind-only] [--note TEXT]
#                    [--baseline BIN[:TAG]] [--baseline-impls a,b]
#
# Builds build/bench (Release, benchmarks only) with at most $JOBS (default 2)
# parallel jobs, then runs benchmarks/run.py: interleaved rounds of every
# implementation on every workload, then the callgrind instruction counts
# and the strace system call counts.
# Writes results.md, results.json, chart.svg and callgrind/ to --out
# (default build/bench/results) and prints the table. A default run takes a
# few minutes; --long takes tens of minutes. See docs/benchmarks.md.
# --baseline runs a second asock_bench (an earlier commit's) interleaved with
# this one, for before/after figures from one run.
#
# Optional baselines are built when their packages are installed:
#   apt-get install -y libasio-dev libuv1-dev valgrind strace
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BENCH_BUILD_DIR:-$root/build/bench}"
jobs="${JOBS:-2}"
out="$build/results"
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --out=*) out="${1#--out=}"; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done

generator=()
if [[ ! -f "$build/CMakeCache.txt" ]] && command -v ninja >/dev/null 2>&1; then
  generator=(-G Ninja)
fi
cmake -S "$root" -B "$build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DASOCK_BUILD_BENCHMARKS=ON -DASOCK_BUILD_TESTS=OFF -DASOCK_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target asock_bench -j "$jobs"

exec python3 "$root/benchmarks/run.py" --bin "$build/benchmarks/asock_bench" --out "$out" "${args[@]}"
