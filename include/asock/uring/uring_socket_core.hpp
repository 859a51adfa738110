// asock/uring/uring_socket_core.hpp: the io_uring backend's socket core: the
// shared completion core (include/asock/detail/completion_core.hpp) over a
// small policy, uring_io, that turns each call of a direction into one
// submission (IORING_OP_SEND / RECV for one buffer, SENDMSG / RECVMSG for
// several) whose completion settles it.
//
// What is only io_uring lives here: the call record (the submission's
// user_data is its address; it holds the msghdr and iovec array the kernel
// reads until the completion), cancellation by IORING_OP_ASYNC_CANCEL, the
// errno values, and Io::drive (a close() collects the completions it waits
// for, see asock/uring/uring_engine.hpp). See docs/design.md, "The io_uring
// backend".
#pragma once

#include <asock/buffer.hpp>
#include <asock/detail/completion_core.hpp>
#include <asock/detail/operation.hpp>
#include <asock/results.hpp>
#include <asock/uring/uring_types.hpp>

#include <cerrno>
#include <cstdint>

#include <sys/socket.h>
#include <sys/uio.h>

namespace asock::uring {

template <class Ring>
class basic_uring_engine;

/// What the engine knows of a call record: the function its completion goes to.
struct call_base {
    void (*complete)(call_base* self, std::int32_t res) noexcept = nullptr;
};

/// Most buffers given to one call (an iovec array per direction of a core);
/// longer lists take several calls.
inline constexpr std::uint32_t max_iov = 64;

/// The record of one outstanding call: its address is the submission's
/// user_data, and what the kernel reads (msghdr, iovecs) lives here until the
/// completion (a core is recycled only after its last completion).
struct call_record : call_base {
    void* core = nullptr;   ///< the completion_core the call belongs to
    void* engine = nullptr; ///< its engine (for ASYNC_CANCEL)
    int fd = -1;
    bool cancel_sent = false; ///< an ASYNC_CANCEL for this call was submitted
    ::msghdr msg{};
    ::iovec iov[max_iov]{};
};

/// An `other`-direction call of the completion core. Not used by the io_uring
/// backend yet (the TCP helpers need notify_io, not there yet): issuing one
/// fails with EOPNOTSUPP.
struct uring_call_op : asock::detail::notify_op {
    uring_call_op() noexcept
        : notify_op(asock::detail::op_type_of<uring_call_op>, asock::detail::op_direction::other)
    {
    }
    int io_result = 0;
    std::uint32_t bytes = 0;
    call_record call{};
};

/// The completion policy of the io_uring backend (asock::detail::completion_io).
template <class Ring>
struct uring_io {
    using engine_type = basic_uring_engine<Ring>;
    using handle_type = int;
    using call_record = uring::call_record;
    using status = int;               ///< 0 or an errno value (a completion's -res)
    using byte_count = std::uint32_t; ///< a completion's res when >= 0
    using call_op = uring_call_op;

    /// What open() sets up: where the completions of the socket's calls go.
    struct registration {
        engine_type* engine = nullptr;
        void* core = nullptr;
        void (*complete)(call_base*, std::int32_t) noexcept = nullptr;
    };

    static constexpr int invalid_handle = -1;
    static constexpr int success = 0;
    static constexpr std::uint32_t max_batch = max_iov;
    /// A stream socket's send may take part of what it was given.
    static constexpr bool resumes_short_sends = true;

    static bool is_socket(int fd) noexcept { return Ring::is_socket(fd); }

    template <class Core>
    static bool register_socket(engine_type& engine, int /*fd*/, registration& reg, Core* core) noexcept
    {
        reg.engine = &engine;
        reg.core = core;
        reg.complete = &on_completion<Core>;
        return true;
    }

    /// Every completion of the socket was called before close() gets here
    /// (Io::drive): nothing to wait for.
    static void wait_callbacks(registration&) noexcept {}

    static void unregister_socket(registration& reg) noexcept { reg = registration{}; }

    static int issue_send(int fd, registration& reg, call_record& call, const asock::detail::send_op& op,
                          std::uint32_t& asked) noexcept
    {
        prepare(fd, reg, call);
        std::uint32_t n = 0;
        std::uint32_t total = 0;
        for (std::uint32_t i = op.index; i < op.count && n < max_iov; ++i, ++n) {
            const std::uint32_t skip = i == op.index ? op.offset : 0;
            // The caller's buffers: nothing is copied.
            call.iov[n].iov_base = const_cast<char*>(static_cast<const char*>(op.buffers[i].data)) + skip;
            call.iov[n].iov_len = op.buffers[i].size - skip;
            total += op.buffers[i].size - skip; // at most op.total, which fits
        }
        asked = total;
        submission s;
        s.fd = fd;
        s.msg_flags = MSG_NOSIGNAL; // a reset peer is a result, not SIGPIPE
        s.user_data = user_data_of(call);
        if (n == 1) {
            s.op = op_code::send;
            s.addr = call.iov[0].iov_base;
            s.len = total;
        } else {
            s.op = op_code::sendmsg;
            call.msg.msg_iov = call.iov;
            call.msg.msg_iovlen = n;
            s.msg = &call.msg;
        }
        return reg.engine->submit(s);
    }

    static int issue_receive(int fd, registration& reg, call_record& call, const asock::detail::receive_op& op,
                             std::uint32_t first, std::uint32_t& asked) noexcept
    {
        prepare(fd, reg, call);
        std::uint32_t n = 0;
        std::uint32_t total = 0;
        for (std::uint32_t i = first; i < op.count && n < max_iov; ++i, ++n) {
            call.iov[n].iov_base = op.buffers[i].data;
            call.iov[n].iov_len = op.buffers[i].size;
            total += op.buffers[i].size;
        }
        asked = total;
        submission s;
        s.fd = fd;
        s.user_data = user_data_of(call);
        if (n == 1) {
            s.op = op_code::recv;
            s.addr = call.iov[0].iov_base;
            s.len = total;
        } else {
            s.op = op_code::recvmsg;
            call.msg.msg_iov = call.iov;
            call.msg.msg_iovlen = n;
            s.msg = &call.msg;
        }
        return reg.engine->submit(s);
    }

    static int issue_call(int, registration&, call_op&) noexcept { return EOPNOTSUPP; }

    static int shutdown_send(int fd) noexcept { return Ring::shutdown_send(fd); }

    /// IORING_OP_ASYNC_CANCEL of the call, once per call (close() asks again
    /// while it waits; the first request stands). Its completion, or the
    /// call's own with what it did, settles the call. False only when the
    /// request could not be queued (asked again later).
    static bool cancel(int /*fd*/, call_record* call) noexcept
    {
        if (call->cancel_sent) {
            return true;
        }
        auto* engine = static_cast<engine_type*>(call->engine);
        if (engine == nullptr) {
            return false;
        }
        submission s;
        s.op = op_code::cancel;
        s.fd = call->fd;
        s.target = user_data_of(*call);
        s.user_data = engine_type::ignore_tag;
        call->cancel_sent = engine->submit(s) == 0;
        return call->cancel_sent;
    }

    /// A call is settled only by its completion (Io::drive collects it).
    static bool poll(int, call_record*, int&, std::uint32_t&) noexcept { return false; }

    static void drive(engine_type& engine) noexcept { engine.collect_for_close(); }

    static bool bytes_waiting(int fd) noexcept { return Ring::bytes_waiting(fd); }

    /// As the epoll backend: a reset or a broken pipe abandons a send.
    static bool connection_gone(int err) noexcept { return err == ECONNRESET || err == ENOTCONN || err == EPIPE; }
    static bool aborted(int err) noexcept { return err == ECANCELED || err == EINTR; }
    /// A reset abandons a receive (42_001).
    static bool peer_gone(int err) noexcept { return err == ECONNRESET; }
    static bool reset(int err) noexcept { return err == ECONNRESET; }

private:
    static std::uint64_t user_data_of(const call_record& call) noexcept
    {
        return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(static_cast<const call_base*>(&call)));
    }

    static void prepare(int fd, registration& reg, call_record& call) noexcept
    {
        call.complete = reg.complete;
        call.core = reg.core;
        call.engine = reg.engine;
        call.fd = fd;
        call.cancel_sent = false;
        call.msg = ::msghdr{};
    }

    template <class Core>
    static void on_completion(call_base* base, std::int32_t res) noexcept
    {
        auto* call = static_cast<call_record*>(base);
        const int err = res < 0 ? -res : 0;
        const std::uint32_t bytes = res < 0 ? 0u : static_cast<std::uint32_t>(res);
        Core::on_call_complete(static_cast<Core*>(call->core), call, err, bytes);
    }
};

template <class Ring>
using uring_socket_core = asock::detail::completion_core<uring_io<Ring>>;

} // namespace asock::uring
