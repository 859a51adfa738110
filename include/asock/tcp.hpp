// asock/tcp.hpp: TCP connect and listen/accept helpers for the current platform.
#pragma once

#if defined(__linux__)
#include <asock/linux/tcp_posix.hpp>
#else
#error "asock: no TCP helpers for this platform yet"
#endif
