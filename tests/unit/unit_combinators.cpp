// tests/unit/unit_combinators.cpp: with_timeout, when_any, when_all and
// task_scope over the fake OS layer and its virtual clock
// (tests/support/fake_sys.hpp): which operation wins, what the losers
// report, that no byte is lost, and that a scope's children are stopped
// and joined. Nothing here sleeps.
#include "unit_helpers.hpp"

#include <asock/scope.hpp>
#include <asock/spawn.hpp>
#include <asock/task.hpp>
#include <asock/time.hpp>
#include <asock/timeout.hpp>
#include <asock/when_all.hpp>
#include <asock/when_any.hpp>

#include <atomic>
#include <functional>
#include <stdexcept>

using namespace asock_test;
using namespace std::chrono_literals;
using asock::timer_result;

namespace {

asock::task<asock::timeout_result<receive_outcome>> timed_receive(fake_socket& s, fake_engine& e, std::string& buf,
                                                                  std::chrono::milliseconds t)
{
    co_return co_await asock::with_timeout(e, t, s.receive_async(mbuf(buf)));
}

} // namespace

TEST_CASE("with_timeout: a receive on a silent peer times out, cancelled, with no byte", "[timeout]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string buf(8, '\0');
    const auto t0 = fake().now();
    const auto r = asock::sync_wait(*env.engine, timed_receive(s, *env.engine, buf, 5000ms));
    CHECK(r.timed_out);
    CHECK(r.result.result == receive_result::cancelled);
    CHECK(r.result.bytes_received == 0);
    CHECK(fake().now() - t0 == 5s);
    // The socket is intact: the next receive gets the next bytes.
    fake().sock(fd).data("late");
    fake().raise(fd, EPOLLIN);
    const auto next = asock::sync_wait(*env.engine, s.receive_async(mbuf(buf)));
    CHECK(next.result == receive_result::ok);
    CHECK(buf.substr(0, next.bytes_received) == "late");
}

TEST_CASE("with_timeout: a receive whose data is there completes without arming a timer", "[timeout]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().sock(fd).data("ready");
    std::string buf(8, '\0');
    const int arms = fake().timerfd_arms;
    const auto r = asock::sync_wait(*env.engine, timed_receive(s, *env.engine, buf, 5000ms));
    CHECK_FALSE(r.timed_out);
    CHECK(r.result.result == receive_result::ok);
    CHECK(buf.substr(0, r.result.bytes_received) == "ready");
    CHECK(fake().timerfd_arms == arms);
}

TEST_CASE("with_timeout: data and the deadline in the same loop pass: the data wins and is delivered", "[timeout]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string buf(8, '\0');
    awaited<asock::timeout_result<receive_outcome>> out;
    await_into(out, [&] { return asock::with_timeout(*env.engine, 1s, s.receive_async(mbuf(buf))); });
    env.drain();
    CHECK(!out.done());
    fake().sock(fd).data("both");
    fake().raise(fd, EPOLLIN);
    fake().advance(2s);
    env.drain();
    REQUIRE(out.done());
    CHECK_FALSE(out.value->timed_out);
    CHECK(out.value->result.result == receive_result::ok);
    CHECK(buf.substr(0, out.value->result.bytes_received) == "both");
    CHECK(out.extra_resumes == 0);
}

TEST_CASE("with_timeout: the operation's own stop token cancels it, and that is not a timeout", "[timeout]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string buf(8, '\0');
    std::stop_source src;
    awaited<asock::timeout_result<receive_outcome>> out;
    await_into(out, [&] { return asock::with_timeout(*env.engine, 10s, s.receive_async(mbuf(buf), src.get_token())); });
    env.drain();
    src.request_stop();
    env.drain();
    REQUIRE(out.done());
    CHECK_FALSE(out.value->timed_out);
    CHECK(out.value->result.result == receive_result::cancelled);
}

TEST_CASE("with_timeout: a send blocked by a full peer times out and fails the send direction like a cancel",
          "[timeout]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    const std::string msg = "0123456789";
    fake().sock(fd).accept(4); // then EAGAIN: 6 bytes wait
    awaited<asock::timeout_result<send_result>> out;
    await_into(out, [&] { return asock::with_timeout(*env.engine, 1s, s.send_async(cbuf(msg))); });
    env.engine->run_one(-1);
    env.drain();
    REQUIRE(out.done());
    CHECK(out.value->timed_out);
    CHECK(out.value->result == send_result::cancelled);
    CHECK(fake().sock(fd).wire == "0123");
    // Part of it is on the wire: later sends must not follow the torn bytes.
    CHECK(asock::sync_wait(*env.engine, s.send_async(cbuf(msg))) == send_result::error);
}

TEST_CASE("when_any of a receive and a sleep: the sleep wins, the receive is cancelled and reports it", "[when_any]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string buf(8, '\0');
    auto body = [&]() -> asock::task<void> {
        auto r = co_await asock::when_any(s.receive_async(mbuf(buf)), asock::sleep_for(*env.engine, 3s));
        CHECK(r.index == 1);
        CHECK(std::get<0>(r.results).result == receive_result::cancelled);
        CHECK(std::get<1>(r.results) == timer_result::expired);
    };
    asock::sync_wait(*env.engine, body());
}

TEST_CASE("when_any: an operation that finishes during the start wins, and later ones start already cancelled",
          "[when_any]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().sock(fd).data("now");
    std::string buf(8, '\0');
    std::string other(8, '\0');
    auto body = [&]() -> asock::task<void> {
        auto r = co_await asock::when_any(asock::sleep_for(*env.engine, 1h), s.receive_async(mbuf(buf)),
                                          s.receive_async(mbuf(other)));
        CHECK(r.index == 1);
        CHECK(std::get<0>(r.results) == timer_result::cancelled);
        CHECK(std::get<1>(r.results).result == receive_result::ok);
        CHECK(std::get<2>(r.results).result == receive_result::cancelled);
    };
    const auto t0 = fake().now();
    asock::sync_wait(*env.engine, body());
    CHECK(fake().now() == t0); // nothing waited for the hour
    // The third receive never ran: a later receive gets the next bytes.
    fake().sock(fd).data("next");
    fake().raise(fd, EPOLLIN);
    CHECK(asock::sync_wait(*env.engine, s.receive_async(mbuf(other))).bytes_received == 4);
}

TEST_CASE("when_all of a send and a receive on one socket completes both", "[when_all]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    fake().sock(fd).auto_accept = true;
    const std::string msg = "ping";
    std::string buf(8, '\0');
    awaited<std::tuple<send_result, receive_outcome>> out;
    await_into(out, [&] { return asock::when_all(s.send_async(cbuf(msg)), s.receive_async(mbuf(buf))); });
    env.drain();
    CHECK(!out.done()); // the receive waits
    fake().sock(fd).data("pong");
    fake().raise(fd, EPOLLIN);
    env.drain();
    REQUIRE(out.done());
    CHECK(std::get<0>(*out.value) == send_result::ok);
    CHECK(std::get<1>(*out.value).result == receive_result::ok);
    CHECK(fake().sock(fd).wire == "ping");
    CHECK(buf.substr(0, 4) == "pong");
}

TEST_CASE("when_any with a task and a factory: the factory's token cancels it, the task is waited for",
          "[when_any]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string buf(8, '\0');
    auto short_task = [&]() -> asock::task<int> {
        co_await asock::sleep_for(*env.engine, 2s);
        co_return 7;
    };
    auto body = [&]() -> asock::task<void> {
        auto r = co_await asock::when_any(short_task(), [&](std::stop_token t) { return s.receive_async(mbuf(buf), t); },
                                          [&](std::stop_token t) -> asock::task<timer_result> {
                                              co_return co_await asock::sleep_for(*env.engine, 1h, t);
                                          });
        CHECK(r.index == 0);
        CHECK(std::get<0>(r.results) == 7);
        CHECK(std::get<1>(r.results).result == receive_result::cancelled);
        CHECK(std::get<2>(r.results) == timer_result::cancelled);
    };
    const auto t0 = fake().now();
    asock::sync_wait(*env.engine, body());
    CHECK(fake().now() - t0 == 2s);
}

TEST_CASE("when_all rethrows a task's exception after every operation has finished", "[when_all]")
{
    test_env env;
    bool slow_done = false;
    auto thrower = [&]() -> asock::task<int> {
        co_await asock::sleep_for(*env.engine, 1s);
        throw std::runtime_error("boom");
    };
    auto slow = [&]() -> asock::task<void> {
        co_await asock::sleep_for(*env.engine, 5s);
        slow_done = true;
    };
    auto body = [&]() -> asock::task<void> { co_await asock::when_all(thrower(), slow()); };
    CHECK_THROWS_AS(asock::sync_wait(*env.engine, body()), std::runtime_error);
    CHECK(slow_done);
}

TEST_CASE("combinators nest: with_timeout around when_all", "[when_all][timeout]")
{
    test_env env;
    int fd = -1;
    fake_socket s = env.open_socket(fd);
    std::string a(4, '\0'), b(4, '\0');
    auto body = [&]() -> asock::task<void> {
        auto r = co_await asock::with_timeout(*env.engine, 2s,
                                              asock::when_all(s.receive_async(mbuf(a)), asock::sleep_for(*env.engine, 1s)));
        CHECK(r.timed_out);
        CHECK(std::get<0>(r.result).result == receive_result::cancelled);
        CHECK(std::get<1>(r.result) == timer_result::expired);
    };
    asock::sync_wait(*env.engine, body());
}

TEST_CASE("task_scope: request_stop cancels every child's operations and join waits for all of them", "[scope]")
{
    test_env env;
    asock::task_scope scope;
    std::atomic<int> cancelled{0};
    auto child = [&](std::stop_token t) -> asock::task<void> {
        if (co_await asock::sleep_for(*env.engine, 1h, t) == timer_result::cancelled) {
            ++cancelled;
        }
    };
    for (int i = 0; i < 100; ++i) {
        scope.spawn(child);
    }
    CHECK(scope.size() == 100);
    env.drain();
    scope.request_stop();
    asock::sync_wait(*env.engine, scope.join());
    CHECK(cancelled == 100);
    CHECK(scope.size() == 0);
    // Usable again; a join with nothing running completes at once.
    asock::sync_wait(*env.engine, scope.join());
}

TEST_CASE("task_scope: join rethrows a child's exception once all children ended", "[scope]")
{
    test_env env;
    asock::task_scope scope;
    bool other_done = false;
    // Named: a coroutine lambda's captures live in its closure, which must
    // outlive the coroutine.
    auto failing = [&]() -> asock::task<void> {
        co_await asock::sleep_for(*env.engine, 1s);
        throw std::runtime_error("child failed");
    };
    auto finishing = [&]() -> asock::task<void> {
        co_await asock::sleep_for(*env.engine, 3s);
        other_done = true;
    };
    scope.spawn(failing());
    scope.spawn(finishing());
    CHECK_THROWS_AS(asock::sync_wait(*env.engine, scope.join()), std::runtime_error);
    CHECK(other_done);
    asock::sync_wait(*env.engine, scope.join()); // the exception was reported once
}

TEST_CASE("task_scope: children spawned by children are joined too", "[scope]")
{
    test_env env;
    asock::task_scope scope;
    int leaves = 0;
    std::function<asock::task<void>(int)> tree = [&](int depth) -> asock::task<void> {
        co_await asock::schedule(*env.engine);
        if (depth == 0) {
            ++leaves;
            co_return;
        }
        scope.spawn(tree(depth - 1));
        scope.spawn(tree(depth - 1));
    };
    scope.spawn(tree(6));
    asock::sync_wait(*env.engine, scope.join());
    CHECK(leaves == 64);
}
