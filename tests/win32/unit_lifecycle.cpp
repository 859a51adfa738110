// tests/win32/unit_lifecycle.cpp: create, open, close, destroy and the engine of
// the Windows backend, over the fake Win32 layer.
#include "unit_support.hpp"

using namespace asock_wtest;
using asock::open_result;
using asock::socket_state;

// The engine allocates its socket cores with nothrow array new: this test
// executable can make that fail on demand (only nothrow array new is replaced).
namespace {
std::atomic<bool> fail_nothrow_array_new{false};
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept
{
    if (fail_nothrow_array_new.load()) {
        return nullptr;
    }
    try {
        return ::operator new[](n);
    } catch (...) {
        return nullptr;
    }
}

namespace {
std::vector<std::string> sequence(std::size_t from, std::vector<std::string> only)
{
    return fake().calls_since(from, std::move(only));
}
} // namespace

// ---- create / create_with_transport ------------------------------------------

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_04_001: a socket with a custom transport is invalid on Windows", "[win32][create]")
{
    fixture f;
    asock::custom_transport t;
    t.on_send = [](void*, const void*, std::size_t) { return 0; };
    t.on_recv = [](void*, void*, std::size_t) { return 0; };
    const auto refs = f.engine->use_count();
    fake_socket_t s(*f.engine, t);
    CHECK_FALSE(s.valid());
    CHECK(f.engine->use_count() == refs); // no reference taken, no core used
    CHECK(s.open(sock_a) == open_result::error);
    CHECK(fake().count("CreateThreadpoolIo") == 0);

    auto d = fake_socket_t::on_default_engine(t);
    CHECK_FALSE(d.valid());
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_001, SRS_ASYNC_SOCKET_WIN32_42_004: create gives a valid socket and takes an "
          "engine reference",
          "[win32][create]")
{
    fixture f;
    const auto refs = f.engine->use_count();
    {
        fake_socket_t s(*f.engine);
        CHECK(s.valid());
        CHECK(s.state() == socket_state::created);
        CHECK(&s.engine() == f.engine);
        CHECK(f.engine->use_count() == refs + 1);
    }
    CHECK(f.engine->use_count() == refs);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_003: create fails when the socket cannot be allocated", "[win32][create]")
{
    fixture f; // a fresh engine: its first socket needs a new block of cores
    const auto refs = f.engine->use_count();
    fail_nothrow_array_new = true;
    fake_socket_t s(*f.engine);
    fail_nothrow_array_new = false;
    CHECK_FALSE(s.valid());
    CHECK(f.engine->use_count() == refs);
    fake_socket_t t(*f.engine);
    CHECK(t.valid());
}

// ---- destroy -------------------------------------------------------------------

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_004: destroying an empty or moved-from socket does nothing", "[win32][destroy]")
{
    fixture f;
    const auto mark = fake().mark();
    {
        fake_socket_t empty;
        CHECK_FALSE(empty.valid());
        fake_socket_t a = f.open_socket();
        fake_socket_t b = std::move(a);
        CHECK_FALSE(a.valid()); // NOLINT(bugprone-use-after-move): the point of the test
        CHECK(b.valid());
    }
    // Only the one real socket was closed and destroyed, once.
    CHECK(fake().count("closesocket") == 1);
    CHECK(sequence(mark, {"CloseThreadpoolIo"}).size() == 1);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_42_005, SRS_ASYNC_SOCKET_WIN32_01_005: destroy releases the engine reference and "
          "destroys the handle",
          "[win32][destroy]")
{
    fixture f;
    const auto refs = f.engine->use_count();
    {
        fake_socket_t s = f.open_socket();
        CHECK(f.engine->use_count() == refs + 1);
        s.close();
        CHECK(fake().sock(sock_a).closes == 0); // close disconnects, destroy closes the handle
    }
    CHECK(f.engine->use_count() == refs);
    CHECK(fake().sock(sock_a).closes == 1);
    CHECK(fake().sock(sock_a).shutdowns == 1);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_006: destroy closes an OPEN socket first", "[win32][destroy]")
{
    fixture f;
    receive_probe r;
    const auto mark = fake().mark();
    pool_runner runner; // the cancelled WSARecv comes back on the "pool"
    {
        fake_socket_t s = f.open_socket();
        REQUIRE(r.start(s) == asock::start_result::started);
        // destroyed here
    }
    CHECK(r.calls == 1);
    CHECK(r.result == asock::receive_result::abandoned);
    CHECK(sequence(mark, {"CancelIoEx", "WaitForThreadpoolIoCallbacks(FALSE)", "CloseThreadpoolIo",
                          "DestroyThreadpoolEnvironment", "shutdown", "closesocket"}) ==
          std::vector<std::string>{"CancelIoEx", "WaitForThreadpoolIoCallbacks(FALSE)", "CloseThreadpoolIo",
                                   "DestroyThreadpoolEnvironment", "shutdown", "closesocket"});
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_093: destroy waits for a close running on another thread", "[win32][destroy]")
{
    fixture f{false};
    receive_probe r;
    auto s = std::make_unique<fake_socket_t>(f.open_socket());
    REQUIRE(r.start(*s) == asock::start_result::started);
    // close() on another thread cancels the receive and waits for it to come back.
    std::thread closer([&] { s->close(); });
    wait_until("close asked to cancel", [] { return fake().cancel_requested(sock_a, outstanding_call::kind::recv); });
    CHECK(s->state() == socket_state::closing);
    // Destroying now must wait for that close; the "pool" completes the cancel meanwhile.
    std::thread completer([] {
        wait_until("abort", [] { return fake().abort_cancelled() == 1; });
    });
    s.reset();
    CHECK(r.calls == 1); // the receive was completed (abandoned) before destroy returned
    CHECK(r.result == asock::receive_result::abandoned);
    CHECK(fake().sock(sock_a).closes == 1);
    closer.join();
    completer.join();
}

// ---- open -------------------------------------------------------------------------

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_007: open on an empty socket fails", "[win32][open]")
{
    fixture f;
    fake_socket_t s;
    CHECK(s.open(sock_a) == open_result::error);
    CHECK(s.open_async(sock_a, fake_platform::default_owner(), [](void*, open_result) {}, nullptr) ==
          open_result::error);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_034: open with INVALID_SOCKET fails", "[win32][open]")
{
    fixture f;
    fake_socket_t s(*f.engine);
    CHECK(s.open(INVALID_SOCKET) == open_result::error);
    CHECK(s.state() == socket_state::created);
    CHECK(fake().count("CreateThreadpoolIo") == 0);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_034: open with a handle that is not a socket fails before any threadpool IO",
          "[win32][open][bad_input]")
{
    fixture f;
    fake_socket_t s(*f.engine);
    fake().not_a_socket = sock_a; // a pipe or file handle passed as a SOCKET
    CHECK(s.open(sock_a) == open_result::error);
    CHECK(s.state() == socket_state::created);
    CHECK(fake().count("CreateThreadpoolIo") == 0);
    fake().not_a_socket = INVALID_SOCKET;
    CHECK(s.open(sock_a) == open_result::ok); // still openable
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_008, SRS_ASYNC_SOCKET_WIN32_01_009: open_async needs a callback; its context may "
          "be NULL",
          "[win32][open]")
{
    fixture f;
    fake_socket_t s(*f.engine);
    CHECK(s.open_async(sock_a, fake_platform::default_owner(), nullptr, nullptr) == open_result::error);
    CHECK(s.state() == socket_state::created);
    static std::atomic<int> calls{0};
    static open_result seen = open_result::error;
    calls = 0;
    CHECK(s.open_async(
              sock_a, fake_platform::default_owner(),
              [](void* ctx, open_result r) {
                  CHECK(ctx == nullptr);
                  seen = r;
                  ++calls;
              },
              nullptr) == open_result::ok);
    CHECK(calls == 1);
    CHECK(seen == open_result::ok);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_023, SRS_ASYNC_SOCKET_WIN32_01_016, SRS_ASYNC_SOCKET_WIN32_01_036, "
          "SRS_ASYNC_SOCKET_WIN32_01_035, SRS_ASYNC_SOCKET_WIN32_01_058, SRS_ASYNC_SOCKET_WIN32_01_094, "
          "SRS_ASYNC_SOCKET_WIN32_01_014, SRS_ASYNC_SOCKET_WIN32_01_017: open sets up the environment and the "
          "threadpool IO",
          "[win32][open]")
{
    fixture f;
    fake_socket_t s(*f.engine);
    socket_state during = socket_state::created;
    fake().on_create_io = [&] { during = s.state(); };
    const auto mark = fake().mark();
    struct seen_t {
        int calls = 0;
        open_result r = open_result::error;
        void* ctx = nullptr;
    } seen;
    const open_result r = s.open_async(
        sock_a, fake_platform::default_owner(),
        [](void* ctx, open_result res) {
            auto* p = static_cast<seen_t*>(ctx);
            ++p->calls;
            p->r = res;
            p->ctx = ctx;
        },
        &seen);
    fake().on_create_io = nullptr;
    CHECK(r == open_result::ok);                   // 01_014
    CHECK(during == socket_state::opening);        // 01_023
    CHECK(s.state() == socket_state::open);        // 01_094
    CHECK(seen.calls == 1);                        // 01_017
    CHECK(seen.r == open_result::ok);
    CHECK(seen.ctx == &seen);
    CHECK(fake().calls_since(mark) == std::vector<std::string>{"InitializeThreadpoolEnvironment",
                                                              "SetThreadpoolCallbackPool", "CreateThreadpoolIo"});
    const fake_io_obj io = fake().io_of(sock_a);
    CHECK(io.socket == sock_a);
    CHECK(io.pool == f.engine->pool()); // 01_035, 01_036
    CHECK(io.callback != nullptr);
    CHECK(s.native_handle() == sock_a);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_015: open fails when the socket is already OPEN, and after close", "[win32][open]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    CHECK(s.open(sock_b) == open_result::error);
    CHECK(s.native_handle() == sock_a);
    s.close();
    CHECK(s.state() == socket_state::closed);
    CHECK(s.open(sock_b) == open_result::error); // not reopenable: the handle was owned and closed
    CHECK(fake().count("CreateThreadpoolIo") == 1);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_039: open fails when CreateThreadpoolIo fails", "[win32][open]")
{
    fixture f;
    fake_socket_t s(*f.engine);
    fake().fail_create_io = true;
    const auto mark = fake().mark();
    CHECK(s.open(sock_a) == open_result::error);
    fake().fail_create_io = false;
    CHECK(s.state() == socket_state::created);
    CHECK(fake().calls_since(mark) ==
          std::vector<std::string>{"InitializeThreadpoolEnvironment", "SetThreadpoolCallbackPool",
                                   "CreateThreadpoolIo", "DestroyThreadpoolEnvironment"});
    // The handle was not taken: destroying the socket does not close it.
    CHECK(s.open(sock_a) == open_result::ok); // and a later open may succeed
}

// ---- close -------------------------------------------------------------------------

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_018: close on an empty socket returns", "[win32][close]")
{
    fixture f;
    fake_socket_t s;
    s.close();
    CHECK(s.state() == socket_state::closed);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_022: close does nothing unless OPEN", "[win32][close]")
{
    fixture f;
    fake_socket_t s(*f.engine);
    const auto mark = fake().mark();
    s.close(); // created, never opened
    CHECK(s.state() == socket_state::created);
    CHECK(fake().calls_since(mark).empty());
    REQUIRE(s.open(sock_a) == open_result::ok);
    s.close();
    const auto after_first = fake().mark();
    s.close(); // already closed
    CHECK(fake().calls_since(after_first).empty());
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_019, SRS_ASYNC_SOCKET_WIN32_01_040, SRS_ASYNC_SOCKET_WIN32_01_059, "
          "SRS_ASYNC_SOCKET_WIN32_01_042, SRS_ASYNC_SOCKET_WIN32_01_021: close waits for the IO callbacks, closes "
          "the IO, destroys the environment and disconnects",
          "[win32][close]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    socket_state during = socket_state::open;
    fake().on_wait_io_callbacks = [&] { during = s.state(); };
    const auto mark = fake().mark();
    s.close();
    fake().on_wait_io_callbacks = nullptr;
    CHECK(during == socket_state::closing); // 01_019
    CHECK(s.state() == socket_state::closed);
    CHECK(fake().calls_since(mark) ==
          std::vector<std::string>{"WaitForThreadpoolIoCallbacks(FALSE)", "CloseThreadpoolIo",
                                   "DestroyThreadpoolEnvironment", "shutdown"});
    CHECK(fake().io_of(sock_a).closed);
}

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_01_020: close waits for a send that is being started", "[win32][close]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    std::atomic<bool> in_send{false};
    std::atomic<bool> release{false};
    fake().on_wsa_send = [&](const call_record&) {
        in_send = true;
        wait_until("release WSASend", [&] { return release.load(); });
    };
    send_probe p;
    std::atomic<int> sync_result{-1};
    std::thread sender([&] { sync_result = static_cast<int>(p.start(s)); });
    wait_until("WSASend entered", [&] { return in_send.load(); });
    pool_runner runner;
    std::thread closer([&] { s.close(); });
    // The close cannot take the send direction while the send is being issued.
    release = true;
    sender.join();
    closer.join();
    fake().on_wsa_send = nullptr;
    // The send was accepted, so close() had to see it and complete it before returning.
    CHECK(sync_result == static_cast<int>(asock::send_sync_result::ok));
    CHECK(p.calls == 1);
    CHECK(p.result == asock::send_result::abandoned);
    CHECK(s.state() == socket_state::closed);
}

// ---- notify_io_async -------------------------------------------------------------------

TEST_CASE("SRS_ASYNC_SOCKET_WIN32_04_002: notify_io_async fails on Windows", "[win32][notify]")
{
    fixture f;
    fake_socket_t s = f.open_socket();
    asock::notify_operation op;
    static int calls = 0;
    calls = 0;
    CHECK(s.notify_io_async(op, asock::notify_io_type::in, [](void*, asock::notify_io_result) { ++calls; }, nullptr) ==
          asock::start_result::not_open);
    CHECK(s.notify_io_async(op, asock::notify_io_type::out, [](void*, asock::notify_io_result) { ++calls; },
                            nullptr) == asock::start_result::not_open);
    CHECK(calls == 0);
    CHECK(asock::sync_wait(s.notify_io_async(asock::notify_io_type::in)) == asock::notify_io_result::not_open);
}

// ---- the engine --------------------------------------------------------------------------

TEST_CASE("engine: WSAStartup with the engine, WSACleanup when it goes; pool and work object", "[win32][engine]")
{
    fake().reset();
    fake_engine* e = fake_engine::create({});
    REQUIRE(e != nullptr);
    CHECK(fake().wsa_startups() == 1);
    CHECK(fake().calls() == std::vector<std::string>{"WSAStartup", "CreateThreadpool", "SetThreadpoolThreadMinimum(4)",
                                                     "InitializeThreadpoolEnvironment", "SetThreadpoolCallbackPool",
                                                     "CreateThreadpoolWork", "CreateThreadpoolTimer"});
    CHECK(e->pool() == fake().last_pool_handle());
    CHECK(e->thread_count() == 4);
    CHECK(e->use_count() == 1);
    const auto mark = fake().mark();
    e->dec_ref();
    CHECK(fake().calls_since(mark) ==
          std::vector<std::string>{"SetThreadpoolTimer(NULL)", "WaitForThreadpoolTimerCallbacks(TRUE)",
                                   "CloseThreadpoolTimer", "WaitForThreadpoolWorkCallbacks(FALSE)",
                                   "CloseThreadpoolWork", "DestroyThreadpoolEnvironment", "CloseThreadpool",
                                   "WSACleanup"});
    CHECK(fake().wsa_cleanups() == 1);
}

TEST_CASE("engine: thread counts", "[win32][engine]")
{
    fake().reset();
    SECTION("min and max")
    {
        fake_engine* e = fake_engine::create({.min_threads = 2, .max_threads = 8});
        REQUIRE(e != nullptr);
        CHECK(fake().last_pool().minimum == 2);
        CHECK(fake().last_pool().maximum == 8);
        CHECK(e->thread_count() == 2);
        e->dec_ref();
    }
    SECTION("threads = n fixes both")
    {
        fake_engine* e = fake_engine::create({.threads = 3});
        REQUIRE(e != nullptr);
        CHECK(fake().last_pool().minimum == 3);
        CHECK(fake().last_pool().maximum == 3);
        e->dec_ref();
    }
    SECTION("no maximum by default")
    {
        fake_engine* e = fake_engine::create({});
        REQUIRE(e != nullptr);
        CHECK(fake().count("SetThreadpoolThreadMaximum(0)") == 0);
        CHECK(fake().last_pool().maximum == 0);
        e->dec_ref();
    }
    SECTION("a maximum below the minimum is refused")
    {
        CHECK(fake_engine::create({.min_threads = 4, .max_threads = 2}) == nullptr);
        CHECK(fake().count("CreateThreadpool") == 0);
    }
}

TEST_CASE("engine: creation failures release what was taken", "[win32][engine]")
{
    fake().reset();
    SECTION("WSAStartup")
    {
        fake().fail_wsa_startup = WSASYSNOTREADY;
        CHECK(fake_engine::create({}) == nullptr);
        CHECK(fake().count("CreateThreadpool") == 0);
        CHECK(fake().count("WSACleanup") == 0);
    }
    SECTION("CreateThreadpool")
    {
        fake().fail_create_pool = true;
        CHECK(fake_engine::create({}) == nullptr);
        CHECK(fake().wsa_cleanups() == 1);
    }
    SECTION("SetThreadpoolThreadMinimum")
    {
        fake().fail_set_minimum = true;
        CHECK(fake_engine::create({}) == nullptr);
        CHECK(fake().count("CloseThreadpool") == 1);
        CHECK(fake().wsa_cleanups() == 1);
    }
    SECTION("CreateThreadpoolWork")
    {
        fake().fail_create_work = true;
        CHECK(fake_engine::create({}) == nullptr);
        CHECK(fake().count("DestroyThreadpoolEnvironment") == 1);
        CHECK(fake().count("CloseThreadpool") == 1);
        CHECK(fake().wsa_cleanups() == 1);
    }
    SECTION("CreateThreadpoolTimer")
    {
        for (const unsigned threads : {asock::win32::engine_options::unset, 0u}) {
            CAPTURE(threads);
            fake().reset();
            fake().fail_next_create_timer = true;
            CHECK(fake_engine::create({.threads = threads}) == nullptr);
            CHECK(fake().count("CloseThreadpoolTimer") == 0);
            CHECK(fake().count("CloseThreadpoolWork") == (threads == 0 ? 0 : 1));
            CHECK(fake().count("DestroyThreadpoolEnvironment") == 1);
            CHECK(fake().count("CloseThreadpool") == 1);
            CHECK(fake().wsa_cleanups() == 1);
        }
    }
    fake().reset();
}

TEST_CASE("engine: post runs each item once on a work callback, marked as an engine thread", "[win32][engine]")
{
    fixture f;
    struct item : asock::detail::work_item {
        fake_engine* engine = nullptr;
        int runs = 0;
        bool on_engine = false;
    };
    item items[3];
    for (item& it : items) {
        it.engine = f.engine;
        it.run = [](asock::detail::work_item* w) {
            auto* self = static_cast<item*>(w);
            ++self->runs;
            self->on_engine = self->engine->running_in_this_thread();
        };
        f.engine->post(&it);
    }
    CHECK(fake().pending_work() == 3); // one SubmitThreadpoolWork per post
    CHECK_FALSE(f.engine->running_in_this_thread());
    CHECK(fake().run_work() == 3);
    for (const item& it : items) {
        CHECK(it.runs == 1);
        CHECK(it.on_engine);
    }
}

TEST_CASE("engine: items still posted when the engine goes are run first", "[win32][engine]")
{
    fake().reset();
    fake_engine* e = fake_engine::create({});
    REQUIRE(e != nullptr);
    struct item : asock::detail::work_item {
        int runs = 0;
    } it;
    it.run = [](asock::detail::work_item* w) { ++static_cast<item*>(w)->runs; };
    e->post(&it);
    e->dec_ref();
    CHECK(it.runs == 1);
}

TEST_CASE("engine: the last reference dropped inside its own callback destroys it on another thread",
          "[win32][engine]")
{
    fake().reset();
    fake_engine* e = fake_engine::create({});
    REQUIRE(e != nullptr);
    struct item : asock::detail::work_item {
        fake_engine* engine = nullptr;
    } it;
    it.engine = e;
    it.run = [](asock::detail::work_item* w) { static_cast<item*>(w)->engine->dec_ref(); };
    e->post(&it);
    CHECK(fake().run_work() == 1);
    wait_until("engine destroyed", [] { return fake().wsa_cleanups() == 1; });
    CHECK(fake().count("CloseThreadpool") == 1);
}

TEST_CASE("engine: the default engine is shared and goes with its last reference", "[win32][engine]")
{
    fake().reset();
    fake_engine* a = fake_engine::acquire_default();
    fake_engine* b = fake_engine::acquire_default();
    REQUIRE(a != nullptr);
    CHECK(a == b);
    CHECK(a->use_count() == 2);
    {
        auto s = fake_socket_t::on_default_engine();
        REQUIRE(s.valid());
        CHECK(&s.engine() == a);
    }
    b->dec_ref();
    a->dec_ref();
    CHECK(fake().wsa_cleanups() == 1);
    fake_engine* c = fake_engine::acquire_default(); // a new one
    REQUIRE(c != nullptr);
    c->dec_ref();
}

TEST_CASE("engine: socket cores are pooled and reused", "[win32][engine]")
{
    fixture f;
    const void* first = nullptr;
    {
        fake_socket_t s(*f.engine);
        first = s.core();
    }
    fake_socket_t again(*f.engine);
    CHECK(static_cast<const void*>(again.core()) == first);
    std::vector<fake_socket_t> many;
    for (int i = 0; i < 130; ++i) { // more than one chunk of cores
        many.emplace_back(*f.engine);
        REQUIRE(many.back().valid());
    }
}
