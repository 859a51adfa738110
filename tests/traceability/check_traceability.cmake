# tests/traceability/check_traceability.cmake: the requirement traceability
# check, run by ctest as `cmake -P` (no compiler, no Python: CMake is already a
# dependency). For one specification document and its traceability table it
# fails when
#
#   1. a requirement ID of the specification has no row, or more than one, in
#      the table, or the table has a row for an ID the specification lacks;
#   2. a requirement is neither carried by the name or tag of a test (the
#      project's rule: the ID in a Catch2 test name or tag, or in the name of a
#      C test function, where several IDs may share one prefix, as in
#      test_SRS_ASYNC_SOCKET_WIN32_01_014_01_017_...) nor recorded as a
#      deviation in its row;
#   3. a row's "Checked by" cell quotes a test ("name" or `test_function`)
#      that no test source defines under that whole name, so the table cannot
#      drift from the tests.
#
# Usage:
#   cmake -DSPEC=<spec.md> -DTABLE=<docs/requirements*.md> -DTESTS=<tests dir> -P check_traceability.cmake
#
# IDs are counted as carried by a test only inside string literals and test_
# identifiers, so an ID that appears only in a comment does not count.
cmake_minimum_required(VERSION 3.20)

foreach(var SPEC TABLE TESTS)
  if(NOT DEFINED ${var} OR NOT EXISTS "${${var}}")
    message(FATAL_ERROR "traceability: ${var} is not set or does not exist: '${${var}}'")
  endif()
endforeach()

get_filename_component(spec_name "${SPEC}" NAME)
set(id_regex "SRS_ASYNC_SOCKET_[A-Z0-9]+_[0-9][0-9]_[0-9][0-9][0-9]")

# CMake lists split on ';' and treat '[' ']' as nesting, so both are neutralised
# in every text this script turns into lists. Neither can be part of an ID or a
# test name the table quotes (both sides are neutralised the same way).
macro(read_neutral out path)
  file(READ "${path}" ${out})
  string(REPLACE ";" "," ${out} "${${out}}")
  string(REPLACE "[" " " ${out} "${${out}}")
  string(REPLACE "]" " " ${out} "${${out}}")
endmacro()

# The specification's IDs.
read_neutral(spec_text "${SPEC}")
string(REGEX MATCHALL "${id_regex}" spec_ids "${spec_text}")
list(REMOVE_DUPLICATES spec_ids)
list(LENGTH spec_ids spec_count)
if(spec_count EQUAL 0)
  message(FATAL_ERROR "traceability: no requirement IDs in ${SPEC}")
endif()

# The test sources, all of them as one text.
file(GLOB_RECURSE test_files LIST_DIRECTORIES false
  "${TESTS}/*.c" "${TESTS}/*.h" "${TESTS}/*.cpp" "${TESTS}/*.hpp")
set(sources "")
foreach(f IN LISTS test_files)
  read_neutral(text "${f}")
  string(APPEND sources "${text}\n")
endforeach()
# Escaped quotes and the character literal '"' would pair literals wrongly.
string(REPLACE "\\\"" "" sources "${sources}")
string(REPLACE "'\"'" "''" sources "${sources}")
# Adjacent literals form one test name: "send argument " "checks".
string(REGEX REPLACE "\"[ \t\r\n]+\"" "" joined "${sources}")

# IDs carried by tests: in string literals (Catch2 names and tags) and in C test
# function names; "SRS_..._WIN32_01_014_01_017" carries 01_014 and 01_017.
string(REGEX MATCHALL "\"[^\"\n]*\"" carriers "${joined}")
string(REGEX MATCHALL "test_SRS_[A-Za-z0-9_]*" c_names "${joined}")
list(APPEND carriers ${c_names})
set(tested_ids "")
foreach(carrier IN LISTS carriers)
  if(NOT carrier MATCHES "SRS_ASYNC_SOCKET_")
    continue()
  endif()
  string(REGEX MATCHALL "SRS_ASYNC_SOCKET_[A-Z0-9]+(_[0-9][0-9]_[0-9][0-9][0-9])+" runs "${carrier}")
  foreach(run IN LISTS runs)
    string(REGEX REPLACE "^(SRS_ASYNC_SOCKET_[A-Z0-9]+)_.*$" "\\1" prefix "${run}")
    string(LENGTH "${prefix}" prefix_length)
    string(SUBSTRING "${run}" ${prefix_length} -1 numbers)
    string(REGEX MATCHALL "_[0-9][0-9]_[0-9][0-9][0-9]" groups "${numbers}")
    foreach(g IN LISTS groups)
      list(APPEND tested_ids "${prefix}${g}")
    endforeach()
  endforeach()
endforeach()
list(REMOVE_DUPLICATES tested_ids)

# The table: its rows, and which column is "Checked by".
read_neutral(table "${TABLE}")
string(REGEX MATCH "\n\\| ID \\|[^\n]*" header "${table}")
string(REPLACE "|" ";" header_cells "${header}")
set(checked_column -1)
set(index 0)
foreach(cell IN LISTS header_cells)
  string(STRIP "${cell}" cell)
  if(cell STREQUAL "Checked by")
    set(checked_column ${index})
  endif()
  math(EXPR index "${index} + 1")
endforeach()
if(checked_column LESS 0)
  message(FATAL_ERROR "traceability: ${TABLE} has no table header with a 'Checked by' column")
endif()

set(failures "")
set(tested 0)
set(deviations 0)
set(names_checked 0)

foreach(id IN LISTS spec_ids)
  string(REGEX MATCHALL "\n\\| ${id} \\|[^\n]*" rows "${table}")
  list(LENGTH rows row_count)
  if(NOT row_count EQUAL 1)
    list(APPEND failures "${id}: ${row_count} rows in the table (want exactly 1)")
    continue()
  endif()
  string(TOLOWER "${rows}" row_lower)
  if(id IN_LIST tested_ids)
    math(EXPR tested "${tested} + 1")
  elseif(row_lower MATCHES "deviation")
    math(EXPR deviations "${deviations} + 1")
  else()
    list(APPEND failures "${id}: no test carries it in its name or tag, and its row records no deviation")
  endif()

  # Every test the row quotes exists.
  string(REPLACE "|" ";" cells "${rows}")
  list(LENGTH cells cell_count)
  if(cell_count LESS_EQUAL checked_column)
    list(APPEND failures "${id}: its row has no 'Checked by' cell")
    continue()
  endif()
  list(GET cells ${checked_column} checked_by)
  string(REGEX MATCHALL "\"[^\"]+\"" quoted "${checked_by}")
  string(REGEX MATCHALL "`test_[A-Za-z0-9_]+`" c_quoted "${checked_by}")
  foreach(name IN LISTS quoted c_quoted)
    string(REGEX REPLACE "^[\"`](.*)[\"`]$" "\\1" bare "${name}")
    if(name MATCHES "^`")
      # A C test function: the whole identifier, followed by '('.
      string(FIND "${joined}" "${bare}(" at)
    else()
      # A Catch2 test: the whole name, as a literal of its own, or the part
      # after the IDs that open it ("SRS_..., SRS_...: send argument checks").
      string(FIND "${joined}" "\"${bare}\"" at)
      if(at EQUAL -1)
        string(FIND "${joined}" ": ${bare}\"" at)
      endif()
    endif()
    if(at EQUAL -1)
      list(APPEND failures "${id}: the table names a test no source contains: ${name}")
    endif()
    math(EXPR names_checked "${names_checked} + 1")
  endforeach()
endforeach()

# Rows for IDs the specification does not have (renamed or mistyped).
string(REGEX MATCHALL "\n\\| ${id_regex} \\|" row_heads "${table}")
foreach(head IN LISTS row_heads)
  string(REGEX MATCH "${id_regex}" id "${head}")
  if(NOT id IN_LIST spec_ids)
    list(APPEND failures "${id}: a row in the table, but not a requirement of ${spec_name}")
  endif()
endforeach()

get_filename_component(table_name "${TABLE}" NAME)
message(STATUS "traceability ${spec_name} -> ${table_name}: ${spec_count} requirements, "
               "${tested} carried by test names or tags, ${deviations} recorded deviations; "
               "${names_checked} quoted test names found in the sources")
if(failures)
  list(LENGTH failures failure_count)
  foreach(f IN LISTS failures)
    message("traceability: ${f}")
  endforeach()
  message(FATAL_ERROR "traceability: ${failure_count} problem(s)")
endif()
