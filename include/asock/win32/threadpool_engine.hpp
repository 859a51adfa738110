// asock/win32/threadpool_engine.hpp: the execution engine of the Windows backend.
//
// An engine owns a thread pool (CreateThreadpool, its minimum and maximum
// thread counts configurable), one work object that runs posted items, and the
// pool of socket cores. It keeps Winsock started for its lifetime (WSAStartup
// when created, WSACleanup when destroyed; Winsock counts the pairs). It is
// reference counted, as the spec's execution engine is: every socket holds a
// reference, so the engine outlives its sockets.
//
// Two ways to run it, as on Linux (include/asock/linux/epoll_engine.hpp):
// - a pool of threads (`threads >= 1`, or min_threads / max_threads): IO
//   completions and posted items run on the pool's threads;
// - `threads == 0`: no engine threads; the caller runs the loop with run(),
//   run_one() or poll(). The pool (one thread kept) still receives the IO
//   completions, as threadpool IO must, but only settles them there: the
//   hooks of the completed operations (callbacks, awaiter resumptions) and
//   every posted item go to a queue that only run() / run_one() / poll()
//   drain, on the caller's thread.
//
// Timers (include/asock/detail/timer_queue.hpp) share one threadpool timer
// per engine, created in the engine's callback environment and set to the
// earliest deadline. When it fires, a pool engine runs the due timers on the
// pool thread that got the callback; an engine without threads puts them in
// its loop's queue, so run() / run_one() / poll() run them on the caller's
// thread (and run_one(timeout) returns when one is due).
#pragma once

#include <asock/detail/engine_support.hpp>
#include <asock/detail/inline_budget.hpp>
#include <asock/detail/operation.hpp>
#include <asock/detail/timer_queue.hpp>
#include <asock/win32/threadpool_socket_core.hpp>
#include <asock/win32/win32_api.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <utility>
#include <vector>

namespace asock::win32 {

struct engine_options {
    /// The value of `threads` and `min_threads` when they are not given.
    static constexpr unsigned unset = ~0u;
    /// As the Linux engine's `threads`:
    /// - n >= 1: the pool keeps exactly n threads (minimum = maximum);
    /// - 0: no engine threads; the caller runs the loop with run() /
    ///   run_one() / poll(), and completions and posted work run only there;
    /// - not given: min_threads / max_threads apply (the C API's
    ///   execution_engine_create gives those).
    unsigned threads = unset;
    /// Threads the pool keeps alive; not given: 4 (the spec's DEFAULT_MIN_THREAD_COUNT).
    unsigned min_threads = unset;
    /// Most threads the pool may run; 0: no maximum beyond the system's
    /// (DEFAULT_MAX_THREAD_COUNT). Must not be below min_threads.
    unsigned max_threads = 0;
};

namespace detail {
/// The engine whose caller-run loop (run / run_one / poll of an engine with
/// `threads = 0`) this thread is running.
inline thread_local const void* tls_loop = nullptr;
} // namespace detail

template <class Api>
class basic_threadpool_engine : public asock::detail::engine_lifetime<basic_threadpool_engine<Api>, engine_options> {
    using lifetime = asock::detail::engine_lifetime<basic_threadpool_engine<Api>, engine_options>;
    friend lifetime;

public:
    using core_type = threadpool_socket_core<Api>;
    using work_item = asock::detail::work_item;

    // create(options) (nullptr when the options are inconsistent: max_threads
    // below min_threads; Winsock does not start; or the OS refuses the pool or
    // its work object), acquire_default(), inc_ref(), dec_ref(), use_count():
    // detail::engine_lifetime. The Windows spec has no NULL execution engine
    // (01_002); the C++ API offers the default engine (default options) for
    // async_socket::on_default_engine, as on Linux.

    /// The pool's minimum thread count (at least 1), or 0 for an engine whose
    /// loop the caller runs (`threads = 0`): generic code (sync_wait(engine,
    /// ...)) then runs the loop on its own thread while it waits.
    unsigned thread_count() const noexcept { return caller_loop_ ? 0u : threads_; }

    /// True for an engine created with `threads = 0`.
    bool caller_runs_loop() const noexcept { return caller_loop_; }

    /// True on a thread that is running this engine's loop (run / run_one /
    /// poll of an engine with `threads = 0`) or one of its callbacks (an IO
    /// completion or a posted item of a pool).
    bool running_in_this_thread() const noexcept { return detail::tls_engine == this; }

    /// True for an engine without threads whose loop no thread is running now.
    /// sync_wait(awaitable) asks, to turn a wait that could never end into a
    /// loud failure (include/asock/detail/sync_wait_probe.hpp).
    bool loop_unattended() const noexcept
    {
        return caller_loop_ && callers_in_loop_.load(std::memory_order_acquire) == 0;
    }

    /// The engine's thread pool (the spec's execution_engine_win32_get_threadpool).
    PTP_POOL pool() const noexcept { return pool_; }

    // ---- running the loop (for engines created with threads == 0) ----------
    //
    // With a pool (threads != 0) there is no loop to run on the caller's
    // thread: run_one() and poll() return 0 at once, and run() only waits for
    // stop().

    /// Runs the loop on the calling thread until stop(). Returns the number of
    /// items (completion deliveries and posted work) handled.
    std::size_t run() noexcept
    {
        if (!caller_loop_) {
            std::unique_lock lk(loop_mu_);
            loop_cv_.wait(lk, [this] { return stop_.load(std::memory_order_acquire); });
            return 0;
        }
        loop_scope scope(this);
        std::size_t n = 0;
        while (!stop_.load(std::memory_order_acquire)) {
            n += run_batch(-1);
        }
        return n;
    }

    /// Waits up to `timeout_ms` (-1: forever; it does not wait once stop()
    /// was called) for work, then handles what is queued. Returns the number
    /// of items handled.
    std::size_t run_one(int timeout_ms = -1) noexcept
    {
        if (!caller_loop_) {
            return 0;
        }
        loop_scope scope(this);
        return run_batch(timeout_ms);
    }

    /// Handles whatever is queued now, without waiting.
    std::size_t poll() noexcept { return run_one(0); }

    /// Makes run() return.
    void stop() noexcept
    {
        {
            std::lock_guard lk(loop_mu_);
            stop_.store(true, std::memory_order_release);
        }
        loop_cv_.notify_all();
    }

    /// Undoes stop() so run() can be called again.
    void restart() noexcept { stop_.store(false, std::memory_order_release); }

    bool stopped() const noexcept { return stop_.load(std::memory_order_acquire); }

    /// Runs `item->run(item)` later. Never allocates: the item is intrusive.
    /// With a pool, each post is one SubmitThreadpoolWork of the engine's
    /// single work object, which runs one item per callback: posted items may
    /// run concurrently, on different threads, in any order. Without threads
    /// (`threads = 0`) the item waits in the loop's queue, in order, until
    /// run() / run_one() / poll() runs it on the caller's thread.
    void post(work_item* item) noexcept
    {
        item->next = nullptr;
        if (caller_loop_) {
            // Notified under the lock: once it is released the loop may run
            // the item, and the engine may go with it.
            std::lock_guard lk(loop_mu_);
            if (loop_tail_ != nullptr) {
                loop_tail_->next = item;
            } else {
                loop_head_ = item;
            }
            loop_tail_ = item;
            loop_cv_.notify_one();
            return;
        }
        {
            std::lock_guard lk(post_mu_);
            if (post_tail_ != nullptr) {
                post_tail_->next = item;
            } else {
                post_head_ = item;
            }
            post_tail_ = item;
        }
        Api::submit_work(work_);
    }

    // ---- timers (include/asock/detail/timer_queue.hpp) --------------------------

    using clock = asock::detail::timer_clock;

    /// The clock of this engine's timers: steady_clock (the fake Win32 layer
    /// of the unit tests gives a virtual one).
    clock::time_point now() const noexcept { return Api::now(); }

    /// Queues a timer; it runs (node->run) on an engine thread when due (a
    /// pool thread, or the caller's loop for an engine with threads = 0), or
    /// with `shutdown` set on the destroying thread when the engine is
    /// destroyed first. False once the engine is being destroyed, or when
    /// cancel_timer came first: the node is not queued.
    bool add_timer(asock::detail::timer_node* node) noexcept
    {
        return timers_.add(node, [this](clock::time_point t) { arm_os_timer(t); });
    }

    /// Withdraws a queued timer; true when it was still queued (it will not
    /// run). Called before add_timer, it makes add_timer refuse the node.
    bool cancel_timer(asock::detail::timer_node* node) noexcept { return timers_.remove(node); }

    // ---- socket cores ----------------------------------------------------------

    /// Takes a core from the pool (one allocation per 64 sockets at most).
    core_type* acquire_core() noexcept { return cores_.acquire(); }

    /// Returns a detached core to the pool; a core whose close is still
    /// finishing on the engine returns itself later (recycle_core).
    void release_core(core_type* c) noexcept
    {
        if (c->try_release()) {
            recycle_core(c);
        }
    }

    /// Puts a core back on the free list. Its memory stays valid until the
    /// engine is destroyed.
    void recycle_core(core_type* c) noexcept { cores_.release(c); }

    /// Marks the current thread as running one of this engine's callbacks, and
    /// keeps the engine from being freed until the callback has left its code.
    class callback_scope {
    public:
        explicit callback_scope(basic_threadpool_engine& e) noexcept : engine_(e), saved_(detail::tls_engine)
        {
            engine_.active_.fetch_add(1, std::memory_order_acq_rel);
            if (saved_ == nullptr) {
                // A pool thread coming from its wait: a new budget of inline
                // completions (asock/detail/inline_budget.hpp).
                asock::detail::refill_inline_budget();
            }
            detail::tls_engine = &engine_;
        }
        ~callback_scope()
        {
            detail::tls_engine = saved_;
            engine_.active_.fetch_sub(1, std::memory_order_release); // the last touch of the engine
        }
        callback_scope(const callback_scope&) = delete;
        callback_scope& operator=(const callback_scope&) = delete;

    private:
        basic_threadpool_engine& engine_;
        const void* saved_;
    };

private:
    basic_threadpool_engine() = default;
    ~basic_threadpool_engine() = default;

    /// Marks the calling thread as running this engine's loop (run / run_one /
    /// poll). The last one to end after the engine's last reference went
    /// inside a loop destroys the engine.
    struct loop_scope {
        explicit loop_scope(basic_threadpool_engine* e) noexcept
            : self(e), saved_engine(detail::tls_engine), saved_loop(detail::tls_loop)
        {
            e->callers_in_loop_.fetch_add(1, std::memory_order_acq_rel);
            detail::tls_engine = e;
            detail::tls_loop = e;
        }
        ~loop_scope()
        {
            detail::tls_engine = saved_engine;
            detail::tls_loop = saved_loop;
            if (self->callers_in_loop_.fetch_sub(1, std::memory_order_acq_rel) == 1 && self->orphaned_.exchange(false)) {
                self->destroy_now(); // the last reference went while this loop ran
            }
        }
        loop_scope(const loop_scope&) = delete;
        loop_scope& operator=(const loop_scope&) = delete;
        basic_threadpool_engine* self;
        const void* saved_engine;
        const void* saved_loop;
    };

    // Waits (up to timeout_ms, -1: forever, not once stopped) until something
    // is queued, then runs what is queued, and what that posts, a few rounds
    // deep (as the Linux loop runs work posted from its own items).
    std::size_t run_batch(int timeout_ms) noexcept
    {
        work_item* list = nullptr;
        {
            std::unique_lock lk(loop_mu_);
            const auto ready = [this] { return loop_head_ != nullptr || stop_.load(std::memory_order_acquire); };
            if (timeout_ms < 0) {
                loop_cv_.wait(lk, ready);
            } else if (timeout_ms > 0) {
                loop_cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), ready);
            }
            list = take_queued_locked();
        }
        // Back from waiting: a new budget of inline completions for this pass
        // (asock/detail/inline_budget.hpp).
        asock::detail::refill_inline_budget();
        std::size_t n = run_list(list);
        for (int round = 0; round < 8 && !asock::detail::inline_budget_spent(); ++round) {
            {
                std::lock_guard lk(loop_mu_);
                list = take_queued_locked();
            }
            if (list == nullptr) {
                break;
            }
            n += run_list(list);
        }
        return n;
    }

    work_item* take_queued_locked() noexcept
    {
        work_item* list = loop_head_;
        loop_head_ = loop_tail_ = nullptr;
        return list;
    }

    static std::size_t run_list(work_item* list) noexcept
    {
        std::size_t n = 0;
        while (list != nullptr) {
            work_item* next = list->next;
            list->run(list);
            list = next;
            ++n;
        }
        return n;
    }

    bool init(const engine_options& options) noexcept
    {
        if (options.threads == 0) {
            return init_caller_loop();
        }
        const bool fixed = options.threads != 0 && options.threads != engine_options::unset;
        const unsigned min_threads = options.min_threads == engine_options::unset ? 4u : options.min_threads;
        const unsigned minimum = fixed ? options.threads : min_threads;
        const unsigned maximum = fixed ? options.threads : options.max_threads;
        if (maximum != 0 && minimum > maximum) {
            return false;
        }
        threads_ = minimum != 0 ? minimum : 1;
        if (Api::wsa_startup() != 0) {
            return false;
        }
        wsa_started_ = true;
        pool_ = Api::create_pool();
        if (pool_ == nullptr) {
            return false;
        }
        if (maximum != 0) {
            Api::set_pool_maximum(pool_, maximum);
        }
        if (minimum != 0 && !Api::set_pool_minimum(pool_, minimum)) {
            return false;
        }
        Api::initialize_environment(&env_);
        env_initialized_ = true;
        Api::set_environment_pool(&env_, pool_);
        work_ = Api::create_work(&basic_threadpool_engine::on_work, this, &env_);
        if (work_ == nullptr) {
            return false;
        }
        return create_os_timer();
    }

    // threads = 0: a pool that keeps one thread for the IO completions (the
    // threadpool IO of each socket is bound to it), and no work object: posted
    // items wait for the caller's loop.
    bool init_caller_loop() noexcept
    {
        caller_loop_ = true;
        threads_ = 0;
        if (Api::wsa_startup() != 0) {
            return false;
        }
        wsa_started_ = true;
        pool_ = Api::create_pool();
        if (pool_ == nullptr) {
            return false;
        }
        if (!Api::set_pool_minimum(pool_, 1)) {
            return false;
        }
        Api::initialize_environment(&env_);
        env_initialized_ = true;
        Api::set_environment_pool(&env_, pool_);
        return create_os_timer();
    }

    static engine_options default_engine_options() noexcept { return engine_options{}; }

    asock::detail::last_reference_site last_reference_site_here() const noexcept
    {
        if (detail::tls_loop == this) {
            // Inside run() / run_one() / poll() on the caller's thread: the
            // loop call finishes first; the last loop_scope to end destroys
            // the engine, on this thread (as on Linux).
            return asock::detail::last_reference_site::caller_loop;
        }
        // Inside one of our own callbacks, which cannot wait for itself to return.
        return running_in_this_thread() ? asock::detail::last_reference_site::own_thread
                                        : asock::detail::last_reference_site::elsewhere;
    }

    void orphan_in_caller_loop() noexcept
    {
        orphaned_.store(true);
        stop();
    }

    void destroy_now() noexcept
    {
        // Timers first: the sleeps they end resume here and may post work,
        // which the drains below then run.
        shut_timers();
        if (caller_loop_) {
            // Work the loop accepted and nobody ran (deliveries, resumptions
            // posted by a close or a stop request): run it here, on this
            // thread, as the loop would, so that nothing accepted is dropped.
            // An IO callback still leaving a core may have queued a delivery
            // just before: wait for those, then look again.
            for (;;) {
                run_loop_leftovers();
                while (active_.load(std::memory_order_acquire) != 0) {
                    std::this_thread::yield();
                }
                std::lock_guard lk(loop_mu_);
                if (loop_head_ == nullptr) {
                    break;
                }
            }
        }
        if (work_ != nullptr) {
            // Nothing posted is dropped (a dropped coroutine resumption leaks
            // its frame): the pool runs what is submitted, and items that an
            // item posted while the pool was being waited for, which the
            // documentation of WaitForThreadpoolWorkCallbacks does not promise
            // to cover, run here on this thread. Each item stays on the list
            // until something runs it, so the loop ends when a wait finds none
            // left; their stale submissions find the list empty.
            do {
                Api::wait_work_callbacks(work_, FALSE);
            } while (run_leftovers());
            Api::close_work(work_);
        }
        // An IO callback may still be leaving a core's code (after the hook that
        // dropped the last reference): wait until none is inside.
        while (active_.load(std::memory_order_acquire) != 0) {
            std::this_thread::yield();
        }
        if (env_initialized_) {
            Api::destroy_environment(&env_);
        }
        if (pool_ != nullptr) {
            Api::close_pool(pool_);
        }
        if (wsa_started_) {
            Api::wsa_cleanup();
        }
        delete this;
    }

    // ---- the OS timer ------------------------------------------------------------
    //
    // timer_queue decides when the OS timer must be set (an earlier deadline,
    // or the next one once it fired) and calls arm_os_timer under its lock.
    // The threadpool timer takes a relative due time, counted on the OS's
    // clock, not on steady_clock: it can fire a little before the deadline by
    // our clock. take_due then finds nothing due and, since that deadline has
    // not passed, does not re-arm; run_due_timers sets the OS timer again
    // (os_deadline_ remembers what it was set to), so no timer is left
    // waiting for a callback that will not come.

    bool create_os_timer() noexcept
    {
        timer_ = Api::create_timer(&basic_threadpool_engine::on_timer, this, &env_);
        return timer_ != nullptr;
    }

    // SetThreadpoolTimer's due time for `deadline` at `now`: relative (a
    // negative count of 100 ns), the time left rounded up to whole
    // milliseconds, so at least 1 ms; or 0 (at once) when it has passed.
    static FILETIME due_time(clock::time_point deadline, clock::time_point now) noexcept
    {
        std::int64_t units = 0;
        if (deadline > now) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
            units = -static_cast<std::int64_t>(left.count()) * 10'000;
        }
        ULARGE_INTEGER u;
        u.QuadPart = static_cast<ULONGLONG>(units);
        FILETIME due;
        due.dwLowDateTime = u.LowPart;
        due.dwHighDateTime = u.HighPart;
        return due;
    }

    // Sets the OS timer to fire at `deadline` (replacing what it was set to).
    // Called under the timer queue's lock, or from run_due_timers.
    void arm_os_timer(clock::time_point deadline) noexcept
    {
        std::lock_guard lk(timer_mu_);
        if (timer_stopped_) {
            return;
        }
        os_deadline_ = deadline;
        FILETIME due = due_time(deadline, Api::now());
        Api::set_timer(timer_, &due);
    }

    static VOID CALLBACK on_timer(PTP_CALLBACK_INSTANCE, PVOID context, PTP_TIMER) noexcept
    {
        auto* self = static_cast<basic_threadpool_engine*>(context);
        callback_scope scope(*self);
        self->run_due_timers();
    }

    // The OS timer fired: takes the due timers and runs them here (a pool
    // engine, on this pool thread) or queues them for the caller's loop
    // (threads = 0; a timer_node is a work item).
    void run_due_timers() noexcept
    {
        const clock::time_point t = Api::now();
        bool armed = false;
        asock::detail::timer_node* due = timers_.take_due(t, [&](clock::time_point d) {
            arm_os_timer(d);
            armed = true;
        });
        if (!armed) {
            std::lock_guard lk(timer_mu_);
            if (!timer_stopped_ && os_deadline_ != asock::detail::timer_queue::never && os_deadline_ > t) {
                // Fired before its deadline by our clock (or a stale callback
                // of an arming since replaced): set it again. Setting a
                // pending arming again changes nothing.
                FILETIME again = due_time(os_deadline_, Api::now());
                Api::set_timer(timer_, &again);
            }
        }
        if (!caller_loop_) {
            asock::detail::run_timer_list(due);
            return;
        }
        while (due != nullptr) {
            auto* next = static_cast<asock::detail::timer_node*>(due->next);
            post(due);
            due = next;
        }
    }

    // Engine destruction: refuses new timers, stops the OS timer and waits
    // for its callbacks (so none runs, sets it or queues anything from now
    // on), closes it, and completes every timer still queued (`shutdown` set:
    // a sleep resumes `cancelled`) on this thread, marked as the engine's
    // (its loop, for an engine without threads).
    void shut_timers() noexcept
    {
        asock::detail::timer_node* left = timers_.close();
        if (timer_ != nullptr) {
            {
                std::lock_guard lk(timer_mu_);
                timer_stopped_ = true;
                Api::set_timer(timer_, nullptr);
            }
            Api::wait_timer_callbacks(timer_, TRUE);
            Api::close_timer(timer_);
            timer_ = nullptr;
        }
        if (left == nullptr) {
            return;
        }
        if (caller_loop_) {
            const void* saved_engine = detail::tls_engine;
            const void* saved_loop = detail::tls_loop;
            detail::tls_engine = this;
            detail::tls_loop = this;
            asock::detail::run_timer_list(left);
            detail::tls_engine = saved_engine;
            detail::tls_loop = saved_loop;
        } else {
            callback_scope scope(*this);
            asock::detail::run_timer_list(left);
        }
    }

    static VOID CALLBACK on_work(PTP_CALLBACK_INSTANCE, PVOID context, PTP_WORK) noexcept
    {
        auto* self = static_cast<basic_threadpool_engine*>(context);
        callback_scope scope(*self);
        if (work_item* item = self->pop_posted()) {
            item->run(item);
        }
    }

    work_item* pop_posted() noexcept
    {
        std::lock_guard lk(post_mu_);
        work_item* item = post_head_;
        if (item != nullptr) {
            post_head_ = item->next;
            if (post_head_ == nullptr) {
                post_tail_ = nullptr;
            }
        }
        return item;
    }

    // Runs, on this thread as if it were one of the pool's, the posted items
    // still on the list. True when there were any.
    bool run_leftovers() noexcept
    {
        bool ran = false;
        callback_scope scope(*this);
        while (work_item* item = pop_posted()) {
            item->run(item);
            ran = true;
        }
        return ran;
    }

    // Runs the loop's queue until it is empty, on this thread, marked as the
    // engine's loop (destroy_now of an engine with threads = 0).
    void run_loop_leftovers() noexcept
    {
        const void* saved_engine = detail::tls_engine;
        const void* saved_loop = detail::tls_loop;
        detail::tls_engine = this;
        detail::tls_loop = this;
        for (;;) {
            work_item* list = nullptr;
            {
                std::lock_guard lk(loop_mu_);
                list = take_queued_locked();
            }
            if (list == nullptr) {
                break;
            }
            run_list(list);
        }
        detail::tls_engine = saved_engine;
        detail::tls_loop = saved_loop;
    }

    std::atomic<std::uint32_t> active_{0};
    unsigned threads_ = 1;
    bool caller_loop_ = false; // threads = 0: the caller runs the loop (fixed at creation)
    std::atomic<bool> stop_{false};
    std::atomic<bool> orphaned_{false};        // the last reference went inside a caller-run loop
    std::atomic<unsigned> callers_in_loop_{0}; // threads inside run / run_one / poll

    // The caller-run loop's queue (threads = 0): deliveries and posted items.
    std::mutex loop_mu_;
    std::condition_variable loop_cv_;
    work_item* loop_head_ = nullptr;
    work_item* loop_tail_ = nullptr;
    bool wsa_started_ = false;
    bool env_initialized_ = false;
    PTP_POOL pool_ = nullptr;
    TP_CALLBACK_ENVIRON env_{};
    PTP_WORK work_ = nullptr;

    std::mutex post_mu_;
    work_item* post_head_ = nullptr;
    work_item* post_tail_ = nullptr;

    asock::detail::timer_queue timers_;
    PTP_TIMER timer_ = nullptr;
    std::mutex timer_mu_;                                              // orders the settings of timer_
    clock::time_point os_deadline_ = asock::detail::timer_queue::never; // what timer_ was last set to
    bool timer_stopped_ = false;                                        // destroying: timer_ is not set again

    asock::detail::core_pool<core_type> cores_;
};

} // namespace asock::win32
