// asock/detail/operation.hpp: the intrusive operation records every backend works on.
//
// Rationale: an operation's whole state (buffers, progress, result, queue links,
// the completion hook) lives in one record that the *caller* provides: inside the
// awaitable on the C++ path, inside the shim's per-call block on the C path. A
// backend only links records into its queues, so starting an operation never
// allocates.
#pragma once

#include <asock/buffer.hpp>
#include <asock/results.hpp>

#include <cstdint>

namespace asock::detail {

/// Where a completion hook is being called from. The distinction lets an
/// awaiter resume its coroutine inline when that is safe (on an engine thread,
/// from the dispatcher) and hand the resumption to the engine otherwise (from
/// close(), a destructor or a stop request on an arbitrary thread).
enum class completion_mode : std::uint8_t {
    engine_thread, ///< On an engine thread (event dispatch or posted work), no socket lock held.
    foreign,       ///< From close / destroy / a stop request, on whatever thread called it.
};

/// A unit of work the engine can run later on one of its threads ("post").
struct work_item {
    work_item* next = nullptr;
    void (*run)(work_item*) = nullptr;
};

enum class op_kind : std::uint8_t { send, receive, notify };

#if defined(_WIN32)
/// Bytes inside every operation record that the Windows backend hands to the
/// OS while the operation runs: its OVERLAPPED and a link back to the record
/// (see include/asock/win32/threadpool_socket_core.hpp, which static_asserts
/// the fit). Raw bytes keep <windows.h> out of this header. Other platforms'
/// records have no such member, so their layout and behaviour are unchanged.
struct platform_op_storage {
    alignas(void*) unsigned char bytes[8 * sizeof(void*)];
};
#endif

/// Common header of every operation record.
struct operation : work_item {
    operation* prev = nullptr;
    /// Called exactly once when the operation is finished and its result set.
    void (*complete)(operation*, completion_mode) = nullptr;
    op_kind kind = op_kind::send;
    bool queued = false;           ///< Linked in a socket queue (guarded by that queue's lock).
    bool cancel_requested = false; ///< A stop request arrived (guarded by the queue's lock).
#if defined(_WIN32)
    platform_op_storage platform; ///< Owned by the backend from start to completion.
#endif

    explicit operation(op_kind k) noexcept : kind(k) {}
    operation(const operation&) = delete;
    operation& operator=(const operation&) = delete;
};

struct send_op : operation {
    const const_buffer* buffers = nullptr;
    std::uint32_t count = 0;
    std::uint32_t total = 0;  ///< Sum of the buffer lengths.
    std::uint32_t sent = 0;   ///< Bytes handed to the transport so far.
    std::uint32_t index = 0;  ///< First buffer not fully sent.
    std::uint32_t offset = 0; ///< Bytes of buffers[index] already sent.
    send_result result = send_result::error;
    send_op() noexcept : operation(op_kind::send) {}
};

struct receive_op : operation {
    const mutable_buffer* buffers = nullptr;
    std::uint32_t count = 0;
    std::uint32_t total = 0;
    std::uint32_t received = 0;
    receive_result result = receive_result::error;
    receive_op() noexcept : operation(op_kind::receive) {}
};

struct notify_op : operation {
    notify_io_type type = notify_io_type::in;
    notify_io_result result = notify_io_result::error;
    notify_op() noexcept : operation(op_kind::notify) {}
};

/// Intrusive FIFO of operations: O(1) push, pop and unlink (for cancellation).
class op_list {
public:
    bool empty() const noexcept { return head_ == nullptr; }
    operation* front() const noexcept { return head_; }

    void push_back(operation* op) noexcept
    {
        op->next = nullptr;
        op->prev = tail_;
        if (tail_ != nullptr) {
            tail_->next = op;
        } else {
            head_ = op;
        }
        tail_ = op;
        op->queued = true;
    }

    operation* pop_front() noexcept
    {
        operation* op = head_;
        if (op != nullptr) {
            unlink(op);
        }
        return op;
    }

    void unlink(operation* op) noexcept
    {
        operation* n = static_cast<operation*>(op->next);
        if (op->prev != nullptr) {
            op->prev->next = n;
        } else {
            head_ = n;
        }
        if (n != nullptr) {
            n->prev = op->prev;
        } else {
            tail_ = op->prev;
        }
        op->next = nullptr;
        op->prev = nullptr;
        // Written only when set: complete_all() unlinks, without any lock, records
        // that were already marked not queued under their queue's lock, and a
        // stop request may be reading the flag under that lock meanwhile.
        if (op->queued) {
            op->queued = false;
        }
    }

    /// Moves every element of `other` to the back of this list, keeping order.
    void splice_back(op_list& other) noexcept
    {
        if (other.head_ == nullptr) {
            return;
        }
        if (tail_ == nullptr) {
            head_ = other.head_;
        } else {
            tail_->next = other.head_;
            other.head_->prev = tail_;
        }
        tail_ = other.tail_;
        other.head_ = other.tail_ = nullptr;
    }

private:
    operation* head_ = nullptr;
    operation* tail_ = nullptr;
};

/// Calls the completion hook of each operation of `list`, in order. The list is
/// detached first: a hook may free the socket (and so the list's owner).
inline void complete_all(op_list list, completion_mode mode) noexcept
{
    while (operation* op = list.pop_front()) {
        op->complete(op, mode);
    }
}

} // namespace asock::detail
