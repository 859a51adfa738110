// asock/detail/delivery.hpp: how every socket core calls completion hooks so
// that a hook may close or destroy its own socket.
//
// Rationale: the spec lets a callback close or destroy its socket, and asks
// that no callback of a socket runs after its close or destroy returned. A
// thread that is calling hooks of a socket (an event dispatch, a close, a stop
// request, a send finishing inside its own start) pushes a delivery_frame on a
// thread-local stack for as long as it does. A close() or destroy called from
// inside one of those hooks reads the stack to
// - know not to wait for the delivery it is itself part of (no self-deadlock);
// - deliver, before it returns, the finished operations its enclosing frames
//   still hold for the socket (`pending`), so none runs after it;
// - tell an enclosing close() that the socket was destroyed under it, and an
//   enclosing delivery that it may touch nothing of the core any more.
// Frames name their core by address; cores are pooled by their engine and
// never freed while it lives, so a frame outliving its socket is harmless.
#pragma once

#include <asock/detail/operation.hpp>

#include <cstdint>

namespace asock::detail {

struct delivery_frame {
    enum class kind : std::uint8_t {
        dispatch,    ///< an engine thread delivering what an event or a completion finished
        close,       ///< a close() delivering what it withdrew and collected
        cancel,      ///< a stop request delivering the operation it withdrew
        inline_send, ///< a callback-form send delivering its own callback inside its start
    };
    const void* core;
    kind what;
    bool destroyed = false;  ///< (close) a hook destroyed the socket: the close must not touch it again
    bool released = false;   ///< a destroy inside a hook let go of this delivery: its thread touches nothing more
    op_list* pending = nullptr; ///< finished operations this frame holds, not delivered yet; null: none
    void* side = nullptr;       ///< (dispatch, completion cores) the direction being delivered
    delivery_frame* prev = nullptr;
};

inline thread_local delivery_frame* tls_frames = nullptr;

/// Pushes a frame for the lifetime of the scope.
struct frame_scope {
    delivery_frame frame;
    frame_scope(const void* core, delivery_frame::kind what, op_list* pending = nullptr, void* side = nullptr) noexcept
        : frame{core, what, false, false, pending, side, tls_frames}
    {
        tls_frames = &frame;
    }
    ~frame_scope() { tls_frames = frame.prev; }
    frame_scope(const frame_scope&) = delete;
    frame_scope& operator=(const frame_scope&) = delete;
};

/// Calls `f(frame)` for each of this thread's frames naming `core`, innermost first.
template <class F>
inline void for_each_frame(const void* core, F f) noexcept
{
    for (delivery_frame* fr = tls_frames; fr != nullptr; fr = fr->prev) {
        if (fr->core == core) {
            f(*fr);
        }
    }
}

/// How many of this thread's frames name `core` with kind `what` (and, with
/// unreleased_only, have not been let go of).
inline unsigned count_frames(const void* core, delivery_frame::kind what, bool unreleased_only = false) noexcept
{
    unsigned n = 0;
    for_each_frame(core, [&](delivery_frame& f) { n += f.what == what && !(unreleased_only && f.released) ? 1u : 0u; });
    return n;
}

inline bool in_frame(const void* core, delivery_frame::kind what) noexcept { return count_frames(core, what) != 0; }

/// Marks every close() frame of `core` on this thread: the socket was
/// destroyed from inside it. True when there was one.
inline bool mark_destroyed_if_closing_here(const void* core) noexcept
{
    bool found = false;
    for_each_frame(core, [&](delivery_frame& f) {
        if (f.what == delivery_frame::kind::close) {
            f.destroyed = true;
            found = true;
        }
    });
    return found;
}

/// Moves to the back of `out` every finished operation that this thread's
/// frames still hold for `core`, innermost frame first. Their own delivery
/// loops then find nothing left to deliver.
inline void take_pending_here(const void* core, op_list& out) noexcept
{
    for_each_frame(core, [&](delivery_frame& f) {
        if (f.pending != nullptr) {
            out.splice_back(*f.pending);
        }
    });
}

/// Calls the completion hook of each operation of `list` in order, taking
/// each off the list before its hook runs (a hook may take the rest: see
/// take_pending_here).
inline void deliver(op_list& list, completion_mode mode) noexcept
{
    while (operation* op = list.pop_front()) {
        op->complete(op, mode);
    }
}

/// Delivers, on this thread and now, whatever this thread's frames still hold
/// for `core`: what a destroy called from inside a hook does first.
inline void deliver_pending_here(const void* core) noexcept
{
    op_list rest;
    take_pending_here(core, rest);
    deliver(rest, completion_mode::foreign);
}

/// A socket's "deliver what is finished" work item: posted to the engine at
/// most once at a time (the pending flag), for operations that finished
/// outside an engine thread (a notify ready at start, a send whose callback
/// cannot run inline) or behind a failed one.
template <class Core>
struct kick_item : work_item {
    Core* self = nullptr;
};

} // namespace asock::detail
