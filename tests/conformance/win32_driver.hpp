// tests/conformance/win32_driver.hpp: the conformance driver of the Windows
// threadpool-IO backend, over the scripted Win32 layer of
// tests/win32/fake_win32.hpp.
//
// The fake never completes an overlapped call by itself: this driver plays the
// peer and the IO completion port. It keeps, per handle, what the peer did
// (bytes sent, in order; a close; a reset; how much it reads) and settle()
// turns that into completions of the calls the backend has outstanding: the
// oldest WSARecv completes with the next chunk the peer sent (as much as that
// call's buffers hold), then, once no bytes are left, with 0 bytes (close) or
// ERROR_NETNAME_DELETED (reset); an outstanding WSASend completes in full when
// the peer reads it (Windows completes a send whole), with
// ERROR_NETNAME_DELETED when the peer reset. Completions run on the test
// thread, inside the socket's IO callback, as a pool thread's would. settle()
// also runs the engine's posted work (resumptions of awaiters completed by a
// close or a stop request) until nothing is left to do.
//
// Calls cancelled with CancelIoEx (by close(), or by a stop request) come back
// through a helper thread that plays the OS (fake_win32's pool_runner in
// aborts-only mode): close() on a thread that is not one of the engine's waits
// for them, so they cannot be delivered by the thread that closes. settle()
// waits (bounded by fake_win32's hang guard) until every such call is back,
// before it looks at anything else; the outcome does not depend on timing.
//
// See backend.hpp for the interface every driver provides.
#pragma once

#include "win32/fake_win32.hpp"

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>

namespace conformance {

class backend {
public:
    using platform_type = asock_wtest::fake_platform;
    using socket_type = asock_wtest::fake_socket_t;
    using engine_type = asock_wtest::fake_engine;
    using handle_type = SOCKET;
    static constexpr const char* name = "win32";
    /// Backend differences (docs/design.md, "Backend differences"): a send's
    /// callback always comes from its IO completion (spec 01_066), after the
    /// start call returned.
    static constexpr bool send_callback_inside_start = false;
    /// notify_io_async is not available (04_002): always start_result::not_open.
    static constexpr bool has_notify_io = false;
    /// A stop request on a send whose WSASend is outstanding fails the send
    /// direction for good: nobody knows how much of it reached the wire.
    static constexpr bool cancel_of_outstanding_send_fails_direction = true;
    /// A send started after a reset is rejected at start (not accepted).
    static constexpr bool send_after_reset_accepted = false;

    backend()
    {
        asock_wtest::fake().reset();
        engine_ = engine_type::create({});
        if (engine_ == nullptr) {
            std::fprintf(stderr, "conformance: the threadpool engine could not be created\n");
            std::abort();
        }
        os_.emplace(true); // aborts cancelled calls only; posted work runs in settle()
        // FIONREAD: the bytes the peer sent that no receive took yet (called
        // with the fake's lock held, from the thread completing a call: settle()).
        asock_wtest::fake().readable_now = [this](SOCKET s) -> u_long {
            const auto it = peers_.find(s);
            std::size_t n = 0;
            if (it != peers_.end()) {
                for (const std::string& chunk : it->second.inbound) {
                    n += chunk.size();
                }
            }
            return static_cast<u_long>(n);
        };
    }
    ~backend()
    {
        wait_for_cancelled_calls();
        os_.reset();
        asock_wtest::fake().run_work();
        asock_wtest::fake().on_create_io = nullptr;
        asock_wtest::fake().readable_now = nullptr;
        engine_->dec_ref();
    }
    backend(const backend&) = delete;
    backend& operator=(const backend&) = delete;

    engine_type& engine() noexcept { return *engine_; }

    /// A new fake connected socket, not yet given to any async_socket.
    handle_type new_handle()
    {
        const handle_type h = next_handle_++;
        peers_[h];
        return h;
    }

    /// Runs `f` inside the next open, while the socket is OPENING (empty: none).
    void during_open(std::function<void()> f) { asock_wtest::fake().on_create_io = std::move(f); }

    // ---- the peer -------------------------------------------------------------------

    void peer_sends(handle_type h, std::string bytes) { peers_[h].inbound.push_back(std::move(bytes)); }
    void peer_closes(handle_type h) { peers_[h].closed = true; }
    void peer_resets(handle_type h)
    {
        peers_[h].reset = true;
        // A send started from now on fails at once, as WSASend on a reset
        // connection does (the epoll driver's next send fails the same way).
        asock_wtest::fake().script_send(h, asock_wtest::fake_world::fail(WSAECONNRESET));
    }
    void peer_accepts_some(handle_type h, std::size_t n) { peers_[h].window += n; }
    void peer_accepts_all(handle_type h) { peers_[h].reads_all = true; }

    // ---- queries --------------------------------------------------------------------

    /// Every byte the peer accepted from sends on `h`, in order.
    std::string wire(handle_type h) { return asock_wtest::fake().wire(h); }

    /// WSASend / WSARecv calls made on `h` so far.
    std::size_t transport_calls(handle_type h)
    {
        std::size_t n = 0;
        for (const auto& c : asock_wtest::fake().sends()) {
            n += c.socket == h ? 1u : 0u;
        }
        for (const auto& c : asock_wtest::fake().recvs()) {
            n += c.socket == h ? 1u : 0u;
        }
        return n;
    }

    // ---- running --------------------------------------------------------------------

    /// One pass, as a pool would make it: the posted work queued now, and at
    /// most one completion per outstanding call (a call issued from inside
    /// that completion waits for the next pass).
    void run_pass()
    {
        wait_for_cancelled_calls();
        asock_wtest::fake().run_work();
        for (auto& [h, p] : peers_) {
            pump(h, p, true);
        }
    }

    /// Delivers what the peer did to the outstanding calls and runs posted
    /// work until nothing is left to do.
    void settle()
    {
        for (int i = 0; i < 100000; ++i) {
            wait_for_cancelled_calls();
            bool progress = asock_wtest::fake().run_work() > 0;
            for (auto& [h, p] : peers_) {
                progress = pump(h, p) || progress;
            }
            if (!progress) {
                return;
            }
        }
        std::fprintf(stderr, "conformance: the threadpool backend never became idle\n");
        std::abort();
    }

private:
    using kind = asock_wtest::outstanding_call::kind;

    struct peer {
        std::deque<std::string> inbound; ///< chunks the peer sent, not yet received
        bool closed = false;
        bool reset = false;
        bool reads_all = false;
        std::size_t window = 0; ///< bytes the peer still reads (when not reads_all)
    };

    static bool outstanding(handle_type h, kind k)
    {
        return asock_wtest::fake().outstanding_count(h, k) != 0 && !asock_wtest::fake().cancel_requested(h, k);
    }

    // What the last WSARecv / WSASend on `h` (the outstanding one: one per
    // direction at a time) was given.
    static std::size_t last_receive_room(handle_type h)
    {
        std::size_t room = 0;
        for (const auto& c : asock_wtest::fake().recvs()) {
            if (c.socket == h) {
                room = 0;
                for (const WSABUF& b : c.buffers) {
                    room += b.len;
                }
            }
        }
        return room;
    }
    static std::size_t last_send_size(handle_type h)
    {
        std::size_t size = 0;
        for (const auto& c : asock_wtest::fake().sends()) {
            if (c.socket == h) {
                size = c.offered.size();
            }
        }
        return size;
    }

    // Completes the outstanding calls of `h` that the peer's actions allow
    // (with `once`, at most one per direction).
    static bool pump(handle_type h, peer& p, bool once = false)
    {
        bool progress = false;
        while (outstanding(h, kind::recv) && !(once && progress)) {
            if (!p.inbound.empty()) {
                const std::size_t room = last_receive_room(h);
                std::string chunk = p.inbound.front().substr(0, room);
                p.inbound.front().erase(0, chunk.size());
                if (p.inbound.front().empty()) {
                    p.inbound.pop_front();
                }
                asock_wtest::fake().complete_recv(h, chunk);
            } else if (p.closed) {
                asock_wtest::fake().complete_recv(h, ""); // 0 bytes: the peer closed (42_003)
            } else if (p.reset) {
                asock_wtest::fake().complete_recv_error(h, ERROR_NETNAME_DELETED);
            } else {
                break;
            }
            progress = true;
        }
        bool sent = false;
        while (outstanding(h, kind::send) && !(once && sent)) {
            if (p.reset) {
                asock_wtest::fake().complete_send(h, ERROR_NETNAME_DELETED, 0);
            } else if (p.reads_all) {
                asock_wtest::fake().complete_send(h);
            } else if (const std::size_t size = last_send_size(h); size <= p.window) {
                p.window -= size;
                asock_wtest::fake().complete_send(h);
            } else {
                break;
            }
            sent = true;
        }
        return progress || sent;
    }

    // Until the OS helper has delivered every call that CancelIoEx finished
    // and no IO callback of these handles is running.
    void wait_for_cancelled_calls()
    {
        asock_wtest::wait_until("cancelled calls delivered", [this] {
            for (const auto& entry : peers_) {
                const handle_type h = entry.first;
                if (asock_wtest::fake().cancel_requested(h, kind::recv) ||
                    asock_wtest::fake().cancel_requested(h, kind::send) || asock_wtest::fake().io_of(h).running != 0) {
                    return false;
                }
            }
            return true;
        });
    }

    engine_type* engine_ = nullptr;
    std::optional<asock_wtest::pool_runner> os_;
    std::map<handle_type, peer> peers_;
    handle_type next_handle_ = 100;
};

} // namespace conformance
