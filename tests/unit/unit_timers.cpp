// tests/unit/unit_timers.cpp: the engine's timers over the fake OS layer's
// virtual clock (tests/support/fake_sys.hpp): the timer heap, sleep_for /
// sleep_until, cancellation, engine shutdown, run_one with a deadline, and
// how often the OS timer is armed. Nothing here sleeps.
#include "unit_helpers.hpp"

#include <asock/detail/timer_queue.hpp>
#include <asock/post.hpp>
#include <asock/spawn.hpp>
#include <asock/task.hpp>
#include <asock/time.hpp>

#include <map>
#include <random>
#include <set>

using namespace asock_test;
using namespace std::chrono_literals;
using asock::timer_result;
using asock::detail::timer_clock;
using asock::detail::timer_node;

namespace {

struct recorded_timer {
    std::optional<timer_result> result;
    int resumptions = 0;
};

asock::task<void> sleep_into(fake_engine& e, timer_clock::duration d, std::stop_token token, recorded_timer& out)
{
    out.result = co_await asock::sleep_for(e, d, std::move(token));
    ++out.resumptions;
}

// Starts `t` (it runs to its first suspension now and frees itself when it
// ends). Each test lets every sleep it started finish before its records go.
struct started {
    explicit started(asock::task<void> task) { asock::spawn(std::move(task)); }
};

} // namespace

TEST_CASE("the timer heap returns nodes in deadline order, equal deadlines in the order added, and erases any node",
          "[timers]")
{
    std::mt19937 rng(12345);
    for (int round = 0; round < 200; ++round) {
        std::vector<timer_node> nodes(64);
        asock::detail::timer_heap heap;
        std::set<std::pair<long, std::uint64_t>> model;
        std::uint64_t seq = 0;
        std::vector<bool> in(nodes.size(), false);
        for (int step = 0; step < 400; ++step) {
            const std::size_t i = rng() % nodes.size();
            const int op = static_cast<int>(rng() % 3);
            if (!in[i] && op != 2) {
                nodes[i].deadline = timer_clock::time_point{} + std::chrono::milliseconds(rng() % 16);
                nodes[i].sequence = seq++;
                heap.push(&nodes[i]);
                model.insert({static_cast<long>(nodes[i].deadline.time_since_epoch().count()), nodes[i].sequence});
                in[i] = true;
            } else if (in[i] && op == 1) {
                heap.erase(&nodes[i]);
                model.erase({static_cast<long>(nodes[i].deadline.time_since_epoch().count()), nodes[i].sequence});
                in[i] = false;
            } else if (!heap.empty()) {
                timer_node* top = heap.pop();
                REQUIRE(!model.empty());
                CHECK(static_cast<long>(top->deadline.time_since_epoch().count()) == model.begin()->first);
                CHECK(top->sequence == model.begin()->second);
                model.erase(model.begin());
                in[static_cast<std::size_t>(top - nodes.data())] = false;
            }
            REQUIRE(heap.empty() == model.empty());
        }
        while (!heap.empty()) {
            timer_node* top = heap.pop();
            CHECK(top->sequence == model.begin()->second);
            model.erase(model.begin());
        }
        CHECK(model.empty());
    }
}

TEST_CASE("the timer queue (FIFO list for in-order deadlines, heap for the rest) takes timers in deadline order and "
          "removes any",
          "[timers]")
{
    std::mt19937 rng(777);
    for (int round = 0; round < 100; ++round) {
        std::vector<timer_node> nodes(48);
        asock::detail::timer_queue q;
        std::set<std::pair<long, std::uint64_t>> model; // (deadline, sequence) of queued nodes
        std::vector<bool> in(nodes.size(), false);
        long clock_ms = 0;
        const auto noop_arm = [](timer_clock::time_point) {};
        for (int step = 0; step < 300; ++step) {
            const std::size_t i = rng() % nodes.size();
            const int op = static_cast<int>(rng() % 4);
            if (!in[i] && op <= 1) {
                // Mostly in order (a constant timeout), sometimes earlier.
                const long d = (rng() % 5 == 0) ? clock_ms + static_cast<long>(rng() % 10) : clock_ms + 20;
                nodes[i].deadline = timer_clock::time_point{} + std::chrono::milliseconds(d);
                nodes[i].withdrawn = false; // a fresh node each time (a node is added once)
                REQUIRE(q.add(&nodes[i], noop_arm));
                model.insert({d, nodes[i].sequence});
                in[i] = true;
            } else if (in[i] && op == 2) {
                CHECK(q.remove(&nodes[i]));
                model.erase({static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                   nodes[i].deadline.time_since_epoch())
                                                   .count()),
                             nodes[i].sequence});
                in[i] = false;
            } else if (op == 3) {
                clock_ms += static_cast<long>(rng() % 6);
                timer_node* due = q.take_due(timer_clock::time_point{} + std::chrono::milliseconds(clock_ms), noop_arm);
                for (timer_node* n = due; n != nullptr; n = static_cast<timer_node*>(n->next)) {
                    REQUIRE(!model.empty());
                    const long d = static_cast<long>(
                        std::chrono::duration_cast<std::chrono::milliseconds>(n->deadline.time_since_epoch()).count());
                    CHECK(d == model.begin()->first);
                    CHECK(n->sequence == model.begin()->second);
                    CHECK(d <= clock_ms);
                    model.erase(model.begin());
                    in[static_cast<std::size_t>(n - nodes.data())] = false;
                }
                CHECK((model.empty() || model.begin()->first > clock_ms));
            }
            if (!model.empty()) {
                CHECK(q.earliest() == timer_clock::time_point{} + std::chrono::milliseconds(model.begin()->first));
            }
        }
        timer_node* rest = q.close();
        for (timer_node* n = rest; n != nullptr; n = static_cast<timer_node*>(n->next)) {
            CHECK(n->shutdown);
            REQUIRE(!model.empty());
            CHECK(n->sequence == model.begin()->second);
            model.erase(model.begin());
        }
        CHECK(model.empty());
    }
}

TEST_CASE("sleep_for completes expired when the virtual clock reaches its deadline, on the loop's thread", "[timers]")
{
    test_env env;
    recorded_timer r;
    started s(sleep_into(*env.engine, 5s, {}, r));
    CHECK(!r.result);
    env.drain();
    CHECK(!r.result); // poll() does not wait: no time passed
    fake().advance(4999ms);
    env.drain();
    CHECK(!r.result);
    fake().advance(1ms);
    env.drain();
    REQUIRE(r.result);
    CHECK(*r.result == timer_result::expired);
    CHECK(r.resumptions == 1);
}

TEST_CASE("run_one(-1) on an engine without threads returns when the earliest timer is due", "[timers]")
{
    test_env env;
    recorded_timer a, b;
    started sa(sleep_into(*env.engine, 3s, {}, a));
    started sb(sleep_into(*env.engine, 1s, {}, b));
    const auto t0 = fake().now();
    env.engine->run_one(-1);
    CHECK(fake().now() - t0 == 1s);
    CHECK(b.result == timer_result::expired);
    CHECK(!a.result);
    env.engine->run_one(-1);
    CHECK(fake().now() - t0 == 3s);
    CHECK(a.result == timer_result::expired);
}

TEST_CASE("run_one(timeout) returns after its timeout when no timer is due earlier", "[timers]")
{
    test_env env;
    recorded_timer a;
    started sa(sleep_into(*env.engine, 10s, {}, a));
    const auto t0 = fake().now();
    CHECK(env.engine->run_one(2000) == 0);
    CHECK(fake().now() - t0 == 2s);
    CHECK(!a.result);
    env.engine->run_one(20000);
    CHECK(a.result == timer_result::expired);
    CHECK(fake().now() - t0 == 10s);
}

TEST_CASE("a zero or past deadline completes expired without suspending", "[timers]")
{
    test_env env;
    recorded_timer r;
    started s(sleep_into(*env.engine, 0s, {}, r));
    CHECK(r.result == timer_result::expired);
    recorded_timer p;
    started sp(sleep_into(*env.engine, -5s, {}, p));
    CHECK(p.result == timer_result::expired);
}

TEST_CASE("a stop request completes a pending sleep cancelled, through the engine, and the timer never fires",
          "[timers]")
{
    test_env env;
    std::stop_source src;
    recorded_timer r;
    started s(sleep_into(*env.engine, 5s, src.get_token(), r));
    src.request_stop();
    CHECK(!r.result); // resumed by the engine, not on the requesting thread
    env.drain();
    CHECK(r.result == timer_result::cancelled);
    fake().advance(10s);
    env.drain();
    CHECK(r.resumptions == 1);
}

TEST_CASE("a stop requested before the sleep starts completes it cancelled without suspending", "[timers]")
{
    test_env env;
    std::stop_source src;
    src.request_stop();
    recorded_timer r;
    started s(sleep_into(*env.engine, 5s, src.get_token(), r));
    CHECK(r.result == timer_result::cancelled);
}

TEST_CASE("destroying an engine completes its pending sleeps cancelled before it goes", "[timers]")
{
    fake().reset();
    auto* e = fake_engine::create(asock::linux_epoll::engine_options{.threads = 0});
    REQUIRE(e);
    recorded_timer r;
    started s(sleep_into(*e, 1h, {}, r));
    CHECK(!r.result);
    e->dec_ref();
    CHECK(r.result == timer_result::cancelled);
    CHECK(r.resumptions == 1);
}

TEST_CASE("timers that are added and withdrawn arm the OS timer only when one is earlier than what is armed",
          "[timers]")
{
    test_env env;
    const int arms_before = fake().timerfd_arms;
    // A timeout per operation: each added, then withdrawn long before it is due.
    for (int i = 0; i < 100; ++i) {
        std::stop_source src;
        recorded_timer r;
        started s(sleep_into(*env.engine, 5s, src.get_token(), r));
        src.request_stop();
        env.drain();
        CHECK(r.result == timer_result::cancelled);
        fake().advance(1ms);
    }
    CHECK(fake().timerfd_arms - arms_before == 1);
    // The stale arming fires, finds nothing due, and arms nothing new.
    fake().advance(10s);
    env.drain();
    CHECK(fake().timerfd_arms - arms_before == 1);
}

TEST_CASE("a timer earlier than the armed one re-arms the OS timer; the OS timer is re-armed at the next deadline "
          "when it fires",
          "[timers]")
{
    test_env env;
    recorded_timer a, b, c;
    started sa(sleep_into(*env.engine, 10s, {}, a));
    const int tfd = fake().timerfds().at(0);
    CHECK(fake().timerfd_deadline(tfd) == fake().now() + 10s);
    started sb(sleep_into(*env.engine, 2s, {}, b));
    CHECK(fake().timerfd_deadline(tfd) == fake().now() + 2s);
    started sc(sleep_into(*env.engine, 5s, {}, c));
    CHECK(fake().timerfd_deadline(tfd) == fake().now() + 2s);
    const auto t0 = fake().now();
    env.engine->run_one(-1);
    CHECK(b.result == timer_result::expired);
    CHECK(fake().timerfd_deadline(tfd) == t0 + 5s); // c, the next one
    env.engine->run_one(-1);
    env.engine->run_one(-1);
    CHECK(c.result == timer_result::expired);
    CHECK(a.result == timer_result::expired);
}

TEST_CASE("schedule resumes the coroutine on the engine's loop", "[timers]")
{
    test_env env;
    int stage = 0;
    auto body = [](fake_engine& e, int& st) -> asock::task<void> {
        st = 1;
        co_await asock::schedule(e);
        st = 2;
    };
    started s(body(*env.engine, stage));
    CHECK(stage == 1);
    CHECK(!env.engine->running_in_this_thread());
    env.drain();
    CHECK(stage == 2);
}

TEST_CASE("post runs a function on the engine's loop, and destroying the engine runs what is still posted",
          "[post]")
{
    fake().reset();
    auto* e = fake_engine::create(asock::linux_epoll::engine_options{.threads = 0});
    REQUIRE(e);
    int ran = 0;
    bool on_loop = false;
    asock::post(*e, [&] {
        ++ran;
        on_loop = e->running_in_this_thread();
    });
    CHECK(ran == 0);
    e->poll();
    CHECK(ran == 1);
    CHECK(on_loop);
    asock::post(*e, [&] { ++ran; });
    e->dec_ref(); // never polled again: the destruction runs it
    CHECK(ran == 2);
}

TEST_CASE("regression: a cancel that comes before the timer is queued makes the add refuse it, so the waiter never "
          "touches its node after a successful add",
          "[timers][regression]")
{
    // TSan found sleep_awaitable reading its own flag after add_timer, while
    // the timer had already fired on an engine thread and the awaiter was
    // resumed and gone. Now a cancel that comes first marks the node
    // (remove() before add()), add() refuses it, and the waiter finishes on
    // the adding thread; after a successful add it reads nothing of itself.
    asock::detail::timer_queue q;
    const auto noop_arm = [](timer_clock::time_point) {};
    timer_node n;
    n.deadline = timer_clock::time_point{} + 1s;
    CHECK_FALSE(q.remove(&n)); // not queued: marked
    CHECK_FALSE(q.add(&n, noop_arm));
    CHECK_FALSE(n.queued);
    timer_node m;
    m.deadline = timer_clock::time_point{} + 1s;
    CHECK(q.add(&m, noop_arm));
    CHECK(q.remove(&m));
    CHECK_FALSE(q.add(&m, noop_arm)); // a node is added once

    test_env env;
    timer_node e_node;
    e_node.deadline = fake().now() + 1s;
    CHECK_FALSE(env.engine->cancel_timer(&e_node));
    CHECK_FALSE(env.engine->add_timer(&e_node));
}
