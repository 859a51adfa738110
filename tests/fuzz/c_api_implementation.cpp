// tests/fuzz/c_api_implementation.cpp: the C API's one translation unit
// (docs/c_api.md, "Headers and targets"), compiled into the libFuzzer binary
// of fuzz_c_api.cpp with the same instrumentation as the target, so that
// libFuzzer sees the library's coverage. The replay build links asock::c.
#include <asock/c/implementation.hpp>
