/* tests/c/test_allocations.c: the C API's allocation contract, measured. The
 * executable replaces malloc and friends with counting versions (so it is
 * not built under sanitizers, which replace them too) and checks that an
 * accepted send, receive or notify costs at most one allocation (the
 * operation record with its copy of the buffer array) and a rejected one
 * none. It prints the measured numbers. */

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
    atomic_fetch_add(&g_allocations, 1);
    return __libc_realloc(p, size);
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

static void test_each_accepted_operation_costs_at_most_one_allocation(void)
{
    enum { ROUNDS = 2000 };
    ASYNC_SOCKET_HANDLE a;
    ASYNC_SOCKET_HANDLE b;
    unsigned char out[8][16];
    unsigned char in[256];
    unsigned long start;
    unsigned long used;
    unsigned long ops = 0;
    int i;
    REQUIRE(make_async_pair(g_engine, &a, &b));
    memset(out, 'a', sizeof out);
    /* warm up (first use of each engine thread, lazily created state) */
    for (i = 0; i < 10; ++i) {
        COMPLETION s;
        COMPLETION r;
        ASYNC_SOCKET_BUFFER ob;
        ASYNC_SOCKET_BUFFER ib;
        completion_init(&s);
        completion_init(&r);
        ob.buffer = out[0];
        ob.length = 16;
        ib.buffer = in;
        ib.length = sizeof in;
        REQUIRE(async_socket_receive_async(b, &ib, 1, record_receive, &r) == 0);
        REQUIRE(async_socket_send_async(a, &ob, 1, record_send, &s) == ASYNC_SOCKET_SEND_SYNC_OK);
        REQUIRE(completion_wait(&s, 1) && completion_wait(&r, 1));
        completion_deinit(&s);
        completion_deinit(&r);
    }
    start = allocations();
    for (i = 0; i < ROUNDS; ++i) {
        COMPLETION s;
        COMPLETION r;
        COMPLETION n;
        ASYNC_SOCKET_BUFFER ob[8];
        ASYNC_SOCKET_BUFFER ib[2];
        int k;
        completion_init(&s);
        completion_init(&r);
        completion_init(&n);
        for (k = 0; k < 8; ++k) { /* eight buffers: still one record */
            ob[k].buffer = out[k];
            ob[k].length = 16;
        }
        ib[0].buffer = in;
        ib[0].length = 128;
        ib[1].buffer = in + 128;
        ib[1].length = 128;
        REQUIRE(async_socket_receive_async(b, ib, 2, record_receive, &r) == 0);
        REQUIRE(async_socket_send_async(a, ob, 8, record_send, &s) == ASYNC_SOCKET_SEND_SYNC_OK);
        REQUIRE(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_OUT, record_notify, &n) == 0);
        ops += 3;
        REQUIRE(completion_wait(&s, 1) && completion_wait(&r, 1) && completion_wait(&n, 1));
        completion_deinit(&s);
        completion_deinit(&r);
        completion_deinit(&n);
    }
    used = allocations() - start;
    fprintf(stdout, "    %lu accepted operations (send with 8 buffers, receive with 2, notify): %lu allocations, %.3f per operation\n",
            ops, used, (double)used / (double)ops);
    CHECK(used <= ops);
    async_socket_destroy(a);
    async_socket_destroy(b);
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
    HARNESS_TEST_ENTRY(test_each_accepted_operation_costs_at_most_one_allocation),
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
