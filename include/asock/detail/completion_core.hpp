// asock/detail/completion_core.hpp: the socket core of completion backends
// (the Windows threadpool IO, io_uring): hand the OS a call and the caller's
// buffers, be told later that the call is done.
//
// A backend supplies only a small policy `Io` (see completion_io below; the
// Windows one is include/asock/win32/threadpool_socket_core.hpp): how to
// register a socket with its completion source, how to issue a send or a
// receive for a batch of buffers on a direction's call record, how to cancel
// one call and poll a cancelled one without waiting, how to wait for the
// completion callbacks, and what its error codes mean. Everything else is
// here, once: the spec's state machine, the queues, settling, cancellation,
// close and destroy from inside callbacks. The comments name the Windows
// calls (WSASend, WSARecv, CancelIoEx, WSAGetOverlappedResult, OVERLAPPED)
// for the policy steps; see docs/design.md, "The completion core".
//
// Design (see docs/windows.md, "The backend"):
// - open() registers the socket with the completion source (Windows: its own
//   callback environment bound to the engine's PTP_POOL and one threadpool IO,
//   CreateThreadpoolIo), whose callback reaches on_call_complete for every
//   completion of the socket.
// - Sends are overlapped WSASend calls, receives overlapped WSARecv calls.
//   StartThreadpoolIo precedes each call; CancelThreadpoolIo follows a call
//   that fails at once with anything but WSA_IO_PENDING. A call that succeeds
//   at once still reports through the callback (the socket is not put in
//   skip-on-success mode), so every accepted operation completes there.
// - A send's or a receive's call uses the OVERLAPPED of its direction (`side`
//   of the core, with the byte count and the buffer batch the call was given):
//   each direction has at most one call outstanding. A call_op (Windows: an
//   overlapped_op, the TCP helpers' ConnectEx / AcceptEx; any number
//   outstanding) carries its own. The callback finds the call by comparing
//   the OVERLAPPED* it is given with the calls still outstanding (never by
//   reading through it: close() may have settled the call, and a call_op's
//   record may be gone).
//   The WSABUF array is built on the stack for each call (Winsock captures it
//   before the call returns).
// - Each direction has its own lock and FIFO, and at most one call outstanding:
//   the front of the queue. The next send or receive is issued from the
//   completion of the previous one, so sends never interleave and receives fill
//   in the order they were started, whatever threads start them; a receive and a
//   send are outstanding together (full duplex). Once part of a send is on the
//   wire and the rest never will be, the send direction fails for good.
// - Completed operations go to their direction's `done` list and are delivered
//   (hooks called, no lock held) by one thread at a time per direction, in
//   order, one at a time off that list: whatever a hook's close or destroy
//   finds still on it is delivered by that close, before it returns.
// - close() cancels the outstanding calls (CancelIoEx) and settles each one as
//   soon as the OS reports it finished (WSAGetOverlappedResult, not waiting),
//   unless its completion reaches the callback first. It never waits for a
//   pool thread before it has delivered every completion: its own thread may
//   be the pool's only one, and pool threads may be inside this socket's hooks
//   waiting for the close (a destroy there). Then, on a thread that is not one
//   of the engine's, it waits for the packets of the calls it settled, for the
//   IO's callbacks (WaitForThreadpoolIoCallbacks, FALSE), closes the IO,
//   destroys the environment and disconnects the handle before it returns. On
//   one of the engine's threads (a callback of this socket, or of any socket
//   of the engine) it cannot wait for callbacks: the last of those packets
//   closes the IO instead, on a pool thread, and the core and an engine
//   reference stay until then. Every operation completes before close()
//   returns, wherever it is called.
// - A destroy (detach) never returns before every operation of the socket has
//   completed, nor while a stop request on another thread is still
//   completing one. Called from a hook it lets go of the direction it was
//   delivering, so that a close on another thread does not wait for it.
// - Cores are pooled by their engine and never freed while it lives, so a
//   thread still leaving a callback after the socket was destroyed touches
//   valid memory.
#pragma once

#include <asock/detail/delivery.hpp>
#include <asock/detail/operation.hpp>
#include <asock/detail/socket_lifecycle.hpp>
#include <asock/results.hpp>
#include <asock/transport.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <utility>

namespace asock::detail {

template <class Io>
class completion_core;

/// What a completion backend supplies to completion_core<Io>: static members
/// and types only (the Windows one: win32::threadpool_io).
///
/// Types: `engine_type` (with post(work_item*), pool of cores, inc_ref /
/// dec_ref, running_in_this_thread(), caller_runs_loop(), recycle_core() and
/// a `callback_scope` marking a thread as running one of its callbacks);
/// `handle_type` (SOCKET); `call_record` (the OS's per-call record,
/// OVERLAPPED: given to the OS by a call, from its start until its
/// completion, and compared by address to find the call a completion
/// reports); `status` and `byte_count` (a completion's error code and byte
/// count: ULONG, ULONG_PTR); `registration` (what register_socket sets up:
/// the threadpool IO and its callback environment); `call_op` (the record of
/// an `other`-direction call, any number outstanding: a notify_op with a
/// `call` (call_record), `io_result` and `bytes`, whose own issue function
/// Io::issue_call runs; Windows: overlapped_op, for ConnectEx / AcceptEx).
///
/// Optional members (io_uring has them, Windows not):
/// - `static void drive(engine_type&)`: the completions of calls reach
///   on_call_complete only when some thread collects them (io_uring's
///   completion queue), so close(), while it waits for the calls it
///   cancelled, calls it instead of pausing: it collects and dispatches the
///   completions waiting now (hooks are then never run on that thread:
///   engine_type::caller_runs_loop() is true inside it), or pauses briefly
///   when another thread is collecting them. Io::poll may then always say
///   "not finished".
/// - `static constexpr bool resumes_short_sends`: a call may send fewer
///   bytes than it was given and the rest is issued by another call (a
///   stream socket's send); without it a short count fails the send.
template <class Io>
concept completion_io = requires(typename Io::engine_type& engine, typename Io::handle_type handle,
                                 typename Io::registration& reg, completion_core<Io>* core,
                                 typename Io::call_record& call, typename Io::call_op& other, const send_op& out,
                                 const receive_op& in, std::uint32_t first, std::uint32_t& asked,
                                 typename Io::status err, typename Io::status& err_out,
                                 typename Io::byte_count& bytes_out, int issue_error, work_item* item) {
    typename Io::engine_type;
    typename Io::handle_type;
    typename Io::call_record;
    typename Io::status;
    typename Io::byte_count;
    typename Io::registration;
    typename Io::call_op;
    engine.post(item);
    /// The handle of no socket (INVALID_SOCKET).
    { Io::invalid_handle } -> std::convertible_to<typename Io::handle_type>;
    /// The status of a call that succeeded (NO_ERROR).
    { Io::success } -> std::convertible_to<typename Io::status>;
    /// Most buffers given to one call; longer lists take several calls.
    { Io::max_batch } -> std::convertible_to<std::uint32_t>;
    /// Whether the native path can serve `handle` (a socket, not a pipe or file).
    { Io::is_socket(handle) } -> std::same_as<bool>;
    /// Registers `handle` with the completion source; every completion of
    /// its calls then reaches completion_core<Io>::on_call_complete(core, ...)
    /// on an engine thread. False: nothing is left registered.
    { Io::register_socket(engine, handle, reg, core) } -> std::same_as<bool>;
    /// Waits for the registration's completion callbacks to return, without
    /// cancelling pending ones (WaitForThreadpoolIoCallbacks, FALSE).
    Io::wait_callbacks(reg);
    /// Undoes register_socket (CloseThreadpoolIo, then the environment).
    Io::unregister_socket(reg);
    /// Issue one call on `call` (reset first) for a send's buffers from
    /// out.index / out.offset on, or a receive's from `first` on, at most
    /// max_batch of them; `asked` is set to the bytes offered. 0: the call
    /// is outstanding or done at once (its completion comes either way);
    /// else the error it failed with at once (nothing outstanding then).
    { Io::issue_send(handle, reg, call, out, asked) } -> std::same_as<int>;
    { Io::issue_receive(handle, reg, call, in, first, asked) } -> std::same_as<int>;
    /// The same for a call_op, on its own `call`, through its own issue function.
    { Io::issue_call(handle, reg, other) } -> std::same_as<int>;
    /// Ends the sending direction of `handle` (a FIN after the bytes of the
    /// completed sends; shutdown SD_SEND); receiving goes on. 0, or the
    /// error it failed with.
    { Io::shutdown_send(handle) } -> std::same_as<int>;
    /// Asks the OS to cancel one outstanding call (CancelIoEx). False: the
    /// OS found nothing to cancel.
    { Io::cancel(handle, &call) } -> std::same_as<bool>;
    /// Whether a call has finished, without waiting (WSAGetOverlappedResult,
    /// FALSE): true with its status and byte count.
    { Io::poll(handle, &call, err_out, bytes_out) } -> std::same_as<bool>;
    /// Whether bytes are waiting to be read now, asked without blocking (FIONREAD).
    { Io::bytes_waiting(handle) } -> std::same_as<bool>;
    /// Error classification. connection_gone: the peer reset or the
    /// connection dropped (a send failing so completes abandoned); aborted:
    /// the call was cancelled (ERROR_OPERATION_ABORTED); peer_gone: a receive
    /// failing so completes abandoned (42_001); reset: an issue error that
    /// means the connection was reset (WSAECONNRESET).
    { Io::connection_gone(err) } -> std::same_as<bool>;
    { Io::aborted(err) } -> std::same_as<bool>;
    { Io::peer_gone(err) } -> std::same_as<bool>;
    { Io::reset(issue_error) } -> std::same_as<bool>;
};

template <class Io>
class completion_core {
public:
    using engine_type = typename Io::engine_type;
    using native_handle_type = typename Io::handle_type;
    using owner_type = basic_handle_owner<native_handle_type>;
    using call_record = typename Io::call_record;
    using status = typename Io::status;
    using byte_count = typename Io::byte_count;
    using call_op = typename Io::call_op;

    completion_core() noexcept = default;
    completion_core(const completion_core&) = delete;
    completion_core& operator=(const completion_core&) = delete;

    // ---- lifecycle, called by async_socket -------------------------------

    /// Binds a pooled core to its engine (the spec's create). A custom
    /// transport is not supported by the completion model (on Windows, 04_001):
    /// such a core never opens.
    void attach(engine_type* engine, const custom_transport& transport) noexcept
    {
        engine_ = engine;
        custom_transport_ = transport.is_set();
    }

    /// The spec's open: OPENING, the socket registered with the completion
    /// source (Windows: a callback environment on the engine's pool and a
    /// threadpool IO on the socket), OPEN.
    open_result open(native_handle_type socket, const owner_type& owner) noexcept
    {
        if (!lifecycle_.begin_open()) {
            return open_result::error; // 01_015: OPEN or OPENING; CLOSED sockets are not reopenable either
        }
        // Not a socket (a pipe or file handle): refused now rather than at the
        // first WSASend / WSARecv, as on Linux.
        if (socket == Io::invalid_handle || custom_transport_ || !Io::is_socket(socket)) {
            set_state(socket_state::created); // 01_034
            return open_result::error;
        }
        if (!Io::register_socket(*engine_, socket, registration_, this)) {
            set_state(socket_state::created); // 01_039
            return open_result::error;
        }
        socket_ = socket;
        owner_ = owner;
        opened_ = true;
        sends_.reset();
        reset_seen_.store(false, std::memory_order_relaxed);
        pending_.store(0, std::memory_order_relaxed);
        set_state(socket_state::open); // 01_094
        return open_result::ok;
    }

    /// The spec's close: every operation completes before it returns. See the
    /// header comment for what it waits for, and where.
    void close() noexcept
    {
        if (!lifecycle_.begin_close()) { // 01_019
            return;                      // 01_022
        }
        closers_.fetch_add(1);
        {
            std::lock_guard lk(life_mu_);
            close_active_.store(true);
        }
        // The close may outlive the socket's own reference (a destroy from a
        // hook hands itself over to it) and, on an engine thread, even this
        // call: the engine, and so the core's memory, stay until it is done.
        engine_->inc_ref();

        // 01_020: a start that saw OPEN holds its direction's lock until its
        // call was issued, so after each section below nothing can be added.
        for (side* sd : sides()) {
            std::lock_guard lk(sd->mu);
            cancel_outstanding(*sd);
        }
        reap_outstanding(); // nothing is outstanding from here on
        op_list now;
        if (engine_->running_in_this_thread()) {
            close_on_engine_thread(now);
            return;
        }
        // Hooks being called on other threads (IO callbacks, kicks) finish
        // first, so that every completion is delivered in order. A hook that
        // destroys this socket has let go of its direction (detach).
        wait_for([&] { return deliverers_.load() == 0; });
        // The packets of the calls settled above come through pool threads.
        // While a destroy on some thread waits for this close (parked_), that
        // thread may be the pool's only one, or inside an IO callback of this
        // socket (WaitForThreadpoolIoCallbacks would wait for it): deliver
        // before waiting for the pool then.
        wait_for([&] { return (pending_.load() & count_mask) == 0 || parked_.load() != 0; });
        if ((pending_.load() & count_mask) == 0 && parked_.load() == 0) {
            // The spec's order: callbacks, IO, environment, handle, CLOSED,
            // then the completions.
            Io::wait_callbacks(registration_); // 01_040
            teardown_io();
            disconnect();
            set_state(socket_state::closed);
            collect_all(now);
            deliver_closed(now);
            finish_close(false);
            return;
        }
        collect_all(now);
        deliver_closed(now); // releases the destroys waiting for this close
        wait_for([&] { return (pending_.load() & count_mask) == 0; });
        Io::wait_callbacks(registration_); // 01_040
        teardown_io();
        disconnect();
        finish_close(true);
    }

    /// The spec's destroy, minus freeing: waits out OPENING (01_093), closes if
    /// OPEN (01_006), waits until every operation of the socket has completed,
    /// destroys the handle (01_005). Called from a hook it never waits for the
    /// work that hook is part of; a close still finishing (see close()) then
    /// destroys the handle and gives the core back when it is done.
    void detach() noexcept
    {
        // From a hook that this thread's close() is delivering: the close's
        // other completions run now, never after this returns, and that close
        // is not waited for.
        const bool own_close = asock::detail::mark_destroyed_if_closing_here(this);
        asock::detail::deliver_pending_here(this);
        for (;;) {
            const auto s = lifecycle_.load();
            if (s == socket_state::opening) {
                wait_for([&] { return lifecycle_.load() != socket_state::opening; });
                continue;
            }
            if (s == socket_state::open) {
                close(); // may lose the race to a close on another thread: then wait for that one
                continue;
            }
            break;
        }
        if (!own_close) {
            // A close running on another thread delivers this socket's
            // completions: wait for them. That close does not wait for this
            // thread once it is counted in parked_ (which comes first: the
            // close reads deliverers_ before parked_), and this thread no
            // longer delivers a direction of the socket after the release.
            parked_.fetch_add(1);
            wake_waiters();
            release_own_deliveries();
            if (engine_->running_in_this_thread()) {
                // Not for the rest of that close: it may wait for this very
                // callback to return (WaitForThreadpoolIoCallbacks).
                wait_for([&] { return closers_.load() == 0; });
            } else {
                // For the whole close (01_093), unless only its IO is left to
                // close, by a packet still to come (deferred_bit): that needs
                // a pool thread, and the handle goes with it (detached_).
                wait_for([&] {
                    return closers_.load() == 0 &&
                           (!close_active_.load() || (pending_.load() & deferred_bit) != 0);
                });
            }
            parked_.fetch_sub(1);
        }
        // A stop request on another thread may be completing an operation of
        // this socket (withdrawn from its queue before the close): that
        // completion must not outlive the destroy. Those this thread runs
        // itself (a hook inside one destroyed the socket) are not waited for.
        const unsigned own_cancels = asock::detail::count_frames(this, asock::detail::delivery_frame::kind::cancel);
        wait_for([&] { return cancels_.load() <= own_cancels; });
        release_own_deliveries(); // the core may serve another socket once this returns
        {
            std::lock_guard lk(life_mu_);
            if (close_active_.load()) {
                detached_ = true; // finish_close() destroys the handle
                return;
            }
        }
        destroy_handle();
    }

    socket_state state() const noexcept { return lifecycle_.load(); }
    native_handle_type native_handle() const noexcept { return socket_; }
    engine_type& engine() const noexcept { return *engine_; }

    /// Runs `item` later on an engine thread (the threadpool has no loop a
    /// socket belongs to: any of its threads). An awaiter completed by a
    /// close or a stop request on another thread resumes through this.
    void post(work_item* item) noexcept { engine_->post(item); }

    /// The completion entry point: the policy's completion callback
    /// (registered by Io::register_socket) calls it for every completion of a
    /// call of this core's socket, on an engine thread, with the call record
    /// the call was given (compared with the outstanding calls, never read
    /// through), its status and its byte count.
    static void on_call_complete(completion_core* self, const call_record* call, status err, byte_count bytes) noexcept
    {
        typename engine_type::callback_scope scope(*self->engine_);
        self->on_completion(call, err, bytes);
    }

    // ---- operations --------------------------------------------------------

    /// Starts a send: issued at once when no send is outstanding, else queued
    /// behind the others. Never finishes inline, except a send cancelled before
    /// it started. Rejected (not queued, hook not called) with not_open when
    /// the socket is not OPEN or WSASend reports WSAECONNRESET (Io::reset), with error when
    /// WSASend fails otherwise. Once the send direction has failed for good
    /// (part of a send is on the wire and the rest never will be, or nobody
    /// knows how much is) every send is rejected: not_open after a reset,
    /// error otherwise.
    send_sync_result start_send(send_op& op, bool& done) noexcept
    {
        std::lock_guard lk(write_.mu);
        if (!is_open()) {
            return send_sync_result::not_open; // 01_097
        }
        if (asock::detail::finished_by_early_stop(op, done)) {
            return send_sync_result::ok;
        }
        if (sends_.shut()) {
            return send_sync_result::not_open; // shutdown_send closed the direction
        }
        if (sends_.failed()) {
            return sends_.rejection();
        }
        if (reset_seen_.load(std::memory_order_acquire)) {
            // A call learnt that the connection is gone (42_002): rejected
            // here rather than by the next call (a backend whose calls never
            // fail at once, io_uring, would accept it and complete it
            // abandoned).
            return send_sync_result::not_open;
        }
        const bool idle = write_.ops.empty();
        write_.ops.push_back(&op);
        if (!idle) {
            return send_sync_result::ok; // behind the outstanding send: never overtakes it
        }
        // Nothing of this send is on the wire if its first call fails at once:
        // rejecting it leaves the stream whole.
        const int err = issue_send(static_cast<send_op&>(op));
        if (err == 0) {
            return send_sync_result::ok; // 01_045
        }
        write_.ops.unlink(&op);
        return Io::reset(err) ? send_sync_result::not_open // 42_002
                              : send_sync_result::error;   // 01_106, 01_029
    }

    /// Starts a receive: issued at once when none is outstanding, else queued.
    /// Never finishes inline (whatever allow_inline says), except a receive
    /// cancelled before it started. Rejected with not_open when the socket is
    /// not OPEN or WSARecv fails at once (01_098, 01_084).
    start_result start_receive(receive_op& op, bool /*allow_inline*/, bool& done) noexcept
    {
        std::lock_guard lk(read_.mu);
        if (!is_open()) {
            return start_result::not_open; // 01_098
        }
        if (asock::detail::finished_by_early_stop(op, done)) {
            return start_result::started;
        }
        const bool idle = read_.ops.empty();
        read_.ops.push_back(&op);
        if (!idle) {
            return start_result::started;
        }
        if (issue_receive(op) == 0) {
            return start_result::started; // 01_083
        }
        read_.ops.unlink(&op);
        return start_result::not_open; // 01_084
    }

    /// Half-close (async_socket::shutdown_send): no send is accepted from now
    /// on, and the FIN goes now when no send is queued or outstanding, else
    /// from the completion of the last one, provided every one of them
    /// completed ok. The shutdown is made under the write lock, as every
    /// WSASend is issued: a close() cannot disconnect the handle under it.
    shutdown_result shutdown_send() noexcept
    {
        std::lock_guard lk(write_.mu);
        if (!is_open()) {
            return shutdown_result::not_open;
        }
        if (custom_transport_) {
            return shutdown_result::unsupported; // (such a core never opens: 04_001)
        }
        switch (sends_.plan_shutdown(!write_.ops.empty())) {
        case send_direction::fin_plan::already:
        case send_direction::fin_plan::deferred: return shutdown_result::ok;
        case send_direction::fin_plan::refused: return shutdown_result::error;
        case send_direction::fin_plan::send_now: break;
        }
        return Io::shutdown_send(socket_) == 0 ? shutdown_result::ok : shutdown_result::error;
    }

    /// Readiness notifications are not part of the completion model (not
    /// available on Windows, 04_002): always rejected with not_open.
    start_result start_notify(notify_op&, bool, bool&) noexcept { return start_result::not_open; }

    /// Starts a call_op (Windows: an overlapped_op, ConnectEx / AcceptEx of
    /// the TCP helpers). Any number may be outstanding; each completes on its
    /// own. On an immediate failure `done` is set with result error.
    start_result start_overlapped(call_op& op, bool& done) noexcept
    {
        std::lock_guard lk(raw_.mu);
        if (!is_open()) {
            return start_result::not_open;
        }
        if (asock::detail::finished_by_early_stop(op, done)) {
            return start_result::started;
        }
        raw_.ops.push_back(&op);
        op.call = call_record{};
        pending_.fetch_add(1, std::memory_order_relaxed);
        const int err = Io::issue_call(socket_, registration_, op);
        if (err == 0) {
            return start_result::started;
        }
        pending_.fetch_sub(1, std::memory_order_relaxed);
        raw_.ops.unlink(&op);
        op.io_result = static_cast<decltype(op.io_result)>(err);
        op.result = notify_io_result::error;
        done = true;
        return start_result::started;
    }

    /// A stop request for `op`. Queued behind others: unlinked and completed
    /// `cancelled` here (mode foreign). Outstanding: CancelIoEx; its completion
    /// reports `cancelled`, or the real result when the call won the race (a
    /// receive that got bytes completes ok with them). Not queued yet: the
    /// start sees the flag.
    void cancel(operation& op) noexcept
    {
        side& sd = side_for(op);
        std::unique_lock lk(sd.mu);
        op.cancel_requested = true;
        if (!op.queued) {
            return;
        }
        if (is_outstanding(sd, op)) {
            cancel_call(sd, op);
            return;
        }
        sd.ops.unlink(&op);
        set_result(op, cancelled_result);
        if (&sd == &write_) {
            sends_.drop_fin(); // none of this send went out: no FIN after the others
        }
        cancels_.fetch_add(1); // a destroy waits for this completion (detach)
        lk.unlock();
        {
            asock::detail::frame_scope scope(this, asock::detail::delivery_frame::kind::cancel);
            op.complete(&op, completion_mode::foreign);
        }
        cancels_.fetch_sub(1);
        wake_waiters(); // the core outlives its socket (pooled)
    }

    /// Delivers a finished operation (result set) later on an engine thread,
    /// but never after a close() of this socket has returned.
    void post_completion(operation& op) noexcept
    {
        side& sd = side_for(op);
        std::unique_lock lk(sd.mu);
        if (is_open()) {
            move_to_done(sd, op);
            lk.unlock();
            kick();
            return;
        }
        lk.unlock();
        op.complete(&op, completion_mode::foreign);
    }

    // ---- engine side ---------------------------------------------------------

    /// Used by the engine's release_core(): false while a close is still
    /// finishing (it returns the core to the pool itself).
    bool try_release() noexcept
    {
        std::lock_guard lk(life_mu_);
        if (close_active_.load()) {
            released_ = true;
            return false;
        }
        return true;
    }

    /// Pool link, used by the engine only.
    completion_core* next_free = nullptr;

private:
    struct side {
        std::mutex mu;
        op_list ops;  // started, in order; the front has a call outstanding when `busy` (raw_: all have)
        op_list done; // finished, hooks not yet called; delivered in this order
        bool busy = false;
        bool delivering = false;
        // read_ / write_: the call outstanding while `busy`. A core goes back
        // to the engine's pool only after the packet of its last call came
        // back (finish_close(), released_), so this OVERLAPPED is never reused
        // while the OS still owns it, by this socket or the core's next one.
        call_record call{};
        std::uint32_t asked = 0; // bytes the call was given
        std::uint32_t first = 0; // receive: the index of the first buffer the call was given
    };

    static constexpr std::uint32_t count_mask = (1u << 31) - 1;
    static constexpr std::uint32_t deferred_bit = 1u << 31; // the packet that brings the count to 0 closes the IO

    enum result_kind { cancelled_result, abandoned_result };

    std::array<side*, 3> sides() noexcept { return {&read_, &write_, &raw_}; }

    bool is_open() const noexcept { return lifecycle_.is_open(); }

    // The fence pairs with the one in wait_for(): the lifecycle's store is a
    // release, and a waiter that counted itself in waiters_ must either see
    // the new state or be woken.
    void set_state(socket_state s) noexcept
    {
        lifecycle_.set(s);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        wake_waiters();
    }

    // Waits (mutex + condition variable) until `pred` holds. Every change a
    // waiter may wait for is followed by wake_waiters(). Not std::atomic::wait:
    // libstdc++ can lose its wake-ups on targets without a futex (mingw-w64).
    // The seq_cst order of waiters_ and of the awaited atomics (the fences
    // here and in set_state() for the lifecycle's acquire / release state)
    // makes the "wake only when someone waits" check safe.
    template <class Pred>
    void wait_for(Pred pred) noexcept
    {
        waiters_.fetch_add(1);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        {
            std::unique_lock lk(wait_mu_);
            wait_cv_.wait(lk, pred);
        }
        waiters_.fetch_sub(1);
    }

    // A short pause of close() while the OS finishes the calls it cancelled;
    // a completion arriving meanwhile ends it early.
    void pause_briefly() noexcept
    {
        waiters_.fetch_add(1);
        {
            std::unique_lock lk(wait_mu_);
            wait_cv_.wait_for(lk, std::chrono::milliseconds(1));
        }
        waiters_.fetch_sub(1);
    }

    // reap_outstanding() between two rounds. A policy whose completions
    // arrive only when some thread collects them (io_uring: the completion
    // queue) has Io::drive(engine): collect and dispatch what is there, with
    // no core lock held, or pause briefly when another thread is doing so.
    // Otherwise (Windows: the OS finishes a cancelled call by itself) a pause.
    void progress_or_pause() noexcept
    {
        if constexpr (requires { Io::drive(*engine_); }) {
            Io::drive(*engine_);
        } else {
            pause_briefly();
        }
    }

    // Whether a call that completed only part of a send goes on with the rest
    // (Io::resumes_short_sends: a stream socket's send may take less than it
    // was given, io_uring's IORING_OP_SEND). Otherwise (Windows: a WSASend
    // completes whole or fails) a short count is an error (01_102).
    static constexpr bool resumes_short_sends = [] {
        if constexpr (requires { Io::resumes_short_sends; }) {
            return static_cast<bool>(Io::resumes_short_sends);
        } else {
            return false;
        }
    }();

    void wake_waiters() noexcept
    {
        if (waiters_.load() != 0) {
            std::lock_guard lk(wait_mu_);
            wait_cv_.notify_all();
        }
    }

    // Completes what a close() collected, one operation at a time off `now`, so
    // that a destroy from inside one of those hooks finds (and delivers) the
    // rest through this thread's frame.
    void deliver_closed(op_list& now) noexcept
    {
        {
            asock::detail::frame_scope scope(this, asock::detail::delivery_frame::kind::close, &now);
            asock::detail::deliver(now, completion_mode::foreign);
        }
        closers_.fetch_sub(1); // the close still holds the core (close_active_)
        wake_waiters();
    }

    // detach() inside a hook that deliver() is calling on this thread: that
    // direction is no longer being delivered by this thread (a close elsewhere
    // collects what is left of it), and deliver() touches nothing of the core
    // once the hook returns.
    void release_own_deliveries() noexcept
    {
        asock::detail::for_each_frame(this, [this](asock::detail::delivery_frame& f) {
            if (f.what != asock::detail::delivery_frame::kind::dispatch || f.released) {
                return;
            }
            side& sd = *static_cast<side*>(f.side);
            {
                std::lock_guard lk(sd.mu);
                sd.delivering = false;
            }
            f.released = true;
            deliverers_.fetch_sub(1);
            wake_waiters();
        });
    }

    side& side_for(const operation& op) noexcept
    {
        switch (op.direction) {
        case op_direction::write: return write_;
        case op_direction::read: return read_;
        case op_direction::other: break;
        }
        return raw_; // call_ops (notify_io is not part of the completion model)
    }

    static void set_result(operation& op, result_kind r) noexcept
    {
        if (r == cancelled_result) {
            op.kind->set_cancelled(op);
        } else {
            op.kind->set_abandoned(op);
        }
    }

    // `queued` means "in sd.ops" here: a cancel() must not unlink a record from
    // a list it is not in, so records on `done` and on local lists have it clear.
    static void move_to_done(side& sd, operation& op) noexcept
    {
        sd.done.push_back(&op);
        op.queued = false;
    }

    // `op` (in sd.ops) has a call outstanding (side lock held).
    bool is_outstanding(const side& sd, const operation& op) const noexcept
    {
        return &sd == &raw_ || (sd.busy && sd.ops.front() == &op);
    }

    // The OVERLAPPED of the outstanding call of `op` (in sd.ops).
    call_record* overlapped_of(side& sd, operation& op) noexcept
    {
        return &sd == &raw_ ? &static_cast<call_op&>(op).call : &sd.call;
    }

    // The operation whose outstanding call was given `ov`, or nullptr (side
    // lock held). Compares addresses only: `ov` is not read.
    operation* find_outstanding(side& sd, const call_record* ov) noexcept
    {
        for (operation* op = sd.ops.front(); op != nullptr && is_outstanding(sd, *op);
             op = static_cast<operation*>(op->next)) {
            if (overlapped_of(sd, *op) == ov) {
                return op;
            }
        }
        return nullptr;
    }

    // close(): CancelIoEx for each outstanding call of a side (its lock held).
    void cancel_outstanding(side& sd) noexcept
    {
        for (operation* op = sd.ops.front(); op != nullptr && is_outstanding(sd, *op);
             op = static_cast<operation*>(op->next)) {
            Io::cancel(socket_, overlapped_of(sd, *op));
        }
    }

    // close(): settles every call still outstanding, each as soon as the OS
    // reports it finished, unless its completion reaches on_io_complete first.
    // The OS finishes a cancelled call without any pool thread; a CancelIoEx
    // that missed (Wine's, on a send busy moving data) is asked again. The
    // packets of calls settled here still reach on_io_complete later, which
    // finds no record for them and only counts them down (pending_).
    void reap_outstanding() noexcept
    {
        for (bool ask_again = false;; ask_again = true) {
            bool left = false;
            for (side* sd : sides()) {
                std::lock_guard lk(sd->mu);
                if (reap(*sd, ask_again)) {
                    left = true;
                }
            }
            if (!left) {
                return;
            }
            progress_or_pause();
        }
    }

    // True when a call of the side is still in progress (side lock held).
    bool reap(side& sd, bool ask_again) noexcept
    {
        bool left = false;
        operation* op = sd.ops.front();
        while (op != nullptr && is_outstanding(sd, *op)) {
            auto* next = static_cast<operation*>(op->next);
            call_record* ov = overlapped_of(sd, *op);
            byte_count bytes = 0;
            status err = Io::success;
            if (Io::poll(socket_, ov, err, bytes)) {
                settle(sd, *op, err, bytes); // not OPEN: abandoned, or what the call achieved
            } else {
                left = true;
                if (ask_again) {
                    Io::cancel(socket_, ov);
                }
            }
            if (&sd != &raw_) {
                break; // one call at most; settling it moved the rest to `done`
            }
            op = next;
        }
        return left;
    }

    // CancelIoEx for the outstanding call of `op` (its side's lock held), for
    // a stop request. When the OS finds nothing to cancel although the
    // completion has not been seen yet, either the completion is on its way
    // (Windows) or the call was busy moving data at that instant and missed
    // the request (Wine does this with a large send): a posted retry asks
    // again until the completion arrives.
    void cancel_call(side& sd, operation& op) noexcept
    {
        if (!Io::cancel(socket_, overlapped_of(sd, op))) {
            schedule_cancel_retry();
        }
    }

    void schedule_cancel_retry() noexcept
    {
        if (!retry_pending_.exchange(true)) {
            retry_item_.run = &run_cancel_retry;
            retry_item_.self = this;
            engine_->post(&retry_item_);
        }
    }

    static void run_cancel_retry(work_item* w) noexcept
    {
        completion_core* self = static_cast<kick_item*>(w)->self;
        self->retry_pending_.store(false);
        bool again = false;
        for (side* sd : self->sides()) {
            std::lock_guard lk(sd->mu);
            if (!self->is_open()) {
                continue; // a close settles its own calls (reap_outstanding)
            }
            for (operation* op = sd->ops.front(); op != nullptr && self->is_outstanding(*sd, *op);
                 op = static_cast<operation*>(op->next)) {
                if (op->cancel_requested && !Io::cancel(self->socket_, self->overlapped_of(*sd, *op))) {
                    again = true;
                }
            }
        }
        if (again) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1)); // not a hot loop on the pool
            self->schedule_cancel_retry();
        }
    }

    // Moves a side's finished records, then its waiting ones as abandoned, to
    // `out` (side lock held, nothing outstanding on the side).
    static void collect(side& sd, op_list& out) noexcept
    {
        abandon_rest(sd);
        for (operation* op = sd.done.front(); op != nullptr; op = static_cast<operation*>(op->next)) {
            op->queued = false;
        }
        out.splice_back(sd.done);
    }

    static void abandon_rest(side& sd) noexcept
    {
        while (operation* op = sd.ops.pop_front()) {
            set_result(*op, abandoned_result);
            move_to_done(sd, *op);
        }
        sd.busy = false;
    }

    void collect_all(op_list& out) noexcept
    {
        for (side* sd : sides()) {
            std::lock_guard lk(sd->mu);
            collect(*sd, out);
        }
    }

    // ---- issuing calls (side lock held, socket OPEN, op at the front) --------

    // Issues the next call of a send: the batch of buffers from op.index /
    // op.offset on (Io::issue_send sets write_.call and write_.asked). 0 when
    // the call is outstanding or done at once (the completion still arrives
    // through the completion entry point), else the error it failed with.
    int issue_send(send_op& op) noexcept
    {
        pending_.fetch_add(1, std::memory_order_relaxed);
        write_.busy = true;
        const int err = Io::issue_send(socket_, registration_, write_.call, op, write_.asked);
        if (err == 0) {
            return 0;
        }
        write_.busy = false;
        pending_.fetch_sub(1, std::memory_order_relaxed);
        return err;
    }

    // Issues the WSARecv of the batch of buffers starting at `first` (0: a
    // new receive, whose byte count starts at 0).
    int issue_receive(receive_op& op, std::uint32_t first = 0) noexcept
    {
        if (first == 0) {
            op.received = 0;
        }
        read_.first = first;
        pending_.fetch_add(1, std::memory_order_relaxed);
        read_.busy = true;
        const int err = Io::issue_receive(socket_, registration_, read_.call, op, first, read_.asked);
        if (err == 0) {
            return 0;
        }
        read_.busy = false;
        pending_.fetch_sub(1, std::memory_order_relaxed);
        return err;
    }

    // Issues the next queued sends until one is outstanding (write lock held,
    // OPEN). Behind a torn send they complete with the direction's failure.
    // A queued send whose first call fails at once put nothing on the wire: it
    // fails alone.
    void issue_queued_sends() noexcept
    {
        while (!write_.busy && !write_.ops.empty()) {
            auto& next = static_cast<send_op&>(*write_.ops.front());
            int err = 0;
            if (!sends_.failed()) {
                err = issue_send(next);
                if (err == 0) {
                    break;
                }
            }
            write_.ops.unlink(&next);
            next.result = sends_.failed()       ? sends_.cause()
                          : Io::reset(err)       ? send_result::abandoned
                                                 : send_result::error;
            sends_.drop_fin(); // a send before the FIN failed: the FIN is not sent
            move_to_done(write_, next);
        }
    }

    // The call of `op` that was given the batch starting at `first` filled
    // every buffer of it. When the receive has more buffers and bytes are
    // waiting now, the next batch is issued (true: the receive stays
    // outstanding). Otherwise it completes with what it has: as on Linux, a
    // receive that got bytes does not wait for more. Whether bytes wait is
    // asked without blocking (FIONREAD): a WSARecv issued when none do would
    // stay pending, holding back the bytes already received.
    bool receive_next_batch(receive_op& op, std::uint32_t first) noexcept
    {
        const std::uint32_t given = op.count - first < Io::max_batch ? op.count - first : Io::max_batch;
        const std::uint32_t next = first + given;
        if (next >= op.count) {
            return false; // every buffer is full
        }
        if (!Io::bytes_waiting(socket_)) {
            return false;
        }
        // A call failing at once leaves the receive with what it has; the
        // next receive meets the failure.
        return issue_receive(op, next) == 0;
    }

    void issue_queued_receives() noexcept
    {
        while (!read_.busy && !read_.ops.empty()) {
            auto& next = static_cast<receive_op&>(*read_.ops.front());
            const int err = issue_receive(next);
            if (err == 0) {
                break;
            }
            read_.ops.unlink(&next);
            next.result = Io::reset(err) ? receive_result::abandoned : receive_result::error;
            next.received = 0;
            move_to_done(read_, next);
        }
    }

    // ---- completions -----------------------------------------------------------

    // 01_064: the OVERLAPPED names the call's operation record, but only while
    // the call is outstanding: close() may have settled it (reap_outstanding)
    // and the record may be gone. So the record is found by comparing
    // addresses with the calls still outstanding, under their side's lock.
    void on_completion(const call_record* ov, status err, byte_count bytes) noexcept
    {
        for (side* sd : sides()) {
            std::unique_lock lk(sd->mu);
            operation* op = find_outstanding(*sd, ov);
            if (op == nullptr) {
                continue;
            }
            settle(*sd, *op, err, bytes);
            const bool last = call_returned();
            lk.unlock();
            if (last) {
                finish_deferred_close();
            } else if (engine_->caller_runs_loop()) {
                // threads = 0: the hooks run in the caller's loop (run /
                // run_one / poll), never on this pool thread.
                kick();
            } else {
                deliver(*sd);
            }
            return;
        }
        // A call close() settled: only its packet was still to come.
        if (call_returned()) {
            finish_deferred_close();
        }
    }

    // Sets the result of an outstanding call's operation from its completion
    // (or from the OS, for close()), moves it to `done` and issues the next
    // call of its direction, or abandons the rest when not OPEN (side lock
    // held). The byte count is checked against what this very call was given
    // (side::asked), never trusted beyond it.
    void settle(side& sd, operation& op, status err, byte_count bytes) noexcept
    {
        const std::uint32_t asked = sd.asked;
        // Each direction's queue holds one kind of record: sends, receives,
        // and the call_ops (Windows: the overlapped_ops of the TCP helpers).
        switch (op.direction) {
        case op_direction::write: settle_send(static_cast<send_op&>(op), asked, err, bytes); break;
        case op_direction::read: settle_receive(static_cast<receive_op&>(op), asked, err, bytes); break;
        case op_direction::other: settle_overlapped(static_cast<call_op&>(op), err, bytes); break;
        }
    }

    void settle_send(send_op& op, std::uint32_t asked, status err, byte_count bytes) noexcept // 01_065
    {
        write_.busy = false;
        const bool open = is_open();
        bool finished = true;
        // A short count of a policy that resumes short sends: the bytes went
        // out, the rest is issued like the next batch of a long buffer list.
        const bool part = resumes_short_sends && err == Io::success && bytes > 0 && bytes < asked;
        if (err == Io::success && (bytes == asked || part)) {
            op.advance(static_cast<std::uint32_t>(bytes));
            if (op.sent == op.total) {
                op.result = send_result::ok; // 01_066
            } else if (!open) {
                op.result = send_result::abandoned;
            } else if (op.cancel_requested) {
                op.result = send_result::cancelled; // between two calls of a long buffer list
                sends_.fail(send_result::error);     // its first part is on the wire
            } else {
                const int e = issue_send(op); // the next WSABUF batch of this send
                finished = e != 0;
                if (finished) {
                    // The first part is on the wire, the rest never will be:
                    // the operation completes here (it was accepted), and no
                    // later send may follow the truncated bytes.
                    op.result =
                        Io::connection_gone(static_cast<status>(e)) ? send_result::abandoned : send_result::error;
                    sends_.fail(op.result);
                }
            }
        } else if (err == Io::success) {
            // 01_102: fewer bytes than this call was given, or more (a count
            // nobody can trust: which bytes went out is unknown).
            op.result = send_result::error;
            if (bytes > 0 || op.sent > 0) {
                sends_.fail(send_result::error);
            }
        } else if (!open) {
            op.result = send_result::abandoned; // cancelled by close()
        } else if (Io::aborted(err) && op.cancel_requested) {
            op.result = send_result::cancelled;
            sends_.fail(send_result::error); // how much of it reached the wire is unknown
        } else {
            // 01_067, except for an error that means the connection is gone
            // (the peer reset it, or it dropped): abandoned, as on Linux
            // (ECONNRESET / EPIPE). See docs/windows.md, deviation 11.
            op.result = Io::connection_gone(err) ? send_result::abandoned : send_result::error;
            if (op.result == send_result::abandoned) {
                reset_seen_.store(true, std::memory_order_release);
            }
            if (bytes > 0 || op.sent > 0) {
                // Part of it went out before the failure: no later send may
                // follow. After a reset the later sends read as the
                // connection being gone (42_002), as a WSASend would report it.
                sends_.fail(op.result);
            }
        }
        if (finished) {
            if (op.result != send_result::ok) {
                sends_.drop_fin(); // a send before the FIN did not go out whole: no FIN
            }
            write_.ops.unlink(&op);
            move_to_done(write_, op);
            if (open) {
                issue_queued_sends();
                if (write_.ops.empty() && sends_.take_fin()) {
                    // Every send accepted before shutdown_send has completed
                    // ok. A failure here has no one to be reported to.
                    static_cast<void>(Io::shutdown_send(socket_));
                }
            } else {
                abandon_rest(write_);
            }
        }
    }

    // A receive of more than max_wsabuf buffers is filled by several calls,
    // one batch of buffers each: op.received counts the bytes of the earlier
    // calls (issue_receive zeroes it for the first), read_.first names the
    // batch of the call that completed.
    void settle_receive(receive_op& op, std::uint32_t asked, status err, byte_count bytes) noexcept // 01_071
    {
        read_.busy = false;
        const bool open = is_open();
        const std::uint32_t before = op.received; // bytes of the earlier calls of this receive
        if (bytes > 0 && (err == Io::success || Io::aborted(err))) {
            const auto wide = static_cast<std::uint64_t>(bytes) + before;
            op.received = wide > 0xFFFFFFFFull ? 0xFFFFFFFFu : static_cast<std::uint32_t>(wide);
            op.result = bytes > asked ? receive_result::error // 01_095
                                      : receive_result::ok;   // 01_069; also a cancel that lost the race
            if (err == Io::success && bytes == asked && open && !op.cancel_requested &&
                receive_next_batch(op, read_.first)) {
                return; // still outstanding, on its next buffers
            }
        } else if (before > 0) {
            // A later call of a long receive ended without bytes (the peer
            // closed or reset, a close or a stop request cancelled it, an
            // error): the receive completes with what the earlier calls got,
            // as on Linux; the next receive sees the end or the error.
            op.result = receive_result::ok;
        } else if (err == Io::success) { // from here on op.received is 0
            op.result = receive_result::abandoned; // 42_003: the peer closed
        } else if (Io::peer_gone(err)) {
            op.result = receive_result::abandoned; // 42_001
            reset_seen_.store(true, std::memory_order_release); // later sends: not_open (42_002)
        } else if (!open) {
            op.result = receive_result::abandoned; // cancelled by close()
        } else if (Io::aborted(err) && op.cancel_requested) {
            op.result = receive_result::cancelled;
        } else {
            op.result = receive_result::error; // 01_070
        }
        read_.ops.unlink(&op);
        move_to_done(read_, op);
        if (open) {
            issue_queued_receives();
        } else {
            abandon_rest(read_);
        }
    }

    void settle_overlapped(call_op& op, status err, byte_count bytes) noexcept
    {
        const bool open = is_open();
        op.io_result = err;
        op.bytes = static_cast<decltype(op.bytes)>(bytes);
        if (err == Io::success) {
            op.result = notify_io_result::in;
        } else if (!open) {
            op.result = notify_io_result::abandoned;
        } else if (Io::aborted(err) && op.cancel_requested) {
            op.result = notify_io_result::cancelled;
        } else {
            op.result = notify_io_result::error;
        }
        raw_.ops.unlink(&op);
        move_to_done(raw_, op);
    }

    // One packet came back. True when it was the last one a close() on an
    // engine thread left to come: the caller closes the IO.
    bool call_returned() noexcept
    {
        const std::uint32_t prev = pending_.fetch_sub(1);
        if ((prev & count_mask) != 1) {
            return false;
        }
        wake_waiters();
        return (prev & deferred_bit) != 0;
    }

    // Calls the hooks of `sd.done` in order, one thread at a time per side,
    // while OPEN. Each record is taken off `done` just before its hook runs, so
    // a close or destroy from inside a hook finds the rest there and delivers
    // it before it returns. False when a destroy inside a hook let go of the
    // side (release_own_deliveries): nothing of the core is touched then.
    bool deliver(side& sd) noexcept
    {
        std::unique_lock lk(sd.mu);
        if (sd.delivering) {
            return true; // the thread delivering now takes ours too, in order
        }
        sd.delivering = true;
        deliverers_.fetch_add(1);
        asock::detail::frame_scope scope(this, asock::detail::delivery_frame::kind::dispatch, nullptr, &sd);
        while (is_open()) {
            operation* op = sd.done.pop_front();
            if (op == nullptr) {
                break;
            }
            lk.unlock();
            op->complete(op, completion_mode::engine_thread);
            if (scope.frame.released) {
                return false;
            }
            lk.lock();
        }
        sd.delivering = false;
        lk.unlock();
        deliverers_.fetch_sub(1);
        wake_waiters();
        return true;
    }

    using kick_item = asock::detail::kick_item<completion_core>;

    static void run_kick(work_item* w) noexcept
    {
        completion_core* self = static_cast<kick_item*>(w)->self;
        self->kick_pending_.store(false, std::memory_order_release);
        for (side* sd : self->sides()) {
            if (!self->deliver(*sd)) {
                return; // the socket was destroyed inside a hook
            }
        }
    }

    void kick() noexcept
    {
        if (!kick_pending_.exchange(true, std::memory_order_acq_rel)) {
            kick_item_.run = &run_kick;
            kick_item_.self = this;
            engine_->post(&kick_item_);
        }
    }

    // ---- closing -------------------------------------------------------------------

    // close() on one of the engine's threads, everything settled: it cannot
    // wait for callbacks (its own, or one that needs this very thread).
    void close_on_engine_thread(op_list& now) noexcept
    {
        collect_all(now);
        if ((pending_.load() & count_mask) == 0) {
            // No packet is left to come: the IO goes now, from inside a
            // callback too (the pool frees it once the callbacks return).
            teardown_io();
            disconnect();
            set_state(socket_state::closed);
            deliver_closed(now);
            finish_close(false);
            return;
        }
        disconnect();
        set_state(socket_state::closed);
        deliver_closed(now);
        // The packets of the calls reap_outstanding() settled are still to
        // come; the last one closes the IO (finish_deferred_close). Not
        // before the completions above were delivered: that packet may give
        // the core back to the engine.
        const std::uint32_t prev = pending_.fetch_or(deferred_bit);
        wake_waiters(); // a destroy on a non-engine thread need not wait for that packet
        if ((prev & count_mask) != 0) {
            return;
        }
        pending_.store(0); // they all came meanwhile
        teardown_io();
        finish_close(false);
    }

    // Runs in the callback of the last packet a close() on an engine thread
    // left to come.
    void finish_deferred_close() noexcept
    {
        pending_.store(0);
        teardown_io();
        finish_close(false);
    }

    void teardown_io() noexcept
    {
        Io::unregister_socket(registration_); // 01_059, 01_042
    }

    void disconnect() noexcept
    {
        if (owner_.disconnect != nullptr) {
            owner_.disconnect(owner_.context, socket_); // 01_021
        }
    }

    // The close is over: CLOSED (when not set earlier), then the handle and
    // the core go where a destroy meanwhile left them, and the close's engine
    // reference goes.
    void finish_close(bool set_closed) noexcept
    {
        engine_type* e = engine_;
        bool destroy = false;
        bool release = false;
        {
            std::lock_guard lk(life_mu_);
            if (set_closed) {
                set_state(socket_state::closed);
            }
            close_active_.store(false);
            destroy = std::exchange(detached_, false);
            release = std::exchange(released_, false);
        }
        wake_waiters(); // a destroy waiting for the close (the core is pooled: safe if it was reused)
        if (destroy) {
            destroy_handle();
        }
        if (release) {
            e->recycle_core(this);
        }
        e->dec_ref(); // `this` may be reused, or gone with the engine, from here on
    }

    void destroy_handle() noexcept
    {
        if (opened_ && owner_.destroy != nullptr) {
            owner_.destroy(owner_.context, socket_); // 01_005
        }
        socket_ = Io::invalid_handle;
        owner_ = {};
        opened_ = false;
        custom_transport_ = false;
        sends_.reset();
        set_state(socket_state::created);
    }

    engine_type* engine_ = nullptr;
    owner_type owner_{};
    native_handle_type socket_ = Io::invalid_handle;
    typename Io::registration registration_{}; // Windows: the threadpool IO and its callback environment
    bool opened_ = false;
    bool custom_transport_ = false;
    asock::detail::send_direction sends_; // guarded by write_.mu
    std::atomic<bool> reset_seen_{false}; // a completion reported the connection gone (reset, broken pipe)
    asock::detail::socket_lifecycle lifecycle_;
    std::atomic<std::uint32_t> pending_{0};    // calls whose packet has not come back | deferred_bit
    std::atomic<std::uint32_t> deliverers_{0}; // sides whose hooks are being called right now
    std::atomic<std::uint32_t> closers_{0};    // a close() not done calling its completions
    std::atomic<std::uint32_t> parked_{0};     // destroys waiting for a close on another thread
    std::atomic<std::uint32_t> cancels_{0};    // stop requests completing an operation right now
    std::atomic<std::uint32_t> waiters_{0};    // threads in wait_for()
    std::mutex wait_mu_;
    std::condition_variable wait_cv_;
    std::atomic<bool> kick_pending_{false};
    kick_item kick_item_{};
    std::atomic<bool> retry_pending_{false};
    kick_item retry_item_{}; // run_cancel_retry
    std::mutex life_mu_;
    std::atomic<bool> close_active_{false}; // a close() not finished yet (written under life_mu_)
    bool detached_ = false; // ... and the socket was destroyed meanwhile (life_mu_)
    bool released_ = false; // ... and the core was given back to the engine meanwhile (life_mu_)
    side read_;
    side write_;
    side raw_; // call_ops (Windows: the overlapped_ops of the TCP helpers)
};

} // namespace asock::detail
