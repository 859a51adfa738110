// asock/format.hpp: fmt::formatter specialisations for asock's result values.
//
// Kept out of asock/results.hpp so that code which does not format results does
// not need fmt on its include path. Each value formats as its to_string() name;
// receive_outcome formats as "ok (12 bytes)".
#pragma once

#include <asock/results.hpp>

#include <fmt/format.h>

namespace asock::detail {
template <class E>
struct enum_name_formatter : fmt::formatter<std::string_view> {
    template <class Ctx>
    auto format(E value, Ctx& ctx) const
    {
        return fmt::formatter<std::string_view>::format(asock::to_string(value), ctx);
    }
};
} // namespace asock::detail

template <>
struct fmt::formatter<asock::open_result> : asock::detail::enum_name_formatter<asock::open_result> {};
template <>
struct fmt::formatter<asock::timer_result> : asock::detail::enum_name_formatter<asock::timer_result> {};
template <>
struct fmt::formatter<asock::send_sync_result> : asock::detail::enum_name_formatter<asock::send_sync_result> {};
template <>
struct fmt::formatter<asock::send_result> : asock::detail::enum_name_formatter<asock::send_result> {};
template <>
struct fmt::formatter<asock::receive_result> : asock::detail::enum_name_formatter<asock::receive_result> {};
template <>
struct fmt::formatter<asock::notify_io_type> : asock::detail::enum_name_formatter<asock::notify_io_type> {};
template <>
struct fmt::formatter<asock::notify_io_result> : asock::detail::enum_name_formatter<asock::notify_io_result> {};
template <>
struct fmt::formatter<asock::socket_state> : asock::detail::enum_name_formatter<asock::socket_state> {};
template <>
struct fmt::formatter<asock::shutdown_result> : asock::detail::enum_name_formatter<asock::shutdown_result> {};
template <>
struct fmt::formatter<asock::start_result> : asock::detail::enum_name_formatter<asock::start_result> {};

template <>
struct fmt::formatter<asock::receive_outcome> {
    constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
    template <class Ctx>
    auto format(const asock::receive_outcome& o, Ctx& ctx) const
    {
        return fmt::format_to(ctx.out(), "{} ({} bytes)", asock::to_string(o.result), o.bytes_received);
    }
};
