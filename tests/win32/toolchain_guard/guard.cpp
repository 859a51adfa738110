// Compiled by the ctest test win32_toolchain_guard without the definitions of
// asock::asock: with mingw-w64's libstdc++ it must not compile, because
// without _GLIBCXX_USE_POSIX_SEMAPHORE std::stop_callback can hang
// (include/asock/detail/toolchain.hpp).
#include <asock/ops/awaitable_base.hpp>

int main() { return 0; }
