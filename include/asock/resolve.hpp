// asock/resolve.hpp: name resolution (getaddrinfo), written once for every platform.
//
// The TCP helpers (asock/posix/tcp_posix.hpp, asock/win32/tcp_win32.hpp) and
// the C API's socket transport (asock/c/detail/socket_transport.hpp) resolve
// host names here. What differs between the socket APIs is only a few names,
// which a small OS layer `Os` supplies; this header includes no platform
// header. The layers are asock::posix::resolver_os (posix/tcp_posix.hpp) and
// asock::win32::resolver_os (win32/tcp_win32.hpp), and each of those headers
// declares asock::resolve_category() as resolve_category<its layer>().
//
// An `Os` layer provides:
//
//   using addrinfo_type = ::addrinfo;            // the OS's struct (ai_next, ai_addr, ...)
//   static constexpr int any_family, stream_type, tcp_protocol;  // AF_UNSPEC, SOCK_STREAM, IPPROTO_TCP
//   static constexpr int passive_flag, numeric_service_flag;     // AI_PASSIVE, AI_NUMERICSERV
//   static int getaddrinfo(const char* host, const char* service, const addrinfo_type* hints,
//                          addrinfo_type** out) noexcept;        // 0, or the OS's error code
//   static void freeaddrinfo(addrinfo_type* list) noexcept;
//   static std::error_code system_error(int code) noexcept;      // an error that is not a resolution
//                                                                // error of its own (EAI_SYSTEM: errno), else empty
//   static std::string message(int code);                        // the text of a resolution error code
//   static std::error_condition condition(int code) noexcept;    // optional: its portable condition
//
// Errors: a getaddrinfo failure is reported as its code in
// resolve_category<Os>() ("asock.resolve": EAI_* codes on POSIX, the WSA codes
// getaddrinfo returns on Windows), except what Os::system_error maps elsewhere.
// Windows needs Winsock started (WSAStartup) before a resolution; an engine or
// a C socket transport holds it started.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <string>
#include <system_error>
#include <utility>

namespace asock::net {

/// The category of name-resolution errors ("asock.resolve") over the OS layer `Os`.
template <class Os>
const std::error_category& resolve_category() noexcept
{
    struct category final : std::error_category {
        const char* name() const noexcept override { return "asock.resolve"; }
        std::string message(int code) const override { return Os::message(code); }
        std::error_condition default_error_condition(int code) const noexcept override
        {
            if constexpr (requires { Os::condition(code); }) {
                return Os::condition(code);
            } else {
                return std::error_condition(code, *this);
            }
        }
    };
    static const category c;
    return c;
}

/// The list of addresses a resolution produced; owns it (frees it with
/// Os::freeaddrinfo). Iterating gives each entry (`const addrinfo&`) in the
/// order getaddrinfo returned them. Move-only; empty after a failed resolution.
template <class Os>
class address_list {
public:
    using addrinfo_type = typename Os::addrinfo_type;

    class iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = addrinfo_type;
        using difference_type = std::ptrdiff_t;
        using pointer = const addrinfo_type*;
        using reference = const addrinfo_type&;

        iterator() noexcept = default;
        explicit iterator(const addrinfo_type* p) noexcept : p_(p) {}
        reference operator*() const noexcept { return *p_; }
        pointer operator->() const noexcept { return p_; }
        iterator& operator++() noexcept
        {
            p_ = p_->ai_next;
            return *this;
        }
        iterator operator++(int) noexcept
        {
            iterator old = *this;
            ++*this;
            return old;
        }
        friend bool operator==(const iterator&, const iterator&) noexcept = default;

    private:
        const addrinfo_type* p_ = nullptr;
    };

    address_list() noexcept = default;
    explicit address_list(addrinfo_type* head) noexcept : head_(head) {}
    address_list(address_list&& other) noexcept : head_(std::exchange(other.head_, nullptr)) {}
    address_list& operator=(address_list&& other) noexcept
    {
        if (this != &other) {
            reset();
            head_ = std::exchange(other.head_, nullptr);
        }
        return *this;
    }
    address_list(const address_list&) = delete;
    address_list& operator=(const address_list&) = delete;
    ~address_list() { reset(); }

    /// The first entry, or null.
    const addrinfo_type* get() const noexcept { return head_; }
    bool empty() const noexcept { return head_ == nullptr; }
    explicit operator bool() const noexcept { return head_ != nullptr; }
    iterator begin() const noexcept { return iterator(head_); }
    iterator end() const noexcept { return iterator(); }

private:
    void reset() noexcept
    {
        if (head_ != nullptr) {
            Os::freeaddrinfo(std::exchange(head_, nullptr));
        }
    }

    addrinfo_type* head_ = nullptr;
};

namespace detail {

template <class Os>
address_list<Os> getaddrinfo(const char* host, const char* service, int flags, std::error_code& ec) noexcept
{
    typename Os::addrinfo_type hints{};
    hints.ai_family = Os::any_family;
    hints.ai_socktype = Os::stream_type;
    hints.ai_protocol = Os::tcp_protocol;
    hints.ai_flags = flags;
    typename Os::addrinfo_type* head = nullptr;
    const int rc = Os::getaddrinfo(host, service, &hints, &head);
    if (rc != 0) {
        const std::error_code system = Os::system_error(rc);
        ec = system ? system : std::error_code(rc, resolve_category<Os>());
        return address_list<Os>();
    }
    ec.clear();
    return address_list<Os>(head);
}

} // namespace detail

/// The TCP endpoints of host:port (IPv4 and IPv6, in getaddrinfo's order).
/// `host` null: the wildcard address when `passive` (to bind), else the
/// loopback address; a numeric address involves no lookup. `passive`: the
/// addresses are for bind + listen (AI_PASSIVE). On failure the list is empty
/// and `ec` holds the error (see the top of this file); on success `ec` is
/// cleared. Synchronous: a host name may take a DNS round trip.
template <class Os>
address_list<Os> resolve(const char* host, std::uint16_t port, bool passive, std::error_code& ec) noexcept
{
    char service[8];
    std::snprintf(service, sizeof service, "%u", static_cast<unsigned>(port));
    return detail::getaddrinfo<Os>(host, service, Os::numeric_service_flag | (passive ? Os::passive_flag : 0), ec);
}

/// The addresses of `host` (no port: each entry's port is 0), as resolve()
/// reports them. Used to list the addresses a host name stands for.
template <class Os>
address_list<Os> resolve_host(const char* host, std::error_code& ec) noexcept
{
    return detail::getaddrinfo<Os>(host, nullptr, 0, ec);
}

} // namespace asock::net
