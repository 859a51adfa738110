// tests/stress/stress_common.hpp: what the stress test (stress_test.cpp) and
// its echo server program (echo_server_main.cpp) share, without Catch2: the
// build flavour, a watchdog per phase, bounded waits, a thread-safe failure
// log, the descriptor limit, and memory probes.
//
// Rules, as in tests/integration/: engine threads, callbacks and helper
// threads record what they see into atomics or the failure log; every wait is
// bounded, and a phase that overruns its limit ends the process with a
// message (a hang fails the run instead of blocking CI).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

// ---- the build flavour --------------------------------------------------------------

#if defined(__SANITIZE_THREAD__)
#define ASOCK_STRESS_TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__)
#define ASOCK_STRESS_ASAN 1
#endif
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) && !defined(ASOCK_STRESS_TSAN)
#define ASOCK_STRESS_TSAN 1
#endif
#if __has_feature(address_sanitizer) && !defined(ASOCK_STRESS_ASAN)
#define ASOCK_STRESS_ASAN 1
#endif
#endif
#if defined(ASOCK_STRESS_TSAN) || defined(ASOCK_STRESS_ASAN)
#define ASOCK_STRESS_SANITIZED 1
// The sanitizer allocator's bytes in use (libasan and libtsan both have it;
// g++ 12 ships no <sanitizer/allocator_interface.h> to declare it).
extern "C" std::size_t __sanitizer_get_current_allocated_bytes(void);
#endif
#if defined(__OPTIMIZE__)
#define ASOCK_STRESS_OPTIMISED 1
#endif

namespace stress {

using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

inline double seconds_since(clock::time_point t0)
{
    return std::chrono::duration<double>(clock::now() - t0).count();
}

// ---- watchdog -------------------------------------------------------------------------

/// Ends the process (failure) unless destroyed within `limit`: a hang inside
/// the library, or a test waiting for something that never comes, fails the
/// run with a message saying what hung and how far it got.
class phase_watchdog {
public:
    phase_watchdog(std::string what, std::chrono::seconds limit, std::function<std::string()> progress = {})
        : what_(std::move(what)), progress_(std::move(progress)), limit_(limit)
    {
        thread_ = std::thread([this] { watch(); });
    }
    ~phase_watchdog()
    {
        {
            std::lock_guard lk(mu_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    phase_watchdog(const phase_watchdog&) = delete;
    phase_watchdog& operator=(const phase_watchdog&) = delete;

private:
    void watch()
    {
        std::unique_lock lk(mu_);
        if (cv_.wait_for(lk, limit_, [this] { return done_; })) {
            return;
        }
        const std::string progress = progress_ ? progress_() : std::string();
        std::fprintf(stderr, "\nstress watchdog: \"%s\" did not finish within %lld s; failing. %s\n", what_.c_str(),
                     static_cast<long long>(limit_.count()), progress.c_str());
        std::fflush(nullptr);
        std::_Exit(EXIT_FAILURE); // not abort(): Catch's handler would run while the hang holds its locks
    }

    std::string what_;
    std::function<std::string()> progress_;
    std::chrono::seconds limit_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

/// Waits until `pred()` (yielding at first, then in 1 ms steps); past
/// `limit` ends the process with `what` and `progress()`.
template <class Pred, class Progress>
void wait_or_die(const char* what, std::chrono::seconds limit, Pred pred, Progress progress)
{
    for (int i = 0; i < 200; ++i) {
        if (pred()) {
            return;
        }
        std::this_thread::yield();
    }
    const auto deadline = clock::now() + limit;
    while (!pred()) {
        if (clock::now() > deadline) {
            const std::string p = progress();
            std::fprintf(stderr, "\nstress: waited %lld s for %s; failing. %s\n", static_cast<long long>(limit.count()),
                         what, p.c_str());
            std::fflush(nullptr);
            std::_Exit(EXIT_FAILURE);
        }
        std::this_thread::sleep_for(1ms);
    }
}

// ---- failures seen off the test thread ------------------------------------------------

/// Failures recorded by engine threads, callbacks and helper threads; the test
/// thread asserts on count() and prints summary(). Keeps the first 20 messages.
class failure_log {
public:
    void add(std::string message)
    {
        count_.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard lk(mu_);
        if (first_.size() < 20) {
            first_.push_back(std::move(message));
        }
    }
    int count() const { return count_.load(std::memory_order_relaxed); }
    std::string summary() const
    {
        std::lock_guard lk(mu_);
        std::string s = std::to_string(count()) + " failure(s)";
        for (const auto& m : first_) {
            s += "\n  - " + m;
        }
        if (static_cast<std::size_t>(count()) > first_.size()) {
            s += "\n  ...";
        }
        return s;
    }

private:
    std::atomic<int> count_{0};
    mutable std::mutex mu_;
    std::vector<std::string> first_;
};

// ---- descriptors ----------------------------------------------------------------------

/// Makes at least `wanted` descriptors available if it can: the soft
/// RLIMIT_NOFILE goes up to the hard limit and, where the process may (root,
/// CAP_SYS_RESOURCE), the hard limit up to `wanted`. Returns the soft limit
/// now in force.
inline rlim_t raise_nofile(rlim_t wanted)
{
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 0;
    }
    if (rl.rlim_cur >= wanted) {
        return rl.rlim_cur;
    }
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < wanted) {
        rlimit more{wanted, wanted};
        if (::setrlimit(RLIMIT_NOFILE, &more) == 0) {
            return wanted;
        }
    }
    rlimit soft = rl;
    soft.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &soft) == 0) {
        return soft.rlim_cur;
    }
    return rl.rlim_cur;
}

/// Descriptors open in this process now (the entries of /proc/self/fd, less
/// the one reading it).
inline int open_descriptors()
{
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) {
        return -1;
    }
    int n = 0;
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') {
            ++n;
        }
    }
    ::closedir(d);
    return n - 1;
}

// ---- memory ---------------------------------------------------------------------------

/// Resident set size of this process, in bytes (/proc/self/statm, read with
/// plain system calls so that reading it allocates nothing).
inline std::uint64_t resident_bytes()
{
    const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    char buf[128];
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    unsigned long long size = 0;
    unsigned long long resident = 0;
    if (std::sscanf(buf, "%llu %llu", &size, &resident) != 2) {
        return 0;
    }
    return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

/// Heap bytes in use now and allocations made so far. Without sanitizers they
/// come from the replacement operator new / delete of stress_test.cpp (C++
/// allocations: coroutine frames, containers, std::stop_source); under ASan /
/// TSan from the sanitizer allocator (every malloc), which counts no
/// allocations (`allocations` is then 0).
struct heap_usage {
    std::int64_t live_bytes = 0;
    std::uint64_t allocations = 0;
};
heap_usage heap_now() noexcept; // stress_test.cpp

} // namespace stress
