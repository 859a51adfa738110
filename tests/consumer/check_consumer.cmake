# tests/consumer/check_consumer.cmake: builds and runs the consumer project in
# tests/consumer/app against asock, in one of two ways. Run with cmake -P:
#
#   MODE=find_package      installs asock's build tree (ASOCK_BINARY_DIR) into
#                          WORK_DIR/prefix, then builds the consumer with
#                          find_package(asock) from that prefix only.
#   MODE=add_subdirectory  builds the consumer with add_subdirectory() of
#                          asock's source tree (ASOCK_SOURCE_DIR), and checks
#                          that none of asock's tests leak into its ctest.
#
# Other inputs: WORK_DIR (wiped first), GENERATOR, MAKE_PROGRAM, C_COMPILER,
# CXX_COMPILER, BUILD_TYPE, SANITIZE (asock's ASOCK_SANITIZE value: the consumer
# is then built with the same sanitizers).
cmake_minimum_required(VERSION 3.20)

foreach(var MODE WORK_DIR ASOCK_SOURCE_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check_consumer: ${var} is not set")
  endif()
endforeach()

# Runs a command, echoing it; stops the check when it fails.
function(run)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "check_consumer: ${shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check_consumer (${MODE}): command failed (${rc}): ${shown}")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(build "${WORK_DIR}/build")

set(configure_args -S "${CMAKE_CURRENT_LIST_DIR}/app" -B "${build}" -G "${GENERATOR}"
    "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
    # The consumer must find asock only where this check put it.
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(C_COMPILER)
  # asock's own project() enables C as well (add_subdirectory mode).
  list(APPEND configure_args "-DCMAKE_C_COMPILER=${C_COMPILER}")
endif()
if(BUILD_TYPE)
  list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
endif()
if(SANITIZE)
  list(APPEND configure_args
       "-DCMAKE_CXX_FLAGS=-fsanitize=${SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all"
       "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${SANITIZE}")
endif()

if(MODE STREQUAL "find_package")
  if(NOT ASOCK_BINARY_DIR)
    message(FATAL_ERROR "check_consumer: ASOCK_BINARY_DIR is not set")
  endif()
  set(prefix "${WORK_DIR}/prefix")
  run("${CMAKE_COMMAND}" --install "${ASOCK_BINARY_DIR}" --prefix "${prefix}")
  run("${CMAKE_COMMAND}" ${configure_args} "-DCMAKE_PREFIX_PATH=${prefix}")
  # find_package must have used the installed package, not a source or build tree.
  file(STRINGS "${build}/CMakeCache.txt" found REGEX "^asock_DIR:")
  string(REGEX REPLACE "^asock_DIR:[A-Z]*=" "" found "${found}")
  file(REAL_PATH "${prefix}" real_prefix)
  file(REAL_PATH "${found}" real_found)
  string(FIND "${real_found}/" "${real_prefix}/" at)
  if(NOT at EQUAL 0)
    message(FATAL_ERROR "check_consumer: asock was found at '${found}', not under the install prefix '${prefix}'")
  endif()
  message(STATUS "check_consumer: asock found at ${found}")
elseif(MODE STREQUAL "add_subdirectory")
  run("${CMAKE_COMMAND}" ${configure_args} "-DASOCK_CONSUMER_SOURCE_DIR=${ASOCK_SOURCE_DIR}")
  # asock is not the top-level project here: its tests, examples and
  # benchmarks are off, so the consumer's ctest lists its own test only.
  file(STRINGS "${build}/CMakeCache.txt" options REGEX "^ASOCK_BUILD_(TESTS|EXAMPLES|BENCHMARKS):")
  foreach(line IN LISTS options)
    if(NOT line MATCHES "=OFF$")
      message(FATAL_ERROR "check_consumer: asock used as a subdirectory should default to OFF: ${line}")
    endif()
  endforeach()
  execute_process(COMMAND "${CMAKE_CTEST_COMMAND}" -N --test-dir "${build}"
                  OUTPUT_VARIABLE listed RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR NOT listed MATCHES "Total Tests: 1\n")
    message(FATAL_ERROR "check_consumer: the consumer's ctest should list only its own test, it lists:\n${listed}")
  endif()
else()
  message(FATAL_ERROR "check_consumer: unknown MODE '${MODE}'")
endif()

run("${CMAKE_COMMAND}" --build "${build}")
run("${build}/app")
message(STATUS "check_consumer (${MODE}): ok")
