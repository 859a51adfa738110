// asock/linux/epoll_engine.hpp: the execution engine of the epoll backend.
//
// An engine owns one epoll instance, an eventfd for wake-ups, the threads that
// run its event loop, and the pool of socket cores. It is reference counted, as
// the spec's execution engine is: every socket holds a reference, so the engine
// outlives its sockets.
//
// Timers (include/asock/detail/timer_queue.hpp) wake the loop through one
// timerfd in the same epoll instance, armed at the earliest deadline.
//
// Two ways to run the loop:
// - `threads >= 1`: the engine starts that many threads; each waits on the same
//   epoll instance. Completions run on whichever thread saw the event.
// - `threads == 0`: no threads; the caller runs the loop with run(), run_one()
//   or poll() (single-threaded servers, benchmarks, deterministic tests).
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
    /// Threads the engine starts for its event loop. 0: none; the caller runs
    /// the loop with run() / run_one() / poll().
    unsigned threads = 1;
};

namespace detail {
/// The engine whose loop the current thread is running, and the work that loop
/// iteration posted to itself (run before the next wait, with no wake-up call).
struct loop_context {
    const void* engine = nullptr;
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
    int epoll_fd() const noexcept { return epfd_; }

    /// True when called from a thread currently running this engine's loop.
    bool running_in_this_thread() const noexcept { return detail::tls_loop.engine == this; }

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
        loop_scope scope(this);
        std::size_t n = 0;
        while (!stop_.load(std::memory_order_acquire)) {
            n += run_batch(-1);
        }
        return n;
    }

    /// Waits up to `timeout_ms` (-1: forever) for events, posted work or a
    /// due timer, handles one batch.
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
        // Level-triggered and left undrained: every waiter sees it. A thread
        // that drains the eventfd for a post puts the signal back when it
        // finds stop_ set afterwards (run_batch), so no waiter misses it.
        Sys::eventfd_signal(evfd_);
    }

    /// Undoes stop() so run() can be called again.
    void restart() noexcept
    {
        stop_.store(false, std::memory_order_release);
        Sys::eventfd_drain(evfd_);
    }

    bool stopped() const noexcept { return stop_.load(std::memory_order_acquire); }

    /// Runs `item->run(item)` later on an engine thread. Never allocates: the
    /// item is intrusive. From an engine thread it costs no system call.
    void post(work_item* item) noexcept
    {
        item->next = nullptr;
        detail::loop_context& tls = detail::tls_loop;
        if (tls.engine == this) {
            if (tls.tail != nullptr) {
                tls.tail->next = item;
            } else {
                tls.head = item;
            }
            tls.tail = item;
            return;
        }
        bool wake = false;
        {
            std::lock_guard lk(post_mu_);
            if (post_tail_ != nullptr) {
                post_tail_->next = item;
            } else {
                post_head_ = item;
            }
            post_tail_ = item;
            wake = !wake_pending_;
            wake_pending_ = true;
            has_posted_.store(true, std::memory_order_release);
        }
        if (wake) {
            Sys::eventfd_signal(evfd_);
        }
    }

    // ---- timers (include/asock/detail/timer_queue.hpp) --------------------------

    using clock = asock::detail::timer_clock;

    /// The clock of this engine's timers: steady_clock (the fake OS layer of
    /// the unit tests gives a virtual one).
    clock::time_point now() const noexcept { return Sys::now(); }

    /// Queues a timer; it runs (node->run) on an engine thread when due, or
    /// with `shutdown` set when the engine is destroyed first. False once the
    /// engine is being destroyed, or when cancel_timer came first: the node is
    /// not queued.
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

    /// The token of the engine's own eventfd in epoll events. Core tokens are
    /// (generation << 32 | slot id), and no slot id reaches 0xFFFFFFC0
    /// (detail::core_pool), so neither this nor timer_token names a core.
    static constexpr std::uint64_t wakeup_token = ~std::uint64_t{0};
    /// The token of the engine's timerfd.
    static constexpr std::uint64_t timer_token = ~std::uint64_t{0} - 1;

private:
    basic_epoll_engine() = default;
    ~basic_epoll_engine() = default;

    struct loop_scope {
        explicit loop_scope(basic_epoll_engine* e) noexcept : self(e), saved(detail::tls_loop)
        {
            detail::tls_loop = detail::loop_context{e, nullptr, nullptr};
            if (e->own_threads_ == 0) {
                e->callers_in_loop_.fetch_add(1, std::memory_order_acq_rel);
            }
        }
        ~loop_scope()
        {
            if (self->own_threads_ == 0) {
                self->callers_in_loop_.fetch_sub(1, std::memory_order_acq_rel);
            }
            // Work posted to this thread but not yet run stays queued on the engine.
            detail::loop_context& tls = detail::tls_loop;
            if (tls.head != nullptr) {
                auto* e = static_cast<basic_epoll_engine*>(const_cast<void*>(tls.engine));
                asock::detail::work_item* h = tls.head;
                tls = detail::loop_context{};
                while (h != nullptr) {
                    asock::detail::work_item* n = h->next;
                    e->post(h);
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
        epfd_ = Sys::epoll_create();
        if (epfd_ < 0) {
            return false;
        }
        evfd_ = Sys::eventfd_create();
        if (evfd_ < 0) {
            return false;
        }
        if (Sys::epoll_add(epfd_, evfd_, EPOLLIN, wakeup_token) != 0) {
            return false;
        }
        tfd_ = Sys::timerfd_create();
        if (tfd_ < 0 || Sys::epoll_add(epfd_, tfd_, EPOLLIN, timer_token) != 0) {
            return false;
        }
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
        stop();
        for (auto& t : threads_) {
            if (t.joinable()) {
                t.join();
            }
        }
        threads_.clear();
        run_leftovers();
        if (tfd_ >= 0) {
            Sys::close(tfd_);
        }
        if (evfd_ >= 0) {
            Sys::close(evfd_);
        }
        if (epfd_ >= 0) {
            Sys::close(epfd_);
        }
        delete this;
    }

    // Work the engine accepted and has not run yet (a coroutine's resumption
    // posted by a close or a stop request, a socket's kick): run it now, on
    // the destroying thread, as if it were a loop thread of this engine, so
    // that nothing accepted is silently dropped (a dropped resumption leaks
    // its coroutine frame and never runs its destructors). Timers still
    // pending complete first, with `shutdown` set (a sleep resumes
    // `cancelled`); timers added from here on are refused. Work those items
    // post runs too, until none is left.
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

    std::size_t run_batch(int timeout_ms) noexcept
    {
        constexpr int batch = 64;
        epoll_event events[batch];
        detail::loop_context& tls = detail::tls_loop;
        if (tls.head != nullptr || has_posted_.load(std::memory_order_acquire)) {
            timeout_ms = 0;
        }
        int n = Sys::epoll_wait(epfd_, events, batch, timeout_ms);
        // Back from waiting: a new budget of inline completions for this
        // pass (detail/inline_budget.hpp), so that one socket's run of
        // inline completions cannot keep the others' events waiting.
        asock::detail::refill_inline_budget();
        if (n < 0) {
            n = 0; // EINTR
        }
        std::size_t handled = 0;
        for (int i = 0; i < n; ++i) {
            const std::uint64_t token = events[i].data.u64;
            if (token == timer_token) {
                Sys::timerfd_drain(tfd_);
                handled += run_due_timers();
                continue;
            }
            if (token == wakeup_token) {
                if (!stop_.load(std::memory_order_acquire)) {
                    Sys::eventfd_drain(evfd_);
                    // stop() may have run between the check and the drain: the
                    // drain then took the signal that every other thread
                    // sleeping in epoll_wait relies on. Put it back.
                    if (stop_.load(std::memory_order_acquire)) {
                        Sys::eventfd_signal(evfd_);
                    }
                }
                continue;
            }
            if (core_type* c = cores_.at(static_cast<std::uint32_t>(token))) {
                c->on_events(epoll_io<Sys>::readiness_of_events(events[i].events), static_cast<std::uint32_t>(token >> 32));
            }
            ++handled;
        }
        return handled + run_posted();
    }

    std::size_t run_due_timers() noexcept
    {
        return asock::detail::run_timer_list(
            timers_.take_due(Sys::now(), [this](clock::time_point t) { Sys::timerfd_arm(tfd_, t); }));
    }

    std::size_t run_posted() noexcept
    {
        // Work that this thread posts while running posted work (a callback
        // starting a receive posts a kick) runs in the same pass, a few rounds
        // deep, rather than after another epoll_wait.
        // Not once the inline budget is spent: the work left is then a
        // socket's deferred completions, which wait behind the next epoll_wait.
        std::size_t n = run_posted_once();
        for (int round = 0; round < 8 && detail::tls_loop.head != nullptr && !asock::detail::inline_budget_spent();
             ++round) {
            n += run_posted_once();
        }
        return n;
    }

    std::size_t run_posted_once() noexcept
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
                list->run(list);
                list = next;
                ++n;
            }
        }
        return n;
    }

    int epfd_ = -1;
    int evfd_ = -1;
    int tfd_ = -1;
    std::atomic<bool> stop_{false};
    bool orphaned_ = false; // last reference dropped inside this engine's loop on the caller's thread
    unsigned own_threads_ = 0;                  // engine_options::threads, fixed before any thread starts
    std::atomic<unsigned> callers_in_loop_{0}; // (no own threads) callers inside run / run_one / poll
    std::vector<std::thread> threads_;

    std::mutex post_mu_;
    work_item* post_head_ = nullptr;
    work_item* post_tail_ = nullptr;
    bool wake_pending_ = false;
    std::atomic<bool> has_posted_{false};

    asock::detail::timer_queue timers_;
    asock::detail::core_pool<core_type> cores_;
};

} // namespace asock::linux_epoll
