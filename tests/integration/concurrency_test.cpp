// tests/integration/concurrency_test.cpp: several operations on one socket at
// once: a send and a receive together (full duplex), queued receives, sends
// from four threads, close from inside a callback or a resumed coroutine, and
// destroy / close with operations pending.
//
// The bodies are the shared scenarios of tests/support/scenarios.hpp (run on
// Windows too). What Linux adds: AF_UNIX pairs beside TCP, engines without
// threads, notify_io_async operations among those a close abandons, and
// close() inside a callback delivering every other completion before it returns.
#include "posix_harness.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <thread>

#include <unistd.h>

using asock::notify_io_result;
using asock::notify_io_type;
namespace sc = asock_scenarios;

namespace {

void on_notify_rec(void* c, notify_io_result r) { static_cast<sc::op_record*>(c)->record(r, 0); }

asock::task<void> await_notify_rec(asock::tcp_socket& s, notify_io_type type, sc::awaited_record* rec)
{
    rec->record(co_await s.notify_io_async(type), 0);
}

/// The close scenarios' Extra on Linux: notify_io_async operations, which
/// Windows does not have. Callback form: a notify(out), pending because the
/// scenario's first send filled the kernel buffer. co_await form: notify(in)
/// and notify(out).
struct notify_ops {
    asock::notify_operation op;
    std::array<sc::op_record, 1> callback_recs;
    std::array<sc::awaited_record, 2> awaiter_recs;

    // The first send filled the kernel buffer, so notify(out) usually waits
    // until the close. But loopback moves bytes to the peer meanwhile: the
    // buffer may have room for a moment before an engine thread refills it,
    // and a readiness wait that sees it completes `out`, as it should.
    void start_callbacks(asock::tcp_socket& s)
    {
        callback_recs[0].may_be_ready_before_close = true;
        REQUIRE(s.notify_io_async(op, notify_io_type::out, on_notify_rec, callback_recs.data()) ==
                asock::start_result::started);
    }
    std::span<sc::op_record> callbacks() { return callback_recs; }
    void start_awaiters(asock::tcp_socket& s, sc::tracker& tr)
    {
        awaiter_recs[1].may_be_ready_before_close = true; // notify(out): as above
        sc::start(tr, await_notify_rec(s, notify_io_type::in, &awaiter_recs[0]));
        sc::start(tr, await_notify_rec(s, notify_io_type::out, &awaiter_recs[1]));
    }
    std::span<sc::awaited_record> awaiters() { return awaiter_recs; }
};

} // namespace

// ==== full duplex ======================================================================

TEST_CASE("regression: pending send and receive on one socket do not clobber each other",
          "[integration][regression][duplex]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool tcp = GENERATE(false, true);
    CAPTURE(threads, tcp);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    asock::engine& e = *engine;
    it::with_harness(tcp, [&]<class H>() {
        SECTION("both pending at once; each completes with its own result and bytes")
        {
            sc::send_and_receive_pending<H>(e);
        }
        SECTION("8 MiB each way at the same time, both ends asock sockets") { sc::bidirectional<H>(e, 8u << 20); }
    });
}

// ==== queued receives ================================================================

TEST_CASE("regression: receives queued on one socket complete in the order issued, with the bytes in order",
          "[integration][regression][queue]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool tcp = GENERATE(false, true);
    CAPTURE(threads, tcp);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    asock::engine& e = *engine;
    it::with_harness(tcp, [&]<class H>() {
        SECTION("callback form: five 4-byte receives, then 20 bytes arrive at once")
        {
            sc::queued_receives_callback<H>(e);
        }
        SECTION("co_await form: six bytes, then fourteen; every byte lands once, in issue order")
        {
            sc::queued_receives_awaited<H>(e);
        }
        SECTION("callback and co_await receives mixed, 200 rounds") { sc::queued_receives_mixed<H>(e, 200); }
    });
}

// ==== sends from several threads =========================================================

TEST_CASE("regression: concurrent senders on one socket never interleave bytes", "[integration][regression][senders]")
{
    const unsigned threads = GENERATE(1u, 4u);
    const bool tcp = GENERATE(false, true);
    const sc::sender_form form =
        GENERATE(sc::sender_form::awaited, sc::sender_form::callback, sc::sender_form::coroutine);
    CAPTURE(threads, tcp);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    it::with_harness(tcp, [&]<class H>() { sc::concurrent_senders<H>(*engine, form); });
}

// ==== close from inside completions ===========================================================

// On Linux, close() inside a callback delivers every other completion before it
// returns: 5 = the scenario's two receives and two sends, and notify(out).

TEST_CASE("regression: close from inside a completion callback does not deadlock; the others complete abandoned once",
          "[integration][regression][close]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool destroy = GENERATE(false, true);
    CAPTURE(threads, destroy);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    const int completed_at_close = sc::close_inside_callback<it::posix_local_harness, notify_ops>(*engine, destroy);
    CHECK(completed_at_close == 5); // all delivered before close() returned
}

TEST_CASE("regression: close from inside a resumed coroutine does not deadlock; the others complete abandoned once",
          "[integration][regression][close]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool destroy = GENERATE(false, true);
    CAPTURE(threads, destroy);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    const int completed_at_close = sc::close_inside_coroutine<it::posix_local_harness, notify_ops>(*engine, destroy);
    CHECK(completed_at_close == 5);
}

TEST_CASE("close from inside a send completion callback abandons the pending receives and the queued send",
          "[integration][close]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    CAPTURE(threads);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    const int completed_at_close = sc::close_inside_send_callback<it::posix_local_harness>(*engine);
    CHECK(completed_at_close == 3); // the two receives and the queued send, before close() returned
}

// ==== close / destroy with operations pending ====================================================

TEST_CASE("close or destroy with operations pending: each completes exactly once, abandoned",
          "[integration][close]")
{
    const unsigned threads = GENERATE(0u, 1u, 4u);
    const bool destroy = GENERATE(false, true);
    CAPTURE(threads, destroy);
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    const std::thread::id engine_id = threads == 1 ? it::engine_thread_id(*engine) : std::thread::id{};
    const sc::close_report report = sc::close_with_pending<it::posix_local_harness, notify_ops>(*engine, destroy);
    CHECK(report.awaiter_threads.size() == 4); // a receive, a send, notify(in), notify(out)
    if (threads == 1) {
        for (std::size_t i = 0; i < report.awaiter_threads.size(); ++i) {
            CAPTURE(i);
            CHECK(report.awaiter_threads[i] == engine_id); // the engine's one thread
        }
    }
}

TEST_CASE("destroy on one thread waits while another thread's close delivers callbacks",
          "[integration][SRS_ASYNC_SOCKET_LINUX_11_020]")
{
    auto engine = asock::make_engine({.threads = 1});
    REQUIRE(engine);
    sc::destroy_during_close_callbacks<it::posix_local_harness>(*engine);
}

// ==== engine shutdown with work in flight ==================================================

namespace {

/// Fails the test program (a hang cannot be recovered from) unless disarmed
/// within `limit`.
struct watchdog {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::thread t;
    explicit watchdog(std::chrono::seconds limit, const char* what)
        : t([this, limit, what] {
              std::unique_lock lk(mu);
              if (!cv.wait_for(lk, limit, [this] { return done; })) {
                  std::fprintf(stderr, "hang: %s did not finish within %lld s\n", what,
                               static_cast<long long>(limit.count()));
                  std::fflush(stderr);
                  std::_Exit(3);
              }
          })
    {
    }
    ~watchdog()
    {
        {
            std::lock_guard lk(mu);
            done = true;
        }
        cv.notify_all();
        t.join();
    }
};

struct counted_item : asock::detail::work_item {
    std::atomic<int>* runs = nullptr;
    static void run_fn(asock::detail::work_item* w) noexcept
    {
        static_cast<counted_item*>(w)->runs->fetch_add(1, std::memory_order_relaxed);
    }
};

} // namespace

TEST_CASE("regression: engines with several threads, given work and destroyed at once, never hang nor drop the work",
          "[integration][regression][engine][SRS_ASYNC_SOCKET_LINUX_11_005]")
{
    // The stop wake-up could be drained by one thread while another slept on:
    // the destroy joined it forever (hung in most runs of this loop).
    // Without the fix, 20,000 rounds hang almost every run (2-3 s with it);
    // sanitizer builds stop after 10 s with fewer rounds.
    watchdog w(std::chrono::seconds(120), "create / post / destroy of threaded engines");
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (int round = 0; round < 20000 && std::chrono::steady_clock::now() < until; ++round) {
        const unsigned threads = 2 + static_cast<unsigned>(round % 3);
        std::atomic<int> runs{0};
        std::array<counted_item, 8> items;
        {
            auto e = asock::make_engine(asock::engine_options{.threads = threads});
            REQUIRE(e);
            for (auto& it : items) {
                it.runs = &runs;
                it.run = &counted_item::run_fn;
                e->post(&it);
            }
            // Vary the moment of the stop against the threads' wake-up for
            // the posts, so that it lands inside their drain now and then.
            for (int spin = 0; spin < (round % 40) * 200; ++spin) {
                std::atomic_signal_fence(std::memory_order_seq_cst); // keeps the delay loop
            }
        } // the last reference: stop, join, run what is left
        REQUIRE(runs.load() == static_cast<int>(items.size()));
    }
}

namespace {

asock::task<void> await_receive_then_flag(asock::tcp_socket& s, std::span<char> buf, std::atomic<int>* resumed,
                                          asock::receive_result* seen)
{
    const auto out = co_await s.receive_async(asock::mutable_buffer{buf.data(), static_cast<std::uint32_t>(buf.size())});
    *seen = out.result;
    resumed->fetch_add(1);
}

} // namespace

TEST_CASE("regression: a coroutine whose socket is closed and whose engine is destroyed is resumed, not leaked",
          "[integration][regression][engine][SRS_ASYNC_SOCKET_LINUX_11_036]")
{
    // close() from outside the loop posts the awaiter's resumption; the
    // engine's destruction dropped it (LeakSanitizer reported the frame).
    const unsigned threads = GENERATE(0u, 1u, 2u);
    CAPTURE(threads);
    for (int round = 0; round < 50; ++round) {
        std::atomic<int> resumed{0};
        asock::receive_result seen = asock::receive_result::ok;
        std::array<char, 16> buf{};
        auto [a, b] = it::make_socketpair();
        {
            auto e = asock::make_engine(asock::engine_options{.threads = threads});
            REQUIRE(e);
            asock::tcp_socket s(*e);
            REQUIRE(s.open(a) == asock::open_result::ok);
            asock::spawn(await_receive_then_flag(s, buf, &resumed, &seen));
            if (threads == 0) {
                e->poll();
            }
            s.close();
        } // socket, then the last engine reference
        ::close(b);
        CHECK(resumed.load() == 1);
        CHECK(seen == asock::receive_result::abandoned);
    }
}

// ==== one loop per engine thread ========================================================

namespace {

/// The threads one socket's completions ran on (those after its first wait:
/// an operation completing inside its start call runs on the caller).
struct thread_log {
    std::mutex mu;
    std::vector<std::thread::id> ids;
    void note()
    {
        const std::thread::id me = sc::this_thread_id();
        std::lock_guard lk(mu);
        ids.push_back(me);
    }
};

/// The echoing end, in callback form: receive, send back what came, again,
/// until the peer hangs up.
struct echo_end {
    asock::tcp_socket* socket = nullptr;
    asock::receive_operation rop;
    asock::send_operation sop;
    std::array<char, 4096> buf{};
    std::uint32_t pending = 0;
    std::uint64_t echoed = 0;
    thread_log log;
    std::atomic<bool> ended{false};
    bool failed = false;

    void receive()
    {
        if (socket->receive_async(rop, asock::buffer(buf.data(), buf.size()), &on_received, this) !=
            asock::start_result::started) {
            finish(true);
        }
    }
    void finish(bool failure)
    {
        failed = failure;
        ended.store(true, std::memory_order_release);
    }
    static void on_received(void* c, asock::receive_result r, std::uint32_t n)
    {
        auto* self = static_cast<echo_end*>(c);
        self->log.note();
        if (r != asock::receive_result::ok) {
            self->finish(r != asock::receive_result::abandoned);
            return;
        }
        self->pending = n;
        const auto sr = self->socket->send_async(self->sop, asock::buffer(static_cast<const void*>(self->buf.data()), n),
                                                 &on_sent, self);
        if (sr != asock::send_sync_result::ok) { // (ok: on_sent runs, maybe already has)
            self->finish(true);
        }
    }
    static void on_sent(void* c, asock::send_result r)
    {
        auto* self = static_cast<echo_end*>(c);
        self->log.note();
        if (r != asock::send_result::ok) {
            self->finish(true);
            return;
        }
        self->echoed += self->pending;
        self->receive();
    }
};

/// The talking end, a coroutine: sends messages of varying sizes, each one
/// followed by reading its echo back, then hangs up. Notes the thread after
/// every co_await.
asock::task<void> talk(asock::tcp_socket& s, std::uint32_t seed, int rounds, thread_log* log, std::uint64_t* checked,
                       bool* ok)
{
    std::uint64_t offset = 0;
    std::vector<char> in(64 * 1024);
    *ok = false;
    for (int r = 0; r < rounds; ++r) {
        const std::size_t size = 1 + (static_cast<std::size_t>(seed) * 7919u + static_cast<std::size_t>(r) * 104729u) % 24000u;
        const std::string msg = sc::pattern_string(size, offset, seed);
        const asock::send_result sr = co_await s.send_async(asock::buffer(std::string_view(msg)));
        log->note();
        if (sr != asock::send_result::ok) {
            co_return;
        }
        std::size_t got = 0;
        while (got < size) {
            const asock::receive_outcome o = co_await s.receive_async(asock::buffer(in.data(), size - got));
            log->note();
            if (!o) {
                co_return;
            }
            if (sc::check_pattern(in.data(), o.bytes_received, offset + got, seed) != o.bytes_received) {
                co_return;
            }
            got += o.bytes_received;
        }
        offset += size;
    }
    *checked = offset;
    *ok = s.shutdown_send() == asock::shutdown_result::ok;
}

} // namespace

TEST_CASE("a 4-thread engine keeps each connection's callbacks and resumptions on one thread", "[integration][loops]")
{
    constexpr unsigned threads = 4;
    constexpr int pairs = 32;
    constexpr int rounds = 40;
    auto engine = asock::make_engine({.threads = threads});
    REQUIRE(engine);
    asock::engine& e = *engine;
    const std::thread::id main_thread = std::this_thread::get_id();

    std::vector<asock::tcp_socket> talkers;
    std::vector<asock::tcp_socket> echoers;
    talkers.reserve(pairs);
    echoers.reserve(pairs);
    for (int i = 0; i < pairs; ++i) {
        auto [fa, fb] = it::make_tcp_pair();
        talkers.push_back(sc::open_socket(e, fa));
        echoers.push_back(sc::open_socket(e, fb));
    }
    std::vector<std::unique_ptr<echo_end>> ends;
    std::vector<std::unique_ptr<thread_log>> talk_logs;
    std::vector<std::uint64_t> checked(pairs, 0);
    std::unique_ptr<bool[]> ok(new bool[pairs]());
    for (int i = 0; i < pairs; ++i) {
        ends.push_back(std::make_unique<echo_end>());
        ends.back()->socket = &echoers[static_cast<std::size_t>(i)];
        talk_logs.push_back(std::make_unique<thread_log>());
    }
    for (auto& end : ends) {
        end->receive();
    }
    sc::tracker tr;
    for (int i = 0; i < pairs; ++i) {
        const auto k = static_cast<std::size_t>(i);
        sc::start(tr, talk(talkers[k], static_cast<std::uint32_t>(i + 1), rounds, talk_logs[k].get(), &checked[k], &ok[k]));
    }
    tr.wait(e, "talkers");
    sc::wait_until("echoers see the hang-up", [&] {
        return std::all_of(ends.begin(), ends.end(), [](const auto& end) { return end->ended.load(std::memory_order_acquire); });
    });

    std::set<std::thread::id> used;
    const auto check_one_thread = [&](thread_log& log, const char* who, int i) {
        std::lock_guard lk(log.mu);
        INFO(who << " " << i);
        std::set<std::thread::id> seen;
        for (const auto& id : log.ids) {
            if (id != main_thread) { // completed inside a start call made on this thread
                seen.insert(id);
            }
        }
        CHECK(seen.size() == 1);
        used.insert(seen.begin(), seen.end());
    };
    for (int i = 0; i < pairs; ++i) {
        const auto k = static_cast<std::size_t>(i);
        INFO("pair " << i);
        CHECK(ok[k]);
        CHECK_FALSE(ends[k]->failed);
        CHECK(ends[k]->echoed == checked[k]); // every byte there and back
        CHECK(checked[k] > 0);
        check_one_thread(*talk_logs[k], "talker", i);
        check_one_thread(ends[k]->log, "echoer", i);
    }
    // 64 sockets, least loaded first: every engine thread served some.
    CHECK(used.size() == threads);
}
