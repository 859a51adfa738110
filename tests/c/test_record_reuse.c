/* tests/c/test_record_reuse.c: the async socket's operation records are
 * reused (include/asock/c/implementation.hpp, "per-operation records": a
 * per-socket pool of each kind, records given back just before their
 * callback, at most 64 kept, buffer arrays longer than 8 descriptors
 * allocated per operation). These tests check what reuse must not change:
 * every operation sees its own buffers and context, each callback runs
 * exactly once when many threads start operations on one socket at once,
 * a callback may start the next operation on the record it just gave back and
 * then destroy its socket, and destroying a socket with operations pending
 * and records kept completes them all and frees everything (the sanitizer
 * builds run this file: AddressSanitizer's leak check covers the frees).
 * Allocation counts are measured in tests/c/test_allocations.c. */
#include <asock/c/async_socket.h>
#include <asock/c/execution_engine.h>

#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "portable.h"
#include "support.h"

static EXECUTION_ENGINE_HANDLE g_engine = NULL;

/* Receives exactly `length` bytes into `data` on `s`, as `count` buffers
 * (the first receive scatters into them; a partial one is followed by
 * receives of the rest into one buffer). */
static bool receive_exact(ASYNC_SOCKET_HANDLE s, unsigned char* data, uint32_t length, uint32_t count)
{
    ASYNC_SOCKET_BUFFER bufs[16];
    COMPLETION r;
    const uint32_t part = length / count;
    uint32_t got = 0;
    uint32_t k;
    bool ok = true;
    completion_init(&r);
    for (k = 0; k < count; ++k) {
        bufs[k].buffer = data + k * part;
        bufs[k].length = k + 1 == count ? length - k * part : part;
    }
    ok = async_socket_receive_async(s, bufs, count, record_receive, &r) == 0 && completion_wait(&r, 1) &&
         completion_count_of(&r, ASYNC_SOCKET_RECEIVE_OK) == 1;
    got = ok ? r.bytes : 0;
    while (ok && got < length) {
        const unsigned calls = completion_calls(&r);
        bufs[0].buffer = data + got;
        bufs[0].length = length - got;
        ok = async_socket_receive_async(s, bufs, 1, record_receive, &r) == 0 && completion_wait(&r, calls + 1) &&
             completion_count_of(&r, ASYNC_SOCKET_RECEIVE_OK) == calls + 1;
        got += ok ? r.bytes : 0;
    }
    completion_deinit(&r);
    return ok && got == length;
}

static void test_reused_records_carry_each_operations_own_buffers_and_context(void)
{
    /* Buffer counts from 1 to 12 in turn: records are reused for counts up
     * to 8 and get an array of their own above. */
    enum { ROUNDS = 300, MAX_COUNT = 12, PIECE = 5 };
    unsigned char out[MAX_COUNT * PIECE + MAX_COUNT];
    unsigned char in[sizeof out];
    ASYNC_SOCKET_HANDLE a;
    ASYNC_SOCKET_HANDLE b;
    int i;
    REQUIRE(make_async_pair(g_engine, &a, &b));
    for (i = 0; i < ROUNDS; ++i) {
        const uint32_t count = 1u + (uint32_t)i % MAX_COUNT;
        const uint32_t length = count * PIECE + (uint32_t)i % 7u;
        ASYNC_SOCKET_BUFFER ob[MAX_COUNT];
        COMPLETION s;
        uint32_t k;
        completion_init(&s);
        fill_pattern(out, length, (uint32_t)i);
        memset(in, 0, sizeof in);
        for (k = 0; k < count; ++k) {
            ob[k].buffer = out + k * PIECE;
            ob[k].length = k + 1 == count ? length - k * PIECE : PIECE;
        }
        /* the descriptors are copied: overwriting them after the call changes nothing */
        REQUIRE(async_socket_send_async(a, ob, count, record_send, &s) == ASYNC_SOCKET_SEND_SYNC_OK);
        memset(ob, 0, sizeof ob);
        REQUIRE(receive_exact(b, in, length, count));
        REQUIRE(completion_wait(&s, 1));
        CHECK(completion_calls(&s) == 1 && completion_count_of(&s, ASYNC_SOCKET_SEND_OK) == 1);
        CHECK(check_pattern(in, length, (uint32_t)i));
        completion_deinit(&s);
    }
    async_socket_destroy(a);
    async_socket_destroy(b);
}

/* ---- many threads on one socket ------------------------------------------- */

enum { SENDER_THREADS = 4, SENDS_PER_THREAD = 500, SEND_LENGTH = 8 };

typedef struct SENDER_TAG
{
    ASYNC_SOCKET_HANDLE socket;
    COMPLETION done;
    unsigned char data[SEND_LENGTH];
    unsigned rejected;
} SENDER;

static void sender_thread(void* arg)
{
    SENDER* s = arg;
    int i;
    for (i = 0; i < SENDS_PER_THREAD; ++i) {
        ASYNC_SOCKET_BUFFER b;
        b.buffer = s->data;
        b.length = SEND_LENGTH;
        if (async_socket_send_async(s->socket, &b, 1, record_send, &s->done) != ASYNC_SOCKET_SEND_SYNC_OK) {
            ++s->rejected;
        }
    }
}

/* A receive that starts the next one from its callback until `expected`
 * bytes arrived. */
typedef struct DRAIN_TAG
{
    ASYNC_SOCKET_HANDLE socket;
    unsigned char buffer[512];
    uint64_t received;
    uint64_t expected;
    COMPLETION finished; /* one call: all bytes arrived, or a receive failed */
} DRAIN;

static void drain_received(void* context, ASYNC_SOCKET_RECEIVE_RESULT result, uint32_t bytes)
{
    DRAIN* d = context;
    ASYNC_SOCKET_BUFFER b;
    if (result != ASYNC_SOCKET_RECEIVE_OK) {
        record_receive(&d->finished, result, 0);
        return;
    }
    d->received += bytes;
    if (d->received >= d->expected) {
        record_receive(&d->finished, result, 0);
        return;
    }
    b.buffer = d->buffer;
    b.length = sizeof d->buffer;
    if (async_socket_receive_async(d->socket, &b, 1, drain_received, d) != 0) {
        record_receive(&d->finished, ASYNC_SOCKET_RECEIVE_ERROR, 0);
    }
}

static void test_many_threads_sending_on_one_socket_each_callback_runs_once(void)
{
    static SENDER senders[SENDER_THREADS];
    static DRAIN drain;
    PORTABLE_THREAD threads[SENDER_THREADS];
    ASYNC_SOCKET_HANDLE a;
    ASYNC_SOCKET_HANDLE b;
    ASYNC_SOCKET_BUFFER first;
    int t;
    REQUIRE(make_async_pair(g_engine, &a, &b));
    memset(&drain, 0, sizeof drain);
    drain.socket = b;
    drain.expected = (uint64_t)SENDER_THREADS * SENDS_PER_THREAD * SEND_LENGTH;
    completion_init(&drain.finished);
    first.buffer = drain.buffer;
    first.length = sizeof drain.buffer;
    REQUIRE(async_socket_receive_async(b, &first, 1, drain_received, &drain) == 0);
    for (t = 0; t < SENDER_THREADS; ++t) {
        senders[t].socket = a;
        senders[t].rejected = 0;
        memset(senders[t].data, 'a' + t, SEND_LENGTH);
        completion_init(&senders[t].done);
    }
    for (t = 0; t < SENDER_THREADS; ++t) {
        REQUIRE(portable_thread_start(&threads[t], sender_thread, &senders[t]));
    }
    for (t = 0; t < SENDER_THREADS; ++t) {
        portable_thread_join(&threads[t]);
    }
    CHECK(completion_wait(&drain.finished, 1));
    CHECK(completion_count_of(&drain.finished, ASYNC_SOCKET_RECEIVE_OK) == 1);
    CHECK(drain.received == drain.expected);
    for (t = 0; t < SENDER_THREADS; ++t) {
        CHECK(senders[t].rejected == 0);
        CHECK(completion_wait(&senders[t].done, SENDS_PER_THREAD));
        CHECK(completion_count_of(&senders[t].done, ASYNC_SOCKET_SEND_OK) == SENDS_PER_THREAD);
    }
    async_socket_destroy(a);
    async_socket_destroy(b);
    for (t = 0; t < SENDER_THREADS; ++t) {
        CHECK(completion_calls(&senders[t].done) == SENDS_PER_THREAD);
        completion_deinit(&senders[t].done);
    }
    CHECK(completion_calls(&drain.finished) == 1);
    completion_deinit(&drain.finished);
}

/* ---- a callback that reuses its record, then destroys its socket ----------- */

typedef struct CHAIN_TAG
{
    ASYNC_SOCKET_HANDLE socket;
    unsigned char byte;
    unsigned remaining;
    COMPLETION sends;     /* every send callback */
    COMPLETION destroyed; /* one call, after the destroy returned */
} CHAIN;

static void chain_sent(void* context, ASYNC_SOCKET_SEND_RESULT result)
{
    CHAIN* c = context;
    ASYNC_SOCKET_BUFFER b;
    record_send(&c->sends, result);
    if (result != ASYNC_SOCKET_SEND_OK) {
        return;
    }
    if (--c->remaining == 0) {
        async_socket_destroy(c->socket); /* from its own callback */
        record_send(&c->destroyed, result);
        return;
    }
    /* most likely completes at once, on the record this callback's send
     * just gave back */
    b.buffer = &c->byte;
    b.length = 1;
    if (async_socket_send_async(c->socket, &b, 1, chain_sent, c) != ASYNC_SOCKET_SEND_SYNC_OK) {
        harness_record_failure(__FILE__, __LINE__, "a chained send was rejected");
    }
}

static void test_a_callback_may_reuse_its_record_and_then_destroy_its_socket(void)
{
    enum { SENDS = 40, PENDING = 20 };
    static unsigned char in[PENDING];
    static CHAIN chain;
    ASYNC_SOCKET_HANDLE a;
    ASYNC_SOCKET_HANDLE b;
    ASYNC_SOCKET_BUFFER first;
    COMPLETION pending;
    int i;
    REQUIRE(make_async_pair(g_engine, &a, &b));
    completion_init(&pending);
    /* receives that nothing answers: the destroy completes them, records kept or not */
    for (i = 0; i < PENDING; ++i) {
        ASYNC_SOCKET_BUFFER r;
        r.buffer = &in[i];
        r.length = 1;
        REQUIRE(async_socket_receive_async(a, &r, 1, record_receive, &pending) == 0);
    }
    memset(&chain, 0, sizeof chain);
    chain.socket = a;
    chain.byte = 'c';
    chain.remaining = SENDS;
    completion_init(&chain.sends);
    completion_init(&chain.destroyed);
    first.buffer = &chain.byte;
    first.length = 1;
    REQUIRE(async_socket_send_async(a, &first, 1, chain_sent, &chain) == ASYNC_SOCKET_SEND_SYNC_OK);
    /* `a` may be destroyed by now: not touched again */
    CHECK(completion_wait(&chain.destroyed, 1));
    CHECK(completion_calls(&chain.sends) == SENDS);
    CHECK(completion_count_of(&chain.sends, ASYNC_SOCKET_SEND_OK) == SENDS);
    CHECK(completion_calls(&pending) == PENDING);
    CHECK(completion_count_of(&pending, ASYNC_SOCKET_RECEIVE_ABANDONED) == PENDING);
    async_socket_destroy(b);
    completion_deinit(&chain.sends);
    completion_deinit(&chain.destroyed);
    completion_deinit(&pending);
}

static void test_destroy_completes_a_pending_burst_and_frees_every_record(void)
{
    /* More records than a socket keeps, some with buffer arrays of their own,
     * pending at destroy; and records kept from an earlier burst. */
    enum { BURST = 150, MANY = 12 };
    static unsigned char in[BURST][MANY];
    static ASYNC_SOCKET_BUFFER bufs[BURST][MANY];
    ASYNC_SOCKET_HANDLE a;
    ASYNC_SOCKET_HANDLE b;
    COMPLETION received;
    COMPLETION sent;
    COMPLETION abandoned; /* receives */
    COMPLETION notified;
    unsigned char out[BURST];
    ASYNC_SOCKET_BUFFER ob;
    int i;
    int k;
    REQUIRE(make_async_pair(g_engine, &a, &b));
    completion_init(&received);
    completion_init(&sent);
    completion_init(&abandoned);
    completion_init(&notified);
    /* a burst that completes: BURST one-byte receives answered by one send */
    for (i = 0; i < BURST; ++i) {
        bufs[i][0].buffer = in[i];
        bufs[i][0].length = 1;
        REQUIRE(async_socket_receive_async(b, bufs[i], 1, record_receive, &received) == 0);
    }
    memset(out, 'x', sizeof out);
    ob.buffer = out;
    ob.length = BURST;
    REQUIRE(async_socket_send_async(a, &ob, 1, record_send, &sent) == ASYNC_SOCKET_SEND_SYNC_OK);
    REQUIRE(completion_wait(&received, BURST) && completion_wait(&sent, 1));
    CHECK(completion_count_of(&received, ASYNC_SOCKET_RECEIVE_OK) == BURST);
    /* a burst left pending: receives with 1 and with MANY buffers (and, where
     * they exist, notifies) that nothing answers */
    for (i = 0; i < BURST; ++i) {
        const uint32_t count = i % 2 == 0 ? 1u : (uint32_t)MANY;
        for (k = 0; k < MANY; ++k) {
            bufs[i][k].buffer = &in[i][k];
            bufs[i][k].length = 1;
        }
        REQUIRE(async_socket_receive_async(b, bufs[i], count, record_receive, &abandoned) == 0);
#ifndef _WIN32 /* notify_io_async exists on Linux only (WIN32 04_002) */
        REQUIRE(async_socket_notify_io_async(b, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, record_notify, &notified) == 0);
#endif
    }
    async_socket_destroy(b);
    CHECK(completion_calls(&abandoned) == BURST);
    CHECK(completion_count_of(&abandoned, ASYNC_SOCKET_RECEIVE_ABANDONED) == BURST);
#ifndef _WIN32
    CHECK(completion_calls(&notified) == BURST);
    CHECK(completion_count_of(&notified, ASYNC_SOCKET_NOTIFY_IO_RESULT_ABANDONED) == BURST);
#endif
    async_socket_destroy(a);
    completion_deinit(&received);
    completion_deinit(&sent);
    completion_deinit(&abandoned);
    completion_deinit(&notified);
}

static const HARNESS_TEST tests[] = {
    HARNESS_TEST_ENTRY(test_reused_records_carry_each_operations_own_buffers_and_context),
    HARNESS_TEST_ENTRY(test_many_threads_sending_on_one_socket_each_callback_runs_once),
    HARNESS_TEST_ENTRY(test_a_callback_may_reuse_its_record_and_then_destroy_its_socket),
    HARNESS_TEST_ENTRY(test_destroy_completes_a_pending_burst_and_frees_every_record),
};

int main(int argc, char** argv)
{
    const EXECUTION_ENGINE_PARAMETERS p = {2, 0};
    int rc;
    g_engine = execution_engine_create(&p);
    if (g_engine == NULL) {
        return 2;
    }
    rc = harness_run(tests, HARNESS_COUNT(tests), argc, argv);
    execution_engine_dec_ref(g_engine);
    return rc;
}
