// tests/stress/echo_protocol.hpp: the echo exchange of the stress suite's
// connection test, and its server side, shared by the test (the clients, in
// stress_test.cpp) and the server program (echo_server_main.cpp).
//
// The server runs in a process of its own: ten thousand connections are
// twenty thousand descriptors when both ends live in one process, more than a
// common RLIMIT_NOFILE of 20,000 allows (and the hard limit cannot be raised
// without CAP_SYS_RESOURCE); split in two, each process holds one end.
//
// One exchange, on one connection:
//   client -> server   header {length, seed}, then `length` bytes of the
//                      pattern (pattern_byte(i, seed)), in chunks of up to
//                      chunk_max bytes, each sent once the previous came back
//   server -> client   every byte it received, as it receives it, after
//                      checking it against the pattern
//   server             closes once `length` bytes were echoed: the client's
//                      next receive sees the end of stream
// The server closes first, so the TIME_WAIT connections sit on the server's
// port, and no ephemeral client ports stay held across runs.
#pragma once

#include <asock/asock.hpp>

#include "stress_common.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace stress::echo {

inline constexpr std::size_t chunk_max = 4096;

struct header {
    std::uint32_t length; ///< bytes the client sends, and expects back
    std::uint32_t seed;   ///< of its byte pattern
};

/// The byte at `index` of stream `seed`.
inline std::uint8_t pattern_byte(std::uint64_t index, std::uint32_t seed)
{
    std::uint64_t x = (index + 1) * 0x9E3779B97F4A7C15ull ^ (static_cast<std::uint64_t>(seed) * 0xBF58476D1CE4E5B9ull);
    x ^= x >> 31;
    x *= 0x94D049BB133111EBull;
    return static_cast<std::uint8_t>(x >> 56);
}

inline void fill_pattern(char* p, std::size_t n, std::uint64_t first, std::uint32_t seed)
{
    for (std::size_t i = 0; i < n; ++i) {
        p[i] = static_cast<char>(pattern_byte(first + i, seed));
    }
}

/// Index of the first byte that differs from the pattern, or n.
inline std::size_t check_pattern(const char* p, std::size_t n, std::uint64_t first, std::uint32_t seed)
{
    for (std::size_t i = 0; i < n; ++i) {
        if (static_cast<std::uint8_t>(p[i]) != pattern_byte(first + i, seed)) {
            return i;
        }
    }
    return n;
}

inline std::string str(std::uint64_t v) { return std::to_string(v); }

/// What the server side counts.
struct server_context {
    std::uint32_t max_bytes = 0;
    std::atomic<int> accepted{0}, accept_failed{0}, server_done{0}, server_ok{0};
    std::atomic<std::uint64_t> server_bytes{0};
    std::atomic<bool> accept_loop_done{false};
    failure_log fails;
    /// Called on each accept with the count so far (from an engine thread).
    void (*on_accepted)(int count, void* context) = nullptr;
    void* on_accepted_context = nullptr;
};

inline asock::task<void> server_session(server_context& ctx, asock::tcp_socket& s)
{
    header h{};
    std::uint32_t got = 0;
    while (got < sizeof h) {
        const asock::receive_outcome out =
            co_await s.receive_async(asock::buffer(reinterpret_cast<char*>(&h) + got, sizeof h - got));
        if (!out) {
            ctx.fails.add("server: header: " + std::string(asock::to_string(out.result)));
            co_return;
        }
        got += out.bytes_received;
    }
    if (h.length == 0 || h.length > ctx.max_bytes) {
        ctx.fails.add("server: bad header length " + str(h.length));
        co_return;
    }
    std::array<char, chunk_max> buf;
    std::uint64_t done = 0;
    while (done < h.length) {
        const auto want = static_cast<std::uint32_t>(std::min<std::uint64_t>(buf.size(), h.length - done));
        const asock::receive_outcome out = co_await s.receive_async(asock::buffer(buf.data(), want));
        if (!out) {
            ctx.fails.add("server: receive at byte " + str(done) + " of " + str(h.length) + ": " +
                          std::string(asock::to_string(out.result)));
            co_return;
        }
        const std::size_t bad = check_pattern(buf.data(), out.bytes_received, done, h.seed);
        if (bad != out.bytes_received) {
            ctx.fails.add("server: received byte " + str(done + bad) + " differs (seed " + str(h.seed) + ")");
            co_return;
        }
        if (const asock::send_result sr =
                co_await s.send_async(asock::buffer(static_cast<const void*>(buf.data()), out.bytes_received));
            sr != asock::send_result::ok) {
            ctx.fails.add("server: echo send: " + std::string(asock::to_string(sr)));
            co_return;
        }
        done += out.bytes_received;
    }
    ctx.server_bytes.fetch_add(done);
    ctx.server_ok.fetch_add(1);
    s.close(); // the server closes first: the client reads the end of stream
}

inline asock::task<void> echo_server(server_context& ctx, asock::tcp_socket accepted)
{
    {
        asock::tcp_socket s = std::move(accepted);
        co_await server_session(ctx, s);
    } // destroyed (and its engine reference dropped) before the count
    ctx.server_done.fetch_add(1);
}

inline asock::task<void> accept_loop(server_context& ctx, asock::tcp_listener_t& listener)
{
    for (;;) {
        auto a = co_await listener.accept();
        if (!a) {
            if (a.error != std::errc::bad_file_descriptor) { // not the listener's close
                ctx.accept_failed.fetch_add(1);
                ctx.fails.add("accept: " + a.error.message());
            }
            break;
        }
        const int n = ctx.accepted.fetch_add(1) + 1;
        asock::spawn(echo_server(ctx, std::move(a.socket)));
        if (ctx.on_accepted != nullptr) {
            ctx.on_accepted(n, ctx.on_accepted_context);
        }
    }
    ctx.accept_loop_done.store(true);
}

} // namespace stress::echo
