/* tests/c/test_socket_transport.c: the socket transport of the C API
 * (asock/c/socket_transport.h): create, connect, listen, accept, send,
 * receive, disconnect, destroy and the queries, over loopback. */
#include <asock/c/platform.h>
#include <asock/c/socket_transport.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "portable.h"
#include "support.h"

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

static SOCKET_TRANSPORT_HANDLE listening_server(uint16_t* port)
{
    SOCKET_TRANSPORT_HANDLE s = socket_transport_create_server();
    if (s == NULL) {
        return NULL;
    }
    if (socket_transport_listen_on(s, "127.0.0.1", 0) != 0 || socket_transport_get_local_port(s, port) != 0) {
        socket_transport_destroy(s);
        return NULL;
    }
    return s;
}

static void test_create_client_and_server_return_handles_and_destroy_accepts_null(void)
{
    SOCKET_TRANSPORT_HANDLE c = socket_transport_create_client();
    SOCKET_TRANSPORT_HANDLE s = socket_transport_create_server();
    CHECK(c != NULL && s != NULL);
    CHECK(!socket_transport_is_valid_socket(c)); /* no socket before connect / listen */
    CHECK(socket_transport_get_underlying_socket(s) == SUPPORT_INVALID_SOCKET_HANDLE);
    socket_transport_destroy(c);
    socket_transport_destroy(s);
    socket_transport_destroy(NULL);
}

static void test_queries_with_null_transport(void)
{
    char host[MAX_GET_HOST_NAME_LEN];
    LOCAL_ADDRESS* list = NULL;
    uint32_t count = 0;
    uint16_t port = 0;
    CHECK(socket_transport_get_underlying_socket(NULL) == SUPPORT_INVALID_SOCKET_HANDLE);
    CHECK(!socket_transport_is_valid_socket(NULL));
    CHECK(socket_transport_get_local_port(NULL, &port) != 0);
    CHECK(socket_transport_get_local_address(NULL, host, &list, &count) != 0);
    socket_transport_disconnect(NULL);
}

static void test_listen_with_port_zero_binds_an_ephemeral_port_that_get_local_port_reports(void)
{
    SOCKET_TRANSPORT_HANDLE s = socket_transport_create_server();
    SOCKET_TRANSPORT_HANDLE c = socket_transport_create_client();
    SOCKET_TRANSPORT_HANDLE accepted = NULL;
    uint16_t port = 0;
    REQUIRE(s != NULL && c != NULL);
    CHECK(socket_transport_get_local_port(s, &port) != 0); /* not bound yet */
    CHECK(socket_transport_listen(s, 0) == 0);             /* every IPv4 address */
    CHECK(socket_transport_is_valid_socket(s));
    CHECK(socket_transport_get_local_port(s, &port) == 0 && port != 0);
    CHECK(socket_transport_get_local_port(s, NULL) != 0);
    CHECK(socket_transport_connect(c, "127.0.0.1", port, SUPPORT_WAIT_LIMIT_MS) == 0);
    CHECK(socket_transport_accept(s, &accepted, SUPPORT_WAIT_LIMIT_MS) == SOCKET_ACCEPT_OK);
    CHECK(accepted != NULL && socket_transport_is_valid_socket(accepted));
    socket_transport_destroy(accepted);
    socket_transport_destroy(c);
    socket_transport_destroy(s);
}

static void test_listen_fails_on_null_a_client_a_listening_server_or_a_port_in_use(void)
{
    uint16_t port = 0;
    SOCKET_TRANSPORT_HANDLE s = listening_server(&port);
    SOCKET_TRANSPORT_HANDLE other = socket_transport_create_server();
    SOCKET_TRANSPORT_HANDLE c = socket_transport_create_client();
    REQUIRE(s != NULL && other != NULL && c != NULL);
    CHECK(socket_transport_listen(NULL, 0) != 0);
    CHECK(socket_transport_listen(c, 0) != 0);
    CHECK(socket_transport_listen(s, 0) != 0);                  /* already listening */
    CHECK(socket_transport_listen_on(other, "127.0.0.1", port) != 0); /* in use */
    CHECK(socket_transport_listen_on(other, "not a valid address at all", 0) != 0);
    socket_transport_destroy(other);
    socket_transport_destroy(c);
    socket_transport_destroy(s);
}

static void test_connect_fails_on_bad_arguments_a_server_or_a_refused_port(void)
{
    uint16_t port = 0;
    SOCKET_TRANSPORT_HANDLE s = listening_server(&port);
    SOCKET_TRANSPORT_HANDLE c = socket_transport_create_client();
    REQUIRE(s != NULL && c != NULL);
    socket_transport_destroy(s); /* nobody listens on `port` now */
    CHECK(socket_transport_connect(NULL, "127.0.0.1", port, 1000) != 0);
    CHECK(socket_transport_connect(c, NULL, port, 1000) != 0);
    CHECK(socket_transport_connect(c, "127.0.0.1", port, SUPPORT_WAIT_LIMIT_MS) != 0); /* refused */
    CHECK(!socket_transport_is_valid_socket(c));
    CHECK(socket_transport_connect(c, "not a valid address at all", port, 1000) != 0); /* does not resolve */
    CHECK(!socket_transport_is_valid_socket(c));
    s = socket_transport_create_server();
    REQUIRE(s != NULL);
    CHECK(socket_transport_connect(s, "127.0.0.1", port, 1000) != 0); /* a server does not connect */
    socket_transport_destroy(s);
    socket_transport_destroy(c);
}

static void test_connect_succeeds_once_and_reports_the_local_port(void)
{
    uint16_t port = 0;
    uint16_t local = 0;
    SOCKET_TRANSPORT_HANDLE s = listening_server(&port);
    SOCKET_TRANSPORT_HANDLE c = socket_transport_create_client();
    SOCKET_TRANSPORT_HANDLE accepted = NULL;
    REQUIRE(s != NULL && c != NULL);
    CHECK(socket_transport_connect(c, "localhost", port, SUPPORT_WAIT_LIMIT_MS) == 0);
    CHECK(socket_transport_is_valid_socket(c));
    CHECK(socket_transport_get_local_port(c, &local) == 0 && local != 0 && local != port);
    CHECK(socket_transport_connect(c, "127.0.0.1", port, 1000) != 0); /* already connected */
    CHECK(socket_transport_accept(s, &accepted, SUPPORT_WAIT_LIMIT_MS) == SOCKET_ACCEPT_OK);
    socket_transport_destroy(accepted);
    socket_transport_destroy(c);
    socket_transport_destroy(s);
}

static void test_accept_fails_on_bad_arguments_and_on_a_transport_that_does_not_listen(void)
{
    SOCKET_TRANSPORT_HANDLE s = socket_transport_create_server();
    SOCKET_TRANSPORT_HANDLE c = socket_transport_create_client();
    SOCKET_TRANSPORT_HANDLE accepted = (SOCKET_TRANSPORT_HANDLE)&accepted;
    REQUIRE(s != NULL && c != NULL);
    CHECK(socket_transport_accept(NULL, &accepted, 0) == SOCKET_ACCEPT_ERROR);
    CHECK(accepted == NULL); /* cleared on failure */
    CHECK(socket_transport_accept(s, NULL, 0) == SOCKET_ACCEPT_ERROR);
    CHECK(socket_transport_accept(s, &accepted, 0) == SOCKET_ACCEPT_ERROR); /* not listening */
    CHECK(socket_transport_accept(c, &accepted, 0) == SOCKET_ACCEPT_ERROR);
    CHECK(accepted == NULL);
    socket_transport_destroy(s);
    socket_transport_destroy(c);
}

static void test_accept_without_a_pending_connection_returns_no_connection_after_the_timeout(void)
{
    uint16_t port = 0;
    SOCKET_TRANSPORT_HANDLE s = listening_server(&port);
    SOCKET_TRANSPORT_HANDLE accepted = NULL;
    REQUIRE(s != NULL);
    CHECK(socket_transport_accept(s, &accepted, 0) == SOCKET_ACCEPT_NO_CONNECTION);
    CHECK(socket_transport_accept(s, &accepted, 20) == SOCKET_ACCEPT_NO_CONNECTION);
    CHECK(accepted == NULL);
    socket_transport_destroy(s);
}

typedef struct ACCEPT_WAIT_TAG
{
    SOCKET_TRANSPORT_HANDLE server;
    SOCKET_ACCEPT_RESULT result;
    SOCKET_TRANSPORT_HANDLE accepted;
} ACCEPT_WAIT;

static void accept_thread(void* arg)
{
    ACCEPT_WAIT* w = arg;
    w->result = socket_transport_accept(w->server, &w->accepted, SUPPORT_WAIT_LIMIT_MS);
}

static void test_disconnect_wakes_an_accept_that_waits(void)
{
    uint16_t port = 0;
    ACCEPT_WAIT w;
    PORTABLE_THREAD t;
    w.server = listening_server(&port);
    w.result = SOCKET_ACCEPT_RESULT_INVALID;
    w.accepted = NULL;
    REQUIRE(w.server != NULL);
    REQUIRE(portable_thread_start(&t, accept_thread, &w));
    socket_transport_disconnect(w.server); /* before or during the wait: either way it returns */
    portable_thread_join(&t);
    CHECK(w.result == SOCKET_ACCEPT_ERROR && w.accepted == NULL);
    CHECK(!socket_transport_is_valid_socket(w.server));
    socket_transport_destroy(w.server);
}

static void test_send_and_receive_reject_invalid_arguments(void)
{
    SOCKET_TRANSPORT_HANDLE a;
    SOCKET_TRANSPORT_HANDLE b;
    unsigned char byte = 'x';
    SOCKET_BUFFER ok;
    SOCKET_BUFFER bad[2];
    uint32_t n = 77;
    REQUIRE(make_transport_pair(&a, &b));
    ok.length = 1;
    ok.buffer = &byte;
    bad[0] = ok;
    bad[1].length = 1;
    bad[1].buffer = NULL;
    CHECK(socket_transport_send(NULL, &ok, 1, &n, 0, NULL) == SOCKET_SEND_INVALID_ARG);
    CHECK(n == 0);
    CHECK(socket_transport_send(a, NULL, 1, &n, 0, NULL) == SOCKET_SEND_INVALID_ARG);
    CHECK(socket_transport_send(a, &ok, 0, &n, 0, NULL) == SOCKET_SEND_INVALID_ARG);
    CHECK(socket_transport_send(a, bad, 2, &n, 0, NULL) == SOCKET_SEND_INVALID_ARG);
    CHECK(socket_transport_receive(NULL, &ok, 1, &n, 0, NULL) == SOCKET_RECEIVE_INVALID_ARG);
    CHECK(socket_transport_receive(a, NULL, 1, &n, 0, NULL) == SOCKET_RECEIVE_INVALID_ARG);
    CHECK(socket_transport_receive(a, &ok, 0, &n, 0, NULL) == SOCKET_RECEIVE_INVALID_ARG);
    CHECK(socket_transport_receive(a, bad, 2, &n, 0, NULL) == SOCKET_RECEIVE_INVALID_ARG);
    ok.length = 0;
    CHECK(socket_transport_receive(a, &ok, 1, &n, 0, NULL) == SOCKET_RECEIVE_INVALID_ARG);
    socket_transport_destroy(a);
    socket_transport_destroy(b);
}

static void test_send_and_receive_move_multi_buffer_payloads(void)
{
    SOCKET_TRANSPORT_HANDLE a;
    SOCKET_TRANSPORT_HANDLE b;
    unsigned char p1[] = "hello, ";
    unsigned char p2[] = "transport";
    unsigned char r1[4];
    unsigned char r2[32];
    SOCKET_BUFFER out[2];
    SOCKET_BUFFER in[2];
    uint32_t sent = 0;
    uint32_t got = 0;
    uint32_t total = 0;
    int i;
    REQUIRE(make_transport_pair(&a, &b));
    out[0].length = 7;
    out[0].buffer = p1;
    out[1].length = 9;
    out[1].buffer = p2;
    in[0].length = sizeof r1;
    in[0].buffer = r1;
    in[1].length = sizeof r2;
    in[1].buffer = r2;
    CHECK(socket_transport_receive(b, in, 2, &got, 0, NULL) == SOCKET_RECEIVE_WOULD_BLOCK && got == 0);
    CHECK(socket_transport_send(a, out, 2, &sent, 0, NULL) == SOCKET_SEND_OK && sent == 16);
    CHECK(socket_transport_send(a, out, 1, NULL, 0, NULL) == SOCKET_SEND_OK); /* bytes_sent may be NULL */
    for (i = 0; i < 1000 && total < 23; ++i) {
        SOCKET_RECEIVE_RESULT r;
        if (total == 0) {
            r = socket_transport_receive(b, in, 2, &got, 0, NULL);
            if (r == SOCKET_RECEIVE_OK) {
                CHECK(got >= 4 ? memcmp(r1, "hell", 4) == 0 : 1);
                CHECK(got < 16 || memcmp(r2, "o, transport", 12) == 0);
                total += got;
                continue;
            }
        } else {
            unsigned char rest[32];
            SOCKET_BUFFER rb;
            rb.length = sizeof rest;
            rb.buffer = rest;
            r = socket_transport_receive(b, &rb, 1, &got, 0, NULL);
            if (r == SOCKET_RECEIVE_OK) {
                total += got;
                continue;
            }
        }
        REQUIRE(r == SOCKET_RECEIVE_WOULD_BLOCK);
        CHECK(wait_readable(socket_transport_get_underlying_socket(b)));
    }
    CHECK(total == 23);
    socket_transport_destroy(a);
    socket_transport_destroy(b);
}

static void test_receive_reports_shutdown_after_the_peer_disconnects(void)
{
    SOCKET_TRANSPORT_HANDLE a;
    SOCKET_TRANSPORT_HANDLE b;
    unsigned char byte;
    SOCKET_BUFFER in;
    uint32_t got = 5;
    REQUIRE(make_transport_pair(&a, &b));
    in.length = 1;
    in.buffer = &byte;
    socket_transport_disconnect(a);
    CHECK(!socket_transport_is_valid_socket(a));
    CHECK(socket_transport_get_underlying_socket(a) == SUPPORT_INVALID_SOCKET_HANDLE);
    socket_transport_disconnect(a); /* twice: nothing more */
    CHECK(wait_readable(socket_transport_get_underlying_socket(b)));
    CHECK(socket_transport_receive(b, &in, 1, &got, 0, NULL) == SOCKET_RECEIVE_SHUTDOWN && got == 0);
    /* the disconnected side has no socket any more */
    CHECK(socket_transport_send(a, &in, 1, &got, 0, NULL) == SOCKET_SEND_FAILED);
    CHECK(socket_transport_receive(a, &in, 1, &got, 0, NULL) == SOCKET_RECEIVE_ERROR);
    socket_transport_destroy(a);
    socket_transport_destroy(b);
}

static void test_send_without_a_connection_fails(void)
{
    SOCKET_TRANSPORT_HANDLE c = socket_transport_create_client();
    SOCKET_TRANSPORT_HANDLE s = socket_transport_create_server();
    unsigned char byte = 'x';
    SOCKET_BUFFER b;
    REQUIRE(c != NULL && s != NULL);
    b.length = 1;
    b.buffer = &byte;
    CHECK(socket_transport_send(c, &b, 1, NULL, 0, NULL) == SOCKET_SEND_FAILED);
    CHECK(socket_transport_send(s, &b, 1, NULL, 0, NULL) == SOCKET_SEND_FAILED);
    socket_transport_destroy(c);
    socket_transport_destroy(s);
}

static void test_send_after_the_peer_reset_reports_shutdown(void)
{
    uint16_t port = 0;
    SOCKET_TRANSPORT_HANDLE s = listening_server(&port);
    SOCKET_TRANSPORT_HANDLE accepted = NULL;
    RAW_SOCKET fd;
    unsigned char byte = 'x';
    SOCKET_BUFFER b;
    SOCKET_SEND_RESULT r = SOCKET_SEND_OK;
    int i;
    REQUIRE(s != NULL);
    fd = raw_connect_loopback(port);
    REQUIRE(fd != RAW_INVALID_SOCKET);
    REQUIRE(socket_transport_accept(s, &accepted, SUPPORT_WAIT_LIMIT_MS) == SOCKET_ACCEPT_OK);
    raw_reset(fd);
    CHECK(wait_error(socket_transport_get_underlying_socket(accepted)));
    b.length = 1;
    b.buffer = &byte;
    for (i = 0; i < 3 && r == SOCKET_SEND_OK; ++i) {
        r = socket_transport_send(accepted, &b, 1, NULL, 0, NULL);
    }
    CHECK(r == SOCKET_SEND_SHUTDOWN);
    socket_transport_destroy(accepted);
    socket_transport_destroy(s);
}

typedef struct DRAIN_TAG
{
    SOCKET_TRANSPORT_HANDLE peer;
    size_t expected;
    size_t received;
    uint32_t seed;
    bool intact;
} DRAIN;

static void drain_thread(void* arg)
{
    DRAIN* d = arg;
    unsigned char* data = malloc(d->expected);
    d->intact = data != NULL && peer_receive_exact(d->peer, data, d->expected) &&
                check_pattern(data, d->expected, d->seed);
    d->received = d->intact ? d->expected : 0;
    free(data);
}

static void test_send_waits_for_room_until_every_byte_is_sent(void)
{
    SOCKET_TRANSPORT_HANDLE a;
    SOCKET_TRANSPORT_HANDLE b;
    const size_t size = 24u << 20;
    unsigned char* data = malloc(size);
    SOCKET_BUFFER out;
    uint32_t sent = 0;
    DRAIN d;
    PORTABLE_THREAD t;
    REQUIRE(data != NULL);
    REQUIRE(make_transport_pair(&a, &b));
    fill_pattern(data, size, 7);
    d.peer = b;
    d.expected = size;
    d.received = 0;
    d.seed = 7;
    d.intact = false;
    REQUIRE(portable_thread_start(&t, drain_thread, &d));
    out.length = (uint32_t)size;
    out.buffer = data;
    CHECK(socket_transport_send(a, &out, 1, &sent, 0, NULL) == SOCKET_SEND_OK);
    CHECK(sent == size);
    portable_thread_join(&t);
    CHECK(d.intact && d.received == size);
    socket_transport_destroy(a);
    socket_transport_destroy(b);
    free(data);
}

#ifndef _WIN32 /* MSG_DONTWAIT is a POSIX send flag; Winsock has none */
static void test_send_with_msg_dontwait_returns_what_fitted(void)
{
    SOCKET_TRANSPORT_HANDLE a;
    SOCKET_TRANSPORT_HANDLE b;
    const size_t size = 64u << 20;
    unsigned char* data = calloc(1, size);
    SOCKET_BUFFER out;
    uint32_t sent = 0;
    REQUIRE(data != NULL);
    REQUIRE(make_transport_pair(&a, &b));
    out.length = (uint32_t)size;
    out.buffer = data;
    CHECK(socket_transport_send(a, &out, 1, &sent, MSG_DONTWAIT, NULL) == SOCKET_SEND_OK);
    CHECK(sent > 0 && sent < size); /* the peer reads nothing: the buffers fill */
    socket_transport_destroy(a);
    socket_transport_destroy(b);
    free(data);
}
#endif

typedef struct BLOCKED_SEND_TAG
{
    SOCKET_TRANSPORT_HANDLE transport;
    unsigned char* data;
    uint32_t size;
    uint32_t sent;
    SOCKET_SEND_RESULT result;
} BLOCKED_SEND;

static void blocked_send_thread(void* arg)
{
    BLOCKED_SEND* s = arg;
    SOCKET_BUFFER out;
    out.length = s->size;
    out.buffer = s->data;
    s->result = socket_transport_send(s->transport, &out, 1, &s->sent, 0, NULL);
}

static void test_disconnect_wakes_a_send_that_waits_for_room(void)
{
    SOCKET_TRANSPORT_HANDLE a;
    SOCKET_TRANSPORT_HANDLE b;
    BLOCKED_SEND s;
    PORTABLE_THREAD t;
    REQUIRE(make_transport_pair(&a, &b));
    s.transport = a;
    s.size = 64u << 20;
    s.data = calloc(1, s.size);
    s.sent = 0;
    s.result = SOCKET_SEND_RESULT_INVALID;
    REQUIRE(s.data != NULL);
    REQUIRE(portable_thread_start(&t, blocked_send_thread, &s));
    /* bytes arriving means the send runs; 64 MiB cannot fit while the peer
     * reads nothing, so it ends up waiting for room until the disconnect */
    CHECK(wait_readable(socket_transport_get_underlying_socket(b)));
    socket_transport_disconnect(a);
    portable_thread_join(&t);
    CHECK(s.result == SOCKET_SEND_SHUTDOWN);
    CHECK(s.sent > 0 && s.sent < s.size);
    socket_transport_destroy(a);
    socket_transport_destroy(b);
    free(s.data);
}

static void test_create_from_socket_rejects_invalid_and_non_socket_descriptors(void)
{
#ifdef _WIN32
    /* a kernel object that is not a socket: an event */
    HANDLE event = CreateEventA(NULL, TRUE, FALSE, NULL);
    CHECK(socket_transport_create_from_socket(SUPPORT_INVALID_SOCKET_HANDLE) == NULL);
    REQUIRE(event != NULL);
    CHECK(socket_transport_create_from_socket((SOCKET_HANDLE)event) == NULL);
    CHECK(CloseHandle(event)); /* ownership not taken */
#else
    int pipe_fds[2];
    CHECK(socket_transport_create_from_socket(INVALID_SOCKET) == NULL);
    REQUIRE(pipe(pipe_fds) == 0);
    CHECK(socket_transport_create_from_socket(pipe_fds[0]) == NULL);
    CHECK(fcntl(pipe_fds[0], F_GETFD) != -1); /* ownership not taken */
    close(pipe_fds[0]);
    close(pipe_fds[1]);
#endif
}

static void test_create_from_socket_wraps_connected_and_listening_sockets(void)
{
    RAW_SOCKET lfd = socket(AF_INET, SOCK_STREAM, 0);
    RAW_SOCKET cfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    SOCKET_TRANSPORT_HANDLE server;
    SOCKET_TRANSPORT_HANDLE client;
    SOCKET_TRANSPORT_HANDLE accepted = NULL;
    unsigned char msg[] = "wrapped";
    unsigned char got[sizeof msg];
    SOCKET_BUFFER b;
    uint16_t port = 0;
    REQUIRE(lfd != RAW_INVALID_SOCKET && cfd != RAW_INVALID_SOCKET);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(lfd, (struct sockaddr*)&addr, sizeof addr) == 0 && listen(lfd, 4) == 0);
    REQUIRE(getsockname(lfd, (struct sockaddr*)&addr, &len) == 0);
    REQUIRE(connect(cfd, (struct sockaddr*)&addr, sizeof addr) == 0);
    server = socket_transport_create_from_socket(support_socket_handle(lfd));
    client = socket_transport_create_from_socket(support_socket_handle(cfd));
    REQUIRE(server != NULL && client != NULL);
    CHECK(socket_transport_get_underlying_socket(server) == support_socket_handle(lfd));
    CHECK(socket_transport_get_underlying_socket(client) == support_socket_handle(cfd));
#ifndef _WIN32 /* Winsock has no call that tells whether a socket is non-blocking */
    CHECK((fcntl(cfd, F_GETFL) & O_NONBLOCK) != 0);
#endif
    CHECK(socket_transport_get_local_port(server, &port) == 0 && port == ntohs(addr.sin_port));
    CHECK(socket_transport_accept(server, &accepted, SUPPORT_WAIT_LIMIT_MS) == SOCKET_ACCEPT_OK);
    REQUIRE(accepted != NULL);
    b.length = sizeof msg;
    b.buffer = msg;
    CHECK(socket_transport_send(client, &b, 1, NULL, 0, NULL) == SOCKET_SEND_OK);
    CHECK(peer_receive_exact(accepted, got, sizeof got) && memcmp(got, msg, sizeof msg) == 0);
    socket_transport_destroy(accepted);
    socket_transport_destroy(client);
    socket_transport_destroy(server);
    CHECK(raw_socket_is_closed(lfd) && raw_socket_is_closed(cfd)); /* owned and closed */
}

static void test_get_local_address_reports_the_host_name_and_addresses(void)
{
    SOCKET_TRANSPORT_HANDLE a;
    SOCKET_TRANSPORT_HANDLE b;
    char host[MAX_GET_HOST_NAME_LEN];
    LOCAL_ADDRESS* list = NULL;
    uint32_t count = 0;
    uint32_t i;
    bool loopback = false;
    REQUIRE(make_transport_pair(&a, &b));
    CHECK(socket_transport_get_local_address(a, NULL, &list, &count) != 0);
    CHECK(socket_transport_get_local_address(a, host, NULL, &count) != 0);
    CHECK(socket_transport_get_local_address(a, host, &list, NULL) != 0);
    CHECK(socket_transport_get_local_address(a, host, &list, &count) == 0);
    CHECK(strlen(host) > 0 && strlen(host) < MAX_GET_HOST_NAME_LEN);
    CHECK(list != NULL && count >= 1);
    for (i = 0; i < count; ++i) {
        CHECK(list[i].address_type == ADDRESS_INET || list[i].address_type == ADDRESS_INET_6);
        CHECK(memchr(list[i].address, '\0', MAX_LOCAL_ADDRESS_LEN) != NULL);
        if (list[i].address_type == ADDRESS_INET && strcmp(list[i].address, "127.0.0.1") == 0) {
            loopback = true;
        }
    }
    CHECK(loopback);
    free(list);
    socket_transport_destroy(a);
    socket_transport_destroy(b);
}

static const HARNESS_TEST tests[] = {
    HARNESS_TEST_ENTRY(test_create_client_and_server_return_handles_and_destroy_accepts_null),
    HARNESS_TEST_ENTRY(test_queries_with_null_transport),
    HARNESS_TEST_ENTRY(test_listen_with_port_zero_binds_an_ephemeral_port_that_get_local_port_reports),
    HARNESS_TEST_ENTRY(test_listen_fails_on_null_a_client_a_listening_server_or_a_port_in_use),
    HARNESS_TEST_ENTRY(test_connect_fails_on_bad_arguments_a_server_or_a_refused_port),
    HARNESS_TEST_ENTRY(test_connect_succeeds_once_and_reports_the_local_port),
    HARNESS_TEST_ENTRY(test_accept_fails_on_bad_arguments_and_on_a_transport_that_does_not_listen),
    HARNESS_TEST_ENTRY(test_accept_without_a_pending_connection_returns_no_connection_after_the_timeout),
    HARNESS_TEST_ENTRY(test_disconnect_wakes_an_accept_that_waits),
    HARNESS_TEST_ENTRY(test_send_and_receive_reject_invalid_arguments),
    HARNESS_TEST_ENTRY(test_send_and_receive_move_multi_buffer_payloads),
    HARNESS_TEST_ENTRY(test_receive_reports_shutdown_after_the_peer_disconnects),
    HARNESS_TEST_ENTRY(test_send_without_a_connection_fails),
    HARNESS_TEST_ENTRY(test_send_after_the_peer_reset_reports_shutdown),
    HARNESS_TEST_ENTRY(test_send_waits_for_room_until_every_byte_is_sent),
#ifndef _WIN32
    HARNESS_TEST_ENTRY(test_send_with_msg_dontwait_returns_what_fitted),
#endif
    HARNESS_TEST_ENTRY(test_disconnect_wakes_a_send_that_waits_for_room),
    HARNESS_TEST_ENTRY(test_create_from_socket_rejects_invalid_and_non_socket_descriptors),
    HARNESS_TEST_ENTRY(test_create_from_socket_wraps_connected_and_listening_sockets),
    HARNESS_TEST_ENTRY(test_get_local_address_reports_the_host_name_and_addresses),
};

int main(int argc, char** argv)
{
    int rc;
    if (platform_init() != 0) { /* Windows: starts Winsock, which every socket call needs */
        return 2;
    }
    rc = harness_run(tests, HARNESS_COUNT(tests), argc, argv);
    platform_deinit();
    return rc;
}
