// tests/conformance/uring_driver.hpp: the conformance driver of the io_uring
// backend, over the scripted ring of tests/support/fake_uring.hpp.
//
// The engine has no threads of its own: settle() runs its loop on the test
// thread (poll()) and plays the peer against the submissions the backend has
// outstanding: the oldest receive on a handle completes with the next chunk
// the peer sent (as much as its buffers hold), then, once no bytes are left,
// with 0 (the peer closed) or -ECONNRESET (it reset); the oldest send
// completes when the peer reads: with every byte (peer_accepts_all), with as
// many as the peer still reads (peer_accepts_some: a short send, which the
// backend resumes with the rest), or -ECONNRESET after a reset. Cancelled
// calls complete -ECANCELED at the ASYNC_CANCEL's submission (the fake's
// default), so a close() on the test thread finds them at once. run_pass()
// is one pass of the loop with at most one completion per outstanding call.
//
// See backend.hpp for the interface every driver provides.
#pragma once

#include "support/fake_uring.hpp"

#include <asock/engine_ref.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <utility>

namespace conformance {

class backend {
public:
    using platform_type = asock_utest::fake_uring_platform;
    using socket_type = asock_utest::fake_uring_socket;
    using engine_type = asock_utest::fake_uring_engine;
    using handle_type = int;
    static constexpr const char* name = "uring";
    /// Backend differences (docs/design.md, "Backend differences"): a send's
    /// callback always comes from its completion, after the start call returned.
    static constexpr bool send_callback_inside_start = false;
    /// notify_io_async is not there yet on io_uring: always not_open.
    static constexpr bool has_notify_io = false;
    /// A stop request on a send whose submission is outstanding fails the
    /// send direction for good: how much of it reached the wire is not known.
    static constexpr bool cancel_of_outstanding_send_fails_direction = true;
    /// A reset is learnt only from a call's completion: a send started after
    /// it is accepted and completes abandoned (the others reject it at start).
    static constexpr bool send_after_reset_accepted = true;

    backend()
    {
        asock_utest::fake_uring().reset();
        asock::uring::engine_options o;
        o.threads = 0;
        engine_ = asock::engine_ref<engine_type>(engine_type::create(o));
        if (!engine_) {
            std::fprintf(stderr, "conformance: the io_uring engine could not be created\n");
            std::abort();
        }
        asock_utest::fake_uring().readable = [this](int fd) -> std::size_t {
            const auto it = peers_.find(fd);
            std::size_t n = 0;
            if (it != peers_.end()) {
                for (const std::string& chunk : it->second.inbound) {
                    n += chunk.size();
                }
            }
            return n;
        };
    }
    ~backend()
    {
        settle();
        asock_utest::fake_uring().on_is_socket = nullptr;
        asock_utest::fake_uring().readable = nullptr;
    }
    backend(const backend&) = delete;
    backend& operator=(const backend&) = delete;

    engine_type& engine() noexcept { return *engine_; }

    handle_type new_handle()
    {
        const handle_type h = next_handle_++;
        peers_[h];
        return h;
    }

    void during_open(std::function<void()> f) { asock_utest::fake_uring().on_is_socket = std::move(f); }

    // ---- the peer -------------------------------------------------------------------

    void peer_sends(handle_type h, std::string bytes) { peers_[h].inbound.push_back(std::move(bytes)); }
    void peer_closes(handle_type h) { peers_[h].closed = true; }
    void peer_resets(handle_type h) { peers_[h].reset = true; }
    void peer_accepts_some(handle_type h, std::size_t n) { peers_[h].window += n; }
    void peer_accepts_all(handle_type h) { peers_[h].reads_all = true; }

    // ---- queries --------------------------------------------------------------------

    std::string wire(handle_type h)
    {
        std::lock_guard lk(asock_utest::fake_uring().mu);
        return asock_utest::fake_uring().wire[h];
    }

    std::size_t transport_calls(handle_type h) { return asock_utest::fake_uring().transport_calls(h); }

    // ---- running --------------------------------------------------------------------

    /// One pass. A call issued during a turn of the loop reaches the kernel
    /// only at the next turn's submit, and its completion only at a reap
    /// after that; so a pass is: a turn (what is ready now: completions in
    /// the queue, posted work); the kernel takes what that turn submitted and
    /// completes at most one call per outstanding call (per direction) that
    /// the peer allows; a turn that reaps those completions. A call issued
    /// from inside one of them waits for the next pass.
    void run_pass()
    {
        static_cast<void>(engine_->poll());
        static_cast<void>(asock_utest::fake_uring().submit());
        for (auto& [h, p] : peers_) {
            static_cast<void>(pump(h, p, true));
        }
        static_cast<void>(engine_->poll());
    }

    void settle()
    {
        for (int i = 0; i < 100000; ++i) {
            bool progress = engine_->poll() > 0;
            for (auto& [h, p] : peers_) {
                progress = pump(h, p) || progress;
            }
            if (!progress) {
                return;
            }
        }
        std::fprintf(stderr, "conformance: the io_uring engine never became idle\n");
        std::abort();
    }

private:
    struct peer {
        std::deque<std::string> inbound;
        bool closed = false;
        bool reset = false;
        bool reads_all = false;
        std::size_t window = 0;
    };

    // Completes the outstanding calls of `h` that the peer's actions allow
    // (with `once`, at most one per direction).
    static bool pump(handle_type h, peer& p, bool once = false)
    {
        asock_utest::fake_uring_world& w = asock_utest::fake_uring();
        bool progress = false;
        while (!(once && progress)) {
            const auto c = w.find(h, false);
            if (!c) {
                break;
            }
            if (!p.inbound.empty()) {
                p.inbound.front() = w.complete_recv(h, p.inbound.front());
                if (p.inbound.front().empty()) {
                    p.inbound.pop_front();
                }
            } else if (p.closed) {
                w.complete(c->s.user_data, 0);
            } else if (p.reset) {
                w.complete(c->s.user_data, -ECONNRESET);
            } else {
                break;
            }
            progress = true;
        }
        bool sent = false;
        while (!(once && sent)) {
            const auto c = w.find(h, true);
            if (!c) {
                break;
            }
            if (p.reset) {
                w.complete(c->s.user_data, -ECONNRESET);
            } else if (p.reads_all) {
                w.complete_send(h);
            } else if (p.window > 0) {
                p.window -= w.complete_send(h, p.window);
            } else {
                break;
            }
            sent = true;
        }
        return progress || sent;
    }

    asock::engine_ref<engine_type> engine_;
    std::map<handle_type, peer> peers_;
    handle_type next_handle_ = 100;
};

} // namespace conformance
