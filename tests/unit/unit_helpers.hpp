// tests/unit/unit_helpers.hpp: what the unit tests share.
//
// - test_env: resets the fake world (tests/support/fake_sys.hpp) and creates an
//   engine with no threads, so every completion happens on the test thread
//   when the test calls poll().
// - *_probe: a callback-form operation record plus a callback that counts its
//   calls and keeps what it was given.
// - await_into(): starts a co_await in a small coroutine that records the
//   outcome, then parks. A second resumption of the same awaiter (a completion
//   delivered twice) would land after the park and is counted.
// - owner_probe: a handle owner that records disconnect / destroy calls.
#pragma once

#include "support/fake_sys.hpp"

#include <asock/engine_ref.hpp>
#include <asock/sync_wait.hpp>

#include <catch2/catch.hpp>

#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace asock_test {

using asock::const_buffer;
using asock::mutable_buffer;
using asock::notify_io_result;
using asock::notify_io_type;
using asock::open_result;
using asock::receive_outcome;
using asock::receive_result;
using asock::send_result;
using asock::send_sync_result;
using asock::shutdown_result;
using asock::socket_state;
using asock::start_result;

struct test_env {
    asock::engine_ref<fake_engine> engine;

    test_env()
    {
        fake().reset();
        engine = asock::engine_ref<fake_engine>(fake_engine::create(asock::linux_epoll::engine_options{.threads = 0}));
        REQUIRE(engine);
    }

    int epfd() const { return engine->epoll_fd(); }

    /// A socket on this engine, opened on a new fake descriptor (returned in `fd`).
    fake_socket open_socket(int& fd, const asock::custom_transport& transport = {})
    {
        fd = fake().make_socket();
        fake_socket s = transport.is_set() ? fake_socket(*engine, transport) : fake_socket(*engine);
        REQUIRE(s.valid());
        REQUIRE(s.open(fd) == open_result::ok);
        return s;
    }

    /// Runs the loop until a pass finds nothing to do.
    std::size_t drain()
    {
        std::size_t total = 0;
        for (int i = 0; i < 1000; ++i) {
            const std::size_t n = engine->poll();
            if (n == 0) {
                break;
            }
            total += n;
        }
        return total;
    }
};

inline const_buffer cbuf(const std::string& s)
{
    return const_buffer{s.data(), static_cast<std::uint32_t>(s.size())};
}
inline mutable_buffer mbuf(std::string& s)
{
    return mutable_buffer{s.data(), static_cast<std::uint32_t>(s.size())};
}

// ---- callback-form probes -------------------------------------------------------

struct send_probe {
    asock::send_operation op;
    int calls = 0;
    send_result result{};
    void* context_seen = nullptr;
    std::vector<int>* log = nullptr; ///< Completion order, by id.
    int id = 0;
    std::function<void()> then;       ///< Run inside the callback, after recording.

    static void on_complete(void* context, send_result r)
    {
        auto* p = static_cast<send_probe*>(context);
        ++p->calls;
        p->result = r;
        p->context_seen = context;
        if (p->log != nullptr) {
            p->log->push_back(p->id);
        }
        if (p->then) {
            p->then();
        }
    }

    send_sync_result start(fake_socket& s, std::span<const const_buffer> buffers)
    {
        return s.send_async(op, buffers, &on_complete, this);
    }
};

struct receive_probe {
    asock::receive_operation op;
    int calls = 0;
    receive_result result{};
    std::uint32_t bytes = 0;
    std::vector<int>* log = nullptr;
    int id = 0;
    std::function<void()> then;

    static void on_complete(void* context, receive_result r, std::uint32_t n)
    {
        auto* p = static_cast<receive_probe*>(context);
        ++p->calls;
        p->result = r;
        p->bytes = n;
        if (p->log != nullptr) {
            p->log->push_back(p->id);
        }
        if (p->then) {
            p->then();
        }
    }

    start_result start(fake_socket& s, std::span<const mutable_buffer> buffers)
    {
        return s.receive_async(op, buffers, &on_complete, this);
    }
};

struct notify_probe {
    asock::notify_operation op;
    int calls = 0;
    notify_io_result result{};
    std::vector<int>* log = nullptr;
    int id = 0;
    std::function<void()> then;

    static void on_complete(void* context, notify_io_result r)
    {
        auto* p = static_cast<notify_probe*>(context);
        ++p->calls;
        p->result = r;
        if (p->log != nullptr) {
            p->log->push_back(p->id);
        }
        if (p->then) {
            p->then();
        }
    }

    start_result start(fake_socket& s, notify_io_type type)
    {
        return s.notify_io_async(op, type, &on_complete, this);
    }
};

// ---- co_await form ----------------------------------------------------------------

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

struct no_follow_up {
    template <class T>
    void operator()(const T&) const noexcept
    {
    }
};

/// Starts `co_await make()` now; its outcome lands in `out`. `then(result)` runs
/// in the coroutine right after the co_await returns (on the resuming thread).
template <class T, class Make, class Then = no_follow_up>
eager_coro await_into(awaited<T>& out, Make make, Then then = {})
{
    T r = co_await make();
    out.value = r;
    ++out.completions;
    then(r);
    co_await park{&out.parked};
    out.parked = {};
    ++out.extra_resumes;
}

// ---- handle owner -------------------------------------------------------------------

struct owner_probe {
    int disconnects = 0;
    int destroys = 0;
    int last_fd = -1;
    std::function<void()> on_disconnect; ///< Run inside disconnect.

    asock::basic_handle_owner<int> get() noexcept { return {this, &disconnect_fn, &destroy_fn}; }

    static void disconnect_fn(void* context, int fd)
    {
        auto* o = static_cast<owner_probe*>(context);
        ++o->disconnects;
        o->last_fd = fd;
        if (o->on_disconnect) {
            o->on_disconnect();
        }
    }
    static void destroy_fn(void* context, int fd)
    {
        auto* o = static_cast<owner_probe*>(context);
        ++o->destroys;
        o->last_fd = fd;
    }
};

} // namespace asock_test

// Readable values in failure messages.
namespace Catch {
template <>
struct StringMaker<asock::receive_outcome> {
    static std::string convert(const asock::receive_outcome& o)
    {
        // Appended piece by piece: g++ 12 at -O2 / -O3 warns -Wrestrict (a
        // false positive) inside libstdc++ for `"literal" + std::string&&`.
        std::string text = "{";
        text += asock::to_string(o.result);
        text += ", ";
        text += std::to_string(o.bytes_received);
        text += '}';
        return text;
    }
};
#define ASOCK_TEST_ENUM_STRING(T)                                                                                 \
    template <>                                                                                                    \
    struct StringMaker<T> {                                                                                        \
        static std::string convert(T v) { return std::string(asock::to_string(v)); }                               \
    };
ASOCK_TEST_ENUM_STRING(asock::open_result)
ASOCK_TEST_ENUM_STRING(asock::send_sync_result)
ASOCK_TEST_ENUM_STRING(asock::send_result)
ASOCK_TEST_ENUM_STRING(asock::receive_result)
ASOCK_TEST_ENUM_STRING(asock::notify_io_result)
ASOCK_TEST_ENUM_STRING(asock::notify_io_type)
ASOCK_TEST_ENUM_STRING(asock::start_result)
ASOCK_TEST_ENUM_STRING(asock::socket_state)
ASOCK_TEST_ENUM_STRING(asock::shutdown_result)
#undef ASOCK_TEST_ENUM_STRING
} // namespace Catch
