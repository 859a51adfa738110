// asock/tcp.hpp: TCP connect and listen/accept helpers for the current platform.
#pragma once

#if defined(__linux__)
#include <asock/linux/tcp_posix.hpp>
#elif defined(_WIN32)
#include <asock/win32/tcp_win32.hpp>
#else
#error "asock: no TCP helpers for this platform yet"
#endif
