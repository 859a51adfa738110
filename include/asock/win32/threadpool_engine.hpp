// asock/win32/threadpool_engine.hpp: the execution engine of the Windows backend.
//
// An engine owns a thread pool (CreateThreadpool, its minimum and maximum
// thread counts configurable), one work object that runs posted items, and the
// pool of socket cores. It keeps Winsock started for its lifetime (WSAStartup
// when created, WSACleanup when destroyed; Winsock counts the pairs). It is
// reference counted, as the spec's execution engine is: every socket holds a
// reference, so the engine outlives its sockets.
//
// Unlike the Linux engine there is no caller-driven loop: IO completions always
// run on the pool's threads. thread_count() is never 0, and run_one() / poll()
// exist only so that code written for both platforms compiles; they do nothing.
#pragma once

#include <asock/detail/engine_support.hpp>
#include <asock/detail/operation.hpp>
#include <asock/win32/threadpool_socket_core.hpp>
#include <asock/win32/win32_api.hpp>

#include <atomic>
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
    /// Non-zero: the pool keeps exactly this many threads (minimum = maximum),
    /// like the Linux engine's `threads`. 0: min_threads / max_threads apply.
    /// (On Linux 0 means "no threads, the caller runs the loop"; a Windows
    /// engine always runs its completions on its own pool.)
    unsigned threads = 0;
    /// Threads the pool keeps alive (the spec's DEFAULT_MIN_THREAD_COUNT is 4).
    unsigned min_threads = 4;
    /// Most threads the pool may run; 0: no maximum beyond the system's
    /// (DEFAULT_MAX_THREAD_COUNT). Must not be below min_threads.
    unsigned max_threads = 0;
};

template <class Api>
class basic_threadpool_engine {
public:
    using core_type = threadpool_socket_core<Api>;
    using work_item = asock::detail::work_item;

    /// Creates an engine with one reference, or returns nullptr when the
    /// options are inconsistent (max_threads below min_threads), Winsock does
    /// not start, or the OS refuses the pool or its work object.
    static basic_threadpool_engine* create(const engine_options& options = {}) noexcept
    {
        auto* e = new (std::nothrow) basic_threadpool_engine();
        if (e == nullptr) {
            return nullptr;
        }
        if (!e->init(options)) {
            e->destroy_now();
            return nullptr;
        }
        return e;
    }

    /// The process-wide engine (default options), created on first use and
    /// destroyed when its last reference goes. Returns a new reference. The
    /// Windows spec has no NULL execution engine (01_002); the C++ API offers
    /// this for async_socket::on_default_engine, as on Linux.
    static basic_threadpool_engine* acquire_default() noexcept
    {
        return asock::detail::default_engine_slot<basic_threadpool_engine>::acquire([] { return create(engine_options{}); });
    }

    void inc_ref() noexcept { refs_.add(); }

    void dec_ref() noexcept
    {
        if (!refs_.release()) {
            return;
        }
        asock::detail::default_engine_slot<basic_threadpool_engine>::forget(this);
        if (running_in_this_thread()) {
            // The last reference went inside one of our own callbacks, which
            // cannot wait for itself to return: let another thread do it.
            asock::detail::destroy_on_another_thread([this] { destroy_now(); });
            return;
        }
        destroy_now();
    }

    std::uint32_t use_count() const noexcept { return refs_.count(); }
    asock::detail::engine_refs& refs() noexcept { return refs_; }

    /// The pool's minimum thread count (at least 1): never 0, so generic code
    /// (sync_wait(engine, ...)) never tries to run a loop on the caller's thread.
    unsigned thread_count() const noexcept { return threads_; }

    /// True on a thread that is running one of this engine's callbacks (an IO
    /// completion or a posted item).
    bool running_in_this_thread() const noexcept { return detail::tls_engine == this; }

    /// The engine's thread pool (the spec's execution_engine_win32_get_threadpool).
    PTP_POOL pool() const noexcept { return pool_; }

    /// No caller-driven loop on Windows: returns 0 at once (see the header comment).
    std::size_t run_one(int /*timeout_ms*/ = -1) noexcept { return 0; }
    std::size_t poll() noexcept { return 0; }

    /// Runs `item->run(item)` later on a pool thread. Never allocates: the item
    /// is intrusive, and each post is one SubmitThreadpoolWork of the engine's
    /// single work object, which runs one item per callback. Posted items may
    /// therefore run concurrently, on different threads, in any order.
    void post(work_item* item) noexcept
    {
        item->next = nullptr;
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

    bool init(const engine_options& options) noexcept
    {
        const unsigned minimum = options.threads != 0 ? options.threads : options.min_threads;
        const unsigned maximum = options.threads != 0 ? options.threads : options.max_threads;
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
        return work_ != nullptr;
    }

    void destroy_now() noexcept
    {
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

    asock::detail::engine_refs refs_;
    std::atomic<std::uint32_t> active_{0};
    unsigned threads_ = 1;
    bool wsa_started_ = false;
    bool env_initialized_ = false;
    PTP_POOL pool_ = nullptr;
    TP_CALLBACK_ENVIRON env_{};
    PTP_WORK work_ = nullptr;

    std::mutex post_mu_;
    work_item* post_head_ = nullptr;
    work_item* post_tail_ = nullptr;

    asock::detail::core_pool<core_type> cores_;
};

} // namespace asock::win32
