# fmt for the mingw-w64 cross build (see ../../mingw-w64-x86_64.cmake): the
# host's headers, copied into the build tree, used header-only
# (FMT_HEADER_ONLY). Defines fmt::fmt (INTERFACE), the target asock links.
if(NOT TARGET fmt::fmt)
  set(_asock_fmt_dir ${ASOCK_HOST_INCLUDE_DIR}/fmt)
  if(NOT EXISTS ${_asock_fmt_dir}/format.h OR NOT EXISTS ${_asock_fmt_dir}/format-inl.h)
    set(fmt_FOUND FALSE)
    set(fmt_NOT_FOUND_MESSAGE "no header-only fmt in ${_asock_fmt_dir} (install libfmt-dev)")
    return()
  endif()
  set(_asock_fmt_copy ${CMAKE_BINARY_DIR}/host-headers/fmt)
  file(COPY ${_asock_fmt_dir} DESTINATION ${_asock_fmt_copy})
  add_library(fmt::fmt INTERFACE IMPORTED)
  set_target_properties(fmt::fmt PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES ${_asock_fmt_copy}
    INTERFACE_COMPILE_DEFINITIONS FMT_HEADER_ONLY=1)
endif()
set(fmt_FOUND TRUE)
