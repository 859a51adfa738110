// asock/asock.hpp: everything, with the default backend's names (asock/default_platform.hpp).
#pragma once

#include <asock/async_socket.hpp>
#include <asock/buffer.hpp>
#include <asock/default_platform.hpp>
#include <asock/engine_ref.hpp>
#include <asock/platform.hpp>
#include <asock/post.hpp>
#include <asock/results.hpp>
#include <asock/scope.hpp>
#include <asock/socket_options.hpp>
#include <asock/spawn.hpp>
#include <asock/sync_wait.hpp>
#include <asock/task.hpp>
#include <asock/tcp.hpp>
#include <asock/time.hpp>
#include <asock/timeout.hpp>
#include <asock/transport.hpp>
#include <asock/when_all.hpp>
#include <asock/when_any.hpp>

#include <chrono>

namespace asock {

// asock::default_platform (asock/default_platform.hpp): epoll on Linux,
// threadpool IO on Windows, or what ASOCK_DEFAULT_BACKEND chose.
using engine = default_platform::engine_type;
using engine_options = default_platform::engine_options;
using tcp_socket = async_socket<default_platform>;
using tcp_listener_t = tcp_listener<default_platform>;

/// Creates an engine of the default platform (empty reference on failure).
inline engine_ref<engine> make_engine(const engine_options& options = {})
{
    return engine_ref<engine>::create(options);
}

/// tcp_connect on the default platform.
inline task<connect_outcome<default_platform>> connect(engine& e, std::string host, std::uint16_t port,
                                                       std::stop_token token = {})
{
    return tcp_connect<default_platform>(e, std::move(host), port, std::move(token));
}

/// tcp_connect on the default platform, within `timeout` (lookup and connect
/// together): std::errc::timed_out when it runs out (asock/tcp_deadline.hpp).
template <class Rep, class Period>
task<connect_outcome<default_platform>> connect(engine& e, std::string host, std::uint16_t port,
                                                std::chrono::duration<Rep, Period> timeout, std::stop_token token = {})
{
    return tcp_connect<default_platform>(e, std::move(host), port, timeout, std::move(token));
}

} // namespace asock
