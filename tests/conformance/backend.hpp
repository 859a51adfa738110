// tests/conformance/backend.hpp: what the conformance tests are written against.
//
// The tests of conformance_test.cpp check the socket core contract
// (docs/awaitables.md) once, in backend-neutral terms; a driver per backend
// maps those terms onto that backend's fake OS layer. This is the one place
// that picks the driver:
// - epoll_driver.hpp: the epoll backend over tests/support/fake_sys.hpp;
// - win32_driver.hpp: the threadpool-IO backend over tests/win32/fake_win32.hpp;
// - uring_driver.hpp: the io_uring backend over tests/support/fake_uring.hpp
//   (ASOCK_CONFORMANCE_URING defined: the conformance_uring executable).
//
// Every driver defines `conformance::backend` with:
//
//   types      platform_type, socket_type (asock::async_socket<...>),
//              engine_type, handle_type (the native handle), name
//   backend()  resets the fake world and creates an engine whose completions
//              happen only when the test calls settle()
//   engine()                the engine
//   new_handle()            a fresh fake connected socket handle
//   during_open(f)          runs f inside the next open (the socket is OPENING)
//   peer_sends(h, bytes)    the peer sends `bytes` (one chunk: a receive gets
//                           at most one chunk)
//   peer_closes(h)          the peer closes its end (after the bytes it sent)
//   peer_resets(h)          the peer resets the connection (after the bytes it sent)
//   peer_accepts_some(h, n) the peer reads up to n bytes of what is being sent
//                           (a backend whose sends complete whole may take
//                           less: a send that does not fit stays pending)
//   peer_accepts_all(h)     the peer reads everything sent from now on
//                           (until then a send would block / stays pending)
//   wire(h)                 every byte the peer has read, in order
//   transport_calls(h)      send / receive calls the backend made on h
//   settle()                delivers what the peer did and runs the engine
//                           until nothing is left to do
//   run_pass()              one pass of the engine's loop: what is ready now
//                           (at most one completion per outstanding call on a
//                           completion backend)
//
// and its rows of docs/design.md's backend differences, as constants:
//   send_callback_inside_start, has_notify_io, send_after_reset_accepted,
//   cancel_of_outstanding_send_fails_direction
//
// Below: the probes and helpers the tests share.
#pragma once

#if defined(ASOCK_CONFORMANCE_URING)
#include "uring_driver.hpp"
#elif defined(_WIN32)
#include "win32_driver.hpp"
#else
#include "epoll_driver.hpp"
#endif

#include <asock/async_socket.hpp>
#include <asock/buffer.hpp>
#include <asock/results.hpp>

#include <catch2/catch.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

namespace conformance {

using socket_t = backend::socket_type;
using engine_t = backend::engine_type;
using native_t = backend::handle_type;
using owner_t = asock::basic_handle_owner<native_t>;

/// A socket on `d`'s engine, opened on a new handle (returned in `h`).
inline socket_t open_socket(backend& d, native_t& h, const owner_t& owner = backend::platform_type::default_owner())
{
    h = d.new_handle();
    socket_t s(d.engine());
    REQUIRE(s.valid());
    REQUIRE(s.open(h, owner) == asock::open_result::ok);
    return s;
}

// ---- callback-form probes --------------------------------------------------------------

/// A send in callback form of the given pieces (one buffer each), and what its
/// callback saw.
struct send_probe {
    asock::send_operation op;
    std::vector<std::string> pieces;
    std::vector<asock::const_buffer> bufs;
    int calls = 0;
    asock::send_result result = asock::send_result::invalid_argument;
    bool returned = false;         ///< The start call has returned.
    bool completed_inline = false; ///< The callback ran before the start call returned.
    std::vector<int>* log = nullptr; ///< Completion order, by id.
    int id = 0;
    std::function<void()> then; ///< Runs inside the callback, after recording.

    explicit send_probe(std::initializer_list<std::string> p) : pieces(p)
    {
        for (const std::string& s : pieces) {
            bufs.push_back({s.data(), static_cast<std::uint32_t>(s.size())});
        }
    }
    send_probe(const send_probe&) = delete;
    send_probe& operator=(const send_probe&) = delete;

    std::string bytes() const
    {
        std::string all;
        for (const std::string& s : pieces) {
            all += s;
        }
        return all;
    }

    asock::send_sync_result start(socket_t& s)
    {
        returned = false;
        const asock::send_sync_result r = s.send_async(op, bufs, &on_complete, this);
        returned = true;
        return r;
    }

    static void on_complete(void* context, asock::send_result r)
    {
        auto* p = static_cast<send_probe*>(context);
        ++p->calls;
        p->result = r;
        p->completed_inline = !p->returned;
        if (p->log != nullptr) {
            p->log->push_back(p->id);
        }
        if (p->then) {
            p->then();
        }
    }
};

/// A receive in callback form into `n` bytes of storage split into `pieces`
/// buffers, and what its callback saw.
struct receive_probe {
    asock::receive_operation op;
    std::string storage;
    std::vector<asock::mutable_buffer> bufs;
    int calls = 0;
    asock::receive_result result = asock::receive_result::invalid_argument;
    std::uint32_t bytes = 0;
    bool returned = false;             ///< The start call has returned.
    bool returned_at_callback = true;  ///< The start call had returned when the callback ran.
    bool on_engine_thread = false; ///< The callback ran on an engine thread of the socket's engine.
    engine_t* engine = nullptr;
    std::vector<int>* log = nullptr;
    int id = 0;
    std::function<void()> then;

    explicit receive_probe(std::size_t n = 16, std::size_t pieces = 1) : storage(n, '#')
    {
        const std::size_t each = n / pieces;
        for (std::size_t i = 0; i < pieces; ++i) {
            const std::size_t len = i + 1 == pieces ? n - each * i : each;
            bufs.push_back({storage.data() + each * i, static_cast<std::uint32_t>(len)});
        }
    }
    receive_probe(const receive_probe&) = delete;
    receive_probe& operator=(const receive_probe&) = delete;

    /// What the callback reported as received.
    std::string got() const { return storage.substr(0, bytes); }

    asock::start_result start(socket_t& s)
    {
        engine = s.valid() ? &s.engine() : nullptr;
        returned = false;
        const asock::start_result r = s.receive_async(op, bufs, &on_complete, this);
        returned = true;
        return r;
    }

    static void on_complete(void* context, asock::receive_result r, std::uint32_t n)
    {
        auto* p = static_cast<receive_probe*>(context);
        ++p->calls;
        p->result = r;
        p->bytes = n;
        p->returned_at_callback = p->returned;
        p->on_engine_thread = p->engine != nullptr && p->engine->running_in_this_thread();
        if (p->log != nullptr) {
            p->log->push_back(p->id);
        }
        if (p->then) {
            p->then();
        }
    }
};

/// Records the handle owner's calls.
struct owner_probe {
    int disconnects = 0;
    int destroys = 0;
    int destroys_before_disconnect = 0;
    std::function<void()> on_disconnect; ///< Runs inside disconnect.

    owner_t get() noexcept { return {this, &disconnect_fn, &destroy_fn}; }

    static void disconnect_fn(void* context, native_t)
    {
        auto* o = static_cast<owner_probe*>(context);
        ++o->disconnects;
        if (o->on_disconnect) {
            o->on_disconnect();
        }
    }
    static void destroy_fn(void* context, native_t)
    {
        auto* o = static_cast<owner_probe*>(context);
        o->destroys_before_disconnect += o->disconnects == 0 ? 1 : 0;
        ++o->destroys;
    }
};

// ---- co_await form ---------------------------------------------------------------------

/// The outcome of one co_await started with await_into().
template <class T>
struct awaited {
    std::optional<T> value;
    int completions = 0;   ///< Times the co_await returned.
    int extra_resumes = 0; ///< Times the coroutine was resumed after it had finished.
    std::coroutine_handle<> parked;

    awaited() = default;
    awaited(const awaited&) = delete;
    awaited& operator=(const awaited&) = delete;
    ~awaited()
    {
        if (parked) {
            parked.destroy();
        }
    }
    bool done() const noexcept { return completions != 0; }
    /// The result, or T{} (no valid result value) while not completed.
    T result() const { return value.value_or(T{}); }
};

/// A coroutine that starts at once and frees itself when it runs off its end.
struct eager_coro {
    struct promise_type {
        eager_coro get_return_object() const noexcept { return {}; }
        std::suspend_never initial_suspend() const noexcept { return {}; }
        std::suspend_never final_suspend() const noexcept { return {}; }
        void return_void() const noexcept {}
        void unhandled_exception() const noexcept { std::terminate(); }
    };
};

struct park {
    std::coroutine_handle<>* slot;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) const noexcept { *slot = h; }
    void await_resume() const noexcept {}
};

/// Starts `co_await make()` now; its outcome lands in `out`. The coroutine then
/// parks: a second resumption (a completion delivered twice) is counted.
/// `out` must outlive the operation (close the socket and settle() first).
template <class T, class Make>
eager_coro await_into(awaited<T>& out, Make make)
{
    T r = co_await make();
    out.value = r;
    ++out.completions;
    co_await park{&out.parked};
    out.parked = {};
    ++out.extra_resumes;
}

} // namespace conformance

// Readable values in failure messages.
namespace Catch {
template <>
struct StringMaker<asock::receive_outcome> {
    static std::string convert(const asock::receive_outcome& o)
    {
        std::string text = "{";
        text += asock::to_string(o.result);
        text += ", ";
        text += std::to_string(o.bytes_received);
        text += '}';
        return text;
    }
};
#define CONFORMANCE_ENUM_STRING(T)                                                                                 \
    template <>                                                                                                    \
    struct StringMaker<T> {                                                                                        \
        static std::string convert(T v) { return std::string(asock::to_string(v)); }                               \
    };
CONFORMANCE_ENUM_STRING(asock::open_result)
CONFORMANCE_ENUM_STRING(asock::send_sync_result)
CONFORMANCE_ENUM_STRING(asock::send_result)
CONFORMANCE_ENUM_STRING(asock::receive_result)
CONFORMANCE_ENUM_STRING(asock::notify_io_result)
CONFORMANCE_ENUM_STRING(asock::start_result)
CONFORMANCE_ENUM_STRING(asock::socket_state)
#undef CONFORMANCE_ENUM_STRING
} // namespace Catch
