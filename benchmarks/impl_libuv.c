/* benchmarks/impl_libuv.c: the same workloads with libuv, written as a
 * careful libuv user would: one uv_loop_t per side (the server's on a thread
 * of its own, the client's on the calling thread), reads into a buffer owned
 * by the connection (alloc_cb hands it out), small writes tried at once with
 * uv_try_write (uv_write only for what would block), bulk data with uv_write
 * and one request in flight.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ---- shared: writing a small message ----------------------------------------- */

typedef struct tail_write {
    uv_write_t req;
    char data[];
} tail_write;

static void on_tail_written(uv_write_t* req, int status)
{
    (void)status; /* a failure shows up on the next read */
    free(req);
}

/* Writes `n` bytes: at once when the socket takes them (the usual case), else
 * queues a copy of the rest. Returns 0 or a libuv error. */
static int write_message(uv_stream_t* stream, const char* data, size_t n)
{
    uv_buf_t b = uv_buf_init((char*)data, (unsigned)n);
    const int r = uv_try_write(stream, &b, 1);
    if (r == (int)n) {
        return 0;
    }
    if (r < 0 && r != UV_EAGAIN) {
        return r;
    }
    const size_t done = r > 0 ? (size_t)r : 0;
    tail_write* w = malloc(sizeof(tail_write) + n - done);
    if (w == NULL) {
        return UV_ENOMEM;
    }
    memcpy(w->data, data + done, n - done);
    uv_buf_t rest = uv_buf_init(w->data, (unsigned)(n - done));
    return uv_write(&w->req, stream, &rest, 1, on_tail_written);
}

/* ---- server --------------------------------------------------------------------- */

typedef struct server {
    const bench_config* cfg;
    bench_run* run;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    uint16_t port;
    uint64_t received;
    int live; /* read by the main thread (atomics) */
} server;

typedef struct server_conn {
    uv_tcp_t tcp;
    server* s;
    uint32_t cap;
    char buf[];
} server_conn;

static void server_conn_closed(uv_handle_t* h)
{
    server_conn* c = (server_conn*)h;
    __atomic_fetch_sub(&c->s->live, 1, __ATOMIC_RELEASE);
    free(c);
}

static void server_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf)
{
    (void)suggested;
    server_conn* c = (server_conn*)h;
    *buf = uv_buf_init(c->buf, c->cap);
}

static void server_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf)
{
    (void)buf;
    server_conn* c = (server_conn*)stream;
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        uv_close((uv_handle_t*)stream, server_conn_closed); /* the client hung up */
        return;
    }
    server* s = c->s;
    if (s->cfg->workload == BENCH_BULK) {
        s->received += (uint64_t)nread;
        bench_progress(s->run, (uint64_t)nread);
        if (s->received >= s->cfg->total) {
            uv_close((uv_handle_t*)stream, server_conn_closed); /* tells the client everything arrived */
        }
        return;
    }
    if (write_message(stream, c->buf, (size_t)nread) != 0) {
        uv_close((uv_handle_t*)stream, server_conn_closed);
    }
}

static void server_connection(uv_stream_t* listener, int status)
{
    server* s = listener->data;
    if (status < 0) {
        bench_fail(s->run, "libuv server: listen", -status);
        return;
    }
    const uint32_t cap = s->cfg->workload == BENCH_BULK ? BENCH_SINK_BUFFER : BENCH_ECHO_BUFFER;
    server_conn* c = malloc(sizeof(server_conn) + cap);
    if (c == NULL) {
        bench_fail(s->run, "libuv server: out of memory", 0);
        return;
    }
    c->s = s;
    c->cap = cap;
    uv_tcp_init(&s->loop, &c->tcp);
    __atomic_fetch_add(&s->live, 1, __ATOMIC_ACQ_REL);
    if (uv_accept(listener, (uv_stream_t*)&c->tcp) != 0) {
        uv_close((uv_handle_t*)&c->tcp, server_conn_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t*)&c->tcp, server_alloc, server_read);
}

static void server_stop(uv_async_t* a)
{
    server* s = a->data;
    uv_close((uv_handle_t*)&s->listener, NULL);
    uv_close((uv_handle_t*)&s->stop, NULL);
}

static void* server_main(void* arg)
{
    server* s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- client (on the calling thread) -------------------------------------------- */

typedef struct client client;

typedef struct client_conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write; /* bulk */
    client* c;
    uint32_t have;
} client_conn;

struct client {
    const bench_config* cfg;
    bench_run* run;
    uv_loop_t loop;
    struct sockaddr_in server;
    client_conn* conns;
    uint32_t connected;
    uint64_t issued;
    uint64_t churned;
    uint64_t bulk_left;
    char* chunk;
    char message[BENCH_MAX_MESSAGE];
    char reply[BENCH_MAX_MESSAGE];
    int rc;
};

static void client_fail(client* c, const char* what, int uv_error)
{
    bench_fail(c->run, what, uv_error < 0 ? -uv_error : 0);
    c->rc = -1;
}

static void client_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf)
{
    (void)suggested;
    client_conn* k = (client_conn*)h;
    client* c = k->c;
    *buf = uv_buf_init(c->reply + k->have, BENCH_MAX_MESSAGE - k->have);
}

static void close_client_conn(client_conn* k, uv_close_cb cb)
{
    if (!uv_is_closing((uv_handle_t*)&k->tcp)) {
        uv_close((uv_handle_t*)&k->tcp, cb);
    }
}

static void close_all(client* c)
{
    for (uint32_t i = 0; i < c->cfg->connections; ++i) {
        close_client_conn(&c->conns[i], NULL);
    }
}

/* Ping-pong. */

static void send_next(client* c, client_conn* k)
{
    ++c->issued;
    const int r = write_message((uv_stream_t*)&k->tcp, c->message, c->cfg->message_size);
    if (r != 0) {
        client_fail(c, "libuv client: send", r);
        close_all(c);
    }
}

static void pingpong_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf)
{
    (void)buf;
    client_conn* k = (client_conn*)stream;
    client* c = k->c;
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        client_fail(c, "libuv client: receive", (int)nread);
        close_all(c);
        return;
    }
    k->have += (uint32_t)nread;
    if (k->have < c->cfg->message_size) {
        return;
    }
    k->have = 0;
    bench_progress(c->run, 1);
    if (c->issued < c->cfg->total && c->rc == 0) {
        send_next(c, k);
    } else {
        close_client_conn(k, NULL);
    }
}

static void pingpong_connected(uv_connect_t* req, int status)
{
    client_conn* k = req->data;
    client* c = k->c;
    if (status != 0) {
        client_fail(c, "libuv client: connect", status);
        close_all(c);
        return;
    }
    if (++c->connected < c->cfg->connections) {
        return;
    }
    /* All connected: one message in flight on each. */
    for (uint32_t i = 0; i < c->cfg->connections; ++i) {
        client_conn* q = &c->conns[i];
        uv_read_start((uv_stream_t*)&q->tcp, client_alloc, pingpong_read);
        if (c->issued < c->cfg->total) {
            send_next(c, q);
        } else {
            close_client_conn(q, NULL);
        }
    }
}

/* Bulk. */

static void bulk_drain_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf)
{
    (void)suggested;
    client_conn* k = (client_conn*)h;
    *buf = uv_buf_init(k->c->reply, BENCH_MAX_MESSAGE);
}

static void bulk_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf)
{
    (void)buf;
    if (nread < 0) { /* the server closed: it has everything */
        close_client_conn((client_conn*)stream, NULL);
    }
}

static void bulk_send(client* c, client_conn* k);

static void bulk_written(uv_write_t* req, int status)
{
    client_conn* k = req->data;
    if (status != 0) {
        client_fail(k->c, "libuv client: send", status);
        close_client_conn(k, NULL);
        return;
    }
    bulk_send(k->c, k);
}

static void bulk_send(client* c, client_conn* k)
{
    if (c->bulk_left == 0) {
        uv_read_start((uv_stream_t*)&k->tcp, bulk_drain_alloc, bulk_read);
        return;
    }
    const uint32_t n = c->bulk_left < c->cfg->chunk_size ? (uint32_t)c->bulk_left : c->cfg->chunk_size;
    c->bulk_left -= n;
    uv_buf_t b = uv_buf_init(c->chunk, n);
    k->write.data = k;
    const int r = uv_write(&k->write, (uv_stream_t*)&k->tcp, &b, 1, bulk_written);
    if (r != 0) {
        client_fail(c, "libuv client: send", r);
        close_client_conn(k, NULL);
    }
}

static void bulk_connected(uv_connect_t* req, int status)
{
    client_conn* k = req->data;
    if (status != 0) {
        client_fail(k->c, "libuv client: connect", status);
        close_client_conn(k, NULL);
        return;
    }
    bulk_send(k->c, k);
}

/* Churn: one connection at a time, its handle reused once closed. */

static void churn_start(client* c);

static void churn_closed(uv_handle_t* h)
{
    client_conn* k = (client_conn*)h;
    client* c = k->c;
    if (c->rc != 0) {
        return;
    }
    bench_progress(c->run, 1);
    if (++c->churned < c->cfg->total) {
        churn_start(c);
    }
}

static void churn_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf)
{
    (void)buf;
    client_conn* k = (client_conn*)stream;
    client* c = k->c;
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        client_fail(c, "libuv client: receive", (int)nread);
        close_client_conn(k, NULL);
        return;
    }
    k->have += (uint32_t)nread;
    if (k->have == c->cfg->message_size) {
        close_client_conn(k, churn_closed);
    }
}

static void churn_connected(uv_connect_t* req, int status)
{
    client_conn* k = req->data;
    client* c = k->c;
    if (status != 0) {
        client_fail(c, "libuv client: connect", status);
        close_client_conn(k, NULL);
        return;
    }
    uv_read_start((uv_stream_t*)&k->tcp, client_alloc, churn_read);
    const int r = write_message((uv_stream_t*)&k->tcp, c->message, c->cfg->message_size);
    if (r != 0) {
        client_fail(c, "libuv client: send", r);
        close_client_conn(k, NULL);
    }
}

static int start_connect(client* c, client_conn* k, uv_connect_cb cb)
{
    k->c = c;
    k->have = 0;
    uv_tcp_init(&c->loop, &k->tcp);
    uv_tcp_nodelay(&k->tcp, 1);
    k->connect.data = k;
    const int r = uv_tcp_connect(&k->connect, &k->tcp, (const struct sockaddr*)&c->server, cb);
    if (r != 0) {
        client_fail(c, "libuv client: connect", r);
        uv_close((uv_handle_t*)&k->tcp, NULL);
    }
    return r;
}

static void churn_start(client* c) { start_connect(c, &c->conns[0], churn_connected); }

static int run_libuv(const bench_config* cfg, bench_run* run)
{
    server* s = calloc(1, sizeof *s);
    client* c = calloc(1, sizeof *c);
    if (s == NULL || c == NULL) {
        free(s);
        free(c);
        bench_fail(run, "libuv: out of memory", 0);
        return -1;
    }
    s->cfg = cfg;
    s->run = run;
    uv_loop_init(&s->loop);
    uv_tcp_init(&s->loop, &s->listener);
    s->listener.data = s;
    struct sockaddr_in any_port;
    uv_ip4_addr("127.0.0.1", 0, &any_port);
    int r = uv_tcp_bind(&s->listener, (const struct sockaddr*)&any_port, 0);
    if (r == 0) {
        r = uv_listen((uv_stream_t*)&s->listener, SOMAXCONN, server_connection);
    }
    struct sockaddr_in bound;
    int len = sizeof bound;
    if (r == 0) {
        r = uv_tcp_getsockname(&s->listener, (struct sockaddr*)&bound, &len);
    }
    uv_async_init(&s->loop, &s->stop, server_stop);
    s->stop.data = s;
    pthread_t thread;
    if (r != 0 || pthread_create(&thread, NULL, server_main, s) != 0) {
        bench_fail(run, "libuv: listen", r < 0 ? -r : 0);
        uv_close((uv_handle_t*)&s->listener, NULL);
        uv_close((uv_handle_t*)&s->stop, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
        free(s);
        free(c);
        return -1;
    }

    c->cfg = cfg;
    c->run = run;
    memset(c->message, 'a', sizeof c->message);
    uv_ip4_addr("127.0.0.1", ntohs(bound.sin_port), &c->server);
    uv_loop_init(&c->loop);
    c->conns = calloc(cfg->connections, sizeof(client_conn));
    if (c->conns == NULL) {
        client_fail(c, "libuv client: out of memory", 0);
    } else {
        switch (cfg->workload) {
        case BENCH_PINGPONG:
            for (uint32_t i = 0; i < cfg->connections; ++i) {
                if (start_connect(c, &c->conns[i], pingpong_connected) != 0) {
                    break;
                }
            }
            break;
        case BENCH_BULK:
            c->chunk = malloc(cfg->chunk_size);
            if (c->chunk == NULL) {
                client_fail(c, "libuv client: out of memory", 0);
                break;
            }
            memset(c->chunk, 'b', cfg->chunk_size);
            c->bulk_left = cfg->total;
            start_connect(c, &c->conns[0], bulk_connected);
            break;
        case BENCH_CHURN:
            churn_start(c);
            break;
        case BENCH_FAIRNESS: /* not offered: the driver never asks */
            break;
        }
        uv_run(&c->loop, UV_RUN_DEFAULT); /* until every connection is closed */
    }
    uv_loop_close(&c->loop);

    for (int i = 0; i < 5000 && __atomic_load_n(&s->live, __ATOMIC_ACQUIRE) != 0 && !bench_failed(run); ++i) {
        bench_nap();
    }
    uv_async_send(&s->stop);
    pthread_join(thread, NULL);
    uv_loop_close(&s->loop);
    const int rc = c->rc;
    free(c->chunk);
    free(c->conns);
    free(c);
    free(s);
    return rc;
}

const bench_impl bench_impl_libuv = {"libuv", "libuv 1.44", run_libuv, NULL};
