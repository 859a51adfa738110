// asock/keep_alive_options.hpp: the TCP keep-alive settings of set_keep_alive
// (asock/socket_options.hpp), the same type on every platform.
#pragma once

#include <chrono>

namespace asock {

/// What set_keep_alive applies. A zero duration or count leaves the OS's
/// value (or default) as it is; negative values are invalid_argument.
struct keep_alive_options {
    /// SO_KEEPALIVE on or off. Off ignores the other fields.
    bool enabled = true;
    /// Idle time before the first probe (TCP_KEEPIDLE; Windows: keepalivetime).
    std::chrono::seconds idle{0};
    /// Time between unanswered probes (TCP_KEEPINTVL; Windows: keepaliveinterval).
    std::chrono::seconds interval{0};
    /// Unanswered probes before the connection is dropped (TCP_KEEPCNT).
    /// Windows: cannot be set (not_supported when nonzero).
    int count = 0;
};

} // namespace asock
