/* tests/c/test_enums.c: the C API's declarations: enum values (NAME_INVALID
 * = 0 first, then the listed values in order), the NAME_VALUES macros, the
 * value-to-name functions, the buffer structs and the constants. */
#include <asock/c/async_socket.h>
#include <asock/c/execution_engine.h>
#include <asock/c/platform.h>
#include <asock/c/socket_handle.h>
#include <asock/c/socket_transport.h>

#include <stddef.h>
#include <string.h>

#ifdef _WIN32
#include <winsock2.h> /* INVALID_SOCKET comes from the Windows headers */
#endif

#include "harness.h"

static void test_async_socket_enum_values_start_at_one_after_invalid(void)
{
    CHECK(ASYNC_SOCKET_OPEN_RESULT_INVALID == 0);
    CHECK(ASYNC_SOCKET_OPEN_OK == 1);
    CHECK(ASYNC_SOCKET_OPEN_ERROR == 2);

    CHECK(ASYNC_SOCKET_SEND_SYNC_RESULT_INVALID == 0);
    CHECK(ASYNC_SOCKET_SEND_SYNC_OK == 1);
    CHECK(ASYNC_SOCKET_SEND_SYNC_ERROR == 2);
    CHECK(ASYNC_SOCKET_SEND_SYNC_NOT_OPEN == 3);

    CHECK(ASYNC_SOCKET_SEND_RESULT_INVALID == 0);
    CHECK(ASYNC_SOCKET_SEND_OK == 1);
    CHECK(ASYNC_SOCKET_SEND_ERROR == 2);
    CHECK(ASYNC_SOCKET_SEND_ABANDONED == 3);

    CHECK(ASYNC_SOCKET_RECEIVE_RESULT_INVALID == 0);
    CHECK(ASYNC_SOCKET_RECEIVE_OK == 1);
    CHECK(ASYNC_SOCKET_RECEIVE_ERROR == 2);
    CHECK(ASYNC_SOCKET_RECEIVE_ABANDONED == 3);

    CHECK(ASYNC_SOCKET_NOTIFY_IO_TYPE_INVALID == 0);
    CHECK(ASYNC_SOCKET_NOTIFY_IO_TYPE_IN == 1);
    CHECK(ASYNC_SOCKET_NOTIFY_IO_TYPE_OUT == 2);

    CHECK(ASYNC_SOCKET_NOTIFY_IO_RESULT_INVALID == 0);
    CHECK(ASYNC_SOCKET_NOTIFY_IO_RESULT_IN == 1);
    CHECK(ASYNC_SOCKET_NOTIFY_IO_RESULT_OUT == 2);
    CHECK(ASYNC_SOCKET_NOTIFY_IO_RESULT_ABANDONED == 3);
    CHECK(ASYNC_SOCKET_NOTIFY_IO_RESULT_ERROR == 4);
}

static void test_socket_transport_enum_values_start_at_one_after_invalid(void)
{
    CHECK(SOCKET_SEND_RESULT_INVALID == 0);
    CHECK(SOCKET_SEND_INVALID_ARG == 1);
    CHECK(SOCKET_SEND_OK == 2);
    CHECK(SOCKET_SEND_ERROR == 3);
    CHECK(SOCKET_SEND_FAILED == 4);
    CHECK(SOCKET_SEND_SHUTDOWN == 5);

    CHECK(SOCKET_RECEIVE_RESULT_INVALID == 0);
    CHECK(SOCKET_RECEIVE_INVALID_ARG == 1);
    CHECK(SOCKET_RECEIVE_OK == 2);
    CHECK(SOCKET_RECEIVE_WOULD_BLOCK == 3);
    CHECK(SOCKET_RECEIVE_ERROR == 4);
    CHECK(SOCKET_RECEIVE_SHUTDOWN == 5);

    CHECK(SOCKET_ACCEPT_RESULT_INVALID == 0);
    CHECK(SOCKET_ACCEPT_OK == 1);
    CHECK(SOCKET_ACCEPT_ERROR == 2);
    CHECK(SOCKET_ACCEPT_PORT_EXHAUSTION == 3);
    CHECK(SOCKET_ACCEPT_INPROGRESS == 4);
    CHECK(SOCKET_ACCEPT_NO_CONNECTION == 5);

    CHECK(SOCKET_TYPE_INVALID == 0);
    CHECK(SOCKET_BINDING == 1);
    CHECK(SOCKET_CLIENT == 2);

    CHECK(ADDRESS_TYPE_INVALID == 0);
    CHECK(ADDRESS_INET == 1);
    CHECK(ADDRESS_INET_6 == 2);
    CHECK(ADDRESS_NETBIOS == 3);
}

static void test_values_macros_list_the_members_in_order(void)
{
    const int open_values[] = {ASYNC_SOCKET_OPEN_RESULT_VALUES};
    const int send_sync_values[] = {ASYNC_SOCKET_SEND_SYNC_RESULT_VALUES};
    const int send_values[] = {ASYNC_SOCKET_SEND_RESULT_VALUES};
    const int receive_values[] = {ASYNC_SOCKET_RECEIVE_RESULT_VALUES};
    const int type_values[] = {ASYNC_SOCKET_NOTIFY_IO_TYPE_VALUES};
    const int notify_values[] = {ASYNC_SOCKET_NOTIFY_IO_RESULT_VALUES};
    const int socket_send_values[] = {SOCKET_SEND_RESULT_VALUES};
    const int socket_receive_values[] = {SOCKET_RECEIVE_RESULT_VALUES};
    const int accept_values[] = {SOCKET_ACCEPT_RESULT_VALUES};
    const int socket_type_values[] = {SOCKET_TYPE_VALUES};
    const int address_values[] = {ADDRESS_TYPE_VALUES};
    const struct {
        const int* values;
        size_t count;
        size_t expected;
    } lists[] = {
        {open_values, sizeof open_values / sizeof(int), 2},
        {send_sync_values, sizeof send_sync_values / sizeof(int), 3},
        {send_values, sizeof send_values / sizeof(int), 3},
        {receive_values, sizeof receive_values / sizeof(int), 3},
        {type_values, sizeof type_values / sizeof(int), 2},
        {notify_values, sizeof notify_values / sizeof(int), 4},
        {socket_send_values, sizeof socket_send_values / sizeof(int), 5},
        {socket_receive_values, sizeof socket_receive_values / sizeof(int), 5},
        {accept_values, sizeof accept_values / sizeof(int), 5},
        {socket_type_values, sizeof socket_type_values / sizeof(int), 2},
        {address_values, sizeof address_values / sizeof(int), 3},
    };
    size_t l;
    for (l = 0; l < sizeof lists / sizeof lists[0]; ++l) {
        size_t i;
        CHECK(lists[l].count == lists[l].expected);
        for (i = 0; i < lists[l].count; ++i) {
            CHECK(lists[l].values[i] == (int)(i + 1));
        }
    }
}

static void test_value_to_name_functions_name_every_member(void)
{
    CHECK(strcmp(ASYNC_SOCKET_OPEN_RESULT_to_string(ASYNC_SOCKET_OPEN_OK), "ASYNC_SOCKET_OPEN_OK") == 0);
    CHECK(strcmp(ASYNC_SOCKET_OPEN_RESULT_to_string(ASYNC_SOCKET_OPEN_ERROR), "ASYNC_SOCKET_OPEN_ERROR") == 0);
    CHECK(strcmp(ASYNC_SOCKET_OPEN_RESULT_to_string(ASYNC_SOCKET_OPEN_RESULT_INVALID),
                 "ASYNC_SOCKET_OPEN_RESULT_INVALID") == 0);
    CHECK(strcmp(ASYNC_SOCKET_SEND_SYNC_RESULT_to_string(ASYNC_SOCKET_SEND_SYNC_NOT_OPEN),
                 "ASYNC_SOCKET_SEND_SYNC_NOT_OPEN") == 0);
    CHECK(strcmp(ASYNC_SOCKET_SEND_RESULT_to_string(ASYNC_SOCKET_SEND_ABANDONED), "ASYNC_SOCKET_SEND_ABANDONED") == 0);
    CHECK(strcmp(ASYNC_SOCKET_RECEIVE_RESULT_to_string(ASYNC_SOCKET_RECEIVE_OK), "ASYNC_SOCKET_RECEIVE_OK") == 0);
    CHECK(strcmp(ASYNC_SOCKET_NOTIFY_IO_TYPE_to_string(ASYNC_SOCKET_NOTIFY_IO_TYPE_OUT),
                 "ASYNC_SOCKET_NOTIFY_IO_TYPE_OUT") == 0);
    CHECK(strcmp(ASYNC_SOCKET_NOTIFY_IO_RESULT_to_string(ASYNC_SOCKET_NOTIFY_IO_RESULT_ERROR),
                 "ASYNC_SOCKET_NOTIFY_IO_RESULT_ERROR") == 0);
    CHECK(strcmp(SOCKET_SEND_RESULT_to_string(SOCKET_SEND_SHUTDOWN), "SOCKET_SEND_SHUTDOWN") == 0);
    CHECK(strcmp(SOCKET_RECEIVE_RESULT_to_string(SOCKET_RECEIVE_WOULD_BLOCK), "SOCKET_RECEIVE_WOULD_BLOCK") == 0);
    CHECK(strcmp(SOCKET_ACCEPT_RESULT_to_string(SOCKET_ACCEPT_NO_CONNECTION), "SOCKET_ACCEPT_NO_CONNECTION") == 0);
    CHECK(strcmp(SOCKET_TYPE_to_string(SOCKET_CLIENT), "SOCKET_CLIENT") == 0);
    CHECK(strcmp(ADDRESS_TYPE_to_string(ADDRESS_NETBIOS), "ADDRESS_NETBIOS") == 0);
    CHECK(strcmp(ASOCK_C_ENUM_TO_STRING(SOCKET_TYPE, SOCKET_BINDING), "SOCKET_BINDING") == 0);
}

static void test_value_to_name_functions_handle_numbers_outside_the_enum(void)
{
    CHECK(strcmp(ASYNC_SOCKET_OPEN_RESULT_to_string((ASYNC_SOCKET_OPEN_RESULT)3), ASOCK_C_UNKNOWN_ENUM_VALUE) == 0);
    CHECK(strcmp(ASYNC_SOCKET_NOTIFY_IO_TYPE_to_string((ASYNC_SOCKET_NOTIFY_IO_TYPE)1000), ASOCK_C_UNKNOWN_ENUM_VALUE) ==
          0);
    CHECK(strcmp(SOCKET_ACCEPT_RESULT_to_string((SOCKET_ACCEPT_RESULT)-1), ASOCK_C_UNKNOWN_ENUM_VALUE) == 0);
}

static void test_buffer_structs_have_the_documented_layout(void)
{
    ASYNC_SOCKET_BUFFER a;
    SOCKET_BUFFER s;
    LOCAL_ADDRESS l;
    CHECK(offsetof(ASYNC_SOCKET_BUFFER, buffer) == 0);
    CHECK(offsetof(ASYNC_SOCKET_BUFFER, length) > offsetof(ASYNC_SOCKET_BUFFER, buffer));
    CHECK(sizeof a.length == 4);
    CHECK(offsetof(SOCKET_BUFFER, length) == 0); /* length first */
    CHECK(offsetof(SOCKET_BUFFER, buffer) > offsetof(SOCKET_BUFFER, length));
    CHECK(sizeof s.length == 4);
    CHECK(sizeof l.address == MAX_LOCAL_ADDRESS_LEN);
    CHECK(offsetof(LOCAL_ADDRESS, address_type) == 0);
}

static void test_constants_have_the_documented_values(void)
{
    EXECUTION_ENGINE_PARAMETERS p;
    CHECK(DEFAULT_MIN_THREAD_COUNT == 4);
    CHECK(DEFAULT_MAX_THREAD_COUNT == 0);
    CHECK(MAX_GET_HOST_NAME_LEN == 256);
    CHECK(MAX_LOCAL_ADDRESS_LEN == 22);
#ifdef _WIN32
    /* a pointer-sized value wrapping a Winsock SOCKET */
    CHECK(sizeof(SOCKET_HANDLE) == sizeof(void*));
    CHECK(INVALID_SOCKET == (SOCKET)~(SOCKET)0);
#else
    {
        SOCKET_HANDLE h = INVALID_SOCKET;
        CHECK(h == -1);
    }
#endif
    CHECK(sizeof p.min_thread_count == 4 && sizeof p.max_thread_count == 4);
}

static const HARNESS_TEST tests[] = {
    HARNESS_TEST_ENTRY(test_async_socket_enum_values_start_at_one_after_invalid),
    HARNESS_TEST_ENTRY(test_socket_transport_enum_values_start_at_one_after_invalid),
    HARNESS_TEST_ENTRY(test_values_macros_list_the_members_in_order),
    HARNESS_TEST_ENTRY(test_value_to_name_functions_name_every_member),
    HARNESS_TEST_ENTRY(test_value_to_name_functions_handle_numbers_outside_the_enum),
    HARNESS_TEST_ENTRY(test_buffer_structs_have_the_documented_layout),
    HARNESS_TEST_ENTRY(test_constants_have_the_documented_values),
};

int main(int argc, char** argv)
{
    return harness_run(tests, HARNESS_COUNT(tests), argc, argv);
}
