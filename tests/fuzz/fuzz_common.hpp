// tests/fuzz/fuzz_common.hpp: what the fuzz targets of tests/fuzz/ share.
//
// - fz::reader: the input as a stream of small numbers (a tiny stand-in for
//   libFuzzer's FuzzedDataProvider, so that g++ builds need nothing of clang).
//   Past the end of the input it returns zeros.
// - fz::trace / fz::fail: every input keeps a log of the actions it performed;
//   a broken contract prints the log and the reason, then aborts (libFuzzer
//   saves the input as a crash; a replay run fails).
// - fz::watchdog: one deadline per input; when it passes, the log and every
//   thread's stack (gdb, when installed) are printed, then the process aborts.
// - fz::fd_set_now / expect_no_new_fds: descriptors open in the process
//   (/proc/self/fd), and the check that an input leaked none.
// - connected pairs (AF_UNIX socketpair, loopback TCP), byte patterns, and the
//   check of a byte stream against the sends that produced it.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "../support/hang_report.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

namespace fz {

// ---- the input ----------------------------------------------------------------

struct reader {
    const std::uint8_t* data;
    std::size_t size;
    std::size_t at = 0;

    bool empty() const noexcept { return at >= size; }
    std::uint8_t u8() noexcept { return at < size ? data[at++] : 0; }
    // Reads are sequenced one per statement: the operands of one expression
    // are evaluated in an unspecified order, and g++ and clang must decode an
    // input the same way.
    std::uint16_t u16() noexcept
    {
        const unsigned lo = u8();
        const unsigned hi = u8();
        return static_cast<std::uint16_t>(lo | (hi << 8));
    }
    std::uint32_t u32() noexcept
    {
        const std::uint32_t lo = u16();
        const std::uint32_t hi = u16();
        return lo | (hi << 16);
    }
    /// A number in [0, n).
    unsigned below(unsigned n) noexcept { return n == 0 ? 0 : u8() % n; }
    /// The next `n` bytes as a reader of their own (an action's arguments:
    /// a fixed-size block, so an action that is skipped, or that reads less,
    /// does not shift the actions after it).
    reader block(std::size_t n) noexcept
    {
        const std::size_t from = std::min(at, size);
        reader b{data + from, std::min(n, size - from)};
        at = from + n;
        return b;
    }
};

// ---- log, failure ------------------------------------------------------------------

inline std::mutex& log_mutex()
{
    static std::mutex m;
    return m;
}
inline std::string& log_text()
{
    static std::string s;
    return s;
}
inline bool trace_live()
{
    static const bool on = [] {
        const char* v = std::getenv("ASOCK_FUZZ_TRACE");
        return v != nullptr && *v != '\0' && *v != '0';
    }();
    return on;
}

/// Appends one line to the current input's log.
inline void trace(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline void trace(const char* fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    std::lock_guard lk(log_mutex());
    if (log_text().size() < (1u << 20)) {
        log_text() += buf;
        log_text() += '\n';
    }
    if (trace_live()) {
        std::fprintf(stderr, "  | %s\n", buf);
    }
}

inline void log_reset()
{
    std::lock_guard lk(log_mutex());
    log_text().clear();
}

inline std::atomic<bool>& failing()
{
    static std::atomic<bool> f{false};
    return f;
}

inline void print_log(const char* title)
{
    std::string copy;
    {
        std::lock_guard lk(log_mutex());
        copy = log_text();
    }
    std::fprintf(stderr, "==== %s: the actions of this input ====\n%s==== end of actions ====\n", title, copy.c_str());
}

/// A broken contract: prints the input's log and `why`, then aborts.
[[noreturn]] inline void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] inline void fail(const char* fmt, ...)
{
    if (failing().exchange(true)) {
        for (;;) {
            std::this_thread::sleep_for(std::chrono::seconds(1)); // another thread is reporting
        }
    }
    static char buf[1 << 16]; // one report per process: this thread owns it now
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    print_log("FUZZ CONTRACT VIOLATION");
    std::fprintf(stderr, "FUZZ CONTRACT VIOLATION: %s\n", buf);
    std::fflush(stderr);
    std::abort();
}

inline std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline std::string format(const char* fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

/// Whether the check named `name` is switched off: ASOCK_FUZZ_SKIP holds a
/// comma-separated list of check names. For looking past a known defect
/// while it is being fixed; the corpus replay in CI sets nothing.
inline bool skipped(const char* name)
{
    static const std::string list = [] {
        const char* v = std::getenv("ASOCK_FUZZ_SKIP");
        return std::string(",") + (v != nullptr ? v : "") + ",";
    }();
    return list.find(std::string(",") + name + ",") != std::string::npos;
}

// ---- watchdog ------------------------------------------------------------------------

/// Prints every thread's stack with gdb (when it is installed).
inline void dump_all_stacks()
{
    hang_report_dump_stacks();
}

class watchdog {
public:
    static watchdog& get()
    {
        static watchdog* w = new watchdog(); // never destroyed: its thread lives as long as the process
        return *w;
    }

    /// Arms the deadline of one input.
    void arm(std::chrono::milliseconds limit)
    {
        deadline_.store((now() + limit).count(), std::memory_order_release);
    }
    void disarm() { deadline_.store(0, std::memory_order_release); }

    /// The end of an input: if the watchdog (or another thread's failure) is
    /// reporting, wait here for its abort rather than let the process go on
    /// (or exit 0). ASOCK_FUZZ_SELFTEST_HANG=1 makes every input hang here,
    /// to see the watchdog's report (scripts, CI: unset).
    void input_done()
    {
        static const bool selftest_hang = std::getenv("ASOCK_FUZZ_SELFTEST_HANG") != nullptr;
        while (failing().load() || selftest_hang) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        disarm();
    }

    static std::chrono::milliseconds input_limit()
    {
        const char* v = std::getenv("ASOCK_FUZZ_INPUT_TIMEOUT_MS");
        return std::chrono::milliseconds(v != nullptr ? std::atol(v) : 10000);
    }

private:
    watchdog()
    {
        std::thread([this] { run(); }).detach();
    }
    static std::chrono::milliseconds now()
    {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now().time_since_epoch());
    }
    void run()
    {
        for (;;) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            const long long d = deadline_.load(std::memory_order_acquire);
            if (d != 0 && now().count() > d) {
                if (failing().exchange(true)) {
                    return;
                }
                print_log("FUZZ HANG");
                std::fprintf(stderr, "FUZZ HANG: the input did not finish within %lld ms; every thread's stack follows\n",
                             static_cast<long long>(input_limit().count()));
                dump_all_stacks();
                std::fprintf(stderr, "FUZZ HANG: aborting\n");
                std::fflush(stderr);
                std::abort();
            }
        }
    }
    std::atomic<long long> deadline_{0};
};

// ---- descriptors ----------------------------------------------------------------

/// The descriptors open in this process, as "number -> target" lines (the
/// descriptor used to list them left out).
inline std::vector<std::string> fd_set_now()
{
    std::vector<std::string> out;
    DIR* d = opendir("/proc/self/fd");
    if (d == nullptr) {
        return out;
    }
    const int own = dirfd(d);
    while (dirent* e = readdir(d)) {
        if (e->d_name[0] == '.' || std::atoi(e->d_name) == own) {
            continue;
        }
        const std::string path = std::string("/proc/self/fd/") + e->d_name;
        char target[256] = {};
        const ssize_t n = readlink(path.c_str(), target, sizeof target - 1);
        out.push_back(std::string(e->d_name) + " -> " + (n > 0 ? target : "?"));
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

/// Descriptors open after an input that were not open before it (a leak).
/// Other threads of the process (the sanitizer and libFuzzer runtimes) may
/// hold a descriptor for a moment, and an engine whose last reference went on
/// one of its own threads is destroyed a moment later by a helper thread: so
/// the check looks again for up to `limit_ms` before it fails.
inline void expect_no_new_fds(const std::vector<std::string>& before, int limit_ms = 3000)
{
    std::vector<std::string> extra;
    for (int waited = 0;; waited += 5) {
        const std::vector<std::string> now = fd_set_now();
        extra.clear();
        std::set_difference(now.begin(), now.end(), before.begin(), before.end(), std::back_inserter(extra));
        if (extra.empty() || waited >= limit_ms) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!extra.empty()) {
        std::string list;
        for (const auto& e : extra) {
            list += "  " + e + "\n";
        }
        fail("descriptor leak: open after everything was destroyed, and not before the input:\n%s", list.c_str());
    }
}

/// A descriptor the harness owns was closed behind its back (EBADF).
inline void check_not_ebadf(int err, const char* what, int fd)
{
    if (err == EBADF) {
        fail("%s on descriptor %d failed with EBADF: the harness's descriptor was closed behind its back", what, fd);
    }
}

// ---- connected pairs -------------------------------------------------------------

/// `mine` goes to the library, `peer` stays with the harness (non-blocking).
struct conn_pair {
    int mine = -1;
    int peer = -1;
};

inline bool make_unix_pair(conn_pair& p)
{
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        return false;
    }
    p.mine = sv[0];
    p.peer = sv[1];
    ::fcntl(p.peer, F_SETFL, ::fcntl(p.peer, F_GETFL) | O_NONBLOCK);
    return true;
}

/// A loopback TCP connection (127.0.0.1 only).
inline bool make_tcp_pair(conn_pair& p)
{
    const int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0) {
        return false;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(l, 1) != 0 ||
        ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ::close(l);
        return false;
    }
    const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0) {
        ::close(l);
        return false;
    }
    if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(c);
        ::close(l);
        return false;
    }
    const int s = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
    ::close(l);
    if (s < 0) {
        ::close(c);
        return false;
    }
    const int one = 1;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    p.mine = c;
    p.peer = s;
    ::fcntl(p.peer, F_SETFL, ::fcntl(p.peer, F_GETFL) | O_NONBLOCK);
    return true;
}

/// Closes `fd` with SO_LINGER {1, 0}: on TCP the peer gets a reset (RST).
inline void reset_close(int fd)
{
    linger lg{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ::close(fd);
}

/// One page no one may touch: buffers whose declared length runs past what is
/// really there point into it, so a library that wrongly used them would
/// fault (or get EFAULT from the kernel) instead of corrupting memory.
inline std::uint8_t* forbidden_page()
{
    static std::uint8_t* p = [] {
        void* m = ::mmap(nullptr, 1u << 16, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return m == MAP_FAILED ? nullptr : static_cast<std::uint8_t*>(m);
    }();
    return p;
}

// ---- byte patterns -------------------------------------------------------------------

inline std::uint64_t mix(std::uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/// Byte `pos` of the stream that the peer of connection `salt` writes.
inline std::uint8_t peer_byte(std::uint64_t salt, std::uint64_t pos)
{
    return static_cast<std::uint8_t>(mix((salt << 40) ^ pos) >> 17);
}

/// Byte `i` of the send with id `id`.
inline std::uint8_t send_byte(std::uint64_t id, std::uint64_t i)
{
    return static_cast<std::uint8_t>(mix((id << 32) ^ (i * 0x100000001ull) ^ 0x5a5a) >> 23);
}

/// Reads what the peer can read now (non-blocking), appending it to `out`.
/// Returns 1 at end of stream, -1 on an error, 0 otherwise.
inline int peer_read_some(int fd, std::vector<std::uint8_t>& out, std::size_t max)
{
    std::uint8_t buf[65536];
    std::size_t got = 0;
    while (got < max) {
        const ssize_t n = ::recv(fd, buf, std::min(sizeof buf, max - got), MSG_DONTWAIT);
        if (n > 0) {
            out.insert(out.end(), buf, buf + n);
            got += static_cast<std::size_t>(n);
            continue;
        }
        if (n == 0) {
            return 1;
        }
        if (errno == EINTR) {
            continue;
        }
        check_not_ebadf(errno, "recv by the peer", fd);
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
    return 0;
}

/// Reads until end of stream or error, waiting at most `limit_ms` in total.
/// Returns 1 at end of stream, -1 on an error, 0 on timeout.
inline int peer_drain(int fd, std::vector<std::uint8_t>& out, int limit_ms)
{
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(limit_ms);
    for (;;) {
        const int r = peer_read_some(fd, out, SIZE_MAX);
        if (r != 0) {
            return r;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return 0;
        }
        pollfd p{fd, POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 100)));
    }
}

// ---- the stream check of sends -------------------------------------------------------

/// One accepted send, as the stream check sees it.
struct wire_send {
    std::uint32_t id;
    std::uint32_t epoch; ///< sends of one epoch may be in any order; epochs are in order
    bool ok;             ///< completed OK: every byte must be on the stream
    const std::uint8_t* data;
    std::size_t len;
};

/// Checks that `stream` (what the peer read) is a concatenation of whole
/// sends, in epoch order, each at most once, with every OK send present,
/// except that the last one may be cut short: when `complete` is false the
/// peer simply stopped reading there; when it is true, only a send that failed
/// may be cut short (a torn send), and then no OK send may remain unmatched.
/// Returns an empty string when the stream is valid, else why not.
class wire_checker {
public:
    wire_checker(std::vector<wire_send> sends, const std::vector<std::uint8_t>& stream, bool complete)
        : sends_(std::move(sends)), s_(stream), complete_(complete)
    {
        std::stable_sort(sends_.begin(), sends_.end(), [](const wire_send& a, const wire_send& b) {
            return a.epoch < b.epoch;
        });
        for (std::size_t i = 0; i < sends_.size(); ++i) {
            if (groups_.empty() || sends_[groups_.back().front()].epoch != sends_[i].epoch) {
                groups_.emplace_back();
            }
            groups_.back().push_back(i);
        }
        ok_from_.assign(groups_.size() + 1, false);
        for (std::size_t g = groups_.size(); g-- > 0;) {
            bool any = ok_from_[g + 1];
            for (std::size_t k : groups_[g]) {
                any = any || sends_[k].ok;
            }
            ok_from_[g] = any;
        }
    }

    std::string run()
    {
        std::vector<bool> mask(groups_.empty() ? 0 : groups_[0].size(), false);
        if (rec(0, 0, mask)) {
            return {};
        }
        if (gave_up_) {
            return {}; // too many states to decide: not a finding (logged)
        }
        return describe();
    }
    bool gave_up() const noexcept { return gave_up_; }

private:
    bool ok_unmatched_in(std::size_t g, const std::vector<bool>& mask, std::size_t except) const
    {
        for (std::size_t j = 0; j < groups_[g].size(); ++j) {
            if (!mask[j] && j != except && sends_[groups_[g][j]].ok) {
                return true;
            }
        }
        return false;
    }

    bool rec(std::size_t pos, std::size_t g, std::vector<bool>& mask)
    {
        if (pos > best_pos_ || (pos == best_pos_ && g >= best_g_)) {
            best_pos_ = pos;
            best_g_ = g;
            best_mask_ = mask;
        }
        if (g == groups_.size()) {
            return pos == s_.size();
        }
        if (++states_ > 2000000) {
            gave_up_ = true;
            return false;
        }
        std::string key = std::to_string(pos) + ':' + std::to_string(g) + ':';
        for (bool b : mask) {
            key += b ? '1' : '0';
        }
        if (failed_.count(key) != 0) {
            return false;
        }
        const auto& grp = groups_[g];
        const bool any_ok_left = ok_unmatched_in(g, mask, SIZE_MAX);
        if (pos == s_.size()) {
            if (!complete_) {
                return true;
            }
            if (!any_ok_left && !ok_from_[g + 1]) {
                return true;
            }
        } else {
            const std::size_t rem = s_.size() - pos;
            for (std::size_t j = 0; j < grp.size() && !gave_up_; ++j) {
                if (mask[j]) {
                    continue;
                }
                const wire_send& w = sends_[grp[j]];
                if (rem >= w.len) {
                    if (std::memcmp(w.data, s_.data() + pos, w.len) == 0) {
                        mask[j] = true;
                        if (rec(pos + w.len, g, mask)) {
                            return true;
                        }
                        mask[j] = false;
                    }
                } else if (std::memcmp(w.data, s_.data() + pos, rem) == 0) {
                    // The stream ends inside this send.
                    if (!complete_) {
                        return true;
                    }
                    if (!w.ok && !ok_unmatched_in(g, mask, j) && !ok_from_[g + 1]) {
                        return true; // a torn send, and nothing that had to follow it
                    }
                }
            }
        }
        if (!any_ok_left && !gave_up_) {
            std::vector<bool> next(g + 1 < groups_.size() ? groups_[g + 1].size() : 0, false);
            if (rec(pos, g + 1, next)) {
                return true;
            }
        }
        failed_.insert(std::move(key));
        return false;
    }

    std::string describe() const
    {
        std::string out = format("the peer's stream (%zu bytes, %s) is not the accepted sends in order, whole, "
                                 "once each, all OK ones present; the longest valid parse ends at byte %zu, "
                                 "in epoch group %zu of %zu.",
                                 s_.size(), complete_ ? "read to end of stream" : "not read to the end", best_pos_,
                                 best_g_, groups_.size());
        out += " Bytes there:";
        for (std::size_t i = best_pos_; i < s_.size() && i < best_pos_ + 16; ++i) {
            out += format(" %02x", s_[i]);
        }
        out += "\n  the accepted sends by epoch group (id:length:OK/failed, * = matched at that point):";
        std::size_t shown = 0;
        for (std::size_t g = 0; g < groups_.size(); ++g) {
            out += format("\n    group %zu (epoch %u):", g, sends_[groups_[g].front()].epoch);
            for (std::size_t j = 0; j < groups_[g].size(); ++j) {
                const wire_send& w = sends_[groups_[g][j]];
                const bool matched = g < best_g_ || (g == best_g_ && j < best_mask_.size() && best_mask_[j]);
                if (++shown > 400) {
                    out += " ...";
                    break;
                }
                out += format(" #%u:%zu:%s%s", w.id, w.len, w.ok ? "OK" : "failed", matched ? "*" : "");
            }
        }
        return out;
    }

    std::vector<wire_send> sends_;
    const std::vector<std::uint8_t>& s_;
    bool complete_;
    std::vector<std::vector<std::size_t>> groups_;
    std::vector<bool> ok_from_;
    std::unordered_set<std::string> failed_;
    std::size_t states_ = 0;
    bool gave_up_ = false;
    std::size_t best_pos_ = 0;
    std::size_t best_g_ = 0;
    std::vector<bool> best_mask_;
};

// ---- threads ------------------------------------------------------------------------

/// Marks harness threads (the fuzzer's own: main, burst threads), as opposed
/// to engine threads; and what API call each is inside.
struct thread_marks {
    bool harness = false;
    int in_send = 0;  ///< inside a send start call
    int in_close = 0; ///< inside close / destroy
    int in_open = 0;  ///< inside open
    int in_loop = 0;  ///< running an engine's loop (run_one / poll / sync_wait / the engine's last dec_ref)
    int in_stop = 0;  ///< inside std::stop_source::request_stop
    const void* starting = nullptr; ///< the receive / notify being started
};
inline thread_local thread_marks tls_marks;

/// A SIGPIPE means a send without MSG_NOSIGNAL (the harness always passes it).
inline void install_sigpipe_trap()
{
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa {};
        sa.sa_handler = [](int) {
            const char msg[] = "FUZZ CONTRACT VIOLATION: SIGPIPE raised (a send without MSG_NOSIGNAL)\n";
            (void)!::write(2, msg, sizeof msg - 1);
            std::abort();
        };
        sigaction(SIGPIPE, &sa, nullptr);
    });
}

/// Harness code running on threads the harness does not join (callbacks,
/// transport and owner hooks, resumed coroutines on engine threads): each
/// such section holds an in_flight scope. Before an input frees its records it
/// waits for the count to drop to 0, which also orders everything those
/// sections did before the frees (an engine torn down by the library's helper
/// thread joins its threads where the harness cannot see it).
inline std::atomic<int>& in_flight_count()
{
    static std::atomic<int> n{0};
    return n;
}
struct in_flight {
    in_flight() noexcept { in_flight_count().fetch_add(1, std::memory_order_acq_rel); }
    ~in_flight() { in_flight_count().fetch_sub(1, std::memory_order_acq_rel); }
    in_flight(const in_flight&) = delete;
    in_flight& operator=(const in_flight&) = delete;
};
inline void wait_no_harness_code_in_flight()
{
    for (int waited = 0; in_flight_count().load(std::memory_order_acquire) != 0; ++waited) {
        if (waited > 5000) {
            fail("harness callbacks still running 5 s after everything was destroyed");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

/// Waits (bounded) for a predicate, waking on notify().
class progress {
public:
    void notify()
    {
        std::lock_guard lk(mu_);
        ++gen_;
        cv_.notify_all(); // under the lock: whoever takes it next is ordered after the broadcast
    }
    template <class Pred>
    bool wait_for(Pred pred, std::chrono::milliseconds limit)
    {
        const auto end = std::chrono::steady_clock::now() + limit;
        std::unique_lock lk(mu_);
        for (;;) {
            lk.unlock();
            if (pred()) {
                return true;
            }
            lk.lock();
            if (std::chrono::steady_clock::now() >= end) {
                return false;
            }
            const std::uint64_t g = gen_;
            cv_.wait_until(lk, std::min(end, std::chrono::steady_clock::now() + std::chrono::milliseconds(5)),
                           [&] { return gen_ != g; });
        }
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::uint64_t gen_ = 0;
};

} // namespace fz
