// asock/detail/readiness_core.hpp: the socket core of readiness backends
// (epoll today): try the call, queue on EAGAIN, pump the queues on events.
//
// A backend supplies only a small policy `Io` (see readiness_io below; the
// epoll one is include/asock/linux/epoll_socket_core.hpp): how to register a
// descriptor for edge-triggered readiness, how to move bytes between a
// descriptor and a list of buffers, and what is ready right now. Everything
// else is here, once: the spec's state machine, full duplex, ordering,
// cancellation, close and destroy from inside callbacks.
//
// Design (see docs/design.md, "The readiness core"):
// - The socket is registered once, at open, edge-triggered for in, out and
//   peer hang-up, and unregistered at close. Nothing is (re)armed per operation.
// - Each direction has its own lock and FIFO queue, so a pending receive and a
//   pending send never touch each other's state (full duplex).
// - An operation tries its system call at once when its queue is empty and only
//   queues itself after EAGAIN. A send queued behind others is not tried before
//   them, and the write lock is held across each system call, so the bytes of
//   concurrent sends never interleave.
// - The policy places each socket when it registers it (Io::arm chooses where
//   its events are handled; epoll: one of the engine's loops, one thread),
//   and every item the core posts goes there (Io::post, core.post), so a
//   socket's callbacks and resumptions run where its events do.
// - Events are handled by at most one engine thread per socket at a time (the
//   RUNNING bit of `dispatch_`); events arriving meanwhile are folded into the
//   running dispatch. Completion hooks run with no lock held, so a callback or
//   resumed coroutine may call anything on its own socket, close included.
// - A core is pooled by its engine and never freed while the engine lives, and
//   is reused by the next socket. Events name it by (slot id, generation), not
//   by address; every open starts a new generation, kept in the upper half of
//   the dispatch word, so an event harvested for an earlier socket of the same
//   core (by another thread, or earlier in the same batch) is recognised and
//   dropped, even after the core was reused.
// - Nothing of a socket runs after its destroy (or close) returns: a destroy
//   or close called from inside one of the socket's callbacks first delivers
//   the other finished operations that this thread holds for it (delivery
//   frames, detail/delivery.hpp), and waits for completions that a stop
//   request on another thread is delivering.
#pragma once

#include <asock/detail/delivery.hpp>
#include <asock/detail/operation.hpp>
#include <asock/detail/socket_lifecycle.hpp>
#include <asock/detail/word_mutex.hpp>
#include <asock/results.hpp>
#include <asock/transport.hpp>

#include <atomic>
#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace asock::detail {

namespace readiness {

/// Readiness bits, as the policy reports them (readiness_now, and the
/// engine's events through on_events).
inline constexpr std::uint32_t in = 1u << 0;
inline constexpr std::uint32_t out = 1u << 1;
inline constexpr std::uint32_t err = 1u << 2;
inline constexpr std::uint32_t hup = 1u << 3;   ///< both directions hung up
inline constexpr std::uint32_t rdhup = 1u << 4; ///< the peer shut down its sending side

enum class io_status : std::uint8_t { done, would_block, failed };

/// What a policy's receive_some can tell about the bytes left behind its
/// call: `none`: nothing was left to read when the call returned, so anything
/// arriving later raises a new edge (and no end of stream was pending);
/// `more`: something is left (bytes, or the end of the stream); `unknown`:
/// the call cannot say (a short read from the kernel still means `none`).
enum class rest : std::uint8_t { unknown, none, more };

/// Points in the core where a test's policy may run code of its own
/// (`static void schedule_point(readiness::schedule_point)`), to force an
/// interleaving that chance would hit once in thousands of runs. A real
/// policy has no such member; the calls then compile to nothing.
enum class schedule_point : std::uint8_t {
    close_wait_marked, ///< a closer marked the dispatch word and is about to wait for a running dispatch
    dispatch_started,  ///< a thread took the dispatch of a socket, before it handles the events
};

template <class Io>
inline void at_schedule_point(schedule_point p) noexcept
{
    if constexpr (requires { Io::schedule_point(p); }) {
        Io::schedule_point(p);
    }
}

} // namespace readiness

/// What a readiness backend supplies: a policy class with only static members.
/// Calls that move bytes answer like the POSIX calls: the count moved, or -1
/// with errno set (EAGAIN / EWOULDBLOCK: nothing can move now; EINTR: try
/// again; anything else: the direction failed).
template <class Io>
concept readiness_io = requires(typename Io::engine_type& engine, int fd, std::uint64_t token,
                                const const_buffer* out, mutable_buffer* in, std::uint32_t count,
                                std::uint32_t offset, std::size_t& asked, std::uint32_t& covered,
                                bool hinted, readiness::rest& left, notify_io_type type, work_item* item,
                                typename Io::placement& place) {
    typename Io::engine_type;
    /// Where in the engine a socket is served (epoll: the index of one of the
    /// engine's loops). Default-constructed for a core never armed; set by
    /// arm, and kept after disarm.
    typename Io::placement;
    engine.post(item);
    /// Whether the native path can serve `fd` (a socket, not a pipe or file).
    { Io::is_socket(fd) } -> std::same_as<bool>;
    /// Registers `fd` once for edge-triggered in, out and peer hang-up; its
    /// events reach the core through on_events with this token, on the
    /// thread(s) of the placement arm chooses and stores in `place`. 0: done.
    { Io::arm(engine, fd, token, place) } -> std::same_as<int>;
    Io::disarm(engine, fd, place);
    /// Runs `item` later where the socket's events are handled (every post
    /// of the core goes through here, so a socket's callbacks and
    /// resumptions stay on its placement's thread).
    Io::post(engine, place, item);
    /// Readiness of `fd` now, for a readiness wait of `type` (readiness bits).
    { Io::readiness_now(fd, type) } -> std::same_as<std::uint32_t>;
    /// Sends from out[0] + offset onwards, as many buffers as one call takes;
    /// `asked` is set to the bytes offered.
    { Io::send_some(fd, out, count, offset, asked) } -> std::same_as<long>;
    /// Receives into in[0..count), as many buffers as one call takes;
    /// `covered` is set to how many buffers were offered, `asked` to their
    /// bytes. With `hinted` (enable_receive_hint succeeded for `fd`) the call
    /// also reports what it left behind in `left`; otherwise `left` is unknown.
    { Io::receive_some(fd, in, count, hinted, covered, asked, left) } -> std::same_as<long>;
    /// Asks the OS to report, with each receive, whether bytes are left
    /// (Linux: TCP_INQ). False: not available for `fd`; receives stay unhinted.
    { Io::enable_receive_hint(fd) } -> std::same_as<bool>;
    /// Ends the sending direction of `fd` (a FIN after the bytes already
    /// handed over); receiving goes on. 0, or -1 with errno set.
    { Io::shutdown_send(fd) } -> std::same_as<int>;
};

template <class Io>
class readiness_core {
public:
    using engine_type = typename Io::engine_type;
    using native_handle_type = int;
    using owner_type = basic_handle_owner<int>;

    readiness_core() noexcept = default;
    readiness_core(const readiness_core&) = delete;
    readiness_core& operator=(const readiness_core&) = delete;

    // ---- lifecycle, called by async_socket -------------------------------

    /// Binds a pooled core to its engine and transport (the spec's create).
    void attach(engine_type* engine, const custom_transport& transport) noexcept
    {
        engine_ = engine;
        transport_ = transport;
    }

    /// The spec's open: OPENING, register for readiness once, OPEN.
    open_result open(int fd, const owner_type& owner) noexcept
    {
        if (!lifecycle_.begin_open()) {
            return open_result::error; // OPEN, OPENING, CLOSING or CLOSED: not (re)openable
        }
        {
            // Before the registration: its first edge may be dispatched at once.
            std::lock_guard lk(read_.mu);
            maybe_readable_ = true; // unknown: the first receive tries the call
            read_final_ = false;
            receive_hint_ = hint_state::untried;
        }
        // A new generation: events harvested for the previous socket of this
        // core carry the old one and are dropped from now on. Pending event
        // bits, a waiting closer's mark and a hand-over mark belong to that
        // socket too; RUNNING stays (this may run inside the previous
        // socket's dispatch, which then goes on serving this one).
        std::uint64_t word = dispatch_.load(std::memory_order_relaxed);
        std::uint64_t next;
        do {
            next = (static_cast<std::uint64_t>(generation(word) + 1) << 32) | (word & running);
        } while (!dispatch_.compare_exchange_weak(word, next, std::memory_order_acq_rel, std::memory_order_relaxed));
        const std::uint64_t token = (next & ~low_bits) | pool_id;
        // The kernel path needs a socket: a pipe or a file would be accepted
        // by epoll and fail only at the first send or receive. A custom
        // transport decides what its descriptor is (epoll must accept it).
        const bool usable = fd >= 0 && (transport_.is_set() || Io::is_socket(fd));
        if (!usable || Io::arm(*engine_, fd, token, placement_) != 0) {
            set_state(socket_state::created);
            return open_result::error;
        }
        fd_ = fd;
        owner_ = owner;
        opened_ = true;
        sends_.reset();
        // A custom transport's sends are its own business: its write side
        // is always looked at. (No send of this socket has started yet.)
        write_interest_.store(transport_.is_set(), std::memory_order_relaxed);
        set_state(socket_state::open);
        return open_result::ok;
    }

    /// The spec's close: CLOSING; every queued operation completes ABANDONED
    /// exactly once before this returns; the handle is disconnected; CLOSED.
    void close() noexcept
    {
        if (!lifecycle_.begin_close()) {
            return;
        }

        // Any send/receive call that saw OPEN holds the direction lock until it
        // has queued its operation, so after these two sections none can add more.
        op_list abandoned;
        op_list finished; // results already set, callbacks not yet delivered
        // Called from a callback of this socket: the finished operations this
        // thread's dispatch (or cancel) has not delivered yet go first; they
        // too must complete before close returns.
        detail::take_pending_here(this, finished);
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
        Io::disarm(*engine_, fd_, placement_);
        // A dispatch running on another thread may hold operations it already
        // finished; let it deliver them before this close returns. So may a
        // stop request, or a send that completed inside its start call on
        // another thread (its callback is about to run there).
        wait_dispatch_idle();
        wait_counted_deliveries();
        if (owner_.disconnect != nullptr) {
            owner_.disconnect(owner_.context, fd_);
        }
        for (operation* op = abandoned.front(); op != nullptr; op = static_cast<operation*>(op->next)) {
            op->kind->set_abandoned(*op);
        }
        // The state stays CLOSING while the completions run, so a destroy on
        // another thread waits until they are all delivered (11_020). A
        // completion on this thread may destroy the socket: detach() then
        // delivers the rest of `finished` itself, marks the frame, and does
        // not wait; `this` is not touched again here.
        finished.splice_back(abandoned);
        bool destroyed = false;
        {
            detail::frame_scope scope(this, detail::delivery_frame::kind::close);
            scope.frame.pending = &finished;
            detail::deliver(finished, completion_mode::foreign);
            destroyed = scope.frame.destroyed;
        }
        if (!destroyed) {
            set_state(socket_state::closed);
        }
    }

    /// The spec's destroy, minus freeing: waits out OPENING / CLOSING, closes
    /// implicitly, destroys the handle, and readies the core for reuse.
    void detach() noexcept
    {
        // Destroyed from a completion that this thread's close() is delivering:
        // that close is past every use of the socket but its final state, which
        // the mark tells it to skip. Do not wait for it.
        const bool closing_here = detail::mark_destroyed_if_closing_here(this);
        // Destroyed from a completion this thread is delivering (a dispatch, a
        // close, a cancel): the other finished operations those deliveries
        // still hold for this socket complete now, never after destroy returns.
        asock::detail::deliver_pending_here(this);
        // This thread is inside a counted delivery of this socket (a callback
        // of an inline send, a cancel's completion): it has nothing more to
        // deliver for it, so a close or destroy on another thread need not wait
        // for it, and must not (it would wait for this destroy, which waits
        // for that close).
        release_counted_frames_here();
        for (;;) {
            const auto s = lifecycle_.load();
            if (s == socket_state::open) {
                close(); // may lose the race to a close on another thread: then wait for that one
                continue;
            }
            if ((s != socket_state::opening && s != socket_state::closing) || closing_here) {
                break;
            }
            if (s == socket_state::closing && detail::in_frame(this, detail::delivery_frame::kind::dispatch)) {
                // A close() on another thread waits for this dispatch, and this
                // destroy waits for that close. This dispatch has nothing left
                // to deliver for the socket (taken above): let the close go on.
                release_dispatch_to_closer();
            }
            lifecycle_.wait_while(s);
        }
        if (opened_ && owner_.destroy != nullptr) {
            owner_.destroy(owner_.context, fd_);
        }
        wait_dispatch_idle();
        // A stop request or an inline send on another thread may be
        // delivering a completion of this socket right now: it must not
        // outlive the destroy.
        wait_counted_deliveries();
        fd_ = -1;
        owner_ = {};
        transport_ = {};
        opened_ = false;
        set_state(socket_state::created);
    }

    socket_state state() const noexcept { return lifecycle_.load(); }
    int native_handle() const noexcept { return fd_; }
    engine_type& engine() const noexcept { return *engine_; }

    /// Runs `item` later where this socket's events are handled (its
    /// placement: on epoll, its loop's thread). An awaiter completed by a
    /// close or a stop request on another thread resumes through this.
    void post(work_item* item) noexcept { Io::post(*engine_, placement_, item); }

    /// Where the engine serves this socket (set at open; kept after close).
    typename Io::placement placement() const noexcept { return placement_; }

    // ---- operations --------------------------------------------------------

    /// Starts a send. On ok, `done` says whether it already finished (result
    /// set, hook not called: the caller completes it); otherwise the hook will
    /// be called exactly once later. On error / not_open nothing was queued.
    send_sync_result start_send(send_op& op, bool& done) noexcept
    {
        std::lock_guard lk(write_.mu);
        return start_send_locked(op, done);
    }

    /// start_send for a callback-form send: when it finishes inside this call
    /// (`done`), the caller must deliver its callback through
    /// deliver_inline_send(), which a close or destroy on another thread waits
    /// for (counted while the lock is held, so no close can slip in between).
    send_sync_result start_send_for_callback(send_op& op, bool& done) noexcept
    {
        std::lock_guard lk(write_.mu);
        const send_sync_result r = start_send_locked(op, done);
        if (r == send_sync_result::ok && done) {
            deliveries_.fetch_add(1, std::memory_order_acq_rel);
        }
        return r;
    }

    /// Delivers the callback of a send that start_send_for_callback finished
    /// inline: on this thread when `now`, else through post_completion.
    void deliver_inline_send(send_op& op, bool now) noexcept
    {
        if (now) {
            detail::frame_scope scope(this, detail::delivery_frame::kind::inline_send);
            op.complete(&op, completion_mode::foreign);
            end_counted_delivery(scope.frame);
        } else {
            post_completion(op); // queued for an engine thread (or delivered by a close that came first)
            deliveries_.fetch_sub(1, std::memory_order_acq_rel);
            deliveries_.notify_all();
        }
    }

private:
    send_sync_result start_send_locked(send_op& op, bool& done) noexcept
    {
        if (!lifecycle_.is_open()) {
            return send_sync_result::not_open;
        }
        if (asock::detail::finished_by_early_stop(op, done)) {
            return send_sync_result::ok;
        }
        if (sends_.shut()) {
            return send_sync_result::not_open; // shutdown_send closed the direction
        }
        if (sends_.failed()) {
            return sends_.rejection(); // a torn send came before (11_059 after a reset)
        }
        if (!write_.ops.empty()) {
            write_.ops.push_back(&op); // keep order: never overtake a queued send
            return send_sync_result::ok;
        }
        int err = 0;
        const std::uint32_t skips = write_skips_.load(std::memory_order_acquire); // before the call: see write_interest_
        // At most two rounds: the second only when the first would block
        // and publishing the interest found a skip since (the edge of the
        // space freed since may have been skipped: look again). The
        // interest is set then, so there is no third. One call site, so
        // that try_send is inlined once here.
        readiness::io_status st;
        do {
            st = try_send(op, err);
        } while (st == readiness::io_status::would_block && !write_interest_.load(std::memory_order_relaxed) &&
                 publish_write_interest(skips));
        switch (st) {
        case readiness::io_status::done:
            op.result = send_result::ok;
            done = true;
            return send_sync_result::ok;
        case readiness::io_status::would_block:
            write_.ops.push_back(&op);
            return send_sync_result::ok;
        case readiness::io_status::failed:
            break;
        }
        if (op.sent > 0 || sends_.failed()) {
            // Part of this send is on the wire (or the transport over-reported
            // and nobody knows what is): the operation was accepted, and it
            // completes through its callback; the send direction has failed
            // for good, so no later send appends to a truncated message.
            // The connection-gone errors of 11_059 read as abandoned here.
            op.result = err == ECONNRESET || err == ENOTCONN || err == EPIPE ? send_result::abandoned
                                                                             : send_result::error;
            sends_.fail(op.result);
            done = true;
            return send_sync_result::ok;
        }
        if (err == ECONNRESET || err == ENOTCONN || err == EPIPE) {
            return send_sync_result::not_open;
        }
        return send_sync_result::error;
    }

public:
    /// Half-close (async_socket::shutdown_send): no send is accepted from
    /// now on, and the FIN goes now when no send is queued, else from the
    /// dispatch that completes the last queued send, provided every queued
    /// send completed ok. The shutdown call is made under the write lock, as
    /// every send call is: a close() cannot disconnect the descriptor under
    /// it, and it cannot pass a send's bytes.
    shutdown_result shutdown_send() noexcept
    {
        std::lock_guard lk(write_.mu);
        if (!lifecycle_.is_open()) {
            return shutdown_result::not_open;
        }
        if (transport_.is_set()) {
            return shutdown_result::unsupported; // a custom transport has no FIN to send
        }
        switch (sends_.plan_shutdown(!write_.ops.empty())) {
        case send_direction::fin_plan::already:
        case send_direction::fin_plan::deferred: return shutdown_result::ok;
        case send_direction::fin_plan::refused: return shutdown_result::error;
        case send_direction::fin_plan::send_now: break;
        }
        return fin_now() ? shutdown_result::ok : shutdown_result::error;
    }

    /// Starts a receive. With allow_inline the receive may finish inside this
    /// call (`done` set, hook not called); without it the hook is always called
    /// later, on an engine thread, in the order receives were started.
    start_result start_receive(receive_op& op, bool allow_inline, bool& done) noexcept
    {
        std::unique_lock lk(read_.mu);
        if (!lifecycle_.is_open()) {
            return start_result::not_open;
        }
        if (asock::detail::finished_by_early_stop(op, done)) {
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
        if (!maybe_readable_ || try_receive(op, err) == readiness::io_status::would_block) {
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
        if (!lifecycle_.is_open()) {
            return start_result::not_open;
        }
        if (asock::detail::finished_by_early_stop(op, done)) {
            return start_result::started;
        }
        if (&sd == &write_ && !write_interest_.load(std::memory_order_relaxed)) {
            publish_write_interest(0); // before the look: see write_interest_
        }
        const std::uint32_t evs = Io::readiness_now(fd_, op.type);
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
        if (lifecycle_.is_open()) {
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
        op_list done; // sends behind a torn one
        op_list& queue = op.kind == &asock::detail::op_type_of<notify_op> ? sd.notifies : sd.ops;
        queue.unlink(&op);
        op.kind->set_cancelled(op);
        if (&queue == &write_.ops) {
            sends_.drop_fin(); // not all of this send went out: no FIN after it
        }
        if (&queue == &write_.ops && static_cast<send_op&>(op).sent > 0) {
            // Part of this send is on the wire; the rest of the stream would
            // follow a truncated message. Fail the direction.
            sends_.fail(send_result::error);
            done.splice_back(sd.ops);
            mark_taken(done);
        }
        // Sends failed behind a torn one are delivered like any finished
        // operation, by the next dispatch on an engine thread (or by a close),
        // not on the thread that requested the stop.
        for (operation* p = done.front(); p != nullptr; p = static_cast<operation*>(p->next)) {
            static_cast<send_op*>(p)->result = send_result::error;
        }
        const bool kick_needed = !done.empty();
        sd.finished.splice_back(done);
        // Counted while the lock is held: a close or destroy that runs after
        // this point no longer finds `op` queued and waits for this delivery.
        deliveries_.fetch_add(1, std::memory_order_acq_rel);
        lk.unlock();
        if (kick_needed) {
            kick();
        }
        detail::frame_scope scope(this, detail::delivery_frame::kind::cancel);
        op.complete(&op, completion_mode::foreign);
        end_counted_delivery(scope.frame);
    }

    // ---- engine side ---------------------------------------------------------

    /// Called by the engine for each event naming this core (readiness bits),
    /// with the generation the event's token carried.
    void on_events(std::uint32_t bits, std::uint32_t gen) noexcept { dispatch(bits, &gen); }

    /// Pool link, used by the engine only.
    readiness_core* next_free = nullptr;
    /// Slot id in the engine's pool (set by the pool), the low half of every
    /// event token of this core.
    std::uint32_t pool_id = 0;

private:
    static constexpr std::uint32_t ev_in = readiness::in;
    static constexpr std::uint32_t ev_out = readiness::out;
    static constexpr std::uint32_t ev_err = readiness::err;
    static constexpr std::uint32_t ev_hup = readiness::hup;
    static constexpr std::uint32_t ev_rdhup = readiness::rdhup;
    static constexpr std::uint32_t ev_kick = 1u << 5; // "pump the receive queue", posted by start_receive
    static constexpr std::uint32_t ev_mask = (1u << 6) - 1;
    // The dispatch word: event bits and these flags in the low half, the
    // generation of the socket that owns the core in the high half.
    static constexpr std::uint64_t released = 1u << 29;   // the running dispatch delivers nothing more: a closer need not wait
    static constexpr std::uint64_t close_wait = 1u << 30; // a close / destroy waits for the running dispatch to end
    static constexpr std::uint64_t running = 1u << 31;
    static constexpr std::uint64_t low_bits = 0xFFFFFFFFu;
    static std::uint32_t generation(std::uint64_t word) noexcept { return static_cast<std::uint32_t>(word >> 32); }

    struct side {
        asock::detail::word_mutex mu;
        op_list ops;      // sends or receives, FIFO
        op_list notifies; // notify_io_async waiters of this direction
        op_list finished; // finished, callback to be delivered by the next kick dispatch (or close)
    };

    side& side_for(const operation& op) noexcept
    {
        return op.direction == op_direction::write ? write_ : read_;
    }

    void set_state(socket_state s) noexcept { lifecycle_.set(s); }

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

    using kick_item = detail::kick_item<readiness_core>;

    static void run_kick(work_item* w) noexcept
    {
        readiness_core* self = static_cast<kick_item*>(w)->self;
        self->kick_pending_.store(false, std::memory_order_release);
        // No generation check: a kick only pumps the queues, which is harmless
        // for a later socket of this core, and may stand for a kick that
        // socket's kick() folded into this one.
        self->dispatch(ev_kick, nullptr);
    }

    void kick() noexcept
    {
        if (!kick_pending_.exchange(true, std::memory_order_acq_rel)) {
            kick_item_.run = &run_kick;
            kick_item_.self = this;
            Io::post(*engine_, placement_, &kick_item_);
        }
    }

    // Serialises event handling per socket. The first thread to set RUNNING
    // handles the events; others just OR their bits in and leave. Event bits
    // are cleared in the word when taken, so an edge that repeats a bit being
    // handled is never lost. Uncontended: one CAS to take, one to release.
    // `gen`, for epoll events, is the generation the event was registered
    // with: an event of an earlier socket of this core is dropped, and the
    // check is part of every CAS, so it cannot slip into a later socket's
    // running dispatch either.
    void dispatch(std::uint32_t bits, const std::uint32_t* gen) noexcept
    {
        std::uint64_t cur = dispatch_.load(std::memory_order_relaxed);
        std::uint32_t evs = 0;
        for (;;) {
            if (gen != nullptr && generation(cur) != *gen) {
                return; // harvested for an earlier socket of this core
            }
            if ((cur & running) != 0) {
                if (dispatch_.compare_exchange_weak(cur, cur | bits, std::memory_order_acq_rel,
                                                    std::memory_order_relaxed)) {
                    return; // the running dispatch will see our bits
                }
            } else if (dispatch_.compare_exchange_weak(cur, (cur & ~static_cast<std::uint64_t>(ev_mask)) | running,
                                                       std::memory_order_acq_rel, std::memory_order_relaxed)) {
                evs = bits | (static_cast<std::uint32_t>(cur) & ev_mask);
                break;
            }
        }
        detail::frame_scope scope(this, detail::delivery_frame::kind::dispatch);
        readiness::at_schedule_point<Io>(readiness::schedule_point::dispatch_started);
        for (;;) {
            if (evs != 0) {
                process(evs, scope.frame);
            }
            // New event bits arrived: take them, keep RUNNING. None: leave,
            // clearing RUNNING and the closer's marks, and wake a closer.
            std::uint64_t c = dispatch_.load(std::memory_order_acquire);
            for (;;) {
                if ((c & ev_mask) != 0) {
                    if (dispatch_.compare_exchange_weak(c, c & ~static_cast<std::uint64_t>(ev_mask),
                                                        std::memory_order_acq_rel, std::memory_order_acquire)) {
                        evs = static_cast<std::uint32_t>(c) & ev_mask;
                        break;
                    }
                } else if (dispatch_.compare_exchange_weak(c, c & ~low_bits, std::memory_order_acq_rel,
                                                           std::memory_order_acquire)) {
                    if ((c & close_wait) != 0) {
                        dispatch_.notify_all(); // wake close() / destroy
                    }
                    return;
                }
            }
        }
    }

    void process(std::uint32_t evs, detail::delivery_frame& frame) noexcept
    {
        // Decided before the read side is looked at (it used to be after):
        // the skip and its proof (write_interest_) concern the write side
        // alone, and nothing of the read side below changes them.
        const bool write_side = (evs & (ev_out | ev_err | ev_hup | ev_rdhup)) != 0 && write_side_needed();
        if ((evs & ~(ev_in | ev_out)) == 0 && !write_side && readable_edge(evs)) {
            return;
        }
        process_all(evs, write_side, frame);
    }

    // The general pass: every kind of event, any number of operations.
    // Out of line, so that the common event (readable_edge) does not pay
    // for its registers.
    [[gnu::noinline]] void process_all(std::uint32_t evs, bool write_side, detail::delivery_frame& frame) noexcept
    {
        op_list done;
        frame.pending = &done;
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
            if (lifecycle_.is_open()) {
                pump_receives(done);
                if ((evs & ev_kick) != evs) {
                    complete_ready_notifies(read_.notifies, evs, done);
                }
            }
        }
        if (write_side) {
            std::lock_guard lk(write_.mu);
            mark_taken(write_.finished);
            done.splice_back(write_.finished); // earlier sends' callbacks go first
            if (lifecycle_.is_open()) {
                if ((evs & ev_rdhup) != evs) {
                    pump_sends(done);
                }
                complete_ready_notifies(write_.notifies, evs, done);
                if (write_.ops.empty() && write_.notifies.empty() && !transport_.is_set()) {
                    // Nothing waits for a write edge any more (a connect's
                    // out-notify, a send that had to wait): later dispatches
                    // may skip the write side again. Under the write lock, as
                    // every publication is: a send or notify that is about to
                    // wait either ran before (and is queued, so this is not
                    // reached) or runs after, finds the interest clear and
                    // publishes it. Only while OPEN: a dispatch of an event
                    // harvested for the previous socket of this core may run
                    // while the next one is attached (transport_ written).
                    write_interest_.store(false, std::memory_order_relaxed);
                }
            }
        }
        // A hook may close or destroy this socket: that takes (and delivers)
        // the rest of `done` through the frame before it returns.
        detail::deliver(done, completion_mode::engine_thread);
        frame.pending = nullptr;
    }

    // The common event, without the general pass of process(): an edge of
    // incoming data (with the writable report that edge-triggered epoll adds
    // for a writable socket) whose write side is skipped, while at most one
    // receive and no notify wait on the read side. It does what process()
    // would do for it, minus the list of finished operations: the one
    // receive it may finish is delivered straight from here, and a close or
    // destroy from inside its hook finds nothing else this dispatch holds
    // (the frame's `pending` stays null). False, with nothing changed: the
    // event needs the general pass.
    bool readable_edge(std::uint32_t evs) noexcept
    {
        if ((evs & ev_in) == 0) {
            return true; // writable only, and the write side is skipped: nothing to do
        }
        operation* op;
        {
            std::lock_guard lk(read_.mu);
            op = read_.ops.front();
            if ((op != nullptr && op->next != nullptr) || !read_.notifies.empty() || !lifecycle_.is_open()) {
                return false;
            }
            maybe_readable_ = true; // an edge: data to read
            if (op == nullptr) {
                return true; // nobody waits: the next receive tries the call
            }
            int err = 0;
            if (try_receive(static_cast<receive_op&>(*op), err) == readiness::io_status::would_block) {
                return true;
            }
            // Taken under the lock, as hand_over() does: a stop request
            // from now on finds the receive not queued and leaves it alone.
            read_.ops.pop_front();
        }
        // Where a dispatch completes a receive on the engine thread (as
        // deliver() does for the general pass): the hook resumes the awaiter.
        op->complete(op, completion_mode::engine_thread);
        return true;
    }

    // Whether a write-side event needs the write side looked at: not while no
    // send or out-notify of this socket ever had to wait (write_interest_).
    // Edge-triggered epoll reports EPOLLOUT with every event of a writable
    // socket, so this spares a request/response socket the write lock and
    // the pumps at each incoming message. See write_interest_ for why an
    // edge is never lost by it.
    bool write_side_needed() noexcept
    {
        if (write_interest_.load(std::memory_order_seq_cst)) {
            return true;
        }
        write_skips_.fetch_add(1, std::memory_order_seq_cst); // announce the skip, then look again
        return write_interest_.load(std::memory_order_seq_cst);
    }

    // Before a send or out-notify can wait for a write edge (write lock
    // held): publishes the interest. `skips_before` is write_skips_
    // as read before the system call that found the socket not writable:
    // when it changed, a dispatch may have skipped, after that call, the
    // edge this operation waits for, and the caller looks again.
    bool publish_write_interest(std::uint32_t skips_before) noexcept
    {
        write_interest_.store(true, std::memory_order_seq_cst);
        return write_skips_.load(std::memory_order_seq_cst) != skips_before;
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
            if (try_receive(static_cast<receive_op&>(*op), err) == readiness::io_status::would_block) {
                break;
            }
            read_.ops.pop_front(); // `op`
            hand_over(done, op);
        }
    }

    void pump_sends(op_list& done) noexcept
    {
        while (operation* op = write_.ops.front()) {
            auto& s = static_cast<send_op&>(*op);
            int err = 0;
            if (sends_.failed()) {
                write_.ops.unlink(op);
                s.result = sends_.cause(); // behind a torn send: never sent
                hand_over(done, op);
                continue;
            }
            const auto st = try_send(s, err);
            if (st == readiness::io_status::would_block) {
                break;
            }
            write_.ops.pop_front(); // `op`
            s.result = st == readiness::io_status::done ? send_result::ok : send_failure_result(err);
            if (st == readiness::io_status::failed) {
                sends_.drop_fin(); // a send before the FIN failed: the FIN is not sent
                if (s.sent > 0) {
                    sends_.fail(s.result); // torn: no later send may follow the truncated bytes
                }
            }
            hand_over(done, op);
        }
        if (write_.ops.empty() && sends_.take_fin()) {
            fin_now(); // every send accepted before shutdown_send went out; a failure has no one to go to
        }
    }

    // The FIN: shutdown of the sending direction (write lock held, OPEN).
    bool fin_now() noexcept
    {
        int r;
        do {
            r = Io::shutdown_send(fd_);
        } while (r < 0 && errno == EINTR);
        return r == 0;
    }

    static bool would_block(int e) noexcept { return e == EAGAIN || e == EWOULDBLOCK; }

    // Spec 11_098 / 11_099: ECONNRESET abandons, anything else is an error.
    // EPIPE too abandons: it is how the kernel reports a reset whose
    // ECONNRESET a receive in the same dispatch already consumed.
    static send_result send_failure_result(int err) noexcept
    {
        return err == ECONNRESET || err == EPIPE ? send_result::abandoned : send_result::error;
    }

    // Moves bytes of `op` until it is complete, the transport would block, or
    // it fails (errno in `err`). Progress is kept in op.index / op.offset.
    [[gnu::always_inline]] readiness::io_status try_send(send_op& op, int& err) noexcept
    {
        while (op.sent < op.total) {
            long n;
            std::size_t asked = 0; // what this one call was offered
            if (transport_.on_send != nullptr) {
                const const_buffer& b = op.buffers[op.index];
                asked = b.size - op.offset;
                n = transport_.on_send(transport_.on_send_context, static_cast<const char*>(b.data) + op.offset, asked);
            } else {
                n = Io::send_some(fd_, op.buffers + op.index, op.count - op.index, op.offset, asked);
            }
            if (n < 0) {
                const int e = errno;
                if (e == EINTR) {
                    continue;
                }
                if (would_block(e)) {
                    return readiness::io_status::would_block;
                }
                err = e;
                return readiness::io_status::failed;
            }
            if (n == 0 || static_cast<unsigned long>(n) > asked) {
                // A transport that moves nothing, or claims more than this call
                // offered, is broken. After an over-report nobody knows which
                // bytes are on the wire: the send direction fails for good.
                if (n != 0) {
                    sends_.fail(send_result::error);
                }
                err = EIO;
                return readiness::io_status::failed;
            }
            op.advance(static_cast<std::uint32_t>(n));
        }
        return readiness::io_status::done;
    }

    // Fills op's buffers in order. Completes (done) once at least one byte
    // arrived and no more is available now, or when all buffers are full; bytes
    // that arrived before a hang-up or an error are always delivered first.
    [[gnu::always_inline]] readiness::io_status try_receive(receive_op& op, int& err) noexcept
    {
        std::uint32_t index = 0;
        std::uint32_t offset = 0;
        while (index < op.count) {
            long n;
            std::uint32_t asked;
            std::uint32_t covered = 1; // buffers this call was offered
            readiness::rest left = readiness::rest::unknown; // what the kernel call left behind
            if (transport_.on_recv != nullptr) {
                const mutable_buffer& b = op.buffers[index];
                asked = b.size - offset;
                n = transport_.on_recv(transport_.on_recv_context, static_cast<char*>(b.data) + offset, asked);
            } else {
                std::size_t bytes = 0;
                n = Io::receive_some(fd_, op.buffers + index, op.count - index, receive_hint_ == hint_state::on,
                                     covered, bytes, left);
                asked = static_cast<std::uint32_t>(bytes);
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
                    return readiness::io_status::would_block;
                }
                err = e;
                // Spec 11_090 / 11_095.
                op.result = e == ECONNRESET ? receive_result::abandoned : receive_result::error;
                return readiness::io_status::failed;
            }
            if (n == 0) {
                if (op.received > 0) {
                    break; // the hang-up is reported by the next receive
                }
                op.result = receive_result::abandoned; // spec 11_091
                return readiness::io_status::done;
            }
            if (static_cast<unsigned long>(n) > asked) {
                err = EIO;
                op.result = receive_result::error;
                return readiness::io_status::failed;
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
            const bool filled = static_cast<std::uint32_t>(n) == asked;
            if (left == readiness::rest::none || (left == readiness::rest::unknown && !filled)) {
                // The kernel had no more: a short read drains the socket, and
                // so does any read after which the kernel says nothing is left
                // (an exact fill included); anything arriving after it raises
                // a new edge, so the next receive waits for that edge instead
                // of making a call that could only fail with EAGAIN.
                // Not after a hang-up: the FIN behind the data raises no edge.
                maybe_readable_ = read_final_;
                break;
            }
            if (!filled) {
                break; // short, but bytes arrived meanwhile (left == more): the next receive tries
            }
            if (left == readiness::rest::unknown && receive_hint_ == hint_state::untried) {
                // Filled to the last byte without knowing what is left: the
                // next receive would have to try a call that may only fail.
                // Ask the kernel to say from now on (once per socket, and only
                // for sockets whose receives fill their buffers exactly).
                receive_hint_ = Io::enable_receive_hint(fd_) ? hint_state::on : hint_state::off;
            }
            index += covered;
        }
        op.result = receive_result::ok;
        return readiness::io_status::done;
    }

    // Waits until no other thread is dispatching this socket, or the one that
    // is has handed over (release_dispatch_to_closer: it holds nothing more
    // to deliver for this socket).
    void wait_dispatch_idle() noexcept
    {
        if (detail::in_frame(this, detail::delivery_frame::kind::dispatch)) {
            return;
        }
        for (;;) {
            // The mark is set anew before every wait: a dispatch that ends
            // clears it, so a dispatch that started after that one (another
            // thread's event or kick) would end without waking us if we
            // waited on a word without the mark.
            const std::uint64_t c = dispatch_.fetch_or(close_wait, std::memory_order_acq_rel) | close_wait;
            if ((c & running) == 0 || (c & released) != 0) {
                return;
            }
            readiness::at_schedule_point<Io>(readiness::schedule_point::close_wait_marked);
            dispatch_.wait(c, std::memory_order_acquire);
        }
    }

    static bool counted(const detail::delivery_frame& f) noexcept
    {
        return f.what == detail::delivery_frame::kind::cancel || f.what == detail::delivery_frame::kind::inline_send;
    }

    // Ends a counted delivery (unless a close / destroy inside it released it).
    // The core is pooled: touching the counter after a destroy that released
    // this delivery is harmless.
    void end_counted_delivery(detail::delivery_frame& f) noexcept
    {
        if (!f.released) {
            f.released = true;
            deliveries_.fetch_sub(1, std::memory_order_acq_rel);
            deliveries_.notify_all();
        }
    }

    void release_counted_frames_here() noexcept
    {
        asock::detail::for_each_frame(this, [&](detail::delivery_frame& f) {
            if (counted(f)) {
                end_counted_delivery(f);
            }
        });
    }

    // Waits until no other thread is in a counted delivery of this socket.
    // This thread's own (a close from inside one) are not waited for.
    void wait_counted_deliveries() noexcept
    {
        using k = detail::delivery_frame::kind;
        const std::uint32_t own = asock::detail::count_frames(this, k::cancel, true) +
                                  asock::detail::count_frames(this, k::inline_send, true);
        for (std::uint32_t c = deliveries_.load(std::memory_order_acquire); c > own;
             c = deliveries_.load(std::memory_order_acquire)) {
            deliveries_.wait(c, std::memory_order_acquire);
        }
    }

    // Called by the thread running this socket's dispatch, from a destroy
    // inside one of its callbacks, once it has delivered everything it held.
    void release_dispatch_to_closer() noexcept
    {
        dispatch_.fetch_or(released, std::memory_order_acq_rel);
        dispatch_.notify_all();
    }

    engine_type* engine_ = nullptr;
    // Written by Io::arm in open(), before the registration can deliver an
    // event; read by every post. A core reused by a later socket is placed
    // anew, so a kick the previous socket left queued (and the new one folds
    // into, kick_pending_) may run once on the previous socket's placement.
    typename Io::placement placement_{};
    custom_transport transport_{};
    owner_type owner_{};
    int fd_ = -1;
    bool opened_ = false;
    asock::detail::send_direction sends_; // guarded by write_.mu
    // Guarded by read_.mu. False once a receive call found the socket drained
    // (EAGAIN, a short read from the kernel, or a read after which the kernel
    // said nothing was left: readiness::rest::none); true again at the next edge.
    // While false, a receive queues without a call that could only fail:
    // edge-triggered epoll reports whatever arrives after the drain.
    bool maybe_readable_ = true;
    // Guarded by read_.mu. A hang-up or error was reported: the end of stream
    // (or the error) stays readable without a further edge, so a short read
    // no longer means drained.
    bool read_final_ = false;
    // Guarded by read_.mu. Whether kernel receives report what they left
    // behind (Io::enable_receive_hint, tried at the first exact fill).
    enum class hint_state : std::uint8_t { untried, on, off };
    hint_state receive_hint_ = hint_state::untried;
    asock::detail::socket_lifecycle lifecycle_;
    std::atomic<std::uint64_t> dispatch_{0}; // see `running` .. `generation`
    // Counted deliveries in progress: stop requests delivering a completion,
    // callback-form sends delivering their inline callback. Close and destroy
    // wait for those of other threads.
    std::atomic<std::uint32_t> deliveries_{0};
    std::atomic<bool> kick_pending_{false};
    // Set before any send or out-notify of this socket may wait for a write
    // edge, and cleared by a dispatch that finds nothing waiting on the
    // write side (both under the write lock); while it is clear, dispatches
    // skip the write side of their events (write_side_needed). No edge is
    // lost by that (A, B, F and G below are seq_cst):
    // - A dispatch that skips announced it first (write_skips_ + 1, A) and
    //   then found the interest clear (B). A send publishes the interest (F)
    //   after a call that would block (S) and then reads write_skips_ (G);
    //   it read write_skips_ also before S (C). B read clear, so B precedes
    //   F, and A precedes G: G sees A's increment. If C did not, the skip
    //   came after C, so its edge may be one S could not see: the send
    //   calls again and finds the space that edge announced (or queues, and
    //   every later dispatch sees the interest and takes the write lock). If
    //   C did see it, the skipped edge was harvested before S, and S found
    //   no room after it: the next room raises a new edge. (C is an
    //   acquire load and A a read-modify-write: the harvest happens before
    //   C, which is sequenced before S.)
    // - An out-notify publishes the interest before it looks (readiness_now,
    //   under the write lock): a dispatch that still found it clear
    //   harvested its edge before that look, which then sees the readiness.
    // - Anything queued on the write side (sends, notifies) got there
    //   through one of those two, and the finished list is delivered by the
    //   kick that whoever filled it posts.
    std::atomic<bool> write_interest_{false};
    std::atomic<std::uint32_t> write_skips_{0};
    kick_item kick_item_{};
    side read_;
    side write_;
};

} // namespace asock::detail
