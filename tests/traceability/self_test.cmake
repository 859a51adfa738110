# tests/traceability/self_test.cmake: shows that check_traceability.cmake can
# fail, and fails for the right reasons. It runs the check over fixture/, a
# made-up specification, table and test sources holding one instance of every
# gap the check exists to find (plus cases it must accept: a tag, a C test name
# carrying two IDs, a deviation, a name split over two literals, escaped and
# character-literal quotes), and compares the problems reported with
# fixture/expected.txt, line for line.
#
# Usage: cmake -DWORK=<scratch dir> -P self_test.cmake
cmake_minimum_required(VERSION 3.20)

set(here "${CMAKE_CURRENT_LIST_DIR}")
if(NOT WORK)
  message(FATAL_ERROR "traceability self-test: WORK is not set")
endif()

# The fixture's sources are stored as *.in, so that the real check, which
# reads everything under tests/, never counts them; here they get their real
# extensions.
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/tests")
file(GLOB fixtures "${here}/fixture/tests/*.in")
foreach(f IN LISTS fixtures)
  get_filename_component(name "${f}" NAME)
  string(REGEX REPLACE "\\.in$" "" name "${name}")
  configure_file("${f}" "${WORK}/tests/${name}" COPYONLY)
endforeach()

execute_process(
  COMMAND "${CMAKE_COMMAND}" -DSPEC=${here}/fixture/spec.md -DTABLE=${here}/fixture/table.md
          -DTESTS=${WORK}/tests -P ${here}/check_traceability.cmake
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "traceability self-test: the check passed a fixture full of gaps:\n${out}${err}")
endif()

string(REGEX MATCHALL "traceability: SRS_[^\n]*" reported "${err}")
list(TRANSFORM reported REPLACE "^traceability: " "")
list(SORT reported)
file(STRINGS "${here}/fixture/expected.txt" expected)
list(SORT expected)
if(NOT reported STREQUAL expected)
  list(JOIN reported "\n  " r)
  list(JOIN expected "\n  " e)
  message(FATAL_ERROR "traceability self-test: wrong problems reported.\nreported:\n  ${r}\nexpected:\n  ${e}\nfull output:\n${err}")
endif()
list(LENGTH expected n)
message(STATUS "traceability self-test: the check reported exactly the ${n} expected problems")
