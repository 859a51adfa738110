// asock/c/implementation.hpp: the implementation of asock's C API.
//
// Include this header in exactly one C++20 translation unit of a program (the
// asock::c library does so in a file that cmake/asock_c.cmake generates); it
// defines the extern "C" functions declared by the headers of asock/c/.
//
// The shim is thin: every async socket operation maps onto the callback form
// of asock::async_socket<Platform> (include/asock/async_socket.hpp), which
// owns the state machine, the queues and the exactly-once delivery. What the
// shim adds per accepted operation is a record holding the C++ operation, the
// C callback and context, and a copy of the caller's buffer array (the spec
// lets the caller reuse that array as soon as the call returns). Records come
// from a per-socket pool and go back to it just before their C callback is
// called, so that steady-state operations allocate nothing (see "per-operation
// records" below).
//
// Platforms: the shim runs on asock::default_platform (asock/default_platform.hpp:
// the epoll backend on Linux, the threadpool-IO backend on Windows, or what
// the CMake option ASOCK_DEFAULT_BACKEND chose); the socket transport
// (detail/socket_transport.hpp) sits on that backend's socket API layer
// (socket_transport_posix.hpp or socket_transport_win32.hpp). Where the two
// specifications differ, each platform keeps its own (spec README, item 3 and
// 8), and the shim asks the platform policy which applies
// (asock::platform_traits, asock/platform.hpp): whether a NULL execution
// engine is accepted (Windows 01_002: refused), custom transports exist
// (04_001: not on Windows), notify_io_async can work (04_002: not on
// Windows), what platform_init starts (Winsock), how the engine parameters
// map to engine options, and whether open() wants a blocking socket.
#pragma once

// MSVC reports the language version in _MSVC_LANG (__cplusplus stays 199711L
// unless /Zc:__cplusplus is given).
#if !defined(__cplusplus) || (__cplusplus < 202002L && (!defined(_MSVC_LANG) || _MSVC_LANG < 202002L))
#error "asock/c/implementation.hpp must be compiled as C++20"
#endif

#include <asock/c/async_socket.h>
#include <asock/c/execution_engine.h>
#include <asock/c/platform.h>
#include <asock/c/socket_handle.h>
#include <asock/c/socket_transport.h>
#include <asock/c/detail/enum_strings.hpp>

#include <asock/async_socket.hpp>
#include <asock/buffer.hpp>
#include <asock/default_platform.hpp>
#include <asock/detail/word_mutex.hpp>
#include <asock/platform.hpp>
#include <asock/results.hpp>
#include <asock/transport.hpp>
#include <asock/c/detail/socket_transport.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <type_traits>

namespace asock::c_api {

using platform = asock::default_platform;
/// What the platform offers and needs beyond the contract (asock/platform.hpp).
using traits = asock::platform_traits<platform>;
using engine_type = platform::engine_type;
using socket_type = asock::async_socket<platform>;
using native_handle = platform::native_handle_type;
static_assert(std::is_same_v<native_handle, transport::native_socket>,
              "the socket transport's sockets are the backend's native handles");

inline engine_type* to_engine(EXECUTION_ENGINE_HANDLE h) noexcept { return reinterpret_cast<engine_type*>(h); }
inline EXECUTION_ENGINE_HANDLE to_handle(engine_type* e) noexcept
{
    return reinterpret_cast<EXECUTION_ENGINE_HANDLE>(e);
}

/// The C API's socket handle as the backend's native handle (a Winsock SOCKET
/// travels in a pointer-sized SOCKET_HANDLE on Windows), or invalid_handle.
inline native_handle to_native(SOCKET_HANDLE h) noexcept { return transport::os::to_socket(h); }

// ---- result conversions (the numeric values are shared; see results.hpp) ---

inline ASYNC_SOCKET_SEND_RESULT to_c(asock::send_result r) noexcept
{
    switch (r) {
    case asock::send_result::ok: return ASYNC_SOCKET_SEND_OK;
    case asock::send_result::abandoned: return ASYNC_SOCKET_SEND_ABANDONED;
    default: return ASYNC_SOCKET_SEND_ERROR;
    }
}

inline ASYNC_SOCKET_RECEIVE_RESULT to_c(asock::receive_result r) noexcept
{
    switch (r) {
    case asock::receive_result::ok: return ASYNC_SOCKET_RECEIVE_OK;
    case asock::receive_result::abandoned: return ASYNC_SOCKET_RECEIVE_ABANDONED;
    default: return ASYNC_SOCKET_RECEIVE_ERROR;
    }
}

inline ASYNC_SOCKET_NOTIFY_IO_RESULT to_c(asock::notify_io_result r) noexcept
{
    switch (r) {
    case asock::notify_io_result::in: return ASYNC_SOCKET_NOTIFY_IO_RESULT_IN;
    case asock::notify_io_result::out: return ASYNC_SOCKET_NOTIFY_IO_RESULT_OUT;
    case asock::notify_io_result::abandoned: return ASYNC_SOCKET_NOTIFY_IO_RESULT_ABANDONED;
    default: return ASYNC_SOCKET_NOTIFY_IO_RESULT_ERROR;
    }
}

inline ASYNC_SOCKET_SEND_SYNC_RESULT to_c(asock::send_sync_result r) noexcept
{
    switch (r) {
    case asock::send_sync_result::ok: return ASYNC_SOCKET_SEND_SYNC_OK;
    case asock::send_sync_result::not_open: return ASYNC_SOCKET_SEND_SYNC_NOT_OPEN;
    default: return ASYNC_SOCKET_SEND_SYNC_ERROR;
    }
}

// ---- argument checks of send / receive (11_044..11_048, 11_065..11_069) ----

inline bool valid_payload(const ASYNC_SOCKET_BUFFER* payload, std::uint32_t count) noexcept
{
    std::uint32_t total = 0;
    return asock::detail::validate_buffer_list(
        payload, count, [](const ASYNC_SOCKET_BUFFER& b) { return b.buffer; },
        [](const ASYNC_SOCKET_BUFFER& b) { return b.length; }, asock::detail::empty_entries::rejected, total);
}

// ---- per-operation records ----------------------------------------------------
//
// Every accepted send, receive or notify needs a record that lives until its
// callback: the C++ operation (asock/async_socket.hpp's send_operation and
// friends), the C callback and context, and a copy of the caller's buffer
// array. Records are recycled through a per-socket pool of each kind
// (record_pool, held by ASYNC_SOCKET_TAG), so that steady-state operations
// allocate nothing:
//
// - acquire() takes a free record of the pool or, when there is none (the
//   first operations, or more in flight at once than ever before), allocates
//   one;
// - the record's completion hook gives it back (release()) before it calls
//   the C callback, so the callback may start the next operation on the same
//   record. A core never touches an operation after calling its hook
//   (asock/detail/delivery.hpp: deliver() pops the operation before calling
//   it; the other call sites return right after; the shim relied on this
//   before, when it freed the record there), so a record is free from the
//   moment its hook runs. The hook copies the callback and context out
//   before release() and does not touch the record after it;
// - a pool keeps at most max_cached_records free records; a release beyond
//   that frees the record (a burst of many operations in flight may allocate,
//   and the socket does not keep its peak forever);
// - the pools are freed with the socket (ASYNC_SOCKET_TAG's destructor), after
//   the C++ socket's destruction has delivered every outstanding operation
//   and waited for every running hook: nothing can release a record after it.
//
// Buffer arrays of up to inline_buffer_count descriptors are copied into the
// record itself; a longer one gets an array of its own, allocated at the start
// and freed by release().

/// Buffer descriptors a send or receive record holds without allocating.
inline constexpr std::uint32_t inline_buffer_count = 8;
/// Free records of each kind a socket keeps for reuse.
inline constexpr std::uint32_t max_cached_records = 64;

/// A socket's free records of one kind: a stack linked through
/// Record::next_free, guarded by a word lock (taken twice per operation,
/// almost never contended: the operations of one kind on one socket).
template <class Record>
class record_pool {
public:
    record_pool() noexcept = default;
    record_pool(const record_pool&) = delete;
    record_pool& operator=(const record_pool&) = delete;
    ~record_pool()
    {
        while (Record* r = head_) {
            head_ = r->next_free;
            delete r;
        }
    }

    /// A record ready for one operation (its C++ operation freshly
    /// constructed), or null when none is free and allocating failed.
    Record* acquire() noexcept
    {
        Record* r;
        {
            std::lock_guard lk(mu_);
            r = head_;
            if (r != nullptr) {
                head_ = r->next_free;
                --size_;
            }
        }
        if (r == nullptr) {
            r = new (std::nothrow) Record();
            if (r != nullptr) {
                r->pool = this;
            }
            return r;
        }
        // A record as new for every operation, as the C++ path's awaitables
        // construct theirs: nothing of the previous operation carries over.
        std::destroy_at(&r->op);
        std::construct_at(&r->op);
        return r;
    }

    /// Takes back a record whose operation is over (its hook is running, or
    /// it was rejected): kept for reuse, or freed when the pool is full.
    void release(Record* r) noexcept
    {
        r->drop_buffers();
        {
            std::lock_guard lk(mu_);
            if (size_ < max_cached_records) {
                r->next_free = head_;
                head_ = r;
                ++size_;
                return;
            }
        }
        delete r;
    }

private:
    asock::detail::word_mutex mu_;
    Record* head_ = nullptr;
    std::uint32_t size_ = 0;
};

/// The buffer array of a send or receive record: inline for up to
/// inline_buffer_count descriptors, else allocated per operation.
template <class Buffer>
struct record_buffers {
    Buffer* heap = nullptr; ///< The array of an operation with more than inline_buffer_count buffers.
    Buffer inline_array[inline_buffer_count];

    record_buffers() noexcept = default;
    record_buffers(const record_buffers&) = delete;
    record_buffers& operator=(const record_buffers&) = delete;
    ~record_buffers() { delete[] heap; }

    /// Copies the caller's descriptors; the copy lives until drop(). Null when
    /// a long array cannot be allocated.
    const Buffer* copy(const ASYNC_SOCKET_BUFFER* payload, std::uint32_t count) noexcept
    {
        Buffer* out = inline_array;
        if (count > inline_buffer_count) {
            heap = new (std::nothrow) Buffer[count];
            if (heap == nullptr) {
                return nullptr;
            }
            out = heap;
        }
        for (std::uint32_t i = 0; i < count; ++i) {
            out[i] = Buffer(payload[i].buffer, payload[i].length);
        }
        return out;
    }

    void drop() noexcept
    {
        if (heap != nullptr) {
            delete[] heap;
            heap = nullptr;
        }
    }
};

struct send_record {
    asock::send_operation op;
    ON_ASYNC_SOCKET_SEND_COMPLETE on_complete = nullptr;
    void* context = nullptr;
    record_pool<send_record>* pool = nullptr;
    send_record* next_free = nullptr;
    record_buffers<asock::const_buffer> buffers;

    void drop_buffers() noexcept { buffers.drop(); }

    static void complete(void* self, asock::send_result result) noexcept
    {
        auto* r = static_cast<send_record*>(self);
        const ON_ASYNC_SOCKET_SEND_COMPLETE cb = r->on_complete;
        void* const ctx = r->context;
        r->pool->release(r); // from here on `r` may be another operation's
        cb(ctx, to_c(result));
    }
};

struct receive_record {
    asock::receive_operation op;
    ON_ASYNC_SOCKET_RECEIVE_COMPLETE on_complete = nullptr;
    void* context = nullptr;
    record_pool<receive_record>* pool = nullptr;
    receive_record* next_free = nullptr;
    record_buffers<asock::mutable_buffer> buffers;

    void drop_buffers() noexcept { buffers.drop(); }

    static void complete(void* self, asock::receive_result result, std::uint32_t bytes) noexcept
    {
        auto* r = static_cast<receive_record*>(self);
        const ON_ASYNC_SOCKET_RECEIVE_COMPLETE cb = r->on_complete;
        void* const ctx = r->context;
        r->pool->release(r); // from here on `r` may be another operation's
        cb(ctx, to_c(result), result == asock::receive_result::ok ? bytes : 0u);
    }
};

struct notify_record {
    asock::notify_operation op;
    ON_ASYNC_SOCKET_NOTIFY_IO_COMPLETE on_complete = nullptr;
    void* context = nullptr;
    record_pool<notify_record>* pool = nullptr;
    notify_record* next_free = nullptr;

    void drop_buffers() noexcept {}

    static void complete(void* self, asock::notify_io_result result) noexcept
    {
        auto* r = static_cast<notify_record*>(self);
        const ON_ASYNC_SOCKET_NOTIFY_IO_COMPLETE cb = r->on_complete;
        void* const ctx = r->context;
        r->pool->release(r); // from here on `r` may be another operation's
        cb(ctx, to_c(result));
    }
};

// ---- the transport an async socket owns after open ---------------------------

inline void owner_disconnect(void* transport, native_handle) noexcept
{
    socket_transport_disconnect(static_cast<SOCKET_TRANSPORT_HANDLE>(transport));
}

inline void owner_destroy(void* transport, native_handle) noexcept
{
    socket_transport_destroy(static_cast<SOCKET_TRANSPORT_HANDLE>(transport));
}

// ---- platform_init / platform_deinit -------------------------------------------

struct platform_state {
    std::mutex mu;
    unsigned init_count = 0;
    /// The engine of a NULL execution engine, where the platform accepts one.
    engine_type* default_engine = nullptr;
};

/// What the first platform_init sets up, until the matching last
/// platform_deinit: the OS's socket library (traits::start_socket_library;
/// Windows: WSAStartup), and, where a NULL execution engine is accepted
/// (11_002), a reference on the default engine. Returns false on failure
/// (nothing left set up).
inline bool platform_start(platform_state& g) noexcept
{
    if (!traits::start_socket_library()) {
        return false;
    }
    if constexpr (traits::accepts_null_engine) {
        g.default_engine = platform::acquire_default_engine();
        if (g.default_engine == nullptr) {
            traits::stop_socket_library();
            return false;
        }
    }
    return true;
}

/// Undoes platform_start; `default_engine` is what it stored (or null).
inline void platform_stop(engine_type* default_engine) noexcept
{
    if (default_engine != nullptr) {
        default_engine->dec_ref();
    }
    traits::stop_socket_library();
}

inline platform_state& platform_globals() noexcept
{
    static platform_state s;
    return s;
}

} // namespace asock::c_api

/// The C API's async socket: the C++ socket, the C custom transport, and the
/// socket's free operation records.
struct ASYNC_SOCKET_TAG {
    asock::c_api::record_pool<asock::c_api::send_record> send_records;
    asock::c_api::record_pool<asock::c_api::receive_record> receive_records;
    asock::c_api::record_pool<asock::c_api::notify_record> notify_records;
    asock::c_api::socket_type socket;
    ON_ASYNC_SOCKET_SEND on_send = nullptr;
    void* on_send_context = nullptr;
    ON_ASYNC_SOCKET_RECV on_recv = nullptr;
    void* on_recv_context = nullptr;

    ASYNC_SOCKET_TAG() noexcept = default;
    ASYNC_SOCKET_TAG(const ASYNC_SOCKET_TAG&) = delete;
    ASYNC_SOCKET_TAG& operator=(const ASYNC_SOCKET_TAG&) = delete;
    ~ASYNC_SOCKET_TAG()
    {
        // The C++ socket goes first: it delivers every outstanding operation
        // and waits for hooks running on other threads, which give their
        // records back to the pools. The pools, destroyed after this body,
        // then free every record (members are destroyed in reverse order;
        // resetting here keeps that from depending on the declaration order).
        socket = asock::c_api::socket_type{};
    }
};

namespace asock::c_api {

// The C++ custom transport calls these; they add the async socket handle the
// C callbacks take.
inline int transport_send(void* self, const void* buffer, std::size_t length) noexcept
{
    auto* s = static_cast<ASYNC_SOCKET_TAG*>(self);
    return s->on_send(s->on_send_context, s, buffer, length);
}

inline int transport_recv(void* self, void* buffer, std::size_t length) noexcept
{
    auto* s = static_cast<ASYNC_SOCKET_TAG*>(self);
    return s->on_recv(s->on_recv_context, s, buffer, length);
}

inline ASYNC_SOCKET_HANDLE create_socket(EXECUTION_ENGINE_HANDLE execution_engine, ON_ASYNC_SOCKET_SEND on_send,
                                         void* on_send_context, ON_ASYNC_SOCKET_RECV on_recv,
                                         void* on_recv_context) noexcept
{
    auto* s = new (std::nothrow) ASYNC_SOCKET_TAG();
    if (s == nullptr) {
        return nullptr;
    }
    asock::custom_transport transport{};
    if (on_send != nullptr) {
        s->on_send = on_send;
        s->on_send_context = on_send_context;
        s->on_recv = on_recv;
        s->on_recv_context = on_recv_context;
        transport = asock::custom_transport{&transport_send, s, &transport_recv, s};
    }
    if (execution_engine == nullptr) {
        if constexpr (traits::accepts_null_engine) {
            s->socket = socket_type::on_default_engine(transport); // 11_002
        } else {
            delete s;
            return nullptr; // WIN32 01_002: the engine supplies the PTP_POOL
        }
    } else if (transport.is_set()) {
        s->socket = socket_type(*to_engine(execution_engine), transport);
    } else {
        s->socket = socket_type(*to_engine(execution_engine));
    }
    if (!s->socket.valid()) {
        delete s;
        return nullptr;
    }
    return s;
}

} // namespace asock::c_api

extern "C" {

// ---- enum names --------------------------------------------------------------------

ASOCK_C_DEFINE_ENUM_STRINGS(ASYNC_SOCKET_OPEN_RESULT, ASYNC_SOCKET_OPEN_RESULT_VALUES)
ASOCK_C_DEFINE_ENUM_STRINGS(ASYNC_SOCKET_SEND_SYNC_RESULT, ASYNC_SOCKET_SEND_SYNC_RESULT_VALUES)
ASOCK_C_DEFINE_ENUM_STRINGS(ASYNC_SOCKET_SEND_RESULT, ASYNC_SOCKET_SEND_RESULT_VALUES)
ASOCK_C_DEFINE_ENUM_STRINGS(ASYNC_SOCKET_RECEIVE_RESULT, ASYNC_SOCKET_RECEIVE_RESULT_VALUES)
ASOCK_C_DEFINE_ENUM_STRINGS(ASYNC_SOCKET_NOTIFY_IO_TYPE, ASYNC_SOCKET_NOTIFY_IO_TYPE_VALUES)
ASOCK_C_DEFINE_ENUM_STRINGS(ASYNC_SOCKET_NOTIFY_IO_RESULT, ASYNC_SOCKET_NOTIFY_IO_RESULT_VALUES)
ASOCK_C_DEFINE_ENUM_STRINGS(SOCKET_SEND_RESULT, SOCKET_SEND_RESULT_VALUES)
ASOCK_C_DEFINE_ENUM_STRINGS(SOCKET_RECEIVE_RESULT, SOCKET_RECEIVE_RESULT_VALUES)
ASOCK_C_DEFINE_ENUM_STRINGS(SOCKET_ACCEPT_RESULT, SOCKET_ACCEPT_RESULT_VALUES)
ASOCK_C_DEFINE_ENUM_STRINGS(SOCKET_TYPE, SOCKET_TYPE_VALUES)
ASOCK_C_DEFINE_ENUM_STRINGS(ADDRESS_TYPE, ADDRESS_TYPE_VALUES)

// ---- platform ----------------------------------------------------------------------

ASOCK_C_API int platform_init(void)
{
    auto& g = asock::c_api::platform_globals();
    std::lock_guard lk(g.mu);
    if (g.init_count == 0 && !asock::c_api::platform_start(g)) {
        return 1;
    }
    ++g.init_count;
    return 0;
}

ASOCK_C_API void platform_deinit(void)
{
    auto& g = asock::c_api::platform_globals();
    asock::c_api::engine_type* release = nullptr;
    {
        std::lock_guard lk(g.mu);
        if (g.init_count == 0) {
            return;
        }
        if (--g.init_count != 0) {
            return;
        }
        release = g.default_engine;
        g.default_engine = nullptr;
    }
    asock::c_api::platform_stop(release);
}

// ---- execution engine ------------------------------------------------------------

ASOCK_C_API EXECUTION_ENGINE_HANDLE execution_engine_create(const EXECUTION_ENGINE_PARAMETERS* execution_engine_parameters)
{
    EXECUTION_ENGINE_PARAMETERS p{DEFAULT_MIN_THREAD_COUNT, DEFAULT_MAX_THREAD_COUNT};
    if (execution_engine_parameters != nullptr) {
        p = *execution_engine_parameters;
    }
    if (p.max_thread_count != 0 && p.max_thread_count < p.min_thread_count) {
        return nullptr;
    }
    // What the thread range means is the engine's (epoll: a fixed pool of the
    // minimum, at least one thread; Windows: the pool's minimum and maximum).
    return asock::c_api::to_handle(asock::c_api::engine_type::create(
        asock::c_api::traits::engine_options_for(p.min_thread_count, p.max_thread_count)));
}

ASOCK_C_API void execution_engine_dec_ref(EXECUTION_ENGINE_HANDLE execution_engine)
{
    if (execution_engine != nullptr) {
        asock::c_api::to_engine(execution_engine)->dec_ref();
    }
}

ASOCK_C_API void execution_engine_inc_ref(EXECUTION_ENGINE_HANDLE execution_engine)
{
    if (execution_engine != nullptr) {
        asock::c_api::to_engine(execution_engine)->inc_ref();
    }
}

// ---- async socket ------------------------------------------------------------------

ASOCK_C_API ASYNC_SOCKET_HANDLE async_socket_create(EXECUTION_ENGINE_HANDLE execution_engine)
{
    return asock::c_api::create_socket(execution_engine, nullptr, nullptr, nullptr, nullptr);
}

ASOCK_C_API ASYNC_SOCKET_HANDLE async_socket_create_with_transport(EXECUTION_ENGINE_HANDLE execution_engine,
                                                                   ON_ASYNC_SOCKET_SEND on_send, void* on_send_context,
                                                                   ON_ASYNC_SOCKET_RECV on_recv, void* on_recv_context)
{
    if constexpr (asock::c_api::traits::supports_custom_transport) {
        if (on_send == nullptr || on_recv == nullptr) {
            return nullptr; // 04_002, 04_003
        }
        return asock::c_api::create_socket(execution_engine, on_send, on_send_context, on_recv, on_recv_context);
    } else {
        return nullptr; // WIN32 04_001: custom transports are not available on Windows
    }
}

ASOCK_C_API void async_socket_destroy(ASYNC_SOCKET_HANDLE async_socket)
{
    // The C++ destructor waits out open / close, closes (every pending
    // operation completes ABANDONED), destroys the transport through its
    // owner and releases the engine reference.
    delete async_socket;
}

ASOCK_C_API int async_socket_open_async(ASYNC_SOCKET_HANDLE async_socket, SOCKET_TRANSPORT_HANDLE socket_transport,
                                        ON_ASYNC_SOCKET_OPEN_COMPLETE on_open_complete, void* on_open_complete_context)
{
    if (async_socket == nullptr || socket_transport == nullptr || on_open_complete == nullptr) {
        return 1;
    }
    const asock::c_api::native_handle handle =
        asock::c_api::to_native(socket_transport_get_underlying_socket(socket_transport));
    if (handle == asock::c_api::platform::invalid_handle) {
        return 1;
    }
    const asock::basic_handle_owner<asock::c_api::native_handle> owner{
        socket_transport, &asock::c_api::owner_disconnect, &asock::c_api::owner_destroy};
    // The transport keeps its socket non-blocking for its own calls; a core
    // that wants blocking handles (Windows threadpool IO) gets it so.
    if constexpr (asock::c_api::traits::wants_blocking_handles) {
        if (!asock::c_api::transport::os::set_nonblocking(handle, false)) {
            return 1;
        }
    }
    if (async_socket->socket.open(handle, owner) != asock::open_result::ok) {
        if constexpr (asock::c_api::traits::wants_blocking_handles) {
            asock::c_api::transport::os::set_nonblocking(handle, true);
        }
        return 1; // already OPEN / OPENING, closed, or refused: the transport stays the caller's
    }
    on_open_complete(on_open_complete_context, ASYNC_SOCKET_OPEN_OK);
    return 0;
}

ASOCK_C_API void async_socket_close(ASYNC_SOCKET_HANDLE async_socket)
{
    if (async_socket != nullptr) {
        async_socket->socket.close();
    }
}

ASOCK_C_API ASYNC_SOCKET_SEND_SYNC_RESULT async_socket_send_async(ASYNC_SOCKET_HANDLE async_socket,
                                                                  const ASYNC_SOCKET_BUFFER* payload,
                                                                  uint32_t buffer_count,
                                                                  ON_ASYNC_SOCKET_SEND_COMPLETE on_send_complete,
                                                                  void* on_send_complete_context)
{
    using namespace asock::c_api;
    if (async_socket == nullptr || !valid_payload(payload, buffer_count) || on_send_complete == nullptr) {
        return ASYNC_SOCKET_SEND_SYNC_ERROR;
    }
    if (async_socket->socket.state() != asock::socket_state::open) {
        return ASYNC_SOCKET_SEND_SYNC_NOT_OPEN;
    }
    send_record* r = async_socket->send_records.acquire();
    if (r == nullptr) {
        return ASYNC_SOCKET_SEND_SYNC_ERROR;
    }
    const asock::const_buffer* bufs = r->buffers.copy(payload, buffer_count);
    if (bufs == nullptr) {
        async_socket->send_records.release(r);
        return ASYNC_SOCKET_SEND_SYNC_ERROR;
    }
    r->on_complete = on_send_complete;
    r->context = on_send_complete_context;
    const std::span<const asock::const_buffer> list(bufs, buffer_count); // in the record: lives until the callback
    const asock::send_sync_result result = async_socket->socket.send_async(r->op, list, &send_record::complete, r);
    if (result != asock::send_sync_result::ok) {
        async_socket->send_records.release(r); // rejected: no hook was or will be called
    }
    // On ok neither the record nor the socket may be touched: the callback
    // (which may already have run) may have reused the one or destroyed the other.
    return to_c(result);
}

ASOCK_C_API int async_socket_receive_async(ASYNC_SOCKET_HANDLE async_socket, ASYNC_SOCKET_BUFFER* payload,
                                           uint32_t buffer_count, ON_ASYNC_SOCKET_RECEIVE_COMPLETE on_receive_complete,
                                           void* on_receive_complete_context)
{
    using namespace asock::c_api;
    if (async_socket == nullptr || !valid_payload(payload, buffer_count) || on_receive_complete == nullptr) {
        return 1;
    }
    if (async_socket->socket.state() != asock::socket_state::open) {
        return 1;
    }
    receive_record* r = async_socket->receive_records.acquire();
    if (r == nullptr) {
        return 1;
    }
    const asock::mutable_buffer* bufs = r->buffers.copy(payload, buffer_count);
    if (bufs == nullptr) {
        async_socket->receive_records.release(r);
        return 1;
    }
    r->on_complete = on_receive_complete;
    r->context = on_receive_complete_context;
    const std::span<const asock::mutable_buffer> list(bufs, buffer_count); // in the record: lives until the callback
    if (async_socket->socket.receive_async(r->op, list, &receive_record::complete, r) !=
        asock::start_result::started) {
        async_socket->receive_records.release(r); // rejected: no hook was or will be called
        return 1;
    }
    return 0;
}

ASOCK_C_API int async_socket_notify_io_async(ASYNC_SOCKET_HANDLE async_socket, ASYNC_SOCKET_NOTIFY_IO_TYPE io_type,
                                             ON_ASYNC_SOCKET_NOTIFY_IO_COMPLETE on_notify_io_complete,
                                             void* on_notify_io_complete_context)
{
    using namespace asock::c_api;
    if constexpr (!traits::supports_notify_io) {
        return 1; // WIN32 04_002: readiness notifications do not exist on Windows
    } else {
        if (async_socket == nullptr || on_notify_io_complete == nullptr) {
            return 1;
        }
        asock::notify_io_type type;
        switch (raw_enum_value(io_type)) {
        case ASYNC_SOCKET_NOTIFY_IO_TYPE_IN: type = asock::notify_io_type::in; break;
        case ASYNC_SOCKET_NOTIFY_IO_TYPE_OUT: type = asock::notify_io_type::out; break;
        default: return 1; // 04_014: any other number
        }
        if (async_socket->socket.state() != asock::socket_state::open) {
            return 1;
        }
        notify_record* r = async_socket->notify_records.acquire();
        if (r == nullptr) {
            return 1;
        }
        r->on_complete = on_notify_io_complete;
        r->context = on_notify_io_complete_context;
        if (async_socket->socket.notify_io_async(r->op, type, &notify_record::complete, r) !=
            asock::start_result::started) {
            async_socket->notify_records.release(r); // rejected: no hook was or will be called
            return 1;
        }
        return 0;
    }
}

} // extern "C"
