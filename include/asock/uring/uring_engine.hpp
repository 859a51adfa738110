// asock/uring/uring_engine.hpp: the execution engine of the io_uring backend.
//
// An engine owns one ring (submission and completion queue), the threads that
// run its loop, its timers and the pool of socket cores. Reference counted and
// destroyed as every engine is (asock/detail/engine_support.hpp); the same
// interface as the epoll engine: post, add_timer / cancel_timer / now, run /
// run_one / poll / stop / restart, thread_count, running_in_this_thread,
// loop_unattended.
//
// Design (docs/design.md, "The io_uring backend"):
// - Two locks guard the ring: one for the submission side (preparing entries,
//   io_uring_enter to submit them), one for the completion side (taking
//   completions, waiting for them). A thread of the engine's loop holds the
//   completion side while it waits in the kernel; no one holds both.
// - A submission made on a thread that is running a turn of the loop stays in
//   the submission queue until that turn ends: the next turn gives every one
//   of them to the kernel with one io_uring_enter. A submission made on any
//   other thread is given to the kernel at once (no loop may be coming: an
//   engine without threads, or a loop asleep in the kernel).
// - A turn: submit what is queued; take up to a batch of completions (waiting
//   for one, bounded by the next timer's deadline, when there is nothing to
//   do); call each one's completion function; run the due timers; run the
//   posted work (at most 9 rounds of what it posts in turn). Before each
//   completion, the timer batch and each posted item the thread's inline
//   budget is refilled (detail/inline_budget.hpp): each bounds its own chain. With several threads, one waits in the kernel at a time, and
//   the others wait for the completion side; each runs its own batch.
// - Posted work from other threads, stop() and a new earliest timer wake a
//   waiting loop with an IORING_OP_NOP (wake_tag), at most one outstanding
//   for posted work.
// - A completion's user_data is the address of its call record (a call_base,
//   whose `complete` function knows the socket core). Completions whose
//   user_data is a tag (a wake-up, the result of an ASYNC_CANCEL) are
//   dropped.
// - A close() that waits for the calls it cancelled collects completions
//   itself (collect_for_close, through the policy's Io::drive): the rest of
//   its own thread's batch first (a hook of that batch may be the closer),
//   then the completion queue, when no other thread is at it. While it does,
//   caller_runs_loop() is true on that thread: socket cores queue the hooks
//   of what it collects for a loop rather than run them there, inside
//   someone else's close.
#pragma once

#include <asock/detail/engine_support.hpp>
#include <asock/detail/inline_budget.hpp>
#include <asock/detail/operation.hpp>
#include <asock/detail/timer_queue.hpp>
#include <asock/uring/uring_socket_core.hpp>
#include <asock/uring/uring_types.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

namespace asock::uring {

struct engine_options {
    /// Threads the engine starts for its loop. 0: none; the caller runs the
    /// loop with run() / run_one() / poll().
    unsigned threads = 1;
    /// Submission queue entries (the completion queue has twice as many).
    unsigned entries = 256;
};

namespace detail {
/// The engine whose loop the current thread is running, and the work that
/// loop's turn posted to itself (run before the next wait, with no wake-up).
struct loop_context {
    const void* engine = nullptr;
    asock::detail::work_item* head = nullptr;
    asock::detail::work_item* tail = nullptr;
};
/// Completions a thread took from the ring and is calling, in order.
struct batch_view {
    const void* engine = nullptr;
    completion* items = nullptr;
    unsigned len = 0;
    unsigned pos = 0;
};
inline thread_local loop_context tls_loop{};
inline thread_local batch_view* tls_batch = nullptr;
/// The engine one of whose completion functions this thread is running.
inline thread_local const void* tls_callback = nullptr;
/// The engine whose completions a close() on this thread is collecting.
inline thread_local const void* tls_collecting = nullptr;
} // namespace detail

template <class Ring>
class basic_uring_engine
    : public asock::detail::engine_lifetime<basic_uring_engine<Ring>, engine_options> {
    using lifetime = asock::detail::engine_lifetime<basic_uring_engine<Ring>, engine_options>;
    friend lifetime;

public:
    using core_type = uring_socket_core<Ring>;
    using work_item = asock::detail::work_item;
    using ring_type = Ring;

    /// user_data of the engine's own submissions, which no call record has.
    static constexpr std::uint64_t ignore_tag = 0; ///< ASYNC_CANCEL results
    static constexpr std::uint64_t wake_tag = 1;   ///< IORING_OP_NOP wake-ups

    // create(options) (nullptr when the kernel refuses a ring, or a thread
    // cannot be had), acquire_default(), inc_ref(), dec_ref(), use_count():
    // detail::engine_lifetime.

    unsigned thread_count() const noexcept { return static_cast<unsigned>(threads_.size()); }

    /// The ring (the unit tests' fake reads what was submitted).
    Ring& ring() noexcept { return ring_; }

    /// True on a thread running this engine's loop, or one of its
    /// completion functions.
    bool running_in_this_thread() const noexcept
    {
        return detail::tls_loop.engine == this || detail::tls_callback == this;
    }

    /// True on a thread that must not run socket hooks now, only queue them
    /// for a loop (the completion core asks): a close() collecting the
    /// completions it waits for. (The name is the completion core's: on
    /// Windows it is true for an engine whose caller runs the loop.)
    bool caller_runs_loop() const noexcept { return detail::tls_collecting == this; }

    /// True for an engine without threads whose loop no thread is running now.
    bool loop_unattended() const noexcept
    {
        return own_threads_ == 0 && callers_in_loop_.load(std::memory_order_acquire) == 0;
    }

    // ---- running the loop (for engines created with threads == 0) ----------

    /// Runs the loop on the calling thread until stop(). Returns the number of
    /// completions, timers and posted items handled.
    std::size_t run() noexcept
    {
        loop_scope scope(this);
        std::size_t n = 0;
        while (!stop_.load(std::memory_order_acquire)) {
            n += run_batch(-1);
        }
        return n;
    }

    /// Waits up to `timeout_ms` (-1: forever) for completions, posted work or
    /// a due timer, handles one batch.
    std::size_t run_one(int timeout_ms = -1) noexcept
    {
        loop_scope scope(this);
        return run_batch(timeout_ms);
    }

    /// Handles whatever is ready now, without waiting.
    std::size_t poll() noexcept { return run_one(0); }

    /// Makes run() return and the engine's threads leave their loop.
    void stop() noexcept
    {
        stop_.store(true, std::memory_order_release);
        wake(); // the thread waiting in the kernel; the others check stop_ before they wait
    }

    /// Undoes stop() so run() can be called again.
    void restart() noexcept { stop_.store(false, std::memory_order_release); }

    bool stopped() const noexcept { return stop_.load(std::memory_order_acquire); }

    /// Runs `item->run(item)` later on an engine thread. Never allocates. From
    /// a thread running the loop it costs no system call.
    void post(work_item* item) noexcept
    {
        item->next = nullptr;
        detail::loop_context& tls = detail::tls_loop;
        if (tls.engine == this && detail::tls_collecting != this) {
            if (tls.tail != nullptr) {
                tls.tail->next = item;
            } else {
                tls.head = item;
            }
            tls.tail = item;
            return;
        }
        bool need_wake = false;
        {
            std::lock_guard lk(post_mu_);
            if (post_tail_ != nullptr) {
                post_tail_->next = item;
            } else {
                post_head_ = item;
            }
            post_tail_ = item;
            need_wake = !wake_pending_;
            wake_pending_ = true;
            has_posted_.store(true, std::memory_order_release);
        }
        if (need_wake) {
            wake();
        }
    }

    // ---- timers (include/asock/detail/timer_queue.hpp) --------------------------

    using clock = asock::detail::timer_clock;

    clock::time_point now() const noexcept { return Ring::now(); }

    bool add_timer(asock::detail::timer_node* node) noexcept
    {
        bool earlier = false;
        const bool added = timers_.add(node, [&](clock::time_point t) { earlier = arm(t); });
        if (earlier && !sole_loop_thread()) {
            wake(); // a loop asleep in the kernel sleeps until a later deadline
        }
        return added;
    }

    bool cancel_timer(asock::detail::timer_node* node) noexcept { return timers_.remove(node); }

    // ---- socket cores ----------------------------------------------------------

    core_type* acquire_core() noexcept { return cores_.acquire(); }

    /// Returns a detached core to the pool, or leaves it to a close still
    /// finishing on it (which recycles it).
    void release_core(core_type* c) noexcept
    {
        if (c->try_release()) {
            recycle_core(c);
        }
    }

    void recycle_core(core_type* c) noexcept { cores_.release(c); }

    /// Marks the current thread as running one of this engine's completion
    /// functions.
    class callback_scope {
    public:
        explicit callback_scope(basic_uring_engine& e) noexcept : saved_(detail::tls_callback)
        {
            detail::tls_callback = &e;
        }
        ~callback_scope() { detail::tls_callback = saved_; }
        callback_scope(const callback_scope&) = delete;
        callback_scope& operator=(const callback_scope&) = delete;

    private:
        const void* saved_;
    };

    // ---- for the socket cores' policy (uring_io) -----------------------------------

    /// Queues one submission: given to the kernel at the end of this turn on
    /// a thread running the loop, at once elsewhere. 0, or EBUSY when the
    /// submission queue stays full even after submitting what it holds.
    int submit(const submission& s) noexcept
    {
        std::lock_guard lk(sq_mu_);
        if (!ring_.prep(s)) {
            static_cast<void>(ring_.submit());
            if (!ring_.prep(s)) {
                return EBUSY;
            }
        }
        published_.fetch_add(1, std::memory_order_release);
        if (detail::tls_loop.engine != this || detail::tls_collecting == this) {
            // A failure leaves the entries queued: the next submit gives them.
            static_cast<void>(ring_.submit());
        }
        return 0;
    }

    /// A close() waiting for the completions of the calls it cancelled: the
    /// rest of this thread's batch, then the completion queue if no other
    /// thread holds it (waiting a moment for a completion), else a short
    /// pause while that thread does the work. Hooks are queued for a loop
    /// meanwhile (caller_runs_loop()).
    void collect_for_close() noexcept
    {
        const void* saved = detail::tls_collecting;
        detail::tls_collecting = this;
        std::size_t n = 0;
        if (detail::tls_batch != nullptr && detail::tls_batch->engine == this) {
            n += dispatch(*detail::tls_batch);
        }
        submit_queued();
        completion items[batch_size];
        detail::batch_view view{this, items, 0, 0};
        bool collected = false;
        if (cq_mu_.try_lock()) {
            view.len = ring_.peek(items, batch_size);
            if (view.len == 0 && n == 0) {
                static_cast<void>(ring_.wait(1));
                view.len = ring_.peek(items, batch_size);
            }
            cq_mu_.unlock();
            collected = true;
        }
        detail::batch_view* outer = detail::tls_batch;
        detail::tls_batch = &view;
        dispatch(view);
        detail::tls_batch = outer;
        detail::tls_collecting = saved;
        if (!collected) {
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }

private:
    static constexpr unsigned batch_size = 32;
    static constexpr std::int64_t never = std::numeric_limits<std::int64_t>::max();

    basic_uring_engine() = default;
    ~basic_uring_engine() = default;

    struct loop_scope {
        explicit loop_scope(basic_uring_engine* e) noexcept : self(e), saved(detail::tls_loop)
        {
            detail::tls_loop = detail::loop_context{e, nullptr, nullptr};
            if (e->own_threads_ == 0) {
                e->callers_in_loop_.fetch_add(1, std::memory_order_acq_rel);
            }
        }
        ~loop_scope()
        {
            // Entries this thread queued and no turn submitted go now.
            self->submit_queued();
            if (self->own_threads_ == 0) {
                self->callers_in_loop_.fetch_sub(1, std::memory_order_acq_rel);
            }
            // Work posted to this thread but not yet run stays queued on the engine.
            detail::loop_context& tls = detail::tls_loop;
            asock::detail::work_item* h = tls.head;
            tls = saved;
            while (h != nullptr) {
                asock::detail::work_item* n = h->next;
                self->post(h);
                h = n;
            }
            if (self->orphaned_ && saved.engine != self) {
                self->destroy_now(); // the last reference went while this loop ran
            }
        }
        basic_uring_engine* self;
        detail::loop_context saved;
    };

    bool init(const engine_options& options) noexcept
    {
        if (ring_.init(options.entries == 0 ? 256u : options.entries) != 0) {
            return false;
        }
        ring_live_ = true;
        own_threads_ = options.threads;
        try {
            threads_.reserve(options.threads);
            for (unsigned i = 0; i < options.threads; ++i) {
                threads_.emplace_back([this] { thread_main(); });
            }
        } catch (...) {
            return false;
        }
        return true;
    }

    static engine_options default_engine_options() noexcept { return engine_options{1, 256}; }

    asock::detail::last_reference_site last_reference_site_here() const noexcept
    {
        if (is_loop_thread()) {
            return asock::detail::last_reference_site::own_thread;
        }
        return detail::tls_loop.engine == this ? asock::detail::last_reference_site::caller_loop
                                               : asock::detail::last_reference_site::elsewhere;
    }

    void orphan_in_caller_loop() noexcept
    {
        orphaned_ = true;
        stop_.store(true, std::memory_order_release);
    }

    void destroy_now() noexcept
    {
        if (ring_live_) {
            stop();
        }
        for (auto& t : threads_) {
            if (t.joinable()) {
                t.join();
            }
        }
        threads_.clear();
        run_leftovers();
        if (ring_live_) {
            ring_.exit();
        }
        delete this;
    }

    // As the epoll engine: pending timers complete with `shutdown` set, and
    // posted work runs on the destroying thread, until none is left.
    void run_leftovers() noexcept
    {
        const detail::loop_context saved = detail::tls_loop;
        detail::tls_loop = detail::loop_context{this, nullptr, nullptr};
        asock::detail::run_timer_list(timers_.close());
        while (detail::tls_loop.head != nullptr || has_posted_.load(std::memory_order_acquire)) {
            run_posted_once();
        }
        detail::tls_loop = saved;
    }

    void thread_main() noexcept
    {
        loop_scope scope(this);
        while (!stop_.load(std::memory_order_acquire)) {
            run_batch(-1);
        }
    }

    bool is_loop_thread() const noexcept
    {
        const auto me = std::this_thread::get_id();
        for (const auto& t : threads_) {
            if (t.get_id() == me) {
                return true;
            }
        }
        return false;
    }

    // The current thread runs this engine's loop and no other thread does:
    // it sees every change before it next waits.
    bool sole_loop_thread() const noexcept
    {
        return detail::tls_loop.engine == this &&
               (own_threads_ == 1 || (own_threads_ == 0 && callers_in_loop_.load(std::memory_order_acquire) == 1));
    }

    void submit_queued() noexcept
    {
        std::lock_guard lk(sq_mu_);
        if (ring_.sq_ready() != 0) {
            static_cast<void>(ring_.submit());
        }
    }

    void wake() noexcept
    {
        submission s;
        s.op = op_code::nop;
        s.user_data = wake_tag;
        std::lock_guard lk(sq_mu_);
        if (!ring_.prep(s)) {
            static_cast<void>(ring_.submit());
            static_cast<void>(ring_.prep(s));
        }
        static_cast<void>(ring_.submit());
    }

    // Sets the OS side of the timer queue: the deadline the loop waits for.
    // True when it is earlier than what was set.
    bool arm(clock::time_point t) noexcept
    {
        const std::int64_t v = t.time_since_epoch().count();
        std::int64_t cur = next_deadline_.load(std::memory_order_acquire);
        while (v < cur) {
            if (next_deadline_.compare_exchange_weak(cur, v, std::memory_order_acq_rel)) {
                return true;
            }
        }
        return false;
    }

    // How long a turn may wait in the kernel: `timeout_ms` (-1: no limit),
    // bounded by the next timer's deadline (rounded up to a millisecond).
    int wait_limit(int timeout_ms) const noexcept
    {
        const std::int64_t d = next_deadline_.load(std::memory_order_acquire);
        if (d == never) {
            return timeout_ms;
        }
        const auto left = clock::time_point(clock::duration(d)) - Ring::now();
        if (left <= clock::duration::zero()) {
            return 0;
        }
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
        const int bounded = ms > 3600000 ? 3600000 : static_cast<int>(ms);
        return timeout_ms < 0 || bounded < timeout_ms ? bounded : timeout_ms;
    }

    std::size_t run_batch(int timeout_ms) noexcept
    {
        detail::loop_context& tls = detail::tls_loop;
        submit_queued();
        completion items[batch_size];
        detail::batch_view view{this, items, 0, 0};
        {
            std::lock_guard lk(cq_mu_);
            view.len = ring_.peek(items, batch_size);
            if (view.len == 0 && timeout_ms != 0 && tls.head == nullptr &&
                !has_posted_.load(std::memory_order_acquire) && !stop_.load(std::memory_order_acquire)) {
                const int limit = wait_limit(timeout_ms);
                if (limit != 0) {
                    static_cast<void>(ring_.wait(limit));
                    view.len = ring_.peek(items, batch_size);
                }
            }
        }
        detail::batch_view* outer = detail::tls_batch;
        detail::tls_batch = &view;
        std::size_t handled = dispatch(view);
        detail::tls_batch = outer;
        asock::detail::refill_inline_budget();
        handled += run_due_timers();
        return handled + run_posted();
    }

    // Calls the completion function of each completion of `view` not called
    // yet, in order; a close() inside one of them may call the rest
    // (collect_for_close).
    std::size_t dispatch(detail::batch_view& view) noexcept
    {
        // What a call's thread wrote into its record before submitting it
        // (published_, a release) is seen here: the kernel orders it already,
        // this says so in terms the C++ memory model (and TSan) knows.
        static_cast<void>(published_.load(std::memory_order_acquire));
        std::size_t n = 0;
        while (view.pos < view.len) {
            const completion c = view.items[view.pos++];
            if (c.user_data == ignore_tag || c.user_data == wake_tag) {
                continue;
            }
            auto* call = reinterpret_cast<call_base*>(static_cast<std::uintptr_t>(c.user_data));
            // Each completion may set off one chain of inline completions,
            // bounded by a fresh budget (detail/inline_budget.hpp).
            asock::detail::refill_inline_budget();
            call->complete(call, c.res);
            ++n;
        }
        return n;
    }

    std::size_t run_due_timers() noexcept
    {
        const std::int64_t d = next_deadline_.load(std::memory_order_acquire);
        if (d == never) {
            return 0;
        }
        const clock::time_point t = Ring::now();
        if (t.time_since_epoch().count() < d) {
            return 0;
        }
        next_deadline_.store(never, std::memory_order_release);
        return asock::detail::run_timer_list(timers_.take_due(t, [this](clock::time_point at) { arm(at); }));
    }

    std::size_t run_posted() noexcept
    {
        // Work that this thread posts while running posted work runs in the
        // same turn, at most 9 rounds deep, and none more after an item that
        // spent its whole inline budget: what that chain deferred waits
        // behind the next look at the completion queue (the turn does not
        // wait in the kernel while tls_loop holds work).
        bool spent = false;
        std::size_t n = run_posted_once(spent);
        for (int round = 0; round < 8 && !spent && detail::tls_loop.head != nullptr; ++round) {
            n += run_posted_once(spent);
        }
        return n;
    }

    std::size_t run_posted_once() noexcept
    {
        bool spent = false;
        return run_posted_once(spent);
    }

    /// Runs what was posted until now; sets `spent` when an item used up its
    /// chain's inline budget.
    std::size_t run_posted_once(bool& spent) noexcept
    {
        detail::loop_context& tls = detail::tls_loop;
        work_item* local = tls.head;
        tls.head = tls.tail = nullptr;
        work_item* shared = nullptr;
        if (has_posted_.load(std::memory_order_acquire)) {
            std::lock_guard lk(post_mu_);
            shared = post_head_;
            post_head_ = post_tail_ = nullptr;
            wake_pending_ = false;
            has_posted_.store(false, std::memory_order_relaxed);
        }
        std::size_t n = 0;
        for (work_item* list : {local, shared}) {
            while (list != nullptr) {
                work_item* next = list->next;
                asock::detail::refill_inline_budget(); // each item: a chain of its own
                list->run(list);
                spent = spent || asock::detail::inline_budget_spent();
                list = next;
                ++n;
            }
        }
        return n;
    }

    Ring ring_;
    bool ring_live_ = false;
    std::mutex sq_mu_; // the submission side of ring_
    std::mutex cq_mu_; // the completion side of ring_
    std::atomic<bool> stop_{false};
    bool orphaned_ = false;
    unsigned own_threads_ = 0;
    std::atomic<unsigned> callers_in_loop_{0};
    std::vector<std::thread> threads_;

    std::mutex post_mu_;
    work_item* post_head_ = nullptr;
    work_item* post_tail_ = nullptr;
    bool wake_pending_ = false;
    std::atomic<bool> has_posted_{false};

    std::atomic<std::int64_t> next_deadline_{never};
    std::atomic<std::uint64_t> published_{0}; // submissions prepared (see dispatch)
    asock::detail::timer_queue timers_;
    asock::detail::core_pool<core_type> cores_;
};

} // namespace asock::uring
