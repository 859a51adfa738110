/* tests/c/test_allocations.c: the C API's allocation contract, measured. The
 * executable replaces malloc and friends with counting versions (so it is
 * not built under sanitizers, which replace them too) and checks that
 * steady-state sends, receives and notifies allocate nothing (their records
 * are reused: include/asock/c/implementation.hpp, "per-operation records"),
 * that a burst of operations in flight may allocate but is followed by a
 * steady state that does not, that only an operation with more buffers than
 * a record holds inline allocates (its buffer array), that a rejected call
 * allocates nothing, and that destroying a socket frees the records it kept.
 * It prints the measured numbers. */

#ifdef _WIN32
/* Linux only: the counting replaces glibc's malloc through its __libc_*
 * entry points, which Windows C runtimes do not have. tests/c/CMakeLists.txt
 * does not build it for Windows; this main only keeps the file compiling. */
#include <stdio.h>

int main(void)
{
    fputs("test_allocations: malloc interposition is glibc-only; nothing to run on Windows\n", stdout);
    return 0;
}

#else
#include <asock/c/async_socket.h>
#include <asock/c/execution_engine.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "support.h"

/* glibc's own entry points, which the replacements forward to. */
extern void* __libc_malloc(size_t size);
extern void* __libc_calloc(size_t count, size_t size);
extern void* __libc_realloc(void* p, size_t size);
extern void* __libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void* p);

static atomic_ulong g_allocations = 0;
/* free() calls with a block (and blocks a realloc moved): with g_allocations,
 * how many blocks are live. */
static atomic_ulong g_frees = 0;

void* malloc(size_t size)
{
    atomic_fetch_add(&g_allocations, 1);
    return __libc_malloc(size);
}

void* calloc(size_t count, size_t size)
{
    atomic_fetch_add(&g_allocations, 1);
    return __libc_calloc(count, size);
}

void* realloc(void* p, size_t size)
{
    void* q;
    atomic_fetch_add(&g_allocations, 1);
    q = __libc_realloc(p, size);
    if (p != NULL && (q != NULL || size == 0)) {
        atomic_fetch_add(&g_frees, 1); /* the old block is gone (moved, resized or freed) */
    }
    return q;
}

void* aligned_alloc(size_t alignment, size_t size)
{
    atomic_fetch_add(&g_allocations, 1);
    return __libc_memalign(alignment, size);
}

int posix_memalign(void** out, size_t alignment, size_t size)
{
    void* p;
    atomic_fetch_add(&g_allocations, 1);
    p = __libc_memalign(alignment, size);
    if (p == NULL) {
        return 12; /* ENOMEM */
    }
    *out = p;
    return 0;
}

void free(void* p)
{
    if (p != NULL) {
        atomic_fetch_add(&g_frees, 1);
    }
    __libc_free(p);
}

static EXECUTION_ENGINE_HANDLE g_engine = NULL;

static unsigned long allocations(void)
{
    return atomic_load(&g_allocations);
}

static void test_allocation_counting_sees_the_shims_allocations(void)
{
    /* guards against a replacement that is silently not used */
    const unsigned long before = allocations();
    ASYNC_SOCKET_HANDLE s = async_socket_create(g_engine);
    CHECK(allocations() > before);
    async_socket_destroy(s);
}

/* Blocks allocated and not freed yet, by anyone in the process. */
static long live_blocks(void)
{
    return (long)atomic_load(&g_allocations) - (long)atomic_load(&g_frees);
}

enum { OUT_BUFFERS = 8, OUT_LENGTH = 16, IN_LENGTH = 256 };

/* One round of every operation kind over the pair (a, b): b receives (two
 * buffers) what a sends (eight buffers), a receives (one buffer) what b sends
 * back (one buffer), and a waits for writability (notify OUT). Waits for all
 * five callbacks. */
static bool one_round(ASYNC_SOCKET_HANDLE a, ASYNC_SOCKET_HANDLE b)
{
    static unsigned char out[OUT_BUFFERS][OUT_LENGTH];
    static unsigned char in_a[IN_LENGTH];
    static unsigned char in_b[IN_LENGTH];
    COMPLETION sent_a;
    COMPLETION sent_b;
    COMPLETION received_a;
    COMPLETION received_b;
    COMPLETION writable;
    ASYNC_SOCKET_BUFFER ob[OUT_BUFFERS];
    ASYNC_SOCKET_BUFFER ib[2];
    ASYNC_SOCKET_BUFFER back;
    ASYNC_SOCKET_BUFFER ia;
    bool ok = true;
    int k;
    completion_init(&sent_a);
    completion_init(&sent_b);
    completion_init(&received_a);
    completion_init(&received_b);
    completion_init(&writable);
    for (k = 0; k < OUT_BUFFERS; ++k) {
        ob[k].buffer = out[k];
        ob[k].length = OUT_LENGTH;
    }
    ib[0].buffer = in_b;
    ib[0].length = IN_LENGTH / 2;
    ib[1].buffer = in_b + IN_LENGTH / 2;
    ib[1].length = IN_LENGTH / 2;
    ia.buffer = in_a;
    ia.length = IN_LENGTH;
    back.buffer = out[0];
    back.length = OUT_LENGTH;
    ok = ok && async_socket_receive_async(b, ib, 2, record_receive, &received_b) == 0;
    ok = ok && async_socket_receive_async(a, &ia, 1, record_receive, &received_a) == 0;
    ok = ok && async_socket_send_async(a, ob, OUT_BUFFERS, record_send, &sent_a) == ASYNC_SOCKET_SEND_SYNC_OK;
    ok = ok && completion_wait(&received_b, 1) && completion_wait(&sent_a, 1);
    ok = ok && async_socket_send_async(b, &back, 1, record_send, &sent_b) == ASYNC_SOCKET_SEND_SYNC_OK;
    ok = ok && async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_OUT, record_notify, &writable) == 0;
    ok = ok && completion_wait(&received_a, 1) && completion_wait(&sent_b, 1) && completion_wait(&writable, 1);
    ok = ok && completion_count_of(&sent_a, ASYNC_SOCKET_SEND_OK) == 1 &&
         completion_count_of(&sent_b, ASYNC_SOCKET_SEND_OK) == 1 &&
         completion_count_of(&received_a, ASYNC_SOCKET_RECEIVE_OK) == 1 &&
         completion_count_of(&received_b, ASYNC_SOCKET_RECEIVE_OK) == 1 &&
         completion_count_of(&writable, ASYNC_SOCKET_NOTIFY_IO_RESULT_OUT) == 1;
    completion_deinit(&sent_a);
    completion_deinit(&sent_b);
    completion_deinit(&received_a);
    completion_deinit(&received_b);
    completion_deinit(&writable);
    return ok;
}

/* Runs `rounds` rounds; returns the allocations they made, or -1 when a round failed. */
static long allocations_of_rounds(ASYNC_SOCKET_HANDLE a, ASYNC_SOCKET_HANDLE b, int rounds)
{
    const unsigned long start = allocations();
    int i;
    for (i = 0; i < rounds; ++i) {
        if (!one_round(a, b)) {
            return -1;
        }
    }
    return (long)(allocations() - start);
}

static void test_steady_state_operations_allocate_nothing(void)
{
    enum { ROUNDS = 1000 };
    ASYNC_SOCKET_HANDLE a;
    ASYNC_SOCKET_HANDLE b;
    long used;
    REQUIRE(make_async_pair(g_engine, &a, &b));
    /* warm up: the sockets' first records of each kind, each engine thread's
     * first use, lazily created state */
    REQUIRE(allocations_of_rounds(a, b, 10) >= 0);
    used = allocations_of_rounds(a, b, ROUNDS);
    fprintf(stdout, "    %d round trips (%d accepted operations: sends with 8 and 1 buffers, receives with 2 and 1, notify): %ld allocations\n",
            ROUNDS, ROUNDS * 5, used);
    CHECK(used == 0);
    async_socket_destroy(a);
    async_socket_destroy(b);
}

static void test_a_burst_may_allocate_then_the_steady_state_allocates_nothing(void)
{
    /* More operations in flight on one socket than it has ever had, and
     * more than it keeps (64 of each kind): the burst allocates records, at
     * most one per operation; afterwards the steady state reuses the kept ones. */
    enum { BURST = 200 };
    static unsigned char in[BURST];
    static unsigned char out[BURST];
    static ASYNC_SOCKET_BUFFER ib[BURST];
    ASYNC_SOCKET_HANDLE a;
    ASYNC_SOCKET_HANDLE b;
    COMPLETION received;
    COMPLETION readable;
    COMPLETION sent;
    ASYNC_SOCKET_BUFFER ob;
    unsigned long start;
    unsigned long burst_used;
    long used;
    int round;
    int i;
    REQUIRE(make_async_pair(g_engine, &a, &b));
    REQUIRE(allocations_of_rounds(a, b, 10) >= 0);
    for (i = 0; i < BURST; ++i) {
        out[i] = (unsigned char)i;
    }
    ob.buffer = out;
    ob.length = BURST;
    for (round = 0; round < 3; ++round) {
        completion_init(&received);
        completion_init(&readable);
        completion_init(&sent);
        start = allocations();
        /* BURST one-byte receives and BURST notifies wait on b; one send of
         * BURST bytes completes them all (each receive gets one byte, in order). */
        for (i = 0; i < BURST; ++i) {
            ib[i].buffer = &in[i];
            ib[i].length = 1;
            REQUIRE(async_socket_receive_async(b, &ib[i], 1, record_receive, &received) == 0);
            REQUIRE(async_socket_notify_io_async(b, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, record_notify, &readable) == 0);
        }
        REQUIRE(async_socket_send_async(a, &ob, 1, record_send, &sent) == ASYNC_SOCKET_SEND_SYNC_OK);
        REQUIRE(completion_wait(&sent, 1) && completion_wait(&readable, BURST) && completion_wait(&received, BURST));
        burst_used = allocations() - start;
        CHECK(completion_count_of(&received, ASYNC_SOCKET_RECEIVE_OK) == BURST);
        CHECK(completion_count_of(&readable, ASYNC_SOCKET_NOTIFY_IO_RESULT_IN) == BURST);
        CHECK(memcmp(in, out, BURST) == 0);
        memset(in, 0, sizeof in);
        completion_deinit(&received);
        completion_deinit(&readable);
        completion_deinit(&sent);
        fprintf(stdout, "    burst %d: %d receives and %d notifies in flight at once: %lu allocations\n", round + 1,
                BURST, BURST, burst_used);
        CHECK(burst_used <= 2u * BURST + 1u);
        used = allocations_of_rounds(a, b, 200);
        fprintf(stdout, "    then 200 round trips: %ld allocations\n", used);
        CHECK(used == 0);
    }
    async_socket_destroy(a);
    async_socket_destroy(b);
}

static void test_only_a_buffer_array_longer_than_a_record_holds_allocates(void)
{
    /* A record holds 8 buffer descriptors; a send or receive with more gets
     * an array of its own for the operation: one allocation, freed before
     * the callback. */
    enum { ROUNDS = 500, MANY = 16 };
    static unsigned char out[MANY][4];
    static unsigned char in[MANY][4];
    ASYNC_SOCKET_HANDLE a;
    ASYNC_SOCKET_HANDLE b;
    ASYNC_SOCKET_BUFFER ob[MANY];
    ASYNC_SOCKET_BUFFER ib[MANY];
    unsigned long start;
    unsigned long used;
    int i;
    int k;
    REQUIRE(make_async_pair(g_engine, &a, &b));
    REQUIRE(allocations_of_rounds(a, b, 10) >= 0);
    for (k = 0; k < MANY; ++k) {
        ob[k].buffer = out[k];
        ob[k].length = sizeof out[k];
        ib[k].buffer = in[k];
        ib[k].length = sizeof in[k];
    }
    start = allocations();
    for (i = 0; i < ROUNDS; ++i) {
        COMPLETION s;
        COMPLETION r;
        completion_init(&s);
        completion_init(&r);
        REQUIRE(async_socket_receive_async(b, ib, MANY, record_receive, &r) == 0);
        REQUIRE(async_socket_send_async(a, ob, MANY, record_send, &s) == ASYNC_SOCKET_SEND_SYNC_OK);
        REQUIRE(completion_wait(&s, 1) && completion_wait(&r, 1));
        /* the receive may get the bytes in two parts: take the rest */
        while (r.total_bytes < sizeof out) {
            const unsigned calls = completion_calls(&r);
            REQUIRE(async_socket_receive_async(b, ib, MANY, record_receive, &r) == 0);
            REQUIRE(completion_wait(&r, calls + 1));
            ++start; /* that extra receive's array */
        }
        completion_deinit(&s);
        completion_deinit(&r);
    }
    used = allocations() - start;
    fprintf(stdout, "    %d sends and %d receives with %d buffers: %lu allocations\n", ROUNDS, ROUNDS, MANY, used);
    CHECK(used == 2u * ROUNDS);
    async_socket_destroy(a);
    async_socket_destroy(b);
}

static void test_destroy_frees_the_records_a_socket_kept(void)
{
    /* The whole life of a pair (create, a burst, round trips, operations
     * still pending at destroy) leaves no block behind once both sockets are
     * destroyed. Done twice: the first time may leave the engine's lazily
     * made state (its pooled socket cores); the second must leave nothing. */
    enum { PENDING = 100 };
    static unsigned char in[PENDING];
    static ASYNC_SOCKET_BUFFER ib[PENDING];
    int pass;
    for (pass = 0; pass < 2; ++pass) {
        ASYNC_SOCKET_HANDLE a;
        ASYNC_SOCKET_HANDLE b;
        COMPLETION pending;
        const long before = live_blocks();
        long after;
        int i;
        completion_init(&pending);
        REQUIRE(make_async_pair(g_engine, &a, &b));
        REQUIRE(allocations_of_rounds(a, b, 50) >= 0);
        for (i = 0; i < PENDING; ++i) { /* nothing will arrive: they wait until destroy */
            ib[i].buffer = &in[i];
            ib[i].length = 1;
            REQUIRE(async_socket_receive_async(a, &ib[i], 1, record_receive, &pending) == 0);
            REQUIRE(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, record_notify, &pending) == 0);
        }
        async_socket_destroy(a);
        async_socket_destroy(b);
        CHECK(completion_calls(&pending) == 2u * PENDING);
        completion_deinit(&pending);
        after = live_blocks();
        fprintf(stdout, "    pass %d: blocks live before the pair %ld, after destroying it %ld\n", pass + 1, before,
                after);
        if (pass == 1) {
            CHECK(after == before);
        }
    }
}

static void test_rejected_operations_allocate_nothing(void)
{
    enum { ROUNDS = 1000 };
    ASYNC_SOCKET_HANDLE a;
    ASYNC_SOCKET_HANDLE b;
    ASYNC_SOCKET_HANDLE never_opened = async_socket_create(g_engine);
    unsigned char byte = 'x';
    ASYNC_SOCKET_BUFFER buf;
    unsigned long start;
    unsigned long used;
    int i;
    REQUIRE(never_opened != NULL);
    REQUIRE(make_async_pair(g_engine, &a, &b));
    async_socket_close(b);
    buf.buffer = &byte;
    buf.length = 1;
    start = allocations();
    for (i = 0; i < ROUNDS; ++i) {
        CHECK(async_socket_send_async(a, &buf, 1, NULL, NULL) == ASYNC_SOCKET_SEND_SYNC_ERROR);
        CHECK(async_socket_send_async(a, &buf, 0, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_ERROR);
        CHECK(async_socket_send_async(b, &buf, 1, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_NOT_OPEN);
        CHECK(async_socket_send_async(never_opened, &buf, 1, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_NOT_OPEN);
        CHECK(async_socket_receive_async(b, &buf, 1, never_receive, NULL) != 0);
        CHECK(async_socket_receive_async(a, NULL, 1, never_receive, NULL) != 0);
        CHECK(async_socket_notify_io_async(b, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, never_notify, NULL) != 0);
        CHECK(async_socket_notify_io_async(a, (ASYNC_SOCKET_NOTIFY_IO_TYPE)9, never_notify, NULL) != 0);
    }
    used = allocations() - start;
    fprintf(stdout, "    %d rejected calls: %lu allocations\n", ROUNDS * 8, used);
    CHECK(used == 0);
    async_socket_destroy(a);
    async_socket_destroy(b);
    async_socket_destroy(never_opened);
}

static const HARNESS_TEST tests[] = {
    HARNESS_TEST_ENTRY(test_allocation_counting_sees_the_shims_allocations),
    HARNESS_TEST_ENTRY(test_steady_state_operations_allocate_nothing),
    HARNESS_TEST_ENTRY(test_a_burst_may_allocate_then_the_steady_state_allocates_nothing),
    HARNESS_TEST_ENTRY(test_only_a_buffer_array_longer_than_a_record_holds_allocates),
    HARNESS_TEST_ENTRY(test_destroy_frees_the_records_a_socket_kept),
    HARNESS_TEST_ENTRY(test_rejected_operations_allocate_nothing),
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

#endif /* _WIN32 */
