/* tests/c/test_async_socket_api.c: the async socket C API, requirement by
 * requirement: creation, open, close, destroy, and the argument, state and
 * result rules of send, receive and notify (async_socket_linux.md, and the
 * async_socket_win32.md requirements that describe the same observable
 * contract). Every test runs over real loopback connections.
 *
 * Most tests run on Linux and Windows. The Linux-only ones (custom transports,
 * notify_io_async, the NULL default engine, SIGPIPE, /proc thread counts) are
 * compiled out on Windows, which instead runs the tests of its own contract
 * (SRS_ASYNC_SOCKET_WIN32_01_002, 04_001, 04_002) at the end of the file. */
#include <asock/c/async_socket.h>
#include <asock/c/execution_engine.h>
#include <asock/c/platform.h>
#include <asock/c/socket_transport.h>

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef _WIN32
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#endif

#include "harness.h"
#include "portable.h"
#include "support.h"

static EXECUTION_ENGINE_HANDLE g_engine = NULL;

#ifndef _WIN32 /* /proc thread counts are Linux's */
/* Waits (bounded) until the process has `expected` threads. */
static bool wait_thread_count(unsigned expected)
{
    int i;
    for (i = 0; i < 6000; ++i) {
        if (process_thread_count() == expected) {
            return true;
        }
        portable_sleep_ms(10);
    }
    return false;
}
#endif

#ifndef _WIN32 /* custom transports exist on Linux only (SRS_ASYNC_SOCKET_WIN32_04_001) */
/* ---- a custom transport over a descriptor (send / recv semantics) ---------- */

typedef struct CUSTOM_IO_TAG
{
    int fd;
    ASYNC_SOCKET_HANDLE expected_handle;
    atomic_uint send_calls;
    atomic_uint recv_calls;
    atomic_uint handle_mismatches;
    atomic_int send_errno;   /* non-zero: the next on_send fails with it */
    atomic_int recv_errno;   /* non-zero: the next on_recv fails with it */
    atomic_int fail_send_after_would_block; /* errno for the first on_send after a real EAGAIN */
    atomic_int saw_would_block;
} CUSTOM_IO;

static void custom_io_init(CUSTOM_IO* io)
{
    io->fd = -1;
    io->expected_handle = NULL;
    atomic_init(&io->send_calls, 0);
    atomic_init(&io->recv_calls, 0);
    atomic_init(&io->handle_mismatches, 0);
    atomic_init(&io->send_errno, 0);
    atomic_init(&io->recv_errno, 0);
    atomic_init(&io->fail_send_after_would_block, 0);
    atomic_init(&io->saw_would_block, 0);
}

static int custom_send(void* context, ASYNC_SOCKET_HANDLE async_socket, const void* buf, size_t len)
{
    CUSTOM_IO* io = context;
    int e;
    ssize_t n;
    atomic_fetch_add(&io->send_calls, 1);
    if (async_socket != io->expected_handle) {
        atomic_fetch_add(&io->handle_mismatches, 1);
    }
    e = atomic_exchange(&io->send_errno, 0);
    if (e != 0) {
        errno = e;
        return -1;
    }
    if (atomic_load(&io->saw_would_block) != 0 && atomic_load(&io->fail_send_after_would_block) != 0) {
        errno = atomic_load(&io->fail_send_after_would_block);
        return -1;
    }
    n = send(io->fd, buf, len > INT_MAX ? INT_MAX : len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        atomic_store(&io->saw_would_block, 1);
    }
    return (int)n;
}

static int custom_recv(void* context, ASYNC_SOCKET_HANDLE async_socket, void* buf, size_t len)
{
    CUSTOM_IO* io = context;
    int e;
    atomic_fetch_add(&io->recv_calls, 1);
    if (async_socket != io->expected_handle) {
        atomic_fetch_add(&io->handle_mismatches, 1);
    }
    e = atomic_exchange(&io->recv_errno, 0);
    if (e != 0) {
        errno = e;
        return -1;
    }
    return (int)recv(io->fd, buf, len > INT_MAX ? INT_MAX : len, MSG_DONTWAIT);
}

/* An OPEN custom-transport async socket over one end of a loopback pair. */
static bool make_custom_socket(CUSTOM_IO* io, ASYNC_SOCKET_HANDLE* s, SOCKET_TRANSPORT_HANDLE* peer)
{
    SOCKET_TRANSPORT_HANDLE mine;
    custom_io_init(io);
    *s = NULL;
    if (!make_transport_pair(&mine, peer)) {
        return false;
    }
    io->fd = socket_transport_get_underlying_socket(mine);
    *s = async_socket_create_with_transport(g_engine, custom_send, io, custom_recv, io);
    io->expected_handle = *s;
    if (*s == NULL || !open_with(*s, mine)) {
        async_socket_destroy(*s);
        socket_transport_destroy(mine);
        socket_transport_destroy(*peer);
        *s = NULL;
        return false;
    }
    return true;
}
#endif /* custom transport */

static int dummy_send(void* context, ASYNC_SOCKET_HANDLE async_socket, const void* buf, size_t len)
{
    (void)context;
    (void)async_socket;
    (void)buf;
    return (int)len;
}

static int dummy_recv(void* context, ASYNC_SOCKET_HANDLE async_socket, void* buf, size_t len)
{
    (void)context;
    (void)async_socket;
    (void)buf;
    (void)len;
    errno = EAGAIN;
    return -1;
}

/* ======================= create ============================================ */

static void test_SRS_ASYNC_SOCKET_LINUX_11_001_SRS_ASYNC_SOCKET_WIN32_01_001_create_returns_a_handle(void)
{
    ASYNC_SOCKET_HANDLE s = async_socket_create(g_engine);
    CHECK(s != NULL);
    async_socket_destroy(s);
}

#ifndef _WIN32 /* create_with_transport (SRS_ASYNC_SOCKET_WIN32_04_001) and the NULL default engine (01_002) are Linux's */
static void test_SRS_ASYNC_SOCKET_LINUX_11_001_create_with_transport_returns_a_handle(void)
{
    ASYNC_SOCKET_HANDLE s = async_socket_create_with_transport(g_engine, dummy_send, NULL, dummy_recv, NULL);
    CHECK(s != NULL);
    async_socket_destroy(s);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_002_create_with_null_engine_uses_the_default_engine(void)
{
    ASYNC_SOCKET_HANDLE a;
    ASYNC_SOCKET_HANDLE b;
    char out[] = "default engine";
    char in[sizeof out];
    ASYNC_SOCKET_BUFFER ob;
    ASYNC_SOCKET_BUFFER ib;
    COMPLETION sent;
    COMPLETION received;
    REQUIRE(make_async_pair(NULL, &a, &b));
    completion_init(&sent);
    completion_init(&received);
    ob.buffer = out;
    ob.length = sizeof out;
    ib.buffer = in;
    ib.length = sizeof in;
    CHECK(async_socket_receive_async(b, &ib, 1, record_receive, &received) == 0);
    CHECK(async_socket_send_async(a, &ob, 1, record_send, &sent) == ASYNC_SOCKET_SEND_SYNC_OK);
    CHECK(completion_wait(&sent, 1) && sent.result == ASYNC_SOCKET_SEND_OK);
    CHECK(completion_wait(&received, 1) && received.result == ASYNC_SOCKET_RECEIVE_OK);
    async_socket_destroy(a);
    async_socket_destroy(b);
    CHECK(received.total_bytes == sizeof out && memcmp(in, out, sizeof out) == 0);
    completion_deinit(&sent);
    completion_deinit(&received);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_002_create_with_transport_with_null_engine_succeeds(void)
{
    ASYNC_SOCKET_HANDLE s = async_socket_create_with_transport(NULL, dummy_send, NULL, dummy_recv, NULL);
    CHECK(s != NULL);
    async_socket_destroy(s);
}

static void test_SRS_ASYNC_SOCKET_LINUX_04_002_create_with_transport_with_null_on_send_fails(void)
{
    CHECK(async_socket_create_with_transport(g_engine, NULL, NULL, dummy_recv, NULL) == NULL);
    CHECK(async_socket_create_with_transport(NULL, NULL, NULL, dummy_recv, NULL) == NULL);
}

static void test_SRS_ASYNC_SOCKET_LINUX_04_003_create_with_transport_with_null_on_recv_fails(void)
{
    CHECK(async_socket_create_with_transport(g_engine, dummy_send, NULL, NULL, NULL) == NULL);
    CHECK(async_socket_create_with_transport(NULL, dummy_send, NULL, NULL, NULL) == NULL);
    CHECK(async_socket_create_with_transport(NULL, NULL, NULL, NULL, NULL) == NULL);
}
#endif

static void
test_SRS_ASYNC_SOCKET_LINUX_11_022_SRS_ASYNC_SOCKET_WIN32_42_004_SRS_ASYNC_SOCKET_WIN32_42_005_socket_holds_an_engine_reference_until_destroy(
    void)
{
    const EXECUTION_ENGINE_PARAMETERS p = {3, 0};
#ifndef _WIN32 /* Linux: the engine's threads are counted in /proc */
    const unsigned before = stable_thread_count();
#endif
    EXECUTION_ENGINE_HANDLE engine = execution_engine_create(&p);
    ASYNC_SOCKET_HANDLE a;
    ASYNC_SOCKET_HANDLE b;
    char data[] = "still alive";
    char in[4];
    ASYNC_SOCKET_BUFFER buf;
    ASYNC_SOCKET_BUFFER ib;
    COMPLETION sent;
    COMPLETION received;
    REQUIRE(engine != NULL);
#ifndef _WIN32
    REQUIRE(before != 0);
    CHECK(wait_thread_count(before + 3));
#endif
    REQUIRE(make_async_pair(engine, &a, &b));
    execution_engine_dec_ref(engine); /* the sockets keep it alive */
#ifndef _WIN32
    CHECK(process_thread_count() == before + 3);
#endif
    completion_init(&sent);
    completion_init(&received);
    buf.buffer = data;
    buf.length = sizeof data;
    CHECK(async_socket_send_async(a, &buf, 1, record_send, &sent) == ASYNC_SOCKET_SEND_SYNC_OK);
    CHECK(completion_wait(&sent, 1) && sent.result == ASYNC_SOCKET_SEND_OK);
    async_socket_destroy(a);
#ifndef _WIN32
    CHECK(process_thread_count() == before + 3);
#endif
    /* b's reference still runs its callbacks: the bytes a sent, then end of stream */
    ib.buffer = in;
    ib.length = sizeof in;
    CHECK(async_socket_receive_async(b, &ib, 1, record_receive, &received) == 0);
    CHECK(completion_wait(&received, 1) && received.result == ASYNC_SOCKET_RECEIVE_OK);
    async_socket_destroy(b); /* the last reference: the engine stops */
#ifndef _WIN32
    CHECK(wait_thread_count(before));
#endif
    completion_deinit(&sent);
    completion_deinit(&received);
}

/* ======================= destroy =========================================== */

static void test_SRS_ASYNC_SOCKET_LINUX_11_019_SRS_ASYNC_SOCKET_WIN32_01_004_destroy_with_null_returns(void)
{
    async_socket_destroy(NULL);
    CHECK(1);
}

static void
test_SRS_ASYNC_SOCKET_LINUX_11_021_SRS_ASYNC_SOCKET_WIN32_01_006_destroy_of_an_open_socket_closes_it_and_abandons_pending_operations(
    void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    unsigned char in[16];
    ASYNC_SOCKET_BUFFER ib;
    COMPLETION received;
    COMPLETION notified;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    completion_init(&received);
    completion_init(&notified);
    ib.buffer = in;
    ib.length = sizeof in;
    CHECK(async_socket_receive_async(a, &ib, 1, record_receive, &received) == 0);
#ifndef _WIN32 /* notify_io_async: Linux only (SRS_ASYNC_SOCKET_WIN32_04_002) */
    CHECK(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, record_notify, &notified) == 0);
#endif
    async_socket_destroy(a);
    /* exactly once, before destroy returned */
    CHECK(completion_calls(&received) == 1 && received.result == ASYNC_SOCKET_RECEIVE_ABANDONED && received.bytes == 0);
#ifndef _WIN32
    CHECK(completion_calls(&notified) == 1 && notified.result == ASYNC_SOCKET_NOTIFY_IO_RESULT_ABANDONED);
#endif
    CHECK(peer_wait_shutdown(peer));
    socket_transport_destroy(peer);
    completion_deinit(&received);
    completion_deinit(&notified);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_103_destroy_destroys_the_transport(void)
{
    SOCKET_TRANSPORT_HANDLE t;
    SOCKET_TRANSPORT_HANDLE peer;
    ASYNC_SOCKET_HANDLE s;
    RAW_SOCKET fd;
    REQUIRE(make_transport_pair(&t, &peer));
    fd = support_raw_socket(socket_transport_get_underlying_socket(t));
    s = async_socket_create(g_engine);
    REQUIRE(s != NULL);
    REQUIRE(open_with(s, t));
    CHECK(!raw_socket_is_closed(fd));
    async_socket_destroy(s);
    CHECK(raw_socket_is_closed(fd));
    socket_transport_destroy(peer);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_023_SRS_ASYNC_SOCKET_WIN32_01_005_create_open_destroy_repeatedly(void)
{
    int i;
    for (i = 0; i < 200; ++i) {
        ASYNC_SOCKET_HANDLE a;
        SOCKET_TRANSPORT_HANDLE peer;
#ifdef _WIN32
        REQUIRE(make_async_and_peer(g_engine, &a, &peer)); /* no default engine (01_002) */
#else
        REQUIRE(make_async_and_peer(i % 2 == 0 ? g_engine : NULL, &a, &peer));
#endif
        async_socket_destroy(a);
        socket_transport_destroy(peer);
    }
    for (i = 0; i < 200; ++i) {
        async_socket_destroy(async_socket_create(g_engine)); /* never opened */
    }
}

/* ======================= open ============================================== */

static void test_SRS_ASYNC_SOCKET_LINUX_11_024_SRS_ASYNC_SOCKET_WIN32_01_007_open_with_null_handle_fails(void)
{
    SOCKET_TRANSPORT_HANDLE t = socket_transport_create_client();
    REQUIRE(t != NULL);
    CHECK(async_socket_open_async(NULL, t, never_open, NULL) != 0);
    socket_transport_destroy(t); /* still the caller's */
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_003_SRS_ASYNC_SOCKET_WIN32_01_034_open_with_null_transport_fails(void)
{
    ASYNC_SOCKET_HANDLE s = async_socket_create(g_engine);
    REQUIRE(s != NULL);
    CHECK(async_socket_open_async(s, NULL, never_open, NULL) != 0);
    async_socket_destroy(s);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_025_SRS_ASYNC_SOCKET_WIN32_01_008_open_with_null_callback_fails(void)
{
    SOCKET_TRANSPORT_HANDLE t;
    SOCKET_TRANSPORT_HANDLE peer;
    ASYNC_SOCKET_HANDLE s = async_socket_create(g_engine);
    REQUIRE(s != NULL);
    REQUIRE(make_transport_pair(&t, &peer));
    CHECK(async_socket_open_async(s, t, NULL, NULL) != 0);
    /* Not opened: sends are refused, and the transport is still the caller's. */
    {
        char byte = 'x';
        ASYNC_SOCKET_BUFFER b;
        b.buffer = &byte;
        b.length = 1;
        CHECK(async_socket_send_async(s, &b, 1, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_NOT_OPEN);
    }
    CHECK(open_with(s, t)); /* and it can still be opened */
    async_socket_destroy(s);
    socket_transport_destroy(peer);
}

static COMPLETION g_null_context_completion;

static void record_open_null_context(void* context, ASYNC_SOCKET_OPEN_RESULT open_result)
{
    CHECK(context == NULL);
    record_open(&g_null_context_completion, open_result);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_026_SRS_ASYNC_SOCKET_WIN32_01_009_open_with_null_context_succeeds(void)
{
    SOCKET_TRANSPORT_HANDLE t;
    SOCKET_TRANSPORT_HANDLE peer;
    ASYNC_SOCKET_HANDLE s = async_socket_create(g_engine);
    REQUIRE(s != NULL);
    REQUIRE(make_transport_pair(&t, &peer));
    completion_init(&g_null_context_completion);
    CHECK(async_socket_open_async(s, t, record_open_null_context, NULL) == 0);
    CHECK(completion_calls(&g_null_context_completion) == 1);
    CHECK(g_null_context_completion.result == ASYNC_SOCKET_OPEN_OK);
    async_socket_destroy(s);
    socket_transport_destroy(peer);
    completion_deinit(&g_null_context_completion);
}

static void
test_SRS_ASYNC_SOCKET_LINUX_11_027_11_028_11_031_11_032_11_033_SRS_ASYNC_SOCKET_WIN32_01_014_01_017_01_094_open_succeeds_and_calls_back_ok(
    void)
{
    SOCKET_TRANSPORT_HANDLE t;
    SOCKET_TRANSPORT_HANDLE peer;
    ASYNC_SOCKET_HANDLE s = async_socket_create(g_engine);
    COMPLETION opened;
    COMPLETION notified;
#ifdef _WIN32
    char byte = 0;
    ASYNC_SOCKET_BUFFER b;
#endif
    REQUIRE(s != NULL);
    REQUIRE(make_transport_pair(&t, &peer));
    completion_init(&opened);
    completion_init(&notified);
    CHECK(async_socket_open_async(s, t, record_open, &opened) == 0);
    /* the callback ran once, with OK, before open returned */
    CHECK(completion_calls(&opened) == 1 && opened.result == ASYNC_SOCKET_OPEN_OK);
#ifdef _WIN32
    /* registered with the engine's thread pool: a receive completes (no notify on Windows, 04_002) */
    b.buffer = &byte;
    b.length = 1;
    CHECK(async_socket_receive_async(s, &b, 1, record_receive, &notified) == 0);
    CHECK(peer_send_all(peer, "x", 1));
    CHECK(completion_wait(&notified, 1) && notified.result == ASYNC_SOCKET_RECEIVE_OK && byte == 'x');
#else
    /* registered with the engine: readiness is reported */
    CHECK(async_socket_notify_io_async(s, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, record_notify, &notified) == 0);
    CHECK(peer_send_all(peer, "x", 1));
    CHECK(completion_wait(&notified, 1) && notified.result == ASYNC_SOCKET_NOTIFY_IO_RESULT_IN);
#endif
    async_socket_destroy(s);
    socket_transport_destroy(peer);
    completion_deinit(&opened);
    completion_deinit(&notified);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_029_SRS_ASYNC_SOCKET_WIN32_01_015_open_when_already_open_fails(void)
{
    SOCKET_TRANSPORT_HANDLE t;
    SOCKET_TRANSPORT_HANDLE peer;
    SOCKET_TRANSPORT_HANDLE t2;
    SOCKET_TRANSPORT_HANDLE peer2;
    ASYNC_SOCKET_HANDLE s = async_socket_create(g_engine);
    REQUIRE(s != NULL);
    REQUIRE(make_transport_pair(&t, &peer));
    REQUIRE(make_transport_pair(&t2, &peer2));
    CHECK(open_with(s, t));
    CHECK(async_socket_open_async(s, t2, never_open, NULL) != 0);
    CHECK(async_socket_open_async(s, t, never_open, NULL) != 0);
    async_socket_destroy(s);
    /* t2 was not taken */
    CHECK(socket_transport_is_valid_socket(t2));
    socket_transport_destroy(t2);
    socket_transport_destroy(peer);
    socket_transport_destroy(peer2);
}

static void test_SRS_ASYNC_SOCKET_WIN32_open_after_close_fails_the_socket_is_not_reopenable(void)
{
    SOCKET_TRANSPORT_HANDLE t;
    SOCKET_TRANSPORT_HANDLE peer;
    SOCKET_TRANSPORT_HANDLE t2;
    SOCKET_TRANSPORT_HANDLE peer2;
    ASYNC_SOCKET_HANDLE s = async_socket_create(g_engine);
    REQUIRE(s != NULL);
    REQUIRE(make_transport_pair(&t, &peer));
    REQUIRE(make_transport_pair(&t2, &peer2));
    CHECK(open_with(s, t));
    async_socket_close(s);
    CHECK(async_socket_open_async(s, t2, never_open, NULL) != 0);
    async_socket_destroy(s);
    socket_transport_destroy(t2);
    socket_transport_destroy(peer);
    socket_transport_destroy(peer2);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_034_open_with_a_transport_without_a_socket_fails(void)
{
    ASYNC_SOCKET_HANDLE s = async_socket_create(g_engine);
    SOCKET_TRANSPORT_HANDLE never_connected = socket_transport_create_client();
    SOCKET_TRANSPORT_HANDLE t;
    SOCKET_TRANSPORT_HANDLE peer;
    REQUIRE(s != NULL && never_connected != NULL);
    CHECK(async_socket_open_async(s, never_connected, never_open, NULL) != 0);
    REQUIRE(make_transport_pair(&t, &peer));
    socket_transport_disconnect(t);
    CHECK(async_socket_open_async(s, t, never_open, NULL) != 0);
    async_socket_destroy(s);
    socket_transport_destroy(never_connected);
    socket_transport_destroy(t);
    socket_transport_destroy(peer);
}

/* ======================= close ============================================= */

static void test_SRS_ASYNC_SOCKET_LINUX_11_035_SRS_ASYNC_SOCKET_WIN32_01_018_close_with_null_returns(void)
{
    async_socket_close(NULL);
    CHECK(1);
}

static void
test_SRS_ASYNC_SOCKET_LINUX_11_036_11_041_SRS_ASYNC_SOCKET_WIN32_01_019_01_021_close_leaves_the_socket_closed(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char byte = 'x';
    ASYNC_SOCKET_BUFFER b;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    b.buffer = &byte;
    b.length = 1;
    async_socket_close(a);
    CHECK(async_socket_send_async(a, &b, 1, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_NOT_OPEN);
    CHECK(async_socket_receive_async(a, &b, 1, never_receive, NULL) != 0);
    CHECK(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_OUT, never_notify, NULL) != 0);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_104_close_disconnects_the_transport(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    async_socket_close(a);
    CHECK(peer_wait_shutdown(peer)); /* before destroy */
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_042_SRS_ASYNC_SOCKET_WIN32_01_022_close_when_not_open_returns(void)
{
    ASYNC_SOCKET_HANDLE never_opened = async_socket_create(g_engine);
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    REQUIRE(never_opened != NULL);
    async_socket_close(never_opened);
    async_socket_close(never_opened);
    async_socket_destroy(never_opened);
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    async_socket_close(a);
    async_socket_close(a); /* already closed */
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static void
test_SRS_ASYNC_SOCKET_LINUX_11_080_11_081_04_008_close_completes_pending_operations_abandoned_before_it_returns(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    const size_t big = 32u << 20;
    unsigned char* out = malloc(big);
    unsigned char in[64];
    ASYNC_SOCKET_BUFFER ob;
    ASYNC_SOCKET_BUFFER ib;
    COMPLETION sent;
    COMPLETION received;
    COMPLETION notified;
    REQUIRE(out != NULL);
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    completion_init(&sent);
    completion_init(&received);
    completion_init(&notified);
    memset(out, 'z', big);
    ob.buffer = out;
    ob.length = (uint32_t)big;
    ib.buffer = in;
    ib.length = sizeof in;
    CHECK(async_socket_receive_async(a, &ib, 1, record_receive, &received) == 0);
#ifndef _WIN32 /* notify_io_async: Linux only (SRS_ASYNC_SOCKET_WIN32_04_002) */
    CHECK(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, record_notify, &notified) == 0);
#endif
    CHECK(async_socket_send_async(a, &ob, 1, record_send, &sent) == ASYNC_SOCKET_SEND_SYNC_OK); /* stays pending */
    async_socket_close(a);
    CHECK(completion_calls(&received) == 1 && received.result == ASYNC_SOCKET_RECEIVE_ABANDONED);
#ifndef _WIN32
    CHECK(completion_calls(&notified) == 1 && notified.result == ASYNC_SOCKET_NOTIFY_IO_RESULT_ABANDONED);
#endif
    CHECK(completion_calls(&sent) == 1 && sent.result == ASYNC_SOCKET_SEND_ABANDONED);
    async_socket_destroy(a);
    CHECK(completion_calls(&received) == 1 && completion_calls(&sent) == 1);
#ifndef _WIN32
    CHECK(completion_calls(&notified) == 1);
#endif
    socket_transport_destroy(peer);
    free(out);
    completion_deinit(&sent);
    completion_deinit(&received);
    completion_deinit(&notified);
}

#ifndef _WIN32 /* notify_io_async: Linux only (SRS_ASYNC_SOCKET_WIN32_04_002) */
static void test_close_delivers_a_notify_that_was_ready_at_start_before_it_returns(void)
{
    int i;
    for (i = 0; i < 300; ++i) {
        ASYNC_SOCKET_HANDLE a;
        SOCKET_TRANSPORT_HANDLE peer;
        COMPLETION notified;
        REQUIRE(make_async_and_peer(g_engine, &a, &peer));
        completion_init(&notified);
        /* writable now: finishes at once, its callback deferred to an engine thread */
        CHECK(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_OUT, record_notify, &notified) == 0);
        async_socket_close(a);
        CHECK(completion_calls(&notified) == 1);
        CHECK(notified.result == ASYNC_SOCKET_NOTIFY_IO_RESULT_OUT ||
              notified.result == ASYNC_SOCKET_NOTIFY_IO_RESULT_ABANDONED);
        async_socket_destroy(a);
        CHECK(completion_calls(&notified) == 1);
        socket_transport_destroy(peer);
        completion_deinit(&notified);
    }
}
#endif

typedef struct CLOSE_RACE_TAG
{
    ASYNC_SOCKET_HANDLE socket;
    COMPLETION* sends;
    COMPLETION* receives;
    atomic_uint accepted_sends;
    atomic_uint accepted_receives;
    atomic_int stop;
} CLOSE_RACE;

static void close_race_worker(void* arg)
{
    CLOSE_RACE* r = arg;
    static char payload[512];
    static char in[512]; /* outlives the receives; the peer never sends, so never written */
    int i;
    for (i = 0; i < 2000 && !atomic_load(&r->stop); ++i) {
        ASYNC_SOCKET_BUFFER b;
        ASYNC_SOCKET_SEND_SYNC_RESULT sr;
        b.buffer = payload;
        b.length = sizeof payload;
        sr = async_socket_send_async(r->socket, &b, 1, record_send, r->sends);
        if (sr == ASYNC_SOCKET_SEND_SYNC_OK) {
            atomic_fetch_add(&r->accepted_sends, 1);
        } else if (sr != ASYNC_SOCKET_SEND_SYNC_NOT_OPEN) {
            harness_record_failure(__FILE__, __LINE__, "send during close returned neither OK nor NOT_OPEN");
        }
        if (i % 16 == 0) {
            /* receive buffers must outlive the operation: the peer never
             * sends, so these complete ABANDONED without touching `in` */
            b.buffer = in;
            if (async_socket_receive_async(r->socket, &b, 1, record_receive, r->receives) == 0) {
                atomic_fetch_add(&r->accepted_receives, 1);
            }
        }
    }
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_037_SRS_ASYNC_SOCKET_WIN32_01_020_close_waits_for_executing_sends_and_receives(
    void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    COMPLETION sends;
    COMPLETION receives;
    CLOSE_RACE race;
    PORTABLE_THREAD threads[4];
    int i;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    completion_init(&sends);
    completion_init(&receives);
    race.socket = a;
    race.sends = &sends;
    race.receives = &receives;
    atomic_init(&race.accepted_sends, 0);
    atomic_init(&race.accepted_receives, 0);
    atomic_init(&race.stop, 0);
    for (i = 0; i < 4; ++i) {
        REQUIRE(portable_thread_start(&threads[i], close_race_worker, &race));
    }
    portable_sleep_ms(5); /* not a timing assertion: lets the workers get going */
    async_socket_close(a);
    atomic_store(&race.stop, 1);
    for (i = 0; i < 4; ++i) {
        portable_thread_join(&threads[i]);
    }
    /* every accepted operation completed exactly once, none after close */
    CHECK(completion_calls(&sends) == atomic_load(&race.accepted_sends));
    CHECK(completion_calls(&receives) == atomic_load(&race.accepted_receives));
    CHECK(completion_count_of(&receives, ASYNC_SOCKET_RECEIVE_ABANDONED) == atomic_load(&race.accepted_receives));
    async_socket_destroy(a);
    CHECK(completion_calls(&sends) == atomic_load(&race.accepted_sends));
    socket_transport_destroy(peer);
    completion_deinit(&sends);
    completion_deinit(&receives);
}

/* ======================= send ============================================== */

static void test_SRS_ASYNC_SOCKET_LINUX_11_043_SRS_ASYNC_SOCKET_WIN32_01_024_send_with_null_handle_fails(void)
{
    char byte = 'x';
    ASYNC_SOCKET_BUFFER b;
    b.buffer = &byte;
    b.length = 1;
    CHECK(async_socket_send_async(NULL, &b, 1, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_ERROR);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_044_SRS_ASYNC_SOCKET_WIN32_01_025_send_with_null_payload_fails(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    CHECK(async_socket_send_async(a, NULL, 1, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_ERROR);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_045_SRS_ASYNC_SOCKET_WIN32_01_085_send_with_zero_buffer_count_fails(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char byte = 'x';
    ASYNC_SOCKET_BUFFER b;
    b.buffer = &byte;
    b.length = 1;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    CHECK(async_socket_send_async(a, &b, 0, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_ERROR);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_046_SRS_ASYNC_SOCKET_WIN32_01_089_send_with_a_null_buffer_fails(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char bytes[2] = {'x', 'y'};
    ASYNC_SOCKET_BUFFER b[3];
    b[0].buffer = &bytes[0];
    b[0].length = 1;
    b[1].buffer = NULL;
    b[1].length = 1;
    b[2].buffer = &bytes[1];
    b[2].length = 1;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    CHECK(async_socket_send_async(a, b, 3, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_ERROR);
    CHECK(async_socket_send_async(a, &b[1], 1, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_ERROR);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_047_SRS_ASYNC_SOCKET_WIN32_01_090_send_with_a_zero_length_buffer_fails(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char bytes[3] = {'x', 'y', 'z'};
    ASYNC_SOCKET_BUFFER b[3];
    b[0].buffer = &bytes[0];
    b[0].length = 1;
    b[1].buffer = &bytes[1];
    b[1].length = 0;
    b[2].buffer = &bytes[2];
    b[2].length = 1;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    CHECK(async_socket_send_async(a, b, 3, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_ERROR);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static void
test_SRS_ASYNC_SOCKET_LINUX_11_048_SRS_ASYNC_SOCKET_WIN32_01_101_send_with_lengths_summing_past_uint32_max_fails(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char byte = 'x';
    ASYNC_SOCKET_BUFFER b[3];
    /* never read: the sum is checked before any byte is touched */
    b[0].buffer = &byte;
    b[0].length = UINT32_MAX;
    b[1].buffer = &byte;
    b[1].length = 1;
    b[2].buffer = &byte;
    b[2].length = 0x80000000u;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    CHECK(async_socket_send_async(a, b, 2, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_ERROR);
    b[0].length = 0x80000000u;
    b[1].length = 0x80000000u;
    CHECK(async_socket_send_async(a, b, 2, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_ERROR);
    CHECK(async_socket_send_async(a, b, 3, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_ERROR);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_049_SRS_ASYNC_SOCKET_WIN32_01_026_send_with_null_callback_fails(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char byte = 'x';
    ASYNC_SOCKET_BUFFER b;
    b.buffer = &byte;
    b.length = 1;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    CHECK(async_socket_send_async(a, &b, 1, NULL, NULL) == ASYNC_SOCKET_SEND_SYNC_ERROR);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static COMPLETION g_null_context_sends;
static void record_send_null_context(void* context, ASYNC_SOCKET_SEND_RESULT r)
{
    CHECK(context == NULL);
    record_send(&g_null_context_sends, r);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_050_SRS_ASYNC_SOCKET_WIN32_01_027_send_with_null_context_succeeds(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char byte = 'x';
    char got = 0;
    ASYNC_SOCKET_BUFFER b;
    b.buffer = &byte;
    b.length = 1;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    completion_init(&g_null_context_sends);
    CHECK(async_socket_send_async(a, &b, 1, record_send_null_context, NULL) == ASYNC_SOCKET_SEND_SYNC_OK);
    CHECK(completion_wait(&g_null_context_sends, 1) && g_null_context_sends.result == ASYNC_SOCKET_SEND_OK);
    CHECK(peer_receive_exact(peer, &got, 1) && got == 'x');
    async_socket_destroy(a);
    socket_transport_destroy(peer);
    CHECK(completion_calls(&g_null_context_sends) == 1);
    completion_deinit(&g_null_context_sends);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_051_SRS_ASYNC_SOCKET_WIN32_01_097_send_when_not_open_returns_not_open(void)
{
    ASYNC_SOCKET_HANDLE never_opened = async_socket_create(g_engine);
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char byte = 'x';
    ASYNC_SOCKET_BUFFER b;
    b.buffer = &byte;
    b.length = 1;
    REQUIRE(never_opened != NULL);
    CHECK(async_socket_send_async(never_opened, &b, 1, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_NOT_OPEN);
    async_socket_destroy(never_opened);
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    async_socket_close(a);
    CHECK(async_socket_send_async(a, &b, 1, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_NOT_OPEN);
    /* argument errors are reported before the state */
    CHECK(async_socket_send_async(a, &b, 0, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_ERROR);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static void
test_SRS_ASYNC_SOCKET_LINUX_04_001_04_004_11_061_11_062_SRS_ASYNC_SOCKET_WIN32_01_045_01_066_send_succeeds_and_calls_back_ok_once(
    void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char out[3][5] = {"abcd", "efgh", "ijkl"};
    char in[12];
    ASYNC_SOCKET_BUFFER b[3];
    COMPLETION sent;
    int i;
    for (i = 0; i < 3; ++i) {
        b[i].buffer = out[i];
        b[i].length = 4;
    }
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    completion_init(&sent);
    CHECK(async_socket_send_async(a, b, 3, record_send, &sent) == ASYNC_SOCKET_SEND_SYNC_OK);
    memset(b, 0, sizeof b); /* the array is the caller's again as soon as the call returned */
    CHECK(completion_wait(&sent, 1) && sent.result == ASYNC_SOCKET_SEND_OK);
    CHECK(peer_receive_exact(peer, in, sizeof in) && memcmp(in, "abcdefghijkl", 12) == 0);
    async_socket_destroy(a);
    CHECK(completion_calls(&sent) == 1);
    socket_transport_destroy(peer);
    completion_deinit(&sent);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_059_SRS_ASYNC_SOCKET_WIN32_42_002_send_after_peer_reset_returns_not_open(void)
{
    ASYNC_SOCKET_HANDLE a;
    RAW_SOCKET peer_fd;
    SOCKET_HANDLE fd;
    char byte = 'x';
    ASYNC_SOCKET_BUFFER b;
    b.buffer = &byte;
    b.length = 1;
    REQUIRE(make_async_and_raw_peer(g_engine, &a, &peer_fd, &fd));
    raw_reset(peer_fd);
    CHECK(wait_error(fd)); /* the reset has arrived */
    CHECK(async_socket_send_async(a, &b, 1, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_NOT_OPEN); /* ECONNRESET */
    CHECK(async_socket_send_async(a, &b, 1, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_NOT_OPEN); /* EPIPE */
    async_socket_destroy(a);
}

#ifndef _WIN32 /* SIGPIPE and custom transports are Linux's */
static void test_SRS_ASYNC_SOCKET_LINUX_11_052_send_to_a_closed_peer_does_not_raise_sigpipe(void)
{
    ASYNC_SOCKET_HANDLE a;
    RAW_SOCKET peer_fd;
    SOCKET_HANDLE fd;
    char byte = 'x';
    ASYNC_SOCKET_BUFFER b;
    COMPLETION sent;
    int i;
    b.buffer = &byte;
    b.length = 1;
    REQUIRE(make_async_and_raw_peer(g_engine, &a, &peer_fd, &fd));
    completion_init(&sent);
    raw_close(peer_fd); /* FIN; the next bytes are answered with a reset */
    CHECK(async_socket_send_async(a, &b, 1, record_send, &sent) == ASYNC_SOCKET_SEND_SYNC_OK);
    CHECK(completion_wait(&sent, 1) && sent.result == ASYNC_SOCKET_SEND_OK);
    CHECK(wait_error(fd)); /* the reset has arrived */
    for (i = 0; i < 3; ++i) {
        /* without MSG_NOSIGNAL the EPIPE of these sends would kill the process */
        CHECK(async_socket_send_async(a, &b, 1, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_NOT_OPEN);
    }
    async_socket_destroy(a);
    completion_deinit(&sent);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_060_11_063_send_with_a_transport_error_fails(void)
{
    CUSTOM_IO io;
    ASYNC_SOCKET_HANDLE s;
    SOCKET_TRANSPORT_HANDLE peer;
    char byte = 'x';
    ASYNC_SOCKET_BUFFER b;
    b.buffer = &byte;
    b.length = 1;
    REQUIRE(make_custom_socket(&io, &s, &peer));
    atomic_store(&io.send_errno, EINVAL);
    CHECK(async_socket_send_async(s, &b, 1, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_ERROR);
    atomic_store(&io.send_errno, ECONNRESET); /* 11_059 through a custom transport */
    CHECK(async_socket_send_async(s, &b, 1, never_send, NULL) == ASYNC_SOCKET_SEND_SYNC_NOT_OPEN);
    async_socket_destroy(s);
    socket_transport_destroy(peer);
}
#endif

/* ======================= receive =========================================== */

static void test_SRS_ASYNC_SOCKET_LINUX_11_064_SRS_ASYNC_SOCKET_WIN32_01_073_receive_with_null_handle_fails(void)
{
    char byte;
    ASYNC_SOCKET_BUFFER b;
    b.buffer = &byte;
    b.length = 1;
    CHECK(async_socket_receive_async(NULL, &b, 1, never_receive, NULL) != 0);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_065_SRS_ASYNC_SOCKET_WIN32_01_074_receive_with_null_payload_fails(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    CHECK(async_socket_receive_async(a, NULL, 1, never_receive, NULL) != 0);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_066_SRS_ASYNC_SOCKET_WIN32_01_086_receive_with_zero_buffer_count_fails(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char byte;
    ASYNC_SOCKET_BUFFER b;
    b.buffer = &byte;
    b.length = 1;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    CHECK(async_socket_receive_async(a, &b, 0, never_receive, NULL) != 0);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_067_SRS_ASYNC_SOCKET_WIN32_01_091_receive_with_a_null_buffer_fails(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char bytes[2];
    ASYNC_SOCKET_BUFFER b[2];
    b[0].buffer = &bytes[0];
    b[0].length = 1;
    b[1].buffer = NULL;
    b[1].length = 1;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    CHECK(async_socket_receive_async(a, b, 2, never_receive, NULL) != 0);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_068_SRS_ASYNC_SOCKET_WIN32_01_092_receive_with_a_zero_length_buffer_fails(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char bytes[2];
    ASYNC_SOCKET_BUFFER b[2];
    b[0].buffer = &bytes[0];
    b[0].length = 0;
    b[1].buffer = &bytes[1];
    b[1].length = 1;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    CHECK(async_socket_receive_async(a, b, 2, never_receive, NULL) != 0);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static void
test_SRS_ASYNC_SOCKET_LINUX_11_069_SRS_ASYNC_SOCKET_WIN32_01_096_receive_with_lengths_summing_past_uint32_max_fails(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char byte;
    ASYNC_SOCKET_BUFFER b[2];
    b[0].buffer = &byte; /* never written: rejected first */
    b[0].length = 0x80000000u;
    b[1].buffer = &byte;
    b[1].length = 0x80000000u;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    CHECK(async_socket_receive_async(a, b, 2, never_receive, NULL) != 0);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_070_SRS_ASYNC_SOCKET_WIN32_01_075_receive_with_null_callback_fails(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char byte;
    ASYNC_SOCKET_BUFFER b;
    b.buffer = &byte;
    b.length = 1;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    CHECK(async_socket_receive_async(a, &b, 1, NULL, NULL) != 0);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static COMPLETION g_null_context_receives;
static void record_receive_null_context(void* context, ASYNC_SOCKET_RECEIVE_RESULT r, uint32_t n)
{
    CHECK(context == NULL);
    record_receive(&g_null_context_receives, r, n);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_071_SRS_ASYNC_SOCKET_WIN32_01_076_receive_with_null_context_succeeds(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char byte = 0;
    ASYNC_SOCKET_BUFFER b;
    b.buffer = &byte;
    b.length = 1;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    completion_init(&g_null_context_receives);
    CHECK(async_socket_receive_async(a, &b, 1, record_receive_null_context, NULL) == 0);
    CHECK(peer_send_all(peer, "q", 1));
    CHECK(completion_wait(&g_null_context_receives, 1));
    CHECK(g_null_context_receives.result == ASYNC_SOCKET_RECEIVE_OK && byte == 'q');
    async_socket_destroy(a);
    socket_transport_destroy(peer);
    completion_deinit(&g_null_context_receives);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_072_11_078_SRS_ASYNC_SOCKET_WIN32_01_098_01_084_receive_when_not_open_fails(void)
{
    ASYNC_SOCKET_HANDLE never_opened = async_socket_create(g_engine);
    char byte;
    ASYNC_SOCKET_BUFFER b;
    b.buffer = &byte;
    b.length = 1;
    REQUIRE(never_opened != NULL);
    CHECK(async_socket_receive_async(never_opened, &b, 1, never_receive, NULL) != 0);
    async_socket_destroy(never_opened);
}

static void
test_SRS_ASYNC_SOCKET_LINUX_11_073_11_074_11_077_11_083_11_089_11_092_11_102_SRS_ASYNC_SOCKET_WIN32_01_069_01_083_receive_waits_and_fills_buffers_in_order(
    void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char first[3] = {0};
    char second[5] = {0};
    ASYNC_SOCKET_BUFFER b[2];
    COMPLETION received;
    b[0].buffer = first;
    b[0].length = sizeof first;
    b[1].buffer = second;
    b[1].length = sizeof second;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    completion_init(&received);
    support_enter_call();
    CHECK(async_socket_receive_async(a, b, 2, record_receive, &received) == 0);
    support_leave_call();
    memset(b, 0, sizeof b); /* the array was copied */
    /* nothing has arrived: EAGAIN keeps it pending */
    CHECK(completion_calls(&received) == 0);
    CHECK(peer_send_all(peer, "abcdefgh", 8));
    CHECK(completion_wait(&received, 1));
    CHECK(received.result == ASYNC_SOCKET_RECEIVE_OK);
    CHECK(received.inside_api_call == 0);
    if (received.bytes == 8) {
        CHECK(memcmp(first, "abc", 3) == 0 && memcmp(second, "defgh", 5) == 0);
    } else {
        /* bytes may arrive in pieces: what did arrive is in order */
        CHECK(received.bytes >= 1 && received.bytes < 8);
        CHECK(memcmp(first, "abc", received.bytes < 3 ? received.bytes : 3) == 0);
    }
    async_socket_destroy(a);
    CHECK(completion_calls(&received) == 1);
    socket_transport_destroy(peer);
    completion_deinit(&received);
}

static void
test_SRS_ASYNC_SOCKET_LINUX_11_091_SRS_ASYNC_SOCKET_WIN32_42_003_receive_after_peer_close_completes_abandoned(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char byte;
    ASYNC_SOCKET_BUFFER b;
    COMPLETION received;
    b.buffer = &byte;
    b.length = 1;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    completion_init(&received);
    CHECK(async_socket_receive_async(a, &b, 1, record_receive, &received) == 0);
    socket_transport_disconnect(peer);
    CHECK(completion_wait(&received, 1));
    CHECK(received.result == ASYNC_SOCKET_RECEIVE_ABANDONED && received.bytes == 0);
    async_socket_destroy(a);
    CHECK(completion_calls(&received) == 1);
    socket_transport_destroy(peer);
    completion_deinit(&received);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_090_SRS_ASYNC_SOCKET_WIN32_42_001_receive_after_peer_reset_completes_abandoned(
    void)
{
    ASYNC_SOCKET_HANDLE a;
    RAW_SOCKET peer_fd;
    char byte;
    ASYNC_SOCKET_BUFFER b;
    COMPLETION received;
    b.buffer = &byte;
    b.length = 1;
    REQUIRE(make_async_and_raw_peer(g_engine, &a, &peer_fd, NULL));
    completion_init(&received);
    CHECK(async_socket_receive_async(a, &b, 1, record_receive, &received) == 0);
    raw_reset(peer_fd);
    CHECK(completion_wait(&received, 1));
    CHECK(received.result == ASYNC_SOCKET_RECEIVE_ABANDONED && received.bytes == 0);
    async_socket_destroy(a);
    CHECK(completion_calls(&received) == 1);
    completion_deinit(&received);
}

#ifndef _WIN32 /* custom transports: Linux only (SRS_ASYNC_SOCKET_WIN32_04_001) */
static void test_SRS_ASYNC_SOCKET_LINUX_11_088_11_095_receive_with_a_transport_error_completes_error(void)
{
    CUSTOM_IO io;
    ASYNC_SOCKET_HANDLE s;
    SOCKET_TRANSPORT_HANDLE peer;
    char byte;
    ASYNC_SOCKET_BUFFER b;
    COMPLETION received;
    b.buffer = &byte;
    b.length = 1;
    REQUIRE(make_custom_socket(&io, &s, &peer));
    completion_init(&received);
    atomic_store(&io.recv_errno, EIO);
    CHECK(async_socket_receive_async(s, &b, 1, record_receive, &received) == 0);
    CHECK(completion_wait(&received, 1));
    CHECK(received.result == ASYNC_SOCKET_RECEIVE_ERROR && received.bytes == 0);
    CHECK(atomic_load(&io.handle_mismatches) == 0);
    async_socket_destroy(s);
    CHECK(completion_calls(&received) == 1);
    socket_transport_destroy(peer);
    completion_deinit(&received);
}
#endif

#ifndef _WIN32 /* custom transports (SRS_ASYNC_SOCKET_WIN32_04_001) and notify_io_async (04_002) are Linux's */
/* ======================= custom transport ================================== */

static void
test_SRS_ASYNC_SOCKET_LINUX_04_004_04_007_custom_transport_callbacks_move_the_bytes_and_get_the_socket_handle(void)
{
    CUSTOM_IO io;
    ASYNC_SOCKET_HANDLE s;
    SOCKET_TRANSPORT_HANDLE peer;
    char out[] = "through on_send";
    char in[32] = {0};
    char echo[sizeof out];
    ASYNC_SOCKET_BUFFER ob;
    ASYNC_SOCKET_BUFFER ib;
    COMPLETION sent;
    COMPLETION received;
    REQUIRE(make_custom_socket(&io, &s, &peer));
    completion_init(&sent);
    completion_init(&received);
    ob.buffer = out;
    ob.length = sizeof out;
    ib.buffer = in;
    ib.length = sizeof out;
    CHECK(async_socket_send_async(s, &ob, 1, record_send, &sent) == ASYNC_SOCKET_SEND_SYNC_OK);
    CHECK(completion_wait(&sent, 1) && sent.result == ASYNC_SOCKET_SEND_OK);
    CHECK(peer_receive_exact(peer, echo, sizeof echo) && memcmp(echo, out, sizeof out) == 0);
    CHECK(async_socket_receive_async(s, &ib, 1, record_receive, &received) == 0);
    CHECK(peer_send_all(peer, echo, sizeof echo));
    CHECK(completion_wait(&received, 1) && received.result == ASYNC_SOCKET_RECEIVE_OK);
    CHECK(atomic_load(&io.send_calls) >= 1 && atomic_load(&io.recv_calls) >= 1);
    CHECK(atomic_load(&io.handle_mismatches) == 0);
    async_socket_destroy(s);
    socket_transport_destroy(peer);
    CHECK(memcmp(in, out, received.bytes) == 0);
    completion_deinit(&sent);
    completion_deinit(&received);
}

/* Reads from `peer` (discarding) until `c` has a call: frees room for a pending send. */
static bool drain_until_complete(SOCKET_TRANSPORT_HANDLE peer, unsigned char* sink, uint32_t size, COMPLETION* c)
{
    int i;
    for (i = 0; i < 600000; ++i) {
        SOCKET_BUFFER b;
        uint32_t got = 0;
        SOCKET_RECEIVE_RESULT r;
        struct pollfd p;
        if (completion_calls(c) > 0) {
            return true;
        }
        b.buffer = sink;
        b.length = size;
        r = socket_transport_receive(peer, &b, 1, &got, 0, NULL);
        if (r == SOCKET_RECEIVE_OK) {
            continue;
        }
        if (r != SOCKET_RECEIVE_WOULD_BLOCK) {
            return completion_wait(c, 1);
        }
        p.fd = socket_transport_get_underlying_socket(peer);
        p.events = POLLIN;
        p.revents = 0;
        (void)poll(&p, 1, 1);
    }
    return completion_calls(c) > 0;
}

/* A pending send (the real socket buffer full) whose retry fails with `e`. */
static void pending_send_retry_fails_with(int e, ASYNC_SOCKET_SEND_RESULT expected)
{
    CUSTOM_IO io;
    ASYNC_SOCKET_HANDLE s;
    SOCKET_TRANSPORT_HANDLE peer;
    const size_t big = 16u << 20;
    unsigned char* out = calloc(1, big);
    unsigned char* sink = malloc(1u << 20);
    ASYNC_SOCKET_BUFFER b;
    COMPLETION sent;
    REQUIRE(out != NULL && sink != NULL);
    REQUIRE(make_custom_socket(&io, &s, &peer));
    completion_init(&sent);
    atomic_store(&io.fail_send_after_would_block, e);
    b.buffer = out;
    b.length = (uint32_t)big;
    CHECK(async_socket_send_async(s, &b, 1, record_send, &sent) == ASYNC_SOCKET_SEND_SYNC_OK);
    CHECK(atomic_load(&io.saw_would_block) == 1); /* pending, waiting for room */
    CHECK(drain_until_complete(peer, sink, 1u << 20, &sent)); /* room: the retry fails */
    CHECK(sent.result == (int)expected);
    async_socket_destroy(s);
    CHECK(completion_calls(&sent) == 1);
    socket_transport_destroy(peer);
    completion_deinit(&sent);
    free(out);
    free(sink);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_097_11_098_pending_send_reset_completes_abandoned(void)
{
    pending_send_retry_fails_with(ECONNRESET, ASYNC_SOCKET_SEND_ABANDONED);
}

static void test_SRS_ASYNC_SOCKET_LINUX_11_097_11_099_pending_send_other_error_completes_error(void)
{
    pending_send_retry_fails_with(EIO, ASYNC_SOCKET_SEND_ERROR);
}

/* ======================= notify ============================================ */

static void test_SRS_ASYNC_SOCKET_LINUX_04_012_notify_with_null_handle_fails(void)
{
    CHECK(async_socket_notify_io_async(NULL, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, never_notify, NULL) != 0);
}

static void test_SRS_ASYNC_SOCKET_LINUX_04_013_notify_with_null_callback_fails(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    CHECK(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, NULL, NULL) != 0);
    CHECK(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_OUT, NULL, NULL) != 0);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static void test_SRS_ASYNC_SOCKET_LINUX_04_014_notify_with_invalid_io_type_fails(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    CHECK(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_INVALID, never_notify, NULL) != 0);
    CHECK(async_socket_notify_io_async(a, (ASYNC_SOCKET_NOTIFY_IO_TYPE)3, never_notify, NULL) != 0);
    CHECK(async_socket_notify_io_async(a, (ASYNC_SOCKET_NOTIFY_IO_TYPE)1000, never_notify, NULL) != 0);
    CHECK(async_socket_notify_io_async(a, (ASYNC_SOCKET_NOTIFY_IO_TYPE)-1, never_notify, NULL) != 0);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static void test_SRS_ASYNC_SOCKET_LINUX_04_015_04_020_notify_when_not_open_fails(void)
{
    ASYNC_SOCKET_HANDLE never_opened = async_socket_create(g_engine);
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    REQUIRE(never_opened != NULL);
    CHECK(async_socket_notify_io_async(never_opened, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, never_notify, NULL) != 0);
    async_socket_destroy(never_opened);
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    async_socket_close(a);
    CHECK(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_OUT, never_notify, NULL) != 0);
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}

static COMPLETION g_null_context_notifies;
static void record_notify_null_context(void* context, ASYNC_SOCKET_NOTIFY_IO_RESULT r)
{
    CHECK(context == NULL);
    record_notify(&g_null_context_notifies, r);
}

static void test_SRS_ASYNC_SOCKET_LINUX_04_016_notify_with_null_context_succeeds(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    completion_init(&g_null_context_notifies);
    CHECK(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_OUT, record_notify_null_context, NULL) == 0);
    CHECK(completion_wait(&g_null_context_notifies, 1));
    CHECK(g_null_context_notifies.result == ASYNC_SOCKET_NOTIFY_IO_RESULT_OUT);
    async_socket_destroy(a);
    CHECK(completion_calls(&g_null_context_notifies) == 1);
    socket_transport_destroy(peer);
    completion_deinit(&g_null_context_notifies);
}

static void
test_SRS_ASYNC_SOCKET_LINUX_04_017_04_018_04_019_04_009_11_082_notify_in_completes_when_data_arrives(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    COMPLETION notified;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    completion_init(&notified);
    support_enter_call();
    CHECK(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, record_notify, &notified) == 0);
    support_leave_call();
    CHECK(completion_calls(&notified) == 0); /* nothing to read yet */
    CHECK(peer_send_all(peer, "n", 1));
    CHECK(completion_wait(&notified, 1) && notified.result == ASYNC_SOCKET_NOTIFY_IO_RESULT_IN);
    CHECK(notified.inside_api_call == 0);
    async_socket_destroy(a);
    CHECK(completion_calls(&notified) == 1);
    socket_transport_destroy(peer);
    completion_deinit(&notified);
}

static void test_SRS_ASYNC_SOCKET_LINUX_04_018_04_010_11_094_notify_out_completes_on_a_writable_socket(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    COMPLETION notified;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    completion_init(&notified);
    support_enter_call();
    CHECK(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_OUT, record_notify, &notified) == 0);
    support_leave_call();
    CHECK(completion_wait(&notified, 1) && notified.result == ASYNC_SOCKET_NOTIFY_IO_RESULT_OUT);
    CHECK(notified.inside_api_call == 0); /* never inside the call, even when ready at once */
    async_socket_destroy(a);
    CHECK(completion_calls(&notified) == 1);
    socket_transport_destroy(peer);
    completion_deinit(&notified);
}

static void test_SRS_ASYNC_SOCKET_LINUX_04_008_11_080_notify_after_peer_close_completes_abandoned(void)
{
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    COMPLETION notified;
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    completion_init(&notified);
    CHECK(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, record_notify, &notified) == 0);
    socket_transport_disconnect(peer);
    CHECK(completion_wait(&notified, 1) && notified.result == ASYNC_SOCKET_NOTIFY_IO_RESULT_ABANDONED);
    async_socket_destroy(a);
    CHECK(completion_calls(&notified) == 1);
    socket_transport_destroy(peer);
    completion_deinit(&notified);
}

static void test_SRS_ASYNC_SOCKET_LINUX_04_011_11_085_notify_on_a_reset_connection_completes_error(void)
{
    SOCKET_TRANSPORT_HANDLE listener = socket_transport_create_server();
    SOCKET_TRANSPORT_HANDLE accepted = NULL;
    ASYNC_SOCKET_HANDLE a = async_socket_create(g_engine);
    COMPLETION notified;
    RAW_SOCKET peer_fd;
    SOCKET_HANDLE fd;
    uint16_t port = 0;
    REQUIRE(listener != NULL && a != NULL);
    REQUIRE(socket_transport_listen_on(listener, "127.0.0.1", 0) == 0);
    REQUIRE(socket_transport_get_local_port(listener, &port) == 0);
    peer_fd = raw_connect_loopback(port);
    REQUIRE(peer_fd != RAW_INVALID_SOCKET);
    REQUIRE(socket_transport_accept(listener, &accepted, SUPPORT_WAIT_LIMIT_MS) == SOCKET_ACCEPT_OK);
    socket_transport_destroy(listener);
    fd = socket_transport_get_underlying_socket(accepted);
    raw_reset(peer_fd);
    CHECK(wait_error(fd)); /* the reset has arrived and nothing has read it */
    REQUIRE(open_with(a, accepted));
    completion_init(&notified);
    CHECK(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, record_notify, &notified) == 0);
    CHECK(completion_wait(&notified, 1) && notified.result == ASYNC_SOCKET_NOTIFY_IO_RESULT_ERROR);
    async_socket_destroy(a);
    CHECK(completion_calls(&notified) == 1);
    completion_deinit(&notified);
}
#endif

/* ======================= execution engine and platform ====================== */

#ifndef _WIN32 /* /proc thread counts are Linux's */
static void test_execution_engine_create_maps_min_thread_count_to_engine_threads(void)
{
    const unsigned before = stable_thread_count();
    const EXECUTION_ENGINE_PARAMETERS two = {2, 8};
    const EXECUTION_ENGINE_PARAMETERS zero = {0, 0};
    EXECUTION_ENGINE_HANDLE e;
    REQUIRE(before != 0);
    e = execution_engine_create(&two);
    REQUIRE(e != NULL);
    CHECK(wait_thread_count(before + 2));
    execution_engine_inc_ref(e);
    execution_engine_dec_ref(e);
    CHECK(process_thread_count() == before + 2); /* one reference left */
    execution_engine_dec_ref(e);
    CHECK(wait_thread_count(before));
    e = execution_engine_create(&zero); /* at least one thread */
    REQUIRE(e != NULL);
    CHECK(wait_thread_count(before + 1));
    execution_engine_dec_ref(e);
    CHECK(wait_thread_count(before));
    e = execution_engine_create(NULL); /* defaults: DEFAULT_MIN_THREAD_COUNT */
    REQUIRE(e != NULL);
    CHECK(wait_thread_count(before + DEFAULT_MIN_THREAD_COUNT));
    execution_engine_dec_ref(e);
    CHECK(wait_thread_count(before));
}
#endif

static void test_execution_engine_create_with_max_below_min_fails(void)
{
    const EXECUTION_ENGINE_PARAMETERS bad = {4, 2};
    CHECK(execution_engine_create(&bad) == NULL);
}

static void test_execution_engine_create_accepts_consistent_thread_counts_and_runs_sockets(void)
{
    /* Linux: a fixed pool of max(min, 1) threads; Windows: a thread pool with
     * that minimum and maximum (max 0: no maximum) */
    const EXECUTION_ENGINE_PARAMETERS params[] = {{1, 1}, {2, 8}, {0, 0}, {4, 0}, {3, 3}};
    size_t i;
    for (i = 0; i <= sizeof params / sizeof params[0]; ++i) {
        /* the last round: NULL parameters, the defaults */
        EXECUTION_ENGINE_HANDLE e = execution_engine_create(i < sizeof params / sizeof params[0] ? &params[i] : NULL);
        ASYNC_SOCKET_HANDLE a;
        ASYNC_SOCKET_HANDLE b;
        char out[] = "engine";
        char in[sizeof out];
        ASYNC_SOCKET_BUFFER ob;
        ASYNC_SOCKET_BUFFER ib;
        COMPLETION sent;
        COMPLETION received;
        REQUIRE(e != NULL);
        REQUIRE(make_async_pair(e, &a, &b));
        completion_init(&sent);
        completion_init(&received);
        ob.buffer = out;
        ob.length = sizeof out;
        ib.buffer = in;
        ib.length = sizeof in;
        CHECK(async_socket_receive_async(b, &ib, 1, record_receive, &received) == 0);
        CHECK(async_socket_send_async(a, &ob, 1, record_send, &sent) == ASYNC_SOCKET_SEND_SYNC_OK);
        CHECK(completion_wait(&sent, 1) && sent.result == ASYNC_SOCKET_SEND_OK);
        CHECK(completion_wait(&received, 1) && received.result == ASYNC_SOCKET_RECEIVE_OK);
        CHECK(received.bytes >= 1 && memcmp(in, out, received.bytes) == 0);
        async_socket_destroy(a);
        async_socket_destroy(b);
        execution_engine_dec_ref(e);
        completion_deinit(&sent);
        completion_deinit(&received);
    }
}

static void test_execution_engine_ref_functions_accept_null(void)
{
    execution_engine_inc_ref(NULL);
    execution_engine_dec_ref(NULL);
    CHECK(1);
}

#ifndef _WIN32 /* the default engine (SRS_ASYNC_SOCKET_WIN32_01_002) and /proc thread counts are Linux's */
static void test_platform_init_keeps_the_default_engine_until_platform_deinit(void)
{
    unsigned with_engine;
    ASYNC_SOCKET_HANDLE s;
    const unsigned before = stable_thread_count();
    REQUIRE(platform_init() == 0);
    REQUIRE(platform_init() == 0); /* nested */
    with_engine = process_thread_count();
    CHECK(with_engine >= before);
    s = async_socket_create(NULL);
    CHECK(s != NULL);
    async_socket_destroy(s);
    CHECK(process_thread_count() == with_engine); /* the default engine stays */
    platform_deinit();
    CHECK(process_thread_count() == with_engine);
    platform_deinit();
    CHECK(wait_thread_count(before));
    platform_deinit(); /* unbalanced: does nothing */
}
#endif

#ifdef _WIN32
/* ======================= Windows only ====================================== */

static void test_SRS_ASYNC_SOCKET_WIN32_01_002_create_with_null_engine_fails(void)
{
    CHECK(async_socket_create(NULL) == NULL);
    CHECK(async_socket_create(NULL) == NULL); /* and keeps failing: no default engine appears */
}

static void test_SRS_ASYNC_SOCKET_WIN32_04_001_create_with_transport_fails(void)
{
    CHECK(async_socket_create_with_transport(g_engine, dummy_send, NULL, dummy_recv, NULL) == NULL);
    CHECK(async_socket_create_with_transport(g_engine, dummy_send, &g_engine, dummy_recv, &g_engine) == NULL);
    CHECK(async_socket_create_with_transport(NULL, dummy_send, NULL, dummy_recv, NULL) == NULL);
    CHECK(async_socket_create_with_transport(g_engine, NULL, NULL, NULL, NULL) == NULL);
}

static void test_SRS_ASYNC_SOCKET_WIN32_04_002_notify_io_async_fails(void)
{
    ASYNC_SOCKET_HANDLE never_opened = async_socket_create(g_engine);
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char byte = 0;
    ASYNC_SOCKET_BUFFER b;
    COMPLETION received;
    REQUIRE(never_opened != NULL);
    CHECK(async_socket_notify_io_async(NULL, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, never_notify, NULL) != 0);
    CHECK(async_socket_notify_io_async(never_opened, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, never_notify, NULL) != 0);
    async_socket_destroy(never_opened);
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    /* an OPEN socket with a byte to read and room to write: still refused */
    CHECK(peer_send_all(peer, "n", 1));
    CHECK(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_IN, never_notify, NULL) != 0);
    CHECK(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_OUT, never_notify, NULL) != 0);
    CHECK(async_socket_notify_io_async(a, ASYNC_SOCKET_NOTIFY_IO_TYPE_OUT, never_notify, &byte) != 0);
    /* the refusals leave the socket as it was: the byte is there to receive */
    completion_init(&received);
    b.buffer = &byte;
    b.length = 1;
    CHECK(async_socket_receive_async(a, &b, 1, record_receive, &received) == 0);
    CHECK(completion_wait(&received, 1) && received.result == ASYNC_SOCKET_RECEIVE_OK && byte == 'n');
    async_socket_destroy(a); /* and no callback of a refused notify runs */
    socket_transport_destroy(peer);
    completion_deinit(&received);
}

static void test_platform_init_and_deinit_nest(void)
{
    /* main holds one platform_init (Winsock must be started before any socket call) */
    ASYNC_SOCKET_HANDLE a;
    SOCKET_TRANSPORT_HANDLE peer;
    char byte = 0;
    REQUIRE(platform_init() == 0);
    REQUIRE(platform_init() == 0);
    REQUIRE(make_async_and_peer(g_engine, &a, &peer));
    platform_deinit();
    platform_deinit();
    /* main's platform_init still holds Winsock: the connection works */
    {
        ASYNC_SOCKET_BUFFER b;
        COMPLETION sent;
        completion_init(&sent);
        b.buffer = "p";
        b.length = 1;
        CHECK(async_socket_send_async(a, &b, 1, record_send, &sent) == ASYNC_SOCKET_SEND_SYNC_OK);
        CHECK(completion_wait(&sent, 1) && sent.result == ASYNC_SOCKET_SEND_OK);
        CHECK(peer_receive_exact(peer, &byte, 1) && byte == 'p');
        completion_deinit(&sent);
    }
    async_socket_destroy(a);
    socket_transport_destroy(peer);
}
#endif

static const HARNESS_TEST tests[] = {
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_001_SRS_ASYNC_SOCKET_WIN32_01_001_create_returns_a_handle),
#ifndef _WIN32
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_001_create_with_transport_returns_a_handle),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_002_create_with_null_engine_uses_the_default_engine),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_002_create_with_transport_with_null_engine_succeeds),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_04_002_create_with_transport_with_null_on_send_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_04_003_create_with_transport_with_null_on_recv_fails),
#endif
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_022_SRS_ASYNC_SOCKET_WIN32_42_004_SRS_ASYNC_SOCKET_WIN32_42_005_socket_holds_an_engine_reference_until_destroy),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_019_SRS_ASYNC_SOCKET_WIN32_01_004_destroy_with_null_returns),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_021_SRS_ASYNC_SOCKET_WIN32_01_006_destroy_of_an_open_socket_closes_it_and_abandons_pending_operations),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_103_destroy_destroys_the_transport),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_023_SRS_ASYNC_SOCKET_WIN32_01_005_create_open_destroy_repeatedly),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_024_SRS_ASYNC_SOCKET_WIN32_01_007_open_with_null_handle_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_003_SRS_ASYNC_SOCKET_WIN32_01_034_open_with_null_transport_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_025_SRS_ASYNC_SOCKET_WIN32_01_008_open_with_null_callback_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_026_SRS_ASYNC_SOCKET_WIN32_01_009_open_with_null_context_succeeds),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_027_11_028_11_031_11_032_11_033_SRS_ASYNC_SOCKET_WIN32_01_014_01_017_01_094_open_succeeds_and_calls_back_ok),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_029_SRS_ASYNC_SOCKET_WIN32_01_015_open_when_already_open_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_WIN32_open_after_close_fails_the_socket_is_not_reopenable),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_034_open_with_a_transport_without_a_socket_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_035_SRS_ASYNC_SOCKET_WIN32_01_018_close_with_null_returns),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_036_11_041_SRS_ASYNC_SOCKET_WIN32_01_019_01_021_close_leaves_the_socket_closed),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_104_close_disconnects_the_transport),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_042_SRS_ASYNC_SOCKET_WIN32_01_022_close_when_not_open_returns),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_080_11_081_04_008_close_completes_pending_operations_abandoned_before_it_returns),
#ifndef _WIN32
    HARNESS_TEST_ENTRY(test_close_delivers_a_notify_that_was_ready_at_start_before_it_returns),
#endif
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_037_SRS_ASYNC_SOCKET_WIN32_01_020_close_waits_for_executing_sends_and_receives),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_043_SRS_ASYNC_SOCKET_WIN32_01_024_send_with_null_handle_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_044_SRS_ASYNC_SOCKET_WIN32_01_025_send_with_null_payload_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_045_SRS_ASYNC_SOCKET_WIN32_01_085_send_with_zero_buffer_count_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_046_SRS_ASYNC_SOCKET_WIN32_01_089_send_with_a_null_buffer_fails),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_047_SRS_ASYNC_SOCKET_WIN32_01_090_send_with_a_zero_length_buffer_fails),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_048_SRS_ASYNC_SOCKET_WIN32_01_101_send_with_lengths_summing_past_uint32_max_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_049_SRS_ASYNC_SOCKET_WIN32_01_026_send_with_null_callback_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_050_SRS_ASYNC_SOCKET_WIN32_01_027_send_with_null_context_succeeds),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_051_SRS_ASYNC_SOCKET_WIN32_01_097_send_when_not_open_returns_not_open),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_04_001_04_004_11_061_11_062_SRS_ASYNC_SOCKET_WIN32_01_045_01_066_send_succeeds_and_calls_back_ok_once),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_059_SRS_ASYNC_SOCKET_WIN32_42_002_send_after_peer_reset_returns_not_open),
#ifndef _WIN32
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_052_send_to_a_closed_peer_does_not_raise_sigpipe),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_060_11_063_send_with_a_transport_error_fails),
#endif
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_064_SRS_ASYNC_SOCKET_WIN32_01_073_receive_with_null_handle_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_065_SRS_ASYNC_SOCKET_WIN32_01_074_receive_with_null_payload_fails),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_066_SRS_ASYNC_SOCKET_WIN32_01_086_receive_with_zero_buffer_count_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_067_SRS_ASYNC_SOCKET_WIN32_01_091_receive_with_a_null_buffer_fails),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_068_SRS_ASYNC_SOCKET_WIN32_01_092_receive_with_a_zero_length_buffer_fails),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_069_SRS_ASYNC_SOCKET_WIN32_01_096_receive_with_lengths_summing_past_uint32_max_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_070_SRS_ASYNC_SOCKET_WIN32_01_075_receive_with_null_callback_fails),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_071_SRS_ASYNC_SOCKET_WIN32_01_076_receive_with_null_context_succeeds),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_072_11_078_SRS_ASYNC_SOCKET_WIN32_01_098_01_084_receive_when_not_open_fails),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_073_11_074_11_077_11_083_11_089_11_092_11_102_SRS_ASYNC_SOCKET_WIN32_01_069_01_083_receive_waits_and_fills_buffers_in_order),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_091_SRS_ASYNC_SOCKET_WIN32_42_003_receive_after_peer_close_completes_abandoned),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_11_090_SRS_ASYNC_SOCKET_WIN32_42_001_receive_after_peer_reset_completes_abandoned),
#ifndef _WIN32
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_088_11_095_receive_with_a_transport_error_completes_error),
    HARNESS_TEST_ENTRY(
        test_SRS_ASYNC_SOCKET_LINUX_04_004_04_007_custom_transport_callbacks_move_the_bytes_and_get_the_socket_handle),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_097_11_098_pending_send_reset_completes_abandoned),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_11_097_11_099_pending_send_other_error_completes_error),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_04_012_notify_with_null_handle_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_04_013_notify_with_null_callback_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_04_014_notify_with_invalid_io_type_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_04_015_04_020_notify_when_not_open_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_04_016_notify_with_null_context_succeeds),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_04_017_04_018_04_019_04_009_11_082_notify_in_completes_when_data_arrives),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_04_018_04_010_11_094_notify_out_completes_on_a_writable_socket),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_04_008_11_080_notify_after_peer_close_completes_abandoned),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_LINUX_04_011_11_085_notify_on_a_reset_connection_completes_error),
    HARNESS_TEST_ENTRY(test_execution_engine_create_maps_min_thread_count_to_engine_threads),
#endif
    HARNESS_TEST_ENTRY(test_execution_engine_create_with_max_below_min_fails),
    HARNESS_TEST_ENTRY(test_execution_engine_create_accepts_consistent_thread_counts_and_runs_sockets),
    HARNESS_TEST_ENTRY(test_execution_engine_ref_functions_accept_null),
#ifdef _WIN32
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_WIN32_01_002_create_with_null_engine_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_WIN32_04_001_create_with_transport_fails),
    HARNESS_TEST_ENTRY(test_SRS_ASYNC_SOCKET_WIN32_04_002_notify_io_async_fails),
    HARNESS_TEST_ENTRY(test_platform_init_and_deinit_nest),
#else
    HARNESS_TEST_ENTRY(test_platform_init_keeps_the_default_engine_until_platform_deinit),
#endif
};

int main(int argc, char** argv)
{
    const EXECUTION_ENGINE_PARAMETERS p = {2, 0};
    int rc;
#ifdef _WIN32
    /* Winsock must be started before any socket call. (Not on Linux: there
     * platform_init holds the default engine, which a test watches come and go.) */
    if (platform_init() != 0) {
        return 2;
    }
#endif
    g_engine = execution_engine_create(&p);
    if (g_engine == NULL) {
        return 2;
    }
    rc = harness_run(tests, HARNESS_COUNT(tests), argc, argv);
    execution_engine_dec_ref(g_engine);
#ifdef _WIN32
    platform_deinit();
#endif
    return rc;
}
