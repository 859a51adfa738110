/* tests/c/test_compat.c: the compatibility names. A caller written against
 * "c_pal/..." headers builds unchanged with asock::c_pal_compat (C11,
 * -pedantic) and runs an echo through the same API. */
#include "c_pal/async_socket.h"
#include "c_pal/execution_engine.h"
#include "c_pal/platform.h"
#include "c_pal/socket_handle.h"
#include "c_pal/socket_transport.h"

#include <string.h>

#include "harness.h"
#include "support.h"

/* the declarations are the ones of <asock/c/...> */
_Static_assert(ASYNC_SOCKET_OPEN_OK == 1, "NAME_INVALID = 0 first, then the listed values");
_Static_assert(ASYNC_SOCKET_SEND_SYNC_NOT_OPEN == 3, "the NOT_OPEN sync result exists");
_Static_assert(SOCKET_ACCEPT_OK == 1, "INVALID = 0 first");
#ifdef _WIN32
_Static_assert(sizeof(SOCKET_HANDLE) == sizeof(void*), "a Winsock SOCKET in a void* on Windows");
#else
_Static_assert(sizeof(SOCKET_HANDLE) == sizeof(int), "a descriptor on POSIX");
#endif

static void test_c_pal_names_run_an_echo_through_a_wrapped_socket(void)
{
    SOCKET_TRANSPORT_HANDLE mine;
    SOCKET_TRANSPORT_HANDLE peer;
    EXECUTION_ENGINE_HANDLE engine = NULL;
    ASYNC_SOCKET_HANDLE s;
    char out[] = "compat";
    char in[sizeof out];
    ASYNC_SOCKET_BUFFER b;
    COMPLETION sent;
    COMPLETION received;
    REQUIRE(platform_init() == 0);
    REQUIRE(make_transport_pair(&mine, &peer));
#ifdef _WIN32
    /* Windows has no default engine (SRS_ASYNC_SOCKET_WIN32_01_002) */
    engine = execution_engine_create(NULL);
    REQUIRE(engine != NULL);
#endif
    s = async_socket_create(engine); /* Linux: NULL, the default engine */
    execution_engine_dec_ref(engine); /* the socket holds its own reference */
    REQUIRE(s != NULL);
    REQUIRE(open_with(s, mine));
    completion_init(&sent);
    completion_init(&received);
    b.buffer = out;
    b.length = sizeof out;
    CHECK(async_socket_send_async(s, &b, 1, record_send, &sent) == ASYNC_SOCKET_SEND_SYNC_OK);
    CHECK(completion_wait(&sent, 1) && sent.result == ASYNC_SOCKET_SEND_OK);
    CHECK(peer_receive_exact(peer, in, sizeof in) && memcmp(in, out, sizeof out) == 0);
    CHECK(peer_send_all(peer, in, sizeof in));
    memset(in, 0, sizeof in);
    b.buffer = in;
    CHECK(async_socket_receive_async(s, &b, 1, record_receive, &received) == 0);
    CHECK(completion_wait(&received, 1) && received.result == ASYNC_SOCKET_RECEIVE_OK);
    async_socket_destroy(s);
    socket_transport_destroy(peer);
    CHECK(memcmp(in, out, received.bytes) == 0);
    completion_deinit(&sent);
    completion_deinit(&received);
    platform_deinit();
}

static const HARNESS_TEST tests[] = {
    HARNESS_TEST_ENTRY(test_c_pal_names_run_an_echo_through_a_wrapped_socket),
};

int main(int argc, char** argv)
{
    return harness_run(tests, HARNESS_COUNT(tests), argc, argv);
}
