// tests/support/fake_uring.hpp: a scripted ring for the io_uring backend's
// unit and conformance tests (the `Ring` seam of asock/uring/uring_types.hpp).
//
// Nothing completes by itself. Submissions given to the "kernel" (submit())
// stay outstanding until a test completes them with any result it chooses
// (complete(), complete_recv(), complete_send()), which fills a receive's
// buffers and takes a send's bytes exactly as the kernel would. Two kinds
// complete at submit: IORING_OP_NOP (0), and IORING_OP_ASYNC_CANCEL: its
// target completes -ECANCELED at once, unless `on_cancel` says otherwise (the
// call's data won the race: it completes with that result; or nullopt: the
// cancel found the call busy, it stays outstanding); the cancel itself
// completes 0, or -ENOENT when the target was not outstanding.
//
// wait() never blocks: the engine's loop is driven by the test (threads = 0,
// poll()). One world per process (fake_uring()), reset by each test.
#pragma once

#include <asock/async_socket.hpp>
#include <asock/detail/timer_queue.hpp>
#include <asock/uring/uring_platform.hpp>
#include <asock/uring/uring_types.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <sys/socket.h>
#include <sys/uio.h>

namespace asock_utest {

using asock::uring::completion;
using asock::uring::op_code;
using asock::uring::submission;

/// A submission the fake kernel holds.
struct pending_call {
    submission s;

    bool is_send() const noexcept { return s.op == op_code::send || s.op == op_code::sendmsg; }
    bool is_recv() const noexcept { return s.op == op_code::recv || s.op == op_code::recvmsg; }

    /// The buffers the call was given.
    std::vector<iovec> buffers() const
    {
        if (s.op == op_code::send || s.op == op_code::recv) {
            return {iovec{s.addr, s.len}};
        }
        std::vector<iovec> v;
        for (std::size_t i = 0; i < s.msg->msg_iovlen; ++i) {
            v.push_back(s.msg->msg_iov[i]);
        }
        return v;
    }

    std::size_t room() const
    {
        std::size_t n = 0;
        for (const iovec& b : buffers()) {
            n += b.iov_len;
        }
        return n;
    }

    /// A send's bytes, in order.
    std::string offered() const
    {
        std::string out;
        for (const iovec& b : buffers()) {
            out.append(static_cast<const char*>(b.iov_base), b.iov_len);
        }
        return out;
    }

    /// Writes `bytes` across a receive's buffers (at most room()).
    void fill(const std::string& bytes) const
    {
        std::size_t at = 0;
        for (const iovec& b : buffers()) {
            const std::size_t n = std::min(b.iov_len, bytes.size() - at);
            std::memcpy(b.iov_base, bytes.data() + at, n);
            at += n;
            if (at == bytes.size()) {
                break;
            }
        }
    }
};

struct fake_uring_world {
    std::mutex mu;
    std::vector<submission> queued;       ///< prepared, not submitted
    std::vector<pending_call> outstanding; ///< submitted, not completed
    std::deque<completion> cq;
    std::vector<submission> log;           ///< every submission given to the kernel, in order
    std::size_t submit_calls = 0;          ///< submit() calls that gave at least one entry
    std::map<int, std::string> wire;       ///< bytes the peer took from sends, per fd
    std::size_t sq_capacity = 64;
    int init_error = 0;                    ///< init() fails with -init_error when not 0
    std::set<int> not_sockets;
    std::map<int, int> shutdown_errors;    ///< shutdown_send fails with this errno
    std::vector<int> shutdowns;            ///< fds shut down for sending
    std::function<std::optional<std::int32_t>(const pending_call&)> on_cancel;
    std::function<void()> on_is_socket;    ///< runs inside open() (OPENING)
    std::function<std::size_t(int)> readable; ///< FIONREAD

    void reset()
    {
        std::lock_guard lk(mu);
        queued.clear();
        outstanding.clear();
        cq.clear();
        log.clear();
        submit_calls = 0;
        wire.clear();
        sq_capacity = 64;
        init_error = 0;
        not_sockets.clear();
        shutdown_errors.clear();
        shutdowns.clear();
        on_cancel = nullptr;
        on_is_socket = nullptr;
        readable = nullptr;
    }

    // ---- what a test does ------------------------------------------------------

    /// The oldest outstanding send (true) or receive (false) on `fd`, or nullopt.
    std::optional<pending_call> find(int fd, bool send)
    {
        std::lock_guard lk(mu);
        for (const pending_call& c : outstanding) {
            if (c.s.fd == fd && (send ? c.is_send() : c.is_recv())) {
                return c;
            }
        }
        return std::nullopt;
    }

    std::size_t outstanding_count(int fd)
    {
        std::lock_guard lk(mu);
        return static_cast<std::size_t>(std::count_if(outstanding.begin(), outstanding.end(),
                                                      [fd](const pending_call& c) { return c.s.fd == fd; }));
    }

    /// Completes the outstanding submission `user_data` with `res`. False when
    /// there is none.
    bool complete(std::uint64_t user_data, std::int32_t res)
    {
        std::lock_guard lk(mu);
        return complete_locked(user_data, res);
    }

    /// The oldest receive on `fd` gets `bytes` (at most its room; the rest is
    /// returned) and completes with their count.
    std::string complete_recv(int fd, const std::string& bytes)
    {
        const std::optional<pending_call> c = find(fd, false);
        if (!c) {
            return bytes;
        }
        const std::string now = bytes.substr(0, c->room());
        c->fill(now);
        complete(c->s.user_data, static_cast<std::int32_t>(now.size()));
        return bytes.substr(now.size());
    }

    /// The oldest send on `fd` completes: the peer takes up to `n` of its bytes
    /// (all when n is npos) and the call reports how many.
    std::size_t complete_send(int fd, std::size_t n = std::string::npos)
    {
        const std::optional<pending_call> c = find(fd, true);
        if (!c) {
            return 0;
        }
        const std::string bytes = c->offered().substr(0, n);
        {
            std::lock_guard lk(mu);
            wire[fd] += bytes;
        }
        complete(c->s.user_data, static_cast<std::int32_t>(bytes.size()));
        return bytes.size();
    }

    /// Send / receive submissions made on `fd` so far.
    std::size_t transport_calls(int fd)
    {
        std::lock_guard lk(mu);
        return static_cast<std::size_t>(std::count_if(log.begin(), log.end(), [fd](const submission& s) {
            return s.fd == fd && (s.op == op_code::send || s.op == op_code::sendmsg || s.op == op_code::recv ||
                                  s.op == op_code::recvmsg);
        }));
    }

    std::size_t count(op_code op)
    {
        std::lock_guard lk(mu);
        return static_cast<std::size_t>(
            std::count_if(log.begin(), log.end(), [op](const submission& s) { return s.op == op; }));
    }

    // ---- the ring's side (fake_ring) ----------------------------------------------

    bool complete_locked(std::uint64_t user_data, std::int32_t res)
    {
        for (auto it = outstanding.begin(); it != outstanding.end(); ++it) {
            if (it->s.user_data == user_data) {
                outstanding.erase(it);
                cq.push_back(completion{user_data, res, 0});
                return true;
            }
        }
        return false;
    }

    int submit()
    {
        std::vector<submission> now;
        std::function<std::optional<std::int32_t>(const pending_call&)> cancel_hook;
        {
            std::lock_guard lk(mu);
            now.swap(queued);
            if (!now.empty()) {
                ++submit_calls;
            }
            cancel_hook = on_cancel;
        }
        for (const submission& s : now) {
            std::unique_lock lk(mu);
            log.push_back(s);
            if (s.op == op_code::nop) {
                cq.push_back(completion{s.user_data, 0, 0});
            } else if (s.op == op_code::cancel) {
                std::optional<pending_call> target;
                for (const pending_call& c : outstanding) {
                    if (c.s.user_data == s.target) {
                        target = c;
                    }
                }
                if (!target) {
                    cq.push_back(completion{s.user_data, -ENOENT, 0});
                    continue;
                }
                std::optional<std::int32_t> res = -ECANCELED;
                if (cancel_hook) {
                    lk.unlock();
                    res = cancel_hook(*target); // may fill the buffers (data won)
                    lk.lock();
                }
                if (res) {
                    complete_locked(s.target, *res);
                    cq.push_back(completion{s.user_data, 0, 0});
                } else {
                    cq.push_back(completion{s.user_data, -EALREADY, 0});
                }
            } else {
                outstanding.push_back(pending_call{s});
            }
        }
        return static_cast<int>(now.size());
    }
};

inline fake_uring_world& fake_uring()
{
    static fake_uring_world w;
    return w;
}

/// The Ring of the io_uring engine under test.
class fake_ring {
public:
    int init(unsigned) noexcept { return -fake_uring().init_error; }
    void exit() noexcept {}

    bool prep(const submission& s) noexcept
    {
        fake_uring_world& w = fake_uring();
        std::lock_guard lk(w.mu);
        if (w.queued.size() >= w.sq_capacity) {
            return false;
        }
        w.queued.push_back(s);
        return true;
    }

    unsigned sq_ready() const noexcept
    {
        fake_uring_world& w = fake_uring();
        std::lock_guard lk(w.mu);
        return static_cast<unsigned>(w.queued.size());
    }

    int submit() noexcept { return fake_uring().submit(); }

    unsigned peek(completion* out, unsigned max) noexcept
    {
        fake_uring_world& w = fake_uring();
        std::lock_guard lk(w.mu);
        unsigned n = 0;
        while (n < max && !w.cq.empty()) {
            out[n++] = w.cq.front();
            w.cq.pop_front();
        }
        return n;
    }

    int wait(int) noexcept
    {
        fake_uring_world& w = fake_uring();
        std::lock_guard lk(w.mu);
        return w.cq.empty() ? -ETIME : 0;
    }

    static asock::detail::timer_clock::time_point now() noexcept { return asock::detail::timer_clock::now(); }

    static bool is_socket(int fd) noexcept
    {
        fake_uring_world& w = fake_uring();
        if (w.on_is_socket) {
            w.on_is_socket();
        }
        std::lock_guard lk(w.mu);
        return fd >= 0 && w.not_sockets.count(fd) == 0;
    }

    static bool bytes_waiting(int fd) noexcept
    {
        fake_uring_world& w = fake_uring();
        return w.readable && w.readable(fd) > 0;
    }

    static int shutdown_send(int fd) noexcept
    {
        fake_uring_world& w = fake_uring();
        std::lock_guard lk(w.mu);
        const auto it = w.shutdown_errors.find(fd);
        if (it != w.shutdown_errors.end()) {
            return it->second;
        }
        w.shutdowns.push_back(fd);
        return 0;
    }
    static void shutdown(int) noexcept {}
    static void close(int) noexcept {}
};

using fake_uring_platform = asock::uring::basic_uring_platform<fake_ring>;
using fake_uring_engine = fake_uring_platform::engine_type;
using fake_uring_socket = asock::async_socket<fake_uring_platform>;

} // namespace asock_utest
