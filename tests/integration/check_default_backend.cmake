# tests/integration/check_default_backend.cmake: the CMake option
# ASOCK_DEFAULT_BACKEND (root CMakeLists.txt; include/asock/default_platform.hpp
# reads what it defines). Run with cmake -P by the ctest test
# default_backend_option, on a Linux build:
#
# - a value that is not auto / epoll / win32 fails at configure time, naming
#   the values;
# - win32 on a Linux target fails at configure time, saying why;
# - epoll reaches the compiler of a project that uses asock (add_subdirectory):
#   its asock::default_platform is epoll.
#
# Inputs: ASOCK_SOURCE_DIR, WORK_DIR (wiped first), GENERATOR, MAKE_PROGRAM,
# C_COMPILER, CXX_COMPILER.
cmake_minimum_required(VERSION 3.20)

foreach(var ASOCK_SOURCE_DIR WORK_DIR GENERATOR C_COMPILER CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check_default_backend: ${var} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(common -G "${GENERATOR}" "-DCMAKE_C_COMPILER=${C_COMPILER}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(MAKE_PROGRAM)
  list(APPEND common "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
set(lean -DASOCK_BUILD_TESTS=OFF -DASOCK_BUILD_EXAMPLES=OFF -DASOCK_BUILD_BENCHMARKS=OFF -DASOCK_BUILD_C=OFF)

# Configures asock itself with ASOCK_DEFAULT_BACKEND=<value>; must fail with
# output matching <expected>.
function(expect_configure_failure value expected)
  execute_process(
    COMMAND "${CMAKE_COMMAND}" -S "${ASOCK_SOURCE_DIR}" -B "${WORK_DIR}/${value}" ${common} ${lean}
            "-DASOCK_DEFAULT_BACKEND=${value}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0)
    message(FATAL_ERROR "check_default_backend: ASOCK_DEFAULT_BACKEND=${value} configured; it must fail")
  endif()
  if(NOT "${out}${err}" MATCHES "${expected}")
    message(FATAL_ERROR "check_default_backend: ASOCK_DEFAULT_BACKEND=${value} failed without saying why "
                        "(expected '${expected}'):\n${out}${err}")
  endif()
  message(STATUS "check_default_backend: ASOCK_DEFAULT_BACKEND=${value} refused, as it should be")
endfunction()

expect_configure_failure(bogus "ASOCK_DEFAULT_BACKEND is 'bogus'; it must be one of: auto, epoll, win32")
expect_configure_failure(io_uring "ASOCK_DEFAULT_BACKEND is 'io_uring'; it must be one of: auto, epoll, win32")
expect_configure_failure(win32 "ASOCK_DEFAULT_BACKEND=win32 needs a Windows target")

# epoll: the definition reaches a consumer's compiler through asock::asock.
set(app "${WORK_DIR}/app")
file(WRITE "${app}/CMakeLists.txt" [=[
cmake_minimum_required(VERSION 3.20)
project(default_backend_app CXX)
add_subdirectory(${ASOCK_SOURCE_DIR} asock)
add_library(app OBJECT main.cpp)
target_link_libraries(app PRIVATE asock::asock)
]=])
file(WRITE "${app}/main.cpp" [=[
#include <asock/asock.hpp>

#include <string_view>
#include <type_traits>

#ifndef ASOCK_DEFAULT_BACKEND_EPOLL
#error "ASOCK_DEFAULT_BACKEND=epoll did not reach the compiler"
#endif
static_assert(std::is_same_v<asock::default_platform, asock::linux_epoll::epoll_platform>);
static_assert(std::string_view(asock::default_backend_name) == "epoll");

int use() { return asock::tcp_socket{}.valid() ? 1 : 0; }
]=])
foreach(step configure build)
  if(step STREQUAL "configure")
    set(cmd "${CMAKE_COMMAND}" -S "${app}" -B "${app}/build" ${common} ${lean}
            "-DASOCK_SOURCE_DIR=${ASOCK_SOURCE_DIR}" -DASOCK_DEFAULT_BACKEND=epoll)
  else()
    set(cmd "${CMAKE_COMMAND}" --build "${app}/build")
  endif()
  execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check_default_backend: ASOCK_DEFAULT_BACKEND=epoll, ${step} failed:\n${out}${err}")
  endif()
endforeach()
message(STATUS "check_default_backend: ASOCK_DEFAULT_BACKEND=epoll reaches the compiler")
