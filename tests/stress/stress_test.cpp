// tests/stress/stress_test.cpp: the stress suite (ctest label `stress`, issue 14).
//
//  1. Thousands of concurrent TCP connections over 127.0.0.1 (10,000 in an
//     optimised or -O0 build): all established and open at once, then each
//     echoes a pseudo-random amount of its own byte pattern; the server checks
//     every byte it receives, the client every byte echoed back, then the end
//     of stream. The clients run here on an engine of two threads, the server
//     in the stress_echo_server process (echo_server_main.cpp) on another, so
//     that each process needs one descriptor per connection, not two.
//  2. Engines of 2 to 4 threads created and destroyed in a tight loop, with
//     work posted from the test thread, from a helper thread holding its own
//     reference, and from inside posted work; sockets on socketpairs with
//     callback and co_await receives pending at destroy time. When the last
//     reference's destroy returns, every posted item has run exactly once,
//     every callback has been called once and every coroutine resumed once.
//  3. Close and destroy from other threads while operations are in flight:
//     sends and receives started from one thread, a peer thread moving bytes
//     (and in some TCP rounds resetting the connection), close() from a
//     second thread, destroy from a third or from inside a
//     completion callback. Every accepted operation's callback is called
//     exactly once, before close returns (for operations started before the
//     close) and before destroy returns, never after; rejected ones never.
//     A few co_await operations among them are each resumed exactly once.
//  4. A million operations on one socket (sends and receives, co_await and
//     callback forms, gather sends, readiness notifications, cancelled
//     receives) streaming through an echoing peer, every byte verified; heap
//     and resident memory checked flat after a warm-up.
//
// Sizes per build flavour: stress_support.hpp (printed at the start of a run).
#include "stress_support.hpp"

#include "echo_protocol.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <coroutine>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace sc = asock_scenarios;
using asock::receive_result;
using asock::send_result;
using namespace std::chrono_literals;

// ==== heap accounting ======================================================================
//
// Without sanitizers the program's operator new / delete count live bytes and
// allocations (the sanitizers bring their own operator new, and their
// allocator answers the same question: stress::heap_now()).

#if !defined(ASOCK_STRESS_SANITIZED)
namespace {
std::atomic<std::int64_t> g_live_bytes{0};
std::atomic<std::uint64_t> g_allocations{0};

void* counted_alloc(std::size_t n, std::size_t align) noexcept
{
    if (n == 0) {
        n = 1;
    }
    void* p = nullptr;
    if (align <= alignof(std::max_align_t)) {
        p = std::malloc(n);
    } else if (::posix_memalign(&p, align, n) != 0) {
        p = nullptr;
    }
    if (p != nullptr) {
        g_allocations.fetch_add(1, std::memory_order_relaxed);
        g_live_bytes.fetch_add(static_cast<std::int64_t>(::malloc_usable_size(p)), std::memory_order_relaxed);
    }
    return p;
}

void counted_free(void* p) noexcept
{
    if (p != nullptr) {
        g_live_bytes.fetch_sub(static_cast<std::int64_t>(::malloc_usable_size(p)), std::memory_order_relaxed);
        std::free(p);
    }
}

void* counted_alloc_or_throw(std::size_t n, std::size_t align)
{
    void* p = counted_alloc(n, align);
    if (p == nullptr) {
        throw std::bad_alloc();
    }
    return p;
}
} // namespace

void* operator new(std::size_t n) { return counted_alloc_or_throw(n, 0); }
void* operator new[](std::size_t n) { return counted_alloc_or_throw(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_alloc_or_throw(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_alloc_or_throw(n, static_cast<std::size_t>(a)); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept
{
    return counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept
{
    return counted_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_free(p); }

stress::heap_usage stress::heap_now() noexcept
{
    return {g_live_bytes.load(std::memory_order_relaxed), g_allocations.load(std::memory_order_relaxed)};
}
#else
stress::heap_usage stress::heap_now() noexcept
{
    return {static_cast<std::int64_t>(__sanitizer_get_current_allocated_bytes()), 0};
}
#endif

namespace {

std::string str(std::uint64_t v) { return std::to_string(v); }

// ==== 1. concurrent TCP connections echoing ======================================================
//
// The clients run here, on one engine of two threads; the server (echo_protocol.hpp)
// in the stress_echo_server process, on its own engine of two threads.

namespace echo {

using stress::echo::chunk_max;
using stress::echo::header;

/// Holds coroutines until open(), then resumes each through its engine.
class async_gate {
public:
    explicit async_gate(asock::engine& e, std::size_t expected) : engine_(&e) { waiting_.reserve(expected); }

    struct awaiter : asock::detail::work_item {
        async_gate* gate;
        std::coroutine_handle<> handle;
        explicit awaiter(async_gate* g) noexcept : gate(g) { run = &resume; }
        bool await_ready() const noexcept { return false; }
        bool await_suspend(std::coroutine_handle<> h)
        {
            handle = h;
            std::lock_guard lk(gate->mu_);
            if (gate->open_) {
                return false;
            }
            gate->waiting_.push_back(this);
            return true;
        }
        void await_resume() const noexcept {}
        static void resume(asock::detail::work_item* w) noexcept { static_cast<awaiter*>(w)->handle.resume(); }
    };
    awaiter wait() noexcept { return awaiter{this}; }

    void open()
    {
        std::vector<awaiter*> ready;
        {
            std::lock_guard lk(mu_);
            open_ = true;
            ready.swap(waiting_);
        }
        for (awaiter* a : ready) {
            engine_->post(a);
        }
    }

private:
    asock::engine* engine_;
    std::mutex mu_;
    bool open_ = false;
    std::vector<awaiter*> waiting_;
};

/// The stress_echo_server process: started with posix_spawn, its stdout read
/// line by line on a thread of its own; closing its stdin tells it to stop.
class server_process {
public:
    server_process() = default;
    server_process(const server_process&) = delete;
    server_process& operator=(const server_process&) = delete;
    ~server_process()
    {
        finish_input();
        if (pid_ > 0 && !exited_) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
        if (reader_.joinable()) {
            reader_.join();
        }
        if (out_ >= 0) {
            ::close(out_);
        }
    }

    /// Starts `path <connections> <max_bytes>`; an empty string, or why not.
    std::string start(const char* path, int connections, std::uint32_t max_bytes)
    {
        int in[2];
        int out[2];
        if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
            return std::string("pipe2: ") + std::strerror(errno);
        }
        posix_spawn_file_actions_t fa;
        ::posix_spawn_file_actions_init(&fa);
        ::posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
        ::posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
        std::string a1 = std::to_string(connections);
        std::string a2 = std::to_string(max_bytes);
        std::string a0 = path;
        char* args[] = {a0.data(), a1.data(), a2.data(), nullptr};
        const int rc = ::posix_spawn(&pid_, path, &fa, nullptr, args, environ);
        ::posix_spawn_file_actions_destroy(&fa);
        ::close(in[0]);
        ::close(out[1]);
        in_ = in[1];
        out_ = out[0];
        if (rc != 0) {
            pid_ = -1;
            return std::string("posix_spawn ") + path + ": " + std::strerror(rc);
        }
        reader_ = std::thread([this] { read_lines(); });
        return {};
    }

    /// Closes the server's stdin: it finishes (or gives up) and exits.
    void finish_input()
    {
        if (in_ >= 0) {
            ::close(in_);
            in_ = -1;
        }
    }

    /// Waits for the exit, and for the last of its output to be read (the
    /// fields below are then safe to read); its exit status, or -1 when it
    /// had to be killed.
    int wait_exit(std::chrono::seconds limit)
    {
        const int status = reap(limit);
        if (reader_.joinable()) {
            reader_.join(); // its stdout ends with it
        }
        return status;
    }

    std::atomic<int> port{0};
    std::atomic<int> accepted{0};
    std::atomic<bool> done{false}; ///< its "done" line arrived
    std::atomic<bool> ended{false}; ///< its stdout ended
    // Valid after wait_exit():
    int ok = 0;
    std::uint64_t bytes = 0;
    int failures = 0;

    std::string failure_lines()
    {
        std::lock_guard lk(mu_);
        return failure_lines_;
    }

private:
    int reap(std::chrono::seconds limit)
    {
        const auto deadline = stress::clock::now() + limit;
        int status = 0;
        for (;;) {
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                exited_ = true;
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
            }
            if (r < 0 || stress::clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &status, 0);
                exited_ = true;
                return -1;
            }
            std::this_thread::sleep_for(1ms);
        }
    }

    void read_lines()
    {
        std::string pending;
        char buf[4096];
        for (;;) {
            const ssize_t n = ::read(out_, buf, sizeof buf);
            if (n <= 0) {
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                break;
            }
            pending.append(buf, static_cast<std::size_t>(n));
            std::size_t nl;
            while ((nl = pending.find('\n')) != std::string::npos) {
                line(pending.substr(0, nl));
                pending.erase(0, nl + 1);
            }
        }
        ended.store(true);
    }

    void line(const std::string& l)
    {
        unsigned long long b = 0;
        int a = 0;
        int f = 0;
        if (std::sscanf(l.c_str(), "port %d", &a) == 1) {
            port.store(a);
        } else if (std::sscanf(l.c_str(), "accepted %d", &a) == 1) {
            accepted.store(a);
        } else if (std::sscanf(l.c_str(), "done %d %llu %d", &a, &b, &f) == 3) {
            ok = a;
            bytes = b;
            failures = f;
            done.store(true);
        } else {
            std::lock_guard lk(mu_);
            failure_lines_ += "\n  server: " + l;
        }
    }

    pid_t pid_ = -1;
    bool exited_ = false;
    int in_ = -1;
    int out_ = -1;
    std::thread reader_;
    std::mutex mu_;
    std::string failure_lines_;
};

struct client_context {
    client_context(asock::engine& clients, std::uint16_t p, std::uint32_t max, int n)
        : client_engine(&clients), port(p), max_bytes(max), gate(clients, static_cast<std::size_t>(n))
    {
    }
    asock::engine* client_engine;
    std::uint16_t port;
    std::uint32_t max_bytes;
    async_gate gate;
    std::atomic<int> connected{0}, connect_failed{0}, client_done{0}, client_ok{0};
    std::atomic<std::uint64_t> client_bytes{0}, expected_bytes{0};
    stress::failure_log fails;
    server_process* server = nullptr;

    std::string progress() const
    {
        return "clients: " + str(connected.load()) + " connected, " + str(connect_failed.load()) +
               " connect failures, " + str(client_done.load()) + " done (" + str(client_ok.load()) +
               " ok); server: " + str(server->accepted.load()) + " accepted" +
               (server->ended.load() ? ", exited" : "") + "; " + fails.summary();
    }
};

asock::task<void> client_session(client_context& ctx, std::uint32_t id)
{
    auto c = co_await asock::connect(*ctx.client_engine, "127.0.0.1", ctx.port);
    if (!c) {
        ctx.connect_failed.fetch_add(1);
        ctx.fails.add("client " + str(id) + ": connect: " + c.error.message());
        co_return;
    }
    ctx.connected.fetch_add(1);
    co_await ctx.gate.wait(); // every connection is open before any of them echoes
    asock::tcp_socket& s = c.socket;
    sc::rng r(id + 1);
    const std::uint32_t total = r.between(1, ctx.max_bytes);
    const std::uint32_t seed = id * 2654435761u + 17u;
    ctx.expected_bytes.fetch_add(total);
    const header h{total, seed};
    if (const send_result sr = co_await s.send_async(asock::buffer(static_cast<const void*>(&h), sizeof h));
        sr != send_result::ok) {
        ctx.fails.add("client " + str(id) + ": header send: " + std::string(asock::to_string(sr)));
        co_return;
    }
    std::array<char, chunk_max> buf;
    std::uint64_t sent = 0;
    std::uint64_t verified = 0;
    while (verified < total) {
        const auto chunk = static_cast<std::uint32_t>(std::min<std::uint64_t>(r.between(1, chunk_max), total - sent));
        stress::echo::fill_pattern(buf.data(), chunk, sent, seed);
        if (const send_result sr = co_await s.send_async(asock::buffer(static_cast<const void*>(buf.data()), chunk));
            sr != send_result::ok) {
            ctx.fails.add("client " + str(id) + ": send at byte " + str(sent) + ": " + std::string(asock::to_string(sr)));
            co_return;
        }
        sent += chunk;
        while (verified < sent) {
            const asock::receive_outcome out = co_await s.receive_async(asock::buffer(buf.data(), sent - verified));
            if (!out) {
                ctx.fails.add("client " + str(id) + ": receive at byte " + str(verified) + " of " + str(total) + ": " +
                              std::string(asock::to_string(out.result)));
                co_return;
            }
            const std::size_t bad = stress::echo::check_pattern(buf.data(), out.bytes_received, verified, seed);
            if (bad != out.bytes_received) {
                ctx.fails.add("client " + str(id) + ": echoed byte " + str(verified + bad) + " differs");
                co_return;
            }
            verified += out.bytes_received;
        }
    }
    // The server closes once it has echoed everything: end of stream, no extra byte.
    const asock::receive_outcome end = co_await s.receive_async(asock::buffer(buf.data(), 1));
    if (end.result != receive_result::abandoned) {
        ctx.fails.add("client " + str(id) + ": after the echo: " + std::string(asock::to_string(end.result)) +
                      " instead of the end of stream");
        co_return;
    }
    ctx.client_bytes.fetch_add(verified);
    ctx.client_ok.fetch_add(1);
}

asock::task<void> echo_client(client_context& ctx, std::uint32_t id)
{
    co_await client_session(ctx, id); // its frame, and the socket, are gone after this line
    ctx.client_done.fetch_add(1);
}

} // namespace echo

TEST_CASE("stress: 10,000 concurrent TCP connections over 127.0.0.1 echo, every byte verified", "[stress][echo]")
{
    const stress::sizes_t& sz = stress::sizes();
    int n = sz.connections;
    const int fds_before = stress::open_descriptors();
    // One descriptor per connection in this process (the server process holds
    // the other ends), plus what is open already and a margin.
    const auto wanted = static_cast<rlim_t>(n + fds_before + 64);
    const rlim_t limit = stress::raise_nofile(wanted);
    if (limit < wanted) {
        const int fit = static_cast<int>(limit) - fds_before - 64;
        WARN("RLIMIT_NOFILE is " << limit << " and cannot be raised to " << wanted << ": running " << fit
                                 << " connections instead of " << n);
        std::printf("stress: WARNING: RLIMIT_NOFILE %llu < %llu: %d connections instead of %d\n",
                    static_cast<unsigned long long>(limit), static_cast<unsigned long long>(wanted), fit, n);
        n = fit;
    }
    REQUIRE(n > 0);
    const auto t0 = stress::clock::now();
    {
        echo::server_process server;
        const std::string spawned = server.start(ASOCK_STRESS_ECHO_SERVER, n, sz.echo_max);
        INFO(spawned);
        REQUIRE(spawned.empty());
        stress::wait_or_die("the echo server to listen", 60s, [&] { return server.port.load() != 0 || server.ended.load(); },
                            [&] { return server.failure_lines(); });
        INFO("server output:" << server.failure_lines());
        REQUIRE(server.port.load() != 0);

        auto client_engine = asock::make_engine({.threads = 2});
        REQUIRE(client_engine);
        echo::client_context ctx(*client_engine, static_cast<std::uint16_t>(server.port.load()), sz.echo_max, n);
        ctx.server = &server;
        auto progress = [&] { return ctx.progress() + server.failure_lines(); };
        stress::phase_watchdog watchdog("echo over " + std::to_string(n) + " connections", 300s, progress);

        // Connects run ahead of the server's accepts (reported every 256) by at
        // most `window`, inside the listen backlog, so that no SYN is dropped
        // (and retried a second later).
        const int window = 1024;
        for (int id = 0; id < n; ++id) {
            stress::wait_or_die(
                "the server to catch up", 120s,
                [&] {
                    return id - server.accepted.load() - ctx.connect_failed.load() < window || server.ended.load();
                },
                progress);
            asock::spawn(echo::echo_client(ctx, static_cast<std::uint32_t>(id)));
        }
        stress::wait_or_die(
            "every connection to be established and accepted", 120s,
            [&] {
                const int c = ctx.connected.load();
                return c + ctx.connect_failed.load() == n &&
                       (server.accepted.load() == n || ctx.connect_failed.load() != 0 || server.ended.load());
            },
            progress);
        // Nobody sends or closes before the gate opens: all of them are open now.
        const int open_at_once = ctx.connected.load();
        const int accepted_at_once = server.accepted.load();
        const int fds_at_peak = stress::open_descriptors();
        const double connect_seconds = stress::seconds_since(t0);
        const auto t1 = stress::clock::now();
        ctx.gate.open();
        stress::wait_or_die("every connection to finish its echo", 240s, [&] { return ctx.client_done.load() == n; },
                            progress);
        const double echo_seconds = stress::seconds_since(t1);
        server.finish_input();
        const int server_status = server.wait_exit(60s);

        std::printf("stress: echo: %d connections open at once (%d accepted by the server process; %d descriptors "
                    "here), established in %.2f s; echoed %llu bytes each way in %.2f s; %d clients and %d server "
                    "sessions verified every byte\n",
                    open_at_once, accepted_at_once, fds_at_peak, connect_seconds,
                    static_cast<unsigned long long>(ctx.client_bytes.load()), echo_seconds, ctx.client_ok.load(),
                    server.ok);
        std::fflush(stdout);
        INFO(ctx.progress() << server.failure_lines());
        CHECK(ctx.fails.count() == 0);
        CHECK(open_at_once == n);
        CHECK(accepted_at_once == n);
        CHECK(ctx.client_ok.load() == n);
        CHECK(server.done.load());
        CHECK(server.ok == n);
        CHECK(server.failures == 0);
        CHECK(server_status == 0);
        CHECK(ctx.client_bytes.load() == ctx.expected_bytes.load());
        CHECK(server.bytes == ctx.expected_bytes.load());
    }
    // Every socket and the engine are gone: no descriptor left behind.
    CHECK(stress::open_descriptors() == fds_before);
}

// ==== 2. engines created and destroyed in a tight loop, with work posted ================================

namespace churn {

constexpr int items_per_round = 32; // half posted by the test thread, half by a helper thread
constexpr int sockets_per_round = 3;

/// A posted item that counts its runs; some post a follow-up item from inside
/// their run (work posted by posted work, on an engine thread or inside the
/// destroy's run of leftovers).
struct counted_item : asock::detail::work_item {
    std::atomic<int> runs{0};
    asock::engine* engine = nullptr;
    counted_item* follow = nullptr;
    counted_item() noexcept { run = &run_fn; }
    static void run_fn(asock::detail::work_item* w) noexcept
    {
        auto* self = static_cast<counted_item*>(w);
        if (self->follow != nullptr) {
            self->engine->post(self->follow);
        }
        self->runs.fetch_add(1, std::memory_order_acq_rel);
    }
};

struct receive_slot {
    asock::receive_operation op;
    std::array<char, 64> buf{};
    std::array<asock::mutable_buffer, 1> bufs{};
    std::atomic<int> calls{0};
    std::atomic<int> result{0};
    static void on_done(void* c, receive_result r, std::uint32_t) noexcept
    {
        auto* s = static_cast<receive_slot*>(c);
        s->result.store(static_cast<int>(r), std::memory_order_relaxed);
        s->calls.fetch_add(1, std::memory_order_acq_rel);
    }
};

asock::task<void> await_receive(asock::tcp_socket& s, std::atomic<int>* resumed, std::atomic<int>* result)
{
    std::array<char, 32> b{};
    const asock::receive_outcome r = co_await s.receive_async(asock::buffer(b.data(), b.size()));
    result->store(static_cast<int>(r.result), std::memory_order_relaxed);
    resumed->fetch_add(1, std::memory_order_acq_rel);
}

/// Posted last in the rounds where an engine thread destroys the sockets and
/// drops a reference (the engine's last, unless the helper or the test thread
/// still holds one: then the destroy happens on a thread of the engine's own
/// choosing, see basic_epoll_engine::dec_ref).
struct finisher : asock::detail::work_item {
    asock::engine_ref<asock::engine> ref;
    std::array<std::optional<asock::tcp_socket>, sockets_per_round>* sockets = nullptr;
    std::atomic<bool> done{false};
    finisher() noexcept { run = &run_fn; }
    static void run_fn(asock::detail::work_item* w) noexcept
    {
        auto* self = static_cast<finisher*>(w);
        for (auto& s : *self->sockets) {
            s.reset();
        }
        self->ref = {};
        self->done.store(true, std::memory_order_release); // last touch of `self`
    }
};

bool valid_receive_end(int r)
{
    return r == static_cast<int>(receive_result::ok) || r == static_cast<int>(receive_result::abandoned);
}

} // namespace churn

TEST_CASE("stress: engines of several threads created and destroyed in a tight loop with work posted and receives "
          "pending: everything runs exactly once",
          "[stress][engine]")
{
    using namespace churn;
    const stress::sizes_t& sz = stress::sizes();
    const int rounds = sz.engine_rounds;
    stress::failure_log fails;
    std::atomic<int> round_now{0};
    stress::phase_watchdog watchdog("engine create / post / destroy loop", 240s, [&] {
        return "round " + std::to_string(round_now.load()) + " of " + std::to_string(rounds) + "; " + fails.summary();
    });

    std::array<counted_item, items_per_round> items;
    std::array<counted_item, items_per_round / 4> follows;
    std::array<receive_slot, sockets_per_round> slots;
    std::atomic<int> resumed{0};
    std::atomic<int> resumed_result{0};
    int by_order[3] = {0, 0, 0};
    const int fds_before = stress::open_descriptors();
    const auto t0 = stress::clock::now();

    for (int round = 0; round < rounds && fails.count() == 0; ++round) {
        round_now.store(round);
        const int order = round % 3;
        const unsigned threads = 2 + static_cast<unsigned>((round / 3) % 3);
        sc::rng r(static_cast<std::uint64_t>(round) + 7);
        for (auto& it : items) {
            it.runs.store(0);
            it.follow = nullptr;
        }
        for (auto& f : follows) {
            f.runs.store(0);
        }
        for (auto& s : slots) {
            s.calls.store(0);
            s.result.store(0);
            s.bufs[0] = asock::buffer(s.buf.data(), s.buf.size());
        }
        resumed.store(0);
        resumed_result.store(0);

        std::array<std::pair<int, int>, sockets_per_round> fds{};
        for (auto& p : fds) {
            p = it::make_socketpair();
        }
        auto e = asock::make_engine({.threads = threads});
        if (!e) {
            fails.add("round " + std::to_string(round) + ": make_engine failed");
            break;
        }
        for (std::size_t i = 0; i < items.size(); ++i) {
            items[i].engine = e.get();
            if (i % 4 == 0) {
                follows[i / 4].engine = e.get();
                items[i].follow = &follows[i / 4];
            }
        }
        std::array<std::optional<asock::tcp_socket>, sockets_per_round> sockets;
        bool ok = true;
        for (int j = 0; j < sockets_per_round; ++j) {
            sockets[j].emplace(*e);
            if (sockets[j]->open(fds[j].first) != asock::open_result::ok) {
                fails.add("round " + std::to_string(round) + ": open failed");
                ::close(fds[j].first);
                ok = false;
                continue;
            }
            if (sockets[j]->receive_async(slots[j].op, slots[j].bufs, &receive_slot::on_done, &slots[j]) !=
                asock::start_result::started) {
                fails.add("round " + std::to_string(round) + ": receive not started");
                ok = false;
            }
        }
        if (!ok) {
            break;
        }
        // A coroutine waits behind the callback receive of socket 0.
        asock::spawn(await_receive(*sockets[0], &resumed, &resumed_result));
        // Socket 2's receive may complete while the engine is being torn down.
        if (round % 2 == 0) {
            const char byte = 'x';
            (void)!::write(fds[2].second, &byte, 1);
        }

        // The helper posts its half holding its own reference, and drops it at
        // some point: sometimes before the test thread, sometimes after (then
        // the helper's drop destroys the engine).
        std::thread helper([ref = e, &items, spin = r.between(0, 20000)]() mutable {
            for (int i = items_per_round / 2; i < items_per_round; ++i) {
                ref->post(&items[static_cast<std::size_t>(i)]);
            }
            for (std::uint32_t k = 0; k < spin; ++k) {
                std::atomic_signal_fence(std::memory_order_seq_cst);
            }
            ref = {};
        });
        for (int i = 0; i < items_per_round / 2; ++i) {
            e->post(&items[static_cast<std::size_t>(i)]);
        }
        for (std::uint32_t k = 0, spin = r.between(0, 20000); k < spin; ++k) {
            std::atomic_signal_fence(std::memory_order_seq_cst);
        }

        finisher fin;
        switch (order) {
        case 0: // the sockets, then the test thread's reference
            for (auto& s : sockets) {
                s.reset();
            }
            e = {};
            break;
        case 1: // the test thread's reference first: the last socket (or the helper) destroys the engine
            e = {};
            for (auto& s : sockets) {
                s.reset();
            }
            break;
        default: // an engine thread destroys the sockets and drops a reference
            fin.ref = e;
            fin.sockets = &sockets;
            e->post(&fin);
            e = {};
            break;
        }
        helper.join();
        ++by_order[order];
        if (order == 2) {
            // The destroy may run on a thread of the engine's choosing: wait for its effects.
            stress::wait_or_die(
                "the engine-thread teardown to run everything", 60s,
                [&] {
                    if (!fin.done.load(std::memory_order_acquire) || resumed.load() != 1) {
                        return false;
                    }
                    for (auto& it : items) {
                        if (it.runs.load() == 0) {
                            return false;
                        }
                    }
                    for (auto& f : follows) {
                        if (f.runs.load() == 0) {
                            return false;
                        }
                    }
                    return true;
                },
                [&] { return "round " + std::to_string(round); });
        }
        // The last reference is gone and its destroy has returned (orders 0
        // and 1: on this thread or the joined helper).
        const std::string where = "round " + std::to_string(round) + " (order " + std::to_string(order) + ", " +
                                  std::to_string(threads) + " threads): ";
        for (std::size_t i = 0; i < items.size(); ++i) {
            if (const int runs = items[i].runs.load(); runs != 1) {
                fails.add(where + "posted item " + std::to_string(i) + " ran " + std::to_string(runs) + " times");
            }
        }
        for (std::size_t i = 0; i < follows.size(); ++i) {
            if (const int runs = follows[i].runs.load(); runs != 1) {
                fails.add(where + "item posted from posted work " + std::to_string(i) + " ran " + std::to_string(runs) +
                          " times");
            }
        }
        for (std::size_t j = 0; j < slots.size(); ++j) {
            const int calls = slots[j].calls.load();
            if (calls != 1 || !valid_receive_end(slots[j].result.load())) {
                fails.add(where + "receive callback of socket " + std::to_string(j) + " called " + std::to_string(calls) +
                          " times, result " + std::to_string(slots[j].result.load()));
            }
        }
        if (resumed.load() != 1 || !valid_receive_end(resumed_result.load())) {
            fails.add(where + "awaiting coroutine resumed " + std::to_string(resumed.load()) + " times, result " +
                      std::to_string(resumed_result.load()));
        }
        for (auto& p : fds) {
            ::close(p.second);
        }
    }
    const double secs = stress::seconds_since(t0);
    std::printf("stress: engines: %d rounds (%d / %d / %d by teardown order) of an engine of 2-4 threads, %d posted "
                "items, %d posted from posted work, %d sockets with receives pending: %.2f s\n",
                round_now.load() + 1, by_order[0], by_order[1], by_order[2], items_per_round, items_per_round / 4,
                sockets_per_round, secs);
    std::fflush(stdout);
    INFO(fails.summary());
    CHECK(fails.count() == 0);
    CHECK(round_now.load() + 1 == rounds);
    // Engines destroyed on detached threads (order 2) close their descriptors
    // a moment later: give them that moment.
    stress::wait_or_die("every engine's descriptors to be closed", 30s,
                        [&] { return stress::open_descriptors() <= fds_before; },
                        [&] { return std::to_string(stress::open_descriptors()) + " descriptors, " +
                                     std::to_string(fds_before) + " before"; });
}

// ==== 3. close / destroy from other threads while operations are in flight ==========================

namespace closing {

constexpr int max_ops = 40;
constexpr std::uint32_t max_send = 16 * 1024;

struct round_state;

struct op_slot {
    round_state* round = nullptr;
    int index = 0;
    bool is_send = false;
    asock::send_operation send_op;
    asock::receive_operation receive_op;
    std::vector<char> data = std::vector<char>(max_send);
    std::array<asock::const_buffer, 1> send_bufs{};
    std::array<asock::mutable_buffer, 1> receive_bufs{};
    std::atomic<int> calls{0};
    std::atomic<int> result{0};
    std::atomic<std::uint32_t> bytes{0};
    std::atomic<bool> accepted{false};
    std::atomic<bool> start_returned{false};
    std::atomic<bool> late{false}; ///< called after the socket's destroy returned

    void reset(round_state* r, int i)
    {
        round = r;
        index = i;
        calls.store(0);
        result.store(0);
        bytes.store(0);
        accepted.store(false);
        start_returned.store(false);
        late.store(false);
    }
    void on_complete(int r, std::uint32_t n) noexcept;
    static void on_send(void* c, send_result r) noexcept { static_cast<op_slot*>(c)->on_complete(static_cast<int>(r), 0); }
    static void on_receive(void* c, receive_result r, std::uint32_t n) noexcept
    {
        static_cast<op_slot*>(c)->on_complete(static_cast<int>(r), n);
    }
};

enum destroyer : int { nobody = 0, destroy_thread = 1, engine_callback = 2, closing_callback = 3 };

struct round_state {
    int number = 0;
    std::optional<asock::tcp_socket> socket;
    asock::tcp_socket::core_type* core = nullptr;
    bool destroy_in_callback = false;
    std::atomic<bool> armed{false}; ///< the starter is done: a callback may destroy the socket
    std::atomic<bool> destroy_token{false};
    std::atomic<bool> destroy_started{false};
    std::atomic<bool> destroy_returned{false};
    std::atomic<int> destroyed_by{nobody};
    std::atomic<int> started{0};
    std::atomic<bool> starter_done{false};
    std::atomic<bool> close_returned{false};
    std::atomic<bool> close_overlapped{false}; ///< a destroy had begun when the close returned
    std::atomic<bool> stop_peer{false};
    std::atomic<bool> peer_closed{false}; ///< the peer reset the connection and closed its end
    std::atomic<std::thread::id> closer_id{};
    std::array<op_slot, max_ops> ops;
    std::atomic<int> awaiters_started{0};
    std::atomic<int> awaiters_resumed{0};
    stress::failure_log* fails = nullptr;

    std::string where() const { return "round " + std::to_string(number) + ": "; }

    /// The destroyer's check, as its destroy returns: every accepted operation
    /// has had its one callback.
    void check_all_completed(const char* who)
    {
        for (auto& op : ops) {
            if (op.accepted.load() && op.calls.load() != 1) {
                fails->add(where() + std::string(op.is_send ? "send " : "receive ") + std::to_string(op.index) +
                           " had " + std::to_string(op.calls.load()) + " callbacks when the destroy (" + who +
                           ") returned");
            }
        }
    }

    /// Destroys the socket unless somebody else already does.
    bool destroy(destroyer who)
    {
        if (destroy_token.exchange(true)) {
            return false;
        }
        destroy_started.store(true);
        destroyed_by.store(who);
        socket.reset();
        check_all_completed(who == destroy_thread ? "third thread" : "from a callback");
        destroy_returned.store(true);
        return true;
    }
};

void op_slot::on_complete(int r, std::uint32_t n) noexcept
{
    result.store(r, std::memory_order_relaxed);
    bytes.store(n, std::memory_order_relaxed);
    if (round->destroy_returned.load()) {
        late.store(true);
    }
    if (calls.fetch_add(1, std::memory_order_acq_rel) != 0) {
        round->fails->add(round->where() + "operation " + std::to_string(index) + " completed twice");
    }
    if (round->destroy_in_callback && round->armed.load()) {
        const bool on_closer = round->closer_id.load() == std::this_thread::get_id();
        round->destroy(on_closer ? closing_callback : engine_callback);
    }
}

/// A co_await send or receive among the callback ones: resumed exactly once
/// (on an engine thread, by a post when the close or destroy completed it),
/// touching nothing of the socket afterwards.
asock::task<void> awaited_op(asock::tcp_socket& s, bool is_send, std::uint32_t n, round_state* st)
{
    std::array<char, 4096> buf{};
    bool valid;
    std::string what;
    if (is_send) {
        const send_result r = co_await s.send_async(asock::buffer(static_cast<const void*>(buf.data()), n));
        valid = r == send_result::ok || r == send_result::abandoned || r == send_result::not_open;
        what = "awaited send: " + std::string(asock::to_string(r));
    } else {
        const asock::receive_outcome r = co_await s.receive_async(asock::buffer(buf.data(), n));
        valid = (r.result == receive_result::ok && r.bytes_received > 0) ||
                ((r.result == receive_result::abandoned || r.result == receive_result::not_open) && r.bytes_received == 0);
        what = "awaited receive: " + std::string(asock::to_string(r.result));
    }
    if (!valid) {
        st->fails->add(st->where() + what);
    }
    st->awaiters_resumed.fetch_add(1, std::memory_order_acq_rel);
}

void spin(std::uint32_t n)
{
    for (std::uint32_t k = 0; k < n; ++k) {
        std::atomic_signal_fence(std::memory_order_seq_cst);
    }
}

} // namespace closing

TEST_CASE("stress: sockets closed from one thread and destroyed from another or from a callback while sends and "
          "receives are in flight: every accepted callback exactly once, before close / destroy returns",
          "[stress][close]")
{
    using namespace closing;
    const stress::sizes_t& sz = stress::sizes();
    const int rounds = sz.close_rounds;
    stress::failure_log fails;
    std::atomic<int> round_now{0};
    stress::phase_watchdog watchdog("close / destroy with operations in flight", 240s, [&] {
        return "round " + std::to_string(round_now.load()) + " of " + std::to_string(rounds) + "; " + fails.summary();
    });
    auto engine2 = asock::make_engine({.threads = 2});
    auto engine4 = asock::make_engine({.threads = 4});
    REQUIRE(engine2);
    REQUIRE(engine4);
    auto state = std::make_unique<round_state>();
    round_state& st = *state;
    st.fails = &fails;

    std::uint64_t accepted_ops = 0, rejected_ops = 0, ok_results = 0, abandoned_results = 0, awaited_ops = 0;
    int destroyed[4] = {0, 0, 0, 0};
    int close_overlapped_destroy = 0;
    int tcp_rounds = 0;
    int reset_rounds = 0;
    const int fds_before = stress::open_descriptors();
    const auto t0 = stress::clock::now();

    double slowest = 0;
    int slowest_round = 0;
    for (int round = 0; round < rounds && fails.count() == 0; ++round) {
        round_now.store(round);
        const auto round_start = stress::clock::now();
        sc::rng r(static_cast<std::uint64_t>(round) * 31 + 5);
        asock::engine& e = round % 2 == 0 ? *engine2 : *engine4;
        const bool tcp = round % 4 == 3;
        tcp_rounds += tcp ? 1 : 0;
        auto [a, b] = tcp ? it::make_tcp_pair() : it::make_socketpair();
        const int small = 4096; // sends pend after a few KiB
        ::setsockopt(a, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
        ::setsockopt(b, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);

        st.number = round;
        st.destroy_in_callback = round % 3 == 1;
        st.armed.store(false);
        st.destroy_token.store(false);
        st.destroy_started.store(false);
        st.destroy_returned.store(false);
        st.destroyed_by.store(nobody);
        st.started.store(0);
        st.starter_done.store(false);
        st.close_returned.store(false);
        st.close_overlapped.store(false);
        st.stop_peer.store(false);
        st.peer_closed.store(false);
        st.closer_id.store(std::thread::id{});
        st.awaiters_started.store(0);
        st.awaiters_resumed.store(0);
        for (int i = 0; i < max_ops; ++i) {
            st.ops[static_cast<std::size_t>(i)].reset(&st, i);
        }
        st.socket.emplace(e);
        if (st.socket->open(a) != asock::open_result::ok) {
            fails.add(st.where() + "open failed");
            ::close(a);
            ::close(b);
            break;
        }
        st.core = st.socket->core();
        const int close_after = static_cast<int>(r.between(0, max_ops));
        const std::uint32_t close_spin = r.between(0, 3000);
        const std::uint32_t destroy_spin = r.between(0, 3000);
        const std::uint64_t starter_seed = r.next();
        const std::uint64_t peer_seed = r.next();
        // In half of the TCP rounds the peer resets the connection at some
        // point, racing the operations, the close and the destroy.
        const bool peer_resets = tcp && round % 8 == 7;
        const std::uint32_t reset_after = r.between(0, 400);
        reset_rounds += peer_resets ? 1 : 0;

        // The peer: moves bytes both ways so that operations complete on engine
        // threads while the close and the destroy run.
        std::thread peer([&st, b = b, peer_seed, peer_resets, reset_after] {
            sc::rng pr(peer_seed);
            std::array<char, 8192> buf{};
            for (std::uint32_t step = 0; !st.stop_peer.load(std::memory_order_relaxed); ++step) {
                if (peer_resets && step == reset_after) {
                    const linger lg{1, 0};
                    ::setsockopt(b, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                    ::close(b); // with SO_LINGER {1, 0}: a reset
                    st.peer_closed.store(true);
                    break;
                }
                switch (pr.next() % 4) {
                case 0:
                    (void)!::send(b, buf.data(), pr.between(1, 2048), MSG_DONTWAIT | MSG_NOSIGNAL);
                    break;
                case 1:
                case 2:
                    (void)!::recv(b, buf.data(), buf.size(), MSG_DONTWAIT);
                    break;
                default:
                    std::this_thread::yield();
                    break;
                }
            }
        });
        // The starter: sends and receives in callback form, some accepted, the
        // later ones rejected once the close has begun.
        std::thread starter([&st, starter_seed] {
            sc::rng sr(starter_seed);
            for (int i = 0; i < max_ops; ++i) {
                op_slot& op = st.ops[static_cast<std::size_t>(i)];
                op.is_send = sr.next() % 2 == 0;
                bool accepted;
                if (op.is_send) {
                    const std::uint32_t n = sr.between(1, max_send);
                    op.send_bufs[0] = asock::buffer(static_cast<const void*>(op.data.data()), n);
                    accepted = st.socket->send_async(op.send_op, op.send_bufs, &op_slot::on_send, &op) ==
                               asock::send_sync_result::ok;
                } else {
                    op.receive_bufs[0] = asock::buffer(op.data.data(), sr.between(1, 4096));
                    accepted = st.socket->receive_async(op.receive_op, op.receive_bufs, &op_slot::on_receive, &op) ==
                               asock::start_result::started;
                }
                op.accepted.store(accepted);
                op.start_returned.store(true);
                st.started.fetch_add(1);
                if (i % 10 == 5) { // and a co_await operation now and then
                    st.awaiters_started.fetch_add(1);
                    asock::spawn(awaited_op(*st.socket, sr.next() % 2 == 0, sr.between(1, 4096), &st));
                }
                if (sr.next() % 4 == 0) {
                    std::this_thread::yield();
                }
            }
            st.starter_done.store(true);
            st.armed.store(true);
        });
        // The closer: close() once some operations were started, at the core
        // level (async_socket forbids its destructor to race with its other
        // members; the core's close and destroy may race, spec 11_020).
        std::thread closer([&st, close_after, close_spin, &fails] {
            st.closer_id.store(std::this_thread::get_id());
            while (st.started.load() < close_after && !st.starter_done.load()) {
                std::this_thread::yield();
            }
            spin(close_spin);
            std::array<bool, max_ops> before{};
            for (std::size_t i = 0; i < st.ops.size(); ++i) {
                before[i] = st.ops[i].start_returned.load() && st.ops[i].accepted.load();
            }
            st.core->close();
            // Unless a destroy began meanwhile (its close may have won; it
            // checks for itself), this close did the closing: every operation
            // accepted before it began has had its callback.
            st.close_overlapped.store(st.destroy_started.load());
            if (!st.close_overlapped.load()) {
                for (std::size_t i = 0; i < st.ops.size(); ++i) {
                    if (before[i] && st.ops[i].calls.load() != 1) {
                        fails.add(st.where() + "operation " + std::to_string(i) + " had " +
                                  std::to_string(st.ops[i].calls.load()) + " callbacks when close() returned");
                    }
                }
            }
            st.close_returned.store(true);
        });
        // The destroyer: after the starter (async_socket's destructor must not
        // race with its own members), racing the close; or, in callback
        // rounds, after the close if no callback destroyed the socket first.
        std::thread destroyer_thread([&st, destroy_spin] {
            while (!st.starter_done.load()) {
                std::this_thread::yield();
            }
            if (st.destroy_in_callback) {
                while (!st.close_returned.load()) {
                    std::this_thread::yield();
                }
            }
            spin(destroy_spin);
            st.destroy(destroy_thread);
        });

        starter.join();
        closer.join();
        destroyer_thread.join();
        // A callback that destroys the socket may still be inside that destroy
        // (waiting for the close to finish delivering) when the threads end.
        stress::wait_or_die("the socket's destroy to return", 60s, [&] { return st.destroy_returned.load(); }, [&] {
            return st.where() + "destroy started " + std::to_string(st.destroy_started.load()) + " by " +
                   std::to_string(st.destroyed_by.load()) + ", close returned " +
                   std::to_string(st.close_returned.load()) + "; " + fails.summary();
        });
        st.stop_peer.store(true);
        peer.join();
        // The awaiters are resumed through the engine, after the close / destroy.
        stress::wait_or_die("the awaiting coroutines to be resumed", 60s,
                            [&] { return st.awaiters_resumed.load() == st.awaiters_started.load(); }, [&] {
                                return st.where() + std::to_string(st.awaiters_resumed.load()) + " of " +
                                       std::to_string(st.awaiters_started.load()) + " awaiters resumed";
                            });
        awaited_ops += static_cast<std::uint64_t>(st.awaiters_started.load());
        // Nothing may arrive later: let the engine threads run a pass.
        for (int pass = 0; pass < 2; ++pass) {
            std::atomic<bool> ran{false};
            struct barrier_item : asock::detail::work_item {
                std::atomic<bool>* flag = nullptr;
            } item;
            item.flag = &ran;
            item.run = [](asock::detail::work_item* w) {
                static_cast<barrier_item*>(w)->flag->store(true, std::memory_order_release);
            };
            e.post(&item);
            stress::wait_or_die("an engine pass", 30s, [&] { return ran.load(std::memory_order_acquire); },
                                [] { return std::string(); });
        }
        if (!st.peer_closed.load()) {
            ::close(b);
        }

        if (!st.destroy_returned.load()) {
            fails.add(st.where() + "the socket was not destroyed");
        }
        ++destroyed[st.destroyed_by.load()];
        for (auto& op : st.ops) {
            const int calls = op.calls.load();
            const int res = op.result.load();
            const std::string what = st.where() + (op.is_send ? "send " : "receive ") + std::to_string(op.index) + ": ";
            if (op.late.load()) {
                fails.add(what + "callback ran after the destroy returned");
            }
            if (!op.accepted.load()) {
                ++rejected_ops;
                if (calls != 0) {
                    fails.add(what + "rejected, yet its callback was called " + std::to_string(calls) + " times");
                }
                continue;
            }
            ++accepted_ops;
            if (calls != 1) {
                fails.add(what + "accepted, callback called " + std::to_string(calls) + " times");
                continue;
            }
            const bool ok = op.is_send ? res == static_cast<int>(send_result::ok)
                                       : res == static_cast<int>(receive_result::ok) && op.bytes.load() > 0;
            const bool abandoned = op.is_send ? res == static_cast<int>(send_result::abandoned)
                                              : res == static_cast<int>(receive_result::abandoned) && op.bytes.load() == 0;
            ok_results += ok ? 1 : 0;
            abandoned_results += abandoned ? 1 : 0;
            if (!ok && !abandoned) {
                fails.add(what + "unexpected result " + std::to_string(res) + " with " + std::to_string(op.bytes.load()) +
                          " bytes");
            }
        }
        close_overlapped_destroy += st.close_overlapped.load() ? 1 : 0;
        if (const double t = stress::seconds_since(round_start); t > slowest) {
            slowest = t;
            slowest_round = round;
        }
    }
    const double secs = stress::seconds_since(t0);
    std::printf("stress: close/destroy: %d rounds (%d over TCP, %d of them with a peer reset) in %.2f s: %llu operations accepted (%llu ok, %llu "
                "abandoned), %llu rejected, and %llu co_await operations; destroyed by a third thread %d times, from an engine-thread callback %d, "
                "from a callback on the closing thread %d; %d closes returned with a destroy under way; slowest round %d: "
                "%.1f ms\n",
                round_now.load() + 1, tcp_rounds, reset_rounds, secs, static_cast<unsigned long long>(accepted_ops),
                static_cast<unsigned long long>(ok_results), static_cast<unsigned long long>(abandoned_results),
                static_cast<unsigned long long>(rejected_ops), static_cast<unsigned long long>(awaited_ops),
                destroyed[destroy_thread], destroyed[engine_callback],
                destroyed[closing_callback], close_overlapped_destroy, slowest_round, slowest * 1000);
    std::fflush(stdout);
    INFO(fails.summary());
    CHECK(fails.count() == 0);
    CHECK(round_now.load() + 1 == rounds);
    CHECK(stress::open_descriptors() == fds_before);
}

// ==== 4. a million operations on one socket, memory flat =============================================

namespace million {

/// co_await over the callback form of send: resumes inline when the callback
/// ran inside send_async (the send completed at once), else from the callback.
struct callback_send {
    asock::tcp_socket& socket;
    std::span<const asock::const_buffer> bufs;
    asock::send_operation op;
    std::atomic<int> state{0};
    std::coroutine_handle<> handle;
    send_result result = send_result::error;

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) noexcept
    {
        handle = h;
        const asock::send_sync_result r = socket.send_async(op, bufs, &on_done, this);
        if (r != asock::send_sync_result::ok) {
            result = r == asock::send_sync_result::not_open ? send_result::not_open : send_result::error;
            return false;
        }
        return state.exchange(1, std::memory_order_acq_rel) == 0; // 1: the callback already ran
    }
    send_result await_resume() const noexcept { return result; }
    static void on_done(void* c, send_result r) noexcept
    {
        auto* self = static_cast<callback_send*>(c);
        self->result = r;
        if (self->state.exchange(1, std::memory_order_acq_rel) == 1) {
            self->handle.resume();
        }
    }
};

/// co_await over the callback form of receive (its callback never runs before
/// receive_async returns, but may run on an engine thread before this
/// coroutine has finished suspending).
struct callback_receive {
    asock::tcp_socket& socket;
    std::span<const asock::mutable_buffer> bufs;
    asock::receive_operation op;
    std::atomic<int> state{0};
    std::coroutine_handle<> handle;
    asock::receive_outcome result{};

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) noexcept
    {
        handle = h;
        const asock::start_result r = socket.receive_async(op, bufs, &on_done, this);
        if (r != asock::start_result::started) {
            result.result = receive_result::not_open;
            return false;
        }
        return state.exchange(1, std::memory_order_acq_rel) == 0;
    }
    asock::receive_outcome await_resume() const noexcept { return result; }
    static void on_done(void* c, receive_result r, std::uint32_t n) noexcept
    {
        auto* self = static_cast<callback_receive*>(c);
        self->result = {r, n};
        if (self->state.exchange(1, std::memory_order_acq_rel) == 1) {
            self->handle.resume();
        }
    }
};

/// Requests stop from an engine thread (posted), then says it is done.
struct stopper : asock::detail::work_item {
    std::stop_source* source = nullptr;
    std::atomic<bool> done{false};
    stopper() noexcept { run = &run_fn; }
    static void run_fn(asock::detail::work_item* w) noexcept
    {
        auto* self = static_cast<stopper*>(w);
        self->source->request_stop();
        self->done.store(true, std::memory_order_release);
    }
};

struct sample {
    std::uint64_t ops = 0;
    std::uint64_t rss = 0;
    stress::heap_usage heap{};
};

struct context {
    asock::engine* engine = nullptr;
    asock::tcp_socket* a = nullptr;
    std::uint64_t target = 0;
    std::uint32_t seed = 0x5eed;
    std::atomic<std::uint64_t> ops{0};
    std::uint64_t sends = 0, receives = 0, gathers = 0, callback_ops = 0, notifies = 0, cancels = 0;
    std::uint64_t sent = 0, verified = 0;
    std::vector<sample> samples; // reserved up front: sampling allocates nothing
    std::atomic<bool> done{false};
    stress::failure_log* fails = nullptr;

    void take_sample()
    {
        sample s;
        s.ops = ops.load(std::memory_order_relaxed);
        s.heap = stress::heap_now();
        s.rss = stress::resident_bytes();
        if (samples.size() < samples.capacity()) {
            samples.push_back(s);
        }
    }
};

asock::task<void> drive(context& c)
{
    asock::tcp_socket& a = *c.a;
    sc::rng r(c.seed);
    std::array<char, 512> sbuf{};
    std::array<char, 2048> rbuf{};
    constexpr std::uint64_t window = 32 * 1024; // bytes sent and not yet echoed back
    const std::uint64_t sample_every = std::max<std::uint64_t>(c.target / 10, 1);
    std::uint64_t next_sample = sample_every; // the first sample ends the warm-up
    std::uint64_t ops = 0;
    bool want_cancel = false; // a cancelled receive is due once nothing is in flight
    auto count = [&] {
        c.ops.store(++ops, std::memory_order_relaxed);
        if (ops % 8192 == 0) {
            want_cancel = true;
        }
    };

    while (ops < c.target || c.verified < c.sent) {
        if (ops >= next_sample) {
            c.take_sample();
            next_sample += sample_every;
        }
        const bool draining = ops >= c.target;
        const bool may_send = !draining && !want_cancel && c.sent - c.verified < window;
        if (may_send && (c.sent == c.verified || r.next() % 2 == 0)) {
            const std::uint32_t n = r.between(1, static_cast<std::uint32_t>(sbuf.size()));
            sc::fill_pattern(sbuf.data(), n, c.sent, c.seed);
            const std::uint32_t form = r.next() % 8;
            send_result res;
            if (form < 5 || n < 2) {
                res = co_await a.send_async(asock::buffer(static_cast<const void*>(sbuf.data()), n));
            } else if (form < 7) {
                const std::uint32_t cut = r.between(1, n - 1);
                const std::array<asock::const_buffer, 2> parts{
                    asock::buffer(static_cast<const void*>(sbuf.data()), cut),
                    asock::buffer(static_cast<const void*>(sbuf.data() + cut), n - cut)};
                res = co_await a.send_async(std::span<const asock::const_buffer>(parts));
                ++c.gathers;
            } else {
                const std::array<asock::const_buffer, 1> one{asock::buffer(static_cast<const void*>(sbuf.data()), n)};
                res = co_await callback_send{a, one, {}, {}, {}, {}};
                ++c.callback_ops;
            }
            if (res != send_result::ok) {
                c.fails->add("send " + str(c.sends) + ": " + std::string(asock::to_string(res)));
                break;
            }
            c.sent += n;
            ++c.sends;
            count();
        } else {
            const std::uint32_t cap = r.between(1, static_cast<std::uint32_t>(rbuf.size()));
            asock::receive_outcome out;
            if (r.next() % 8 < 6) {
                out = co_await a.receive_async(asock::buffer(rbuf.data(), cap));
            } else {
                const std::array<asock::mutable_buffer, 1> one{asock::buffer(rbuf.data(), cap)};
                out = co_await callback_receive{a, one, {}, {}, {}, {}};
                ++c.callback_ops;
            }
            if (!out) {
                c.fails->add("receive " + str(c.receives) + ": " + std::string(asock::to_string(out.result)));
                break;
            }
            const std::size_t bad = sc::check_pattern(rbuf.data(), out.bytes_received, c.verified, c.seed);
            if (bad != out.bytes_received) {
                c.fails->add("echoed byte " + str(c.verified + bad) + " differs");
                break;
            }
            c.verified += out.bytes_received;
            ++c.receives;
            count();
        }
        if (draining) {
            continue;
        }
        if (ops % 4096 == 0) {
            const asock::notify_io_result n = co_await a.notify_io_async(asock::notify_io_type::out);
            if (n != asock::notify_io_result::out) {
                c.fails->add("notify out: " + std::string(asock::to_string(n)));
                break;
            }
            ++c.notifies;
            count();
        }
        if (want_cancel && c.sent == c.verified) {
            want_cancel = false;
            // Nothing in flight: a receive waits, and an engine thread cancels it.
            std::stop_source source;
            stopper st;
            st.source = &source;
            c.engine->post(&st);
            const asock::receive_outcome out =
                co_await a.receive_async(asock::buffer(rbuf.data(), rbuf.size()), source.get_token());
            while (!st.done.load(std::memory_order_acquire)) {
                std::this_thread::yield(); // request_stop() may still be returning on the engine thread
            }
            if (out.result != receive_result::cancelled || out.bytes_received != 0) {
                c.fails->add("cancelled receive: " + std::string(asock::to_string(out.result)) + ", " +
                             str(out.bytes_received) + " bytes");
                break;
            }
            ++c.cancels;
            count();
        }
    }
    c.take_sample();
    c.done.store(true, std::memory_order_release);
}

/// The peer: echoes everything until the stream ends.
asock::task<void> echo_peer(asock::tcp_socket& b, stress::failure_log* fails)
{
    std::array<char, 4096> buf{};
    for (;;) {
        const asock::receive_outcome out = co_await b.receive_async(asock::buffer(buf.data(), buf.size()));
        if (!out) {
            if (out.result != receive_result::abandoned) {
                fails->add("echo peer receive: " + std::string(asock::to_string(out.result)));
            }
            co_return;
        }
        if (const send_result r = co_await b.send_async(asock::buffer(static_cast<const void*>(buf.data()), out.bytes_received));
            r != send_result::ok) {
            fails->add("echo peer send: " + std::string(asock::to_string(r)));
            co_return;
        }
    }
}

std::string mib(double bytes)
{
    char s[32];
    std::snprintf(s, sizeof s, "%.2f MiB", bytes / (1024.0 * 1024.0));
    return s;
}

} // namespace million

TEST_CASE("stress: a million operations on one socket, every byte verified, memory flat", "[stress][memory]")
{
    using namespace million;
    const stress::sizes_t& sz = stress::sizes();
    stress::failure_log fails;
    context c;
    c.target = sz.operations;
    c.fails = &fails;
    c.samples.reserve(16);
    stress::phase_watchdog watchdog("a million operations on one socket", 300s, [&] {
        return std::to_string(c.ops.load()) + " of " + std::to_string(c.target) + " operations; " + fails.summary();
    });

    auto engine = asock::make_engine({.threads = 2});
    REQUIRE(engine);
    c.engine = engine.get();
    auto [fa, fb] = it::make_socketpair();
    asock::tcp_socket a(*engine);
    asock::tcp_socket b(*engine);
    REQUIRE(a.open(fa) == asock::open_result::ok);
    REQUIRE(b.open(fb) == asock::open_result::ok);
    c.a = &a;

    sc::tracker peer;
    sc::start(peer, echo_peer(b, &fails));
    const auto t0 = stress::clock::now();
    asock::spawn(drive(c));
    stress::wait_or_die("the operations to finish", 280s, [&] { return c.done.load(std::memory_order_acquire); },
                        [&] { return std::to_string(c.ops.load()) + " operations; " + fails.summary(); });
    const double secs = stress::seconds_since(t0);
    a.close(); // the peer's next receive ends
    peer.wait(*engine, "the echo peer");

    REQUIRE(c.samples.size() >= 2);
    const sample& base = c.samples.front(); // after the warm-up (the first tenth)
    std::uint64_t rss_max = base.rss;
    std::int64_t heap_max = base.heap.live_bytes;
    for (const sample& s : c.samples) {
        rss_max = std::max(rss_max, s.rss);
        heap_max = std::max(heap_max, s.heap.live_bytes);
    }
    const sample& last = c.samples.back();
    const std::uint64_t ops_measured = last.ops - base.ops;
    const double rss_growth = static_cast<double>(rss_max) - static_cast<double>(base.rss);
    const double heap_growth = static_cast<double>(heap_max - base.heap.live_bytes);
    const std::uint64_t allocations = last.heap.allocations - base.heap.allocations;

    std::printf("stress: one socket: %llu operations in %.2f s (%llu sends, %llu of them gather, %llu receives, %llu "
                "through the callback forms, %llu notifications, %llu cancelled receives), %llu bytes each way, "
                "every one verified\n",
                static_cast<unsigned long long>(c.ops.load()), secs, static_cast<unsigned long long>(c.sends),
                static_cast<unsigned long long>(c.gathers), static_cast<unsigned long long>(c.receives),
                static_cast<unsigned long long>(c.callback_ops), static_cast<unsigned long long>(c.notifies),
                static_cast<unsigned long long>(c.cancels), static_cast<unsigned long long>(c.verified));
    std::printf("stress: one socket: memory after the warm-up (%llu operations) and over the next %llu: resident %s "
                "-> at most %s (growth %s), heap in use %s -> at most %s (growth %s)",
                static_cast<unsigned long long>(base.ops), static_cast<unsigned long long>(ops_measured),
                mib(static_cast<double>(base.rss)).c_str(), mib(static_cast<double>(rss_max)).c_str(),
                mib(rss_growth).c_str(), mib(static_cast<double>(base.heap.live_bytes)).c_str(),
                mib(static_cast<double>(heap_max)).c_str(), mib(heap_growth).c_str());
#if !defined(ASOCK_STRESS_SANITIZED)
    std::printf(", %llu allocations (%.4f per operation)\n", static_cast<unsigned long long>(allocations),
                ops_measured != 0 ? static_cast<double>(allocations) / static_cast<double>(ops_measured) : 0.0);
#else
    std::printf("\nstress: one socket: under a sanitizer the resident size is reported only (its allocator "
                "quarantines freed memory); the sanitizer allocator's bytes in use are checked instead\n");
#endif
    std::fflush(stdout);

    INFO(fails.summary());
    CHECK(fails.count() == 0);
    CHECK(c.verified == c.sent);
    CHECK(c.ops.load() >= c.target);
    CHECK(c.cancels > 0);
    // Bounds: heap in use grows by less than 64 KiB over the measured
    // operations (no per-operation allocation is kept); resident memory by
    // less than 1 MiB; and (without sanitizers) fewer than one allocation per
    // hundred operations (co_await and the callback forms allocate nothing;
    // only the cancelled receives' std::stop_source do).
    constexpr double heap_bound = 64.0 * 1024;
    constexpr double rss_bound = 1024.0 * 1024;
    INFO("heap growth " << heap_growth << " bytes, resident growth " << rss_growth << " bytes, " << allocations
                        << " allocations over " << ops_measured << " operations");
    CHECK(heap_growth < heap_bound);
    if (sz.check_rss) {
        CHECK(rss_growth < rss_bound);
    }
#if !defined(ASOCK_STRESS_SANITIZED)
    CHECK(static_cast<double>(allocations) < 0.01 * static_cast<double>(ops_measured));
#endif
}

} // namespace
