// asock/detail/socket_lifecycle.hpp: the parts of the spec's socket state
// machine that every backend's core shares.
//
// Rationale: the state machine (CREATED, OPENING, OPEN, CLOSING, CLOSED), the
// checks that open every operation's start, and the rule that a stream whose
// send was torn takes no further send are the contract, not a backend's way of
// doing I/O. They live here once; a core adds how it submits and completes.
#pragma once

#include <asock/detail/operation.hpp>
#include <asock/results.hpp>

#include <atomic>
#include <cstdint>
#include <utility>

namespace asock::detail {

/// The spec's socket states. A pooled core goes back to CREATED when its
/// socket is destroyed, ready for the next socket.
class socket_lifecycle {
public:
    socket_state load() const noexcept { return state_.load(std::memory_order_acquire); }
    bool is_open() const noexcept { return load() == socket_state::open; }

    /// CREATED -> OPENING. False in any other state: an open socket, one being
    /// opened or closed, and a closed one are not (re)openable.
    bool begin_open() noexcept
    {
        auto expected = socket_state::created;
        return state_.compare_exchange_strong(expected, socket_state::opening, std::memory_order_acq_rel);
    }

    /// OPEN -> CLOSING. False when the socket is not OPEN (a close on another
    /// thread came first, or it never opened): then this close does nothing.
    bool begin_close() noexcept
    {
        auto s = state_.load(std::memory_order_acquire);
        do {
            if (s != socket_state::open) {
                return false;
            }
        } while (!state_.compare_exchange_weak(s, socket_state::closing, std::memory_order_acq_rel));
        return true;
    }

    /// Sets the state and wakes every thread in wait_while().
    void set(socket_state s) noexcept
    {
        state_.store(s, std::memory_order_release);
        state_.notify_all();
    }

    /// Blocks while the state is `s` (a waiter of set()).
    void wait_while(socket_state s) const noexcept { state_.wait(s, std::memory_order_acquire); }

private:
    std::atomic<socket_state> state_{socket_state::created};
};

/// The first check of every start_*: an operation whose stop request came
/// before it started finishes `cancelled` inline (`done`), never queued.
template <class Op>
inline bool finished_by_early_stop(Op& op, bool& done) noexcept
{
    if (!op.cancel_requested) {
        return false;
    }
    Op::set_cancelled(op);
    done = true;
    return true;
}

/// The send direction of a stream. Once part of a send reached the wire and
/// the rest never will (or a transport reported a count nobody can trust),
/// no later send may follow the truncated bytes: every later send completes,
/// or is rejected, with the first cause. It also keeps the half-close state
/// (shutdown_send: no new send, and a FIN that may wait for the queued
/// sends). Guarded by the send direction's lock.
class send_direction {
public:
    bool failed() const noexcept { return cause_ != send_result::ok; }
    send_result cause() const noexcept { return cause_; }

    /// The direction fails for good; the first cause stays. A reset reads as
    /// the connection being gone (abandoned), anything else as an error.
    void fail(send_result r) noexcept
    {
        if (cause_ == send_result::ok) {
            cause_ = r;
        }
        fin_pending_ = false; // the stream is cut short: a FIN would pass it off as complete
    }

    /// What a new send is told once the direction failed: after a reset the
    /// socket reads as not open (spec 11_059 / 42_002), otherwise an error.
    send_sync_result rejection() const noexcept
    {
        return cause_ == send_result::abandoned ? send_sync_result::not_open : send_sync_result::error;
    }

    // ---- half-close (async_socket::shutdown_send) ---------------------------

    /// shutdown_send was called: the direction takes no new send (not_open).
    bool shut() const noexcept { return shut_; }

    /// Closes the direction to new sends. `fin_waits`: sends accepted before
    /// are still queued or in flight, and the FIN goes once they have all
    /// completed ok (take_fin()).
    void shut_down(bool fin_waits) noexcept
    {
        shut_ = true;
        fin_pending_ = fin_waits;
    }

    /// What a shutdown_send of an OPEN socket does, decided once for every
    /// core (under the send direction's lock): `sends_queued` tells whether
    /// sends accepted before are still queued or in flight.
    enum class fin_plan : std::uint8_t {
        already,   ///< a repeated call: ok, nothing more
        refused,   ///< the direction failed before (a torn send): error, no FIN
        deferred,  ///< ok: the FIN follows the queued sends (take_fin())
        send_now,  ///< the caller sends the FIN now: ok, or error if the OS refuses
    };
    fin_plan plan_shutdown(bool sends_queued) noexcept
    {
        if (shut_) {
            return fin_plan::already;
        }
        if (failed()) {
            shut_down(false); // a truncated stream gets no FIN
            return fin_plan::refused;
        }
        shut_down(sends_queued);
        return sends_queued ? fin_plan::deferred : fin_plan::send_now;
    }

    /// A send accepted before the shutdown did not complete ok (it failed,
    /// was cancelled or abandoned): its bytes never all went out, so no FIN
    /// follows them.
    void drop_fin() noexcept { fin_pending_ = false; }

    /// True once, when a FIN waits and the caller (whose queue of sends has
    /// just become empty) is to send it now.
    bool take_fin() noexcept { return std::exchange(fin_pending_, false); }

    void reset() noexcept
    {
        cause_ = send_result::ok;
        shut_ = false;
        fin_pending_ = false;
    }

private:
    send_result cause_ = send_result::ok;
    bool shut_ = false;        // shutdown_send was called
    bool fin_pending_ = false; // ... and its FIN waits for the sends accepted before it
};

} // namespace asock::detail
