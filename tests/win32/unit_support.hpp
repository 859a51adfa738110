// tests/win32/unit_support.hpp: helpers of the Windows backend's unit tests.
//
// The tests run the real async_socket, threadpool engine and socket core over
// the fake Win32 layer (fake_win32.hpp). A `fixture` resets the fake and
// creates an engine; the probes below start operations in callback form and
// record what their callbacks saw.
#pragma once

#include "fake_win32.hpp"

#include <asock/async_socket.hpp>
#include <asock/results.hpp>
#include <asock/sync_wait.hpp>
#include <asock/task.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <coroutine>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace Catch {
#define ASOCK_WT_STRING_MAKER(T)                                                                                       \
    template <>                                                                                                        \
    struct StringMaker<T> {                                                                                            \
        static std::string convert(T v) { return std::string(asock::to_string(v)); }                                  \
    };
ASOCK_WT_STRING_MAKER(asock::open_result)
ASOCK_WT_STRING_MAKER(asock::send_sync_result)
ASOCK_WT_STRING_MAKER(asock::send_result)
ASOCK_WT_STRING_MAKER(asock::receive_result)
ASOCK_WT_STRING_MAKER(asock::notify_io_result)
ASOCK_WT_STRING_MAKER(asock::start_result)
ASOCK_WT_STRING_MAKER(asock::socket_state)
ASOCK_WT_STRING_MAKER(asock::shutdown_result)
#undef ASOCK_WT_STRING_MAKER
} // namespace Catch

namespace asock_wtest {

using asock::const_buffer;
using asock::mutable_buffer;

constexpr SOCKET sock_a = 100;
constexpr SOCKET sock_b = 101;

/// Resets the fake and creates an engine (released at the end of the test).
/// With `auto_abort` a helper thread completes every call CancelIoEx is asked
/// for (ERROR_OPERATION_ABORTED), as the OS would, so that a socket destroyed
/// with calls outstanding can close; tests that deliver those completions
/// themselves pass false.
/// `options` chooses the engine (`{.threads = 0}`: one whose loop the test
/// runs with run() / run_one() / poll()).
struct fixture {
    explicit fixture(bool auto_abort = true, const asock::win32::engine_options& options = {})
    {
        fake().reset();
        engine = fake_engine::create(options);
        REQUIRE(engine != nullptr);
        if (auto_abort) {
            aborter.emplace(true);
        }
    }
    ~fixture()
    {
        aborter.reset();
        fake().run_work();
        engine->dec_ref();
    }
    fixture(const fixture&) = delete;
    fixture& operator=(const fixture&) = delete;

    /// An OPEN socket on the engine owning fake SOCKET `s` (default owner).
    fake_socket_t open_socket(SOCKET s = sock_a)
    {
        fake_socket_t sock(*engine);
        REQUIRE(sock.valid());
        REQUIRE(sock.open(s) == asock::open_result::ok);
        return sock;
    }

    fake_engine* engine = nullptr;
    std::optional<pool_runner> aborter;
};

/// A send in callback form and what its callback saw.
struct send_probe {
    asock::send_operation op;
    std::string data;
    std::vector<const_buffer> bufs;
    std::atomic<int> calls{0};
    asock::send_result result = asock::send_result::invalid_argument;
    std::thread::id thread;
    void (*then)(send_probe&) = nullptr; ///< runs inside the callback
    void* user = nullptr;

    explicit send_probe(std::string d = "hello") : data(std::move(d)) { bufs.push_back({data.data(), size32()}); }

    std::uint32_t size32() const { return static_cast<std::uint32_t>(data.size()); }

    asock::send_sync_result start(fake_socket_t& s) { return s.send_async(op, bufs, &on_done, this); }

    static void on_done(void* ctx, asock::send_result r)
    {
        auto* self = static_cast<send_probe*>(ctx);
        self->result = r;
        self->thread = std::this_thread::get_id();
        if (self->then != nullptr) {
            self->then(*self);
        }
        self->calls.fetch_add(1);
    }
};

/// A receive in callback form into `n` bytes of storage (one buffer, or split
/// into several) and what its callback saw.
struct receive_probe {
    asock::receive_operation op;
    std::vector<char> storage;
    std::vector<mutable_buffer> bufs;
    std::atomic<int> calls{0};
    asock::receive_result result = asock::receive_result::invalid_argument;
    std::uint32_t bytes = 0;
    void (*then)(receive_probe&) = nullptr;
    void* user = nullptr;

    explicit receive_probe(std::size_t n = 16, std::size_t pieces = 1) : storage(n, '\0')
    {
        const std::size_t each = n / pieces;
        for (std::size_t i = 0; i < pieces; ++i) {
            const std::size_t len = i + 1 == pieces ? n - each * i : each;
            bufs.push_back({storage.data() + each * i, static_cast<std::uint32_t>(len)});
        }
    }

    asock::start_result start(fake_socket_t& s) { return s.receive_async(op, bufs, &on_done, this); }

    std::string got() const { return std::string(storage.data(), bytes); }

    static void on_done(void* ctx, asock::receive_result r, std::uint32_t n)
    {
        auto* self = static_cast<receive_probe*>(ctx);
        self->result = r;
        self->bytes = n;
        if (self->then != nullptr) {
            self->then(*self);
        }
        self->calls.fetch_add(1);
    }
};

/// Runs a task detached on this thread until its first suspension; the result
/// lands in `out` when it finishes (wherever it resumes).
template <class T>
struct detached_result {
    std::optional<T> value;
    std::atomic<bool> done{false};
};

namespace detail {
struct fire_and_forget {
    struct promise_type {
        fire_and_forget get_return_object() const noexcept { return {}; }
        std::suspend_never initial_suspend() const noexcept { return {}; }
        std::suspend_never final_suspend() const noexcept { return {}; }
        void return_void() const noexcept {}
        [[noreturn]] void unhandled_exception() const noexcept { std::terminate(); }
    };
};
template <class T>
fire_and_forget run_detached(asock::task<T> t, detached_result<T>* out)
{
    out->value.emplace(co_await std::move(t));
    out->done.store(true);
}
} // namespace detail

template <class T>
void start_detached(asock::task<T> t, detached_result<T>& out)
{
    detail::run_detached(std::move(t), &out);
}

} // namespace asock_wtest
