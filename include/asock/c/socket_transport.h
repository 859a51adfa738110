/* asock/c/socket_transport.h: the socket transport of asock's C API: TCP
 * clients and servers (connect, listen, accept, send, receive), and the
 * wrapper through which an async socket receives its socket
 * (async_socket_open_async). See docs/c_api.md for every function's contract. */
#ifndef ASOCK_C_SOCKET_TRANSPORT_H
#define ASOCK_C_SOCKET_TRANSPORT_H

#ifdef __cplusplus
#include <cstdint>
#else
#include <stdbool.h>
#include <stdint.h>
#endif

#include <asock/c/enum.h>
#include <asock/c/socket_handle.h>

ASOCK_C_BEGIN_DECLS

typedef struct SOCKET_TRANSPORT_TAG* SOCKET_TRANSPORT_HANDLE;

#define SOCKET_SEND_RESULT_VALUES \
    SOCKET_SEND_INVALID_ARG, \
    SOCKET_SEND_OK, \
    SOCKET_SEND_ERROR, \
    SOCKET_SEND_FAILED, \
    SOCKET_SEND_SHUTDOWN

ASOCK_C_DEFINE_ENUM(SOCKET_SEND_RESULT, SOCKET_SEND_RESULT_VALUES)

#define SOCKET_RECEIVE_RESULT_VALUES \
    SOCKET_RECEIVE_INVALID_ARG, \
    SOCKET_RECEIVE_OK, \
    SOCKET_RECEIVE_WOULD_BLOCK, \
    SOCKET_RECEIVE_ERROR, \
    SOCKET_RECEIVE_SHUTDOWN

ASOCK_C_DEFINE_ENUM(SOCKET_RECEIVE_RESULT, SOCKET_RECEIVE_RESULT_VALUES)

#define SOCKET_ACCEPT_RESULT_VALUES \
    SOCKET_ACCEPT_OK, \
    SOCKET_ACCEPT_ERROR, \
    SOCKET_ACCEPT_PORT_EXHAUSTION, \
    SOCKET_ACCEPT_INPROGRESS, \
    SOCKET_ACCEPT_NO_CONNECTION

ASOCK_C_DEFINE_ENUM(SOCKET_ACCEPT_RESULT, SOCKET_ACCEPT_RESULT_VALUES)

#define SOCKET_TYPE_VALUES \
    SOCKET_BINDING, \
    SOCKET_CLIENT

ASOCK_C_DEFINE_ENUM(SOCKET_TYPE, SOCKET_TYPE_VALUES)

#define ADDRESS_TYPE_VALUES \
    ADDRESS_INET, \
    ADDRESS_INET_6, \
    ADDRESS_NETBIOS

ASOCK_C_DEFINE_ENUM(ADDRESS_TYPE, ADDRESS_TYPE_VALUES)

typedef struct SOCKET_BUFFER_TAG
{
    uint32_t length;
    unsigned char* buffer;
} SOCKET_BUFFER;

#define MAX_GET_HOST_NAME_LEN 256
#define MAX_LOCAL_ADDRESS_LEN 22

typedef struct LOCAL_ADDRESS_TAG
{
    ADDRESS_TYPE address_type;
    char address[MAX_LOCAL_ADDRESS_LEN];
} LOCAL_ADDRESS;

ASOCK_C_API SOCKET_TRANSPORT_HANDLE socket_transport_create_client(void);
ASOCK_C_API SOCKET_TRANSPORT_HANDLE socket_transport_create_server(void);
ASOCK_C_API SOCKET_TRANSPORT_HANDLE socket_transport_create_from_socket(SOCKET_HANDLE socket_handle);
ASOCK_C_API void socket_transport_destroy(SOCKET_TRANSPORT_HANDLE socket_transport);
ASOCK_C_API int socket_transport_connect(SOCKET_TRANSPORT_HANDLE socket_transport, const char* hostname, uint16_t port, uint32_t connection_timeout_ms);
ASOCK_C_API int socket_transport_listen(SOCKET_TRANSPORT_HANDLE socket_transport, uint16_t port);
ASOCK_C_API void socket_transport_disconnect(SOCKET_TRANSPORT_HANDLE socket_transport);
ASOCK_C_API SOCKET_ACCEPT_RESULT socket_transport_accept(SOCKET_TRANSPORT_HANDLE socket_transport, SOCKET_TRANSPORT_HANDLE* accepted_socket, uint32_t connection_timeout_ms);
ASOCK_C_API SOCKET_SEND_RESULT socket_transport_send(SOCKET_TRANSPORT_HANDLE socket_transport, const SOCKET_BUFFER* payload, uint32_t buffer_count, uint32_t* bytes_sent, uint32_t flags, void* data);
ASOCK_C_API SOCKET_RECEIVE_RESULT socket_transport_receive(SOCKET_TRANSPORT_HANDLE socket_transport, SOCKET_BUFFER* payload, uint32_t buffer_count, uint32_t* bytes_recv, uint32_t flags, void* data);
ASOCK_C_API SOCKET_HANDLE socket_transport_get_underlying_socket(SOCKET_TRANSPORT_HANDLE socket_transport);
ASOCK_C_API bool socket_transport_is_valid_socket(SOCKET_TRANSPORT_HANDLE socket_transport);
ASOCK_C_API int socket_transport_get_local_address(SOCKET_TRANSPORT_HANDLE socket_transport, char hostname[MAX_GET_HOST_NAME_LEN], LOCAL_ADDRESS** local_address_list, uint32_t* address_count);

/* ---- additions of asock (not in the spec's list) ------------------------ */

/* The local port of the transport's socket: the bound port of a server after
 * socket_transport_listen (the ephemeral one when it was given port 0), or
 * the local port of a connected client. Returns 0 and sets *port on success;
 * non-zero (and *port untouched) when socket_transport or port is NULL or the
 * transport has no bound socket. */
ASOCK_C_API int socket_transport_get_local_port(SOCKET_TRANSPORT_HANDLE socket_transport, uint16_t* port);

/* socket_transport_listen on one local address only (a numeric IPv4 or IPv6
 * address or a host name, e.g. "127.0.0.1" to accept loopback connections
 * only). NULL address: every IPv4 address, exactly like
 * socket_transport_listen. Returns 0 on success. */
ASOCK_C_API int socket_transport_listen_on(SOCKET_TRANSPORT_HANDLE socket_transport, const char* address, uint16_t port);

ASOCK_C_END_DECLS

#endif /* ASOCK_C_SOCKET_TRANSPORT_H */
