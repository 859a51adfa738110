// asock/detail/word_mutex.hpp: the lock that guards a socket direction's queues.
//
// Rationale: the queue locks are taken a few times per operation and almost
// never contended (one dispatcher per socket at a time, and usually one
// coroutine per direction), so the uncontended path decides the cost: here it
// is one compare-exchange to lock and one exchange to unlock, inlined, where
// std::mutex makes two calls into the threads library. Under contention (for
// instance several threads sending on one socket, which holds the lock across
// the send system call) waiters park on the word with std::atomic::wait rather
// than spin, so a long hold costs no CPU.
//
// Not with libstdc++ on mingw-w64: there std::atomic::wait has no futex and
// can lose a wake-up (include/asock/detail/toolchain.hpp), and a waiter that
// misses the holder's unlock sleeps forever on a free lock. This was seen as
// a hang of the engine's timer queue under Wine with four pool threads. On
// that toolchain word_mutex is std::mutex under the same interface.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

namespace asock::detail {

#if defined(__MINGW32__) && defined(__GLIBCXX__)

class word_mutex {
public:
    word_mutex() noexcept = default;
    word_mutex(const word_mutex&) = delete;
    word_mutex& operator=(const word_mutex&) = delete;

    void lock() noexcept { m_.lock(); }
    bool try_lock() noexcept { return m_.try_lock(); }
    void unlock() noexcept { m_.unlock(); }

private:
    std::mutex m_;
};

#else

class word_mutex {
public:
    word_mutex() noexcept = default;
    word_mutex(const word_mutex&) = delete;
    word_mutex& operator=(const word_mutex&) = delete;

    void lock() noexcept
    {
        std::uint32_t expected = unlocked;
        if (!state_.compare_exchange_strong(expected, locked, std::memory_order_acquire, std::memory_order_relaxed)) {
            lock_contended();
        }
    }

    bool try_lock() noexcept
    {
        std::uint32_t expected = unlocked;
        return state_.compare_exchange_strong(expected, locked, std::memory_order_acquire, std::memory_order_relaxed);
    }

    void unlock() noexcept
    {
        if (state_.exchange(unlocked, std::memory_order_release) == contended) {
            state_.notify_one();
        }
    }

private:
    static constexpr std::uint32_t unlocked = 0;
    static constexpr std::uint32_t locked = 1;    // held, nobody waiting
    static constexpr std::uint32_t contended = 2; // held, someone may be waiting

    void lock_contended() noexcept
    {
        // Marking the word contended before waiting makes the holder's unlock
        // wake us; whoever swaps 0 out of the word owns the lock.
        while (state_.exchange(contended, std::memory_order_acquire) != unlocked) {
            state_.wait(contended, std::memory_order_relaxed);
        }
    }

    std::atomic<std::uint32_t> state_{unlocked};
};

#endif

} // namespace asock::detail
