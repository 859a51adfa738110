/* benchmarks/impl_epoll.c: the reference point. A hand-written C event loop
 * per side: non-blocking sockets, one epoll instance, one epoll_wait loop, no
 * library. It does what a careful C programmer would do for these workloads
 * and nothing more: level-triggered interest set once per connection, reads
 * on readiness (again only while they fill the buffer), writes tried at once
 * (EPOLLOUT is asked for only after a write would block), per-connection
 * state in one malloc'd block.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 64

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* ---- server ----------------------------------------------------------------- */

typedef struct server_conn {
    int fd;
    uint32_t pending; /* echo bytes not yet written back */
    uint32_t offset;
    char buf[];
} server_conn;

typedef struct server {
    const bench_config* cfg;
    bench_run* run;
    int epfd;
    int listen_fd;
    int stop_fd;
    uint16_t port;
    uint64_t received; /* sink: bytes so far */
    volatile int live; /* connections open (read by the main thread) */
} server;

static char listen_tag;
static char stop_tag;

static void server_close(server* s, server_conn* c)
{
    close(c->fd); /* also leaves the epoll set */
    free(c);
    __atomic_fetch_sub(&s->live, 1, __ATOMIC_RELEASE);
}

static void server_event(server* s, server_conn* c, uint32_t events);

static void server_accept(server* s)
{
    const int sink = s->cfg->workload == BENCH_BULK;
    for (;;) {
        const int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                bench_fail(s->run, "epoll server: accept", errno);
            }
            return;
        }
        set_nodelay(fd);
        server_conn* c = malloc(sizeof(server_conn) + (sink ? BENCH_SINK_BUFFER : BENCH_ECHO_BUFFER));
        if (c == NULL) {
            close(fd);
            bench_fail(s->run, "epoll server: out of memory", 0);
            return;
        }
        c->fd = fd;
        c->pending = c->offset = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            bench_fail(s->run, "epoll server: epoll_ctl", errno);
            close(fd);
            free(c);
            return;
        }
        __atomic_fetch_add(&s->live, 1, __ATOMIC_RELEASE);
        server_event(s, c, EPOLLIN); /* the client speaks first: its data may be here already */
    }
}

/* Writes c's pending echo bytes; returns -1 when the connection is dead. */
static int server_flush(server* s, server_conn* c)
{
    while (c->pending > 0) {
        const ssize_t n = send(c->fd, c->buf + c->offset, c->pending, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c}; /* stop reading until flushed */
                epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
                return 0;
            }
            return -1;
        }
        c->offset += (uint32_t)n;
        c->pending -= (uint32_t)n;
    }
    return 0;
}

static void server_event(server* s, server_conn* c, uint32_t events)
{
    if (c->pending > 0) { /* waiting for EPOLLOUT */
        if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) {
            return;
        }
        if (server_flush(s, c) != 0) {
            server_close(s, c);
            return;
        }
        if (c->pending == 0) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        }
        return;
    }
    const int sink = s->cfg->workload == BENCH_BULK;
    const uint32_t cap = sink ? BENCH_SINK_BUFFER : BENCH_ECHO_BUFFER;
    const ssize_t n = recv(c->fd, c->buf, cap, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        server_close(s, c); /* the client hung up */
        return;
    }
    if (sink) {
        ssize_t got = n;
        for (;;) {
            s->received += (uint64_t)got;
            bench_progress(s->run, (uint64_t)got);
            if (s->received >= s->cfg->total) {
                server_close(s, c); /* tells the client everything arrived */
                return;
            }
            if ((uint32_t)got < cap) {
                return; /* a short read drained the socket: back to epoll_wait */
            }
            got = recv(c->fd, c->buf, cap, 0); /* the buffer was filled: more may be waiting */
            if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
                return;
            }
            if (got <= 0) {
                server_close(s, c);
                return;
            }
        }
    }
    c->pending = (uint32_t)n;
    c->offset = 0;
    if (server_flush(s, c) != 0) {
        server_close(s, c);
    }
}

static void* server_main(void* arg)
{
    server* s = arg;
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        const int n = epoll_wait(s->epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            bench_fail(s->run, "epoll server: epoll_wait", errno);
            return NULL;
        }
        for (int i = 0; i < n; ++i) {
            void* p = events[i].data.ptr;
            if (p == &stop_tag) {
                return NULL;
            }
            if (p == &listen_tag) {
                server_accept(s);
            } else {
                server_event(s, p, events[i].events);
            }
        }
    }
}

static int server_start(server* s)
{
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->epfd < 0 || s->stop_fd < 0 || s->listen_fd < 0) {
        bench_fail(s->run, "epoll server: set-up", errno);
        return -1;
    }
    int one = 1;
    setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = loopback(0);
    socklen_t len = sizeof a;
    if (bind(s->listen_fd, (struct sockaddr*)&a, sizeof a) != 0 || listen(s->listen_fd, SOMAXCONN) != 0 ||
        getsockname(s->listen_fd, (struct sockaddr*)&a, &len) != 0) {
        bench_fail(s->run, "epoll server: listen", errno);
        return -1;
    }
    s->port = ntohs(a.sin_port);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_tag};
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &stop_tag};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &ev) != 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->stop_fd, &sev) != 0) {
        bench_fail(s->run, "epoll server: epoll_ctl", errno);
        return -1;
    }
    return 0;
}

static void server_cleanup(server* s)
{
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
    }
    if (s->stop_fd >= 0) {
        close(s->stop_fd);
    }
    if (s->epfd >= 0) {
        close(s->epfd);
    }
}

/* ---- client (on the calling thread) ----------------------------------------- */

typedef struct client_conn {
    int fd;
    uint32_t have; /* reply bytes received so far */
} client_conn;

typedef struct client {
    const bench_config* cfg;
    bench_run* run;
    int epfd;
    uint16_t port;
    char message[BENCH_MAX_MESSAGE];
    char reply[BENCH_MAX_MESSAGE];
} client;

static int wait_events(client* c, struct epoll_event* events)
{
    for (;;) {
        const int n = epoll_wait(c->epfd, events, MAX_EVENTS, -1);
        if (n >= 0 || errno != EINTR) {
            if (n < 0) {
                bench_fail(c->run, "epoll client: epoll_wait", errno);
            }
            return n;
        }
    }
}

static int send_all(int fd, const char* p, uint32_t n)
{
    while (n > 0) {
        const ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1; /* a 64-byte message into an empty send buffer never blocks */
        }
        p += k;
        n -= (uint32_t)k;
    }
    return 0;
}

/* Set-up only (not measured): a blocking connect, then non-blocking I/O. */
static int connect_blocking(client* c)
{
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in a = loopback(c->port);
    if (connect(fd, (struct sockaddr*)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    set_nodelay(fd);
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int client_pingpong(client* c)
{
    const uint32_t size = c->cfg->message_size;
    const uint32_t nconn = c->cfg->connections;
    client_conn* conns = calloc(nconn, sizeof *conns);
    if (conns == NULL) {
        bench_fail(c->run, "epoll client: out of memory", 0);
        return -1;
    }
    int rc = 0;
    uint32_t opened = 0;
    for (; opened < nconn; ++opened) {
        conns[opened].fd = connect_blocking(c);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[opened]};
        if (conns[opened].fd < 0 || epoll_ctl(c->epfd, EPOLL_CTL_ADD, conns[opened].fd, &ev) != 0) {
            bench_fail(c->run, "epoll client: connect", errno);
            rc = -1;
            goto out;
        }
    }
    /* One message in flight per connection; exactly cfg->total round trips in all. */
    uint64_t issued = 0;
    uint32_t active = 0;
    for (uint32_t i = 0; i < nconn && issued < c->cfg->total; ++i, ++issued, ++active) {
        if (send_all(conns[i].fd, c->message, size) != 0) {
            bench_fail(c->run, "epoll client: send", errno);
            rc = -1;
            goto out;
        }
    }
    struct epoll_event events[MAX_EVENTS];
    while (active > 0) {
        const int n = wait_events(c, events);
        if (n < 0) {
            rc = -1;
            goto out;
        }
        for (int i = 0; i < n; ++i) {
            client_conn* k = events[i].data.ptr;
            const ssize_t got = recv(k->fd, c->reply + k->have, size - k->have, 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
                continue;
            }
            if (got <= 0) {
                bench_fail(c->run, "epoll client: receive", got < 0 ? errno : 0);
                rc = -1;
                goto out;
            }
            k->have += (uint32_t)got;
            if (k->have < size) {
                continue;
            }
            k->have = 0;
            bench_progress(c->run, 1);
            if (issued < c->cfg->total) {
                ++issued;
                if (send_all(k->fd, c->message, size) != 0) {
                    bench_fail(c->run, "epoll client: send", errno);
                    rc = -1;
                    goto out;
                }
            } else {
                --active;
            }
        }
    }
out:
    for (uint32_t i = 0; i < opened; ++i) {
        close(conns[i].fd);
    }
    free(conns);
    return rc;
}

static int client_bulk(client* c)
{
    const int fd = connect_blocking(c);
    if (fd < 0) {
        bench_fail(c->run, "epoll client: connect", errno);
        return -1;
    }
    char* chunk = malloc(c->cfg->chunk_size);
    if (chunk == NULL) {
        close(fd);
        bench_fail(c->run, "epoll client: out of memory", 0);
        return -1;
    }
    memset(chunk, 'b', c->cfg->chunk_size);
    int rc = 0;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = NULL};
    int registered = 0;
    uint64_t left = c->cfg->total;
    uint32_t offset = 0; /* into the current chunk */
    struct epoll_event events[MAX_EVENTS];
    while (left > 0) {
        const uint32_t this_chunk = left < c->cfg->chunk_size ? (uint32_t)left : c->cfg->chunk_size;
        const ssize_t n = send(fd, chunk + offset, this_chunk - offset, MSG_NOSIGNAL);
        if (n > 0) {
            offset += (uint32_t)n;
            if (offset == this_chunk) {
                left -= this_chunk;
                offset = 0;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            bench_fail(c->run, "epoll client: send", errno);
            rc = -1;
            goto out;
        }
        if (!registered) { /* the send buffer is full: wait until it drains */
            ev.events = EPOLLOUT | EPOLLET;
            if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
                bench_fail(c->run, "epoll client: epoll_ctl", errno);
                rc = -1;
                goto out;
            }
            registered = 1;
        }
        if (wait_events(c, events) < 0) {
            rc = -1;
            goto out;
        }
    }
    /* Everything is written: wait for the server to close (it has it all). */
    ev.events = EPOLLIN;
    if (epoll_ctl(c->epfd, registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0) {
        bench_fail(c->run, "epoll client: epoll_ctl", errno);
        rc = -1;
        goto out;
    }
    for (;;) {
        if (wait_events(c, events) < 0) {
            rc = -1;
            goto out;
        }
        char b[16];
        const ssize_t n = recv(fd, b, sizeof b, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            break;
        }
    }
out:
    close(fd);
    free(chunk);
    return rc;
}

static int client_churn(client* c)
{
    const uint32_t size = c->cfg->message_size;
    const struct sockaddr_in a = loopback(c->port);
    struct epoll_event events[MAX_EVENTS];
    for (uint64_t i = 0; i < c->cfg->total; ++i) {
        const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            bench_fail(c->run, "epoll client: socket", errno);
            return -1;
        }
        set_nodelay(fd);
        if (connect(fd, (const struct sockaddr*)&a, sizeof a) != 0 && errno != EINPROGRESS) {
            bench_fail(c->run, "epoll client: connect", errno);
            close(fd);
            return -1;
        }
        /* Over loopback the handshake is usually done by now: send at once, and
         * wait for writability only when the socket is not connected yet. */
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        ssize_t sent;
        while ((sent = send(fd, c->message, size, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
        }
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN)) {
            ev.events = EPOLLOUT;
            if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 || wait_events(c, events) <= 0 ||
                (events[0].events & (EPOLLERR | EPOLLHUP)) != 0) {
                bench_fail(c->run, "epoll client: connect failed", errno);
                close(fd);
                return -1;
            }
            ev.events = EPOLLIN;
            if (epoll_ctl(c->epfd, EPOLL_CTL_MOD, fd, &ev) != 0) {
                bench_fail(c->run, "epoll client: epoll_ctl", errno);
                close(fd);
                return -1;
            }
            sent = 0;
        } else if (sent >= 0 && epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            bench_fail(c->run, "epoll client: epoll_ctl", errno);
            close(fd);
            return -1;
        }
        if (sent < 0 || send_all(fd, c->message + sent, size - (uint32_t)sent) != 0) {
            bench_fail(c->run, "epoll client: send", errno);
            close(fd);
            return -1;
        }
        uint32_t have = 0;
        while (have < size) {
            const ssize_t got = recv(fd, c->reply + have, size - have, 0);
            if (got > 0) {
                have += (uint32_t)got;
                continue;
            }
            if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
                if (wait_events(c, events) < 0) {
                    close(fd);
                    return -1;
                }
                continue;
            }
            bench_fail(c->run, "epoll client: receive", got < 0 ? errno : 0);
            close(fd);
            return -1;
        }
        close(fd);
        bench_progress(c->run, 1);
    }
    return 0;
}

static int run_epoll(const bench_config* cfg, bench_run* run)
{
    server s = {.cfg = cfg, .run = run, .epfd = -1, .listen_fd = -1, .stop_fd = -1};
    client* c = calloc(1, sizeof *c);
    if (c == NULL || server_start(&s) != 0) {
        server_cleanup(&s);
        free(c);
        return -1;
    }
    pthread_t thread;
    if (pthread_create(&thread, NULL, server_main, &s) != 0) {
        server_cleanup(&s);
        free(c);
        return -1;
    }
    c->cfg = cfg;
    c->run = run;
    c->port = s.port;
    memset(c->message, 'a', sizeof c->message);
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    int rc = -1;
    if (c->epfd >= 0) {
        switch (cfg->workload) {
        case BENCH_PINGPONG: rc = client_pingpong(c); break;
        case BENCH_BULK: rc = client_bulk(c); break;
        case BENCH_CHURN: rc = client_churn(c); break;
        case BENCH_FAIRNESS: break; /* not offered: the driver never asks */
        }
        close(c->epfd);
    }
    /* The client closed everything: wait for the server to see it, then stop it. */
    for (int i = 0; i < 5000 && __atomic_load_n(&s.live, __ATOMIC_ACQUIRE) != 0 && !bench_failed(run); ++i) {
        bench_nap();
    }
    const uint64_t one = 1;
    if (write(s.stop_fd, &one, sizeof one) < 0) {
        bench_fail(run, "epoll: stopping the server", errno);
    }
    pthread_join(thread, NULL);
    server_cleanup(&s);
    free(c);
    return rc;
}

const bench_impl bench_impl_epoll = {"epoll", "hand-written epoll (C)", run_epoll, NULL};
