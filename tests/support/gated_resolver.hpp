// tests/support/gated_resolver.hpp: an OS layer for asock::net::resolve_async
// (asock/resolve.hpp) whose getaddrinfo the test controls, for the TCP
// helpers' `ResolverOs` parameter, on Linux and Windows alike.
//
// It forwards to the real layer `Base` (posix::resolver_os or
// win32::resolver_os) and records every call (host, whether it was numeric
// only, which thread). A lookup of `blocked_host` without AI_NUMERICHOST
// blocks until the test opens the gate (or a bound runs out, recorded as
// `timed_out`), then resolves "127.0.0.1" instead. Its state is never freed:
// a lookup thread may still be in it when the test (or the process) ends.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace asock_tests {

template <class Base>
struct gated_resolver_os : Base {
    struct call {
        std::string host;
        bool numeric_only = false;
        std::thread::id thread;
    };
    struct state {
        std::mutex mu;
        std::condition_variable cv;
        std::string blocked_host = "blocked.test";
        bool open = false;
        int entered = 0;  ///< blocked lookups that started
        int returned = 0; ///< blocked lookups that returned
        bool timed_out = false;
        std::vector<call> calls;
    };
    static state& st()
    {
        static state* s = new state;
        return *s;
    }
    /// Forgets what was recorded and closes the gate.
    static void reset()
    {
        state& s = st();
        std::lock_guard lk(s.mu);
        s.open = false;
        s.entered = s.returned = 0;
        s.timed_out = false;
        s.calls.clear();
    }
    static void open_gate()
    {
        state& s = st();
        std::lock_guard lk(s.mu);
        s.open = true;
        s.cv.notify_all();
    }
    static int entered()
    {
        std::lock_guard lk(st().mu);
        return st().entered;
    }
    static int returned()
    {
        std::lock_guard lk(st().mu);
        return st().returned;
    }
    static std::vector<call> calls()
    {
        std::lock_guard lk(st().mu);
        return st().calls;
    }

    static int getaddrinfo(const char* host, const char* service, const typename Base::addrinfo_type* hints,
                           typename Base::addrinfo_type** out) noexcept
    {
        state& s = st();
        const bool numeric = (hints->ai_flags & Base::numeric_host_flag) != 0;
        bool blocked = false;
        {
            std::unique_lock lk(s.mu);
            s.calls.push_back(call{host != nullptr ? host : "", numeric, std::this_thread::get_id()});
            if (host != nullptr && s.blocked_host == host && !numeric) {
                blocked = true;
                ++s.entered;
                s.cv.notify_all();
                if (!s.cv.wait_for(lk, std::chrono::seconds(30), [&] { return s.open; })) {
                    s.timed_out = true;
                }
            }
        }
        const int rc = Base::getaddrinfo(blocked ? "127.0.0.1" : host, service, hints, out);
        if (blocked) {
            std::lock_guard lk(s.mu);
            ++s.returned;
            s.cv.notify_all();
        }
        return rc;
    }
};

} // namespace asock_tests
