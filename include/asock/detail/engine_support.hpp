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
#include <bit>
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

/// The engine's socket cores. Never freed while the engine lives: a thread
/// still finishing an event or a callback of a socket that was just destroyed
/// touches valid memory (the core is type-stable), and opening sockets
/// allocates rarely (chunk k holds 64 << k cores, so n sockets cost about
/// log2(n / 64) allocations in all).
///
/// Every core has a stable slot id, and `at(id)` finds it without a lock: a
/// backend can name a core in a kernel event by (id, generation) instead of
/// by address, so an event that was harvested for one socket can be told
/// apart from the next socket that reuses the same core (see
/// include/asock/linux/epoll_socket_core.hpp, "generation"). `Core` has a
/// `Core* next_free` member for the free list and, optionally, a
/// `std::uint32_t pool_id` member that the pool sets to the slot id.
template <class Core>
class core_pool {
public:
    static constexpr std::size_t first_chunk = 64;
    /// Chunks 0..max_chunks-1 hold 64 * (2^26 - 1) cores: every 32-bit id.
    static constexpr std::size_t max_chunks = 26;

    core_pool() = default;
    core_pool(const core_pool&) = delete;
    core_pool& operator=(const core_pool&) = delete;
    ~core_pool()
    {
        for (auto& c : chunks_) {
            delete[] c.load(std::memory_order_relaxed);
        }
    }

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

    /// The core with slot id `id`, or nullptr when no such slot was ever
    /// handed out. Lock-free; callable from any thread.
    Core* at(std::uint32_t id) const noexcept
    {
        if (id < first_chunk) { // the first chunk: no arithmetic (every event looks its core up)
            Core* chunk = chunks_[0].load(std::memory_order_acquire);
            return chunk != nullptr ? chunk + id : nullptr;
        }
        const std::uint64_t q = (static_cast<std::uint64_t>(id) / first_chunk) + 1;
        const auto k = static_cast<std::size_t>(std::bit_width(q) - 1); // the chunk holding `id`
        if (k >= max_chunks) {
            return nullptr;
        }
        Core* chunk = chunks_[k].load(std::memory_order_acquire);
        if (chunk == nullptr) {
            return nullptr;
        }
        const std::uint64_t base = first_chunk * ((std::uint64_t{1} << k) - 1);
        return &chunk[id - base];
    }

private:
    bool grow() noexcept
    {
        if (used_ == max_chunks) {
            return false;
        }
        const std::size_t k = used_;
        const std::size_t n = first_chunk << k;
        Core* cores = new (std::nothrow) Core[n];
        if (cores == nullptr) {
            return false;
        }
        const std::uint64_t base = first_chunk * ((std::uint64_t{1} << k) - 1);
        // Pushed in reverse so that the lowest ids are handed out first.
        for (std::size_t i = n; i-- > 0;) {
            if constexpr (requires(Core& c) { c.pool_id; }) {
                cores[i].pool_id = static_cast<std::uint32_t>(base + i);
            }
            cores[i].next_free = free_;
            free_ = &cores[i];
        }
        chunks_[k].store(cores, std::memory_order_release);
        ++used_;
        return true;
    }

    std::mutex mu_;
    Core* free_ = nullptr;
    std::size_t used_ = 0;
    std::atomic<Core*> chunks_[max_chunks] = {};
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

namespace asock::detail {

/// Where an engine's last reference was dropped, which decides who destroys it.
enum class last_reference_site : std::uint8_t {
    caller_loop, ///< inside run() / run_one() / poll() on the caller's thread: that loop call destroys it as it returns
    own_thread,  ///< on one of the engine's own threads, which cannot join or wait for itself: another thread does
    elsewhere,   ///< anywhere else: destroyed now, on this thread
};

/// The lifetime every engine shares (CRTP): creation, the reference count,
/// the default engine, and who destroys the engine when its last reference
/// goes. `Engine` provides, reachable from this base (friend it):
/// - `bool init(const Options&)` and `void destroy_now()` (also after a failed init);
/// - `last_reference_site last_reference_site_here() const` and
///   `void orphan_in_caller_loop()` (stop the loop; its scope destroys the engine);
/// - `static Options default_engine_options()`.
template <class Engine, class Options>
class engine_lifetime {
public:
    /// Creates an engine with one reference, or returns nullptr when its
    /// resources (threads, OS objects) cannot be had or the options are
    /// inconsistent.
    static Engine* create(const Options& options = {}) noexcept
    {
        auto* e = new (std::nothrow) Engine();
        if (e == nullptr) {
            return nullptr;
        }
        if (!e->init(options)) {
            e->destroy_now();
            return nullptr;
        }
        return e;
    }

    /// The process-wide engine, created on first use with the backend's
    /// default options and destroyed when its last reference goes. Returns a
    /// new reference.
    static Engine* acquire_default() noexcept
    {
        return default_engine_slot<Engine>::acquire([] { return create(Engine::default_engine_options()); });
    }

    void inc_ref() noexcept { refs_.add(); }

    void dec_ref() noexcept
    {
        if (!refs_.release()) {
            return;
        }
        Engine* self = static_cast<Engine*>(this);
        default_engine_slot<Engine>::forget(self);
        switch (self->last_reference_site_here()) {
        case last_reference_site::caller_loop: self->orphan_in_caller_loop(); return;
        case last_reference_site::own_thread: destroy_on_another_thread([self] { self->destroy_now(); }); return;
        case last_reference_site::elsewhere: break;
        }
        self->destroy_now();
    }

    std::uint32_t use_count() const noexcept { return refs_.count(); }
    engine_refs& refs() noexcept { return refs_; }

protected:
    engine_lifetime() noexcept = default;
    ~engine_lifetime() = default;

private:
    engine_refs refs_;
};

} // namespace asock::detail
