// tests/integration/uring_probe.cpp: whether io_uring can be used here.
// Prints "available" (exit 0) or the reason it cannot (exit 77, ctest's
// SKIP_RETURN_CODE for the io_uring integration tests and what
// scripts/test.sh's uring flavour reads).
#include <asock/io_uring.hpp>

#include <cstdio>

int main()
{
    if (asock::uring::available()) {
        std::puts("available");
        return 0;
    }
    std::puts(asock::uring::unavailable_reason());
    return 77;
}
