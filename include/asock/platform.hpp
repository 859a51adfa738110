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
// - shutdown_send() half-closes: every later start_send is rejected not_open,
//   and the FIN goes once every send accepted before it completed ok (none if
//   one of them did not).
//
// Beyond the contract, backends differ in what they offer at all (readiness
// notifications, custom transports, ...) and in what a program around them
// must do (start a socket library, ...). A policy says so with optional
// traits (static constexpr values and static functions, listed at
// platform_traits below); generic code asks asock::platform_traits<P>, which
// reads the policy's trait when it has one and gives the default otherwise,
// and never the preprocessor. Which backend a build uses by default is chosen
// in one place: asock/default_platform.hpp.
#pragma once

#include <asock/detail/operation.hpp>
#include <asock/results.hpp>
#include <asock/transport.hpp>

#include <concepts>
#include <cstdint>
#include <type_traits>

namespace asock {

namespace detail {
/// Each optional trait a policy has is of the kind platform_traits reads.
template <class P>
concept valid_optional_traits =
    (!requires { P::supports_notify_io; } || std::same_as<std::remove_cv_t<decltype(P::supports_notify_io)>, bool>) &&
    (!requires { P::supports_custom_transport; } ||
     std::same_as<std::remove_cv_t<decltype(P::supports_custom_transport)>, bool>) &&
    (!requires { P::accepts_null_engine; } || std::same_as<std::remove_cv_t<decltype(P::accepts_null_engine)>, bool>) &&
    (!requires { P::wants_blocking_handles; } ||
     std::same_as<std::remove_cv_t<decltype(P::wants_blocking_handles)>, bool>) &&
    (!requires { &P::start_socket_library; } || requires {
        { P::start_socket_library() } -> std::same_as<bool>;
    }) && (!requires { &P::stop_socket_library; } || requires { P::stop_socket_library(); }) &&
    (!requires { &P::engine_options_for; } || requires(std::uint32_t n) {
        typename P::engine_options;
        { P::engine_options_for(n, n) } -> std::convertible_to<typename P::engine_options>;
    });
} // namespace detail

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
    core.post(item); // runs where the socket's events run (an awaiter resumed from another thread)
    { core.open(handle, owner) } -> std::same_as<open_result>;
    core.close();
    core.detach();
    { core.state() } -> std::same_as<socket_state>;
    { core.native_handle() } -> std::same_as<typename P::native_handle_type>;
    { core.engine() } -> std::same_as<typename P::engine_type&>;
    { core.start_send(send, done) } -> std::same_as<send_sync_result>;
    { core.start_receive(receive, allow_inline, done) } -> std::same_as<start_result>;
    { core.start_notify(notify, allow_inline, done) } -> std::same_as<start_result>;
    { core.shutdown_send() } -> std::same_as<shutdown_result>; // half-close (async_socket::shutdown_send)
    core.cancel(op);
    core.post_completion(op);
} && detail::valid_optional_traits<P>;

/// What a platform policy `P` offers beyond the contract, with defaults for a
/// policy that does not say. Each trait is read from `P` when `P` has a member
/// of that name (static constexpr bool, or static function), else defaulted as
/// written here. basic_epoll_platform (asock/linux/epoll_platform.hpp) and
/// basic_win32_platform (asock/win32/win32_platform.hpp) state every one.
template <class P>
struct platform_traits {
    /// notify_io_async can report readiness. False (Windows, spec 04_002:
    /// completion-based IO has no readiness to report): the C API's
    /// async_socket_notify_io_async fails at once. Default: true.
    static constexpr bool supports_notify_io = [] {
        if constexpr (requires { P::supports_notify_io; }) {
            return static_cast<bool>(P::supports_notify_io);
        } else {
            return true;
        }
    }();

    /// async_socket can do its I/O through a custom_transport (the spec's
    /// async_socket_create_with_transport). False (Windows, 04_001): a socket
    /// constructed with one is invalid, and the C API's
    /// async_socket_create_with_transport returns NULL. Default: true.
    static constexpr bool supports_custom_transport = [] {
        if constexpr (requires { P::supports_custom_transport; }) {
            return static_cast<bool>(P::supports_custom_transport);
        } else {
            return true;
        }
    }();

    /// The C API accepts a NULL execution engine and uses the platform's
    /// default engine (P::acquire_default_engine; spec 11_002); the first
    /// platform_init then takes a reference on it, the last platform_deinit
    /// drops it. False (Windows, 01_002: the engine supplies the thread
    /// pool): a NULL engine is refused. Default: true.
    static constexpr bool accepts_null_engine = [] {
        if constexpr (requires { P::accepts_null_engine; }) {
            return static_cast<bool>(P::accepts_null_engine);
        } else {
            return true;
        }
    }();

    /// The core wants the handles given to open() in blocking mode (Windows
    /// threadpool IO: overlapped calls then never depend on how a provider
    /// treats non-blocking sockets). The C API switches a socket transport's
    /// socket, which it keeps non-blocking for its own calls, to blocking for
    /// open() (and back if open fails). False: the handle is taken as it is
    /// (epoll: non-blocking, as the socket transport keeps it). Default: false.
    static constexpr bool wants_blocking_handles = [] {
        if constexpr (requires { P::wants_blocking_handles; }) {
            return static_cast<bool>(P::wants_blocking_handles);
        } else {
            return false;
        }
    }();

    /// Starts the OS's socket library for the C API's platform_init (Windows:
    /// WSAStartup; counted, so each successful call needs one
    /// stop_socket_library). Returns false on failure. Default: nothing to
    /// start, true.
    static bool start_socket_library() noexcept
    {
        if constexpr (requires { &P::start_socket_library; }) {
            return P::start_socket_library();
        } else {
            return true;
        }
    }

    /// Undoes one successful start_socket_library (Windows: WSACleanup).
    /// Default: nothing.
    static void stop_socket_library() noexcept
    {
        if constexpr (requires { &P::stop_socket_library; }) {
            P::stop_socket_library();
        }
    }

    /// The engine options for a thread range [min_threads, max_threads] (the
    /// C API's EXECUTION_ENGINE_PARAMETERS; 0 as max: no limit), as the
    /// engine understands it (Windows: the pool's minimum and maximum; epoll:
    /// a fixed pool of min_threads, at least one). Default: the engine's
    /// default options (needs P::engine_options).
    static auto engine_options_for(std::uint32_t min_threads, std::uint32_t max_threads)
    {
        if constexpr (requires { &P::engine_options_for; }) {
            return P::engine_options_for(min_threads, max_threads);
        } else {
            return typename P::engine_options{};
        }
    }
};

} // namespace asock
