// tests/integration/platform_test.cpp: what is written once for every backend
// and what the build chooses: name resolution (asock/resolve.hpp) over a
// scripted OS layer and over POSIX's getaddrinfo, the errors the TCP helpers
// report for it and for a refused connect, the platform traits
// (asock::platform_traits) and the default backend (asock/default_platform.hpp).
#include "integration_support.hpp"

#include <asock/resolve.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <netdb.h>

namespace {

// ---- a scripted OS layer for asock::net::resolve ---------------------------------

struct fake_addrinfo {
    int ai_flags = 0;
    int ai_family = 0;
    int ai_socktype = 0;
    int ai_protocol = 0;
    int id = 0;
    fake_addrinfo* ai_next = nullptr;
};

struct fake_resolver_state {
    int result = 0;                      ///< what getaddrinfo returns
    bool system = false;                 ///< result is a "system" failure (EAI_SYSTEM-like)
    int entries = 0;                     ///< how many entries a success gives
    std::vector<fake_addrinfo*> lists;   ///< lists handed out, not yet freed
    int frees = 0;
    // What the last call was given.
    bool host_null = false;
    std::string host;
    bool service_null = false;
    std::string service;
    fake_addrinfo hints;
};

inline fake_resolver_state fr;

struct fake_resolver_os {
    using addrinfo_type = fake_addrinfo;
    static constexpr int any_family = 100;
    static constexpr int stream_type = 200;
    static constexpr int tcp_protocol = 300;
    static constexpr int passive_flag = 0x10;
    static constexpr int numeric_service_flag = 0x01;

    static int getaddrinfo(const char* host, const char* service, const addrinfo_type* hints,
                           addrinfo_type** out) noexcept
    {
        fr.host_null = host == nullptr;
        fr.host = host != nullptr ? host : "";
        fr.service_null = service == nullptr;
        fr.service = service != nullptr ? service : "";
        fr.hints = *hints;
        if (fr.result != 0) {
            return fr.result;
        }
        fake_addrinfo* head = nullptr;
        for (int i = fr.entries; i >= 1; --i) {
            head = new fake_addrinfo{0, 0, 0, 0, i, head};
        }
        fr.lists.push_back(head);
        *out = head;
        return 0;
    }
    static void freeaddrinfo(addrinfo_type* list) noexcept
    {
        ++fr.frees;
        std::erase(fr.lists, list);
        while (list != nullptr) {
            delete std::exchange(list, list->ai_next);
        }
    }
    static std::error_code system_error(int code) noexcept
    {
        return fr.system ? std::error_code(code, std::generic_category()) : std::error_code();
    }
    static std::string message(int code) { return "fake resolve error " + std::to_string(code); }
};

/// The same layer with a portable condition for its codes.
struct fake_resolver_os_with_condition : fake_resolver_os {
    static std::error_condition condition(int code) noexcept
    {
        return code == 7 ? std::make_error_condition(std::errc::not_enough_memory)
                         : std::error_condition(code, asock::net::resolve_category<fake_resolver_os_with_condition>());
    }
};

void reset_fake()
{
    fr = fake_resolver_state{};
}

// ---- platform policies with and without traits ---------------------------------------

struct policy_without_traits {
    struct engine_options {
        int marker = 42;
    };
};

struct policy_with_traits {
    struct engine_options {
        unsigned lo = 0;
        unsigned hi = 0;
    };
    static constexpr bool supports_notify_io = false;
    static constexpr bool supports_custom_transport = false;
    static constexpr bool accepts_null_engine = false;
    static constexpr bool wants_blocking_handles = true;
    static inline int started = 0;
    static bool start_socket_library() noexcept
    {
        ++started;
        return false;
    }
    static void stop_socket_library() noexcept { --started; }
    static engine_options engine_options_for(std::uint32_t lo, std::uint32_t hi) noexcept
    {
        return {static_cast<unsigned>(lo), static_cast<unsigned>(hi)};
    }
};

struct wrong_kind_of_trait {
    static constexpr int supports_notify_io = 1; // not a bool
};

} // namespace

// ==== name resolution, written once =================================================

TEST_CASE("resolve: the hints, the service and the flags are the same for every OS layer", "[platform][resolve]")
{
    reset_fake();
    fr.entries = 3;
    std::error_code ec = std::make_error_code(std::errc::io_error);
    {
        const auto list = asock::net::resolve<fake_resolver_os>("example", 8080, false, ec);
        CHECK_FALSE(ec); // cleared on success
        CHECK_FALSE(fr.host_null);
        CHECK(fr.host == "example");
        CHECK(fr.service == "8080");
        CHECK(fr.hints.ai_family == fake_resolver_os::any_family);
        CHECK(fr.hints.ai_socktype == fake_resolver_os::stream_type);
        CHECK(fr.hints.ai_protocol == fake_resolver_os::tcp_protocol);
        CHECK(fr.hints.ai_flags == fake_resolver_os::numeric_service_flag);
        std::vector<int> ids;
        for (const fake_addrinfo& ai : list) {
            ids.push_back(ai.id);
        }
        CHECK(ids == std::vector<int>{1, 2, 3}); // getaddrinfo's order
        CHECK_FALSE(list.empty());
        CHECK(fr.frees == 0);
    }
    CHECK(fr.frees == 1); // the list frees itself, once
    CHECK(fr.lists.empty());

    // Passive (to bind), no host, port 0.
    {
        const auto list = asock::net::resolve<fake_resolver_os>(nullptr, 0, true, ec);
        CHECK(fr.host_null);
        CHECK(fr.service == "0");
        CHECK(fr.hints.ai_flags == (fake_resolver_os::numeric_service_flag | fake_resolver_os::passive_flag));
    }
    // A host's addresses: no service, no flags.
    {
        const auto list = asock::net::resolve_host<fake_resolver_os>("me", ec);
        CHECK(fr.service_null);
        CHECK(fr.hints.ai_flags == 0);
        CHECK(fr.hints.ai_protocol == fake_resolver_os::tcp_protocol);
    }
    CHECK(fr.frees == 3);
    CHECK(fr.lists.empty());
}

TEST_CASE("resolve: an address list moves, and frees what it holds exactly once", "[platform][resolve]")
{
    reset_fake();
    fr.entries = 1;
    std::error_code ec;
    {
        auto a = asock::net::resolve<fake_resolver_os>("a", 1, false, ec);
        auto b = std::move(a);
        CHECK(a.empty());
        CHECK_FALSE(b.empty());
        auto c = asock::net::resolve<fake_resolver_os>("c", 2, false, ec);
        c = std::move(b); // frees c's own list
        CHECK(fr.frees == 1);
        CHECK(c.get() != nullptr);
        CHECK(c.get()->id == 1);
    }
    CHECK(fr.frees == 2);
    CHECK(fr.lists.empty());
}

TEST_CASE("resolve: a failure is its code in the resolve category, or the OS layer's system error",
          "[platform][resolve]")
{
    reset_fake();
    std::error_code ec;
    fr.result = 5;
    const auto failed = asock::net::resolve<fake_resolver_os>("nowhere", 80, false, ec);
    CHECK(failed.empty());
    CHECK(ec.value() == 5);
    CHECK(ec.category() == asock::net::resolve_category<fake_resolver_os>());
    CHECK(std::string_view(ec.category().name()) == "asock.resolve");
    CHECK(ec.message() == "fake resolve error 5");
    CHECK(ec.default_error_condition() == std::error_condition(5, ec.category())); // no condition: itself
    CHECK(fr.frees == 0); // nothing to free

    fr.system = true;
    fr.result = 9;
    const auto system = asock::net::resolve<fake_resolver_os>("nowhere", 80, false, ec);
    CHECK(system.empty());
    CHECK(ec == std::error_code(9, std::generic_category()));

    // An OS layer with conditions gives them.
    fr.system = false;
    fr.result = 7;
    const auto with = asock::net::resolve<fake_resolver_os_with_condition>("nowhere", 80, false, ec);
    CHECK(ec == std::errc::not_enough_memory);
    CHECK(ec.category() == asock::net::resolve_category<fake_resolver_os_with_condition>());
}

TEST_CASE("resolve over getaddrinfo: numeric and named hosts, and the errors the TCP helpers report",
          "[platform][resolve][tcp]")
{
    std::error_code ec;
    const auto loopback = asock::net::resolve<asock::posix::resolver_os>("127.0.0.1", 4242, false, ec);
    REQUIRE_FALSE(ec);
    REQUIRE_FALSE(loopback.empty());
    for (const addrinfo& ai : loopback) {
        CHECK(ai.ai_family == AF_INET);
        CHECK(ai.ai_socktype == SOCK_STREAM);
        sockaddr_in a;
        std::memcpy(&a, ai.ai_addr, sizeof a);
        CHECK(ntohs(a.sin_port) == 4242);
    }
    const auto local = asock::net::resolve<asock::posix::resolver_os>("localhost", 1, false, ec);
    CHECK_FALSE(ec);
    CHECK_FALSE(local.empty());

    // An unresolvable name: the EAI_* code in asock::resolve_category(), with
    // gai_strerror's text (EAI_SYSTEM would be an errno in std::system_category()).
    const auto none = asock::net::resolve<asock::posix::resolver_os>("not a valid address at all", 80, false, ec);
    CHECK(none.empty());
    REQUIRE(ec);
    if (ec.category() == asock::resolve_category()) {
        CHECK(ec.message() == ::gai_strerror(ec.value()));
        CHECK(std::string_view(ec.category().name()) == "asock.resolve");
    } else {
        CHECK(ec.category() == std::system_category());
    }
    CHECK_FALSE(ec.message().empty());

    // The TCP helpers report the same error for the same name.
    auto engine = asock::make_engine({.threads = 1});
    REQUIRE(engine);
    auto listened = asock::tcp_listener_t::listen(*engine, "not a valid address at all", 0);
    CHECK_FALSE(listened);
    CHECK(listened.error == ec);
    CHECK_FALSE(listened.listener.valid());
    auto connected = it::run(*engine, asock::connect(*engine, "not a valid address at all", 80));
    CHECK_FALSE(connected);
    CHECK(connected.error == ec);
    CHECK_FALSE(connected.socket.valid());
    it::drain(*engine);
}

TEST_CASE("a refused connect: connection_refused, with the system's message", "[platform][tcp]")
{
    auto engine = asock::make_engine({.threads = 1});
    REQUIRE(engine);
    // A bound socket that does not listen: connecting to its port is refused.
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);

    const auto outcome = it::run(*engine, asock::connect(*engine, "127.0.0.1", ntohs(addr.sin_port)));
    ::close(fd);
    CHECK_FALSE(outcome);
    CHECK(outcome.error == std::errc::connection_refused);
    const std::string message = outcome.error.message();
    INFO(outcome.error.category().name() << ":" << outcome.error.value() << " " << message);
    CHECK_FALSE(message.empty());
    CHECK(message != "Unknown error");
    CHECK(message == std::make_error_code(std::errc::connection_refused).message());
    it::drain(*engine);
}

// ==== platform traits and the default backend ==========================================

TEST_CASE("platform_traits: a policy's own traits, or the defaults", "[platform][traits]")
{
    using none = asock::platform_traits<policy_without_traits>;
    STATIC_REQUIRE(none::supports_notify_io);
    STATIC_REQUIRE(none::supports_custom_transport);
    STATIC_REQUIRE(none::accepts_null_engine);
    STATIC_REQUIRE_FALSE(none::wants_blocking_handles);
    CHECK(none::start_socket_library());
    none::stop_socket_library();
    CHECK(none::engine_options_for(3, 9).marker == 42); // the engine's default options

    using own = asock::platform_traits<policy_with_traits>;
    STATIC_REQUIRE_FALSE(own::supports_notify_io);
    STATIC_REQUIRE_FALSE(own::supports_custom_transport);
    STATIC_REQUIRE_FALSE(own::accepts_null_engine);
    STATIC_REQUIRE(own::wants_blocking_handles);
    CHECK_FALSE(own::start_socket_library());
    CHECK(policy_with_traits::started == 1);
    own::stop_socket_library();
    CHECK(policy_with_traits::started == 0);
    const auto options = own::engine_options_for(3, 9);
    CHECK(options.lo == 3);
    CHECK(options.hi == 9);

    STATIC_REQUIRE(asock::detail::valid_optional_traits<policy_without_traits>);
    STATIC_REQUIRE(asock::detail::valid_optional_traits<policy_with_traits>);
    STATIC_REQUIRE_FALSE(asock::detail::valid_optional_traits<wrong_kind_of_trait>);
}

TEST_CASE("the default backend here is epoll, and its policy states every trait", "[platform][traits]")
{
    STATIC_REQUIRE(std::is_same_v<asock::default_platform, asock::linux_epoll::epoll_platform>);
    CHECK(std::string_view(asock::default_backend_name) == "epoll");
    STATIC_REQUIRE(asock::platform_policy<asock::default_platform>);
    using traits = asock::platform_traits<asock::default_platform>;
    STATIC_REQUIRE(traits::supports_notify_io);
    STATIC_REQUIRE(traits::supports_custom_transport);
    STATIC_REQUIRE(traits::accepts_null_engine);
    STATIC_REQUIRE_FALSE(traits::wants_blocking_handles);
    CHECK(traits::start_socket_library());
    traits::stop_socket_library();
    CHECK(traits::engine_options_for(0, 0).threads == 1); // C callers cannot run the loop: at least one
    CHECK(traits::engine_options_for(3, 8).threads == 3);
}
