// asock/buffer.hpp: the buffer views that sends and receives take.
//
// A buffer is a pointer and a 32-bit length, like the spec's ASYNC_SOCKET_BUFFER:
// an operation moves at most UINT32_MAX bytes in total, so the length type says
// so. asock never owns buffer memory: it must stay valid until the operation
// completes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>

namespace asock {

/// A read-only view of bytes to send.
struct const_buffer {
    const void* data = nullptr;
    std::uint32_t size = 0;

    constexpr const_buffer() noexcept = default;
    constexpr const_buffer(const void* d, std::uint32_t n) noexcept : data(d), size(n) {}
};

/// A writable view of bytes to receive into.
struct mutable_buffer {
    void* data = nullptr;
    std::uint32_t size = 0;

    constexpr mutable_buffer() noexcept = default;
    constexpr mutable_buffer(void* d, std::uint32_t n) noexcept : data(d), size(n) {}
    constexpr operator const_buffer() const noexcept { return {data, size}; }
};

namespace detail {
// Lengths past UINT32_MAX are clamped to 0, which every operation rejects as
// invalid_argument, rather than silently truncated.
constexpr std::uint32_t checked_length(std::size_t n) noexcept
{
    return n > std::numeric_limits<std::uint32_t>::max() ? 0u : static_cast<std::uint32_t>(n);
}
} // namespace detail

/// View of `n` bytes at `p`.
inline const_buffer buffer(const void* p, std::size_t n) noexcept { return {p, detail::checked_length(n)}; }
/// Writable view of `n` bytes at `p`.
inline mutable_buffer buffer(void* p, std::size_t n) noexcept { return {p, detail::checked_length(n)}; }
/// View of the characters of `s` (no terminator).
inline const_buffer buffer(std::string_view s) noexcept { return buffer(static_cast<const void*>(s.data()), s.size()); }
/// View of a contiguous range of trivially copyable elements.
template <class T, std::size_t N>
const_buffer buffer(std::span<const T, N> s) noexcept
{
    return buffer(static_cast<const void*>(s.data()), s.size_bytes());
}
template <class T, std::size_t N>
mutable_buffer buffer(std::span<T, N> s) noexcept
{
    return buffer(static_cast<void*>(s.data()), s.size_bytes());
}
template <class T, std::size_t N>
mutable_buffer buffer(T (&a)[N]) noexcept
{
    return buffer(static_cast<void*>(a), sizeof(a));
}
/// Read-only view of a const array (all N elements: for a string literal, the
/// terminating NUL too; use buffer(std::string_view) to leave it out).
template <class T, std::size_t N>
const_buffer buffer(const T (&a)[N]) noexcept
{
    return buffer(static_cast<const void*>(a), sizeof(a));
}

namespace detail {
/// Whether a buffer list may hold entries of length 0 (the socket
/// transport's payloads may; the async socket's may not, spec 11_047).
enum class empty_entries : bool { rejected, allowed };

/// The one check of a list of buffer descriptors, whatever their type (asock's
/// buffers, the C API's ASYNC_SOCKET_BUFFER and SOCKET_BUFFER): a non-null,
/// non-empty list; no entry with a null pointer and a non-zero length; no
/// zero length unless `rule` allows it (a null pointer then counts as empty);
/// the total at most UINT32_MAX. Sets `total` when valid.
template <class Entry, class DataOf, class SizeOf>
constexpr bool validate_buffer_list(const Entry* list, std::size_t count, DataOf data_of, SizeOf size_of,
                                    empty_entries rule, std::uint32_t& total) noexcept
{
    if (list == nullptr || count == 0 || count > std::numeric_limits<std::uint32_t>::max()) {
        return false;
    }
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint64_t n = size_of(list[i]);
        if (n == 0 ? rule == empty_entries::rejected : data_of(list[i]) == nullptr) {
            return false;
        }
        sum += n;
    }
    if (sum > std::numeric_limits<std::uint32_t>::max()) {
        return false;
    }
    total = static_cast<std::uint32_t>(sum);
    return true;
}

/// Validates a list of asock buffers as the spec asks (11_044..11_048,
/// 11_065..11_069): non-empty, no null pointer, no zero length, total at most
/// UINT32_MAX. Sets the total length when valid.
template <class Buffer>
constexpr bool validate_buffers(const Buffer* bufs, std::size_t count, std::uint32_t& total) noexcept
{
    return validate_buffer_list(
        bufs, count, [](const Buffer& b) { return b.data; }, [](const Buffer& b) { return b.size; },
        empty_entries::rejected, total);
}
} // namespace detail

} // namespace asock
