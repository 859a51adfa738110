// tests/unit/unit_loops.cpp: an engine with threads runs one event loop per
// thread (include/asock/linux/epoll_engine.hpp): each loop has its own epoll
// instance and eventfd, sockets spread over the loops, a socket's
// completions and resumptions stay on its loop's thread, and posts, stop and
// destruction reach every loop.
//
// These engines have real threads over the fake system calls, whose
// epoll_wait then blocks for real (fake_world::blocking_waits) until the test
// raises an event on that loop's instance or something signals its eventfd.
#include "unit_helpers.hpp"

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <set>
#include <stop_token>
#include <thread>

using namespace asock_test;
using asock::detail::work_item;

namespace {

constexpr unsigned loops = 4;

asock::engine_ref<fake_engine> make_threaded_engine(unsigned threads = loops)
{
    fake().reset();
    fake().blocking_waits = true;
    asock::engine_ref<fake_engine> e(fake_engine::create(asock::linux_epoll::engine_options{.threads = threads}));
    REQUIRE(e);
    return e;
}

/// Waits (really) until `pred()` holds; false after 10 s.
template <class Pred>
bool wait_until(Pred pred)
{
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!pred()) {
        if (std::chrono::steady_clock::now() > give_up) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return true;
}

/// A work item that records the thread it ran on, and may then run more.
struct thread_item : work_item {
    std::atomic<bool> ran{false};
    std::thread::id on{};
    std::function<void()> then;

    thread_item() { run = &run_fn; }
    static void run_fn(work_item* w)
    {
        auto* t = static_cast<thread_item*>(w);
        t->on = std::this_thread::get_id();
        if (t->then) {
            t->then();
        }
        t->ran.store(true, std::memory_order_release);
    }
};

/// The thread of each of the engine's loops, found by posting to each.
std::vector<std::thread::id> loop_threads(fake_engine& e)
{
    std::vector<thread_item> items(e.loop_count());
    for (unsigned i = 0; i < e.loop_count(); ++i) {
        e.post_to(i, &items[i]);
    }
    std::vector<std::thread::id> ids;
    for (auto& it : items) {
        REQUIRE(wait_until([&] { return it.ran.load(std::memory_order_acquire); }));
        ids.push_back(it.on);
    }
    return ids;
}

/// The loop whose epoll instance `fd` is registered with (-1: none).
int loop_of(const fake_engine& e, int fd)
{
    const auto reg = fake().registered(fd);
    if (!reg) {
        return -1;
    }
    for (unsigned i = 0; i < e.loop_count(); ++i) {
        if (e.epoll_fd(i) == reg->epfd) {
            return static_cast<int>(i);
        }
    }
    return -1;
}

/// One socket's completions: on which threads they ran.
struct conn_record {
    asock::receive_operation op;
    char buf[16] = {};
    std::mutex mu;
    std::vector<std::thread::id> threads;
    std::vector<receive_result> results;
    std::atomic<int> done{0};

    void record(receive_result r)
    {
        {
            std::lock_guard lk(mu);
            threads.push_back(std::this_thread::get_id());
            results.push_back(r);
        }
        done.fetch_add(1, std::memory_order_acq_rel);
    }

    static void on_receive(void* context, receive_result r, std::uint32_t)
    {
        static_cast<conn_record*>(context)->record(r);
    }

    start_result start(fake_socket& s) { return s.receive_async(op, mutable_buffer{buf, sizeof buf}, &on_receive, this); }
};

/// co_await s.receive_async(...) in a coroutine that frees itself; records
/// the resuming thread.
eager_coro await_receive(fake_socket& s, conn_record& rec, std::stop_token token = {})
{
    const receive_outcome o = co_await s.receive_async(mutable_buffer{rec.buf, sizeof rec.buf}, token);
    rec.record(o.result);
}

} // namespace

TEST_CASE("an engine with threads runs one loop per thread, each with its own epoll instance and eventfd", "[loops]")
{
    auto e = make_threaded_engine();
    CHECK(e->thread_count() == loops);
    CHECK(e->loop_count() == loops);
    const auto epfds = fake().epoll_fds();
    const auto evfds = fake().eventfds();
    REQUIRE(epfds.size() == loops);
    REQUIRE(evfds.size() == loops);
    std::set<int> seen;
    for (unsigned i = 0; i < loops; ++i) {
        CHECK(e->epoll_fd(i) == epfds[i]);
        const auto reg = fake().registered(e->wakeup_fd(i));
        REQUIRE(reg.has_value());
        CHECK(reg->epfd == e->epoll_fd(i)); // each eventfd wakes its own loop only
        seen.insert(reg->epfd);
    }
    CHECK(seen.size() == loops);
    // The timerfd lives in loop 0.
    REQUIRE(fake().timerfds().size() == 1);
    const auto treg = fake().registered(fake().timerfds()[0]);
    REQUIRE(treg.has_value());
    CHECK(treg->epfd == e->epoll_fd(0));
    // Each loop runs on a thread of its own.
    const auto ids = loop_threads(*e);
    CHECK(std::set<std::thread::id>(ids.begin(), ids.end()).size() == loops);
    CHECK(std::find(ids.begin(), ids.end(), std::this_thread::get_id()) == ids.end());

    e = {};
    for (int fd : epfds) {
        CHECK(fake_world::count(fake().closed_fds, fd) == 1);
    }
    for (int fd : evfds) {
        CHECK(fake_world::count(fake().closed_fds, fd) == 1);
    }
}

TEST_CASE("an engine without threads has one loop, which every socket uses", "[loops]")
{
    test_env env;
    CHECK(env.engine->loop_count() == 1);
    int fa = -1;
    int fb = -1;
    fake_socket a = env.open_socket(fa);
    fake_socket b = env.open_socket(fb);
    CHECK(loop_of(*env.engine, fa) == 0);
    CHECK(loop_of(*env.engine, fb) == 0);
    CHECK(env.engine->sockets_on_loop(0) == 2);
}

TEST_CASE("sockets spread over the loops, the least loaded first, and leave their own loop at close", "[loops]")
{
    auto e = make_threaded_engine();
    std::vector<int> fds;
    std::vector<fake_socket> sockets;
    for (unsigned i = 0; i < 2 * loops; ++i) {
        fds.push_back(fake().make_socket());
        sockets.emplace_back(*e);
        REQUIRE(sockets.back().open(fds.back()) == open_result::ok);
    }
    std::vector<int> per_loop(loops, 0);
    for (int fd : fds) {
        const int l = loop_of(*e, fd);
        REQUIRE(l >= 0);
        ++per_loop[static_cast<unsigned>(l)];
    }
    for (unsigned i = 0; i < loops; ++i) {
        CHECK(per_loop[i] == 2);
        CHECK(e->sockets_on_loop(i) == 2);
    }

    // Close both sockets of one loop: each is unregistered from that loop's
    // instance (the fake refuses an epoll_del naming another), and the next
    // sockets go there.
    const int emptied = loop_of(*e, fds[1]);
    for (std::size_t i = 0; i < fds.size(); ++i) {
        if (loop_of(*e, fds[i]) == emptied) {
            sockets[i].close();
            CHECK_FALSE(fake().registered(fds[i]).has_value());
        }
    }
    CHECK(e->sockets_on_loop(static_cast<unsigned>(emptied)) == 0);
    for (int k = 0; k < 2; ++k) {
        fds.push_back(fake().make_socket());
        sockets.emplace_back(*e);
        REQUIRE(sockets.back().open(fds.back()) == open_result::ok);
        CHECK(loop_of(*e, fds.back()) == emptied);
    }
    // A registration the kernel refuses binds nothing.
    fake().fail_epoll_add = ENOMEM;
    fake_socket refused(*e);
    CHECK(refused.open(fake().make_socket()) == open_result::error);
    for (unsigned i = 0; i < loops; ++i) {
        CHECK(e->sockets_on_loop(i) == 2);
    }
    sockets.clear();
    for (unsigned i = 0; i < loops; ++i) {
        CHECK(e->sockets_on_loop(i) == 0);
    }
}

TEST_CASE("a socket's completions and resumptions all run on its loop's thread", "[loops]")
{
    auto e = make_threaded_engine();
    const auto threads = loop_threads(*e);
    constexpr unsigned n = 2 * loops;
    std::vector<int> fds;
    std::vector<fake_socket> sockets;
    std::vector<std::unique_ptr<conn_record>> recs;
    for (unsigned i = 0; i < n; ++i) {
        fds.push_back(fake().make_socket());
        sockets.emplace_back(*e);
        REQUIRE(sockets.back().open(fds.back()) == open_result::ok);
        recs.push_back(std::make_unique<conn_record>());
    }
    int expected = 0;
    const auto all_done = [&] {
        for (auto& r : recs) {
            if (r->done.load(std::memory_order_acquire) != expected) {
                return false;
            }
        }
        return true;
    };

    // 1. Data already waiting: the receive started on this thread finds it,
    //    and its callback is posted (a kick) to the socket's loop.
    for (unsigned i = 0; i < n; ++i) {
        fake().sock(fds[i]).data("hello");
        REQUIRE(recs[i]->start(sockets[i]) == start_result::started);
    }
    ++expected;
    REQUIRE(wait_until(all_done));

    // 2. Several rounds of queued receives completed by events on each loop.
    for (int round = 0; round < 5; ++round) {
        for (unsigned i = 0; i < n; ++i) {
            REQUIRE(recs[i]->start(sockets[i]) == start_result::started);
            fake().sock(fds[i]).data("again");
            REQUIRE(fake().raise(fds[i], EPOLLIN));
        }
        ++expected;
        REQUIRE(wait_until(all_done));
    }

    // 3. An awaiter resumed by an event.
    for (unsigned i = 0; i < n; ++i) {
        await_receive(sockets[i], *recs[i]);
        fake().sock(fds[i]).data("co");
        REQUIRE(fake().raise(fds[i], EPOLLIN));
    }
    ++expected;
    REQUIRE(wait_until(all_done));

    // 4. An awaiter completed by a stop request on this thread: its
    //    resumption is posted to the socket's loop, not to just any thread.
    std::vector<std::stop_source> stops(n);
    for (unsigned i = 0; i < n; ++i) {
        await_receive(sockets[i], *recs[i], stops[i].get_token());
    }
    for (auto& s : stops) {
        s.request_stop();
    }
    ++expected;
    REQUIRE(wait_until(all_done));

    for (unsigned i = 0; i < n; ++i) {
        const int l = loop_of(*e, fds[i]);
        REQUIRE(l >= 0);
        std::lock_guard lk(recs[i]->mu);
        INFO("socket " << i << " on loop " << l);
        REQUIRE(recs[i]->threads.size() == static_cast<std::size_t>(expected));
        for (const auto& id : recs[i]->threads) {
            CHECK(id == threads[static_cast<unsigned>(l)]);
        }
        CHECK(recs[i]->results.back() == receive_result::cancelled);
    }
}

TEST_CASE("work posted from outside goes to the loops in turn; from a loop thread, to that loop", "[loops]")
{
    auto e = make_threaded_engine();
    const auto threads = loop_threads(*e);
    std::vector<thread_item> outer(2 * loops);
    std::vector<thread_item> inner(2 * loops);
    for (std::size_t i = 0; i < outer.size(); ++i) {
        outer[i].then = [&e, &inner, i] { e->post(&inner[i]); }; // from the loop's own thread
        e->post(&outer[i]);
    }
    std::vector<int> per_loop(loops, 0);
    for (std::size_t i = 0; i < outer.size(); ++i) {
        REQUIRE(wait_until([&] { return inner[i].ran.load(std::memory_order_acquire); }));
        CHECK(inner[i].on == outer[i].on);
        const auto it = std::find(threads.begin(), threads.end(), outer[i].on);
        REQUIRE(it != threads.end());
        ++per_loop[static_cast<std::size_t>(it - threads.begin())];
    }
    for (unsigned i = 0; i < loops; ++i) {
        CHECK(per_loop[i] == 2);
    }
    // post_to(i) runs on loop i's thread, from anywhere.
    thread_item relay;
    thread_item target;
    relay.then = [&] { e->post_to(3, &target); };
    e->post_to(1, &relay);
    REQUIRE(wait_until([&] { return target.ran.load(std::memory_order_acquire); }));
    CHECK(relay.on == threads[1]);
    CHECK(target.on == threads[3]);
}

TEST_CASE("stop wakes every loop; restart drains every loop's eventfd", "[loops]")
{
    auto e = make_threaded_engine();
    static_cast<void>(loop_threads(*e)); // every loop is running
    e->stop();
    CHECK(e->stopped());
    // Left undrained: a thread leaving its loop takes no signal away.
    for (unsigned i = 0; i < loops; ++i) {
        CHECK(fake().eventfd_signalled(e->wakeup_fd(i)));
    }
    e->restart();
    CHECK_FALSE(e->stopped());
    for (unsigned i = 0; i < loops; ++i) {
        CHECK_FALSE(fake().eventfd_signalled(e->wakeup_fd(i)));
    }
    // Whether a thread left its loop before the restart or not, work posted
    // now to any loop has run once the engine is destroyed.
    std::vector<thread_item> late(loops);
    for (unsigned i = 0; i < loops; ++i) {
        e->post_to(i, &late[i]);
    }
    e = {};
    for (auto& it : late) {
        CHECK(it.ran.load());
    }
}

TEST_CASE("destroying an engine runs the work still posted on every loop, and what that work posts", "[loops]")
{
    auto e = make_threaded_engine();
    fake_engine* raw = e.get();
    // Hold every loop thread inside a posted item until the engine stops, so
    // that the work posted meanwhile is still queued when the destroy starts.
    std::vector<thread_item> blockers(loops);
    std::atomic<unsigned> blocked{0};
    for (unsigned i = 0; i < loops; ++i) {
        blockers[i].then = [raw, &blocked] {
            blocked.fetch_add(1);
            while (!raw->stopped()) {
                std::this_thread::sleep_for(std::chrono::microseconds(100));
            }
        };
        e->post_to(i, &blockers[i]);
    }
    REQUIRE(wait_until([&] { return blocked.load() == loops; }));
    std::vector<thread_item> queued(3 * loops);
    std::vector<thread_item> chained(3 * loops);
    for (std::size_t k = 0; k < queued.size(); ++k) {
        const unsigned loop = static_cast<unsigned>(k % loops);
        // Work that posts more, to another loop.
        queued[k].then = [raw, &chained, k, loop] { raw->post_to((loop + 1) % loops, &chained[k]); };
        e->post_to(loop, &queued[k]);
    }
    const auto me = std::this_thread::get_id();
    e = {}; // the last reference: stop, join, then run every loop's leftovers here
    for (std::size_t k = 0; k < queued.size(); ++k) {
        CHECK(queued[k].ran.load());
        CHECK(chained[k].ran.load());
        CHECK(queued[k].on == me);
        CHECK(chained[k].on == me);
    }
}
