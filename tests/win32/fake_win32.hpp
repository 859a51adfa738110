// tests/win32/fake_win32.hpp: a scriptable stand-in for the Win32 layer of the
// threadpool-IO backend (the "Api" policy of include/asock/win32/win32_api.hpp).
//
// One process-wide fake world. A test resets it, scripts what the calls will
// answer, drives the real engine and socket core, delivers completions itself
// (the fake never completes an overlapped call on its own), and inspects the
// recorded call sequence.
//
// - Every call is appended to `calls()` by its Win32 name, e.g.
//   "StartThreadpoolIo", "WSASend", "WaitForThreadpoolIoCallbacks(FALSE)".
// - WSASend / WSARecv answer from a per-socket script: pending() (the default:
//   SOCKET_ERROR + WSA_IO_PENDING), done_now() (0: done at once, the completion
//   still comes through the callback) or fail(e) (SOCKET_ERROR + e). Accepted
//   calls wait in `outstanding` until the test completes them:
//   complete_send / complete_recv / complete_recv_error / abort_cancelled.
//   The callback runs on the calling thread, with the fake's lock released.
// - ioctlsocket(FIONREAD) (the layer's bytes_readable) answers from a
//   per-socket script too: script_readable(s, n); unscripted, `readable_now`
//   answers when set, else 0 bytes wait.
// - A call has two ends, as in the OS: it finishes in the kernel (its result is
//   then readable through WSAGetOverlappedResult, the `overlapped_result` of
//   the layer), and later its completion packet reaches the IO callback.
//   complete_* do both at once. CancelIoEx finishes a call in the kernel at
//   once (ERROR_OPERATION_ABORTED, unless cancel_finishes_at_once is cleared)
//   and finish_recv_in_kernel() finishes a receive with data; the packet of
//   such a call waits until abort_cancelled() delivers it.
// - shutdown(s, SD_SEND) (the layer's shutdown_send, a half-close) is recorded
//   as "shutdown(SD_SEND)" and counted in fake_socket::send_shutdowns;
//   `fail_shutdown_send` makes the next one fail with that WSA error.
// - Work items (the engine's post) wait until run_work() runs them.
// - A `pool_runner` is a helper thread that plays the thread pool: it aborts
//   cancelled calls and runs posted work, so that a close() on the test thread,
//   which waits for cancelled calls to come back, can finish.
#pragma once

#include <asock/async_socket.hpp>
#include <asock/win32/win32_platform.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <iterator>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace asock_wtest {

/// Bound of every wait in these tests (a hang guard, not a timing assertion).
inline constexpr std::chrono::seconds hang_limit{30};

[[noreturn]] inline void hang(const char* what)
{
    std::fprintf(stderr, "\nwin32 test hang guard: \"%s\" did not finish within %lld s; aborting\n", what,
                 static_cast<long long>(hang_limit.count()));
    std::fflush(stderr);
    std::abort();
}

template <class Pred>
void wait_until(const char* what, Pred pred)
{
    const auto deadline = std::chrono::steady_clock::now() + hang_limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) {
            hang(what);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

/// One scripted answer of WSASend / WSARecv.
struct call_step {
    enum class kind { pending, done_now, fail };
    kind what = kind::pending;
    int err = 0;
};

struct fake_pool_obj {
    DWORD minimum = 0;
    DWORD maximum = 0;
    bool closed = false;
};

struct fake_work_obj {
    PTP_WORK_CALLBACK callback = nullptr;
    void* context = nullptr;
    std::size_t pending = 0; // submitted, not yet run
    bool closed = false;
};

struct fake_io_obj {
    SOCKET socket = INVALID_SOCKET;
    PTP_WIN32_IO_CALLBACK callback = nullptr;
    void* context = nullptr;
    PTP_POOL pool = nullptr; // the pool of the environment it was created with
    int starts = 0;          // StartThreadpoolIo
    int cancels = 0;         // CancelThreadpoolIo
    int completions = 0;     // callbacks delivered with an OVERLAPPED
    int running = 0;         // callbacks running now
    bool closed = false;
};

/// An overlapped call the fake accepted and has not completed yet.
struct outstanding_call {
    enum class kind { send, recv };
    kind what = kind::send;
    SOCKET socket = INVALID_SOCKET;
    fake_io_obj* io = nullptr;
    OVERLAPPED* overlapped = nullptr;
    std::vector<WSABUF> buffers; // as given (Winsock captures the array too)
    std::string offered;         // send: the bytes the buffers named
    bool cancel_requested = false;
    // Finished in the kernel (WSAGetOverlappedResult reports it); the packet
    // may still be on its way to the IO callback.
    bool kernel_done = false;
    ULONG kernel_error = NO_ERROR;
    std::size_t kernel_bytes = 0;
};

/// What one WSASend / WSARecv call was given.
struct call_record {
    SOCKET socket = INVALID_SOCKET;
    std::vector<WSABUF> buffers;
    std::string offered;
    bool overlapped_given = false;
    bool count_ptr_null = false; // lpNumberOfBytesSent / lpNumberOfBytesRecvd
    DWORD flags = 0xFFFFFFFFu;
};

struct fake_socket {
    std::deque<call_step> send_script;
    std::deque<call_step> recv_script;
    std::deque<u_long> readable; // what FIONREAD answers, in turn (then 0)
    int fionread_error = 0;      // FIONREAD fails with this (0: it does not)
    std::string wire; // every byte a completed send delivered, in order
    int shutdowns = 0;
    int send_shutdowns = 0; // shutdown(SD_SEND): half-closes
    int closes = 0;
    int max_sends_outstanding = 0;
    int max_recvs_outstanding = 0;
};

class fake_world {
public:
    // ---- scripting ------------------------------------------------------------
    int fail_wsa_startup = 0;         ///< error WSAStartup returns (0: succeeds)
    bool fail_create_pool = false;
    bool fail_set_minimum = false;
    bool fail_create_work = false;
    bool fail_create_io = false;
    /// CancelIoEx calls that find nothing (FALSE) although the call is outstanding,
    /// as Wine's does when the call is busy moving data at that instant.
    int cancel_misses = 0;
    /// A CancelIoEx that finds the call finishes it in the kernel at once
    /// (ERROR_OPERATION_ABORTED, 0 bytes), as Windows does for a pending receive.
    /// Cleared: the call stays in progress until its packet is delivered.
    bool cancel_finishes_at_once = true;
    /// WaitForThreadpoolWorkCallbacks also waits for work submitted while it
    /// waits (Wine's does). Cleared: it runs only what was submitted when it
    /// was called, which the documentation allows as well.
    bool work_wait_covers_new_submissions = true;
    /// Called (fake lock not held) at the named call, e.g. to observe socket state.
    std::function<void()> on_create_io;
    std::function<void()> on_wait_io_callbacks;
    std::function<void(const call_record&)> on_wsa_send; ///< before the script answers
    /// When set, answers ioctlsocket(FIONREAD) on a socket that has no
    /// scripted answer left (called with the fake's lock held: it must not
    /// call the fake). A driver that plays the peer reports its unread bytes.
    std::function<u_long(SOCKET)> readable_now;

    void reset()
    {
        std::lock_guard lk(mu_);
        fail_wsa_startup = 0;
        fail_create_pool = fail_set_minimum = fail_create_work = fail_create_io = false;
        cancel_misses = 0;
        fail_shutdown_send = 0;
        not_a_socket = INVALID_SOCKET;
        cancel_finishes_at_once = true;
        work_wait_covers_new_submissions = true;
        on_create_io = nullptr;
        on_wait_io_callbacks = nullptr;
        on_wsa_send = nullptr;
        readable_now = nullptr;
        calls_.clear();
        sockets_.clear();
        outstanding_.clear();
        delivering_.clear();
        sends_.clear();
        recvs_.clear();
        wsa_startups_ = wsa_cleanups_ = 0;
        // Pool, work and IO objects are kept: an engine of an earlier test may
        // still hold them (the default engine), and their addresses must stay valid.
    }

    fake_socket& sock(SOCKET s)
    {
        std::lock_guard lk(mu_);
        return sockets_[s];
    }
    void script_send(SOCKET s, call_step step)
    {
        std::lock_guard lk(mu_);
        sockets_[s].send_script.push_back(step);
    }
    void script_recv(SOCKET s, call_step step)
    {
        std::lock_guard lk(mu_);
        sockets_[s].recv_script.push_back(step);
    }
    /// The next ioctlsocket(FIONREAD) on `s` answers `n` bytes waiting (each
    /// scripted answer is used once; unscripted: 0).
    void script_readable(SOCKET s, u_long n)
    {
        std::lock_guard lk(mu_);
        sockets_[s].readable.push_back(n);
    }
    static call_step pending() { return {call_step::kind::pending, 0}; }
    static call_step done_now() { return {call_step::kind::done_now, 0}; }
    static call_step fail(int e) { return {call_step::kind::fail, e}; }

    // ---- inspection -------------------------------------------------------------
    std::vector<std::string> calls()
    {
        std::lock_guard lk(mu_);
        return calls_;
    }
    std::size_t mark()
    {
        std::lock_guard lk(mu_);
        return calls_.size();
    }
    /// Calls since `mark()`, optionally only those named in `only`.
    std::vector<std::string> calls_since(std::size_t from, std::vector<std::string> only = {})
    {
        std::lock_guard lk(mu_);
        std::vector<std::string> out;
        for (std::size_t i = from; i < calls_.size(); ++i) {
            if (only.empty() || std::find(only.begin(), only.end(), calls_[i]) != only.end()) {
                out.push_back(calls_[i]);
            }
        }
        return out;
    }
    int count(const std::string& name)
    {
        std::lock_guard lk(mu_);
        return static_cast<int>(std::count(calls_.begin(), calls_.end(), name));
    }
    std::vector<call_record> sends()
    {
        std::lock_guard lk(mu_);
        return sends_;
    }
    std::vector<call_record> recvs()
    {
        std::lock_guard lk(mu_);
        return recvs_;
    }
    std::string wire(SOCKET s)
    {
        std::lock_guard lk(mu_);
        return sockets_[s].wire;
    }
    std::size_t outstanding_count(SOCKET s, outstanding_call::kind k)
    {
        std::lock_guard lk(mu_);
        return static_cast<std::size_t>(std::count_if(outstanding_.begin(), outstanding_.end(), [&](const auto& c) {
            return c.socket == s && c.what == k;
        }));
    }
    std::size_t outstanding_total()
    {
        std::lock_guard lk(mu_);
        return outstanding_.size();
    }
    bool cancel_requested(SOCKET s, outstanding_call::kind k)
    {
        std::lock_guard lk(mu_);
        for (const auto& c : outstanding_) {
            if (c.socket == s && c.what == k) {
                return c.cancel_requested;
            }
        }
        return false;
    }
    int wsa_startups()
    {
        std::lock_guard lk(mu_);
        return wsa_startups_;
    }
    int wsa_cleanups()
    {
        std::lock_guard lk(mu_);
        return wsa_cleanups_;
    }
    fake_pool_obj last_pool()
    {
        std::lock_guard lk(mu_);
        return pools_.empty() ? fake_pool_obj{} : *pools_.back();
    }
    PTP_POOL last_pool_handle()
    {
        std::lock_guard lk(mu_);
        return pools_.empty() ? nullptr : reinterpret_cast<PTP_POOL>(pools_.back().get());
    }
    /// The IO created for socket `s` most recently (a copy).
    fake_io_obj io_of(SOCKET s)
    {
        std::lock_guard lk(mu_);
        for (auto it = ios_.rbegin(); it != ios_.rend(); ++it) {
            if ((*it)->socket == s) {
                return **it;
            }
        }
        return {};
    }
    std::size_t pending_work()
    {
        std::lock_guard lk(mu_);
        std::size_t n = 0;
        for (const auto& w : works_) {
            n += w->pending;
        }
        return n;
    }

    // ---- delivering completions (the test plays the IO completion port) ------------

    /// Completes the oldest outstanding send on `s`: `err`, and `bytes` (default:
    /// all offered). The bytes reach `wire(s)` when err is NO_ERROR. False if none.
    bool complete_send(SOCKET s, ULONG err = NO_ERROR, std::optional<std::size_t> bytes = std::nullopt)
    {
        std::unique_lock lk(mu_);
        auto c = take(s, outstanding_call::kind::send);
        if (!c) {
            return false;
        }
        const outstanding_call& call = **c;
        const std::size_t n = bytes.value_or(call.offered.size());
        if (err == NO_ERROR) {
            sockets_[s].wire.append(call.offered, 0, std::min(n, call.offered.size()));
        }
        auto d = finish_and_deliver(*c, err, n);
        lk.unlock();
        invoke(d, err, n);
        return true;
    }

    /// Completes the oldest outstanding receive on `s` with `data` (NO_ERROR).
    /// Bytes beyond the buffers are not written but are reported (01_095).
    bool complete_recv(SOCKET s, const std::string& data)
    {
        std::unique_lock lk(mu_);
        auto c = take(s, outstanding_call::kind::recv);
        if (!c) {
            return false;
        }
        std::size_t at = 0;
        for (const WSABUF& b : (*c)->buffers) {
            const std::size_t n = std::min<std::size_t>(b.len, data.size() - at);
            std::memcpy(b.buf, data.data() + at, n);
            at += n;
            if (at == data.size()) {
                break;
            }
        }
        auto d = finish_and_deliver(*c, NO_ERROR, data.size());
        lk.unlock();
        invoke(d, NO_ERROR, data.size());
        return true;
    }

    bool complete_recv_error(SOCKET s, ULONG err, std::size_t bytes = 0)
    {
        std::unique_lock lk(mu_);
        auto c = take(s, outstanding_call::kind::recv);
        if (!c) {
            return false;
        }
        auto d = finish_and_deliver(*c, err, bytes);
        lk.unlock();
        invoke(d, err, bytes);
        return true;
    }

    /// Delivers the packet of every call CancelIoEx was asked for or that
    /// finished in the kernel: with its kernel result, or ERROR_OPERATION_ABORTED
    /// and 0 bytes when the kernel had not finished it yet. Returns how many.
    int abort_cancelled()
    {
        int n = 0;
        for (;;) {
            std::unique_lock lk(mu_);
            auto it = std::find_if(outstanding_.begin(), outstanding_.end(),
                                   [](const auto& c) { return c.cancel_requested || c.kernel_done; });
            if (it == outstanding_.end()) {
                return n;
            }
            if (!it->kernel_done) {
                it->kernel_done = true;
                it->kernel_error = ERROR_OPERATION_ABORTED;
                it->kernel_bytes = 0;
            }
            const ULONG err = it->kernel_error;
            const std::size_t bytes = it->kernel_bytes;
            auto d = start_delivery(it);
            lk.unlock();
            invoke(d, err, bytes);
            ++n;
        }
    }

    /// Finishes the oldest outstanding receive on `s` in the kernel with
    /// `data` (written into its buffers), without delivering its packet: as a
    /// receive that got bytes just before a cancel reached it. False if none.
    bool finish_recv_in_kernel(SOCKET s, const std::string& data)
    {
        std::lock_guard lk(mu_);
        for (auto& c : outstanding_) {
            if (c.socket != s || c.what != outstanding_call::kind::recv || c.kernel_done) {
                continue;
            }
            std::size_t at = 0;
            for (const WSABUF& b : c.buffers) {
                const std::size_t n = std::min<std::size_t>(b.len, data.size() - at);
                std::memcpy(b.buf, data.data() + at, n);
                at += n;
            }
            c.kernel_done = true;
            c.kernel_error = NO_ERROR;
            c.kernel_bytes = data.size();
            return true;
        }
        return false;
    }

    /// Calls the IO callback of `s` with a NULL OVERLAPPED (01_063).
    void deliver_null_overlapped(SOCKET s)
    {
        std::unique_lock lk(mu_);
        fake_io_obj* io = nullptr;
        for (auto& p : ios_) {
            if (p->socket == s && !p->closed) {
                io = p.get();
            }
        }
        if (io == nullptr) {
            return;
        }
        ++io->running;
        lk.unlock();
        io->callback(nullptr, io->context, nullptr, NO_ERROR, 0, reinterpret_cast<PTP_IO>(io));
        lk.lock();
        --io->running;
    }

    /// Runs posted work (SubmitThreadpoolWork callbacks) until none is left, at
    /// most `limit` items. Returns how many ran.
    int run_work(int limit = 100000)
    {
        int n = 0;
        while (n < limit) {
            std::unique_lock lk(mu_);
            fake_work_obj* w = nullptr;
            for (const auto& candidate : works_) {
                if (candidate->pending != 0) {
                    w = candidate.get();
                    break;
                }
            }
            if (w == nullptr) {
                return n;
            }
            --w->pending;
            ++work_running_;
            lk.unlock();
            w->callback(nullptr, w->context, reinterpret_cast<PTP_WORK>(w));
            lk.lock();
            --work_running_;
            ++n;
        }
        return n;
    }

    // ---- the Win32 layer (called through fake_win32) ----------------------------------

    int wsa_startup()
    {
        std::lock_guard lk(mu_);
        calls_.push_back("WSAStartup");
        if (fail_wsa_startup != 0) {
            return fail_wsa_startup;
        }
        ++wsa_startups_;
        return 0;
    }
    void wsa_cleanup()
    {
        std::lock_guard lk(mu_);
        calls_.push_back("WSACleanup");
        ++wsa_cleanups_;
    }
    PTP_POOL create_pool()
    {
        std::lock_guard lk(mu_);
        calls_.push_back("CreateThreadpool");
        if (fail_create_pool) {
            return nullptr;
        }
        pools_.push_back(std::make_unique<fake_pool_obj>());
        return reinterpret_cast<PTP_POOL>(pools_.back().get());
    }
    BOOL set_pool_minimum(PTP_POOL p, DWORD n)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("SetThreadpoolThreadMinimum(" + std::to_string(n) + ")");
        if (fail_set_minimum) {
            return FALSE;
        }
        reinterpret_cast<fake_pool_obj*>(p)->minimum = n;
        return TRUE;
    }
    void set_pool_maximum(PTP_POOL p, DWORD n)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("SetThreadpoolThreadMaximum(" + std::to_string(n) + ")");
        reinterpret_cast<fake_pool_obj*>(p)->maximum = n;
    }
    void close_pool(PTP_POOL p)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("CloseThreadpool");
        reinterpret_cast<fake_pool_obj*>(p)->closed = true;
    }
    void initialize_environment(PTP_CALLBACK_ENVIRON env)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("InitializeThreadpoolEnvironment");
        std::memset(static_cast<void*>(env), 0, sizeof *env);
        env->Version = 1;
    }
    void set_environment_pool(PTP_CALLBACK_ENVIRON env, PTP_POOL pool)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("SetThreadpoolCallbackPool");
        env->Pool = pool;
    }
    void destroy_environment(PTP_CALLBACK_ENVIRON)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("DestroyThreadpoolEnvironment");
    }
    PTP_WORK create_work(PTP_WORK_CALLBACK cb, void* ctx, PTP_CALLBACK_ENVIRON)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("CreateThreadpoolWork");
        if (fail_create_work) {
            return nullptr;
        }
        works_.push_back(std::make_unique<fake_work_obj>());
        works_.back()->callback = cb;
        works_.back()->context = ctx;
        return reinterpret_cast<PTP_WORK>(works_.back().get());
    }
    void submit_work(PTP_WORK w)
    {
        std::lock_guard lk(mu_);
        ++reinterpret_cast<fake_work_obj*>(w)->pending; // not logged: posts are not part of any socket sequence
    }
    void wait_work_callbacks(PTP_WORK w, BOOL cancel)
    {
        {
            std::lock_guard lk(mu_);
            calls_.push_back(cancel ? "WaitForThreadpoolWorkCallbacks(TRUE)" : "WaitForThreadpoolWorkCallbacks(FALSE)");
        }
        // Like the pool: every submitted callback runs before this returns
        // (only those submitted before the call, without
        // work_wait_covers_new_submissions).
        auto* obj = reinterpret_cast<fake_work_obj*>(w);
        std::size_t budget = 0;
        bool bounded = false;
        {
            std::lock_guard lk(mu_);
            bounded = !work_wait_covers_new_submissions;
            budget = obj->pending;
        }
        for (;;) {
            std::unique_lock lk(mu_);
            if (obj->pending == 0 || (bounded && budget == 0)) {
                break;
            }
            --budget;
            --obj->pending;
            ++work_running_;
            lk.unlock();
            obj->callback(nullptr, obj->context, w);
            lk.lock();
            --work_running_;
        }
        wait_until("work callbacks", [&] {
            std::lock_guard lk(mu_);
            return work_running_ == 0;
        });
    }
    void close_work(PTP_WORK w)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("CloseThreadpoolWork");
        reinterpret_cast<fake_work_obj*>(w)->closed = true;
    }
    PTP_IO create_io(SOCKET s, PTP_WIN32_IO_CALLBACK cb, void* ctx, PTP_CALLBACK_ENVIRON env)
    {
        std::function<void()> hook;
        {
            std::lock_guard lk(mu_);
            calls_.push_back("CreateThreadpoolIo");
            hook = on_create_io;
        }
        if (hook) {
            hook();
        }
        std::lock_guard lk(mu_);
        if (fail_create_io) {
            return nullptr;
        }
        ios_.push_back(std::make_unique<fake_io_obj>());
        fake_io_obj& io = *ios_.back();
        io.socket = s;
        io.callback = cb;
        io.context = ctx;
        io.pool = env != nullptr ? env->Pool : nullptr;
        return reinterpret_cast<PTP_IO>(&io);
    }
    void start_io(PTP_IO io)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("StartThreadpoolIo");
        ++reinterpret_cast<fake_io_obj*>(io)->starts;
    }
    void cancel_io(PTP_IO io)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("CancelThreadpoolIo");
        ++reinterpret_cast<fake_io_obj*>(io)->cancels;
    }
    void wait_io_callbacks(PTP_IO io, BOOL cancel)
    {
        std::function<void()> hook;
        {
            std::lock_guard lk(mu_);
            calls_.push_back(cancel ? "WaitForThreadpoolIoCallbacks(TRUE)" : "WaitForThreadpoolIoCallbacks(FALSE)");
            hook = on_wait_io_callbacks;
        }
        if (hook) {
            hook();
        }
        auto* obj = reinterpret_cast<fake_io_obj*>(io);
        wait_until("io callbacks", [&] {
            std::lock_guard lk(mu_);
            return obj->running == 0;
        });
    }
    void close_io(PTP_IO io)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("CloseThreadpoolIo");
        reinterpret_cast<fake_io_obj*>(io)->closed = true;
    }
    int wsa_send(SOCKET s, WSABUF* bufs, DWORD n, DWORD* sent, DWORD flags, OVERLAPPED* ov)
    {
        call_record rec{s, std::vector<WSABUF>(bufs, bufs + n), {}, ov != nullptr, sent == nullptr, flags};
        for (DWORD i = 0; i < n; ++i) {
            rec.offered.append(bufs[i].buf, bufs[i].len);
        }
        std::function<void(const call_record&)> hook;
        {
            std::lock_guard lk(mu_);
            hook = on_wsa_send;
        }
        if (hook) {
            hook(rec);
        }
        std::lock_guard lk(mu_);
        calls_.push_back("WSASend");
        sends_.push_back(rec);
        fake_socket& fs = sockets_[s];
        call_step step = fs.send_script.empty() ? pending() : fs.send_script.front();
        if (!fs.send_script.empty()) {
            fs.send_script.pop_front();
        }
        if (step.what == call_step::kind::fail) {
            tls_last_error() = step.err;
            return SOCKET_ERROR;
        }
        outstanding_.push_back({outstanding_call::kind::send, s, io_for(s), ov, rec.buffers, rec.offered, false});
        fs.max_sends_outstanding =
            std::max(fs.max_sends_outstanding, count_locked(s, outstanding_call::kind::send));
        if (step.what == call_step::kind::done_now) {
            return 0;
        }
        tls_last_error() = WSA_IO_PENDING;
        return SOCKET_ERROR;
    }
    int wsa_recv(SOCKET s, WSABUF* bufs, DWORD n, DWORD* received, DWORD* flags, OVERLAPPED* ov)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("WSARecv");
        call_record rec{s, std::vector<WSABUF>(bufs, bufs + n), {}, ov != nullptr, received == nullptr,
                        flags != nullptr ? *flags : 0xFFFFFFFFu};
        recvs_.push_back(rec);
        fake_socket& fs = sockets_[s];
        call_step step = fs.recv_script.empty() ? pending() : fs.recv_script.front();
        if (!fs.recv_script.empty()) {
            fs.recv_script.pop_front();
        }
        if (step.what == call_step::kind::fail) {
            tls_last_error() = step.err;
            return SOCKET_ERROR;
        }
        outstanding_.push_back({outstanding_call::kind::recv, s, io_for(s), ov, rec.buffers, {}, false});
        fs.max_recvs_outstanding =
            std::max(fs.max_recvs_outstanding, count_locked(s, outstanding_call::kind::recv));
        if (step.what == call_step::kind::done_now) {
            return 0;
        }
        tls_last_error() = WSA_IO_PENDING;
        return SOCKET_ERROR;
    }
    int wsa_get_last_error()
    {
        std::lock_guard lk(mu_);
        calls_.push_back("WSAGetLastError");
        return tls_last_error();
    }
    BOOL cancel_io_ex(SOCKET s, OVERLAPPED* ov)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("CancelIoEx");
        if (cancel_misses > 0) {
            --cancel_misses;
            return FALSE;
        }
        for (auto& c : outstanding_) {
            if (c.socket == s && c.overlapped == ov && !c.kernel_done) {
                c.cancel_requested = true;
                if (cancel_finishes_at_once) {
                    c.kernel_done = true;
                    c.kernel_error = ERROR_OPERATION_ABORTED;
                    c.kernel_bytes = 0;
                }
                return TRUE;
            }
        }
        return FALSE; // ERROR_NOT_FOUND: already finished (its packet may still be on its way)
    }
    /// WSAGetOverlappedResult without waiting: true with the result once the
    /// call finished in the kernel (also while its packet is being delivered).
    bool overlapped_result(SOCKET s, OVERLAPPED* ov, DWORD* bytes, DWORD* error)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("WSAGetOverlappedResult");
        const auto match = [&](const outstanding_call& c) { return c.socket == s && c.overlapped == ov; };
        const outstanding_call* c = nullptr;
        if (auto it = std::find_if(outstanding_.begin(), outstanding_.end(), match); it != outstanding_.end()) {
            c = &*it;
        } else if (auto d = std::find_if(delivering_.begin(), delivering_.end(), match); d != delivering_.end()) {
            c = &*d;
        }
        if (c == nullptr || !c->kernel_done) {
            return false; // WSA_IO_INCOMPLETE
        }
        *bytes = static_cast<DWORD>(c->kernel_bytes);
        *error = c->kernel_error;
        return true;
    }
    int bytes_readable(SOCKET s, u_long* n)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("ioctlsocket(FIONREAD)");
        fake_socket& fs = sockets_[s];
        if (fs.fionread_error != 0) {
            tls_last_error() = fs.fionread_error;
            return SOCKET_ERROR;
        }
        *n = 0;
        if (!fs.readable.empty()) {
            *n = fs.readable.front();
            fs.readable.pop_front();
        } else if (readable_now) {
            *n = readable_now(s);
        }
        return 0;
    }
    int shutdown(SOCKET s)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("shutdown");
        ++sockets_[s].shutdowns;
        return 0;
    }
    /// shutdown(s, SD_SEND), recorded as "shutdown(SD_SEND)"; fails with
    /// `fail_shutdown_send` (then cleared) when that is not 0.
    int shutdown_send(SOCKET s)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("shutdown(SD_SEND)");
        ++sockets_[s].send_shutdowns;
        if (fail_shutdown_send != 0) {
            tls_last_error() = std::exchange(fail_shutdown_send, 0);
            return SOCKET_ERROR;
        }
        return 0;
    }
    /// The WSA error the next shutdown(SD_SEND) fails with (0: it succeeds).
    int fail_shutdown_send = 0;

    /// A handle that is_socket() denies (a pipe, a file): INVALID_SOCKET for none.
    SOCKET not_a_socket = INVALID_SOCKET;

    /// Not recorded among the calls: it only asks.
    bool is_socket(SOCKET s)
    {
        std::lock_guard lk(mu_);
        return s != not_a_socket;
    }

    int closesocket(SOCKET s)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("closesocket");
        ++sockets_[s].closes;
        return 0;
    }

private:
    static int& tls_last_error()
    {
        static thread_local int e = 0;
        return e;
    }

    int count_locked(SOCKET s, outstanding_call::kind k) const
    {
        return static_cast<int>(std::count_if(outstanding_.begin(), outstanding_.end(),
                                              [&](const auto& c) { return c.socket == s && c.what == k; }));
    }

    fake_io_obj* io_for(SOCKET s)
    {
        for (auto it = ios_.rbegin(); it != ios_.rend(); ++it) {
            if ((*it)->socket == s && !(*it)->closed) {
                return it->get();
            }
        }
        return nullptr;
    }

    // The oldest outstanding call of kind k on s whose packet is not on its way yet (lock held).
    std::optional<std::deque<outstanding_call>::iterator> take(SOCKET s, outstanding_call::kind k)
    {
        auto it = std::find_if(outstanding_.begin(), outstanding_.end(),
                               [&](const auto& c) { return c.socket == s && c.what == k; });
        if (it == outstanding_.end()) {
            return std::nullopt;
        }
        return it;
    }

    // Finishes the call in the kernel with (err, bytes), unless it already was,
    // and puts its packet on its way (lock held).
    std::list<outstanding_call>::iterator finish_and_deliver(std::deque<outstanding_call>::iterator it, ULONG err,
                                                             std::size_t bytes)
    {
        if (!it->kernel_done) {
            it->kernel_done = true;
            it->kernel_error = err;
            it->kernel_bytes = bytes;
        }
        return start_delivery(it);
    }

    // Moves a call from `outstanding` to `delivering` (its packet is on its
    // way: WSAGetOverlappedResult still finds it) and marks its IO running.
    std::list<outstanding_call>::iterator start_delivery(std::deque<outstanding_call>::iterator it)
    {
        delivering_.push_back(*it);
        outstanding_.erase(it);
        auto d = std::prev(delivering_.end());
        ++d->io->running;
        return d;
    }

    void invoke(std::list<outstanding_call>::iterator d, ULONG err, std::size_t bytes)
    {
        d->io->callback(nullptr, d->io->context, d->overlapped, err, static_cast<ULONG_PTR>(bytes),
                        reinterpret_cast<PTP_IO>(d->io));
        std::lock_guard lk(mu_);
        ++d->io->completions;
        --d->io->running;
        delivering_.erase(d);
    }

    std::mutex mu_;
    std::vector<std::string> calls_;
    std::map<SOCKET, fake_socket> sockets_;
    std::deque<outstanding_call> outstanding_;
    std::list<outstanding_call> delivering_; // packets being delivered (callbacks running)
    std::vector<call_record> sends_;
    std::vector<call_record> recvs_;
    int work_running_ = 0;
    int wsa_startups_ = 0;
    int wsa_cleanups_ = 0;
    std::vector<std::unique_ptr<fake_pool_obj>> pools_;
    std::vector<std::unique_ptr<fake_work_obj>> works_;
    std::vector<std::unique_ptr<fake_io_obj>> ios_;

    // ---- the engine's threadpool timer and the virtual clock ------------------------
    //
    // Time stands still unless a test advances it; the engine reads it as
    // Api::now(). SetThreadpoolTimer with a relative due time sets the timer's
    // deadline to now + that time (0: now; NULL: not set). advance(d) moves
    // the clock, then runs, on the calling thread and with the fake's lock
    // released, the callback of each timer whose deadline has been reached,
    // once (a one-shot arming), as the pool would. The clock never goes back
    // and timer objects outlive reset(), like the other objects. Recorded:
    // "CreateThreadpoolTimer", "SetThreadpoolTimer", "SetThreadpoolTimer(NULL)",
    // "WaitForThreadpoolTimerCallbacks(TRUE)" / "(FALSE)", "CloseThreadpoolTimer".
public:
    using clock = std::chrono::steady_clock;

    /// The next CreateThreadpoolTimer fails (NULL); that call clears it.
    bool fail_next_create_timer = false;

    clock::time_point now()
    {
        std::lock_guard lk(mu_);
        return now_;
    }

    /// Moves the virtual clock forward by `d` and fires the timers now due.
    void advance(clock::duration d)
    {
        {
            std::lock_guard lk(mu_);
            now_ += d;
        }
        for (;;) {
            std::unique_lock lk(mu_);
            fake_timer_obj* due = nullptr;
            for (const auto& t : timer_objs_) {
                if (!t->closed && t->set && t->deadline <= now_ && (due == nullptr || t->deadline < due->deadline)) {
                    due = t.get();
                }
            }
            if (due == nullptr) {
                return;
            }
            fire_locked(due, lk);
        }
    }

    /// Fires the timer created last now, although its deadline has not been
    /// reached by the virtual clock (an OS timer, counting on its own clock,
    /// firing early). False when it is not set.
    bool fire_timer_early()
    {
        std::unique_lock lk(mu_);
        if (timer_objs_.empty() || timer_objs_.back()->closed || !timer_objs_.back()->set) {
            return false;
        }
        fire_locked(timer_objs_.back().get(), lk);
        return true;
    }

    /// The deadline the timer created last is set to (nullopt: not set, or fired).
    std::optional<clock::time_point> timer_deadline()
    {
        std::lock_guard lk(mu_);
        if (timer_objs_.empty() || !timer_objs_.back()->set) {
            return std::nullopt;
        }
        return timer_objs_.back()->deadline;
    }

    /// The due time the timer created last was last set with, as the OS reads
    /// it (negative: relative, in 100 ns units).
    LONGLONG timer_due()
    {
        std::lock_guard lk(mu_);
        return timer_objs_.empty() ? 0 : timer_objs_.back()->due;
    }

    /// The pool of the environment the timer created last was created with.
    PTP_POOL timer_pool()
    {
        std::lock_guard lk(mu_);
        return timer_objs_.empty() ? nullptr : timer_objs_.back()->pool;
    }

    PTP_TIMER create_timer(PTP_TIMER_CALLBACK cb, void* ctx, PTP_CALLBACK_ENVIRON env)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("CreateThreadpoolTimer");
        if (fail_next_create_timer) {
            fail_next_create_timer = false;
            return nullptr;
        }
        timer_objs_.push_back(std::make_unique<fake_timer_obj>());
        fake_timer_obj& t = *timer_objs_.back();
        t.callback = cb;
        t.context = ctx;
        t.pool = env != nullptr ? env->Pool : nullptr;
        return reinterpret_cast<PTP_TIMER>(&t);
    }
    void set_timer(PTP_TIMER timer, FILETIME* due)
    {
        std::lock_guard lk(mu_);
        auto* t = reinterpret_cast<fake_timer_obj*>(timer);
        if (due == nullptr) {
            calls_.push_back("SetThreadpoolTimer(NULL)");
            t->set = false;
            return;
        }
        calls_.push_back("SetThreadpoolTimer");
        const auto v = static_cast<LONGLONG>((static_cast<ULONGLONG>(due->dwHighDateTime) << 32) | due->dwLowDateTime);
        t->due = v;
        t->set = true;
        // Negative: relative. 0 (and an absolute time, which the engine does not use): now.
        t->deadline = now_;
        if (v < 0) {
            t->deadline += std::chrono::duration_cast<clock::duration>(
                std::chrono::duration<LONGLONG, std::ratio<1, 10'000'000>>(-v));
        }
    }
    void wait_timer_callbacks(PTP_TIMER timer, BOOL cancel)
    {
        {
            std::lock_guard lk(mu_);
            calls_.push_back(cancel ? "WaitForThreadpoolTimerCallbacks(TRUE)"
                                    : "WaitForThreadpoolTimerCallbacks(FALSE)");
        }
        auto* t = reinterpret_cast<fake_timer_obj*>(timer);
        wait_until("timer callbacks", [&] {
            std::lock_guard lk(mu_);
            return t->running == 0;
        });
    }
    void close_timer(PTP_TIMER timer)
    {
        std::lock_guard lk(mu_);
        calls_.push_back("CloseThreadpoolTimer");
        reinterpret_cast<fake_timer_obj*>(timer)->closed = true;
    }

private:
    struct fake_timer_obj {
        PTP_TIMER_CALLBACK callback = nullptr;
        void* context = nullptr;
        PTP_POOL pool = nullptr;
        bool set = false;
        clock::time_point deadline{};
        LONGLONG due = 0;
        int running = 0;
        bool closed = false;
    };

    // Consumes `t`'s arming and runs its callback with the lock released.
    void fire_locked(fake_timer_obj* t, std::unique_lock<std::mutex>& lk)
    {
        t->set = false;
        ++t->running;
        lk.unlock();
        t->callback(nullptr, t->context, reinterpret_cast<PTP_TIMER>(t));
        lk.lock();
        --t->running;
    }

    std::vector<std::unique_ptr<fake_timer_obj>> timer_objs_;
    clock::time_point now_ = clock::time_point{} + std::chrono::hours(1);
};

inline fake_world& fake()
{
    static fake_world w;
    return w;
}

/// The Win32 layer policy the unit tests plug into the real engine and core.
struct fake_win32 {
    static int wsa_startup() noexcept { return fake().wsa_startup(); }
    static void wsa_cleanup() noexcept { fake().wsa_cleanup(); }
    static int wsa_get_last_error() noexcept { return fake().wsa_get_last_error(); }
    static PTP_POOL create_pool() noexcept { return fake().create_pool(); }
    static BOOL set_pool_minimum(PTP_POOL p, DWORD n) noexcept { return fake().set_pool_minimum(p, n); }
    static void set_pool_maximum(PTP_POOL p, DWORD n) noexcept { fake().set_pool_maximum(p, n); }
    static void close_pool(PTP_POOL p) noexcept { fake().close_pool(p); }
    static void initialize_environment(PTP_CALLBACK_ENVIRON e) noexcept { fake().initialize_environment(e); }
    static void set_environment_pool(PTP_CALLBACK_ENVIRON e, PTP_POOL p) noexcept
    {
        fake().set_environment_pool(e, p);
    }
    static void destroy_environment(PTP_CALLBACK_ENVIRON e) noexcept { fake().destroy_environment(e); }
    static PTP_WORK create_work(PTP_WORK_CALLBACK cb, void* ctx, PTP_CALLBACK_ENVIRON e) noexcept
    {
        return fake().create_work(cb, ctx, e);
    }
    static void submit_work(PTP_WORK w) noexcept { fake().submit_work(w); }
    static void wait_work_callbacks(PTP_WORK w, BOOL c) noexcept { fake().wait_work_callbacks(w, c); }
    static void close_work(PTP_WORK w) noexcept { fake().close_work(w); }
    static PTP_IO create_io(SOCKET s, PTP_WIN32_IO_CALLBACK cb, void* ctx, PTP_CALLBACK_ENVIRON e) noexcept
    {
        return fake().create_io(s, cb, ctx, e);
    }
    static void start_io(PTP_IO io) noexcept { fake().start_io(io); }
    static void cancel_io(PTP_IO io) noexcept { fake().cancel_io(io); }
    static void wait_io_callbacks(PTP_IO io, BOOL c) noexcept { fake().wait_io_callbacks(io, c); }
    static void close_io(PTP_IO io) noexcept { fake().close_io(io); }
    static int wsa_send(SOCKET s, WSABUF* b, DWORD n, DWORD* sent, DWORD flags, OVERLAPPED* ov) noexcept
    {
        return fake().wsa_send(s, b, n, sent, flags, ov);
    }
    static int wsa_recv(SOCKET s, WSABUF* b, DWORD n, DWORD* got, DWORD* flags, OVERLAPPED* ov) noexcept
    {
        return fake().wsa_recv(s, b, n, got, flags, ov);
    }
    static BOOL cancel_io_ex(SOCKET s, OVERLAPPED* ov) noexcept { return fake().cancel_io_ex(s, ov); }
    static bool overlapped_result(SOCKET s, OVERLAPPED* ov, DWORD* bytes, DWORD* error) noexcept
    {
        return fake().overlapped_result(s, ov, bytes, error);
    }
    static int bytes_readable(SOCKET s, u_long* n) noexcept { return fake().bytes_readable(s, n); }
    static int shutdown(SOCKET s) noexcept { return fake().shutdown(s); }
    static int shutdown_send(SOCKET s) noexcept { return fake().shutdown_send(s); }
    static int closesocket(SOCKET s) noexcept { return fake().closesocket(s); }
    static bool is_socket(SOCKET s) noexcept { return fake().is_socket(s); }
    // the engine's timer (fake_world: the virtual clock)
    static std::chrono::steady_clock::time_point now() noexcept { return fake().now(); }
    static PTP_TIMER create_timer(PTP_TIMER_CALLBACK cb, void* ctx, PTP_CALLBACK_ENVIRON e) noexcept
    {
        return fake().create_timer(cb, ctx, e);
    }
    static void set_timer(PTP_TIMER t, FILETIME* due) noexcept { fake().set_timer(t, due); }
    static void wait_timer_callbacks(PTP_TIMER t, BOOL c) noexcept { fake().wait_timer_callbacks(t, c); }
    static void close_timer(PTP_TIMER t) noexcept { fake().close_timer(t); }
};

using fake_platform = asock::win32::basic_win32_platform<fake_win32>;
using fake_engine = fake_platform::engine_type;
using fake_socket_t = asock::async_socket<fake_platform>;

/// A helper thread playing the thread pool: aborts the calls CancelIoEx was
/// asked for and (unless `aborts_only`) runs posted work, until destroyed.
class pool_runner {
public:
    explicit pool_runner(bool aborts_only = false)
        : thread_([this, aborts_only] {
              while (!stop_.load()) {
                  const int n = fake().abort_cancelled() + (aborts_only ? 0 : fake().run_work());
                  if (n == 0) {
                      std::this_thread::sleep_for(std::chrono::milliseconds(1));
                  }
              }
          })
    {
    }
    ~pool_runner()
    {
        stop_.store(true);
        thread_.join();
    }
    pool_runner(const pool_runner&) = delete;
    pool_runner& operator=(const pool_runner&) = delete;

private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

} // namespace asock_wtest
