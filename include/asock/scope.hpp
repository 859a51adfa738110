// asock/scope.hpp: asock::task_scope, a place to spawn coroutines that can
// be stopped and waited for.
//
//   asock::task_scope scope;
//   scope.spawn(handle_connection(std::move(socket), scope.get_token()));
//   scope.spawn([&](std::stop_token t) { return handle_connection(std::move(s2), t); });
//   ...
//   scope.request_stop();          // every child's operations see a stop request
//   co_await scope.join();         // or: asock::sync_wait(scope.join());
//
// spawn(awaitable) starts the awaitable at once on the calling thread (it
// runs until its first suspension) and returns; spawn(f), for a callable f
// taking a std::stop_token, spawns f(get_token()). A child runs on whatever
// threads its operations resume it on. Each child costs one coroutine frame
// (a heap allocation), as asock::spawn does; the scope's stop state is one
// allocation per scope.
//
// join() completes when no child is running (at once when none is), on the
// thread that finished the last child, or without suspending. If a child
// ended with an exception, join rethrows the first one (the others are
// dropped); the scope stays usable after a join. Spawning is allowed from
// anywhere, children included, except concurrently with a join from outside
// the scope's children once every child has finished (a spawn then races
// with the join's completion).
//
// A task_scope must not be destroyed while children run: its destructor
// ends the program with a message then (as destroying a joinable
// std::thread does). Shutting a server down cleanly: close the listener,
// request_stop(), join, then let the engine go; every child has then run its
// destructors, and nothing is leaked.
#pragma once

#include <asock/spawn.hpp>

#include <atomic>
#include <coroutine>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

namespace asock {

class task_scope {
public:
    task_scope() = default;
    task_scope(const task_scope&) = delete;
    task_scope& operator=(const task_scope&) = delete;
    ~task_scope()
    {
        if (count_.load(std::memory_order_acquire) != 1) {
            std::fputs("asock::task_scope destroyed while children still run: join() it first\n", stderr);
            std::abort();
        }
    }

    /// The token every child should pass to its operations.
    std::stop_token get_token() const noexcept { return stop_.get_token(); }

    /// Asks every child to stop: their operations given get_token() complete
    /// `cancelled` (a receive that had bytes reports them). A stopped scope
    /// stays stopped (children spawned later see the request at once).
    void request_stop() noexcept { stop_.request_stop(); }
    bool stop_requested() const noexcept { return stop_.stop_requested(); }

    /// Children running now.
    std::size_t size() const noexcept { return count_.load(std::memory_order_acquire) - (joining_.load(std::memory_order_acquire) ? 0 : 1); }

    /// Starts `work` (an awaitable, or a callable taking a std::stop_token
    /// that returns one) as a child of this scope.
    template <class W>
    void spawn(W&& work)
    {
        count_.fetch_add(1, std::memory_order_relaxed);
        if constexpr (std::is_invocable_v<std::remove_cvref_t<W>&, std::stop_token>) {
            // The callable lives in the child's frame as long as the child
            // runs: a coroutine lambda's captures stay valid.
            run_factory_child(this, std::remove_cvref_t<W>(std::forward<W>(work)));
        } else {
            run_child(this, std::optional<std::remove_cvref_t<W>>(std::forward<W>(work)));
        }
    }

    class join_awaitable {
    public:
        explicit join_awaitable(task_scope& s) noexcept : scope_(&s) {}
        bool await_ready() const noexcept { return scope_->count_.load(std::memory_order_acquire) == 1; }
        bool await_suspend(std::coroutine_handle<> h) noexcept
        {
            scope_->joiner_ = h;
            scope_->joining_.store(true, std::memory_order_release);
            // Drop the scope's own count: the last child to end resumes us.
            return scope_->count_.fetch_sub(1, std::memory_order_acq_rel) != 1;
        }
        void await_resume()
        {
            if (scope_->joining_.exchange(false, std::memory_order_acq_rel)) {
                scope_->count_.fetch_add(1, std::memory_order_acq_rel); // usable again
            }
            std::exception_ptr e;
            {
                std::lock_guard lk(scope_->mu_);
                e = std::exchange(scope_->exception_, nullptr);
            }
            if (e) {
                std::rethrow_exception(e);
            }
        }

    private:
        task_scope* scope_;
    };

    /// Waits until no child runs; see the top of this header.
    join_awaitable join() noexcept { return join_awaitable(*this); }

private:
    // A child is a detached coroutine (asock/spawn.hpp) that reports its end.
    using child_coro = detail::detached_coro;

    template <class F>
    static child_coro run_factory_child(task_scope* self, F f)
    {
        try {
            co_await std::invoke(f, self->get_token());
        } catch (...) {
            self->record(std::current_exception());
        }
        self->child_done(); // `f` goes with this frame; nothing of it runs after
    }

    void record(std::exception_ptr e) noexcept
    {
        std::lock_guard lk(mu_);
        if (!exception_) {
            exception_ = std::move(e);
        }
    }

    template <class A>
    static child_coro run_child(task_scope* self, std::optional<A> work)
    {
        try {
            co_await std::move(*work);
        } catch (...) {
            self->record(std::current_exception());
        }
        work.reset(); // the child's own frame goes before the scope may go
        self->child_done();
    }

    void child_done() noexcept
    {
        if (count_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            joiner_.resume(); // the scope's own count was dropped: a join waits
        }
    }

    std::stop_source stop_;
    std::atomic<std::size_t> count_{1}; // children + 1 while no join waits
    std::coroutine_handle<> joiner_;
    std::atomic<bool> joining_{false};
    std::mutex mu_;
    std::exception_ptr exception_;
};

} // namespace asock
