// asock/detail/engine_support.hpp: the parts every engine shares, whatever
// the backend: its reference count, the process-wide default instance, the
// pool of socket cores, and destroying an engine from a thread of its own.
//
// Rationale: an engine (include/asock/linux/epoll_engine.hpp,
// include/asock/win32/threadpool_engine.hpp) is mostly about how its backend
// waits for I/O; these pieces are about lifetime, and must behave the same on
// every platform, so they are written once. A future backend (io_uring)
// reuses them as they are.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <utility>
#include <vector>

namespace asock::detail {

/// An engine's reference count: it starts at one (the creator's reference).
class engine_refs {
public:
    void add() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }

    /// Adds a reference unless the count already reached 0 (the engine is
    /// being destroyed). Used to revive the default engine from its slot.
    bool try_add() noexcept
    {
        std::uint32_t r = refs_.load(std::memory_order_acquire);
        while (r != 0) {
            if (refs_.compare_exchange_weak(r, r + 1, std::memory_order_acq_rel)) {
                return true;
            }
        }
        return false;
    }

    /// Drops a reference; true when it was the last one.
    bool release() noexcept { return refs_.fetch_sub(1, std::memory_order_acq_rel) == 1; }

    std::uint32_t count() const noexcept { return refs_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint32_t> refs_{1};
};

/// The process-wide engine of type `Engine` (one per backend): created on
/// first use, destroyed when its last reference goes, created again by the
/// next user after that. `Engine` must have `refs()` returning its
/// engine_refs.
template <class Engine>
class default_engine_slot {
public:
    /// A new reference on the default engine, creating it with `create()`
    /// when there is none (or the previous one is being destroyed). nullptr
    /// when `create()` fails.
    template <class Create>
    static Engine* acquire(Create&& create) noexcept
    {
        std::lock_guard lk(mutex());
        Engine*& d = current();
        if (d != nullptr && d->refs().try_add()) {
            return d;
        }
        d = std::forward<Create>(create)();
        return d;
    }

    /// Called by an engine whose last reference went: it stops being the
    /// default one (when it was), before it is destroyed.
    static void forget(const Engine* e) noexcept
    {
        std::lock_guard lk(mutex());
        if (current() == e) {
            current() = nullptr;
        }
    }

private:
    static std::mutex& mutex() noexcept
    {
        static std::mutex m;
        return m;
    }
    static Engine*& current() noexcept
    {
        static Engine* e = nullptr;
        return e;
    }
};

/// The engine's socket cores. Allocated 64 at a time and never freed while
/// the engine lives: a thread still finishing an event or a callback of a
/// socket that was just destroyed touches valid memory (the core is
/// type-stable), and opening sockets allocates once per 64 sockets at most.
/// `Core` has a `Core* next_free` member for the free list.
template <class Core>
class core_pool {
public:
    static constexpr std::size_t chunk = 64;

    /// A core from the free list, or nullptr when memory runs out.
    Core* acquire() noexcept
    {
        std::lock_guard lk(mu_);
        if (free_ == nullptr && !grow()) {
            return nullptr;
        }
        Core* c = free_;
        free_ = c->next_free;
        c->next_free = nullptr;
        return c;
    }

    /// Puts a core back on the free list.
    void release(Core* c) noexcept
    {
        std::lock_guard lk(mu_);
        c->next_free = free_;
        free_ = c;
    }

private:
    bool grow() noexcept
    {
        std::unique_ptr<Core[]> block(new (std::nothrow) Core[chunk]);
        if (!block) {
            return false;
        }
        try {
            chunks_.push_back(std::move(block));
        } catch (...) {
            return false;
        }
        Core* cores = chunks_.back().get();
        for (std::size_t i = 0; i < chunk; ++i) {
            cores[i].next_free = free_;
            free_ = &cores[i];
        }
        return true;
    }

    std::mutex mu_;
    Core* free_ = nullptr;
    std::vector<std::unique_ptr<Core[]>> chunks_;
};

/// Runs `destroy` on a new detached thread: for an engine whose last
/// reference went on one of its own threads, which cannot join or wait for
/// itself. When no thread can be had, the engine is leaked rather than
/// destroyed under its own feet.
template <class Fn>
void destroy_on_another_thread(Fn destroy) noexcept
{
    try {
        std::thread(std::move(destroy)).detach();
    } catch (...) {
    }
}

} // namespace asock::detail
