// asock/uring/uring_types.hpp: what the io_uring engine says to its ring, in
// the engine's own terms, so that the ring behind it can be the kernel's
// (liburing_ring, asock/uring/liburing_ring.hpp) or a scripted fake
// (tests/support/fake_uring.hpp) that completes submissions when a test says.
//
// The seam a `Ring` fills (an object, one per engine):
//   int  init(unsigned entries)       0, or -errno (the engine is then unavailable)
//   void exit()                       undoes a successful init
//   bool prep(const submission&)      queues one submission; false: the submission queue is full
//   unsigned sq_ready()               submissions queued, not yet given to the kernel
//   int  submit()                     gives them to the kernel (>= 0, or -errno)
//   unsigned peek(completion*, unsigned max)
//                                     takes up to `max` completions that are there now, without a system call
//   int  wait(int timeout_ms)         waits until a completion is there (-1: no limit); 0, -ETIME, -EINTR
// and static functions for the socket calls that are not submissions:
//   now(), is_socket(fd), bytes_waiting(fd), shutdown_send(fd), shutdown(fd), close(fd)
// Every member is called with the engine's lock for its side held (the
// submission side or the completion side), never both by two threads at once.
#pragma once

#include <cstdint>

struct msghdr;

namespace asock::uring {

/// The kinds of submission the backend makes.
enum class op_code : std::uint8_t {
    send,    ///< IORING_OP_SEND: one buffer
    recv,    ///< IORING_OP_RECV: one buffer
    sendmsg, ///< IORING_OP_SENDMSG: several buffers (msg)
    recvmsg, ///< IORING_OP_RECVMSG: several buffers (msg)
    cancel,  ///< IORING_OP_ASYNC_CANCEL of the submission whose user_data is `target`
    nop,     ///< IORING_OP_NOP: wakes a thread waiting for completions
};

/// One submission queue entry, as the engine describes it.
struct submission {
    op_code op = op_code::nop;
    int fd = -1;
    void* addr = nullptr;     ///< send / recv: the buffer
    std::uint32_t len = 0;    ///< send / recv: its size
    ::msghdr* msg = nullptr;  ///< sendmsg / recvmsg: the buffers
    int msg_flags = 0;        ///< send*/recv*: MSG_* flags
    std::uint64_t user_data = 0;
    std::uint64_t target = 0; ///< cancel: the user_data of the submission to cancel
};

/// One completion queue entry.
struct completion {
    std::uint64_t user_data = 0;
    std::int32_t res = 0; ///< bytes (>= 0) or -errno
    std::uint32_t flags = 0;
};

} // namespace asock::uring
