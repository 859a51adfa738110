/* examples/c_echo_client.c: a TCP echo client written against asock's C API
 * only: a socket transport connects, an async socket sends each message and
 * receives its echo, and the client checks every byte.
 *
 *   c_echo_client host port [messages [size]]
 *
 * Sends `messages` messages (default 1000) of `size` bytes (default 256),
 * each waiting for its echo, and prints a summary. Exits 0 when every echo
 * matched. Works with examples/c_echo_server.c. */
#include <asock/c/async_socket.h>
#include <asock/c/execution_engine.h>
#include <asock/c/platform.h>
#include <asock/c/socket_transport.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A mutex and a condition variable: the callbacks run on the engine's threads. */
#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
typedef SRWLOCK MUTEX;
typedef CONDITION_VARIABLE COND;
#define MUTEX_INIT SRWLOCK_INIT
#define COND_INIT CONDITION_VARIABLE_INIT
#define mutex_lock(m) AcquireSRWLockExclusive(m)
#define mutex_unlock(m) ReleaseSRWLockExclusive(m)
#define cond_wait(c, m) SleepConditionVariableSRW(c, m, INFINITE, 0)
#define cond_broadcast(c) WakeAllConditionVariable(c)
#else
#include <pthread.h>
typedef pthread_mutex_t MUTEX;
typedef pthread_cond_t COND;
#define MUTEX_INIT PTHREAD_MUTEX_INITIALIZER
#define COND_INIT PTHREAD_COND_INITIALIZER
#define mutex_lock(m) pthread_mutex_lock(m)
#define mutex_unlock(m) pthread_mutex_unlock(m)
#define cond_wait(c, m) pthread_cond_wait(c, m)
#define cond_broadcast(c) pthread_cond_broadcast(c)
#endif

/* Where the callbacks (on the engine's threads) report to the main thread. */
typedef struct WAITER_TAG
{
    MUTEX lock;
    COND changed;
    int done;
    int result;
    uint32_t bytes;
} WAITER;

static void waiter_reset(WAITER* w)
{
    mutex_lock(&w->lock);
    w->done = 0;
    w->result = 0;
    w->bytes = 0;
    mutex_unlock(&w->lock);
}

static void waiter_signal(WAITER* w, int result, uint32_t bytes)
{
    mutex_lock(&w->lock);
    w->done = 1;
    w->result = result;
    w->bytes = bytes;
    cond_broadcast(&w->changed);
    mutex_unlock(&w->lock);
}

static void waiter_wait(WAITER* w)
{
    mutex_lock(&w->lock);
    while (!w->done) {
        cond_wait(&w->changed, &w->lock);
    }
    mutex_unlock(&w->lock);
}

static void on_open_complete(void* context, ASYNC_SOCKET_OPEN_RESULT result)
{
    (void)context;
    (void)result;
}

/* May run inside async_socket_send_async when the bytes went out at once. */
static void on_send_complete(void* context, ASYNC_SOCKET_SEND_RESULT result)
{
    waiter_signal(context, (int)result, 0);
}

/* Runs on an engine thread, never inside async_socket_receive_async. */
static void on_receive_complete(void* context, ASYNC_SOCKET_RECEIVE_RESULT result, uint32_t bytes_received)
{
    waiter_signal(context, (int)result, bytes_received);
}

static void fill_message(unsigned char* data, uint32_t size, unsigned long index)
{
    uint32_t i;
    for (i = 0; i < size; ++i) {
        data[i] = (unsigned char)((index * 31u + i * 7u) & 0xffu);
    }
}

int main(int argc, char** argv)
{
    const char* host = argc > 1 ? argv[1] : NULL;
    const unsigned long port = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
    const unsigned long messages = argc > 3 ? strtoul(argv[3], NULL, 10) : 1000;
    const unsigned long size_arg = argc > 4 ? strtoul(argv[4], NULL, 10) : 256;
    EXECUTION_ENGINE_PARAMETERS params = {1, 0};
    EXECUTION_ENGINE_HANDLE engine;
    SOCKET_TRANSPORT_HANDLE transport;
    ASYNC_SOCKET_HANDLE socket;
    unsigned char* out;
    unsigned char* in;
    WAITER send_waiter = {MUTEX_INIT, COND_INIT, 0, 0, 0};
    WAITER receive_waiter = {MUTEX_INIT, COND_INIT, 0, 0, 0};
    unsigned long sent = 0;
    unsigned long verified = 0;
    unsigned long long bytes = 0;
    int failed = 0;

    if (host == NULL || port == 0 || port > 65535 || size_arg == 0 || size_arg > (1u << 30)) {
        fprintf(stderr, "usage: c_echo_client host port [messages [size]]\n");
        return 2;
    }
    if (platform_init() != 0) {
        return 1;
    }
    out = malloc(size_arg);
    in = malloc(size_arg);
    transport = socket_transport_create_client();
    if (out == NULL || in == NULL || transport == NULL ||
        socket_transport_connect(transport, host, (uint16_t)port, 10000) != 0) {
        fprintf(stderr, "c_echo_client: cannot connect to %s:%lu\n", host, port);
        return 1;
    }
    /* One engine thread runs the callbacks. (On Linux a NULL engine would
     * use the process-wide default engine; Windows requires an engine.) */
    engine = execution_engine_create(&params);
    socket = engine != NULL ? async_socket_create(engine) : NULL;
    if (socket == NULL || async_socket_open_async(socket, transport, on_open_complete, NULL) != 0) {
        fprintf(stderr, "c_echo_client: cannot open the async socket\n");
        return 1;
    }
    /* The async socket owns the transport from here on. */

    while (sent < messages && !failed) {
        const uint32_t size = (uint32_t)size_arg;
        uint32_t received = 0;
        ASYNC_SOCKET_BUFFER b;
        fill_message(out, size, sent);
        b.buffer = out;
        b.length = size;
        waiter_reset(&send_waiter);
        if (async_socket_send_async(socket, &b, 1, on_send_complete, &send_waiter) != ASYNC_SOCKET_SEND_SYNC_OK) {
            fprintf(stderr, "c_echo_client: send %lu refused\n", sent);
            failed = 1;
            break;
        }
        /* the echo may arrive in several pieces */
        while (received < size) {
            b.buffer = in + received;
            b.length = size - received;
            waiter_reset(&receive_waiter);
            if (async_socket_receive_async(socket, &b, 1, on_receive_complete, &receive_waiter) != 0) {
                failed = 1;
                break;
            }
            waiter_wait(&receive_waiter);
            if (receive_waiter.result != ASYNC_SOCKET_RECEIVE_OK) {
                fprintf(stderr, "c_echo_client: receive failed: %s\n",
                        ASYNC_SOCKET_RECEIVE_RESULT_to_string((ASYNC_SOCKET_RECEIVE_RESULT)receive_waiter.result));
                failed = 1;
                break;
            }
            received += receive_waiter.bytes;
        }
        waiter_wait(&send_waiter);
        if (send_waiter.result != ASYNC_SOCKET_SEND_OK) {
            failed = 1;
        }
        ++sent;
        if (!failed) {
            if (memcmp(in, out, size) != 0) {
                fprintf(stderr, "c_echo_client: echo %lu differs\n", sent - 1);
                failed = 1;
            } else {
                ++verified;
                bytes += size;
            }
        }
    }

    async_socket_destroy(socket); /* closes, disconnects and destroys the transport */
    execution_engine_dec_ref(engine);
    printf("%lu messages sent, %lu echoes verified, %llu bytes: %s\n", sent, verified, bytes,
           failed ? "FAILED" : "ok");
    free(out);
    free(in);
    platform_deinit();
    return failed ? 1 : 0;
}
