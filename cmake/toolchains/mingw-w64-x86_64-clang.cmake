# cmake/toolchains/mingw-w64-x86_64-clang.cmake: the Windows cross build of
# mingw-w64-x86_64.cmake with clang++ / clang as the compilers, so that the
# Windows backend is compiled by both compilers asock supports, as on Linux.
#
#   cmake -S . -B build/win-clang -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64-clang.cmake
#
# `ASOCK_WIN_COMPILER=clang scripts/test-windows.sh` does this, builds, and runs
# ctest under Wine.
#
# Everything but the compilers is the GCC toolchain file's: the mingw-w64
# sysroot (Windows headers, import libraries), Wine as the emulator, the
# header-only Catch2 / fmt. clang targets x86_64-w64-mingw32 and uses the
# libstdc++ of the mingw-w64 GCC (Debian g++-mingw-w64-x86-64-posix), whose
# directory Debian names "<version>-posix", a name clang's driver does not
# look for: its headers and libraries are given explicitly, and the posix
# thread library that GCC's driver would add (-pthread) is linked by name.
include(${CMAKE_CURRENT_LIST_DIR}/mingw-w64-x86_64.cmake)

set(CMAKE_C_COMPILER clang)
set(CMAKE_CXX_COMPILER clang++)
set(CMAKE_C_COMPILER_TARGET ${ASOCK_MINGW_TRIPLET})
set(CMAKE_CXX_COMPILER_TARGET ${ASOCK_MINGW_TRIPLET})
set(CMAKE_RC_COMPILER ${ASOCK_MINGW_TRIPLET}-windres)

# The newest "<version>-posix" GCC of the mingw-w64 triplet.
file(GLOB _asock_mingw_gcc_dirs LIST_DIRECTORIES true /usr/lib/gcc/${ASOCK_MINGW_TRIPLET}/*-posix)
list(SORT _asock_mingw_gcc_dirs COMPARE NATURAL ORDER DESCENDING)
list(GET _asock_mingw_gcc_dirs 0 _asock_mingw_gcc)
if(NOT _asock_mingw_gcc OR NOT EXISTS ${_asock_mingw_gcc}/include/c++)
  message(FATAL_ERROR "mingw-w64 clang toolchain: no /usr/lib/gcc/${ASOCK_MINGW_TRIPLET}/<version>-posix "
                      "with C++ headers (install g++-mingw-w64-x86-64-posix)")
endif()
set(ASOCK_MINGW_GCC_DIR ${_asock_mingw_gcc} CACHE PATH "The mingw-w64 GCC whose libstdc++ clang uses")

set(CMAKE_CXX_FLAGS_INIT
    "-nostdinc++ -isystem ${ASOCK_MINGW_GCC_DIR}/include/c++ -isystem ${ASOCK_MINGW_GCC_DIR}/include/c++/${ASOCK_MINGW_TRIPLET}")
# -nostdinc++ also reaches the link line, where clang calls it unused.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -L${ASOCK_MINGW_GCC_DIR} -Wno-unused-command-line-argument")
# libstdc++ needs winpthreads (threads, clock_gettime), and must come before it
# on the link line; the driver adds its own -lstdc++ only after everything.
# The Windows platform module sets the _INIT variable, so set the cache entry:
# its default list, with libstdc++ and winpthreads in front.
set(_asock_windows_default_libraries
    "-lkernel32 -luser32 -lgdi32 -lwinspool -lshell32 -lole32 -loleaut32 -luuid -lcomdlg32 -ladvapi32")
set(CMAKE_CXX_STANDARD_LIBRARIES "-lstdc++ -lpthread ${_asock_windows_default_libraries}"
    CACHE STRING "Libraries linked into every C++ executable (mingw-w64 clang)")
set(CMAKE_C_STANDARD_LIBRARIES "-lpthread ${_asock_windows_default_libraries}"
    CACHE STRING "Libraries linked into every C executable (mingw-w64 clang)")
