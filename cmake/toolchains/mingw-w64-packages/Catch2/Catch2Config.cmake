# Catch2 v2 for the mingw-w64 cross build (see ../../mingw-w64-x86_64.cmake):
# the host's single header, copied into the build tree so that only it is on
# the Windows compiler's include path. Defines Catch2::Catch2 (INTERFACE).
if(NOT TARGET Catch2::Catch2)
  set(_asock_catch2_header ${ASOCK_HOST_INCLUDE_DIR}/catch2/catch.hpp)
  if(NOT EXISTS ${_asock_catch2_header})
    set(Catch2_FOUND FALSE)
    set(Catch2_NOT_FOUND_MESSAGE "no ${_asock_catch2_header} (install the catch2 package)")
    return()
  endif()
  set(_asock_catch2_dir ${CMAKE_BINARY_DIR}/host-headers/catch2-v2)
  file(COPY ${_asock_catch2_header} DESTINATION ${_asock_catch2_dir}/catch2)
  add_library(Catch2::Catch2 INTERFACE IMPORTED)
  set_target_properties(Catch2::Catch2 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${_asock_catch2_dir})
endif()
set(Catch2_FOUND TRUE)
