// tests/support/fake_sys.hpp: a scriptable stand-in for the system calls of the
// epoll backend (the "Sys" policy of include/asock/linux/epoll_sys.hpp).
//
// One process-wide fake world holds every fake descriptor. A test resets it,
// scripts what each call will answer, drives an engine created with
// `threads = 0` through run_one() / poll(), and then inspects what the backend
// passed to each call. Nothing here blocks: epoll_wait returns only the events
// the test raised (plus the engine's wake-up while its eventfd is signalled).
//
// Several epoll instances are separate, as in the kernel: an event raised for
// a descriptor goes to the instance it is registered with, an eventfd wakes
// only the instance it is registered with, epoll_del names the instance (a
// descriptor registered elsewhere is ENOENT). For an engine with threads (one
// loop, so one epoll instance, per thread), set `blocking_waits` before
// creating it: an epoll_wait without timeout that finds nothing then really
// waits until something is raised or injected on its instance or one of its
// eventfds is signalled.
//
// Scripting a fake socket (`fake().sock(fd)`) or a custom transport
// (`fake_transport::ep`), both a `fake_endpoint`; each call consumes one step:
//   send: accept(n) takes up to n of the bytes offered; accept_all();
//         send_fails(errno). With an empty script a send answers EAGAIN,
//         unless auto_accept is set.
//   recv: data("...") hands out as much as the buffers hold (the rest stays for
//         the next call, as a stream does); eof() answers 0, and keeps doing so;
//         recv_fails(errno). With an empty script a receive answers EAGAIN.
// Every call is recorded (iovec lengths, bytes offered) in `sends` / `recvs`;
// the bytes sends accepted are appended to `wire`.
// Readiness reported by poll_now: `set_readiness(fd, POLLIN | ...)`.
// Events: `raise(fd, EPOLLIN | ...)` queues one event for a registered
// descriptor; `inject(epfd, data, events)` queues one naming any pointer.
// Failures: `fail_epoll_create`, `fail_eventfd_create`, `fail_epoll_add`,
// `fail_shutdown_send` hold an errno the next such call fails with (0: succeed).
// Half-closes (shutdown_send, SHUT_WR) are recorded in `shutdown_send_fds`.
// TCP_INQ: `tcp_inq` makes enable_inq succeed (calls in `enable_inq_fds`);
// recv_iov_inq then reports the bytes left in the script (bytes_left).
#pragma once

#include <asock/async_socket.hpp>
#include <asock/linux/epoll_platform.hpp>
#include <asock/transport.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <poll.h>
#include <sys/epoll.h>
#include <sys/uio.h>

namespace asock_test {

/// What one send / recv call was given.
struct call_record {
    std::vector<std::size_t> lengths; ///< iov_len of each iovec, in order.
    std::string offered;              ///< (send) the bytes the iovecs named, concatenated.
    bool inq = false;                 ///< (recv) made with recv_iov_inq: asked for the bytes left.
};

/// One scripted answer.
struct io_step {
    enum class kind { accept, accept_all, data, eof, fail };
    kind what = kind::fail;
    std::size_t limit = 0; ///< accept: most bytes taken.
    std::string bytes;     ///< data: bytes still to hand out.
    int err = 0;           ///< fail: errno.
};

/// One end the backend moves bytes through: a fake socket or a fake custom transport.
struct fake_endpoint {
    std::deque<io_step> send_script;
    std::deque<io_step> recv_script;
    bool auto_accept = false; ///< An empty send script accepts everything instead of EAGAIN.

    std::string wire;                ///< Every byte a send accepted, in order.
    std::vector<call_record> sends;  ///< One record per send call.
    std::vector<call_record> recvs;  ///< One record per recv call.

    fake_endpoint& accept(std::size_t n) { return push_send({io_step::kind::accept, n, {}, 0}); }
    fake_endpoint& accept_all() { return push_send({io_step::kind::accept_all, 0, {}, 0}); }
    fake_endpoint& send_fails(int e) { return push_send({io_step::kind::fail, 0, {}, e}); }
    fake_endpoint& data(std::string bytes) { return push_recv({io_step::kind::data, 0, std::move(bytes), 0}); }
    fake_endpoint& eof() { return push_recv({io_step::kind::eof, 0, {}, 0}); }
    fake_endpoint& recv_fails(int e) { return push_recv({io_step::kind::fail, 0, {}, e}); }

    long do_send(const iovec* iov, int count)
    {
        call_record rec;
        for (int i = 0; i < count; ++i) {
            rec.lengths.push_back(iov[i].iov_len);
            rec.offered.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
        }
        const std::string offered = rec.offered;
        sends.push_back(std::move(rec));
        if (send_script.empty() && !auto_accept) {
            errno = EAGAIN;
            return -1;
        }
        io_step step{io_step::kind::accept_all, 0, {}, 0};
        if (!send_script.empty()) {
            step = send_script.front();
            send_script.pop_front();
        }
        if (step.what == io_step::kind::fail) {
            errno = step.err;
            return -1;
        }
        const std::size_t n = step.what == io_step::kind::accept ? std::min(step.limit, offered.size()) : offered.size();
        wire.append(offered, 0, n);
        return static_cast<long>(n);
    }

    /// What TCP_INQ would report now: the bytes of the data steps ahead;
    /// 1 when only the end of the stream (or a scripted failure) is ahead,
    /// as the kernel reports 1 for a pending FIN; 0 for an empty script.
    int bytes_left() const
    {
        std::size_t n = 0;
        for (const io_step& st : recv_script) {
            if (st.what != io_step::kind::data) {
                return n != 0 ? static_cast<int>(n) : 1;
            }
            n += st.bytes.size();
        }
        return static_cast<int>(n);
    }

    long do_recv(iovec* iov, int count)
    {
        call_record rec;
        std::size_t room = 0;
        for (int i = 0; i < count; ++i) {
            rec.lengths.push_back(iov[i].iov_len);
            room += iov[i].iov_len;
        }
        recvs.push_back(std::move(rec));
        if (recv_script.empty()) {
            errno = EAGAIN;
            return -1;
        }
        io_step& step = recv_script.front();
        switch (step.what) {
        case io_step::kind::eof: return 0; // sticky, like a stream's end
        case io_step::kind::fail: {
            const int e = step.err;
            recv_script.pop_front();
            errno = e;
            return -1;
        }
        default: break;
        }
        const std::size_t n = std::min(room, step.bytes.size());
        std::size_t copied = 0;
        for (int i = 0; i < count && copied < n; ++i) {
            const std::size_t k = std::min(iov[i].iov_len, n - copied);
            std::memcpy(iov[i].iov_base, step.bytes.data() + copied, k);
            copied += k;
        }
        step.bytes.erase(0, n);
        if (step.bytes.empty()) {
            recv_script.pop_front();
        }
        return static_cast<long>(n);
    }

private:
    fake_endpoint& push_send(io_step s)
    {
        send_script.push_back(std::move(s));
        return *this;
    }
    fake_endpoint& push_recv(io_step s)
    {
        recv_script.push_back(std::move(s));
        return *this;
    }
};

/// A custom transport (asock::custom_transport) answering from its own script.
struct fake_transport {
    fake_endpoint ep;
    std::function<void()> on_send_hook; ///< Run inside each on_send call, before it answers.
    std::function<void()> on_recv_hook; ///< Run inside each on_recv call, before it answers.

    asock::custom_transport get() noexcept { return {&send_fn, this, &recv_fn, this}; }

    static int send_fn(void* context, const void* buffer, std::size_t length)
    {
        auto* t = static_cast<fake_transport*>(context);
        if (t->on_send_hook) {
            t->on_send_hook();
        }
        iovec iov{const_cast<void*>(buffer), length};
        return static_cast<int>(t->ep.do_send(&iov, 1));
    }
    static int recv_fn(void* context, void* buffer, std::size_t length)
    {
        auto* t = static_cast<fake_transport*>(context);
        if (t->on_recv_hook) {
            t->on_recv_hook();
        }
        iovec iov{buffer, length};
        return static_cast<int>(t->ep.do_recv(&iov, 1));
    }
};

class fake_world {
public:
    struct registration {
        int epfd = -1;
        std::uint64_t data = 0; ///< The token the events carry (epoll_event::data.u64).
        std::uint32_t events = 0;
    };

    /// Forgets every descriptor, script, record, failure and hook.
    void reset()
    {
        std::lock_guard lk(mu_);
        fds_.clear();
        regs_.clear();
        pending_.clear();
        next_fd_ = 100;
        idle_waits_ = 0;
        now_ = clock_start();
        timerfd_arms = 0;
        fail_epoll_create = fail_eventfd_create = fail_epoll_add = 0;
        on_epoll_add = nullptr;
        on_eventfd_drain = nullptr;
        on_schedule_point = nullptr;
        on_socket_send = nullptr;
        epoll_add_calls = epoll_del_calls = epoll_wait_calls = eventfd_signals = 0;
        deleted_fds.clear();
        shutdown_fds.clear();
        shutdown_send_fds.clear();
        fail_shutdown_send = 0;
        closed_fds.clear();
        tcp_inq = false;
        enable_inq_fds.clear();
        blocking_waits = false;
    }

    // ---- scripting ----------------------------------------------------------

    /// A new fake socket descriptor.
    int make_socket()
    {
        std::lock_guard lk(mu_);
        return new_fd(fd_kind::socket);
    }

    /// The scripts and records of fake socket `fd`.
    fake_endpoint& sock(int fd)
    {
        std::lock_guard lk(mu_);
        return fds_.at(fd).ep;
    }

    /// What poll_now reports for `fd` from now on.
    void set_readiness(int fd, short revents)
    {
        std::lock_guard lk(mu_);
        fds_.at(fd).readiness = revents;
    }

    /// Queues one epoll event for registered descriptor `fd`; false if it is not registered.
    bool raise(int fd, std::uint32_t events)
    {
        std::lock_guard lk(mu_);
        auto it = regs_.find(fd);
        if (it == regs_.end()) {
            return false;
        }
        pending_[it->second.epfd].push_back(make_event(events, it->second.data));
        wakeup_.notify_all();
        return true;
    }

    /// Queues one epoll event on epoll instance `epfd` carrying token `data`, registered or not.
    void inject(int epfd, std::uint64_t data, std::uint32_t events)
    {
        std::lock_guard lk(mu_);
        pending_[epfd].push_back(make_event(events, data));
        wakeup_.notify_all();
    }

    // ---- the virtual clock (the engine's `now()` and its timerfd) ----------
    //
    // Time stands still unless a test advances it, or an epoll_wait that
    // would block (timeout -1, or long enough) has nothing else to report
    // while a timerfd is armed: the fake then moves the clock to that
    // deadline, as the kernel would wake the waiter then. Nothing sleeps.

    using clock = std::chrono::steady_clock;
    static clock::time_point clock_start() { return clock::time_point{} + std::chrono::hours(1); }

    clock::time_point now() const
    {
        std::lock_guard lk(mu_);
        return now_;
    }

    /// Moves the virtual clock forward by `d`.
    void advance(clock::duration d)
    {
        std::lock_guard lk(mu_);
        now_ += d;
    }

    /// The deadline timerfd `fd` is armed at (nullopt: not armed).
    std::optional<clock::time_point> timerfd_deadline(int fd) const
    {
        std::lock_guard lk(mu_);
        auto it = fds_.find(fd);
        return it != fds_.end() && it->second.armed ? std::optional<clock::time_point>(it->second.deadline)
                                                    : std::nullopt;
    }
    std::vector<int> timerfds() const { return fds_of(fd_kind::timerfd); }
    /// timerfd_settime calls so far.
    int timerfd_arms = 0;

    /// An epoll_wait with timeout -1 that has nothing to report blocks until
    /// its instance has something (for engines with threads; see the top).
    /// Set it before the engine's threads start; reset() clears it.
    bool blocking_waits = false;

    int fail_epoll_create = 0;
    int fail_eventfd_create = 0;
    int fail_epoll_add = 0;
    /// Run at the start of every epoll_add, outside the fake's lock.
    std::function<void()> on_epoll_add;
    /// Run at the start of every eventfd_drain, outside the fake's lock: lets a
    /// test force what another thread does between an engine's check of its
    /// stop flag and its drain of the wake-up eventfd.
    std::function<void()> on_eventfd_drain;
    /// Run at each schedule point of the socket core (see
    /// asock::detail::readiness::schedule_point), on the thread that reached
    /// it, outside the fake's lock. Set it before the threads that reach it start.
    std::function<void(asock::detail::readiness::schedule_point)> on_schedule_point;
    /// Run at the start of each socket send call (send_iov / send_one),
    /// before it answers, with the descriptor.
    std::function<void(int)> on_socket_send;

    // ---- inspection ---------------------------------------------------------

    std::optional<registration> registered(int fd) const
    {
        std::lock_guard lk(mu_);
        auto it = regs_.find(fd);
        return it == regs_.end() ? std::nullopt : std::optional<registration>(it->second);
    }

    /// The `events` argument of each poll_now call on `fd`, in order.
    std::vector<short> poll_requests(int fd) const
    {
        std::lock_guard lk(mu_);
        return fds_.at(fd).poll_requests;
    }

    bool eventfd_signalled(int evfd) const
    {
        std::lock_guard lk(mu_);
        return fds_.at(evfd).counter != 0;
    }

    /// Descriptors of the given kind created so far, in order.
    std::vector<int> epoll_fds() const { return fds_of(fd_kind::epoll); }
    std::vector<int> eventfds() const { return fds_of(fd_kind::eventfd); }

    static int count(const std::vector<int>& v, int fd) { return static_cast<int>(std::count(v.begin(), v.end(), fd)); }

    int epoll_add_calls = 0;
    int epoll_del_calls = 0;
    int epoll_wait_calls = 0;
    int eventfd_signals = 0;
    std::vector<int> deleted_fds;
    std::vector<int> shutdown_fds;
    /// Every shutdown_send (SHUT_WR) call, in order, by descriptor.
    std::vector<int> shutdown_send_fds;
    /// The errno the next shutdown_send call fails with (0: it succeeds).
    int fail_shutdown_send = 0;
    /// Whether enable_inq (TCP_INQ) succeeds on fake sockets; off by default,
    /// as on a Unix socket: receives then never report what is left.
    bool tcp_inq = false;
    /// Every enable_inq call, in order, by descriptor.
    std::vector<int> enable_inq_fds;
    std::vector<int> closed_fds;

    // ---- the Sys side ---------------------------------------------------------

    int sys_epoll_create()
    {
        std::lock_guard lk(mu_);
        if (fail_epoll_create != 0) {
            errno = std::exchange(fail_epoll_create, 0);
            return -1;
        }
        return new_fd(fd_kind::epoll);
    }

    int sys_timerfd_create()
    {
        std::lock_guard lk(mu_);
        return new_fd(fd_kind::timerfd);
    }

    void sys_timerfd_arm(int fd, clock::time_point deadline)
    {
        std::lock_guard lk(mu_);
        if (fd_state* s = find(fd, fd_kind::timerfd)) {
            ++timerfd_arms;
            s->armed = true;
            s->deadline = deadline;
        }
    }

    void sys_timerfd_drain(int fd)
    {
        std::lock_guard lk(mu_);
        if (fd_state* s = find(fd, fd_kind::timerfd)) {
            s->counter = 0;
        }
    }

    int sys_eventfd_create()
    {
        std::lock_guard lk(mu_);
        if (fail_eventfd_create != 0) {
            errno = std::exchange(fail_eventfd_create, 0);
            return -1;
        }
        return new_fd(fd_kind::eventfd);
    }

    int sys_epoll_add(int epfd, int fd, std::uint32_t events, std::uint64_t data)
    {
        if (on_epoll_add) {
            on_epoll_add();
        }
        std::lock_guard lk(mu_);
        ++epoll_add_calls;
        if (fail_epoll_add != 0) {
            errno = std::exchange(fail_epoll_add, 0);
            return -1;
        }
        if (regs_.count(fd) != 0) {
            errno = EEXIST;
            return -1;
        }
        regs_[fd] = registration{epfd, data, events};
        return 0;
    }

    /// Only descriptors made by make_socket() are sockets.
    bool sys_is_socket(int fd)
    {
        std::lock_guard lk(mu_);
        return find(fd, fd_kind::socket) != nullptr;
    }

    int sys_epoll_del(int epfd, int fd)
    {
        std::lock_guard lk(mu_);
        ++epoll_del_calls;
        deleted_fds.push_back(fd);
        auto it = regs_.find(fd);
        if (it == regs_.end() || it->second.epfd != epfd) {
            errno = ENOENT; // not registered with this instance
            return -1;
        }
        regs_.erase(it);
        return 0;
    }

    int sys_epoll_wait(int epfd, epoll_event* events, int max_events, int timeout_ms)
    {
        std::unique_lock lk(mu_);
        ++epoll_wait_calls;
        for (;;) {
            int n = 0;
            auto& q = pending_[epfd];
            while (n < max_events && !q.empty()) {
                events[n++] = q.front();
                q.pop_front();
            }
            for (const auto& [fd, reg] : regs_) {
                auto it = fds_.find(fd);
                if (n < max_events && reg.epfd == epfd && it != fds_.end() && it->second.kind == fd_kind::eventfd &&
                    it->second.counter != 0) {
                    events[n++] = make_event(EPOLLIN, reg.data);
                }
            }
            n = report_timers(epfd, events, n, max_events);
            if (n == 0 && timeout_ms != 0) {
                // Blocked: time passes until the earliest armed timer, or the timeout.
                std::optional<clock::time_point> wake;
                for (const auto& [fd, reg] : regs_) {
                    auto it = fds_.find(fd);
                    if (reg.epfd == epfd && it != fds_.end() && it->second.kind == fd_kind::timerfd &&
                        it->second.armed && (!wake || it->second.deadline < *wake)) {
                        wake = it->second.deadline;
                    }
                }
                if (timeout_ms > 0 && (!wake || *wake > now_ + std::chrono::milliseconds(timeout_ms))) {
                    now_ += std::chrono::milliseconds(timeout_ms);
                    return 0;
                }
                if (wake) {
                    now_ = std::max(now_, *wake);
                    n = report_timers(epfd, events, n, max_events);
                }
            }
            if (n == 0 && timeout_ms < 0 && blocking_waits) {
                wakeup_.wait(lk); // another thread raises, injects or signals
                continue;
            }
            if (n == 0 && timeout_ms != 0) {
                // A real epoll_wait would block here, and nothing could ever wake it
                // in a single-threaded test: stop instead of spinning forever.
                if (++idle_waits_ > 100000) {
                    std::fprintf(stderr, "fake_sys: epoll_wait would block forever (nothing raised)\n");
                    std::abort();
                }
            } else {
                idle_waits_ = 0;
            }
            return n;
        }
    }

    // Calls on a descriptor the fake never made fail as the kernel would (EBADF).

    void sys_eventfd_signal(int fd)
    {
        std::lock_guard lk(mu_);
        if (fd_state* s = find(fd, fd_kind::eventfd)) {
            ++eventfd_signals;
            ++s->counter;
            wakeup_.notify_all();
        }
    }

    void sys_eventfd_drain(int fd)
    {
        if (on_eventfd_drain) {
            on_eventfd_drain();
        }
        std::lock_guard lk(mu_);
        if (fd_state* s = find(fd, fd_kind::eventfd)) {
            s->counter = 0;
        }
    }

    long sys_send_iov(int fd, const iovec* iov, int count)
    {
        if (on_socket_send) {
            on_socket_send(fd); // outside the fake's lock: it may drive an engine
        }
        std::lock_guard lk(mu_);
        fd_state* s = find(fd, fd_kind::socket);
        return s != nullptr ? s->ep.do_send(iov, count) : bad_fd();
    }

    long sys_recv_iov(int fd, iovec* iov, int count)
    {
        std::lock_guard lk(mu_);
        fd_state* s = find(fd, fd_kind::socket);
        return s != nullptr ? s->ep.do_recv(iov, count) : bad_fd();
    }

    int sys_enable_inq(int fd)
    {
        std::lock_guard lk(mu_);
        enable_inq_fds.push_back(fd);
        if (find(fd, fd_kind::socket) == nullptr) {
            return static_cast<int>(bad_fd());
        }
        if (!tcp_inq) {
            errno = EOPNOTSUPP;
            return -1;
        }
        return 0;
    }

    /// recv_iov with TCP_INQ's answer: `inq` is what is left after the call
    /// (fake_endpoint::bytes_left), or -1 when the call returned no bytes.
    long sys_recv_iov_inq(int fd, iovec* iov, int count, int& inq)
    {
        std::lock_guard lk(mu_);
        inq = -1;
        fd_state* s = find(fd, fd_kind::socket);
        if (s == nullptr) {
            return bad_fd();
        }
        const long r = s->ep.do_recv(iov, count);
        s->ep.recvs.back().inq = true;
        if (r > 0) {
            inq = s->ep.bytes_left();
        }
        return r;
    }

    short sys_poll_now(int fd, short events)
    {
        std::lock_guard lk(mu_);
        fd_state* s = find(fd, fd_kind::socket);
        if (s == nullptr) {
            return POLLNVAL;
        }
        s->poll_requests.push_back(events);
        // As poll(2): error and hang-up are always reported, the rest only if asked for.
        return static_cast<short>(s->readiness & (events | POLLRDHUP | POLLERR | POLLHUP));
    }

    int sys_shutdown(int fd)
    {
        std::lock_guard lk(mu_);
        shutdown_fds.push_back(fd);
        return 0;
    }

    int sys_shutdown_send(int fd)
    {
        std::lock_guard lk(mu_);
        shutdown_send_fds.push_back(fd);
        if (fail_shutdown_send != 0) {
            errno = std::exchange(fail_shutdown_send, 0);
            return -1;
        }
        return 0;
    }

    int sys_close(int fd)
    {
        std::lock_guard lk(mu_);
        closed_fds.push_back(fd);
        return 0;
    }

private:
    enum class fd_kind { socket, epoll, eventfd, timerfd };
    struct fd_state {
        fd_kind kind = fd_kind::socket;
        fake_endpoint ep;
        short readiness = 0;
        std::vector<short> poll_requests;
        std::uint64_t counter = 0;          // eventfd value; timerfd expiries not yet read
        bool armed = false;                 // timerfd
        clock::time_point deadline{};       // timerfd
    };

    // Timerfds of `epfd` whose deadline passed expire (one-shot) and, like
    // any with unread expiries, are reported readable.
    int report_timers(int epfd, epoll_event* events, int n, int max_events)
    {
        for (auto& [fd, reg] : regs_) {
            auto it = fds_.find(fd);
            if (reg.epfd != epfd || it == fds_.end() || it->second.kind != fd_kind::timerfd) {
                continue;
            }
            fd_state& t = it->second;
            if (t.armed && t.deadline <= now_) {
                t.armed = false;
                ++t.counter;
            }
            if (t.counter != 0 && n < max_events) {
                events[n++] = make_event(EPOLLIN, reg.data);
            }
        }
        return n;
    }

    fd_state* find(int fd, fd_kind k)
    {
        auto it = fds_.find(fd);
        return it != fds_.end() && it->second.kind == k ? &it->second : nullptr;
    }

    static long bad_fd()
    {
        errno = EBADF;
        return -1;
    }

    static epoll_event make_event(std::uint32_t events, std::uint64_t data)
    {
        epoll_event ev{};
        ev.events = events;
        ev.data.u64 = data;
        return ev;
    }

    int new_fd(fd_kind k)
    {
        const int fd = next_fd_++;
        fds_[fd].kind = k;
        return fd;
    }

    std::vector<int> fds_of(fd_kind k) const
    {
        std::lock_guard lk(mu_);
        std::vector<int> out;
        for (const auto& [fd, s] : fds_) {
            if (s.kind == k) {
                out.push_back(fd);
            }
        }
        return out;
    }

    mutable std::mutex mu_;
    std::condition_variable wakeup_; // blocking_waits: something became reportable
    std::map<int, fd_state> fds_;
    std::map<int, registration> regs_;
    std::map<int, std::deque<epoll_event>> pending_;
    int next_fd_ = 100;
    int idle_waits_ = 0;
    clock::time_point now_ = clock_start();
};

inline fake_world& fake()
{
    static fake_world world;
    return world;
}

/// The Sys policy the backend is instantiated with in the unit tests.
struct fake_sys {
    static int epoll_create() noexcept { return fake().sys_epoll_create(); }
    static int epoll_add(int epfd, int fd, std::uint32_t events, std::uint64_t data) noexcept
    {
        return fake().sys_epoll_add(epfd, fd, events, data);
    }
    static int epoll_del(int epfd, int fd) noexcept { return fake().sys_epoll_del(epfd, fd); }
    static bool is_socket(int fd) noexcept { return fake().sys_is_socket(fd); }
    static int epoll_wait(int epfd, epoll_event* events, int max_events, int timeout_ms) noexcept
    {
        return fake().sys_epoll_wait(epfd, events, max_events, timeout_ms);
    }
    static int eventfd_create() noexcept { return fake().sys_eventfd_create(); }
    static std::chrono::steady_clock::time_point now() noexcept { return fake().now(); }
    static int timerfd_create() noexcept { return fake().sys_timerfd_create(); }
    static void timerfd_arm(int fd, std::chrono::steady_clock::time_point t) noexcept { fake().sys_timerfd_arm(fd, t); }
    static void timerfd_drain(int fd) noexcept { fake().sys_timerfd_drain(fd); }
    static void eventfd_signal(int fd) noexcept { fake().sys_eventfd_signal(fd); }
    static void eventfd_drain(int fd) noexcept { fake().sys_eventfd_drain(fd); }
    static ssize_t send_iov(int fd, const iovec* iov, int count) noexcept { return fake().sys_send_iov(fd, iov, count); }
    static ssize_t recv_iov(int fd, iovec* iov, int count) noexcept { return fake().sys_recv_iov(fd, iov, count); }
    // The single-buffer calls are scripted and recorded like a one-entry iovec.
    static ssize_t send_one(int fd, const void* data, std::size_t length) noexcept
    {
        const iovec iov{const_cast<void*>(data), length};
        return fake().sys_send_iov(fd, &iov, 1);
    }
    static ssize_t recv_one(int fd, void* data, std::size_t length) noexcept
    {
        iovec iov{data, length};
        return fake().sys_recv_iov(fd, &iov, 1);
    }
    static int enable_inq(int fd) noexcept { return fake().sys_enable_inq(fd); }
    static ssize_t recv_iov_inq(int fd, iovec* iov, int count, int& inq) noexcept
    {
        return fake().sys_recv_iov_inq(fd, iov, count, inq);
    }
    static short poll_now(int fd, short events) noexcept { return fake().sys_poll_now(fd, events); }
    static int shutdown(int fd) noexcept { return fake().sys_shutdown(fd); }
    static int shutdown_send(int fd) noexcept { return fake().sys_shutdown_send(fd); }
    static int close(int fd) noexcept { return fake().sys_close(fd); }
    static void schedule_point(asock::detail::readiness::schedule_point p) noexcept
    {
        if (fake().on_schedule_point) {
            fake().on_schedule_point(p);
        }
    }
};

using fake_platform = asock::linux_epoll::basic_epoll_platform<fake_sys>;
using fake_engine = fake_platform::engine_type;
using fake_core = fake_platform::core_type;
using fake_socket = asock::async_socket<fake_platform>;

} // namespace asock_test
