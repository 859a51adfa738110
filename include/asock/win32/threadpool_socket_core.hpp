// asock/win32/threadpool_socket_core.hpp: per-socket state of the Windows threadpool-IO backend.
//
// Design (see docs/windows.md, "The backend"):
// - open() gives the socket its own callback environment bound to the engine's
//   PTP_POOL and one threadpool IO (CreateThreadpoolIo) whose callback,
//   on_io_complete, receives every completion of the socket.
// - Sends are overlapped WSASend calls, receives overlapped WSARecv calls.
//   StartThreadpoolIo precedes each call; CancelThreadpoolIo follows a call
//   that fails at once with anything but WSA_IO_PENDING. A call that succeeds
//   at once still reports through the callback (the socket is not put in
//   skip-on-success mode), so every accepted operation completes there.
// - The OVERLAPPED of a call lives inside the operation record itself
//   (operation::platform, see include/asock/detail/operation.hpp), followed by a
//   pointer back to the record: the callback turns the OVERLAPPED* it is given
//   into the record with no lookup and no allocation. The WSABUF array is built
//   on the stack for each call (Winsock captures it before the call returns).
// - Each direction has its own lock and FIFO, and at most one call outstanding:
//   the front of the queue. The next send or receive is issued from the
//   completion of the previous one, so sends never interleave and receives fill
//   in the order they were started, whatever threads start them; a receive and a
//   send are outstanding together (full duplex).
// - Completed operations go to their direction's `done` list and are delivered
//   (hooks called, no lock held) by one thread at a time per direction, in order.
// - close() cancels the outstanding calls (CancelIoEx), waits for their
//   completions, waits for the IO's callbacks (WaitForThreadpoolIoCallbacks,
//   FALSE), closes the IO, destroys the environment, disconnects the handle and
//   completes every operation before it returns. Called on one of the engine's
//   own threads (a callback of this socket, or of any socket of the engine)
//   it never waits: an outstanding call's completion, arriving later on a pool
//   thread, finishes the close instead. Waiting there would deadlock on the
//   callback that is running it, or on a pool with no spare thread.
// - Cores are pooled by their engine and never freed while it lives, so a
//   thread still leaving a callback after the socket was destroyed touches
//   valid memory.
#pragma once

#include <asock/detail/operation.hpp>
#include <asock/results.hpp>
#include <asock/transport.hpp>
#include <asock/win32/win32_api.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <new>
#include <thread>
#include <type_traits>
#include <utility>

namespace asock::win32 {

template <class Api>
class basic_threadpool_engine;

using asock::detail::completion_mode;
using asock::detail::notify_op;
using asock::detail::op_kind;
using asock::detail::op_list;
using asock::detail::operation;
using asock::detail::receive_op;
using asock::detail::send_op;
using asock::detail::work_item;

/// An overlapped call other than a send or a receive (the TCP helpers' ConnectEx
/// and AcceptEx), run through a socket's threadpool IO so that its completion
/// arrives like any other. `issue` starts the call on `socket` with `overlapped`
/// and returns 0 when it is outstanding or already done (the completion comes
/// through the IO callback either way; WSA_IO_PENDING counts as 0 too) or the
/// WSA error with which it failed at once.
///
/// `result` (a notify_op's): `in` the call succeeded; `error` it failed
/// (`io_result` holds the Win32 / WSA code); `abandoned` the socket was closed
/// first; `cancelled` a stop request cancelled it; `not_open` the socket was
/// not OPEN. `bytes` is the completion's byte count.
struct overlapped_op : notify_op {
    int (*issue)(void* context, SOCKET socket, OVERLAPPED* overlapped) noexcept = nullptr;
    void* issue_context = nullptr;
    DWORD io_result = NO_ERROR;
    DWORD bytes = 0;
};

namespace detail {

/// The engine whose callback (IO completion or posted work) this thread is running.
inline thread_local const void* tls_engine = nullptr;

/// The core whose close() this thread is delivering completions for, so that
/// a destroy from inside one of those callbacks does not wait for itself.
inline thread_local const void* tls_closing_core = nullptr;

/// What a backend keeps in operation::platform while a call is outstanding.
struct op_ext {
    OVERLAPPED overlapped; // first: the callback's OVERLAPPED* is a pointer to this struct
    operation* op;
    DWORD asked; // bytes the outstanding call was given
};
static_assert(std::is_standard_layout_v<op_ext>);
static_assert(sizeof(op_ext) <= sizeof(asock::detail::platform_op_storage),
              "asock::detail::platform_op_storage is too small for the OVERLAPPED of an operation");
static_assert(alignof(op_ext) <= alignof(asock::detail::platform_op_storage));

inline op_ext& begin_ext(operation& op, DWORD asked) noexcept
{
    op_ext* x = ::new (static_cast<void*>(op.platform.bytes)) op_ext{};
    x->op = &op;
    x->asked = asked;
    return *x;
}

inline op_ext& ext_of(operation& op) noexcept { return *std::launder(reinterpret_cast<op_ext*>(op.platform.bytes)); }

/// Most WSABUF entries given to one call; longer buffer lists are sent in
/// several calls, and a receive fills at most this many buffers.
inline constexpr DWORD max_wsabuf = 64;

} // namespace detail

template <class Api>
class threadpool_socket_core {
public:
    using engine_type = basic_threadpool_engine<Api>;
    using native_handle_type = SOCKET;
    using owner_type = basic_handle_owner<SOCKET>;

    threadpool_socket_core() noexcept = default;
    threadpool_socket_core(const threadpool_socket_core&) = delete;
    threadpool_socket_core& operator=(const threadpool_socket_core&) = delete;

    // ---- lifecycle, called by async_socket -------------------------------

    /// Binds a pooled core to its engine (the spec's create). A custom
    /// transport is not supported on Windows (04_001): such a core never opens.
    void attach(engine_type* engine, const custom_transport& transport) noexcept
    {
        engine_ = engine;
        custom_transport_ = transport.is_set();
    }

    /// The spec's open: OPENING, a callback environment on the engine's pool,
    /// a threadpool IO on the socket, OPEN.
    open_result open(SOCKET socket, const owner_type& owner) noexcept
    {
        auto expected = socket_state::created;
        if (!state_.compare_exchange_strong(expected, socket_state::opening, std::memory_order_acq_rel)) {
            return open_result::error; // 01_015: OPEN or OPENING; CLOSED sockets are not reopenable either
        }
        if (socket == INVALID_SOCKET || custom_transport_) {
            set_state(socket_state::created); // 01_034
            return open_result::error;
        }
        Api::initialize_environment(&env_);                                // 01_016
        Api::set_environment_pool(&env_, engine_->pool());                  // 01_035, 01_036
        io_ = Api::create_io(socket, &threadpool_socket_core::on_io_complete, this, &env_); // 01_058
        if (io_ == nullptr) {
            Api::destroy_environment(&env_);
            set_state(socket_state::created); // 01_039
            return open_result::error;
        }
        socket_ = socket;
        owner_ = owner;
        opened_ = true;
        send_poisoned_ = false;
        pending_.store(0, std::memory_order_relaxed);
        set_state(socket_state::open); // 01_094
        return open_result::ok;
    }

    /// The spec's close. See the header comment for the engine-thread case.
    void close() noexcept
    {
        auto s = state_.load(std::memory_order_acquire);
        do {
            if (s != socket_state::open) {
                return; // 01_022
            }
        } while (!state_.compare_exchange_weak(s, socket_state::closing, std::memory_order_acq_rel)); // 01_019
        closers_.fetch_add(1);

        // 01_020: a start that saw OPEN holds its direction's lock until its
        // call was issued, so after each section below nothing can be added.
        op_list now;
        bool outstanding = false;
        for (side* sd : sides()) {
            std::lock_guard lk(sd->mu);
            if (has_outstanding(*sd)) {
                outstanding = true;
                cancel_outstanding(*sd); // their completions move the rest of this side to `done`
            } else {
                collect(*sd, now);
            }
        }
        if (!engine_->running_in_this_thread()) {
            if (outstanding) {
                wait_outstanding();
            }
            Api::wait_io_callbacks(io_, FALSE); // 01_040
            wait_deliverers();
            collect_all(now);
            finish_close();
            deliver_closed(now);
            return;
        }
        if (outstanding) {
            {
                std::lock_guard lk(life_mu_);
                deferred_.store(true);
            }
            engine_->inc_ref(); // the close now outlives the socket's own reference
            const std::uint32_t prev = pending_.fetch_or(deferred_bit);
            if ((prev & count_mask) != 0) {
                wake_waiters(); // a detach() waiting on CLOSING sees deferred_
                deliver_closed(now);
                return; // the last completion calls finish_deferred_close()
            }
            // Every outstanding call came back meanwhile: finish here.
            pending_.store(0);
            {
                std::lock_guard lk(life_mu_);
                deferred_.store(false);
            }
            engine_->dec_ref();
        }
        collect_all(now);
        finish_close();
        deliver_closed(now);
    }

    /// The spec's destroy, minus freeing: waits out OPENING / CLOSING (01_093),
    /// closes if OPEN (01_006), destroys the handle (01_005). After a close that
    /// is still finishing on the engine (see close()), hands the destroy to it.
    void detach() noexcept
    {
        for (;;) {
            const auto s = state_.load();
            if (s == socket_state::opening) {
                wait_for([&] { return state_.load() != socket_state::opening; });
                continue;
            }
            if (s == socket_state::open) {
                close();
                continue;
            }
            {
                std::lock_guard lk(life_mu_);
                if (deferred_.load()) {
                    detached_ = true; // finish_deferred_close() destroys the handle
                    return;
                }
            }
            if (s == socket_state::closing) {
                // A close() running on another thread.
                wait_for([&] { return state_.load() != socket_state::closing || deferred_.load(); });
                continue;
            }
            break;
        }
        // A close() on another thread may still be calling the completions it
        // collected (CLOSED is set before them); they belong to this socket.
        if (detail::tls_closing_core != this) {
            wait_for([&] { return closers_.load() == 0; });
        }
        destroy_handle();
    }

    socket_state state() const noexcept { return state_.load(std::memory_order_acquire); }
    SOCKET native_handle() const noexcept { return socket_; }
    engine_type& engine() const noexcept { return *engine_; }

    // ---- operations --------------------------------------------------------

    /// Starts a send: issued at once when no send is outstanding, else queued
    /// behind the others. Never finishes inline, except a send cancelled before
    /// it started. Rejected (not queued, hook not called) with not_open when
    /// the socket is not OPEN or WSASend reports WSAECONNRESET, with error when
    /// WSASend fails otherwise or an earlier cancelled send poisoned the stream.
    send_sync_result start_send(send_op& op, bool& done) noexcept
    {
        std::lock_guard lk(write_.mu);
        if (!is_open()) {
            return send_sync_result::not_open; // 01_097
        }
        if (op.cancel_requested) {
            op.result = send_result::cancelled;
            done = true;
            return send_sync_result::ok;
        }
        if (send_poisoned_) {
            return send_sync_result::error;
        }
        const bool idle = write_.ops.empty();
        write_.ops.push_back(&op);
        if (!idle) {
            return send_sync_result::ok; // behind the outstanding send: never overtakes it
        }
        const int err = issue_send(static_cast<send_op&>(op));
        if (err == 0) {
            return send_sync_result::ok; // 01_045
        }
        write_.ops.unlink(&op);
        return err == WSAECONNRESET ? send_sync_result::not_open // 42_002
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
        if (op.cancel_requested) {
            op.result = receive_result::cancelled;
            done = true;
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

    /// Readiness notifications are not available on Windows (04_002): always
    /// rejected with not_open.
    start_result start_notify(notify_op&, bool, bool&) noexcept { return start_result::not_open; }

    /// Starts an overlapped_op (ConnectEx / AcceptEx of the TCP helpers). Any
    /// number may be outstanding; each completes on its own. On an immediate
    /// failure `done` is set with result error.
    start_result start_overlapped(overlapped_op& op, bool& done) noexcept
    {
        std::lock_guard lk(raw_.mu);
        if (!is_open()) {
            return start_result::not_open;
        }
        if (op.cancel_requested) {
            op.result = notify_io_result::cancelled;
            done = true;
            return start_result::started;
        }
        raw_.ops.push_back(&op);
        detail::op_ext& x = detail::begin_ext(op, 0);
        pending_.fetch_add(1, std::memory_order_relaxed);
        Api::start_io(io_);
        const int err = op.issue(op.issue_context, socket_, &x.overlapped);
        if (err == 0 || err == WSA_IO_PENDING) {
            return start_result::started;
        }
        Api::cancel_io(io_);
        pending_.fetch_sub(1, std::memory_order_relaxed);
        raw_.ops.unlink(&op);
        op.io_result = static_cast<DWORD>(err);
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
        if (&sd == &raw_ || (sd.busy && sd.ops.front() == &op)) {
            cancel_call(op);
            return;
        }
        sd.ops.unlink(&op);
        set_result(op, cancelled_result);
        lk.unlock();
        op.complete(&op, completion_mode::foreign);
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

    /// Used by the engine's release_core(): false while a close deferred to the
    /// engine is still finishing (it returns the core to the pool itself).
    bool try_release() noexcept
    {
        std::lock_guard lk(life_mu_);
        if (deferred_.load()) {
            released_ = true;
            return false;
        }
        return true;
    }

    /// Pool link, used by the engine only.
    threadpool_socket_core* next_free = nullptr;

private:
    struct side {
        std::mutex mu;
        op_list ops;  // started, in order; the front has a call outstanding when `busy` (raw_: all have)
        op_list done; // finished, hooks not yet called; delivered in this order
        bool busy = false;
        bool delivering = false;
    };

    static constexpr std::uint32_t count_mask = (1u << 31) - 1;
    static constexpr std::uint32_t deferred_bit = 1u << 31; // the call that brings the count to 0 finishes the close

    enum result_kind { cancelled_result, abandoned_result };

    std::array<side*, 3> sides() noexcept { return {&read_, &write_, &raw_}; }

    bool is_open() const noexcept { return state_.load(std::memory_order_acquire) == socket_state::open; }

    void set_state(socket_state s) noexcept
    {
        state_.store(s);
        wake_waiters();
    }

    // Waits (mutex + condition variable) until `pred` holds. Every change a
    // waiter may wait for is followed by wake_waiters(). Not std::atomic::wait:
    // libstdc++ can lose its wake-ups on targets without a futex (mingw-w64).
    // The seq_cst order of waiters_ and of the awaited atomics makes the
    // "wake only when someone waits" check safe.
    template <class Pred>
    void wait_for(Pred pred) noexcept
    {
        waiters_.fetch_add(1);
        {
            std::unique_lock lk(wait_mu_);
            wait_cv_.wait(lk, pred);
        }
        waiters_.fetch_sub(1);
    }

    void wake_waiters() noexcept
    {
        if (waiters_.load() != 0) {
            std::lock_guard lk(wait_mu_);
            wait_cv_.notify_all();
        }
    }

    // Completes what a close() collected; a destroy from inside those
    // callbacks must not wait for this very close (see detach()).
    void deliver_closed(op_list& now) noexcept
    {
        const void* saved = detail::tls_closing_core;
        detail::tls_closing_core = this;
        asock::detail::complete_all(now, completion_mode::foreign);
        detail::tls_closing_core = saved;
        closers_.fetch_sub(1); // the core outlives its socket (pooled)
        wake_waiters();
    }

    side& side_for(const operation& op) noexcept
    {
        switch (op.kind) {
        case op_kind::send: return write_;
        case op_kind::receive: return read_;
        case op_kind::notify: break;
        }
        return raw_; // the only notify-kind records that are ever queued are overlapped_ops
    }

    static void set_result(operation& op, result_kind r) noexcept
    {
        const bool c = r == cancelled_result;
        switch (op.kind) {
        case op_kind::send:
            static_cast<send_op&>(op).result = c ? send_result::cancelled : send_result::abandoned;
            break;
        case op_kind::receive:
            static_cast<receive_op&>(op).result = c ? receive_result::cancelled : receive_result::abandoned;
            static_cast<receive_op&>(op).received = 0;
            break;
        case op_kind::notify:
            static_cast<notify_op&>(op).result = c ? notify_io_result::cancelled : notify_io_result::abandoned;
            break;
        }
    }

    // `queued` means "in sd.ops" here: a cancel() must not unlink a record from
    // a list it is not in, so records on `done` and on local lists have it clear.
    static void move_to_done(side& sd, operation& op) noexcept
    {
        sd.done.push_back(&op);
        op.queued = false;
    }

    bool has_outstanding(const side& sd) const noexcept { return &sd == &raw_ ? !sd.ops.empty() : sd.busy; }

    void cancel_outstanding(side& sd) noexcept
    {
        if (&sd == &raw_) {
            for (operation* op = sd.ops.front(); op != nullptr; op = static_cast<operation*>(op->next)) {
                cancel_call(*op);
            }
            return;
        }
        cancel_call(*sd.ops.front());
    }

    // CancelIoEx for the outstanding call of `op` (its side's lock held). When
    // the OS finds nothing to cancel although the completion has not been seen
    // yet, either the completion is on its way (Windows) or the call was busy
    // moving data at that instant and missed the request (Wine does this with
    // a large send): a posted retry asks again until the completion arrives.
    void cancel_call(operation& op) noexcept
    {
        if (!Api::cancel_io_ex(socket_, &detail::ext_of(op).overlapped)) {
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
        threadpool_socket_core* self = static_cast<kick_item*>(w)->self;
        self->retry_pending_.store(false);
        bool again = false;
        for (side* sd : self->sides()) {
            std::lock_guard lk(sd->mu);
            const bool closing = !self->is_open();
            for (operation* op = sd->ops.front(); op != nullptr; op = static_cast<operation*>(op->next)) {
                const bool outstanding = sd == &self->raw_ || (sd->busy && op == sd->ops.front());
                if (!outstanding) {
                    break;
                }
                if ((closing || op->cancel_requested) &&
                    !Api::cancel_io_ex(self->socket_, &detail::ext_of(*op).overlapped)) {
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

    int issue_send(send_op& op) noexcept
    {
        WSABUF bufs[detail::max_wsabuf];
        DWORD n = 0;
        DWORD asked = 0;
        for (std::uint32_t i = op.index; i < op.count && n < detail::max_wsabuf; ++i, ++n) {
            const std::uint32_t skip = i == op.index ? op.offset : 0;
            // 01_056: the WSABUFs point at the caller's buffers; nothing is copied.
            bufs[n].buf = const_cast<CHAR*>(static_cast<const CHAR*>(op.buffers[i].data)) + skip;
            bufs[n].len = op.buffers[i].size - skip;
            asked += bufs[n].len; // at most op.total, which fits
        }
        detail::op_ext& x = detail::begin_ext(op, asked);
        pending_.fetch_add(1, std::memory_order_relaxed);
        write_.busy = true;
        Api::start_io(io_);                                                  // 01_060
        if (Api::wsa_send(socket_, bufs, n, nullptr, 0, &x.overlapped) == 0) { // 01_061
            return 0; // done at once; the completion still arrives through the callback
        }
        const int err = Api::wsa_get_last_error(); // 01_062
        if (err == WSA_IO_PENDING) {
            return 0; // 01_053
        }
        Api::cancel_io(io_); // 01_100, 01_106
        write_.busy = false;
        pending_.fetch_sub(1, std::memory_order_relaxed);
        return err != 0 ? err : WSAEFAULT;
    }

    int issue_receive(receive_op& op) noexcept
    {
        WSABUF bufs[detail::max_wsabuf];
        DWORD n = 0;
        DWORD asked = 0;
        for (std::uint32_t i = 0; i < op.count && n < detail::max_wsabuf; ++i, ++n) {
            bufs[n].buf = static_cast<CHAR*>(op.buffers[i].data); // 01_079
            bufs[n].len = op.buffers[i].size;
            asked += bufs[n].len;
        }
        detail::op_ext& x = detail::begin_ext(op, asked);
        pending_.fetch_add(1, std::memory_order_relaxed);
        read_.busy = true;
        Api::start_io(io_); // 01_081
        DWORD flags = 0;
        if (Api::wsa_recv(socket_, bufs, n, nullptr, &flags, &x.overlapped) == 0) { // 01_082
            return 0;
        }
        const int err = Api::wsa_get_last_error(); // 01_054
        if (err == WSA_IO_PENDING) {
            return 0; // 01_055
        }
        Api::cancel_io(io_); // 01_099
        read_.busy = false;
        pending_.fetch_sub(1, std::memory_order_relaxed);
        return err != 0 ? err : WSAEFAULT;
    }

    // Issues the next queued sends until one is outstanding (write lock held, OPEN).
    void issue_queued_sends() noexcept
    {
        while (!write_.busy && !write_.ops.empty()) {
            auto& next = static_cast<send_op&>(*write_.ops.front());
            int err = WSAEFAULT;
            if (!send_poisoned_) {
                err = issue_send(next);
                if (err == 0) {
                    break;
                }
            }
            write_.ops.unlink(&next);
            next.result = err == WSAECONNRESET ? send_result::abandoned : send_result::error;
            move_to_done(write_, next);
        }
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
            next.result = err == WSAECONNRESET ? receive_result::abandoned : receive_result::error;
            next.received = 0;
            move_to_done(read_, next);
        }
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

    // ---- completions -----------------------------------------------------------

    static VOID CALLBACK on_io_complete(PTP_CALLBACK_INSTANCE, PVOID context, PVOID overlapped, ULONG io_result,
                                        ULONG_PTR bytes, PTP_IO) noexcept
    {
        if (overlapped == nullptr) {
            return; // 01_063
        }
        auto* self = static_cast<threadpool_socket_core*>(context);
        auto* x = reinterpret_cast<detail::op_ext*>(overlapped); // 01_064
        operation& op = *x->op;
        const DWORD asked = x->asked;
        typename engine_type::callback_scope scope(*self->engine_);
        switch (op.kind) {
        case op_kind::send: self->send_completed(static_cast<send_op&>(op), asked, io_result, bytes); break;
        case op_kind::receive:
            self->receive_completed(static_cast<receive_op&>(op), asked, io_result, bytes);
            break;
        case op_kind::notify: self->overlapped_completed(static_cast<overlapped_op&>(op), io_result, bytes); break;
        }
    }

    void send_completed(send_op& op, DWORD asked, ULONG err, ULONG_PTR bytes) noexcept // 01_065
    {
        std::unique_lock lk(write_.mu);
        write_.busy = false;
        const bool open = is_open();
        bool finished = true;
        if (err == NO_ERROR && bytes == asked) {
            advance(op, asked);
            if (op.sent == op.total) {
                op.result = send_result::ok; // 01_066
            } else if (!open) {
                op.result = send_result::abandoned;
            } else if (op.cancel_requested) {
                op.result = send_result::cancelled; // between two calls of a long buffer list
                send_poisoned_ = true;
            } else {
                const int e = issue_send(op); // the next WSABUF batch of this send
                finished = e != 0;
                if (finished) {
                    op.result = e == WSAECONNRESET ? send_result::abandoned : send_result::error;
                }
            }
        } else if (err == NO_ERROR) {
            op.result = send_result::error; // 01_102: fewer (or more) bytes than asked
        } else if (!open) {
            op.result = send_result::abandoned; // cancelled by close()
        } else if (err == ERROR_OPERATION_ABORTED && op.cancel_requested) {
            op.result = send_result::cancelled;
            send_poisoned_ = true; // how much of it reached the wire is unknown: later sends fail
        } else {
            op.result = send_result::error; // 01_067
        }
        if (finished) {
            write_.ops.unlink(&op);
            move_to_done(write_, op);
            if (open) {
                issue_queued_sends();
            } else {
                abandon_rest(write_);
            }
        }
        const bool last = call_returned();
        lk.unlock();
        after_completion(write_, last);
    }

    void receive_completed(receive_op& op, DWORD asked, ULONG err, ULONG_PTR bytes) noexcept // 01_071
    {
        std::unique_lock lk(read_.mu);
        read_.busy = false;
        const bool open = is_open();
        op.received = 0;
        if (bytes > 0 && (err == NO_ERROR || err == ERROR_OPERATION_ABORTED)) {
            const auto wide = static_cast<std::uint64_t>(bytes);
            op.received = wide > 0xFFFFFFFFull ? 0xFFFFFFFFu : static_cast<std::uint32_t>(wide);
            op.result = bytes > asked ? receive_result::error // 01_095
                                      : receive_result::ok;   // 01_069; also a cancel that lost the race
        } else if (err == NO_ERROR) {
            op.result = receive_result::abandoned; // 42_003: the peer closed
        } else if (err == ERROR_NETNAME_DELETED || err == ERROR_CONNECTION_ABORTED) {
            op.result = receive_result::abandoned; // 42_001
        } else if (!open) {
            op.result = receive_result::abandoned; // cancelled by close()
        } else if (err == ERROR_OPERATION_ABORTED && op.cancel_requested) {
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
        const bool last = call_returned();
        lk.unlock();
        after_completion(read_, last);
    }

    void overlapped_completed(overlapped_op& op, ULONG err, ULONG_PTR bytes) noexcept
    {
        std::unique_lock lk(raw_.mu);
        const bool open = is_open();
        op.io_result = err;
        op.bytes = static_cast<DWORD>(bytes);
        if (err == NO_ERROR) {
            op.result = notify_io_result::in;
        } else if (!open) {
            op.result = notify_io_result::abandoned;
        } else if (err == ERROR_OPERATION_ABORTED && op.cancel_requested) {
            op.result = notify_io_result::cancelled;
        } else {
            op.result = notify_io_result::error;
        }
        raw_.ops.unlink(&op);
        move_to_done(raw_, op);
        const bool last = call_returned();
        lk.unlock();
        after_completion(raw_, last);
    }

    // One outstanding call came back. True when it was the last one a close()
    // deferred to the engine was waiting for: the caller finishes that close.
    bool call_returned() noexcept
    {
        const std::uint32_t prev = pending_.fetch_sub(1);
        if ((prev & count_mask) != 1) {
            return false;
        }
        wake_waiters();
        return (prev & deferred_bit) != 0;
    }

    void after_completion(side& sd, bool finish_close_here) noexcept
    {
        if (finish_close_here) {
            finish_deferred_close();
        } else {
            deliver(sd);
        }
    }

    // Calls the hooks of `sd.done` in order, one thread at a time per side, while OPEN.
    void deliver(side& sd) noexcept
    {
        std::unique_lock lk(sd.mu);
        if (sd.delivering) {
            return; // the thread delivering now takes ours too, in order
        }
        sd.delivering = true;
        deliverers_.fetch_add(1);
        while (is_open() && !sd.done.empty()) {
            op_list batch;
            batch.splice_back(sd.done);
            lk.unlock();
            asock::detail::complete_all(batch, completion_mode::engine_thread);
            lk.lock(); // the core outlives its socket (pooled): safe even if a hook destroyed it
        }
        sd.delivering = false;
        if (deliverers_.fetch_sub(1) == 1) {
            wake_waiters();
        }
    }

    struct kick_item : work_item {
        threadpool_socket_core* self = nullptr;
    };

    static void run_kick(work_item* w) noexcept
    {
        threadpool_socket_core* self = static_cast<kick_item*>(w)->self;
        self->kick_pending_.store(false, std::memory_order_release);
        for (side* sd : self->sides()) {
            self->deliver(*sd);
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

    void wait_outstanding() noexcept
    {
        wait_for([&] { return (pending_.load() & count_mask) == 0; });
    }

    // Lets hooks being called on other threads (IO callbacks, kicks) finish, so
    // that every completion is delivered before close() returns, and in order.
    void wait_deliverers() noexcept
    {
        wait_for([&] { return deliverers_.load() == 0; });
    }

    // Nothing outstanding any more: release the IO and the environment,
    // disconnect the handle, CLOSED.
    void finish_close() noexcept
    {
        Api::close_io(io_); // 01_059
        io_ = nullptr;
        Api::destroy_environment(&env_); // 01_042
        if (owner_.disconnect != nullptr) {
            owner_.disconnect(owner_.context, socket_); // 01_021
        }
        set_state(socket_state::closed);
    }

    // Runs in the callback whose completion was the last one a close() on an
    // engine thread left outstanding.
    void finish_deferred_close() noexcept
    {
        pending_.store(0);
        op_list now;
        collect_all(now);
        finish_close();
        asock::detail::complete_all(now, completion_mode::engine_thread);
        bool destroy = false;
        bool release = false;
        {
            std::lock_guard lk(life_mu_);
            deferred_.store(false);
            destroy = std::exchange(detached_, false);
            release = std::exchange(released_, false);
        }
        engine_type* e = engine_;
        if (destroy) {
            destroy_handle();
        }
        if (release) {
            e->recycle_core(this);
        }
        e->dec_ref(); // the reference close() took; `this` may be reused from here on
    }

    void destroy_handle() noexcept
    {
        if (opened_ && owner_.destroy != nullptr) {
            owner_.destroy(owner_.context, socket_); // 01_005
        }
        socket_ = INVALID_SOCKET;
        owner_ = {};
        opened_ = false;
        custom_transport_ = false;
        send_poisoned_ = false;
        set_state(socket_state::created);
    }

    engine_type* engine_ = nullptr;
    owner_type owner_{};
    SOCKET socket_ = INVALID_SOCKET;
    PTP_IO io_ = nullptr;
    TP_CALLBACK_ENVIRON env_{};
    bool opened_ = false;
    bool custom_transport_ = false;
    bool send_poisoned_ = false; // guarded by write_.mu
    std::atomic<socket_state> state_{socket_state::created};
    std::atomic<std::uint32_t> pending_{0};    // outstanding calls | deferred_bit
    std::atomic<std::uint32_t> deliverers_{0}; // sides whose hooks are being called right now
    std::atomic<std::uint32_t> closers_{0};    // close() calls not done calling their completions
    std::atomic<std::uint32_t> waiters_{0};    // threads in wait_for()
    std::mutex wait_mu_;
    std::condition_variable wait_cv_;
    std::atomic<bool> kick_pending_{false};
    kick_item kick_item_{};
    std::atomic<bool> retry_pending_{false};
    kick_item retry_item_{}; // run_cancel_retry
    std::mutex life_mu_;
    std::atomic<bool> deferred_{false}; // a close() left to finish on the engine (written under life_mu_)
    bool detached_ = false; // ... and the socket was destroyed meanwhile
    bool released_ = false; // ... and the core was given back to the engine meanwhile
    side read_;
    side write_;
    side raw_; // overlapped_ops of the TCP helpers
};

} // namespace asock::win32
