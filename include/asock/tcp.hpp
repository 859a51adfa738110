// asock/tcp.hpp: TCP connect and listen/accept helpers (tcp_connect<Platform>,
// tcp_listener<Platform>) of the default backend (asock/default_platform.hpp):
// asock/posix/tcp_posix.hpp for epoll, asock/win32/tcp_win32.hpp for Windows.
#pragma once

#include <asock/default_platform.hpp>

#include ASOCK_DEFAULT_TCP_HEADER
