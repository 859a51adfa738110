// tests/stress/echo_server_main.cpp: the server side of the stress suite's
// connection test, run by stress_test.cpp as a process of its own (see
// echo_protocol.hpp for why, and for the exchange). Not a test by itself.
//
//   stress_echo_server <connections> <max_bytes>
//
// Listens on 127.0.0.1 (an ephemeral port), accepts <connections>
// connections on an engine of two threads and echoes each one, checking
// every byte it receives. Reports on stdout, one line each:
//
//   port <port>                  listening
//   accepted <count>             every 256 accepts, and when all are accepted
//   failure <text>               the first failures, at the end
//   done <ok> <bytes> <failures> every connection finished (or stdin ended)
//
// End of file on stdin means "stop now": the test finished or died. The
// process exits 0 when every connection echoed every byte.
#include "echo_protocol.hpp"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include <unistd.h>

using namespace std::chrono_literals;

namespace {

std::mutex report_mu;

void report(const char* fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = std::vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    n = std::min<int>(n, static_cast<int>(sizeof line) - 2);
    line[n++] = '\n';
    std::lock_guard lk(report_mu);
    for (int off = 0; off < n;) {
        const ssize_t w = ::write(STDOUT_FILENO, line + off, static_cast<std::size_t>(n - off));
        if (w <= 0) {
            return; // the test is gone
        }
        off += static_cast<int>(w);
    }
}

struct accept_report {
    int total;
};

void on_accepted(int count, void* context)
{
    const int total = static_cast<accept_report*>(context)->total;
    if (count % 256 == 0 || count == total) {
        report("accepted %d", count);
    }
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s <connections> <max_bytes>\n", argv[0]);
        return 2;
    }
    const int n = std::atoi(argv[1]);
    const auto max_bytes = static_cast<std::uint32_t>(std::strtoul(argv[2], nullptr, 10));
    if (n <= 0 || max_bytes == 0) {
        std::fprintf(stderr, "stress_echo_server: bad arguments\n");
        return 2;
    }
    const auto wanted = static_cast<rlim_t>(n + 64);
    if (const rlim_t limit = stress::raise_nofile(wanted); limit < wanted) {
        report("failure RLIMIT_NOFILE is %llu, %llu needed", static_cast<unsigned long long>(limit),
               static_cast<unsigned long long>(wanted));
        report("done 0 0 1");
        return 1;
    }

    // End of input: the test is done with us, or died. Detached: it may stay
    // blocked in read() until the process exits.
    static std::atomic<bool> input_closed{false};
    std::thread([] {
        char buf[64];
        while (::read(STDIN_FILENO, buf, sizeof buf) > 0) {
        }
        input_closed.store(true);
    }).detach();

    int exit_code = 1;
    {
        auto engine = asock::make_engine({.threads = 2});
        if (!engine) {
            report("failure make_engine");
            report("done 0 0 1");
            return 1;
        }
        auto listened = asock::tcp_listener_t::listen(*engine, "127.0.0.1", 0);
        if (!listened) {
            report("failure listen: %s", listened.error.message().c_str());
            report("done 0 0 1");
            return 1;
        }
        asock::tcp_listener_t& listener = listened.listener;
        stress::echo::server_context ctx;
        ctx.max_bytes = max_bytes;
        accept_report ar{n};
        ctx.on_accepted = &on_accepted;
        ctx.on_accepted_context = &ar;
        report("port %u", static_cast<unsigned>(listener.port()));
        asock::spawn(stress::echo::accept_loop(ctx, listener));

        // Bounded by the test's own watchdog (it closes our input when it
        // gives up or dies), and by this one.
        stress::phase_watchdog watchdog("stress_echo_server", 540s, [&] {
            return "accepted " + std::to_string(ctx.accepted.load()) + ", done " +
                   std::to_string(ctx.server_done.load()) + "; " + ctx.fails.summary();
        });
        while (ctx.server_done.load() < n && !input_closed.load()) {
            std::this_thread::sleep_for(1ms);
        }
        const bool all_done = ctx.server_done.load() == n;
        if (all_done) {
            listener.close(); // ends the accept loop
            stress::wait_or_die("the accept loop to end", 30s, [&] { return ctx.accept_loop_done.load(); },
                                [] { return std::string(); });
        }
        const std::string summary = ctx.fails.summary();
        std::size_t pos = 0;
        while ((pos = summary.find("\n  - ", pos)) != std::string::npos) {
            pos += 5;
            const std::size_t end = summary.find('\n', pos);
            report("failure %s", summary.substr(pos, end == std::string::npos ? std::string::npos : end - pos).c_str());
        }
        report("done %d %llu %d", ctx.server_ok.load(), static_cast<unsigned long long>(ctx.server_bytes.load()),
               ctx.fails.count() + (all_done ? 0 : 1));
        if (!all_done) {
            // Sessions are still running on the engine's threads: no orderly teardown.
            std::fflush(nullptr);
            std::_Exit(1);
        }
        exit_code = ctx.fails.count() == 0 && ctx.server_ok.load() == n ? 0 : 1;
    }
    return exit_code;
}
