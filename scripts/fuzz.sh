#!/usr/bin/env bash
# scripts/fuzz.sh: builds the libFuzzer targets of tests/fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined) in build/fuzz and runs each for a
# fixed time. Ends with the line "N passed, N failed" (one per fuzzer) and
# exits non-zero when a fuzzer found a crash, a broken contract, a hang or a
# leak, or could not be built.
#
#   scripts/fuzz.sh [seconds]      (default 60 per fuzzer)
#
# Environment:
#   ASOCK_FUZZ_TARGETS   fuzzers to run (default: "c_api cpp_api")
#   ASOCK_FUZZ_ARGS      extra libFuzzer flags (e.g. "-jobs=2 -workers=2")
#   ASOCK_FUZZ_SKIP      comma-separated names of checks to switch off, for
#                        looking past a known defect (see tests/fuzz/fuzz_common.hpp)
#
# Each fuzzer starts from the committed corpus tests/fuzz/corpus/<target>/
# (read only) and writes the new inputs it finds to
# build/fuzz/corpus/<target>/, kept between runs. Crashes go to
# build/fuzz/artifacts/<target>/; to keep one as a regression input, copy it
# into tests/fuzz/corpus/<target>/ under a name that says what it found.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh [seconds]" >&2
  exit 2
fi
read -r -a targets <<<"${ASOCK_FUZZ_TARGETS:-c_api cpp_api}"
read -r -a extra <<<"${ASOCK_FUZZ_ARGS:-}"
dir=build/fuzz

summary_fail() {
  echo "fuzz: $1" >&2
  echo "0 passed, ${#targets[@]} failed"
  exit 1
}

echo "fuzz: $(clang++ --version | head -n 1)"
cmake -S . -B "$dir" -G Ninja \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DASOCK_BUILD_FUZZERS=ON -DASOCK_WERROR=ON -DASOCK_BUILD_TESTS=ON \
  -DASOCK_BUILD_EXAMPLES=OFF -DASOCK_BUILD_BENCHMARKS=OFF >"$dir.configure.log" 2>&1 \
  || { cat "$dir.configure.log"; summary_fail "configure failed"; }
build_targets=()
for t in "${targets[@]}"; do
  build_targets+=("fuzz_$t")
done
cmake --build "$dir" -j 2 --target "${build_targets[@]}" || summary_fail "build failed"

# As in scripts/test.sh: this toolchain's sanitizer runtimes may not start on
# kernels that randomise mmap with more than 28 bits; address randomisation
# off (setarch -R) works everywhere.
wrapper=()
if command -v setarch >/dev/null 2>&1 && setarch "$(uname -m)" -R true >/dev/null 2>&1; then
  wrapper=(setarch "$(uname -m)" -R)
fi

passed=0
failed=0
lines=()
for t in "${targets[@]}"; do
  bin="$dir/fuzz/fuzz_$t"
  seeds="tests/fuzz/corpus/$t"
  scratch="$dir/corpus/$t"
  artifacts="$dir/artifacts/$t"
  log="$dir/fuzz_$t.log"
  mkdir -p "$scratch" "$artifacts" "$seeds"
  echo
  echo "==== fuzz_$t: ${seconds} s (new inputs: $scratch, crashes: $artifacts/)"
  before="$(find "$artifacts" -type f | wc -l)"
  # -timeout: per input; each input also has its own watchdog (10 s) that
  # prints every thread's stack on a hang. -max_len: a program is at most
  # 2 + 64 x 10 bytes. No -jobs: each input already runs several threads.
  "${wrapper[@]}" "$bin" "$scratch" "$seeds" \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -max_len=1024 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 ${extra[@]+"${extra[@]}"} >"$log" 2>&1
  rc=$?
  after="$(find "$artifacts" -type f | wc -l)"
  # The libFuzzer figures: the last status line (coverage, features, corpus,
  # exec/s) and the number of runs.
  status="$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -E 's/ +MS:.*//')"
  done_line="$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)"
  grep -E '^stat::' "$log"
  if [[ $rc -eq 0 && $after -eq $before ]]; then
    passed=$((passed + 1))
    line="fuzz_$t: passed; ${done_line:-?}; last status: ${status:-?}"
  else
    failed=$((failed + 1))
    echo "---- fuzz_$t: the end of its log ($log):"
    grep -v -E '^#[0-9]+ +(NEW|REDUCE|pulse)|^\s+NEW_FUNC|^stat::' "$log" | tail -n 80
    newest="$(ls -t "$artifacts" 2>/dev/null | head -n 1)"
    line="fuzz_$t: FAILED (exit $rc); ${status:-?}"
    if [[ -n "$newest" ]]; then
      line+="; input: $artifacts/$newest (replay: $bin $artifacts/$newest)"
    fi
  fi
  lines+=("$line")
  echo "==== $line"
done

echo
echo "==== fuzz summary"
printf '%s\n' "${lines[@]}"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
