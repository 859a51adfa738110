// tests/conformance/epoll_driver.hpp: the conformance driver of the Linux epoll
// backend, over the scripted system calls of tests/support/fake_sys.hpp.
//
// The engine has no threads of its own: settle() runs its loop on the test
// thread (poll()) until a pass finds nothing to do. The peer is modelled by
// the fake socket's scripts: bytes the peer sends are a recv step plus an
// EPOLLIN edge, its close an end-of-stream step (sticky) plus EPOLLIN |
// EPOLLRDHUP, its reset an ECONNRESET step for the next recv and the next send
// plus EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP. A send "would block" (EAGAIN)
// until the peer reads: peer_accepts_some(n) lets the next send call take up
// to n bytes, peer_accepts_all() every byte from then on (each with an
// EPOLLOUT edge).
//
// See backend.hpp for the interface every driver provides.
#pragma once

#include "support/fake_sys.hpp"

#include <asock/engine_ref.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>

#include <sys/epoll.h>

namespace conformance {

class backend {
public:
    using platform_type = asock_test::fake_platform;
    using socket_type = asock_test::fake_socket;
    using engine_type = asock_test::fake_engine;
    using handle_type = int;
    static constexpr const char* name = "epoll";
    /// Backend differences (docs/design.md, "Backend differences"): a
    /// callback-form send that completes at once calls back inside its start
    /// call (spec 11_061).
    static constexpr bool send_callback_inside_start = true;
    /// notify_io_async waits for readiness.
    static constexpr bool has_notify_io = true;
    /// A waiting send that sent nothing is withdrawn by a stop request; later
    /// sends go on.
    static constexpr bool cancel_of_outstanding_send_fails_direction = false;
    /// A send started after a reset is rejected at start (not accepted).
    static constexpr bool send_after_reset_accepted = false;

    backend()
    {
        asock_test::fake().reset();
        engine_ = asock::engine_ref<engine_type>(engine_type::create(asock::linux_epoll::engine_options{.threads = 0}));
        if (!engine_) {
            std::fprintf(stderr, "conformance: the epoll engine could not be created\n");
            std::abort();
        }
    }
    ~backend()
    {
        settle();
        asock_test::fake().on_epoll_add = nullptr;
    }
    backend(const backend&) = delete;
    backend& operator=(const backend&) = delete;

    engine_type& engine() noexcept { return *engine_; }

    /// A new fake connected socket, not yet given to any async_socket.
    handle_type new_handle() { return asock_test::fake().make_socket(); }

    /// Runs `f` inside the next open, while the socket is OPENING (empty: none).
    void during_open(std::function<void()> f) { asock_test::fake().on_epoll_add = std::move(f); }

    // ---- the peer -------------------------------------------------------------------

    void peer_sends(handle_type h, std::string bytes)
    {
        asock_test::fake().sock(h).data(std::move(bytes));
        asock_test::fake().raise(h, EPOLLIN);
    }
    void peer_closes(handle_type h)
    {
        asock_test::fake().sock(h).eof();
        asock_test::fake().raise(h, EPOLLIN | EPOLLRDHUP);
    }
    void peer_resets(handle_type h)
    {
        asock_test::fake().sock(h).recv_fails(ECONNRESET).send_fails(ECONNRESET);
        asock_test::fake().raise(h, EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP);
    }
    void peer_accepts_some(handle_type h, std::size_t n)
    {
        asock_test::fake().sock(h).accept(n);
        asock_test::fake().raise(h, EPOLLOUT);
    }
    void peer_accepts_all(handle_type h)
    {
        asock_test::fake().sock(h).auto_accept = true;
        asock_test::fake().raise(h, EPOLLOUT);
    }

    // ---- queries --------------------------------------------------------------------

    /// Every byte the peer accepted from sends on `h`, in order.
    std::string wire(handle_type h) { return asock_test::fake().sock(h).wire; }

    /// send / recv system calls made on `h` so far.
    std::size_t transport_calls(handle_type h)
    {
        const asock_test::fake_endpoint& ep = asock_test::fake().sock(h);
        return ep.sends.size() + ep.recvs.size();
    }

    // ---- running --------------------------------------------------------------------

    /// Runs one pass of the engine's loop on this thread: the events and
    /// posted work ready now.
    void run_pass() { engine_->poll(); }

    /// Runs the engine's loop on this thread until a pass finds nothing to do.
    void settle()
    {
        for (int i = 0; i < 100000; ++i) {
            if (engine_->poll() == 0) {
                return;
            }
        }
        std::fprintf(stderr, "conformance: the epoll engine never became idle\n");
        std::abort();
    }

private:
    asock::engine_ref<engine_type> engine_;
};

} // namespace conformance
