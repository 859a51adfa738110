/* tests/c/support.h: helpers shared by the C API tests: completion recorders
 * for every callback type, loopback connection set-up through the socket
 * transport, and a few plain socket helpers (BSD sockets on POSIX, Winsock
 * on Windows) for the peer side of a test. */
#ifndef ASOCK_TESTS_C_SUPPORT_H
#define ASOCK_TESTS_C_SUPPORT_H

#include "portable.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef _WIN32
#include <winsock2.h>
#endif

#include <asock/c/async_socket.h>
#include <asock/c/execution_engine.h>
#include <asock/c/socket_handle.h>
#include <asock/c/socket_transport.h>

/* How long a test waits for something that must happen before calling it a
 * failure. Not a timing assertion: only a guard against hanging forever. */
#define SUPPORT_WAIT_LIMIT_MS 60000

/* Records the calls of one callback (any of the four completion types). */
typedef struct COMPLETION_TAG
{
    PORTABLE_MUTEX mu;
    PORTABLE_COND cv;
    unsigned calls;
    int result;                 /* result of the last call */
    uint32_t bytes;             /* bytes_received of the last call (receive) */
    uint64_t total_bytes;       /* sum of bytes_received */
    PORTABLE_THREAD_ID thread;  /* thread of the last call */
    unsigned inside_api_call;   /* calls made on a thread while it was inside an API call (see support_enter_call) */
    unsigned results[8];        /* calls per result value (0..7) */
} COMPLETION;

void completion_init(COMPLETION* c);
void completion_deinit(COMPLETION* c);
/* Waits until at least `calls` calls were recorded (bounded). */
bool completion_wait(COMPLETION* c, unsigned calls);
unsigned completion_calls(COMPLETION* c);
unsigned completion_count_of(COMPLETION* c, int result);

/* Callbacks whose context is a COMPLETION*. */
void record_open(void* context, ASYNC_SOCKET_OPEN_RESULT open_result);
void record_send(void* context, ASYNC_SOCKET_SEND_RESULT send_result);
void record_receive(void* context, ASYNC_SOCKET_RECEIVE_RESULT receive_result, uint32_t bytes_received);
void record_notify(void* context, ASYNC_SOCKET_NOTIFY_IO_RESULT notify_io_result);
/* Callbacks that must never be called; they record a failure. */
void never_open(void* context, ASYNC_SOCKET_OPEN_RESULT open_result);
void never_send(void* context, ASYNC_SOCKET_SEND_RESULT send_result);
void never_receive(void* context, ASYNC_SOCKET_RECEIVE_RESULT receive_result, uint32_t bytes_received);
void never_notify(void* context, ASYNC_SOCKET_NOTIFY_IO_RESULT notify_io_result);

/* Mark the calling thread as being inside an API call, so a callback that
 * runs on it before the call returns is counted in inside_api_call. */
void support_enter_call(void);
void support_leave_call(void);

/* A connected TCP pair over 127.0.0.1: two client transports. */
bool make_transport_pair(SOCKET_TRANSPORT_HANDLE* first, SOCKET_TRANSPORT_HANDLE* second);
/* Opens `s` with `t` (ownership passes to `s` on success) and checks the
 * open callback ran once with ASYNC_SOCKET_OPEN_OK. */
bool open_with(ASYNC_SOCKET_HANDLE s, SOCKET_TRANSPORT_HANDLE t);
/* Two OPEN async sockets on `engine` (NULL: the default engine, Linux only)
 * connected to each other. */
bool make_async_pair(EXECUTION_ENGINE_HANDLE engine, ASYNC_SOCKET_HANDLE* a, ASYNC_SOCKET_HANDLE* b);
/* An OPEN async socket `a` and the transport of its peer `peer`. */
bool make_async_and_peer(EXECUTION_ENGINE_HANDLE engine, ASYNC_SOCKET_HANDLE* a, SOCKET_TRANSPORT_HANDLE* peer);

/* Blocking helpers for the peer side, bounded by SUPPORT_WAIT_LIMIT_MS. */
bool peer_send_all(SOCKET_TRANSPORT_HANDLE peer, const void* data, size_t length);
bool peer_receive_exact(SOCKET_TRANSPORT_HANDLE peer, void* data, size_t length);
/* Waits until the peer reports end of stream (a receive returns SHUTDOWN),
 * discarding the bytes before it. */
bool peer_wait_shutdown(SOCKET_TRANSPORT_HANDLE peer);

/* ---- plain sockets for the peer side ------------------------------------- */

#ifdef _WIN32
typedef SOCKET RAW_SOCKET;
#define RAW_INVALID_SOCKET INVALID_SOCKET
/* What socket_transport_get_underlying_socket returns for "no socket". */
#define SUPPORT_INVALID_SOCKET_HANDLE ((SOCKET_HANDLE)(uintptr_t)INVALID_SOCKET)
#else
typedef int RAW_SOCKET;
#define RAW_INVALID_SOCKET (-1)
#define SUPPORT_INVALID_SOCKET_HANDLE INVALID_SOCKET
#endif

/* SOCKET_HANDLE wraps the native socket (a descriptor, or a Winsock SOCKET in
 * a void*); these convert between the two. */
SOCKET_HANDLE support_socket_handle(RAW_SOCKET s);
RAW_SOCKET support_raw_socket(SOCKET_HANDLE h);

/* A plain blocking TCP socket connected to 127.0.0.1:port, or RAW_INVALID_SOCKET. */
RAW_SOCKET raw_connect_loopback(uint16_t port);
/* Closes `s` normally (the peer sees end of stream). */
void raw_close(RAW_SOCKET s);
/* Resets the connection of `s` (SO_LINGER {1, 0}, close: an RST, no FIN) and closes it. */
void raw_reset(RAW_SOCKET s);
/* Whether `s` no longer names a socket (it was closed). */
bool raw_socket_is_closed(RAW_SOCKET s);

/* An OPEN async socket `a` whose peer is a plain blocking socket *peer;
 * *own (may be NULL) receives the socket `a` owns, for wait_readable() /
 * wait_error(). */
bool make_async_and_raw_peer(EXECUTION_ENGINE_HANDLE engine, ASYNC_SOCKET_HANDLE* a, RAW_SOCKET* peer, SOCKET_HANDLE* own);

/* Wait (bounded) until `s` is readable (data, end of stream or an error). */
bool wait_readable(SOCKET_HANDLE s);
/* Wait (bounded) until an error such as a reset is pending on `s` and nothing
 * has read it. POSIX: poll() reports POLLERR. Windows: select() reports the
 * socket readable (Winsock reports a pending reset that way; only use it where
 * no byte and no end of stream can arrive). */
bool wait_error(SOCKET_HANDLE s);

/* Deterministic byte patterns. */
void fill_pattern(unsigned char* data, size_t length, uint32_t seed);
bool check_pattern(const unsigned char* data, size_t length, uint32_t seed);

#ifndef _WIN32 /* /proc is Linux's */
/* Threads of the process, from /proc/self/status (0 when unknown). */
unsigned process_thread_count(void);
/* The same, once two readings 20 ms apart agree (a thread that was just
 * joined can still be counted for a moment). Bounded. */
unsigned stable_thread_count(void);
#endif

#endif /* ASOCK_TESTS_C_SUPPORT_H */
