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
    /* Fairness between the sockets of one single-thread event loop: on the
     * client's loop, one connection receives a stream that the server sends
     * as fast as it can (in BENCH_FAIR_SOURCE_CHUNK-byte sends), `chunk_size`
     * bytes per receive (small receives keep the client the slower side, so
     * its receives always find data), and one connection does ping-pong of
     * `message_size`-byte messages. Measured in three phases that take turns
     * (BENCH_FAIR_CYCLES times) after `warmup` round trips: ping-pong alone,
     * the stream alone (BENCH_FAIR_STREAM_MS in all), then both at once
     * (`total - warmup` round trips in each of the ping-pong phases). Reported with bench_fair_round_trip() and
     * bench_fair_stream(); the driver works out the percentiles and ratios. */
    BENCH_FAIRNESS = 3,
} bench_workload;

typedef struct bench_config {
    bench_workload workload;
    uint32_t connections;  /* BENCH_PINGPONG: connections run at once */
    uint32_t message_size; /* BENCH_PINGPONG, BENCH_CHURN */
    uint32_t chunk_size;   /* BENCH_BULK: bytes per send */
    uint64_t total;        /* units the client must complete: warm-up plus measured */
    uint64_t warmup;       /* BENCH_FAIRNESS: the first round trips, not recorded */
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

/* BENCH_FAIRNESS: a monotonic clock in nanoseconds; one measured ping-pong
 * round trip (`loaded`: while the stream ran); the stream's bytes over an
 * interval (`loaded`: while the ping-pong ran); the client loop only. */
uint64_t bench_now_ns(void);
void bench_fair_round_trip(bench_run* run, int loaded, uint64_t nanoseconds);
void bench_fair_stream(bench_run* run, int loaded, uint64_t bytes, uint64_t nanoseconds);
/* How long the stream runs alone (in all); and the longest one loaded phase may last
 * (a ping-pong starved by the stream ends it: the stream then stops, and the
 * round trips still missing are reported as starved). */
#define BENCH_FAIR_STREAM_MS 500u
/* The three phases take turns, this many times (each gets 1/cycles of it all). */
#define BENCH_FAIR_CYCLES 5u
#define BENCH_FAIR_LIMIT_MS 2000u
#define BENCH_FAIR_SOURCE_CHUNK 65536u

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
    /* BENCH_FAIRNESS, for the implementations that have it; NULL otherwise. */
    int (*fairness)(const bench_config* config, bench_run* run);
} bench_impl;

extern const bench_impl bench_impl_epoll;
extern const bench_impl bench_impl_asock;
extern const bench_impl bench_impl_asock_timeout;
extern const bench_impl bench_impl_asock_c;
extern const bench_impl bench_impl_asock_c_default;
extern const bench_impl bench_impl_uring;
extern const bench_impl bench_impl_asio;
extern const bench_impl bench_impl_libuv;

#ifdef __cplusplus
}
#endif

#endif
