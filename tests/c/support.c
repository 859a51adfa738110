/* tests/c/support.c: see support.h. */
#include "support.h"

#include "harness.h"

#include <stdio.h>
#include <string.h>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

static PORTABLE_THREAD_LOCAL int support_in_call = 0;

void support_enter_call(void) { support_in_call = 1; }
void support_leave_call(void) { support_in_call = 0; }

void completion_init(COMPLETION* c)
{
    memset(c, 0, sizeof *c);
    portable_mutex_init(&c->mu);
    portable_cond_init(&c->cv);
}

void completion_deinit(COMPLETION* c)
{
    portable_cond_deinit(&c->cv);
    portable_mutex_deinit(&c->mu);
}

bool completion_wait(COMPLETION* c, unsigned calls)
{
    const uint64_t deadline = portable_now_ms() + SUPPORT_WAIT_LIMIT_MS;
    bool ok = true;
    portable_mutex_lock(&c->mu);
    while (c->calls < calls) {
        const uint64_t now = portable_now_ms();
        if (now >= deadline || !portable_cond_wait_ms(&c->cv, &c->mu, (uint32_t)(deadline - now))) {
            ok = c->calls >= calls;
            break;
        }
    }
    portable_mutex_unlock(&c->mu);
    return ok;
}

unsigned completion_calls(COMPLETION* c)
{
    unsigned n;
    portable_mutex_lock(&c->mu);
    n = c->calls;
    portable_mutex_unlock(&c->mu);
    return n;
}

unsigned completion_count_of(COMPLETION* c, int result)
{
    unsigned n = 0;
    portable_mutex_lock(&c->mu);
    if (result >= 0 && result < 8) {
        n = c->results[result];
    }
    portable_mutex_unlock(&c->mu);
    return n;
}

static void record(COMPLETION* c, int result, uint32_t bytes)
{
    portable_mutex_lock(&c->mu);
    ++c->calls;
    c->result = result;
    c->bytes = bytes;
    c->total_bytes += bytes;
    c->thread = portable_thread_self();
    if (support_in_call) {
        ++c->inside_api_call;
    }
    if (result >= 0 && result < 8) {
        ++c->results[result];
    }
    portable_cond_broadcast(&c->cv);
    portable_mutex_unlock(&c->mu);
}

void record_open(void* context, ASYNC_SOCKET_OPEN_RESULT open_result) { record(context, (int)open_result, 0); }
void record_send(void* context, ASYNC_SOCKET_SEND_RESULT send_result) { record(context, (int)send_result, 0); }
void record_receive(void* context, ASYNC_SOCKET_RECEIVE_RESULT receive_result, uint32_t bytes_received)
{
    record(context, (int)receive_result, bytes_received);
}
void record_notify(void* context, ASYNC_SOCKET_NOTIFY_IO_RESULT notify_io_result)
{
    record(context, (int)notify_io_result, 0);
}

void never_open(void* context, ASYNC_SOCKET_OPEN_RESULT open_result)
{
    (void)context;
    (void)open_result;
    harness_record_failure(__FILE__, __LINE__, "an open callback that must not run ran");
}
void never_send(void* context, ASYNC_SOCKET_SEND_RESULT send_result)
{
    (void)context;
    (void)send_result;
    harness_record_failure(__FILE__, __LINE__, "a send callback that must not run ran");
}
void never_receive(void* context, ASYNC_SOCKET_RECEIVE_RESULT receive_result, uint32_t bytes_received)
{
    (void)context;
    (void)receive_result;
    (void)bytes_received;
    harness_record_failure(__FILE__, __LINE__, "a receive callback that must not run ran");
}
void never_notify(void* context, ASYNC_SOCKET_NOTIFY_IO_RESULT notify_io_result)
{
    (void)context;
    (void)notify_io_result;
    harness_record_failure(__FILE__, __LINE__, "a notify callback that must not run ran");
}

bool make_transport_pair(SOCKET_TRANSPORT_HANDLE* first, SOCKET_TRANSPORT_HANDLE* second)
{
    SOCKET_TRANSPORT_HANDLE listener = socket_transport_create_server();
    SOCKET_TRANSPORT_HANDLE client = socket_transport_create_client();
    SOCKET_TRANSPORT_HANDLE accepted = NULL;
    uint16_t port = 0;
    bool ok = listener != NULL && client != NULL && socket_transport_listen_on(listener, "127.0.0.1", 0) == 0 &&
              socket_transport_get_local_port(listener, &port) == 0 && port != 0 &&
              socket_transport_connect(client, "127.0.0.1", port, SUPPORT_WAIT_LIMIT_MS) == 0 &&
              socket_transport_accept(listener, &accepted, SUPPORT_WAIT_LIMIT_MS) == SOCKET_ACCEPT_OK &&
              accepted != NULL;
    socket_transport_destroy(listener);
    if (!ok) {
        socket_transport_destroy(client);
        socket_transport_destroy(accepted);
        *first = NULL;
        *second = NULL;
        return false;
    }
    *first = client;
    *second = accepted;
    return true;
}

bool open_with(ASYNC_SOCKET_HANDLE s, SOCKET_TRANSPORT_HANDLE t)
{
    COMPLETION opened;
    bool ok;
    completion_init(&opened);
    ok = async_socket_open_async(s, t, record_open, &opened) == 0 && completion_calls(&opened) == 1 &&
         opened.result == ASYNC_SOCKET_OPEN_OK;
    completion_deinit(&opened);
    return ok;
}

bool make_async_pair(EXECUTION_ENGINE_HANDLE engine, ASYNC_SOCKET_HANDLE* a, ASYNC_SOCKET_HANDLE* b)
{
    SOCKET_TRANSPORT_HANDLE ta;
    SOCKET_TRANSPORT_HANDLE tb;
    *a = NULL;
    *b = NULL;
    if (!make_transport_pair(&ta, &tb)) {
        return false;
    }
    *a = async_socket_create(engine);
    *b = async_socket_create(engine);
    if (*a == NULL || *b == NULL || !open_with(*a, ta)) {
        async_socket_destroy(*a);
        async_socket_destroy(*b);
        socket_transport_destroy(ta);
        socket_transport_destroy(tb);
        *a = *b = NULL;
        return false;
    }
    if (!open_with(*b, tb)) {
        async_socket_destroy(*a);
        async_socket_destroy(*b);
        socket_transport_destroy(tb);
        *a = *b = NULL;
        return false;
    }
    return true;
}

bool make_async_and_peer(EXECUTION_ENGINE_HANDLE engine, ASYNC_SOCKET_HANDLE* a, SOCKET_TRANSPORT_HANDLE* peer)
{
    SOCKET_TRANSPORT_HANDLE ta;
    *a = NULL;
    if (!make_transport_pair(&ta, peer)) {
        return false;
    }
    *a = async_socket_create(engine);
    if (*a == NULL || !open_with(*a, ta)) {
        async_socket_destroy(*a);
        socket_transport_destroy(ta);
        socket_transport_destroy(*peer);
        *a = NULL;
        *peer = NULL;
        return false;
    }
    return true;
}

bool peer_send_all(SOCKET_TRANSPORT_HANDLE peer, const void* data, size_t length)
{
    size_t done = 0;
    while (done < length) {
        const size_t chunk = length - done > (1u << 30) ? (1u << 30) : length - done;
        SOCKET_BUFFER b;
        uint32_t sent = 0;
        b.length = (uint32_t)chunk;
        b.buffer = (unsigned char*)data + done;
        if (socket_transport_send(peer, &b, 1, &sent, 0, NULL) != SOCKET_SEND_OK) {
            return false;
        }
        done += sent;
    }
    return true;
}

bool peer_receive_exact(SOCKET_TRANSPORT_HANDLE peer, void* data, size_t length)
{
    size_t done = 0;
    while (done < length) {
        SOCKET_BUFFER b;
        uint32_t got = 0;
        SOCKET_RECEIVE_RESULT r;
        const size_t chunk = length - done > (1u << 30) ? (1u << 30) : length - done;
        b.length = (uint32_t)chunk;
        b.buffer = (unsigned char*)data + done;
        r = socket_transport_receive(peer, &b, 1, &got, 0, NULL);
        if (r == SOCKET_RECEIVE_OK) {
            done += got;
        } else if (r == SOCKET_RECEIVE_WOULD_BLOCK) {
            if (!wait_readable(socket_transport_get_underlying_socket(peer))) {
                return false;
            }
        } else {
            return false;
        }
    }
    return true;
}

bool peer_wait_shutdown(SOCKET_TRANSPORT_HANDLE peer)
{
    /* A large buffer: what was in flight before the close arrives first, and
     * one receive per byte would take minutes under an emulator. */
    static PORTABLE_THREAD_LOCAL unsigned char sink[65536];
    for (;;) {
        SOCKET_BUFFER b;
        uint32_t got = 0;
        SOCKET_RECEIVE_RESULT r;
        b.length = (uint32_t)sizeof sink;
        b.buffer = sink;
        r = socket_transport_receive(peer, &b, 1, &got, 0, NULL);
        if (r == SOCKET_RECEIVE_SHUTDOWN) {
            return true;
        }
        if (r == SOCKET_RECEIVE_WOULD_BLOCK) {
            if (!wait_readable(socket_transport_get_underlying_socket(peer))) {
                return false;
            }
        } else if (r != SOCKET_RECEIVE_OK) {
            return false;
        }
    }
}

/* ---- plain sockets ----------------------------------------------------------- */

#ifdef _WIN32
SOCKET_HANDLE support_socket_handle(RAW_SOCKET s) { return (SOCKET_HANDLE)(uintptr_t)s; }
RAW_SOCKET support_raw_socket(SOCKET_HANDLE h) { return (RAW_SOCKET)(uintptr_t)h; }
#else
SOCKET_HANDLE support_socket_handle(RAW_SOCKET s) { return s; }
RAW_SOCKET support_raw_socket(SOCKET_HANDLE h) { return h; }
#endif

RAW_SOCKET raw_connect_loopback(uint16_t port)
{
    struct sockaddr_in to;
    RAW_SOCKET s;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
#ifdef _WIN32
    s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
#else
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
#endif
    if (s == RAW_INVALID_SOCKET) {
        return RAW_INVALID_SOCKET;
    }
    if (connect(s, (const struct sockaddr*)&to, sizeof to) != 0) {
        raw_close(s);
        return RAW_INVALID_SOCKET;
    }
    return s;
}

void raw_close(RAW_SOCKET s)
{
#ifdef _WIN32
    closesocket(s);
#else
    close(s);
#endif
}

void raw_reset(RAW_SOCKET s)
{
    struct linger l;
    l.l_onoff = 1;
    l.l_linger = 0;
    setsockopt(s, SOL_SOCKET, SO_LINGER, (const char*)&l, sizeof l);
    raw_close(s); /* with SO_LINGER 0 and no shutdown(): a reset, no FIN */
}

bool raw_socket_is_closed(RAW_SOCKET s)
{
#ifdef _WIN32
    int type = 0;
    int length = (int)sizeof type;
    return getsockopt(s, SOL_SOCKET, SO_TYPE, (char*)&type, &length) != 0 && WSAGetLastError() == WSAENOTSOCK;
#else
    return fcntl(s, F_GETFD) == -1 && errno == EBADF;
#endif
}

bool make_async_and_raw_peer(EXECUTION_ENGINE_HANDLE engine, ASYNC_SOCKET_HANDLE* a, RAW_SOCKET* peer, SOCKET_HANDLE* own)
{
    SOCKET_TRANSPORT_HANDLE listener = socket_transport_create_server();
    SOCKET_TRANSPORT_HANDLE accepted = NULL;
    uint16_t port = 0;
    RAW_SOCKET s = RAW_INVALID_SOCKET;
    bool ok = listener != NULL && socket_transport_listen_on(listener, "127.0.0.1", 0) == 0 &&
              socket_transport_get_local_port(listener, &port) == 0;
    *a = NULL;
    *peer = RAW_INVALID_SOCKET;
    if (ok) {
        s = raw_connect_loopback(port);
        ok = s != RAW_INVALID_SOCKET &&
             socket_transport_accept(listener, &accepted, SUPPORT_WAIT_LIMIT_MS) == SOCKET_ACCEPT_OK;
    }
    socket_transport_destroy(listener);
    if (ok) {
        if (own != NULL) {
            *own = socket_transport_get_underlying_socket(accepted);
        }
        *a = async_socket_create(engine);
        ok = *a != NULL && open_with(*a, accepted);
        if (!ok) {
            async_socket_destroy(*a);
            *a = NULL;
            socket_transport_destroy(accepted);
        }
    }
    if (!ok) {
        if (s != RAW_INVALID_SOCKET) {
            raw_close(s);
        }
        return false;
    }
    *peer = s;
    return true;
}

#ifdef _WIN32
/* select() on one socket: readable, or (also) with an exception pending. */
static bool wait_select(SOCKET_HANDLE h, bool exceptions)
{
    const SOCKET s = support_raw_socket(h);
    fd_set readable;
    fd_set failed;
    struct timeval limit;
    int r;
    FD_ZERO(&readable);
    FD_ZERO(&failed);
    FD_SET(s, &readable);
    FD_SET(s, &failed);
    limit.tv_sec = SUPPORT_WAIT_LIMIT_MS / 1000;
    limit.tv_usec = (SUPPORT_WAIT_LIMIT_MS % 1000) * 1000;
    r = select(0, &readable, NULL, exceptions ? &failed : NULL, &limit);
    return r > 0 && (FD_ISSET(s, &readable) || (exceptions && FD_ISSET(s, &failed)));
}

bool wait_readable(SOCKET_HANDLE s) { return wait_select(s, false); }
bool wait_error(SOCKET_HANDLE s) { return wait_select(s, true); }
#else
static bool wait_poll(int fd, short events)
{
    struct pollfd p;
    int r;
    p.fd = fd;
    p.events = events;
    p.revents = 0;
    do {
        r = poll(&p, 1, SUPPORT_WAIT_LIMIT_MS);
    } while (r < 0 && errno == EINTR);
    return r > 0 && (p.revents & events) != 0;
}

bool wait_readable(SOCKET_HANDLE s) { return wait_poll(s, POLLIN); }
bool wait_error(SOCKET_HANDLE s) { return wait_poll(s, POLLERR); }
#endif

void fill_pattern(unsigned char* data, size_t length, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1u;
    size_t i;
    for (i = 0; i < length; ++i) {
        x = x * 1103515245u + 12345u;
        data[i] = (unsigned char)(x >> 16);
    }
}

bool check_pattern(const unsigned char* data, size_t length, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1u;
    size_t i;
    for (i = 0; i < length; ++i) {
        x = x * 1103515245u + 12345u;
        if (data[i] != (unsigned char)(x >> 16)) {
            return false;
        }
    }
    return true;
}

#ifndef _WIN32
unsigned process_thread_count(void)
{
    char line[256];
    unsigned n = 0;
    FILE* f = fopen("/proc/self/status", "r");
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "Threads: %u", &n) == 1) {
            break;
        }
    }
    fclose(f);
    return n;
}

unsigned stable_thread_count(void)
{
    unsigned last = process_thread_count();
    int i;
    for (i = 0; i < 300; ++i) {
        unsigned now;
        portable_sleep_ms(20);
        now = process_thread_count();
        if (now == last) {
            return now;
        }
        last = now;
    }
    return last;
}
#endif
