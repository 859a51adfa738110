// asock/linux/epoll_socket_core.hpp: per-socket state of the epoll backend.
//
// Design (see docs/design.md, "The epoll backend"):
// - The socket is added to epoll once, at open, edge-triggered for IN, OUT and
//   RDHUP, and removed at close. No epoll_ctl happens per operation.
// - Each direction has its own lock and FIFO queue, so a pending receive and a
//   pending send never touch each other's state (full duplex).
// - An operation tries its system call at once when its queue is empty and only
//   queues itself after EAGAIN. A send queued behind others is not tried before
//   them, and the write lock is held across each system call, so the bytes of
//   concurrent sends never interleave.
// - Events are handled by at most one engine thread per socket at a time (the
//   RUNNING bit of `dispatch_`); events arriving meanwhile are folded into the
//   running dispatch. Completion hooks run with no lock held, so a callback or
//   resumed coroutine may call anything on its own socket, close included.
// - A core is pooled by its engine and never freed while the engine lives, so an
//   epoll event that names a core whose socket was just destroyed (by another
//   thread, or earlier in the same batch) lands on valid memory, finds empty
//   queues, and does nothing.
#pragma once

#include <asock/detail/operation.hpp>
#include <asock/detail/word_mutex.hpp>
#include <asock/linux/epoll_sys.hpp>
#include <asock/results.hpp>
#include <asock/transport.hpp>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <mutex>

namespace asock::linux_epoll {

template <class Sys>
class basic_epoll_engine;

using asock::detail::completion_mode;
using asock::detail::notify_op;
using asock::detail::op_kind;
using asock::detail::op_list;
using asock::detail::operation;
using asock::detail::receive_op;
using asock::detail::send_op;
using asock::detail::work_item;

namespace detail {

/// A record on the stack of each thread that is dispatching a socket's events,
/// so that close() called from inside one of that socket's callbacks knows not
/// to wait for the dispatch it is part of.
struct dispatch_frame {
    const void* core;
    dispatch_frame* prev;
};
inline thread_local dispatch_frame* tls_dispatch_frames = nullptr;

/// A record on the stack of a thread whose close() is delivering the
/// completions of a socket, so that a destroy from inside one of them neither
/// waits for that close nor lets it touch the destroyed socket afterwards.
struct close_frame {
    const void* core;
    bool destroyed;
    close_frame* prev;
};
inline thread_local close_frame* tls_close_frames = nullptr;

inline bool mark_destroyed_if_closing_here(const void* core) noexcept
{
    bool found = false;
    for (close_frame* f = tls_close_frames; f != nullptr; f = f->prev) {
        if (f->core == core) {
            f->destroyed = true;
            found = true;
        }
    }
    return found;
}

inline bool dispatching_on_this_thread(const void* core) noexcept
{
    for (dispatch_frame* f = tls_dispatch_frames; f != nullptr; f = f->prev) {
        if (f->core == core) {
            return true;
        }
    }
    return false;
}

/// Largest number of iovec entries passed to one system call; longer buffer
/// lists are moved in several calls.
inline constexpr int max_iov = 64;

enum class io_status : std::uint8_t { done, would_block, failed };

} // namespace detail

template <class Sys>
class epoll_socket_core {
public:
    using engine_type = basic_epoll_engine<Sys>;
    using native_handle_type = int;
    using owner_type = basic_handle_owner<int>;

    epoll_socket_core() noexcept = default;
    epoll_socket_core(const epoll_socket_core&) = delete;
    epoll_socket_core& operator=(const epoll_socket_core&) = delete;

    // ---- lifecycle, called by async_socket -------------------------------

    /// Binds a pooled core to its engine and transport (the spec's create).
    void attach(engine_type* engine, const custom_transport& transport) noexcept
    {
        engine_ = engine;
        transport_ = transport;
    }

    /// The spec's open: OPENING, register with epoll once, OPEN.
    open_result open(int fd, const owner_type& owner) noexcept
    {
        auto expected = socket_state::created;
        if (!state_.compare_exchange_strong(expected, socket_state::opening, std::memory_order_acq_rel)) {
            return open_result::error; // OPEN, OPENING, CLOSING or CLOSED: not (re)openable
        }
        {
            // Before the registration: its first edge may be dispatched at once.
            std::lock_guard lk(read_.mu);
            maybe_readable_ = true; // unknown: the first receive tries the call
            read_final_ = false;
        }
        if (fd < 0 || Sys::epoll_add(engine_->epoll_fd(), fd, socket_event_mask, this) != 0) {
            set_state(socket_state::created);
            return open_result::error;
        }
        fd_ = fd;
        owner_ = owner;
        opened_ = true;
        send_poisoned_ = false;
        set_state(socket_state::open);
        return open_result::ok;
    }

    /// The spec's close: CLOSING; every queued operation completes ABANDONED
    /// exactly once before this returns; the handle is disconnected; CLOSED.
    void close() noexcept
    {
        auto s = state_.load(std::memory_order_acquire);
        do {
            if (s != socket_state::open) {
                return;
            }
        } while (!state_.compare_exchange_weak(s, socket_state::closing, std::memory_order_acq_rel));

        // Any send/receive call that saw OPEN holds the direction lock until it
        // has queued its operation, so after these two sections none can add more.
        op_list abandoned;
        op_list finished; // results already set, callbacks not yet delivered
        {
            std::lock_guard lk(read_.mu);
            abandoned.splice_back(read_.ops);
            abandoned.splice_back(read_.notifies);
            mark_taken(abandoned); // read side only, so far
            finished.splice_back(read_.finished);
        }
        {
            std::lock_guard lk(write_.mu);
            op_list writes;
            writes.splice_back(write_.ops);
            writes.splice_back(write_.notifies);
            mark_taken(writes);
            abandoned.splice_back(writes);
            finished.splice_back(write_.finished);
        }
        Sys::epoll_del(engine_->epoll_fd(), fd_);
        // A dispatch running on another thread may hold operations it already
        // finished; let it deliver them before this close returns.
        wait_dispatch_idle();
        if (owner_.disconnect != nullptr) {
            owner_.disconnect(owner_.context, fd_);
        }
        for (operation* op = abandoned.front(); op != nullptr; op = static_cast<operation*>(op->next)) {
            set_abandoned(*op);
        }
        // The state stays CLOSING while the completions run, so a destroy on
        // another thread waits until they are all delivered (11_020). A
        // completion on this thread may destroy the socket: detach() then marks
        // the frame and does not wait, and `this` is not touched again here.
        finished.splice_back(abandoned);
        detail::close_frame frame{this, false, detail::tls_close_frames};
        detail::tls_close_frames = &frame;
        asock::detail::complete_all(finished, completion_mode::foreign);
        detail::tls_close_frames = frame.prev;
        if (!frame.destroyed) {
            set_state(socket_state::closed);
        }
    }

    /// The spec's destroy, minus freeing: waits out OPENING / CLOSING, closes
    /// implicitly, destroys the handle, and readies the core for reuse.
    void detach() noexcept
    {
        auto s = state_.load(std::memory_order_acquire);
        // Destroyed from a completion that this thread's close() is delivering:
        // that close is past every use of the socket but its final state, which
        // the mark tells it to skip. Do not wait for it.
        const bool closing_here = detail::mark_destroyed_if_closing_here(this);
        while (!closing_here && (s == socket_state::opening || s == socket_state::closing)) {
            state_.wait(s, std::memory_order_acquire);
            s = state_.load(std::memory_order_acquire);
        }
        if (s == socket_state::open) {
            close();
        }
        if (opened_ && owner_.destroy != nullptr) {
            owner_.destroy(owner_.context, fd_);
        }
        wait_dispatch_idle();
        fd_ = -1;
        owner_ = {};
        transport_ = {};
        opened_ = false;
        set_state(socket_state::created);
    }

    socket_state state() const noexcept { return state_.load(std::memory_order_acquire); }
    int native_handle() const noexcept { return fd_; }
    engine_type& engine() const noexcept { return *engine_; }

    // ---- operations --------------------------------------------------------

    /// Starts a send. On ok, `done` says whether it already finished (result
    /// set, hook not called: the caller completes it); otherwise the hook will
    /// be called exactly once later. On error / not_open nothing was queued.
    send_sync_result start_send(send_op& op, bool& done) noexcept
    {
        std::lock_guard lk(write_.mu);
        if (state_.load(std::memory_order_acquire) != socket_state::open) {
            return send_sync_result::not_open;
        }
        if (op.cancel_requested) {
            op.result = send_result::cancelled;
            done = true;
            return send_sync_result::ok;
        }
        if (send_poisoned_) {
            return send_sync_result::error;
        }
        if (!write_.ops.empty()) {
            write_.ops.push_back(&op); // keep order: never overtake a queued send
            return send_sync_result::ok;
        }
        int err = 0;
        switch (try_send(op, err)) {
        case detail::io_status::done:
            op.result = send_result::ok;
            done = true;
            return send_sync_result::ok;
        case detail::io_status::would_block:
            write_.ops.push_back(&op);
            return send_sync_result::ok;
        case detail::io_status::failed:
            break;
        }
        if (err == ECONNRESET || err == ENOTCONN || err == EPIPE) {
            return send_sync_result::not_open;
        }
        return send_sync_result::error;
    }

    /// Starts a receive. With allow_inline the receive may finish inside this
    /// call (`done` set, hook not called); without it the hook is always called
    /// later, on an engine thread, in the order receives were started.
    start_result start_receive(receive_op& op, bool allow_inline, bool& done) noexcept
    {
        std::unique_lock lk(read_.mu);
        if (state_.load(std::memory_order_acquire) != socket_state::open) {
            return start_result::not_open;
        }
        if (op.cancel_requested) {
            op.result = receive_result::cancelled;
            done = true;
            return start_result::started;
        }
        if (!read_.ops.empty()) {
            read_.ops.push_back(&op);
            return start_result::started;
        }
        if (!allow_inline) {
            read_.ops.push_back(&op);
            const bool try_now = maybe_readable_;
            lk.unlock();
            if (try_now) {
                kick(); // data may already be waiting: no edge would announce it
            }
            return start_result::started;
        }
        int err = 0;
        // A drained socket gets an edge for whatever arrives next: wait for it
        // rather than make a call that can only return EAGAIN.
        if (!maybe_readable_ || try_receive(op, err) == detail::io_status::would_block) {
            read_.ops.push_back(&op);
        } else {
            done = true;
        }
        return start_result::started;
    }

    /// Starts a readiness notification. Readiness present now completes it at
    /// once (inline with allow_inline, else posted to the engine).
    start_result start_notify(notify_op& op, bool allow_inline, bool& done) noexcept
    {
        side& sd = op.type == notify_io_type::in ? read_ : write_;
        std::unique_lock lk(sd.mu);
        if (state_.load(std::memory_order_acquire) != socket_state::open) {
            return start_result::not_open;
        }
        if (op.cancel_requested) {
            op.result = notify_io_result::cancelled;
            done = true;
            return start_result::started;
        }
        const short want = op.type == notify_io_type::in ? POLLIN : POLLOUT;
        const short revents = Sys::poll_now(fd_, want);
        std::uint32_t evs = 0;
        evs |= (revents & POLLIN) ? ev_in : 0u;
        evs |= (revents & POLLOUT) ? ev_out : 0u;
        evs |= (revents & POLLERR) ? ev_err : 0u;
        evs |= (revents & POLLHUP) ? ev_hup : 0u;
        evs |= (revents & POLLRDHUP) ? ev_rdhup : 0u;
        if (!notify_ready(op, evs)) {
            sd.notifies.push_back(&op);
            return start_result::started;
        }
        if (allow_inline) {
            done = true;
            return start_result::started;
        }
        sd.finished.push_back(&op); // delivered by a dispatch, or by close() if that comes first
        lk.unlock();
        kick();
        return start_result::started;
    }

    /// Delivers a finished operation (result set) later on an engine thread,
    /// but never after a close() of this socket has returned. Called for a
    /// send whose callback cannot run inline.
    void post_completion(operation& op) noexcept
    {
        side& sd = side_for(op);
        std::unique_lock lk(sd.mu);
        if (state_.load(std::memory_order_acquire) == socket_state::open) {
            sd.finished.push_back(&op);
            lk.unlock();
            kick();
            return;
        }
        lk.unlock();
        op.complete(&op, completion_mode::foreign); // close() already ran: deliver now
    }

    /// A stop request for `op`: if it is still queued, unlink it and complete
    /// it `cancelled` (from this thread, mode foreign). If it has not been
    /// started yet, the start will see the flag and finish it cancelled.
    void cancel(operation& op) noexcept
    {
        side& sd = side_for(op);
        std::unique_lock lk(sd.mu);
        op.cancel_requested = true;
        if (!op.queued) {
            return;
        }
        op_list poisoned;
        switch (op.kind) {
        case op_kind::send: {
            auto& s = static_cast<send_op&>(op);
            sd.ops.unlink(&op);
            s.result = send_result::cancelled;
            if (s.sent > 0) {
                // Part of this send is on the wire; the rest of the stream
                // would follow a truncated message. Fail the direction.
                send_poisoned_ = true;
                poisoned.splice_back(sd.ops);
                mark_taken(poisoned);
            }
            break;
        }
        case op_kind::receive:
            sd.ops.unlink(&op);
            static_cast<receive_op&>(op).result = receive_result::cancelled;
            break;
        case op_kind::notify:
            sd.notifies.unlink(&op);
            static_cast<notify_op&>(op).result = notify_io_result::cancelled;
            break;
        }
        lk.unlock();
        for (operation* p = poisoned.front(); p != nullptr; p = static_cast<operation*>(p->next)) {
            static_cast<send_op*>(p)->result = send_result::error;
        }
        op.complete(&op, completion_mode::foreign);
        asock::detail::complete_all(poisoned, completion_mode::foreign);
    }

    // ---- engine side ---------------------------------------------------------

    /// Called by the engine for each epoll event naming this core.
    void on_epoll_events(std::uint32_t events) noexcept
    {
        std::uint32_t bits = 0;
        bits |= (events & EPOLLIN) ? ev_in : 0u;
        bits |= (events & EPOLLOUT) ? ev_out : 0u;
        bits |= (events & EPOLLERR) ? ev_err : 0u;
        bits |= (events & EPOLLHUP) ? ev_hup : 0u;
        bits |= (events & EPOLLRDHUP) ? ev_rdhup : 0u;
        dispatch(bits);
    }

    /// Pool link, used by the engine only.
    epoll_socket_core* next_free = nullptr;

private:
    static constexpr std::uint32_t ev_in = 1u << 0;
    static constexpr std::uint32_t ev_out = 1u << 1;
    static constexpr std::uint32_t ev_err = 1u << 2;
    static constexpr std::uint32_t ev_hup = 1u << 3;
    static constexpr std::uint32_t ev_rdhup = 1u << 4;
    static constexpr std::uint32_t ev_kick = 1u << 5; // "pump the receive queue", posted by start_receive
    static constexpr std::uint32_t ev_mask = (1u << 6) - 1;
    static constexpr std::uint32_t close_wait = 1u << 30;
    static constexpr std::uint32_t running = 1u << 31;

    struct side {
        asock::detail::word_mutex mu;
        op_list ops;      // sends or receives, FIFO
        op_list notifies; // notify_io_async waiters of this direction
        op_list finished; // finished, callback to be delivered by the next kick dispatch (or close)
    };

    side& side_for(const operation& op) noexcept
    {
        switch (op.kind) {
        case op_kind::send: return write_;
        case op_kind::receive: return read_;
        case op_kind::notify: break;
        }
        return static_cast<const notify_op&>(op).type == notify_io_type::in ? read_ : write_;
    }

    void set_state(socket_state s) noexcept
    {
        state_.store(s, std::memory_order_release);
        state_.notify_all();
    }

    // An operation moved from a socket queue to a local list (to be completed
    // once the lock is released) is no longer `queued`: a stop request that
    // arrives before its hook runs, e.g. from an earlier hook of the same list,
    // must find it finished rather than unlink it from a queue it is not in.
    // Both run under the lock of the queue the operations came from.
    static void mark_taken(op_list& list) noexcept
    {
        for (operation* op = list.front(); op != nullptr; op = static_cast<operation*>(op->next)) {
            op->queued = false;
        }
    }
    static void hand_over(op_list& done, operation* op) noexcept
    {
        done.push_back(op);
        op->queued = false;
    }

    static void set_abandoned(operation& op) noexcept
    {
        switch (op.kind) {
        case op_kind::send: static_cast<send_op&>(op).result = send_result::abandoned; break;
        case op_kind::receive: static_cast<receive_op&>(op).result = receive_result::abandoned; break;
        case op_kind::notify: static_cast<notify_op&>(op).result = notify_io_result::abandoned; break;
        }
    }

    struct kick_item : work_item {
        epoll_socket_core* self = nullptr;
    };

    static void run_kick(work_item* w) noexcept
    {
        epoll_socket_core* self = static_cast<kick_item*>(w)->self;
        self->kick_pending_.store(false, std::memory_order_release);
        self->dispatch(ev_kick);
    }

    void kick() noexcept
    {
        if (!kick_pending_.exchange(true, std::memory_order_acq_rel)) {
            kick_item_.run = &run_kick;
            kick_item_.self = this;
            engine_->post(&kick_item_);
        }
    }

    // Serialises event handling per socket. The first thread to set RUNNING
    // handles the events; others just OR their bits in and leave. Event bits
    // are cleared in the word when taken, so an edge that repeats a bit being
    // handled is never lost. Uncontended: one CAS to take, one to release.
    void dispatch(std::uint32_t bits) noexcept
    {
        std::uint32_t cur = dispatch_.load(std::memory_order_relaxed);
        std::uint32_t evs = 0;
        for (;;) {
            if ((cur & running) != 0) {
                if (dispatch_.compare_exchange_weak(cur, cur | bits, std::memory_order_acq_rel,
                                                    std::memory_order_relaxed)) {
                    return; // the running dispatch will see our bits
                }
            } else if (dispatch_.compare_exchange_weak(cur, running | (cur & close_wait), std::memory_order_acq_rel,
                                                       std::memory_order_relaxed)) {
                evs = bits | (cur & ev_mask);
                break;
            }
        }
        detail::dispatch_frame frame{this, detail::tls_dispatch_frames};
        detail::tls_dispatch_frames = &frame;
        for (;;) {
            if (evs != 0) {
                process(evs);
            }
            std::uint32_t expected = running;
            if (dispatch_.compare_exchange_strong(expected, 0, std::memory_order_acq_rel)) {
                break;
            }
            // New event bits arrived, or close() waits: take the bits, keep RUNNING.
            const std::uint32_t old = dispatch_.fetch_and(running | close_wait, std::memory_order_acq_rel);
            evs = old & ev_mask;
            if (evs == 0) {
                std::uint32_t waiting = old & (running | close_wait);
                if (dispatch_.compare_exchange_strong(waiting, 0, std::memory_order_acq_rel)) {
                    dispatch_.notify_all(); // wake close() / destroy
                    break;
                }
                // more bits arrived meanwhile: loop and take them
            }
        }
        detail::tls_dispatch_frames = frame.prev;
    }

    void process(std::uint32_t evs) noexcept
    {
        op_list done;
        if ((evs & ev_kick) != 0) {
            for (side* sd : {&read_, &write_}) {
                std::lock_guard lk(sd->mu);
                mark_taken(sd->finished);
                done.splice_back(sd->finished);
            }
        }
        if ((evs & (ev_in | ev_err | ev_hup | ev_rdhup | ev_kick)) != 0) {
            std::lock_guard lk(read_.mu);
            if ((evs & (ev_in | ev_err | ev_hup | ev_rdhup)) != 0) {
                maybe_readable_ = true; // an edge: data, a hang-up or an error to read
            }
            if ((evs & (ev_err | ev_hup | ev_rdhup)) != 0) {
                read_final_ = true; // end of stream / error: readable from now on
            }
            if (state_.load(std::memory_order_acquire) == socket_state::open) {
                pump_receives(done);
                if ((evs & ev_kick) != evs) {
                    complete_ready_notifies(read_.notifies, evs, done);
                }
            }
        }
        if ((evs & (ev_out | ev_err | ev_hup | ev_rdhup)) != 0) {
            std::lock_guard lk(write_.mu);
            mark_taken(write_.finished);
            done.splice_back(write_.finished); // earlier sends' callbacks go first
            if (state_.load(std::memory_order_acquire) == socket_state::open) {
                if ((evs & ev_rdhup) != evs) {
                    pump_sends(done);
                }
                complete_ready_notifies(write_.notifies, evs, done);
            }
        }
        asock::detail::complete_all(done, completion_mode::engine_thread);
    }

    // Spec 04_008..04_011: error first, then hang-up (abandoned), then readiness.
    static bool notify_ready(notify_op& op, std::uint32_t evs) noexcept
    {
        if ((evs & ev_err) != 0) {
            op.result = notify_io_result::error;
        } else if ((evs & (ev_hup | ev_rdhup)) != 0) {
            op.result = notify_io_result::abandoned;
        } else if (op.type == notify_io_type::in && (evs & ev_in) != 0) {
            op.result = notify_io_result::in;
        } else if (op.type == notify_io_type::out && (evs & ev_out) != 0) {
            op.result = notify_io_result::out;
        } else {
            return false;
        }
        return true;
    }

    static void complete_ready_notifies(op_list& list, std::uint32_t evs, op_list& done) noexcept
    {
        operation* op = list.front();
        while (op != nullptr) {
            auto* next = static_cast<operation*>(op->next);
            if (notify_ready(static_cast<notify_op&>(*op), evs)) {
                list.unlink(op);
                hand_over(done, op);
            }
            op = next;
        }
    }

    void pump_receives(op_list& done) noexcept
    {
        operation* op;
        while (maybe_readable_ && (op = read_.ops.front()) != nullptr) {
            int err = 0;
            if (try_receive(static_cast<receive_op&>(*op), err) == detail::io_status::would_block) {
                break;
            }
            read_.ops.unlink(op);
            hand_over(done, op);
        }
    }

    void pump_sends(op_list& done) noexcept
    {
        while (operation* op = write_.ops.front()) {
            auto& s = static_cast<send_op&>(*op);
            int err = 0;
            const auto st = send_poisoned_ ? detail::io_status::failed : try_send(s, err);
            if (st == detail::io_status::would_block) {
                break;
            }
            write_.ops.unlink(op);
            // Spec 11_098 / 11_099: ECONNRESET abandons, anything else is an error.
            // EPIPE too abandons: it is how the kernel reports a reset whose
            // ECONNRESET a receive in the same dispatch already consumed.
            s.result = st == detail::io_status::done      ? send_result::ok
                       : err == ECONNRESET || err == EPIPE ? send_result::abandoned
                                                           : send_result::error;
            hand_over(done, op);
        }
    }

    static bool would_block(int e) noexcept { return e == EAGAIN || e == EWOULDBLOCK; }

    // Moves bytes of `op` until it is complete, the transport would block, or
    // it fails (errno in `err`). Progress is kept in op.index / op.offset.
    detail::io_status try_send(send_op& op, int& err) noexcept
    {
        while (op.sent < op.total) {
            long n;
            if (transport_.on_send != nullptr) {
                const const_buffer& b = op.buffers[op.index];
                n = transport_.on_send(transport_.on_send_context, static_cast<const char*>(b.data) + op.offset,
                                       b.size - op.offset);
            } else if (op.count - op.index == 1) {
                const const_buffer& b = op.buffers[op.index];
                n = Sys::send_one(fd_, static_cast<const char*>(b.data) + op.offset, b.size - op.offset);
            } else {
                iovec iov[detail::max_iov];
                int cnt = 0;
                for (std::uint32_t i = op.index; i < op.count && cnt < detail::max_iov; ++i, ++cnt) {
                    const std::uint32_t skip = i == op.index ? op.offset : 0;
                    iov[cnt].iov_base = const_cast<char*>(static_cast<const char*>(op.buffers[i].data)) + skip;
                    iov[cnt].iov_len = op.buffers[i].size - skip;
                }
                n = Sys::send_iov(fd_, iov, cnt);
            }
            if (n < 0) {
                const int e = errno;
                if (e == EINTR) {
                    continue;
                }
                if (would_block(e)) {
                    return detail::io_status::would_block;
                }
                err = e;
                return detail::io_status::failed;
            }
            if (n == 0 || static_cast<unsigned long>(n) > op.total - op.sent) {
                err = EIO; // a transport that moves nothing or more than asked is broken
                return detail::io_status::failed;
            }
            advance(op, static_cast<std::uint32_t>(n));
        }
        return detail::io_status::done;
    }

    static void advance(send_op& op, std::uint32_t n) noexcept
    {
        op.sent += n;
        while (n > 0) {
            const std::uint32_t left = op.buffers[op.index].size - op.offset;
            if (n >= left) {
                n -= left;
                ++op.index;
                op.offset = 0;
            } else {
                op.offset += n;
                n = 0;
            }
        }
    }

    // Fills op's buffers in order. Completes (done) once at least one byte
    // arrived and no more is available now, or when all buffers are full; bytes
    // that arrived before a hang-up or an error are always delivered first.
    detail::io_status try_receive(receive_op& op, int& err) noexcept
    {
        std::uint32_t index = 0;
        std::uint32_t offset = 0;
        while (index < op.count) {
            long n;
            std::uint32_t asked;
            if (transport_.on_recv != nullptr) {
                const mutable_buffer& b = op.buffers[index];
                asked = b.size - offset;
                n = transport_.on_recv(transport_.on_recv_context, static_cast<char*>(b.data) + offset, asked);
            } else if (op.count == 1) {
                asked = op.buffers[0].size;
                n = Sys::recv_one(fd_, op.buffers[0].data, asked);
            } else {
                iovec iov[detail::max_iov];
                int cnt = 0;
                asked = 0;
                for (std::uint32_t i = index; i < op.count && cnt < detail::max_iov; ++i, ++cnt) {
                    iov[cnt].iov_base = op.buffers[i].data;
                    iov[cnt].iov_len = op.buffers[i].size;
                    asked += op.buffers[i].size;
                }
                n = Sys::recv_iov(fd_, iov, cnt);
            }
            if (n < 0) {
                const int e = errno;
                if (e == EINTR) {
                    continue;
                }
                if (would_block(e)) {
                    maybe_readable_ = read_final_; // drained: the next arrival raises an edge
                }
                if (op.received > 0) {
                    break; // deliver what we have; a real error shows up on the next receive
                }
                if (would_block(e)) {
                    return detail::io_status::would_block;
                }
                err = e;
                // Spec 11_090 / 11_095.
                op.result = e == ECONNRESET ? receive_result::abandoned : receive_result::error;
                return detail::io_status::failed;
            }
            if (n == 0) {
                if (op.received > 0) {
                    break; // the hang-up is reported by the next receive
                }
                op.result = receive_result::abandoned; // spec 11_091
                return detail::io_status::done;
            }
            if (static_cast<unsigned long>(n) > asked) {
                err = EIO;
                op.result = receive_result::error;
                return detail::io_status::failed;
            }
            op.received += static_cast<std::uint32_t>(n);
            if (transport_.on_recv != nullptr) {
                offset += static_cast<std::uint32_t>(n);
                if (offset == op.buffers[index].size) {
                    ++index;
                    offset = 0;
                }
                continue; // custom transports may return short counts: read until EAGAIN or full
            }
            if (static_cast<std::uint32_t>(n) < asked) {
                // The kernel had no more: a short read drains the socket, so
                // anything arriving after it raises a new edge.
                // Not after a hang-up: the FIN behind the data raises no edge.
                maybe_readable_ = read_final_;
                break;
            }
            index += static_cast<std::uint32_t>(detail::max_iov) < op.count - index
                         ? static_cast<std::uint32_t>(detail::max_iov)
                         : op.count - index;
        }
        op.result = receive_result::ok;
        return detail::io_status::done;
    }

    // Waits until no other thread is dispatching this socket.
    void wait_dispatch_idle() noexcept
    {
        if (detail::dispatching_on_this_thread(this)) {
            return;
        }
        std::uint32_t c = dispatch_.fetch_or(close_wait, std::memory_order_acq_rel) | close_wait;
        while ((c & running) != 0) {
            dispatch_.wait(c, std::memory_order_acquire);
            c = dispatch_.load(std::memory_order_acquire);
        }
    }

    engine_type* engine_ = nullptr;
    custom_transport transport_{};
    owner_type owner_{};
    int fd_ = -1;
    bool opened_ = false;
    bool send_poisoned_ = false; // guarded by write_.mu
    // Guarded by read_.mu. False once a receive call found the socket drained
    // (EAGAIN, or a short read from the kernel); true again at the next edge.
    // While false, a receive queues without a call that could only fail:
    // edge-triggered epoll reports whatever arrives after the drain.
    bool maybe_readable_ = true;
    // Guarded by read_.mu. A hang-up or error was reported: the end of stream
    // (or the error) stays readable without a further edge, so a short read
    // no longer means drained.
    bool read_final_ = false;
    std::atomic<socket_state> state_{socket_state::created};
    std::atomic<std::uint32_t> dispatch_{0};
    std::atomic<bool> kick_pending_{false};
    kick_item kick_item_{};
    side read_;
    side write_;
};

} // namespace asock::linux_epoll
