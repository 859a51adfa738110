// asock/ops/awaitable_base.hpp: the part every asock awaitable shares.
//
// An awaitable *is* its operation's state: the operation record lives inside it
// (so co_await allocates nothing), and this base owns the completion race:
// whichever of "the backend finished the operation" and "the stop_token fired"
// reaches the record first decides the result, under the backend's queue lock;
// the other finds the record no longer queued and does nothing.
//
// Resumption rule, shared by all awaitables:
// - an operation that finishes while await_suspend runs does not suspend at
//   all: the coroutine continues on the thread that awaited; unless that
//   thread runs the socket's engine loop and its inline budget is spent
//   (detail/inline_budget.hpp): then the resumption is posted to the engine;
// - otherwise the coroutine resumes on an engine thread: directly from the event
//   dispatch, or by a post to the engine when the completion came from close(),
//   the socket's destructor or a stop request on some other thread.
#pragma once

#include <asock/buffer.hpp>
#include <asock/detail/continuation.hpp>
#include <asock/detail/inline_budget.hpp>
#include <asock/detail/operation.hpp>
#include <asock/detail/sync_wait_probe.hpp>
#include <asock/detail/toolchain.hpp>

#include <coroutine>
#include <optional>
#include <span>
#include <stop_token>
#include <utility>

namespace asock::detail {

template <class Core, class Op>
class op_awaitable {
public:
    op_awaitable(const op_awaitable&) = delete;
    op_awaitable& operator=(const op_awaitable&) = delete;

protected:
    /// Without a stop_token (the common form): nothing of one is stored,
    /// registered or destroyed.
    explicit op_awaitable(Core* core) noexcept : core_(core)
    {
        state_.owner = this;
        state_.complete = &on_complete;
    }

    op_awaitable(Core* core, std::stop_token token) noexcept : op_awaitable(core)
    {
        // A token that cannot be stopped now never can be (no stop_source
        // of its state is left): it is not kept, and nothing of it is paid.
        if (token.stop_possible()) {
            stop_.emplace(std::move(token));
        }
    }

    /// Moves an awaitable that has not been awaited (or launched) yet: the
    /// combinators take their operations by value. The derived class copies
    /// its request (buffers, type).
    op_awaitable(op_awaitable&& o) noexcept : core_(o.core_)
    {
        if (o.stop_) {
            stop_.emplace(std::move(o.stop_->token));
        }
        state_.owner = this;
        state_.complete = &on_complete;
    }

    // Without a token (the common case) this is one test of a flag, inline.
    ~op_awaitable()
    {
        if (stop_) {
            stop_.reset();
        }
    }

    struct op_state : Op {
        op_awaitable* owner = nullptr;
    };

    struct stop_handler {
        op_awaitable* self;
        void operator()() const noexcept { self->core_->cancel(self->state_); }
    };

    /// Registers for cancellation, then runs `start`, which returns true when
    /// the operation was queued (the coroutine stays suspended, or the
    /// listener will be called). Returns false with `on_cancelled` applied if
    /// stop was requested before anything started.
    template <class Start, class Cancelled>
    ASOCK_ALWAYS_INLINE bool suspend_and_start(continuation c, Start start, Cancelled on_cancelled) noexcept
    {
        cont_ = c;
        if (stop_) {
            if (stop_->token.stop_requested()) {
                on_cancelled();
                return finished_at_start();
            }
            // If stop is requested from here on, stop_handler finds the record
            // either not yet queued (start() then sees cancel_requested) or queued.
            stop_->callback.emplace(stop_->token, stop_handler{this});
        }
        // After start() queues the record this awaitable may already be resumed
        // and destroyed on another thread: touch nothing of `this` below.
        const bool coroutine = c.is_coroutine();
        const auto& engine = core_->engine();
        const bool suspended = start() || finished_at_start();
        if (!suspended) {
            return false;
        }
        // Suspended under sync_wait(awaitable) on this thread: tell it which
        // engine the wait depends on (detail/sync_wait_probe.hpp). Only the
        // engine's address is stored; the probe lives in sync_wait's frame,
        // which waits at least until this call returns (this thread is the
        // one that runs its coroutine's first steps). Done after the start,
        // so that the common finish inside the start pays nothing for it.
        if (coroutine) {
            if (sync_wait_probe* probe = tls_sync_wait) {
                note_suspension(probe, engine);
            }
        }
        return true;
    }

    /// The operation finished inside its start: false, the coroutine goes on
    /// inline, while this thread's inline budget lasts; once it is spent, the
    /// resumption goes through the engine's queue and the awaiter suspends
    /// (true), so the loop serves other sockets first.
    bool finished_at_start() noexcept
    {
        if (take_inline_budget(core_->engine())) [[likely]] {
            return false;
        }
        state_.run = &run_resume;
        core_->engine().post(&state_);
        return true;
    }

    /// The check every await_ready starts with: no socket (a moved-from or
    /// never-created one) completes `not_open` without suspending.
    ASOCK_ALWAYS_INLINE bool no_socket() noexcept
    {
        if (core_ == nullptr) {
            Op::set_not_open(state_);
            return true;
        }
        return false;
    }

    /// await_suspend of an operation whose start answers with a start_result:
    /// `start(done)` starts it; anything but `started` completes `not_open`
    /// without suspending, and so does a finish inside the start (`done`).
    template <class Start>
    bool suspend_and_start_op(continuation c, Start start) noexcept
    {
        return suspend_and_start(
            c,
            [this, start] {
                bool done = false;
                if (start(done) != start_result::started) {
                    Op::set_not_open(state_);
                    return false;
                }
                return !done;
            },
            [this] { Op::set_cancelled(state_); });
    }

    /// launchable::request_cancel: the stop request of a combinator, which
    /// needs no std::stop_token. Safe before the start (the start then sees
    /// it), while queued, and after the finish (nothing happens).
    void cancel_now() noexcept
    {
        if (core_ != nullptr) {
            core_->cancel(state_);
        }
    }

    static void on_complete(operation* op, completion_mode mode) noexcept
    {
        op_awaitable* self = static_cast<op_state*>(op)->owner;
        if (mode == completion_mode::engine_thread) {
            self->cont_.resume();
        } else {
            op->run = &run_resume;
            self->core_->post(op); // where the socket's events run (epoll: its loop)
        }
    }

    static void run_resume(work_item* w) noexcept
    {
        static_cast<op_state*>(static_cast<operation*>(w))->owner->cont_.resume();
    }

    // A stop_token given to the operation, and the callback registered with
    // it while the operation runs.
    struct stop_part {
        explicit stop_part(std::stop_token t) noexcept : token(std::move(t)) {}
        std::stop_token token;
        std::optional<std::stop_callback<stop_handler>> callback;
    };

    Core* core_;
    std::optional<stop_part> stop_; // only for a token that can be stopped
    continuation cont_;
    op_state state_;
};

/// The part of send_awaitable and receive_awaitable that is the same: a list
/// of buffers (or one, kept here), checked before anything starts.
template <class Core, class Op, class Buffer>
class buffers_awaitable : public op_awaitable<Core, Op> {
protected:
    buffers_awaitable(Core* core, std::span<const Buffer> buffers) noexcept : op_awaitable<Core, Op>(core)
    {
        this->state_.buffers = buffers.data();
        this->state_.count = checked_length(buffers.size());
    }

    buffers_awaitable(Core* core, Buffer single) noexcept : op_awaitable<Core, Op>(core), single_(single)
    {
        this->state_.buffers = &single_;
        this->state_.count = 1;
    }

    buffers_awaitable(Core* core, std::span<const Buffer> buffers, std::stop_token token) noexcept
        : op_awaitable<Core, Op>(core, std::move(token))
    {
        this->state_.buffers = buffers.data();
        this->state_.count = checked_length(buffers.size());
    }

    buffers_awaitable(Core* core, Buffer single, std::stop_token token) noexcept
        : op_awaitable<Core, Op>(core, std::move(token)), single_(single)
    {
        this->state_.buffers = &single_;
        this->state_.count = 1;
    }

    /// Before it is awaited only (see op_awaitable's move constructor).
    buffers_awaitable(buffers_awaitable&& o) noexcept : op_awaitable<Core, Op>(std::move(o)), single_(o.single_)
    {
        this->state_.buffers = o.state_.buffers == &o.single_ ? &single_ : o.state_.buffers;
        this->state_.count = o.state_.count;
    }

    /// not_open without a socket; invalid_argument for a bad buffer list.
    ASOCK_ALWAYS_INLINE bool ready_without_start() noexcept
    {
        if (this->no_socket()) {
            return true;
        }
        if (this->state_.buffers == &single_) {
            // One buffer (the common form): validate_buffers' rules for it,
            // inline: not null, not empty (its size fits 32 bits by type).
            if (single_.data != nullptr && single_.size != 0) {
                this->state_.total = single_.size;
                return false;
            }
            Op::set_invalid_argument(this->state_);
            return true;
        }
        if (!validate_buffers(this->state_.buffers, this->state_.count, this->state_.total)) {
            Op::set_invalid_argument(this->state_);
            return true;
        }
        return false;
    }

private:
    Buffer single_{};
};

} // namespace asock::detail
