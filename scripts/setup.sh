#!/usr/bin/env bash
# scripts/setup.sh: installs what building asock, running its tests (every
# flavour of scripts/test.sh) and running its demo need on Debian 12.
#
# Idempotent: installs only the packages that are missing, and runs
# `apt-get update` first only when there is something to install. Runs as root
# as it is; otherwise through sudo when sudo is there.
set -euo pipefail

packages=(
  cmake ninja-build                # build system (CMakePresets.json uses Ninja)
  g++ clang                        # the two compilers every flavour is built with
  libclang-rt-14-dev               # clang's sanitizer runtimes (asan, tsan flavours)
  llvm                             # llvm-symbolizer: readable sanitizer stack traces
  catch2                           # the C++ tests (Catch2 v2, single header)
  libfmt-dev                       # the demo and <asock/format.hpp>
  gdb                              # every thread's stack when a test hangs (tests/support/hang_report.h)
  liburing-dev pkg-config          # the io_uring backend (optional: without it, its tests are not built)
)

missing=()
for p in "${packages[@]}"; do
  if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != "installed" ]]; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "setup: missing packages (${missing[*]}) and neither root nor sudo to install them" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
