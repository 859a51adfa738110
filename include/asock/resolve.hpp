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
// resolve_async (below, for the TCP helpers' connect) also needs:
//
//   static constexpr int numeric_host_flag;                     // AI_NUMERICHOST
//   struct thread_scope;  // optional: held by the lookup thread while it runs
//                         // (Windows: a WSAStartup / WSACleanup pair)
//
// Errors: a getaddrinfo failure is reported as its code in
// resolve_category<Os>() ("asock.resolve": EAI_* codes on POSIX, the WSA codes
// getaddrinfo returns on Windows), except what Os::system_error maps elsewhere.
// Windows needs Winsock started (WSAStartup) before a resolution; an engine or
// a C socket transport holds it started.
//
// resolve_async: resolution that never blocks an engine thread.
//
// resolve() calls getaddrinfo on the calling thread, and a host name may take
// a DNS round trip (seconds, when a name server does not answer). The TCP
// helpers' connect may run on an engine thread, where that would stall every
// socket of the engine, so it awaits resolve_async(engine, host, port, token):
//
// - A numeric host (an IPv4 or IPv6 literal) or an empty one (the loopback
//   address) is resolved inline, with AI_NUMERICHOST | AI_NUMERICSERV: no
//   lookup, nothing blocks, the coroutine does not suspend.
// - Any other name is looked up on a new thread of its own (std::thread,
//   detached), which shares a small heap block (detail::resolve_job) with the
//   awaiter. When the lookup ends, that thread posts the resumption to
//   `engine` (engine.post), so the coroutine resumes on an engine thread, or
//   inside run() / run_one() / poll() for an engine with `threads = 0`.
// - A stop request on `token` while the lookup runs resumes the coroutine at
//   once, through the same post, with std::errc::operation_canceled. The
//   lookup itself cannot be interrupted: its thread runs on, and when it ends
//   it finds the outcome already decided, frees its result (freeaddrinfo) and
//   the shared block (whichever side lets go last frees it) and touches
//   nothing else: neither the coroutine frame nor the engine.
// - Whichever of "lookup done" and "stop requested" comes first decides the
//   outcome (one atomic status word); the other does nothing.
// - The engine: while the coroutine waits, the awaitable holds a reference on
//   the engine (as a socket does), so the engine outlives the wait even when
//   every other reference goes. The side that decides the outcome takes its
//   own reference around its post and drops it after, so the post never
//   touches a destroyed engine; that drop may be the last one (the engine is
//   then destroyed on that thread, as engine_ref's destructor would). Once the
//   outcome is decided by a stop request, the lookup thread never touches the
//   engine again, so destroying the engine while a cancelled lookup is still
//   running is safe. An engine with `threads = 0` whose loop nobody runs
//   keeps the resumption queued: it runs when the loop runs, or when the
//   engine is destroyed (its leftover work runs then).
// - Allocates (the shared block, the thread); when either fails the
//   coroutine does not suspend and gets std::errc::not_enough_memory or
//   std::errc::resource_unavailable_try_again.
#pragma once

#include <asock/detail/operation.hpp>
#include <asock/detail/sync_wait_probe.hpp>

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <new>
#include <optional>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
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

/// resolve() for a numeric host only (AI_NUMERICHOST): an IPv4 or IPv6
/// literal, or null (the loopback or wildcard address). Never looks a name up;
/// a name fails with the OS layer's code for "not numeric" (EAI_NONAME).
template <class Os>
address_list<Os> resolve_numeric(const char* host, std::uint16_t port, bool passive, std::error_code& ec) noexcept
{
    char service[8];
    std::snprintf(service, sizeof service, "%u", static_cast<unsigned>(port));
    return detail::getaddrinfo<Os>(host, service,
                                   Os::numeric_host_flag | Os::numeric_service_flag | (passive ? Os::passive_flag : 0),
                                   ec);
}

/// What resolve_async produces: an error, or the addresses (for connect).
template <class Os>
struct resolve_outcome {
    std::error_code error;
    address_list<Os> addresses;
    explicit operator bool() const noexcept { return !error; }
};

namespace detail {

/// What a lookup thread holds while it runs: the OS layer's thread_scope, if any.
template <class Os>
struct lookup_scope {};
template <class Os>
    requires requires { typename Os::thread_scope; }
struct lookup_scope<Os> {
    typename Os::thread_scope scope;
};

/// The block a background lookup shares with its awaiter (see the top of
/// this file). Two references: the awaiter's and the lookup thread's.
template <class Os, class Engine>
struct resolve_job : asock::detail::work_item {
    // status bits: who decided the outcome, and whether the awaiter is suspended.
    static constexpr unsigned found = 1;     ///< the lookup finished first
    static constexpr unsigned cancelled = 2; ///< a stop request came first
    static constexpr unsigned decided = found | cancelled;
    static constexpr unsigned armed = 4; ///< await_suspend is done: resume through the engine

    std::atomic<unsigned> status{0};
    std::atomic<unsigned> refs{1};
    std::string host; ///< empty: no host (resolved inline, as numeric, before it gets here)
    std::uint16_t port = 0;
    Engine* engine = nullptr;           ///< touched only by the side that decides, while the awaiter waits
    std::coroutine_handle<> handle;
    address_list<Os> addresses;         ///< written by the lookup thread before it decides
    std::error_code error;              ///< likewise

    void release() noexcept
    {
        if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            delete this;
        }
    }

    /// Decides the outcome as `who` unless it was decided already. When the
    /// awaiter is suspended (armed), posts its resumption to the engine;
    /// otherwise await_suspend is still running and sees the decision itself.
    void decide(unsigned who) noexcept
    {
        unsigned s = status.load(std::memory_order_acquire);
        do {
            if ((s & decided) != 0) {
                return; // the other side came first: touch nothing but this block
            }
        } while (!status.compare_exchange_weak(s, s | who, std::memory_order_acq_rel, std::memory_order_acquire));
        if ((s & armed) != 0) {
            // The awaiter holds a reference on the engine until it resumes,
            // so the engine is alive here. This reference keeps it alive
            // during post() itself, which the resumed coroutine may outrun.
            Engine* e = engine;
            e->inc_ref();
            run = &run_resume;
            e->post(this); // from here on this block may be gone
            e->dec_ref();
        }
    }

    static void run_resume(asock::detail::work_item* w) noexcept
    {
        static_cast<resolve_job*>(w)->handle.resume();
    }

    /// The lookup thread's body: resolve, decide, let go.
    static void lookup(resolve_job* job) noexcept
    {
        {
            [[maybe_unused]] const lookup_scope<Os> scope;
            std::error_code ec;
            address_list<Os> list =
                resolve<Os>(job->host.empty() ? nullptr : job->host.c_str(), job->port, false, ec);
            job->addresses = std::move(list);
            job->error = ec;
            job->decide(found);
            job->release(); // may free the list; inside the scope (Winsock still started)
        }
    }
};

} // namespace detail

/// The awaitable of resolve_async (see the top of this file). Create and
/// await it in one expression.
template <class Os, class Engine>
class resolve_awaitable {
    using job_type = detail::resolve_job<Os, Engine>;

public:
    resolve_awaitable(Engine& engine, std::string host, std::uint16_t port, std::stop_token token) noexcept
        : engine_(&engine), host_(std::move(host)), port_(port), token_(std::move(token))
    {
    }
    resolve_awaitable(const resolve_awaitable&) = delete;
    resolve_awaitable& operator=(const resolve_awaitable&) = delete;
    ~resolve_awaitable()
    {
        stop_cb_.reset(); // waits for a stop handler running on another thread
        if (job_ != nullptr) {
            job_->release();
        }
        if (holds_engine_) {
            engine_->dec_ref();
        }
    }

    /// A stop request already made, or a numeric (or empty) host: done
    /// without suspending.
    bool await_ready() noexcept
    {
        if (token_.stop_requested()) {
            outcome_.error = std::make_error_code(std::errc::operation_canceled);
            return true;
        }
        std::error_code ec;
        address_list<Os> list = resolve_numeric<Os>(host_.empty() ? nullptr : host_.c_str(), port_, false, ec);
        if (!ec) {
            outcome_.addresses = std::move(list);
            return true;
        }
        return false; // a name (or a literal getaddrinfo refused): the lookup thread says which
    }

    bool await_suspend(std::coroutine_handle<> h) noexcept
    {
        job_ = new (std::nothrow) job_type;
        if (job_ == nullptr) {
            outcome_.error = std::make_error_code(std::errc::not_enough_memory);
            return false;
        }
        job_->host = std::move(host_);
        job_->port = port_;
        job_->engine = engine_;
        job_->handle = h;
        engine_->inc_ref();
        holds_engine_ = true;
        job_->refs.store(2, std::memory_order_relaxed); // this awaitable + the lookup thread
        try {
            std::thread(&job_type::lookup, job_).detach();
        } catch (...) {
            job_->refs.store(1, std::memory_order_relaxed);
            outcome_.error = std::make_error_code(std::errc::resource_unavailable_try_again);
            job_->release();
            job_ = nullptr;
            return false;
        }
        // Under sync_wait(awaitable) on this thread: tell it which engine the
        // wait depends on (detail/sync_wait_probe.hpp).
        asock::detail::sync_wait_probe* const probe = asock::detail::tls_sync_wait;
        if (probe != nullptr) {
            asock::detail::note_suspension(probe, *engine_);
        }
        if (token_.stop_possible()) {
            // May run the handler at once (stop requested meanwhile): it then
            // decides `cancelled` without posting, as the job is not armed.
            stop_cb_.emplace(token_, stop_handler{job_});
        }
        // From here on the coroutine may be resumed on another thread as soon
        // as the job is armed: touch nothing of `this` after the fetch_or.
        const unsigned before = job_->status.fetch_or(job_type::armed, std::memory_order_acq_rel);
        const bool suspended = (before & job_type::decided) == 0;
        if (probe != nullptr && !suspended) {
            probe->engine = nullptr;
        }
        return suspended;
    }

    resolve_outcome<Os> await_resume() noexcept
    {
        if (job_ != nullptr) {
            if ((job_->status.load(std::memory_order_acquire) & job_type::found) != 0) {
                outcome_.error = job_->error;
                outcome_.addresses = std::move(job_->addresses);
            } else {
                outcome_.error = std::make_error_code(std::errc::operation_canceled);
            }
        }
        return std::move(outcome_);
    }

private:
    struct stop_handler {
        job_type* job;
        void operator()() const noexcept { job->decide(job_type::cancelled); }
    };

    Engine* engine_;
    bool holds_engine_ = false;
    std::string host_;
    std::uint16_t port_;
    std::stop_token token_;
    job_type* job_ = nullptr;
    resolve_outcome<Os> outcome_;
    // Last: destroyed first (the handler may be running on another thread).
    std::optional<std::stop_callback<stop_handler>> stop_cb_;
};

/// The TCP endpoints of host:port for connect, without blocking an engine
/// thread: awaitable, gives a resolve_outcome<Os>. See the top of this file
/// for which thread looks up, where the coroutine resumes, and cancellation.
template <class Os, class Engine>
resolve_awaitable<Os, Engine> resolve_async(Engine& engine, std::string host, std::uint16_t port,
                                            std::stop_token token = {}) noexcept
{
    return resolve_awaitable<Os, Engine>(engine, std::move(host), port, std::move(token));
}

} // namespace asock::net
