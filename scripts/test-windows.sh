#!/usr/bin/env bash
# scripts/test-windows.sh: cross-build asock for Windows with mingw-w64 and run
# its tests under Wine.
#
#   scripts/test-windows.sh [ctest arguments...]     e.g. -R win32_unit -V
#
# - Installs what is missing (Debian / Ubuntu, with apt-get): the posix-thread
#   mingw-w64 C++ compiler, wine64, cmake, ninja, and the catch2 / libfmt-dev
#   headers (used header-only by the cross build).
# - Configures build/win-mingw with cmake/toolchains/mingw-w64-x86_64.cmake
#   (static runtime; wine64 as CMAKE_CROSSCOMPILING_EMULATOR) and warnings as
#   errors (ASOCK_WERROR=ON, as in the presets of scripts/test.sh), builds, and
#   runs ctest, which runs every test .exe through Wine.
# - Wine runs headless (WINEDEBUG=-all) in a throwaway prefix
#   (WINEPREFIX, default /tmp/asock-wine-<uid>), created on first use.
# - Ends with the line "N passed, N failed" (ctest tests; a failed configure or
#   build counts as one failure) and exits non-zero on any failure.
#
# Environment: ASOCK_WIN_COMPILER (gcc, the default: x86_64-w64-mingw32-g++-posix;
# or clang: clang++ targeting x86_64-w64-mingw32 over the same mingw-w64
# headers and libstdc++, cmake/toolchains/mingw-w64-x86_64-clang.cmake),
# ASOCK_WIN_BUILD_DIR (default build/win-mingw, or build/win-clang), ASOCK_JOBS
# (default 2), ASOCK_WIN_BUILD_TYPE (default RelWithDebInfo), WINEPREFIX.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
compiler=${ASOCK_WIN_COMPILER:-gcc}
case "$compiler" in
    gcc)   toolchain=$root/cmake/toolchains/mingw-w64-x86_64.cmake
           build=${ASOCK_WIN_BUILD_DIR:-$root/build/win-mingw} ;;
    clang) toolchain=$root/cmake/toolchains/mingw-w64-x86_64-clang.cmake
           build=${ASOCK_WIN_BUILD_DIR:-$root/build/win-clang} ;;
    *)     echo "test-windows: ASOCK_WIN_COMPILER must be gcc or clang, not '$compiler'" >&2
           echo "0 passed, 1 failed"; exit 1 ;;
esac
jobs=${ASOCK_JOBS:-2}
build_type=${ASOCK_WIN_BUILD_TYPE:-RelWithDebInfo}
triplet=x86_64-w64-mingw32

summary() { # passed failed
    echo "$1 passed, $2 failed"
    [ "$2" -eq 0 ]
    exit $?
}

# ---- tools ---------------------------------------------------------------------
find_wine() {
    for w in /usr/lib/wine/wine64 /usr/lib64/wine/wine64 "$(command -v wine64 2>/dev/null)"; do
        if [ -n "$w" ] && [ -x "$w" ]; then
            echo "$w"
            return 0
        fi
    done
    return 1
}

missing=()
# The clang build uses the mingw-w64 GCC's headers, libstdc++ and linker too.
command -v ${triplet}-g++-posix >/dev/null 2>&1 || missing+=(g++-mingw-w64-x86-64-posix)
[ "$compiler" = clang ] && ! command -v clang++ >/dev/null 2>&1 && missing+=(clang)
find_wine >/dev/null || missing+=(wine64)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
[ -f /usr/include/catch2/catch.hpp ] || missing+=(catch2)
[ -f /usr/include/fmt/format-inl.h ] || missing+=(libfmt-dev)
if [ ${#missing[@]} -gt 0 ]; then
    echo "test-windows: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    if ! { $sudo apt-get install -y --no-install-recommends "${missing[@]}" ||
           { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${missing[@]}"; }; }; then
        echo "test-windows: could not install ${missing[*]}" >&2
        summary 0 1
    fi
fi
wine=$(find_wine) || { echo "test-windows: wine64 not found" >&2; summary 0 1; }

export WINEDEBUG=${WINEDEBUG:--all}
export WINEPREFIX=${WINEPREFIX:-/tmp/asock-wine-$(id -u)}
export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-"mscoree,mshtml="} # no Mono / Gecko prompts on first start
mkdir -p "$WINEPREFIX"
# Create the prefix once, outside any test's time limit.
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    echo "test-windows: creating the Wine prefix $WINEPREFIX"
    timeout 300 "$wine" cmd /c exit >/dev/null 2>&1 || true
fi

# ---- configure and build ---------------------------------------------------------
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if ! cmake -S "$root" -B "$build" "${generator[@]}" \
        -DCMAKE_TOOLCHAIN_FILE="$toolchain" \
        -DCMAKE_BUILD_TYPE="$build_type" \
        -DASOCK_BUILD_TESTS=ON \
        -DASOCK_BUILD_EXAMPLES=ON \
        -DASOCK_BUILD_BENCHMARKS=OFF \
        -DASOCK_BUILD_C=ON \
        -DASOCK_WERROR=ON; then
    echo "test-windows: configure failed" >&2
    summary 0 1
fi
if ! cmake --build "$build" -j "$jobs"; then
    echo "test-windows: build failed" >&2
    summary 0 1
fi

# ---- test ------------------------------------------------------------------------
log="$build/ctest-windows.log"
ctest --test-dir "$build" --output-on-failure -j 1 "$@" 2>&1 | tee "$log"
line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -n 1)
if [ -z "$line" ]; then
    if grep -q "No tests were found" "$log"; then
        summary 0 1
    fi
    echo "test-windows: no ctest summary" >&2
    summary 0 1
fi
failed=$(echo "$line" | sed -E 's/.*tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1/')
total=$(echo "$line" | sed -E 's/.*tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\2/')
summary $((total - failed)) "$failed"
