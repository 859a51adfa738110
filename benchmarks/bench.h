/* benchmarks/bench.h: the contract between the benchmark driver and each
 * implementation under test.
 *
 * Every implementation runs the same workload in the same process layout:
 * a server event loop on a thread of its own, a client event loop on another
 * (the calling thread for all implementations whose loop the caller can run;
 * an engine thread for the C shim, whose engines own their threads). Both ends
 * talk over TCP loopback with TCP_NODELAY set on every connection.
 *
 * The driver does the bookkeeping: an implementation reports progress with
 * bench_progress() and the driver takes the steady-state time, allocation
 * count and (under callgrind) instruction count between two thresholds.
 */
#ifndef ASOCK_BENCH_H
#define ASOCK_BENCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bench_workload {
    /* `connections` connections each doing ping-pong of `message_size`-byte
     * messages against an echo server; unit: one round trip. The client keeps
     * exactly one message in flight per connection. */
    BENCH_PINGPONG = 0,
    /* One connection streams `total` bytes to a server that discards them, in
     * sends of `chunk_size` bytes; unit: one byte. The server closes the
     * connection when everything arrived; the client waits for that close. */
    BENCH_BULK = 1,
    /* Repeated, one at a time: connect, send one `message_size`-byte message,
     * receive its echo, close; unit: one connection. */
    BENCH_CHURN = 2,
} bench_workload;

typedef struct bench_config {
    bench_workload workload;
    uint32_t connections;  /* BENCH_PINGPONG: connections run at once */
    uint32_t message_size; /* BENCH_PINGPONG, BENCH_CHURN */
    uint32_t chunk_size;   /* BENCH_BULK: bytes per send */
    uint64_t total;        /* units the client must complete: warm-up plus measured */
} bench_config;

/* One run of one implementation (opaque; owned by the driver). */
typedef struct bench_run bench_run;

/* Reports `units` more units done (round trips, bytes or connections). Call it
 * from one thread only: the client loop, or for BENCH_BULK the server loop. */
void bench_progress(bench_run* run, uint64_t units);

/* Records a failure; the run is reported as failed. Safe from any thread. */
void bench_fail(bench_run* run, const char* what, int error_number);

/* Whether a failure was recorded. */
int bench_failed(const bench_run* run);

/* Sleeps about one millisecond (for polling during set-up and tear-down). */
void bench_nap(void);

/* Largest message and chunk sizes, so implementations can size buffers. */
#define BENCH_MAX_MESSAGE 4096u
#define BENCH_MAX_CHUNK (1024u * 1024u)
/* Receive buffer of an echo session and of a sink session. */
#define BENCH_ECHO_BUFFER 4096u
#define BENCH_SINK_BUFFER 65536u

typedef struct bench_impl {
    const char* name;  /* command-line name */
    const char* label; /* name in tables */
    /* Runs the workload to completion; returns 0, or non-zero after bench_fail. */
    int (*run)(const bench_config* config, bench_run* run);
} bench_impl;

extern const bench_impl bench_impl_epoll;
extern const bench_impl bench_impl_asock;
extern const bench_impl bench_impl_asock_timeout;
extern const bench_impl bench_impl_asock_c;
extern const bench_impl bench_impl_uring;
extern const bench_impl bench_impl_asio;
extern const bench_impl bench_impl_libuv;

#ifdef __cplusplus
}
#endif

#endif
