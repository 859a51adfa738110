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

struct operation;

/// The queue of a socket an operation waits in: each direction is served in
/// order, independently of the other (full duplex); `other` holds operations
/// that complete each on their own (a backend's connect or accept).
enum class op_direction : std::uint8_t { read, write, other };

/// What a core needs to know of an operation's kind without knowing the kind.
/// An operation kind is a record type derived from `operation` plus one such
/// descriptor (see op_type_of): adding a kind (a timer wait, a datagram send)
/// means writing those two, not editing a switch statement in every core.
struct op_type {
    /// Sets the result of an operation that a close withdrew (`abandoned`) or
    /// that a stop request withdrew before it finished (`cancelled`).
    void (*set_abandoned)(operation&) noexcept;
    void (*set_cancelled)(operation&) noexcept;
};

/// Common header of every operation record.
struct operation : work_item {
    operation* prev = nullptr;
    /// Called exactly once when the operation is finished and its result set.
    void (*complete)(operation*, completion_mode) = nullptr;
    const op_type* kind;
    op_direction direction;
    bool queued = false;           ///< Linked in a socket queue (guarded by that queue's lock).
    bool cancel_requested = false; ///< A stop request arrived (guarded by the queue's lock).

    operation(const op_type& k, op_direction d) noexcept : kind(&k), direction(d) {}
    operation(const operation&) = delete;
    operation& operator=(const operation&) = delete;
};

/// The descriptor of record type `Op`, made from its static members
/// `set_abandoned(Op&)` and `set_cancelled(Op&)`.
template <class Op>
inline constexpr op_type op_type_of{
    [](operation& op) noexcept { Op::set_abandoned(static_cast<Op&>(op)); },
    [](operation& op) noexcept { Op::set_cancelled(static_cast<Op&>(op)); },
};

struct send_op : operation {
    const const_buffer* buffers = nullptr;
    std::uint32_t count = 0;
    std::uint32_t total = 0;  ///< Sum of the buffer lengths.
    std::uint32_t sent = 0;   ///< Bytes handed to the transport so far.
    std::uint32_t index = 0;  ///< First buffer not fully sent.
    std::uint32_t offset = 0; ///< Bytes of buffers[index] already sent.
    send_result result = send_result::error;
    send_op() noexcept : operation(op_type_of<send_op>, op_direction::write) {}

    /// Records that the transport took the next `n` bytes (n <= total - sent).
    void advance(std::uint32_t n) noexcept
    {
        sent += n;
        if (sent == total) {
            return; // all of it: where it ended no longer matters (the common case)
        }
        while (n > 0) {
            const std::uint32_t left = buffers[index].size - offset;
            if (n >= left) {
                n -= left;
                ++index;
                offset = 0;
            } else {
                offset += n;
                n = 0;
            }
        }
    }

    static void set_abandoned(send_op& op) noexcept { op.result = send_result::abandoned; }
    static void set_cancelled(send_op& op) noexcept { op.result = send_result::cancelled; }
    static void set_not_open(send_op& op) noexcept { op.result = send_result::not_open; }
    static void set_invalid_argument(send_op& op) noexcept { op.result = send_result::invalid_argument; }
};

struct receive_op : operation {
    const mutable_buffer* buffers = nullptr;
    std::uint32_t count = 0;
    std::uint32_t total = 0;
    std::uint32_t received = 0;
    receive_result result = receive_result::error;
    receive_op() noexcept : operation(op_type_of<receive_op>, op_direction::read) {}

    // Withdrawn before it finished: no byte is reported (a receive that got
    // bytes finishes `ok` with them instead of being withdrawn).
    static void set_abandoned(receive_op& op) noexcept
    {
        op.result = receive_result::abandoned;
        op.received = 0;
    }
    static void set_cancelled(receive_op& op) noexcept
    {
        op.result = receive_result::cancelled;
        op.received = 0;
    }
    static void set_not_open(receive_op& op) noexcept { op.result = receive_result::not_open; }
    static void set_invalid_argument(receive_op& op) noexcept { op.result = receive_result::invalid_argument; }
};

/// A readiness wait (notify_io). Its direction follows its type: set by the
/// start (for_type) before it is queued.
struct notify_op : operation {
    notify_io_type type = notify_io_type::in;
    notify_io_result result = notify_io_result::error;
    notify_op() noexcept : operation(op_type_of<notify_op>, op_direction::read) {}

    void for_type(notify_io_type t) noexcept
    {
        type = t;
        direction = t == notify_io_type::out ? op_direction::write : op_direction::read;
    }

    static void set_abandoned(notify_op& op) noexcept { op.result = notify_io_result::abandoned; }
    static void set_cancelled(notify_op& op) noexcept { op.result = notify_io_result::cancelled; }
    static void set_not_open(notify_op& op) noexcept { op.result = notify_io_result::not_open; }
    static void set_invalid_argument(notify_op& op) noexcept { op.result = notify_io_result::invalid_argument; }

protected:
    notify_op(const op_type& k, op_direction d) noexcept : operation(k, d) {}
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

    /// unlink(front()), with the branches that only an element in the
    /// middle or at the back needs left out (queues are served from the front).
    operation* pop_front() noexcept
    {
        operation* op = head_;
        if (op != nullptr) {
            operation* n = static_cast<operation*>(op->next);
            head_ = n;
            if (n != nullptr) {
                n->prev = nullptr;
            } else {
                tail_ = nullptr;
            }
            op->next = nullptr;
            // See unlink() on why `queued` is written only when set. The
            // head's `prev` is null already.
            if (op->queued) {
                op->queued = false;
            }
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
        // Written only when set: a delivery unlinks, without any lock, records
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

} // namespace asock::detail
