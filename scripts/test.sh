#!/usr/bin/env bash
# scripts/test.sh: THE test command. Builds and runs every test of asock in
# each flavour and prints one summary line per flavour, then the totals as the
# last line: "N passed, N failed". Exits non-zero when anything failed.
#
#   scripts/test.sh [flavour...]     (default: gcc-debug clang-debug gcc-release asan tsan uring windows windows-clang fuzz)
#
# gcc-release is an optimised build (Release, -O2): races and undefined
# behaviour show differently there than at -O0, and it is what a packager
# builds.
#
# The `windows` flavour is scripts/test-windows.sh: the Windows backend
# cross-built with mingw-w64 and its tests run under Wine; `windows-clang` is
# the same with clang++ as the cross compiler (ASOCK_WIN_COMPILER=clang).
#
# A flavour is a preset of CMakePresets.json: configure, build (at most 2 jobs)
# and ctest with that preset. Every flavour builds with warnings as errors
# (ASOCK_WERROR=ON, set by the presets and by scripts/test-windows.sh; a plain
# configure leaves it off). The package-consumer checks (install +
# find_package, add_subdirectory; tests/consumer) are ctest tests too, so they
# run in every flavour.
#
# The `uring` flavour is the io_uring backend's tests (preset `uring`: g++
# Debug, the tests labelled uring): unit_uring and conformance_uring over a
# scripted ring, integration_uring over real sockets. Without liburing they
# cannot be built: all three count as skipped, with the reason. When the
# kernel refuses io_uring here (too old, the io_uring_disabled sysctl,
# seccomp), tests/integration/uring_probe says why and integration_uring
# counts as skipped. Skipped tests never count as passed; the summary line
# says how many were skipped and why.
#
# The `fuzz` flavour is scripts/fuzz.sh 60: the libFuzzer targets of
# tests/fuzz/ (clang, -fsanitize=fuzzer,address,undefined) built in build/fuzz
# and run 60 s each; one "passed" per fuzzer that found nothing. (Every other
# flavour replays their corpus as the ctest tests labelled fuzz-corpus.)
#
# Build trees: build/<flavour>, as the presets say.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/setup.sh || { echo "test: scripts/setup.sh failed" >&2; echo "0 passed, 1 failed"; exit 1; }

flavours=("$@")
if [[ ${#flavours[@]} -eq 0 ]]; then
  flavours=(gcc-debug clang-debug gcc-release asan tsan uring windows windows-clang fuzz)
fi

echo "test: $(cmake --version | head -n 1); $(g++ --version | head -n 1); $(clang++ --version | head -n 1)"
echo "test: flavours: ${flavours[*]}"

# Prints the value of a cache entry of the build tree $1.
cache_value() {
  sed -n "s/^$2:[A-Z]*=//p" "$1/CMakeCache.txt" | head -n 1
}

# Some kernels randomise mmap addresses more than the sanitizer runtimes of
# this toolchain expect (vm.mmap_rnd_bits above 28): tsan programs then die at
# start-up with "unexpected memory mapping", asan ones crash now and then. With
# address randomisation off (setarch -R) they work on every kernel, so the
# sanitizer flavours run their tests that way whenever setarch is permitted
# here; otherwise as they are, if a test program starts. Sets `wrapper`.
# Returns non-zero when a program built like the build tree $1 cannot start.
wrapper=()
probe_sanitizer() {
  local dir="$1" cxx sanitize probe out="" no_aslr
  wrapper=()
  sanitize="$(cache_value "$dir" ASOCK_SANITIZE)"
  [[ -n "$sanitize" ]] || return 0
  cxx="$(cache_value "$dir" CMAKE_CXX_COMPILER)"
  probe="$dir/sanitizer-probe"
  printf '#include <thread>\nint value;\nint main() { std::thread t([] { value = 1; }); t.join(); return value - 1; }\n' \
    > "$probe.cpp"
  if ! "$cxx" -std=c++20 -g -fsanitize="$sanitize" -pthread "$probe.cpp" -o "$probe" >"$probe.log" 2>&1; then
    echo "test: cannot build a program with -fsanitize=$sanitize:"; cat "$probe.log"
    return 1
  fi
  no_aslr=(setarch "$(uname -m)" -R)
  echo "test: vm.mmap_rnd_bits = $(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo unknown)"
  if command -v setarch >/dev/null 2>&1 && out="$("${no_aslr[@]}" "$probe" 2>&1)"; then
    wrapper=("${no_aslr[@]}")
    echo "test: -fsanitize=$sanitize: running the tests under '${wrapper[*]}' (address randomisation off)"
    return 0
  fi
  echo "test: setarch -R is not usable here: $(printf '%s\n' "$out" | head -n 2)"
  local i
  for i in 1 2 3; do
    if ! out="$("$probe" 2>&1)"; then
      echo "test: a -fsanitize=$sanitize program fails to start: $(printf '%s\n' "$out" | head -n 3)"
      return 1
    fi
  done
  echo "test: -fsanitize=$sanitize: running the tests with address randomisation on"
  return 0
}

total_passed=0
total_failed=0
total_skipped=0
summaries=()
start_all=$SECONDS

for flavour in "${flavours[@]}"; do
  if [[ "$flavour" == windows || "$flavour" == windows-clang || "$flavour" == fuzz ]]; then
    t0=$SECONDS
    log="$(mktemp)"
    echo
    if [[ "$flavour" == fuzz ]]; then
      echo "==== $flavour: scripts/fuzz.sh 60 (libFuzzer targets of tests/fuzz, 60 s each)"
      scripts/fuzz.sh 60 2>&1 | tee "$log"
      rc=${PIPESTATUS[0]}
    else
      win_compiler=gcc
      [[ "$flavour" == windows-clang ]] && win_compiler=clang
      echo "==== $flavour: scripts/test-windows.sh (mingw-w64 cross build with $win_compiler, tests under Wine)"
      ASOCK_WIN_COMPILER=$win_compiler scripts/test-windows.sh 2>&1 | tee "$log"
      rc=${PIPESTATUS[0]}
    fi
    line="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)"
    rm -f "$log"
    passed=0
    failed=1
    if [[ -n "$line" ]]; then
      passed="$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")"
      failed="$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")"
    fi
    if [[ $rc -ne 0 && $failed -eq 0 ]]; then
      failed=1
    fi
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    summary="$(printf '%-14s %4d passed, %3d failed   (build and tests %4d s)' "$flavour" "$passed" "$failed" $((SECONDS - t0)))"
    summaries+=("$summary")
    echo "==== $summary"
    continue
  fi
  if [[ "$flavour" == uring ]]; then
    t0=$SECONDS
    dir="build/uring"
    echo
    echo "==== uring: the io_uring backend's tests ($dir)"
    uring_tests=(unit_uring conformance_uring integration_uring)
    passed=0
    failed=0
    skipped=0
    note=""
    if ! pkg-config --exists 'liburing >= 2.1' 2>/dev/null; then
      skipped=${#uring_tests[@]}
      note="skipped ${uring_tests[*]}: liburing (liburing-dev) is not installed"
      echo "test: $note"
    elif ! cmake --preset uring || ! cmake --build --preset uring; then
      failed=1
      note="configure or build failed"
    else
      log="$dir/test-summary.log"
      reason="$("$dir/tests/integration/uring_probe")"
      if [[ $? -eq 0 ]]; then
        ctest --preset uring 2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
      else
        echo "test: io_uring cannot be used on this machine: $reason"
        note="skipped integration_uring: $reason"
        ctest --preset uring -E '^integration_uring$' 2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
        skipped=1
      fi
      line="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)"
      if [[ -n "$line" ]]; then
        failed="$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$line")"
        all="$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")"
        # ctest counts a test that skipped itself (SKIP_RETURN_CODE) as not failed.
        self_skipped="$(grep -cE '\(Skipped\)$' "$log")"
        passed=$((all - failed - self_skipped))
        skipped=$((skipped + self_skipped))
      fi
      if [[ $rc -ne 0 && $failed -eq 0 ]]; then
        failed=1
        note+="${note:+; }ctest exited with $rc"
      fi
    fi
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    total_skipped=$((total_skipped + skipped))
    summary="$(printf '%-14s %4d passed, %3d failed, %d skipped   (build and tests %4d s)%s' \
      "$flavour" "$passed" "$failed" "$skipped" $((SECONDS - t0)) "${note:+   [$note]}")"
    summaries+=("$summary")
    echo "==== $summary"
    continue
  fi
  dir="build/$flavour"
  echo
  echo "==== $flavour: configure + build ($dir)"
  t0=$SECONDS
  passed=0
  failed=0
  note=""
  if ! cmake --preset "$flavour"; then
    note="configure failed"
  elif ! cmake --build --preset "$flavour"; then
    note="build failed"
  fi
  build_s=$((SECONDS - t0))
  test_s=0

  if [[ -z "$note" ]]; then
    if ! probe_sanitizer "$dir"; then
      note="sanitizer runtime does not start; "
    fi
    echo "==== $flavour: ctest"
    t1=$SECONDS
    log="$dir/test-summary.log"
    "${wrapper[@]}" ctest --preset "$flavour" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    test_s=$((SECONDS - t1))
    line="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)"
    if [[ -n "$line" ]]; then
      failed="$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$line")"
      all="$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")"
      passed=$((all - failed))
    fi
    if [[ $rc -ne 0 && $failed -eq 0 ]]; then
      failed=1 # ctest failed without a failing test (no tests found, bad preset, ...)
      note+="ctest exited with $rc"
    fi
  else
    failed=1 # the flavour's tests could not even be built: count it as one failure
  fi

  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  summary="$(printf '%-14s %4d passed, %3d failed   (configure+build %4d s, tests %4d s)%s' \
    "$flavour" "$passed" "$failed" "$build_s" "$test_s" "${note:+   [${note%; }]}")"
  summaries+=("$summary")
  echo "==== $summary"
done

echo
echo "==== summary (wall time $((SECONDS - start_all)) s)"
printf '%s\n' "${summaries[@]}"
if [[ $total_skipped -gt 0 ]]; then
  echo "$total_skipped skipped (not counted as passed; the reasons are on the lines above)"
fi
echo "$total_passed passed, $total_failed failed"
[[ $total_failed -eq 0 ]]
