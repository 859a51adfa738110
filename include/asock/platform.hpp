// asock/platform.hpp: what a platform policy must provide to async_socket<Platform>.
//
// Rationale: async_socket<Platform> is the public face (validation, awaitables,
// callback forms); everything that depends on how an OS reports I/O lives in the
// policy. The policy seam is a per-socket "core" that owns the operation queues,
// because readiness backends (epoll), completion backends (Windows threadpool
// IO) and submission-queue backends (io_uring) disagree on everything below it:
// whether to try a call first, who holds the buffers while the kernel works,
// and how close must wait for in-flight work. What they agree on, and what the
// concept pins down, is the contract each core method keeps:
//
// - start_* never allocates; the operation record is the caller's and stays
//   valid until its completion hook is called, exactly once.
// - start_send / start_receive / start_notify either reject (nothing queued, no
//   hook call), finish inline (`done` set, no hook call: the caller delivers the
//   result), or queue (the hook is called later). With allow_inline == false a
//   receive or notify never finishes inline: the hook runs on an engine thread.
// - Hooks receive completion_mode::engine_thread when called on an engine thread
//   with no lock held (an awaiter may resume inline) and completion_mode::foreign
//   otherwise (an awaiter must post its resumption back to the engine).
// - close() completes every queued operation `abandoned` before it returns and
//   may be called from inside any hook of the same socket without deadlock.
//   An operation that finished but whose hook is deferred to an engine thread
//   (post_completion, or a notify ready at start without allow_inline) is
//   delivered, with its result, before close() returns too.
// - cancel(op) completes a still-queued operation `cancelled`; if the operation
//   is not queued yet, the core's start_* must see the request and finish it.
#pragma once

#include <asock/detail/operation.hpp>
#include <asock/results.hpp>
#include <asock/transport.hpp>

#include <concepts>

namespace asock {

template <class P>
concept platform_policy = requires {
    typename P::engine_type;
    typename P::core_type;
    typename P::native_handle_type;
    { P::invalid_handle } -> std::convertible_to<typename P::native_handle_type>;
} && requires(typename P::engine_type& engine, typename P::core_type& core, detail::send_op& send,
              detail::receive_op& receive, detail::notify_op& notify, detail::operation& op, detail::work_item* item,
              typename P::native_handle_type handle, const basic_handle_owner<typename P::native_handle_type>& owner,
              const custom_transport& transport, bool& done, bool allow_inline) {
    // Engine: reference counted, posts intrusive work, pools cores.
    { engine.acquire_core() } -> std::same_as<typename P::core_type*>;
    engine.release_core(&core);
    engine.inc_ref();
    engine.dec_ref();
    engine.post(item);
    { P::acquire_default_engine() } -> std::same_as<typename P::engine_type*>;
    { P::default_owner() } -> std::same_as<basic_handle_owner<typename P::native_handle_type>>;
    // Core: the spec's state machine and the three operations.
    core.attach(&engine, transport);
    { core.open(handle, owner) } -> std::same_as<open_result>;
    core.close();
    core.detach();
    { core.state() } -> std::same_as<socket_state>;
    { core.native_handle() } -> std::same_as<typename P::native_handle_type>;
    { core.engine() } -> std::same_as<typename P::engine_type&>;
    { core.start_send(send, done) } -> std::same_as<send_sync_result>;
    { core.start_receive(receive, allow_inline, done) } -> std::same_as<start_result>;
    { core.start_notify(notify, allow_inline, done) } -> std::same_as<start_result>;
    core.cancel(op);
    core.post_completion(op);
};

} // namespace asock
