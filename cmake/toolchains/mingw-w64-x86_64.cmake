# cmake/toolchains/mingw-w64-x86_64.cmake: cross-compile asock for 64-bit
# Windows from Linux with mingw-w64 (Debian: g++-mingw-w64-x86-64-posix, the
# posix thread model that std::thread needs) and run the tests under Wine.
#
#   cmake -S . -B build/win-mingw -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64.cmake
#
# scripts/test-windows.sh does this, builds, and runs ctest.
#
# - Executables link statically (-static: libgcc, libstdc++, winpthreads), so
#   they run under Wine, or are copied to Windows, without extra DLLs.
# - CMAKE_CROSSCOMPILING_EMULATOR is wine64 when found, so ctest runs each test
#   .exe through Wine (set WINEPREFIX / WINEDEBUG in the environment as wanted).
# - Catch2 v2 and fmt are header-only for this build: find_package(Catch2) and
#   find_package(fmt) find the small config files in
#   cmake/toolchains/mingw-w64-packages/, which copy the build host's headers
#   (Debian packages catch2 and libfmt-dev) into the build tree. Only those
#   headers, never /usr/include itself, reach the Windows compiler; fmt is used
#   with FMT_HEADER_ONLY (Debian's libfmt.so is a Linux library).
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(ASOCK_MINGW_TRIPLET x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${ASOCK_MINGW_TRIPLET}-gcc-posix)
set(CMAKE_CXX_COMPILER ${ASOCK_MINGW_TRIPLET}-g++-posix)
set(CMAKE_RC_COMPILER ${ASOCK_MINGW_TRIPLET}-windres)

# Libraries and headers come from the mingw-w64 sysroot only; programs from the host.
set(CMAKE_FIND_ROOT_PATH /usr/${ASOCK_MINGW_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")

find_program(ASOCK_WINE64 NAMES wine64 PATHS /usr/lib/wine /usr/lib64/wine /opt/wine-stable/bin)
if(ASOCK_WINE64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${ASOCK_WINE64})
endif()

# Where the build host keeps the Catch2 v2 and fmt headers.
set(ASOCK_HOST_INCLUDE_DIR /usr/include CACHE PATH "Build host include directory holding catch2/ and fmt/")
set(Catch2_DIR ${CMAKE_CURRENT_LIST_DIR}/mingw-w64-packages/Catch2 CACHE PATH "Catch2 v2, header-only from the host")
set(fmt_DIR ${CMAKE_CURRENT_LIST_DIR}/mingw-w64-packages/fmt CACHE PATH "fmt, header-only from the host")
