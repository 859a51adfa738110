/* benchmarks/impl_asock_c.c: asock through its C API shim (asock::c), as a C
 * caller of the spec's async_socket would write it: socket transports for
 * connect / listen / accept, async sockets for the I/O, completion callbacks.
 *
 * The C API's engines own their threads (a C caller cannot run the loop), so
 * here both loops run on engine threads: the server's engine has one thread,
 * the client's engine has one thread, and the calling thread only starts the
 * client and waits for it. The busy threads are the same two as for the other
 * implementations: one server loop, one client loop.
 *
 * asock-c-default is the same program with both engines created by
 * execution_engine_create(NULL) (DEFAULT_MIN_THREAD_COUNT threads each), as a
 * legacy C program leaves them: it measures what an engine's extra threads
 * cost (or bring) a connection.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <asock/c/async_socket.h>
#include <asock/c/execution_engine.h>
#include <asock/c/socket_transport.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_TIMEOUT_MS 5000u

static const EXECUTION_ENGINE_PARAMETERS one_thread = {1, 1};

static void on_open(void* context, ASYNC_SOCKET_OPEN_RESULT result)
{
    (void)context;
    (void)result;
}

/* ---- server ----------------------------------------------------------------------- */

typedef struct server {
    const bench_config* cfg;
    bench_run* run;
    EXECUTION_ENGINE_HANDLE engine;
    SOCKET_TRANSPORT_HANDLE listen_transport;
    ASYNC_SOCKET_HANDLE listener;
    uint16_t port;
    uint64_t received;
    int listener_open;   /* the listener socket owns listen_transport */
    int live;            /* sessions not yet destroyed (atomics) */
    int listener_closed; /* the pending notify completed after close (atomics) */
} server;

typedef struct session {
    server* s;
    ASYNC_SOCKET_HANDLE socket;
    ASYNC_SOCKET_BUFFER in;
    char buf[];
} session;

static void session_receive(session* k);

static void session_end(session* k)
{
    server* s = k->s;
    async_socket_destroy(k->socket); /* from its own callback: allowed */
    free(k);
    __atomic_fetch_sub(&s->live, 1, __ATOMIC_RELEASE);
}

static void session_sent(void* context, ASYNC_SOCKET_SEND_RESULT result)
{
    session* k = context;
    if (result != ASYNC_SOCKET_SEND_OK) {
        session_end(k);
        return;
    }
    session_receive(k);
}

static void session_received(void* context, ASYNC_SOCKET_RECEIVE_RESULT result, uint32_t bytes)
{
    session* k = context;
    server* s = k->s;
    if (result != ASYNC_SOCKET_RECEIVE_OK) {
        session_end(k); /* the client hung up */
        return;
    }
    if (s->cfg->workload == BENCH_BULK) {
        s->received += bytes;
        bench_progress(s->run, bytes);
        if (s->received >= s->cfg->total) {
            session_end(k); /* tells the client everything arrived */
            return;
        }
        session_receive(k);
        return;
    }
    const ASYNC_SOCKET_BUFFER out = {k->buf, bytes};
    if (async_socket_send_async(k->socket, &out, 1, session_sent, k) != ASYNC_SOCKET_SEND_SYNC_OK) {
        session_end(k);
    }
}

static void session_receive(session* k)
{
    if (async_socket_receive_async(k->socket, &k->in, 1, session_received, k) != 0) {
        session_end(k);
    }
}

static void listener_ready(void* context, ASYNC_SOCKET_NOTIFY_IO_RESULT result);

static void arm_listener(server* s)
{
    if (async_socket_notify_io_async(s->listener, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, listener_ready, s) != 0) {
        __atomic_store_n(&s->listener_closed, 1, __ATOMIC_RELEASE);
    }
}

static void listener_ready(void* context, ASYNC_SOCKET_NOTIFY_IO_RESULT result)
{
    server* s = context;
    if (result != ASYNC_SOCKET_NOTIFY_IO_RESULT_IN) {
        __atomic_store_n(&s->listener_closed, 1, __ATOMIC_RELEASE); /* closed */
        return;
    }
    const uint32_t cap = s->cfg->workload == BENCH_BULK ? BENCH_SINK_BUFFER : BENCH_ECHO_BUFFER;
    for (;;) {
        SOCKET_TRANSPORT_HANDLE accepted = NULL;
        if (socket_transport_accept(s->listen_transport, &accepted, 0) != SOCKET_ACCEPT_OK) {
            break;
        }
        session* k = malloc(sizeof(session) + cap);
        ASYNC_SOCKET_HANDLE socket = async_socket_create(s->engine);
        if (k == NULL || socket == NULL) {
            bench_fail(s->run, "asock C server: out of memory", 0);
            free(k);
            async_socket_destroy(socket);
            socket_transport_destroy(accepted);
            break;
        }
        if (async_socket_open_async(socket, accepted, on_open, NULL) != 0) {
            bench_fail(s->run, "asock C server: open", 0);
            free(k);
            async_socket_destroy(socket);
            socket_transport_destroy(accepted);
            break;
        }
        k->s = s;
        k->socket = socket;
        k->in.buffer = k->buf;
        k->in.length = cap;
        __atomic_fetch_add(&s->live, 1, __ATOMIC_ACQ_REL);
        session_receive(k);
    }
    arm_listener(s);
}

/* ---- client (on the client engine's thread) --------------------------------------- */

typedef struct client client;

typedef struct client_conn {
    client* c;
    ASYNC_SOCKET_HANDLE socket;
    uint32_t have;
    ASYNC_SOCKET_BUFFER in;
} client_conn;

struct client {
    const bench_config* cfg;
    bench_run* run;
    EXECUTION_ENGINE_HANDLE engine;
    uint16_t port;
    client_conn* conns;
    uint64_t issued;
    uint64_t churned;
    uint64_t bulk_left;
    uint32_t active;
    char* chunk;
    char message[BENCH_MAX_MESSAGE];
    char reply[BENCH_MAX_MESSAGE];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int rc;
    /* The engine has several threads, so callbacks of different connections
     * run at once (asock-c-default): the driver's progress count is then
     * taken under progress_mu. `issued` and `active` are atomic in any case. */
    int threaded;
    pthread_mutex_t progress_mu;
};

static void client_progress(client* c)
{
    if (c->threaded) {
        pthread_mutex_lock(&c->progress_mu);
        bench_progress(c->run, 1);
        pthread_mutex_unlock(&c->progress_mu);
        return;
    }
    bench_progress(c->run, 1);
}

/* Claims the next round trip; 0 once every one was issued. */
static int client_claim(client* c)
{
    return __atomic_fetch_add(&c->issued, 1, __ATOMIC_RELAXED) < c->cfg->total;
}

/* A connection has nothing more to do; 1 for the last one. */
static int client_retire(client* c)
{
    return __atomic_sub_fetch(&c->active, 1, __ATOMIC_ACQ_REL) == 0;
}

static void client_finish(client* c, int rc)
{
    pthread_mutex_lock(&c->mu);
    if (rc != 0) {
        c->rc = rc;
    }
    c->done = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void client_fail(client* c, const char* what)
{
    bench_fail(c->run, what, 0);
    client_finish(c, -1);
}

/* A connected, OPEN async socket on the client engine, or NULL. */
static ASYNC_SOCKET_HANDLE client_connect(client* c)
{
    SOCKET_TRANSPORT_HANDLE t = socket_transport_create_client();
    if (t == NULL) {
        return NULL;
    }
    if (socket_transport_connect(t, "127.0.0.1", c->port, CONNECT_TIMEOUT_MS) != 0) {
        socket_transport_destroy(t);
        return NULL;
    }
    ASYNC_SOCKET_HANDLE s = async_socket_create(c->engine);
    if (s == NULL || async_socket_open_async(s, t, on_open, NULL) != 0) {
        async_socket_destroy(s);
        socket_transport_destroy(t);
        return NULL;
    }
    return s;
}

/* Ping-pong. */

static void pingpong_send(client_conn* k);

static void pingpong_received(void* context, ASYNC_SOCKET_RECEIVE_RESULT result, uint32_t bytes)
{
    client_conn* k = context;
    client* c = k->c;
    if (result != ASYNC_SOCKET_RECEIVE_OK) {
        client_fail(c, "asock C client: receive");
        return;
    }
    k->have += bytes;
    if (k->have < c->cfg->message_size) {
        k->in.buffer = c->reply + k->have;
        k->in.length = c->cfg->message_size - k->have;
        if (async_socket_receive_async(k->socket, &k->in, 1, pingpong_received, k) != 0) {
            client_fail(c, "asock C client: receive");
        }
        return;
    }
    client_progress(c);
    if (client_claim(c)) {
        pingpong_send(k);
    } else if (client_retire(c)) {
        client_finish(c, 0);
    }
}

static void pingpong_sent(void* context, ASYNC_SOCKET_SEND_RESULT result)
{
    client_conn* k = context;
    client* c = k->c;
    if (result != ASYNC_SOCKET_SEND_OK) {
        client_fail(c, "asock C client: send");
        return;
    }
    k->have = 0;
    k->in.buffer = c->reply;
    k->in.length = c->cfg->message_size;
    if (async_socket_receive_async(k->socket, &k->in, 1, pingpong_received, k) != 0) {
        client_fail(c, "asock C client: receive");
    }
}

static void pingpong_send(client_conn* k)
{
    client* c = k->c;
    const ASYNC_SOCKET_BUFFER out = {c->message, c->cfg->message_size};
    if (async_socket_send_async(k->socket, &out, 1, pingpong_sent, k) != ASYNC_SOCKET_SEND_SYNC_OK) {
        client_fail(c, "asock C client: send");
    }
}

/* Started by a writability notification, so that it runs on the engine thread. */
static void pingpong_start(void* context, ASYNC_SOCKET_NOTIFY_IO_RESULT result)
{
    client_conn* k = context;
    client* c = k->c;
    if (result != ASYNC_SOCKET_NOTIFY_IO_RESULT_OUT) {
        client_fail(c, "asock C client: not writable");
        return;
    }
    if (client_claim(c)) {
        pingpong_send(k);
    } else if (client_retire(c)) {
        client_finish(c, 0);
    }
}

/* Bulk. */

static void bulk_send(client_conn* k);

static void bulk_drained(void* context, ASYNC_SOCKET_RECEIVE_RESULT result, uint32_t bytes)
{
    (void)bytes;
    client_conn* k = context;
    if (result == ASYNC_SOCKET_RECEIVE_OK) { /* not expected: keep waiting for the close */
        if (async_socket_receive_async(k->socket, &k->in, 1, bulk_drained, k) != 0) {
            client_finish(k->c, 0);
        }
        return;
    }
    client_finish(k->c, 0); /* the server closed: it has everything */
}

static void bulk_sent(void* context, ASYNC_SOCKET_SEND_RESULT result)
{
    client_conn* k = context;
    if (result != ASYNC_SOCKET_SEND_OK) {
        client_fail(k->c, "asock C client: send");
        return;
    }
    bulk_send(k);
}

static void bulk_send(client_conn* k)
{
    client* c = k->c;
    if (c->bulk_left == 0) {
        k->in.buffer = c->reply;
        k->in.length = sizeof c->reply;
        if (async_socket_receive_async(k->socket, &k->in, 1, bulk_drained, k) != 0) {
            client_fail(c, "asock C client: receive");
        }
        return;
    }
    const uint32_t n = c->bulk_left < c->cfg->chunk_size ? (uint32_t)c->bulk_left : c->cfg->chunk_size;
    c->bulk_left -= n;
    const ASYNC_SOCKET_BUFFER out = {c->chunk, n};
    if (async_socket_send_async(k->socket, &out, 1, bulk_sent, k) != ASYNC_SOCKET_SEND_SYNC_OK) {
        client_fail(c, "asock C client: send");
    }
}

static void bulk_start(void* context, ASYNC_SOCKET_NOTIFY_IO_RESULT result)
{
    client_conn* k = context;
    if (result != ASYNC_SOCKET_NOTIFY_IO_RESULT_OUT) {
        client_fail(k->c, "asock C client: not writable");
        return;
    }
    bulk_send(k);
}

/* Churn: connect, one exchange, close and destroy, next; all on the engine thread. */

static void churn_next(client* c);

static void churn_received(void* context, ASYNC_SOCKET_RECEIVE_RESULT result, uint32_t bytes)
{
    client_conn* k = context;
    client* c = k->c;
    if (result != ASYNC_SOCKET_RECEIVE_OK) {
        client_fail(c, "asock C client: receive");
        return;
    }
    k->have += bytes;
    if (k->have < c->cfg->message_size) {
        k->in.buffer = c->reply + k->have;
        k->in.length = c->cfg->message_size - k->have;
        if (async_socket_receive_async(k->socket, &k->in, 1, churn_received, k) != 0) {
            client_fail(c, "asock C client: receive");
        }
        return;
    }
    async_socket_close(k->socket);
    async_socket_destroy(k->socket); /* from its own callback: allowed */
    k->socket = NULL;
    bench_progress(c->run, 1);
    if (++c->churned < c->cfg->total) {
        churn_next(c);
    } else {
        client_finish(c, 0);
    }
}

static void churn_sent(void* context, ASYNC_SOCKET_SEND_RESULT result)
{
    client_conn* k = context;
    client* c = k->c;
    if (result != ASYNC_SOCKET_SEND_OK) {
        client_fail(c, "asock C client: send");
        return;
    }
    k->in.buffer = c->reply;
    k->in.length = c->cfg->message_size;
    if (async_socket_receive_async(k->socket, &k->in, 1, churn_received, k) != 0) {
        client_fail(c, "asock C client: receive");
    }
}

static void churn_next(client* c)
{
    client_conn* k = &c->conns[0];
    k->have = 0;
    k->socket = client_connect(c);
    if (k->socket == NULL) {
        client_fail(c, "asock C client: connect");
        return;
    }
    const ASYNC_SOCKET_BUFFER out = {c->message, c->cfg->message_size};
    if (async_socket_send_async(k->socket, &out, 1, churn_sent, k) != ASYNC_SOCKET_SEND_SYNC_OK) {
        client_fail(c, "asock C client: send");
    }
}

static void churn_start(void* context, ASYNC_SOCKET_NOTIFY_IO_RESULT result)
{
    client_conn* k = context;
    client* c = k->c;
    async_socket_destroy(k->socket); /* the helper socket that brought us onto the engine thread */
    k->socket = NULL;
    if (result != ASYNC_SOCKET_NOTIFY_IO_RESULT_OUT) {
        client_fail(c, "asock C client: not writable");
        return;
    }
    churn_next(c);
}

/* ---- run -------------------------------------------------------------------------- */

static int start_server(server* s, const EXECUTION_ENGINE_PARAMETERS* engine_params)
{
    s->engine = execution_engine_create(engine_params);
    s->listen_transport = socket_transport_create_server();
    if (s->engine == NULL || s->listen_transport == NULL ||
        socket_transport_listen_on(s->listen_transport, "127.0.0.1", 0) != 0 ||
        socket_transport_get_local_port(s->listen_transport, &s->port) != 0) {
        bench_fail(s->run, "asock C: listen", 0);
        return -1;
    }
    s->listener = async_socket_create(s->engine);
    if (s->listener == NULL || async_socket_open_async(s->listener, s->listen_transport, on_open, NULL) != 0) {
        bench_fail(s->run, "asock C: opening the listener", 0);
        return -1;
    }
    s->listener_open = 1;
    arm_listener(s);
    return 0;
}

/* engine_params: what both engines are created with (NULL: the C API's
 * defaults, DEFAULT_MIN_THREAD_COUNT threads each). */
static int run_with(const bench_config* cfg, bench_run* run, const EXECUTION_ENGINE_PARAMETERS* engine_params)
{
    server* s = calloc(1, sizeof *s);
    client* c = calloc(1, sizeof *c);
    if (s == NULL || c == NULL) {
        free(s);
        free(c);
        bench_fail(run, "asock C: out of memory", 0);
        return -1;
    }
    s->cfg = cfg;
    s->run = run;
    int rc = -1;
    if (start_server(s, engine_params) != 0) {
        goto out;
    }

    c->cfg = cfg;
    c->run = run;
    c->port = s->port;
    memset(c->message, 'a', sizeof c->message);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->progress_mu, NULL);
    c->threaded = engine_params == NULL || engine_params->min_thread_count > 1;
    pthread_cond_init(&c->cv, NULL);
    c->engine = execution_engine_create(engine_params);
    c->conns = calloc(cfg->connections, sizeof(client_conn));
    if (c->engine == NULL || c->conns == NULL) {
        bench_fail(run, "asock C: client set-up", 0);
        goto client_out;
    }
    /* Set-up on this thread: connect and open every socket, then hand over to the
     * engine thread through a writability notification on each. */
    for (uint32_t i = 0; i < cfg->connections; ++i) {
        c->conns[i].c = c;
        c->conns[i].socket = client_connect(c);
        if (c->conns[i].socket == NULL) {
            bench_fail(run, "asock C client: connect", 0);
            goto client_out;
        }
    }
    if (cfg->workload == BENCH_BULK) {
        c->chunk = malloc(cfg->chunk_size);
        if (c->chunk == NULL) {
            bench_fail(run, "asock C: out of memory", 0);
            goto client_out;
        }
        memset(c->chunk, 'b', cfg->chunk_size);
        c->bulk_left = cfg->total;
    }
    c->active = cfg->connections;
    ON_ASYNC_SOCKET_NOTIFY_IO_COMPLETE start =
        cfg->workload == BENCH_PINGPONG ? pingpong_start : cfg->workload == BENCH_BULK ? bulk_start : churn_start;
    for (uint32_t i = 0; i < cfg->connections; ++i) {
        if (async_socket_notify_io_async(c->conns[i].socket, ASYNC_SOCKET_NOTIFY_IO_TYPE_OUT, start, &c->conns[i]) != 0) {
            bench_fail(run, "asock C client: notify", 0);
            goto client_out; /* (only the first can fail before any callback runs) */
        }
    }
    pthread_mutex_lock(&c->mu);
    while (!c->done) {
        pthread_cond_wait(&c->cv, &c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    rc = c->rc;

client_out:
    if (c->conns != NULL) {
        for (uint32_t i = 0; i < cfg->connections; ++i) {
            async_socket_destroy(c->conns[i].socket); /* closes */
        }
    }
    execution_engine_dec_ref(c->engine);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->progress_mu);
    pthread_cond_destroy(&c->cv);

    for (int i = 0; i < 5000 && __atomic_load_n(&s->live, __ATOMIC_ACQUIRE) != 0 && !bench_failed(run); ++i) {
        bench_nap();
    }
    async_socket_close(s->listener);
    for (int i = 0; i < 5000 && !__atomic_load_n(&s->listener_closed, __ATOMIC_ACQUIRE); ++i) {
        bench_nap();
    }
out:
    async_socket_destroy(s->listener);
    if (!s->listener_open) {
        socket_transport_destroy(s->listen_transport);
    }
    execution_engine_dec_ref(s->engine);
    free(c->chunk);
    free(c->conns);
    free(c);
    free(s);
    return rc;
}

static int run_asock_c(const bench_config* cfg, bench_run* run)
{
    return run_with(cfg, run, &one_thread);
}

/* The same program as a legacy C caller writes it: execution_engine_create(NULL)
 * for both engines, so each runs DEFAULT_MIN_THREAD_COUNT threads. */
static int run_asock_c_default(const bench_config* cfg, bench_run* run)
{
    return run_with(cfg, run, NULL);
}

const bench_impl bench_impl_asock_c = {"asock-c", "asock via C shim", run_asock_c, NULL};
const bench_impl bench_impl_asock_c_default = {"asock-c-default", "asock via C shim, default engines",
                                               run_asock_c_default, NULL};
