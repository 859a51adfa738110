// asock/detail/timer_queue.hpp: the timers of an engine, written once for
// every backend.
//
// A timer is an intrusive node (timer_node) that lives inside the awaitable
// waiting for it (include/asock/ops/sleep_awaitable.hpp): adding, removing and
// firing timers never allocates. The nodes are kept in a pairing heap ordered
// by (deadline, sequence number): insertion is O(1), removing the earliest or
// any node is O(log n) amortised, and timers with the same deadline fire in
// the order they were added.
//
// Rationale: the usual timer is a timeout that is cancelled long before it is
// due (a receive that got its data), so adding and removing must be cheap and
// must not touch the OS. An engine keeps one OS timer (a timerfd on Linux, a
// threadpool timer on Windows) armed at a deadline no later than the earliest
// node's, and re-arms it only when a new node is earlier than what is armed,
// or when it fires. Removing the earliest node leaves the OS timer armed: it
// fires early, the engine finds nothing due, and arms it again at the next
// deadline (one system call per wake-up instead of one per removal).
//
// Most programs use one or a few timeout values, so most timers are added in
// deadline order. Those go to a FIFO list instead (a timer whose deadline is
// not before the list's last one is appended): adding and removing them is
// O(1), and the heap only holds timers added out of order. The earliest timer
// is the first of the list or the heap's root, whichever comes first.
//
// An engine provides (both backends, same meaning):
//   clock::time_point now() const;            its clock (virtual under the fakes)
//   bool add_timer(timer_node*);              false: the engine is shutting down
//   bool cancel_timer(timer_node*);           true: removed; it will not fire
// and calls node->run(node) exactly once for each node it added and did not
// cancel, on an engine thread, with `shutdown` set when the engine was being
// destroyed rather than the deadline reached.
#pragma once

#include <asock/detail/operation.hpp>
#include <asock/detail/word_mutex.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace asock::detail {

/// The clock of every engine's timers.
using timer_clock = std::chrono::steady_clock;

/// A timer waiting in an engine. `run` (from work_item) is called when it is
/// due, or at engine shutdown with `shutdown` set.
//
// Only `queued` and `withdrawn` need a value before the node is added (the queue sets every
// other field when it adds the node, and reads them only while it is
// queued): a timeout's node costs no stores it does not need.
struct timer_node : work_item {
    timer_clock::time_point deadline;
    std::uint64_t sequence;   ///< Order of equal deadlines (set when added).
    timer_node* child;        ///< First child in the pairing heap.
    timer_node* sibling;      ///< Next sibling in the heap, or next in the FIFO list.
    timer_node* prev;         ///< Previous sibling or list entry, or the parent of a first child.
    bool queued = false;      ///< In the queue (guarded by the queue's lock).
    bool withdrawn = false;   ///< remove() came before add(): add() refuses it (guarded by the lock).
    bool in_list;             ///< In the queue's FIFO list rather than its heap.
    bool shutdown;            ///< Fired because the engine is being destroyed (set when taken).
};

/// A pairing heap of timer_nodes. Not thread-safe (timer_queue locks).
class timer_heap {
public:
    bool empty() const noexcept { return root_ == nullptr; }
    timer_node* top() const noexcept { return root_; }

    void push(timer_node* n) noexcept
    {
        n->child = n->sibling = n->prev = nullptr;
        root_ = meld(root_, n);
    }

    /// Removes the earliest node (the heap must not be empty).
    timer_node* pop() noexcept
    {
        timer_node* old = root_;
        root_ = combine(old->child);
        old->child = nullptr;
        return old;
    }

    /// Removes `n`, which must be in this heap.
    void erase(timer_node* n) noexcept
    {
        if (n == root_) {
            pop();
            return;
        }
        // Unlink n (and its subtree) from its parent's list of children.
        if (n->prev->child == n) {
            n->prev->child = n->sibling;
        } else {
            n->prev->sibling = n->sibling;
        }
        if (n->sibling != nullptr) {
            n->sibling->prev = n->prev;
        }
        n->sibling = n->prev = nullptr;
        timer_node* rest = combine(n->child);
        n->child = nullptr;
        root_ = meld(root_, rest);
    }

    static bool before(const timer_node* a, const timer_node* b) noexcept
    {
        return a->deadline < b->deadline || (a->deadline == b->deadline && a->sequence < b->sequence);
    }

private:
    // Joins two roots (each with no sibling and no prev) into one.
    static timer_node* meld(timer_node* a, timer_node* b) noexcept
    {
        if (a == nullptr) {
            return b;
        }
        if (b == nullptr) {
            return a;
        }
        if (before(b, a)) {
            timer_node* t = a;
            a = b;
            b = t;
        }
        b->prev = a;
        b->sibling = a->child;
        if (a->child != nullptr) {
            a->child->prev = b;
        }
        a->child = b;
        return a;
    }

    // Joins a list of siblings into one root: pairs them left to right, then
    // melds the pairs right to left (the two-pass rule that keeps the heap's
    // amortised bounds).
    static timer_node* combine(timer_node* first) noexcept
    {
        timer_node* pairs = nullptr; // melded pairs, linked through `sibling`, last pair first
        while (first != nullptr) {
            timer_node* a = first;
            timer_node* b = a->sibling;
            first = b != nullptr ? b->sibling : nullptr;
            a->sibling = a->prev = nullptr;
            if (b != nullptr) {
                b->sibling = b->prev = nullptr;
            }
            timer_node* m = meld(a, b);
            m->sibling = pairs;
            pairs = m;
        }
        timer_node* root = nullptr;
        while (pairs != nullptr) {
            timer_node* next = pairs->sibling;
            pairs->sibling = nullptr;
            root = meld(root, pairs);
            pairs = next;
        }
        return root;
    }

    timer_node* root_ = nullptr;
};

/// An engine's timers: the heap, its lock, and what the OS timer is armed at.
/// `Arm` is called under the lock as arm(deadline) to set the OS timer (to
/// fire at or after `deadline`); it is never asked to disarm.
class timer_queue {
public:
    using time_point = timer_clock::time_point;
    static constexpr time_point never = time_point::max();

    /// Queues `n` (deadline set). False, and `n` not queued, once close() ran,
    /// or when remove(n) came first: a waiter cancelled before its timer was
    /// queued finishes then, on the adding thread, and never has to touch the
    /// node again after a successful add (which may fire at once elsewhere).
    template <class Arm>
    bool add(timer_node* n, Arm&& arm) noexcept
    {
        std::lock_guard<word_mutex> lk(mu_);
        if (closed_ || n->withdrawn) {
            return false;
        }
        n->sequence = next_sequence_++;
        n->queued = true;
        if (tail_ == nullptr || !(n->deadline < tail_->deadline)) {
            append(n);
        } else {
            n->in_list = false;
            heap_.push(n);
        }
        if (n->deadline < armed_) {
            armed_ = n->deadline;
            arm(n->deadline);
        }
        return true;
    }

    /// Removes `n` if it is still queued; true when it was (it will not run).
    /// A node not queued yet is marked so that add() refuses it.
    bool remove(timer_node* n) noexcept
    {
        std::lock_guard<word_mutex> lk(mu_);
        n->withdrawn = true; // a node is added at most once
        if (!n->queued) {
            return false;
        }
        n->queued = false;
        if (n->in_list) {
            unlink(n);
        } else {
            heap_.erase(n);
        }
        return true;
    }

    /// Called when the OS timer fired (or may have): takes every node due at
    /// `now` off the heap and returns them as a list linked through `next`
    /// (earliest first), and re-arms the OS timer at the next deadline.
    template <class Arm>
    timer_node* take_due(time_point now, Arm&& arm) noexcept
    {
        std::lock_guard<word_mutex> lk(mu_);
        work_item* head = nullptr;
        work_item** tail = &head;
        for (timer_node* n = first(); n != nullptr && n->deadline <= now; n = first()) {
            take(n);
            n->shutdown = false;
            n->next = nullptr;
            *tail = n;
            tail = &n->next;
        }
        if (armed_ <= now) {
            armed_ = never; // that arming has fired
        }
        if (timer_node* n = first(); n != nullptr && n->deadline < armed_) {
            armed_ = n->deadline;
            arm(armed_);
        }
        return static_cast<timer_node*>(head);
    }

    /// Refuses new timers from now on and returns every queued node (each
    /// with `shutdown` set), linked through `next`.
    timer_node* close() noexcept
    {
        std::lock_guard<word_mutex> lk(mu_);
        closed_ = true;
        work_item* head = nullptr;
        work_item** tail = &head;
        for (timer_node* n = first(); n != nullptr; n = first()) {
            take(n);
            n->shutdown = true;
            n->next = nullptr;
            *tail = n;
            tail = &n->next;
        }
        return static_cast<timer_node*>(head);
    }

    /// The earliest deadline queued, or `never`.
    time_point earliest() const noexcept
    {
        std::lock_guard<word_mutex> lk(mu_);
        const timer_node* n = first();
        return n == nullptr ? never : n->deadline;
    }

private:
    // The earliest queued node: the list's head or the heap's root.
    timer_node* first() const noexcept
    {
        timer_node* h = heap_.top();
        if (head_ == nullptr) {
            return h;
        }
        return h != nullptr && timer_heap::before(h, head_) ? h : head_;
    }

    // Takes `n` (from first()) out of the queue.
    void take(timer_node* n) noexcept
    {
        n->queued = false;
        if (n->in_list) {
            unlink(n);
        } else {
            heap_.pop();
        }
    }

    // The FIFO list, linked through `sibling` (next) and `prev`.
    void append(timer_node* n) noexcept
    {
        n->in_list = true;
        n->child = nullptr;
        n->sibling = nullptr;
        n->prev = tail_;
        if (tail_ != nullptr) {
            tail_->sibling = n;
        } else {
            head_ = n;
        }
        tail_ = n;
    }

    void unlink(timer_node* n) noexcept
    {
        if (n->prev != nullptr) {
            n->prev->sibling = n->sibling;
        } else {
            head_ = n->sibling;
        }
        if (n->sibling != nullptr) {
            n->sibling->prev = n->prev;
        } else {
            tail_ = n->prev;
        }
        n->sibling = n->prev = nullptr;
    }

    // The queue is locked twice per timeout (add, remove) and almost never
    // contended: the inlined word lock costs a fraction of std::mutex's two
    // calls into the threads library (detail/word_mutex.hpp).
    mutable word_mutex mu_;
    timer_heap heap_;
    timer_node* head_ = nullptr; // the FIFO list: deadlines in order
    timer_node* tail_ = nullptr;
    time_point armed_ = never;
    std::uint64_t next_sequence_ = 0;
    bool closed_ = false;
};

/// Runs each node of a list from timer_queue (take_due / close); returns
/// how many ran.
inline std::size_t run_timer_list(timer_node* list) noexcept
{
    std::size_t n = 0;
    while (list != nullptr) {
        auto* next = static_cast<timer_node*>(list->next);
        list->run(list);
        list = next;
        ++n;
    }
    return n;
}

} // namespace asock::detail
