// asock/async_socket.hpp: asock::async_socket<Platform>, one connected socket.
//
// The spec's async_socket as a C++ class: create (constructor), open, close,
// destroy (destructor, with an implicit close), and send / receive / notify in
// two forms:
// - co_await forms returning awaitables (ops/*_awaitable.hpp document each one:
//   completion, results, resumption thread, cancellation);
// - callback forms taking a caller-owned operation record, a function pointer
//   and a context, whose callback is called exactly once per accepted operation
//   (the C shim is built on these).
//
// Thread safety: every member may be called from any thread concurrently,
// except that the destructor (and move assignment) must not race with other
// calls on the same object; the socket's own callbacks that run before the
// destructor returns (delivered by a close it waits for, or by itself) are
// the exception and may still call members. A callback or a resumed
// coroutine may call any member of its own socket, close() included, and may
// destroy the socket.
#pragma once

#include <asock/buffer.hpp>
#include <asock/detail/inline_budget.hpp>
#include <asock/detail/operation.hpp>
#include <asock/ops/notify_awaitable.hpp>
#include <asock/ops/receive_awaitable.hpp>
#include <asock/ops/send_awaitable.hpp>
#include <asock/platform.hpp>
#include <asock/results.hpp>
#include <asock/transport.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <ranges>
#include <span>
#include <stop_token>
#include <type_traits>
#include <utility>

namespace asock {

/// Caller-owned record of a send started in callback form. Must stay valid and
/// untouched until its callback has been called.
struct send_operation : detail::send_op {
    void (*on_complete)(void* context, send_result result) = nullptr;
    void* context = nullptr;
    const_buffer single{}; ///< The descriptor of a one-buffer send, copied here.
};

/// Caller-owned record of a receive started in callback form.
struct receive_operation : detail::receive_op {
    void (*on_complete)(void* context, receive_result result, std::uint32_t bytes_received) = nullptr;
    void* context = nullptr;
    mutable_buffer single{}; ///< The descriptor of a one-buffer receive, copied here.
};

/// A list of buffer descriptors that a callback-form operation may keep
/// pointing to until its callback: a contiguous range of `Buffer` that is
/// either an lvalue (an array, a vector, ... that the caller keeps) or a view
/// (std::span), never a temporary container, whose descriptors would be gone
/// before the operation ends. Passing a temporary std::array, std::vector or
/// braced list does not compile; a single descriptor has its own overload,
/// which copies it into the operation record.
template <class Range, class Buffer>
concept buffer_list = std::ranges::contiguous_range<Range> && std::ranges::sized_range<Range> &&
                      std::ranges::borrowed_range<Range> &&
                      std::same_as<std::remove_cv_t<std::ranges::range_value_t<Range>>, Buffer>;

/// Caller-owned record of a readiness notification started in callback form.
struct notify_operation : detail::notify_op {
    void (*on_complete)(void* context, notify_io_result result) = nullptr;
    void* context = nullptr;
};

namespace detail {
// Depth of inline send completions on this thread. A callback that starts a
// send that completes at once would otherwise recurse without bound.
inline thread_local unsigned tls_inline_depth = 0;
inline constexpr unsigned max_inline_depth = 16;
} // namespace detail

template <platform_policy Platform>
class async_socket {
public:
    using platform_type = Platform;
    using engine_type = typename Platform::engine_type;
    using core_type = typename Platform::core_type;
    using native_handle_type = typename Platform::native_handle_type;
    using handle_owner = basic_handle_owner<native_handle_type>;

    /// An empty socket: valid() is false and every operation reports not_open.
    async_socket() noexcept = default;

    /// The spec's async_socket_create: a socket bound to `engine`, not yet open.
    /// Takes a reference on the engine (released by the destructor).
    explicit async_socket(engine_type& engine) noexcept : async_socket(&engine, custom_transport{}, true) {}

    /// The spec's async_socket_create_with_transport: I/O goes through
    /// `transport.on_send` / `on_recv` instead of the handle. Both must be set
    /// (04_002, 04_003), else valid() is false.
    async_socket(engine_type& engine, const custom_transport& transport) noexcept
        : async_socket(&engine, transport, transport.is_valid())
    {
    }

    /// A socket on the platform's default engine (the spec's NULL execution
    /// engine, 11_002).
    static async_socket on_default_engine(const custom_transport& transport = {}) noexcept
    {
        async_socket s;
        if (transport.is_set() && !transport.is_valid()) {
            return s;
        }
        engine_type* e = Platform::acquire_default_engine();
        if (e != nullptr) {
            s.bind(e, transport);
            e->dec_ref(); // bind took its own reference
        }
        return s;
    }

    async_socket(async_socket&& other) noexcept : core_(std::exchange(other.core_, nullptr)) {}

    async_socket& operator=(async_socket&& other) noexcept
    {
        if (this != &other) {
            reset();
            core_ = std::exchange(other.core_, nullptr);
        }
        return *this;
    }

    /// The spec's async_socket_destroy: waits for a concurrent open / close to
    /// finish, closes if OPEN (every pending operation completes abandoned),
    /// destroys the handle through its owner, releases the engine reference.
    ~async_socket() { reset(); }

    /// False for an empty or moved-from socket, or when creation failed.
    bool valid() const noexcept { return core_ != nullptr; }
    explicit operator bool() const noexcept { return valid(); }

    socket_state state() const noexcept { return core_ != nullptr ? core_->state() : socket_state::closed; }
    native_handle_type native_handle() const noexcept
    {
        return core_ != nullptr ? core_->native_handle() : Platform::invalid_handle;
    }
    /// The engine this socket runs on. Requires valid().
    engine_type& engine() const noexcept { return core_->engine(); }
    /// The platform's per-socket core, for platform-specific helpers (the
    /// Windows TCP helpers run ConnectEx / AcceptEx through it). Null when !valid().
    core_type* core() const noexcept { return core_; }

    /// The spec's open: takes ownership of `handle` (through `owner`) and makes
    /// the socket OPEN. Fails (error, ownership not taken) when the socket is
    /// empty, already OPEN / OPENING, closed (never reopenable), or the backend
    /// refuses the handle.
    open_result open(native_handle_type handle, const handle_owner& owner = Platform::default_owner()) noexcept
    {
        return core_ != nullptr ? core_->open(handle, owner) : open_result::error;
    }

    /// Callback form of open: on success calls `on_open_complete(context, ok)`
    /// before returning ok; on failure returns error and does not call it.
    open_result open_async(native_handle_type handle, const handle_owner& owner,
                           void (*on_open_complete)(void*, open_result), void* context) noexcept
    {
        if (on_open_complete == nullptr) {
            return open_result::error;
        }
        const open_result r = open(handle, owner);
        if (r == open_result::ok) {
            on_open_complete(context, r);
        }
        return r;
    }

    /// The spec's close: CLOSING, every pending operation completes abandoned
    /// (callbacks before close returns; awaiters are resumed on an engine
    /// thread), the handle is disconnected, CLOSED. Does nothing unless OPEN.
    /// Safe from inside the socket's own callbacks and coroutines.
    void close() noexcept
    {
        if (core_ != nullptr) {
            core_->close();
        }
    }

    /// Half-close: ends the sending direction with a FIN; receiving goes on.
    ///
    /// - ok: the FIN is scheduled. It is sent at once (shutdown(fd, SHUT_WR)
    ///   on Linux, shutdown(s, SD_SEND) on Windows) when no send is queued or
    ///   in flight; otherwise as soon as every send accepted before this call
    ///   has completed, all its bytes handed to the transport. If one of those
    ///   sends does not complete ok (it fails, is torn, cancelled or
    ///   abandoned), no FIN is sent: the stream did not go out whole. A
    ///   deferred shutdown call that fails has no one to report to: the
    ///   failure is not reported. A repeated call returns ok and does nothing.
    /// - not_open: no socket (empty, moved-from), or the socket is not OPEN.
    /// - error: the shutdown call made at once failed; or the send direction
    ///   had already failed for good (a torn send), and no FIN is sent.
    /// - unsupported: the socket runs on a custom transport, which has no way
    ///   to send a FIN.
    ///
    /// From the call on (whatever it returned, unless not_open or
    /// unsupported) every new send is rejected not_open (send_result::not_open,
    /// send_sync_result::not_open). Receives work as before, until the peer
    /// closes (abandoned). close() and the destructor are unchanged; sends
    /// still pending then complete abandoned. Thread-safe like every member,
    /// and callable from the socket's own callbacks and coroutines.
    shutdown_result shutdown_send() noexcept
    {
        return core_ != nullptr ? core_->shutdown_send() : shutdown_result::not_open;
    }

    // ---- co_await forms ----------------------------------------------------

    // Each form comes without and with a std::stop_token: without one, the
    // awaitable holds nothing of a token (ops/awaitable_base.hpp).
    send_awaitable<core_type> send_async(std::span<const const_buffer> buffers) noexcept { return {core_, buffers}; }
    send_awaitable<core_type> send_async(std::span<const const_buffer> buffers, std::stop_token token) noexcept
    {
        return {core_, buffers, std::move(token)};
    }
    send_awaitable<core_type> send_async(const_buffer buffer) noexcept { return {core_, buffer}; }
    send_awaitable<core_type> send_async(const_buffer buffer, std::stop_token token) noexcept
    {
        return {core_, buffer, std::move(token)};
    }
    receive_awaitable<core_type> receive_async(std::span<const mutable_buffer> buffers) noexcept
    {
        return {core_, buffers};
    }
    receive_awaitable<core_type> receive_async(std::span<const mutable_buffer> buffers, std::stop_token token) noexcept
    {
        return {core_, buffers, std::move(token)};
    }
    receive_awaitable<core_type> receive_async(mutable_buffer buffer) noexcept { return {core_, buffer}; }
    receive_awaitable<core_type> receive_async(mutable_buffer buffer, std::stop_token token) noexcept
    {
        return {core_, buffer, std::move(token)};
    }
    notify_awaitable<core_type> notify_io_async(notify_io_type type) noexcept { return {core_, type}; }
    notify_awaitable<core_type> notify_io_async(notify_io_type type, std::stop_token token) noexcept
    {
        return {core_, type, std::move(token)};
    }

    // ---- callback forms ------------------------------------------------------

    // The callback forms check their arguments in one order, and give the
    // same answer for the same condition on every operation (docs/awaitables.md,
    // "Bad input"): no socket (empty, moved-from, creation failed) -> not_open;
    // a null callback, bad buffers or a bad notify type -> invalid_argument;
    // a socket that is not OPEN -> not_open. Nothing is called back then.

    /// Starts a send. ok: `on_complete` will be called exactly once, possibly
    /// before this returns (when the send completes at once, spec 11_061).
    /// Otherwise rejected (not_open, invalid_argument, or error: the
    /// transport failed at once before any byte went out), and `on_complete`
    /// is not called. The buffers, and the array listing them (`buffers` must
    /// be an lvalue or a view, see buffer_list), must stay valid until the
    /// callback.
    template <class Buffers>
        requires buffer_list<Buffers, const_buffer>
    send_sync_result send_async(send_operation& op, Buffers&& buffers, void (*on_complete)(void*, send_result),
                                void* context) noexcept
    {
        return start_send(op, std::ranges::data(buffers), std::ranges::size(buffers), on_complete, context);
    }

    /// Starts a send of one buffer; its descriptor is copied into `op`.
    send_sync_result send_async(send_operation& op, const_buffer buffer, void (*on_complete)(void*, send_result),
                                void* context) noexcept
    {
        op.single = buffer;
        return start_send(op, &op.single, 1, on_complete, context);
    }

    /// Starts a receive. started: `on_complete` will be called exactly once, on
    /// an engine thread, never before this returns, in the order receives were
    /// started. Otherwise rejected (not_open, invalid_argument) and not called.
    /// The buffers and the array listing them must stay valid until the callback.
    template <class Buffers>
        requires buffer_list<Buffers, mutable_buffer>
    start_result receive_async(receive_operation& op, Buffers&& buffers,
                               void (*on_complete)(void*, receive_result, std::uint32_t), void* context) noexcept
    {
        return start_receive(op, std::ranges::data(buffers), std::ranges::size(buffers), on_complete, context);
    }

    /// Starts a receive into one buffer; its descriptor is copied into `op`.
    start_result receive_async(receive_operation& op, mutable_buffer buffer,
                               void (*on_complete)(void*, receive_result, std::uint32_t), void* context) noexcept
    {
        op.single = buffer;
        return start_receive(op, &op.single, 1, on_complete, context);
    }

    /// Starts a readiness notification. started: `on_complete` will be called
    /// exactly once, on an engine thread, never before this returns.
    start_result notify_io_async(notify_operation& op, notify_io_type type,
                                 void (*on_complete)(void*, notify_io_result), void* context) noexcept
    {
        if (core_ == nullptr) {
            return start_result::not_open;
        }
        if (on_complete == nullptr || (type != notify_io_type::in && type != notify_io_type::out)) {
            return start_result::invalid_argument;
        }
        reset_op(op);
        op.for_type(type);
        op.on_complete = on_complete;
        op.context = context;
        op.complete = &complete_notify;
        bool done = false;
        return core_->start_notify(op, false, done);
    }

private:
    send_sync_result start_send(send_operation& op, const const_buffer* buffers, std::size_t count,
                                void (*on_complete)(void*, send_result), void* context) noexcept
    {
        if (core_ == nullptr) {
            return send_sync_result::not_open;
        }
        if (on_complete == nullptr || count > std::numeric_limits<std::uint32_t>::max()) {
            return send_sync_result::invalid_argument;
        }
        reset_op(op);
        op.buffers = buffers;
        op.count = static_cast<std::uint32_t>(count);
        op.sent = op.index = op.offset = 0;
        if (!detail::validate_buffers(op.buffers, op.count, op.total)) {
            return send_sync_result::invalid_argument;
        }
        op.on_complete = on_complete;
        op.context = context;
        op.complete = &complete_send;
        bool done = false;
        if constexpr (requires { core_->start_send_for_callback(op, done); }) {
            // A backend whose sends may finish inside the start: a close or
            // destroy on another thread waits until this callback has run.
            const send_sync_result r = core_->start_send_for_callback(op, done);
            if (r == send_sync_result::ok && done) {
                const bool now = detail::tls_inline_depth < detail::max_inline_depth &&
                                 detail::take_inline_budget(core_->engine());
                if (now) {
                    ++detail::tls_inline_depth;
                }
                // Past the depth limit or the thread's inline budget
                // (detail/inline_budget.hpp): on an engine thread instead.
                core_->deliver_inline_send(op, now);
                if (now) {
                    --detail::tls_inline_depth;
                }
            }
            return r;
        } else {
            const send_sync_result r = core_->start_send(op, done);
            if (r == send_sync_result::ok && done) {
                if (detail::tls_inline_depth < detail::max_inline_depth &&
                    detail::take_inline_budget(core_->engine())) {
                    ++detail::tls_inline_depth;
                    op.on_complete(op.context, op.result);
                    --detail::tls_inline_depth;
                } else {
                    core_->post_completion(op); // on an engine thread, before any close() returns
                }
            }
            return r;
        }
    }

    start_result start_receive(receive_operation& op, const mutable_buffer* buffers, std::size_t count,
                               void (*on_complete)(void*, receive_result, std::uint32_t), void* context) noexcept
    {
        if (core_ == nullptr) {
            return start_result::not_open;
        }
        if (on_complete == nullptr || count > std::numeric_limits<std::uint32_t>::max()) {
            return start_result::invalid_argument;
        }
        reset_op(op);
        op.buffers = buffers;
        op.count = static_cast<std::uint32_t>(count);
        op.received = 0;
        if (!detail::validate_buffers(op.buffers, op.count, op.total)) {
            return start_result::invalid_argument;
        }
        op.on_complete = on_complete;
        op.context = context;
        op.complete = &complete_receive;
        bool done = false;
        return core_->start_receive(op, false, done);
    }

    async_socket(engine_type* engine, const custom_transport& transport, bool ok) noexcept
    {
        if (ok) {
            bind(engine, transport);
        }
    }

    void bind(engine_type* engine, const custom_transport& transport) noexcept
    {
        if constexpr (requires { Platform::supports_custom_transport; }) {
            if (transport.is_set() && !Platform::supports_custom_transport) {
                return; // no custom transports on this platform (Windows, spec 04_001): stays invalid
            }
        }
        core_type* c = engine->acquire_core();
        if (c == nullptr) {
            return;
        }
        engine->inc_ref();
        c->attach(engine, transport);
        core_ = c;
    }

    void reset() noexcept
    {
        core_type* c = core_;
        if (c == nullptr) {
            return;
        }
        engine_type& e = c->engine();
        c->detach();
        // Cleared only now: until detach() returns, callbacks of this socket
        // (running on another thread's close that detach waits for, or
        // delivered by detach itself) may still call members of this object,
        // which read core_.
        core_ = nullptr;
        e.release_core(c);
        e.dec_ref();
    }

    static void reset_op(detail::operation& op) noexcept
    {
        op.next = nullptr;
        op.prev = nullptr;
        op.queued = false;
        op.cancel_requested = false;
    }

    static void complete_send(detail::operation* op, detail::completion_mode) noexcept
    {
        auto* o = static_cast<send_operation*>(op);
        o->on_complete(o->context, o->result);
    }
    static void complete_receive(detail::operation* op, detail::completion_mode) noexcept
    {
        auto* o = static_cast<receive_operation*>(op);
        o->on_complete(o->context, o->result, o->result == receive_result::ok ? o->received : 0u);
    }
    static void complete_notify(detail::operation* op, detail::completion_mode) noexcept
    {
        auto* o = static_cast<notify_operation*>(op);
        o->on_complete(o->context, o->result);
    }

    core_type* core_ = nullptr;
};

} // namespace asock
