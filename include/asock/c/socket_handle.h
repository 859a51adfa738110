/* asock/c/socket_handle.h: the native socket type of asock's C API.
 *
 * SOCKET_HANDLE is a file descriptor on POSIX systems and a pointer-sized
 * value wrapping a Winsock SOCKET on Windows. INVALID_SOCKET is the POSIX
 * "no socket" value (Windows headers define their own). */
#ifndef ASOCK_C_SOCKET_HANDLE_H
#define ASOCK_C_SOCKET_HANDLE_H

#ifdef _WIN32
typedef void* SOCKET_HANDLE;
/* INVALID_SOCKET (from <winsock2.h>) is an integer; compare SOCKET_HANDLE
 * values with ASOCK_INVALID_SOCKET_HANDLE below, which is the same value as
 * a pointer. */
#else
typedef int SOCKET_HANDLE;
#ifndef INVALID_SOCKET
#define INVALID_SOCKET -1
#endif
#endif

/* "No socket" as a SOCKET_HANDLE on every platform: -1 on POSIX, the
 * INVALID_SOCKET value on Windows. socket_transport_get_underlying_socket
 * returns it when a transport has no socket. */
#define ASOCK_INVALID_SOCKET_HANDLE ((SOCKET_HANDLE)(-1))

#endif /* ASOCK_C_SOCKET_HANDLE_H */
