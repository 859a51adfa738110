/* tests/c/support.c: see support.h. */
#include "support.h"

#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static _Thread_local int support_in_call = 0;

void support_enter_call(void) { support_in_call = 1; }
void support_leave_call(void) { support_in_call = 0; }

void completion_init(COMPLETION* c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

void completion_deinit(COMPLETION* c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static struct timespec deadline_after_ms(long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec += 1;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

bool completion_wait(COMPLETION* c, unsigned calls)
{
    const struct timespec deadline = deadline_after_ms(SUPPORT_WAIT_LIMIT_MS);
    bool ok = true;
    pthread_mutex_lock(&c->mu);
    while (c->calls < calls) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) == ETIMEDOUT) {
            ok = c->calls >= calls;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return ok;
}

unsigned completion_calls(COMPLETION* c)
{
    unsigned n;
    pthread_mutex_lock(&c->mu);
    n = c->calls;
    pthread_mutex_unlock(&c->mu);
    return n;
}

unsigned completion_count_of(COMPLETION* c, int result)
{
    unsigned n = 0;
    pthread_mutex_lock(&c->mu);
    if (result >= 0 && result < 8) {
        n = c->results[result];
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

static void record(COMPLETION* c, int result, uint32_t bytes)
{
    pthread_mutex_lock(&c->mu);
    ++c->calls;
    c->result = result;
    c->bytes = bytes;
    c->total_bytes += bytes;
    c->thread = pthread_self();
    if (support_in_call) {
        ++c->inside_api_call;
    }
    if (result >= 0 && result < 8) {
        ++c->results[result];
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
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

bool wait_poll(int fd, short events)
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
            if (!wait_poll(socket_transport_get_underlying_socket(peer), POLLIN)) {
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
    for (;;) {
        unsigned char byte;
        SOCKET_BUFFER b;
        uint32_t got = 0;
        SOCKET_RECEIVE_RESULT r;
        b.length = 1;
        b.buffer = &byte;
        r = socket_transport_receive(peer, &b, 1, &got, 0, NULL);
        if (r == SOCKET_RECEIVE_SHUTDOWN) {
            return true;
        }
        if (r == SOCKET_RECEIVE_WOULD_BLOCK) {
            if (!wait_poll(socket_transport_get_underlying_socket(peer), POLLIN)) {
                return false;
            }
        } else if (r != SOCKET_RECEIVE_OK) {
            return false;
        }
    }
}

bool make_async_and_raw_peer(EXECUTION_ENGINE_HANDLE engine, ASYNC_SOCKET_HANDLE* a, int* peer_fd, int* own_fd)
{
    SOCKET_TRANSPORT_HANDLE listener = socket_transport_create_server();
    SOCKET_TRANSPORT_HANDLE accepted = NULL;
    struct sockaddr_in to;
    uint16_t port = 0;
    int fd = -1;
    bool ok = listener != NULL && socket_transport_listen_on(listener, "127.0.0.1", 0) == 0 &&
              socket_transport_get_local_port(listener, &port) == 0;
    *a = NULL;
    *peer_fd = -1;
    if (ok) {
        memset(&to, 0, sizeof to);
        to.sin_family = AF_INET;
        to.sin_port = htons(port);
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ok = fd >= 0 && connect(fd, (const struct sockaddr*)&to, sizeof to) == 0 &&
             socket_transport_accept(listener, &accepted, SUPPORT_WAIT_LIMIT_MS) == SOCKET_ACCEPT_OK;
    }
    socket_transport_destroy(listener);
    if (ok) {
        if (own_fd != NULL) {
            *own_fd = socket_transport_get_underlying_socket(accepted);
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
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    *peer_fd = fd;
    return true;
}

void raw_reset(int fd)
{
    struct linger l;
    l.l_onoff = 1;
    l.l_linger = 0;
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd); /* with SO_LINGER 0 and no shutdown(): a reset, no FIN */
}

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
        struct timespec t;
        unsigned now;
        t.tv_sec = 0;
        t.tv_nsec = 20 * 1000000L;
        nanosleep(&t, NULL);
        now = process_thread_count();
        if (now == last) {
            return now;
        }
        last = now;
    }
    return last;
}
