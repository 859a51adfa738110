// Fairness between the sockets of one engine thread (docs/design.md,
// "Fairness"; include/asock/detail/inline_budget.hpp): a socket whose
// operations always complete at once must not keep the loop from the others.
// Operations that finish inside their start continue inline only while the
// thread's inline budget lasts; then their completion goes through the
// engine's queue, and the loop handles other sockets' events first.
//
// Deterministic: the fake system calls (tests/support/fake_sys.hpp) and an
// engine without threads, whose passes the test runs with poll(). Timing
// bounds are the benchmark's (benchmarks/, workload `fairness`), not these
// tests'.
#include "unit_helpers.hpp"

#include <asock/detail/inline_budget.hpp>

#include <algorithm>
#include <coroutine>
#include <string>

using namespace asock_test;

namespace {

constexpr int limit = static_cast<int>(asock::detail::inline_budget_limit);

/// Counts, for one coroutine, the awaits that did not suspend in a row.
struct inline_counter {
    int run = 0;         ///< awaits in a row that did not suspend
    int longest_run = 0;
    int suspensions = 0;
    int completions = 0;

    void finished_inline() noexcept
    {
        ++run;
        longest_run = std::max(longest_run, run);
    }
};

/// Wraps an asock awaitable and tells `c` whether each co_await suspended.
template <class A>
struct counted {
    A inner;
    inline_counter* c;

    bool await_ready() noexcept
    {
        const bool ready = inner.await_ready();
        if (ready) {
            c->finished_inline();
        }
        return ready;
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept
    {
        // One thread here: nothing resumes the coroutine before this returns.
        if (inner.await_suspend(h)) {
            c->run = 0;
            ++c->suspensions;
            return true;
        }
        c->finished_inline();
        return false;
    }
    decltype(auto) await_resume() noexcept
    {
        ++c->completions;
        return inner.await_resume();
    }
};
template <class A>
counted(A, inline_counter*) -> counted<A>;

struct stream_state {
    inline_counter counter;
    bool stop = false;
    bool ended = false;
    receive_result last = receive_result::ok;
};

/// Receives on `s` until told to stop; its socket always has data.
eager_coro endless_reader(fake_socket& s, std::string& buf, stream_state& st)
{
    for (;;) {
        counted aw{s.receive_async(mbuf(buf)), &st.counter}; // named: it lives in the frame
        const receive_outcome r = co_await aw;
        st.last = r.result;
        if (!r || st.stop) {
            break;
        }
    }
    st.ended = true;
}

/// Sends on `s` until told to stop; its socket always takes everything.
eager_coro endless_writer(fake_socket& s, const std::string& msg, stream_state& st)
{
    for (;;) {
        counted aw{s.send_async(cbuf(msg)), &st.counter};
        const send_result r = co_await aw;
        if (r != send_result::ok || st.stop) {
            break;
        }
    }
    st.ended = true;
}

/// Runs loop passes until `done()` or `max_passes`; returns the passes run.
template <class Done>
int passes_until(test_env& env, Done done, int max_passes)
{
    int n = 0;
    while (!done() && n < max_passes) {
        env.engine->poll();
        ++n;
    }
    return n;
}

} // namespace

TEST_CASE("a coroutine whose receives always find data does not starve another socket of the same thread",
          "[fairness]")
{
    stream_state st; // outlives the engine: a resumption left in its queue may still run
    test_env env;
    int fa = -1;
    int fb = -1;
    fake_socket a = env.open_socket(fa);
    fake_socket b = env.open_socket(fb);

    // B waits for data.
    awaited<receive_outcome> b_got;
    std::string b_buf(8, '\0');
    await_into(b_got, [&] { return b.receive_async(mbuf(b_buf)); });
    env.drain();
    REQUIRE_FALSE(b_got.done());

    // A's reader starts inside the loop (from A's first readiness event) and
    // from then on every receive finds data: 100-byte reads of a long stream,
    // each filling its buffer exactly, so the socket never looks drained.
    std::string a_buf(100, '\0');
    endless_reader(a, a_buf, st); // first receive: nothing yet, waits for the edge
    REQUIRE(st.counter.suspensions == 1);
    for (int i = 0; i < 20000; ++i) {
        fake().sock(fa).data(std::string(100, 'a'));
    }
    fake().raise(fa, EPOLLIN);
    env.engine->poll(); // A's edge: the reader runs its budget, then goes through the queue

    // The peer sends to B. A keeps going, yet B's receive completes within a
    // pass or two (the pass that harvests B's event).
    fake().sock(fb).data("ping");
    fake().raise(fb, EPOLLIN);
    const int before = st.counter.completions;
    const int passes = passes_until(env, [&] { return b_got.done(); }, 10);
    CHECK(b_got.done());
    CHECK(passes <= 2);
    REQUIRE(b_got.value.has_value());
    CHECK(*b_got.value == receive_outcome{receive_result::ok, 4});
    CHECK(b_buf.substr(0, 4) == "ping");

    // A was not stopped: it went on receiving, in every pass.
    for (int i = 0; i < 5; ++i) {
        const int c0 = st.counter.completions;
        env.engine->poll();
        CHECK(st.counter.completions > c0);
    }
    CHECK(st.counter.completions > before);
    CHECK_FALSE(st.ended);
    CHECK(st.last == receive_result::ok);

    // Never more inline completions in a row than the budget allows.
    CHECK(st.counter.longest_run <= limit);
    CHECK(st.counter.longest_run == limit); // the budget was used, not cut short
    CHECK(st.counter.suspensions > 1);

    st.stop = true;
    env.drain();
    CHECK(st.ended);
}

TEST_CASE("a coroutine whose sends always complete at once does not starve another socket of the same thread",
          "[fairness]")
{
    stream_state st;
    test_env env;
    int fa = -1;
    int fb = -1;
    fake_socket a = env.open_socket(fa);
    fake_socket b = env.open_socket(fb);

    awaited<receive_outcome> b_got;
    std::string b_buf(8, '\0');
    await_into(b_got, [&] { return b.receive_async(mbuf(b_buf)); });

    // A's writer starts inside the loop, from the completion of a receive.
    awaited<receive_outcome> a_first;
    std::string a_buf(8, '\0');
    const std::string msg(32, 'm');
    fake().sock(fa).auto_accept = true;
    await_into(a_first, [&] { return a.receive_async(mbuf(a_buf)); },
               [&](const receive_outcome&) { endless_writer(a, msg, st); });
    env.drain();
    fake().sock(fa).data("go");
    fake().raise(fa, EPOLLIN);
    env.engine->poll();
    REQUIRE(a_first.done());
    REQUIRE(st.counter.completions > 0);

    fake().sock(fb).data("ping");
    fake().raise(fb, EPOLLIN);
    const int passes = passes_until(env, [&] { return b_got.done(); }, 10);
    CHECK(b_got.done());
    CHECK(passes <= 2);
    const int c0 = st.counter.completions;
    env.engine->poll();
    CHECK(st.counter.completions > c0);
    CHECK_FALSE(st.ended);
    CHECK(st.counter.longest_run <= limit);
    CHECK(st.counter.longest_run == limit);

    st.stop = true;
    env.drain();
    CHECK(st.ended);
}

TEST_CASE("callback-form sends that complete at once, started from their callbacks, do not starve another socket",
          "[fairness]")
{
    test_env env;
    int fa = -1;
    int fb = -1;
    fake_socket a = env.open_socket(fa);
    fake_socket b = env.open_socket(fb);
    fake().sock(fa).auto_accept = true;

    // Each callback starts the next send; each send completes inside its
    // start. `inline_run` counts callbacks called inside a send_async call
    // (inline), in a row on this thread.
    struct chain {
        fake_socket* sock = nullptr;
        asock::send_operation ops[2];
        int next = 0;
        const_buffer buf{"abc", 3};
        bool stop = false;
        int calls = 0;
        int in_start = 0; ///< send_async calls running on this thread
        int inline_run = 0;
        int longest_inline_run = 0;
        static void on_complete(void* context, send_result r)
        {
            auto* c = static_cast<chain*>(context);
            ++c->calls;
            if (c->in_start != 0) {
                c->longest_inline_run = std::max(c->longest_inline_run, ++c->inline_run);
            } else {
                c->inline_run = 0; // called by the engine: a new run starts
            }
            if (r == send_result::ok && !c->stop) {
                c->start();
            }
        }
        void start()
        {
            // Records alternate: the one whose callback is running is not reused.
            asock::send_operation& op = ops[next];
            next ^= 1;
            ++in_start;
            REQUIRE(sock->send_async(op, buf, &on_complete, this) == send_sync_result::ok);
            --in_start;
        }
    } c;
    c.sock = &a;

    awaited<receive_outcome> b_got;
    std::string b_buf(8, '\0');
    await_into(b_got, [&] { return b.receive_async(mbuf(b_buf)); });

    // The chain starts inside the loop: from a posted item.
    struct starter : asock::detail::work_item {
        chain* c = nullptr;
    } go;
    go.c = &c;
    go.run = [](asock::detail::work_item* w) noexcept { static_cast<starter*>(w)->c->start(); };
    env.engine->post(&go);
    env.engine->poll();
    REQUIRE(c.calls > 0);

    fake().sock(fb).data("ping");
    fake().raise(fb, EPOLLIN);
    const int passes = passes_until(env, [&] { return b_got.done(); }, 10);
    CHECK(b_got.done());
    CHECK(passes <= 2);
    const int calls = c.calls;
    env.engine->poll();
    CHECK(c.calls > calls); // the chain goes on
    CHECK(c.longest_inline_run <= limit);

    c.stop = true;
    env.drain();
}

TEST_CASE("outside the engine's loop the budget never suspends an operation that finished at once", "[fairness]")
{
    stream_state st;
    test_env env;
    int fa = -1;
    fake_socket a = env.open_socket(fa);
    fake().sock(fa).data(std::string(100 * (4 * limit + 10), 'a'));
    std::string buf(100, '\0');
    // Started on the test thread, which is not running the loop: every
    // receive continues inline, however many in a row (awaitables.md: a
    // coroutine continues on the awaiting thread).
    struct bounded {
        static eager_coro run(fake_socket& s, std::string& b, stream_state& st, int n)
        {
            for (int i = 0; i < n; ++i) {
                counted aw{s.receive_async(mbuf(b)), &st.counter};
                const receive_outcome r = co_await aw;
                if (!r) {
                    break;
                }
            }
            st.ended = true;
        }
    };
    bounded::run(a, buf, st, 4 * limit);
    CHECK(st.ended);
    CHECK(st.counter.suspensions == 0);
    CHECK(st.counter.longest_run == 4 * limit);
}
