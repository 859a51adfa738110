// asock/linux/epoll_engine.hpp: the execution engine of the epoll backend.
//
// An engine owns one event loop per thread, the threads that run them, and
// the pool of socket cores. It is reference counted, as the spec's execution
// engine is: every socket holds a reference, so the engine outlives its
// sockets.
//
// Loops. Each loop has its own epoll instance, its own eventfd (wake-ups and
// stop) and its own locked queue of work posted from other threads; a loop
// thread also keeps a thread-local queue of the work it posts to itself (no
// system call). An engine with `threads = N >= 1` has N loops, one thread
// each; an engine with `threads = 0` has one loop, run by whoever calls run(),
// run_one() or poll() (several callers may run it at once; they then share its
// epoll instance and its eventfd).
//
// A socket belongs to one loop. When a core registers its descriptor
// (epoll_io::arm) the engine binds it to the loop serving the fewest sockets
// now (ties go round-robin), so sockets spread over the threads and stay
// spread as connections come and go. The descriptor is registered with that
// loop's epoll instance only, and every item the core posts (a kick, an
// awaiter's resumption) goes to that loop's queue: a socket's events,
// callbacks and resumptions run on one thread, and a connection that keeps to
// itself costs no cross-thread wake-up. Least-loaded rather than plain
// round-robin because a server's connections do not end in the order they
// started; the cost is a scan of N counters per open, never per operation.
//
// Timers (include/asock/detail/timer_queue.hpp) wake loop 0 through one
// timerfd in its epoll instance, armed at the earliest deadline: they run on
// loop 0's thread (an engine thread, as documented). A socket woken by a
// timer (a with_timeout stop request) still completes on its own loop: the
// resumption is posted there.
//
// post() from an engine thread appends to that thread's own loop; from any
// other thread it goes to the loops in turn (round-robin), so work handed in
// from outside uses every thread. stop() wakes every loop; destroying the
// engine joins the threads and then runs what every loop still holds.
#pragma once

#include <asock/detail/engine_support.hpp>
#include <asock/detail/inline_budget.hpp>
#include <asock/detail/operation.hpp>
#include <asock/detail/timer_queue.hpp>
#include <asock/linux/epoll_socket_core.hpp>
#include <asock/linux/epoll_sys.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <utility>
#include <vector>

namespace asock::linux_epoll {

struct engine_options {
    /// Threads the engine starts, each running an event loop of its own. 0:
    /// none; one loop, which the caller runs with run() / run_one() / poll().
    unsigned threads = 1;
};

namespace detail {
/// The engine and loop the current thread is running, and the work that loop
/// iteration posted to itself (run before the next wait, with no wake-up call).
struct loop_context {
    const void* engine = nullptr;
    unsigned loop = 0;
    asock::detail::work_item* head = nullptr;
    asock::detail::work_item* tail = nullptr;
};
inline thread_local loop_context tls_loop{};
} // namespace detail

template <class Sys>
class basic_epoll_engine : public asock::detail::engine_lifetime<basic_epoll_engine<Sys>, engine_options> {
    using lifetime = asock::detail::engine_lifetime<basic_epoll_engine<Sys>, engine_options>;
    friend lifetime;

public:
    using core_type = epoll_socket_core<Sys>;
    using work_item = asock::detail::work_item;

    // create(options) (nullptr when the kernel refuses an epoll instance, an
    // eventfd or a thread), acquire_default(), inc_ref(), dec_ref(),
    // use_count(): detail::engine_lifetime. The default engine is the one
    // used where the spec lets the execution engine be NULL (11_002): one
    // thread.

    unsigned thread_count() const noexcept { return static_cast<unsigned>(threads_.size()); }

    /// Loops of this engine: its thread count, or 1 without threads.
    unsigned loop_count() const noexcept { return loop_count_; }

    /// The epoll instance of loop `loop` (default: loop 0, which also holds
    /// the engine's timerfd and, without threads, is the only one).
    int epoll_fd(unsigned loop = 0) const noexcept { return loops_[loop].epfd; }

    /// The eventfd that wakes loop `loop`.
    int wakeup_fd(unsigned loop = 0) const noexcept { return loops_[loop].evfd; }

    /// Sockets bound to loop `loop` now (registered and not yet closed).
    std::uint32_t sockets_on_loop(unsigned loop) const noexcept
    {
        return loops_[loop].sockets.load(std::memory_order_relaxed);
    }

    /// True when called from a thread currently running this engine's loop.
    bool running_in_this_thread() const noexcept { return detail::tls_loop.engine == this; }

    /// The loop the calling thread runs, when running_in_this_thread().
    unsigned current_loop() const noexcept { return detail::tls_loop.loop; }

    /// True for an engine without threads whose loop no thread is running
    /// now (in run(), run_one() or poll()). sync_wait(awaitable) asks, to turn
    /// a wait that could never end into a loud failure.
    bool loop_unattended() const noexcept
    {
        return own_threads_ == 0 && callers_in_loop_.load(std::memory_order_acquire) == 0;
    }

    // ---- running the loop (for engines created with threads == 0) ----------

    /// Runs the loop on the calling thread until stop(). Returns the number of
    /// events and posted items handled.
    std::size_t run() noexcept
    {
        loop_scope scope(this, 0);
        std::size_t n = 0;
        while (!stop_.load(std::memory_order_acquire)) {
            n += run_batch(loops_[0], -1);
        }
        return n;
    }

    /// Waits up to `timeout_ms` (-1: forever) for events, posted work or a
    /// due timer, handles one batch.
    std::size_t run_one(int timeout_ms = -1) noexcept
    {
        loop_scope scope(this, 0);
        return run_batch(loops_[0], timeout_ms);
    }

    /// Handles whatever is ready now, without waiting.
    std::size_t poll() noexcept { return run_one(0); }

    /// Makes run() return and the engine's threads leave their loops.
    void stop() noexcept
    {
        stop_.store(true, std::memory_order_release);
        // Level-triggered and left undrained: every waiter of every loop sees
        // it. A thread that drains its loop's eventfd for a post puts the
        // signal back when it finds stop_ set afterwards (run_batch), so no
        // waiter misses it (without threads, several callers may wait on
        // loop 0 at once).
        for (unsigned i = 0; i < loop_count_; ++i) {
            if (loops_[i].evfd >= 0) {
                Sys::eventfd_signal(loops_[i].evfd);
            }
        }
    }

    /// Undoes stop() so run() can be called again.
    void restart() noexcept
    {
        stop_.store(false, std::memory_order_release);
        for (unsigned i = 0; i < loop_count_; ++i) {
            Sys::eventfd_drain(loops_[i].evfd);
        }
    }

    bool stopped() const noexcept { return stop_.load(std::memory_order_acquire); }

    /// Runs `item->run(item)` later on an engine thread. Never allocates: the
    /// item is intrusive. From an engine thread it costs no system call and
    /// runs on that same thread; from any other thread the loops take turns.
    void post(work_item* item) noexcept
    {
        item->next = nullptr;
        detail::loop_context& tls = detail::tls_loop;
        if (tls.engine == this) {
            push_local(tls, item);
            return;
        }
        unsigned loop = 0;
        if (loop_count_ > 1) {
            loop = next_outside_loop_.fetch_add(1, std::memory_order_relaxed) % loop_count_;
        }
        post_shared(loops_[loop], item);
    }

    /// Runs `item->run(item)` later on the thread of loop `loop` (a socket's
    /// loop: epoll_io::post). From that thread itself it costs no system call.
    void post_to(unsigned loop, work_item* item) noexcept
    {
        item->next = nullptr;
        detail::loop_context& tls = detail::tls_loop;
        if (tls.engine == this && tls.loop == loop) {
            push_local(tls, item);
            return;
        }
        post_shared(loops_[loop], item);
    }

    // ---- binding sockets to loops (epoll_io::arm / disarm) -----------------------

    /// Picks the loop for a socket about to be registered: the one serving
    /// the fewest sockets, the scan starting one loop further each time so
    /// that ties spread round-robin. Counts the socket there until unbind_loop.
    unsigned bind_loop() noexcept
    {
        unsigned best = 0;
        if (loop_count_ > 1) {
            const unsigned first = next_bind_loop_.fetch_add(1, std::memory_order_relaxed) % loop_count_;
            std::uint32_t least = ~std::uint32_t{0};
            for (unsigned k = 0; k < loop_count_; ++k) {
                const unsigned i = (first + k) % loop_count_;
                const std::uint32_t n = loops_[i].sockets.load(std::memory_order_relaxed);
                if (n < least) {
                    least = n;
                    best = i;
                }
            }
        }
        loops_[best].sockets.fetch_add(1, std::memory_order_relaxed);
        return best;
    }

    /// The socket bound by bind_loop left loop `loop` (closed, or its
    /// registration failed).
    void unbind_loop(unsigned loop) noexcept { loops_[loop].sockets.fetch_sub(1, std::memory_order_relaxed); }

    // ---- timers (include/asock/detail/timer_queue.hpp) --------------------------

    using clock = asock::detail::timer_clock;

    /// The clock of this engine's timers: steady_clock (the fake OS layer of
    /// the unit tests gives a virtual one).
    clock::time_point now() const noexcept { return Sys::now(); }

    /// Queues a timer; it runs (node->run) on an engine thread (loop 0's)
    /// when due, or with `shutdown` set when the engine is destroyed first.
    /// False once the engine is being destroyed, or when cancel_timer came
    /// first: the node is not queued.
    bool add_timer(asock::detail::timer_node* node) noexcept
    {
        return timers_.add(node, [this](clock::time_point t) { Sys::timerfd_arm(tfd_, t); });
    }

    /// Withdraws a queued timer; true when it was still queued (it will not
    /// run). Called before add_timer, it makes add_timer refuse the node.
    bool cancel_timer(asock::detail::timer_node* node) noexcept { return timers_.remove(node); }

    // ---- socket cores ----------------------------------------------------------

    /// Takes a core from the pool (one allocation per 64 sockets at most).
    core_type* acquire_core() noexcept { return cores_.acquire(); }

    /// Returns a detached core to the pool. Its memory stays valid until the
    /// engine is destroyed, and events name it by (slot id, generation), so an
    /// event harvested for the socket that used it before never reaches the
    /// next one (readiness_core::on_events).
    void release_core(core_type* c) noexcept { cores_.release(c); }

    /// The token of a loop's own eventfd in epoll events. Core tokens are
    /// (generation << 32 | slot id), and no slot id reaches 0xFFFFFFC0
    /// (detail::core_pool), so neither this nor timer_token names a core.
    static constexpr std::uint64_t wakeup_token = ~std::uint64_t{0};
    /// The token of the engine's timerfd (in loop 0).
    static constexpr std::uint64_t timer_token = ~std::uint64_t{0} - 1;

private:
    /// One event loop: its epoll instance, its wake-up eventfd, and the work
    /// other threads posted to it. Aligned so that loops on different threads
    /// share no cache line.
    struct alignas(64) loop_state {
        int epfd = -1;
        int evfd = -1;
        std::mutex post_mu;
        work_item* post_head = nullptr;
        work_item* post_tail = nullptr;
        bool wake_pending = false;
        std::atomic<bool> has_posted{false};
        std::atomic<std::uint32_t> sockets{0}; // bound by bind_loop, not yet unbound
    };

    basic_epoll_engine() = default;
    ~basic_epoll_engine() = default;

    struct loop_scope {
        loop_scope(basic_epoll_engine* e, unsigned loop) noexcept : self(e), saved(detail::tls_loop)
        {
            detail::tls_loop = detail::loop_context{e, loop, nullptr, nullptr};
            if (e->own_threads_ == 0) {
                e->callers_in_loop_.fetch_add(1, std::memory_order_acq_rel);
            }
        }
        ~loop_scope()
        {
            if (self->own_threads_ == 0) {
                self->callers_in_loop_.fetch_sub(1, std::memory_order_acq_rel);
            }
            // Work posted to this thread but not yet run stays queued on its loop.
            detail::loop_context& tls = detail::tls_loop;
            if (tls.head != nullptr) {
                asock::detail::work_item* h = tls.head;
                loop_state& l = self->loops_[tls.loop];
                tls = detail::loop_context{};
                while (h != nullptr) {
                    asock::detail::work_item* n = h->next;
                    h->next = nullptr;
                    self->post_shared(l, h);
                    h = n;
                }
            }
            detail::tls_loop = saved;
            if (self->orphaned_ && saved.engine != self) {
                self->destroy_now(); // the last reference went while this loop ran
            }
        }
        basic_epoll_engine* self;
        detail::loop_context saved;
    };

    bool init(const engine_options& options) noexcept
    {
        const unsigned n = options.threads == 0 ? 1 : options.threads;
        loops_.reset(new (std::nothrow) loop_state[n]);
        if (!loops_) {
            return false;
        }
        loop_count_ = n;
        for (unsigned i = 0; i < n; ++i) {
            loop_state& l = loops_[i];
            l.epfd = Sys::epoll_create();
            if (l.epfd < 0) {
                return false;
            }
            l.evfd = Sys::eventfd_create();
            if (l.evfd < 0) {
                return false;
            }
            if (Sys::epoll_add(l.epfd, l.evfd, EPOLLIN, wakeup_token) != 0) {
                return false;
            }
        }
        tfd_ = Sys::timerfd_create();
        if (tfd_ < 0 || Sys::epoll_add(loops_[0].epfd, tfd_, EPOLLIN, timer_token) != 0) {
            return false;
        }
        own_threads_ = options.threads;
        try {
            threads_.reserve(options.threads);
            for (unsigned i = 0; i < options.threads; ++i) {
                threads_.emplace_back([this, i] { thread_main(i); });
            }
        } catch (...) {
            return false;
        }
        return true;
    }

    static engine_options default_engine_options() noexcept { return engine_options{1}; }

    asock::detail::last_reference_site last_reference_site_here() const noexcept
    {
        if (is_loop_thread()) {
            return asock::detail::last_reference_site::own_thread;
        }
        // Inside run() / run_one() / poll() on the caller's thread: finish
        // the loop call first; its loop_scope destroys the engine.
        return running_in_this_thread() ? asock::detail::last_reference_site::caller_loop
                                        : asock::detail::last_reference_site::elsewhere;
    }

    void orphan_in_caller_loop() noexcept
    {
        orphaned_ = true;
        stop_.store(true, std::memory_order_release);
    }

    void destroy_now() noexcept
    {
        if (loops_) {
            stop();
        }
        for (auto& t : threads_) {
            if (t.joinable()) {
                t.join();
            }
        }
        threads_.clear();
        if (loops_) {
            run_leftovers();
        }
        if (tfd_ >= 0) {
            Sys::close(tfd_);
        }
        for (unsigned i = 0; i < loop_count_; ++i) {
            if (loops_[i].evfd >= 0) {
                Sys::close(loops_[i].evfd);
            }
            if (loops_[i].epfd >= 0) {
                Sys::close(loops_[i].epfd);
            }
        }
        delete this;
    }

    // Work the engine accepted and has not run yet, on any loop (a
    // coroutine's resumption posted by a close or a stop request, a socket's
    // kick): run it now, on the destroying thread, as if it were a loop
    // thread of this engine, so that nothing accepted is silently dropped (a
    // dropped resumption leaks its coroutine frame and never runs its
    // destructors). Timers still pending complete first, with `shutdown` set
    // (a sleep resumes `cancelled`); timers added from here on are refused.
    // Work those items post runs too, whichever loop it is posted to, until
    // no loop holds any.
    void run_leftovers() noexcept
    {
        const detail::loop_context saved = detail::tls_loop;
        detail::tls_loop = detail::loop_context{this, 0, nullptr, nullptr};
        asock::detail::run_timer_list(timers_.close());
        for (bool again = true; again;) {
            again = false;
            for (unsigned i = 0; i < loop_count_; ++i) {
                if (detail::tls_loop.head != nullptr || loops_[i].has_posted.load(std::memory_order_acquire)) {
                    run_posted_once(loops_[i]);
                    again = true;
                }
            }
        }
        detail::tls_loop = saved;
    }

    void thread_main(unsigned loop) noexcept
    {
        loop_scope scope(this, loop);
        loop_state& l = loops_[loop];
        while (!stop_.load(std::memory_order_acquire)) {
            run_batch(l, -1);
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

    static void push_local(detail::loop_context& tls, work_item* item) noexcept
    {
        if (tls.tail != nullptr) {
            tls.tail->next = item;
        } else {
            tls.head = item;
        }
        tls.tail = item;
    }

    static void post_shared(loop_state& l, work_item* item) noexcept
    {
        bool wake = false;
        {
            std::lock_guard lk(l.post_mu);
            if (l.post_tail != nullptr) {
                l.post_tail->next = item;
            } else {
                l.post_head = item;
            }
            l.post_tail = item;
            wake = !l.wake_pending;
            l.wake_pending = true;
            l.has_posted.store(true, std::memory_order_release);
        }
        if (wake) {
            Sys::eventfd_signal(l.evfd);
        }
    }

    std::size_t run_batch(loop_state& l, int timeout_ms) noexcept
    {
        constexpr int batch = 64;
        epoll_event events[batch];
        detail::loop_context& tls = detail::tls_loop;
        if (tls.head != nullptr || l.has_posted.load(std::memory_order_acquire)) {
            timeout_ms = 0;
        }
        int n = Sys::epoll_wait(l.epfd, events, batch, timeout_ms);
        if (n < 0) {
            n = 0; // EINTR
        }
        std::size_t handled = 0;
        for (int i = 0; i < n; ++i) {
            const std::uint64_t token = events[i].data.u64;
            if (token == timer_token) {
                Sys::timerfd_drain(tfd_);
                asock::detail::refill_inline_budget();
                handled += run_due_timers();
                continue;
            }
            if (token == wakeup_token) {
                if (!stop_.load(std::memory_order_acquire)) {
                    Sys::eventfd_drain(l.evfd);
                    // stop() may have run between the check and the drain: the
                    // drain then took the signal that every other thread
                    // sleeping in this loop's epoll_wait relies on. Put it back.
                    if (stop_.load(std::memory_order_acquire)) {
                        Sys::eventfd_signal(l.evfd);
                    }
                }
                continue;
            }
            if (core_type* c = cores_.at(static_cast<std::uint32_t>(token))) {
                // Each event may set off one chain of inline completions,
                // bounded by a fresh budget (detail/inline_budget.hpp).
                asock::detail::refill_inline_budget();
                c->on_events(epoll_io<Sys>::readiness_of_events(events[i].events), static_cast<std::uint32_t>(token >> 32));
            }
            ++handled;
        }
        return handled + run_posted(l);
    }

    std::size_t run_due_timers() noexcept
    {
        return asock::detail::run_timer_list(
            timers_.take_due(Sys::now(), [this](clock::time_point t) { Sys::timerfd_arm(tfd_, t); }));
    }

    std::size_t run_posted(loop_state& l) noexcept
    {
        // Work that this thread posts while running posted work (a callback
        // starting a receive posts a kick) runs in the same pass, a few rounds
        // deep, rather than after another epoll_wait.
        if (detail::tls_loop.head == nullptr && !l.has_posted.load(std::memory_order_acquire)) {
            return 0; // the common case after an event batch: nothing posted
        }
        // At most 9 rounds, and none more after an item that spent its whole
        // inline budget (detail/inline_budget.hpp): what that chain deferred
        // waits behind the next epoll_wait, so the other sockets' events
        // come first.
        bool spent = false;
        std::size_t n = run_posted_once(l, spent);
        for (int round = 0; round < 8 && !spent && detail::tls_loop.head != nullptr; ++round) {
            n += run_posted_once(l, spent);
        }
        return n;
    }

    std::size_t run_posted_once(loop_state& l) noexcept
    {
        bool spent = false;
        return run_posted_once(l, spent);
    }

    /// Runs what was posted to loop `l` and to this thread until now; sets
    /// `spent` when an item used up its chain's inline budget.
    std::size_t run_posted_once(loop_state& l, bool& spent) noexcept
    {
        detail::loop_context& tls = detail::tls_loop;
        work_item* local = tls.head;
        tls.head = tls.tail = nullptr;
        work_item* shared = nullptr;
        if (l.has_posted.load(std::memory_order_acquire)) {
            std::lock_guard lk(l.post_mu);
            shared = l.post_head;
            l.post_head = l.post_tail = nullptr;
            l.wake_pending = false;
            l.has_posted.store(false, std::memory_order_relaxed);
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

    std::unique_ptr<loop_state[]> loops_;
    unsigned loop_count_ = 0;
    int tfd_ = -1;
    std::atomic<bool> stop_{false};
    bool orphaned_ = false; // last reference dropped inside this engine's loop on the caller's thread
    unsigned own_threads_ = 0;                  // engine_options::threads, fixed before any thread starts
    std::atomic<unsigned> callers_in_loop_{0}; // (no own threads) callers inside run / run_one / poll
    std::atomic<unsigned> next_outside_loop_{0}; // post() from outside the engine: the next loop to take it
    std::atomic<unsigned> next_bind_loop_{0};    // bind_loop: where the next scan starts
    std::vector<std::thread> threads_;

    asock::detail::timer_queue timers_;
    asock::detail::core_pool<core_type> cores_;
};

} // namespace asock::linux_epoll
