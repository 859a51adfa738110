/* asock/c/socket_handle.h: the native socket type of asock's C API.
 *
 * SOCKET_HANDLE is a file descriptor on POSIX systems and a pointer-sized
 * value wrapping a Winsock SOCKET on Windows. INVALID_SOCKET is the POSIX
 * "no socket" value (Windows headers define their own). */
#ifndef ASOCK_C_SOCKET_HANDLE_H
#define ASOCK_C_SOCKET_HANDLE_H

#ifdef _WIN32
typedef void* SOCKET_HANDLE;
#else
typedef int SOCKET_HANDLE;
#ifndef INVALID_SOCKET
#define INVALID_SOCKET -1
#endif
#endif

#endif /* ASOCK_C_SOCKET_HANDLE_H */
