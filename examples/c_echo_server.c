/* examples/c_echo_server.c: a TCP echo server written against asock's C API
 * only (no socket code of its own): a socket transport listens and accepts,
 * and each connection is an async socket that echoes what it receives, driven
 * by completion callbacks on an execution engine's threads.
 *
 *   c_echo_server [port [connections [address]]]
 *
 * port 0 (the default) picks a free port; the server prints
 * "listening on port N" once it accepts connections. connections 0 (the
 * default) serves forever; otherwise the server exits after that many
 * connections have come and gone. address defaults to 127.0.0.1. */
#include <asock/c/async_socket.h>
#include <asock/c/execution_engine.h>
#include <asock/c/platform.h>
#include <asock/c/socket_transport.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A mutex and a condition variable: the callbacks run on the engine's threads. */
#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
static SRWLOCK g_lock = SRWLOCK_INIT;
static CONDITION_VARIABLE g_changed = CONDITION_VARIABLE_INIT;
#define lock() AcquireSRWLockExclusive(&g_lock)
#define unlock() ReleaseSRWLockExclusive(&g_lock)
#define wait_changed() SleepConditionVariableSRW(&g_changed, &g_lock, INFINITE, 0)
#define signal_changed() WakeAllConditionVariable(&g_changed)
#else
#include <pthread.h>
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_changed = PTHREAD_COND_INITIALIZER;
#define lock() pthread_mutex_lock(&g_lock)
#define unlock() pthread_mutex_unlock(&g_lock)
#define wait_changed() pthread_cond_wait(&g_changed, &g_lock)
#define signal_changed() pthread_cond_broadcast(&g_changed)
#endif

typedef struct SESSION_TAG
{
    ASYNC_SOCKET_HANDLE socket;
    unsigned char data[16384];
    uint32_t pending;
    int finished; /* guarded by lock() */
    struct SESSION_TAG* next;
} SESSION;

static unsigned long long g_bytes_echoed = 0; /* guarded by lock() */

static void session_receive(SESSION* s);

static void session_finish(SESSION* s)
{
    lock();
    s->finished = 1;
    signal_changed();
    unlock();
}

/* Called on an engine thread (or inside async_socket_send_async, when the
 * bytes went out at once). */
static void on_send_complete(void* context, ASYNC_SOCKET_SEND_RESULT result)
{
    SESSION* s = context;
    if (result != ASYNC_SOCKET_SEND_OK) {
        session_finish(s);
        return;
    }
    lock();
    g_bytes_echoed += s->pending;
    unlock();
    session_receive(s);
}

/* Called on an engine thread; ABANDONED when the client hung up. */
static void on_receive_complete(void* context, ASYNC_SOCKET_RECEIVE_RESULT result, uint32_t bytes_received)
{
    SESSION* s = context;
    ASYNC_SOCKET_BUFFER b;
    if (result != ASYNC_SOCKET_RECEIVE_OK) {
        session_finish(s);
        return;
    }
    s->pending = bytes_received;
    b.buffer = s->data;
    b.length = bytes_received;
    if (async_socket_send_async(s->socket, &b, 1, on_send_complete, s) != ASYNC_SOCKET_SEND_SYNC_OK) {
        session_finish(s);
    }
}

static void session_receive(SESSION* s)
{
    ASYNC_SOCKET_BUFFER b;
    b.buffer = s->data;
    b.length = sizeof s->data;
    if (async_socket_receive_async(s->socket, &b, 1, on_receive_complete, s) != 0) {
        session_finish(s);
    }
}

static void on_open_complete(void* context, ASYNC_SOCKET_OPEN_RESULT result)
{
    (void)context;
    (void)result; /* called with ASYNC_SOCKET_OPEN_OK before open returns 0 */
}

static int any_finished_locked(const SESSION* list)
{
    for (; list != NULL; list = list->next) {
        if (list->finished) {
            return 1;
        }
    }
    return 0;
}

/* Destroys the finished sessions of the list; returns how many. */
static unsigned reap(SESSION** list)
{
    unsigned n = 0;
    SESSION** p = list;
    while (*p != NULL) {
        SESSION* s = *p;
        int finished;
        lock();
        finished = s->finished;
        unlock();
        if (finished) {
            *p = s->next;
            async_socket_destroy(s->socket); /* also destroys its transport */
            free(s);
            ++n;
        } else {
            p = &s->next;
        }
    }
    return n;
}

int main(int argc, char** argv)
{
    const unsigned long port_arg = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;
    const unsigned long limit = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
    const char* address = argc > 3 ? argv[3] : "127.0.0.1";
    EXECUTION_ENGINE_PARAMETERS params = {2, 0};
    EXECUTION_ENGINE_HANDLE engine;
    SOCKET_TRANSPORT_HANDLE listener;
    SESSION* sessions = NULL;
    unsigned long accepted = 0;
    unsigned long done = 0;
    uint16_t port = 0;

    if (port_arg > 65535 || platform_init() != 0) {
        fprintf(stderr, "usage: c_echo_server [port [connections [address]]]\n");
        return 2;
    }
    engine = execution_engine_create(&params);
    listener = socket_transport_create_server();
    if (engine == NULL || listener == NULL || socket_transport_listen_on(listener, address, (uint16_t)port_arg) != 0 ||
        socket_transport_get_local_port(listener, &port) != 0) {
        fprintf(stderr, "c_echo_server: cannot listen on %s:%lu\n", address, port_arg);
        return 1;
    }
    printf("listening on port %u\n", (unsigned)port);
    fflush(stdout);

    while (limit == 0 || accepted < limit) {
        SOCKET_TRANSPORT_HANDLE connection = NULL;
        const SOCKET_ACCEPT_RESULT r = socket_transport_accept(listener, &connection, 1000);
        done += reap(&sessions);
        if (r == SOCKET_ACCEPT_NO_CONNECTION || r == SOCKET_ACCEPT_PORT_EXHAUSTION) {
            continue; /* nothing yet, or out of descriptors for now */
        }
        if (r != SOCKET_ACCEPT_OK) {
            fprintf(stderr, "c_echo_server: accept failed: %s\n", SOCKET_ACCEPT_RESULT_to_string(r));
            break;
        }
        ++accepted;
        {
            SESSION* s = calloc(1, sizeof *s);
            if (s == NULL || (s->socket = async_socket_create(engine)) == NULL) {
                free(s);
                socket_transport_destroy(connection);
                ++done;
                continue;
            }
            /* On success the async socket owns the transport. */
            if (async_socket_open_async(s->socket, connection, on_open_complete, NULL) != 0) {
                async_socket_destroy(s->socket);
                socket_transport_destroy(connection);
                free(s);
                ++done;
                continue;
            }
            s->next = sessions;
            sessions = s;
            session_receive(s);
        }
    }

    /* Wait for the remaining clients to hang up. */
    while (sessions != NULL) {
        lock();
        while (!any_finished_locked(sessions)) {
            wait_changed();
        }
        unlock();
        done += reap(&sessions);
    }
    socket_transport_destroy(listener);
    execution_engine_dec_ref(engine);
    lock();
    printf("served %lu connections, echoed %llu bytes\n", done, g_bytes_echoed);
    unlock();
    platform_deinit();
    return 0;
}
