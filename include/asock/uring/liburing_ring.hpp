// asock/uring/liburing_ring.hpp: the io_uring backend's ring over the kernel,
// through liburing (the `Ring` seam of asock/uring/uring_types.hpp). The only
// header of the project that includes <liburing.h>.
#pragma once

#include <asock/uring/uring_types.hpp>
#include <asock/detail/timer_queue.hpp>

#include <cerrno>
#include <chrono>
#include <cstdint>

#include <liburing.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace asock::uring {

class liburing_ring {
public:
    liburing_ring() noexcept = default;
    liburing_ring(const liburing_ring&) = delete;
    liburing_ring& operator=(const liburing_ring&) = delete;
    ~liburing_ring() { exit(); }

    /// A ring of `entries` submissions (completions: twice that). Refused
    /// (unavailable) without IORING_FEAT_EXT_ARG (Linux 5.11): the engine
    /// waits with a timeout without a submission of its own, so that only the
    /// submission side's owner ever touches the submission queue.
    int init(unsigned entries) noexcept
    {
        io_uring_params p{};
        const int r = io_uring_queue_init_params(entries, &ring_, &p);
        if (r < 0) {
            return r;
        }
        if ((p.features & IORING_FEAT_EXT_ARG) == 0 || (p.features & IORING_FEAT_NODROP) == 0) {
            io_uring_queue_exit(&ring_);
            return -ENOSYS;
        }
        live_ = true;
        return 0;
    }

    void exit() noexcept
    {
        if (live_) {
            io_uring_queue_exit(&ring_);
            live_ = false;
        }
    }

    bool prep(const submission& s) noexcept
    {
        io_uring_sqe* q = io_uring_get_sqe(&ring_);
        if (q == nullptr) {
            return false;
        }
        switch (s.op) {
        case op_code::send: io_uring_prep_send(q, s.fd, s.addr, s.len, s.msg_flags); break;
        case op_code::recv: io_uring_prep_recv(q, s.fd, s.addr, s.len, s.msg_flags); break;
        case op_code::sendmsg: io_uring_prep_sendmsg(q, s.fd, s.msg, static_cast<unsigned>(s.msg_flags)); break;
        case op_code::recvmsg: io_uring_prep_recvmsg(q, s.fd, s.msg, static_cast<unsigned>(s.msg_flags)); break;
        case op_code::cancel: io_uring_prep_cancel64(q, s.target, 0); break;
        case op_code::nop: io_uring_prep_nop(q); break;
        }
        io_uring_sqe_set_data64(q, s.user_data);
        return true;
    }

    unsigned sq_ready() const noexcept { return io_uring_sq_ready(&ring_); }

    int submit() noexcept { return io_uring_submit(&ring_); }

    unsigned peek(completion* out, unsigned max) noexcept
    {
        unsigned n = 0;
        unsigned head = 0;
        io_uring_cqe* cqe = nullptr;
        io_uring_for_each_cqe(&ring_, head, cqe)
        {
            if (n == max) {
                break;
            }
            out[n].user_data = cqe->user_data;
            out[n].res = cqe->res;
            out[n].flags = cqe->flags;
            ++n;
        }
        io_uring_cq_advance(&ring_, n);
        if (n == 0 && io_uring_cq_has_overflow(&ring_)) {
            // Completions the kernel kept aside while the queue was full:
            // into the queue, for the next peek.
            static_cast<void>(io_uring_get_events(&ring_));
        }
        return n;
    }

    int wait(int timeout_ms) noexcept
    {
        io_uring_cqe* cqe = nullptr;
        if (timeout_ms < 0) {
            return io_uring_wait_cqe(&ring_, &cqe);
        }
        __kernel_timespec ts{};
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1000000;
        return io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
    }

    // ---- socket calls that are not submissions ---------------------------------

    static asock::detail::timer_clock::time_point now() noexcept { return asock::detail::timer_clock::now(); }

    static bool is_socket(int fd) noexcept
    {
        struct stat st {};
        return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
    }

    static bool bytes_waiting(int fd) noexcept
    {
        int n = 0;
        return ::ioctl(fd, FIONREAD, &n) == 0 && n > 0;
    }

    /// 0, or the errno of shutdown(fd, SHUT_WR).
    static int shutdown_send(int fd) noexcept { return ::shutdown(fd, SHUT_WR) == 0 ? 0 : errno; }
    static void shutdown(int fd) noexcept { static_cast<void>(::shutdown(fd, SHUT_RDWR)); }
    static void close(int fd) noexcept { static_cast<void>(::close(fd)); }

private:
    mutable io_uring ring_{};
    bool live_ = false;
};

} // namespace asock::uring
