// benchmarks/driver.cpp: the benchmark binary's main(): runs one workload on
// one implementation and prints one JSON line with the steady-state figures.
//
//   asock_bench --list
//   asock_bench --impl NAME --workload pingpong|bulk|churn|fairness [--connections N]
//               [--message-size N] [--chunk-size N] [--warmup N] [--count N] [--latency]
//
// Steady state is the interval between two thresholds of the progress the
// implementation reports: `warmup` units done, then `warmup + count` units done.
// Time and heap allocations (alloc_hook.c) are taken over that interval only,
// so set-up and tear-down are excluded. (Instructions are counted from outside:
// benchmarks/run.py runs this program under callgrind with two counts and
// takes the difference.)
#include "alloc_hook.h"
#include "bench.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <time.h>


struct bench_run {
    std::uint64_t warmup_end = 0;  // units done when the measurement starts
    std::uint64_t measure_end = 0; // units done when it ends
    std::uint64_t done = 0;
    bool started = false;
    bool ended = false;
    std::uint64_t t_start = 0;
    std::uint64_t t_end = 0;
    std::uint64_t allocs_start = 0;
    std::uint64_t allocs_end = 0;
    rusage usage_start{};
    rusage usage_end{};
    bool latency = false;
    std::vector<std::uint64_t> stamps; // completion times of measured units (latency mode)
    std::size_t nstamps = 0;
    // BENCH_FAIRNESS: round-trip times (ns) alone [0] and loaded [1]; the
    // stream's bytes and nanoseconds alone [0] and loaded [1].
    std::vector<std::uint64_t> fair_rtt[2];
    std::uint64_t fair_bytes[2] = {0, 0};
    std::uint64_t fair_ns[2] = {0, 0};
    std::atomic<bool> failed{false};
    std::mutex error_mu;
    std::string error;
};

namespace {

std::uint64_t now_ns() noexcept
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

const bench_impl* const all_impls[] = {
    &bench_impl_epoll,
    &bench_impl_asock,
    &bench_impl_asock_timeout,
#ifdef ASOCK_BENCH_HAVE_SHIM
    &bench_impl_asock_c,
    &bench_impl_asock_c_default,
#endif
#ifdef ASOCK_BENCH_HAVE_URING
    &bench_impl_uring,
#endif
#ifdef ASOCK_BENCH_HAVE_ASIO
    &bench_impl_asio,
#endif
#ifdef ASOCK_BENCH_HAVE_LIBUV
    &bench_impl_libuv,
#endif
};

[[noreturn]] void usage(const char* why)
{
    std::fprintf(stderr,
                 "asock_bench: %s\n"
                 "usage: asock_bench --list\n"
                 "       asock_bench --impl NAME --workload pingpong|bulk|churn|fairness [--connections N]\n"
                 "                   [--message-size N] [--chunk-size N] [--warmup N] [--count N] [--latency]\n",
                 why);
    std::exit(2);
}

std::uint64_t parse_number(const char* s, const char* option)
{
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        usage((std::string("bad number for ") + option).c_str());
    }
    return v;
}

std::string json_escape(std::string_view s)
{
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            out += ' ';
        } else {
            out += c;
        }
    }
    return out;
}

double seconds_between(const timeval& a, const timeval& b)
{
    return static_cast<double>(b.tv_sec - a.tv_sec) + static_cast<double>(b.tv_usec - a.tv_usec) / 1e6;
}

double percentile(std::vector<double>& v, double p)
{
    if (v.empty()) {
        return 0;
    }
    const std::size_t k = std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

// BENCH_FAIRNESS's bounds: under the stream, the ping-pong's p99 round trip
// stays below 10 times its p99 alone, and the stream keeps at least half the
// throughput it has alone.
constexpr double fair_latency_bound = 10.0;
constexpr double fair_stream_bound = 0.5;

int report_fairness(const bench_impl& impl, const bench_config& cfg, bench_run& run, std::uint64_t count);

} // namespace

extern "C" void bench_progress(bench_run* run, std::uint64_t units)
{
    run->done += units;
    if (!run->started && run->done >= run->warmup_end) {
        run->started = true;
        run->allocs_start = bench_allocations();
        getrusage(RUSAGE_SELF, &run->usage_start);
        run->t_start = now_ns();
        if (run->latency) {
            run->stamps[run->nstamps++] = run->t_start;
        }
        if (run->done < run->measure_end) {
            return;
        }
    }
    if (run->started && !run->ended) {
        const std::uint64_t t = now_ns();
        if (run->latency && run->nstamps < run->stamps.size()) {
            run->stamps[run->nstamps++] = t;
        }
        if (run->done >= run->measure_end) {
            run->ended = true;
            run->t_end = t;
            getrusage(RUSAGE_SELF, &run->usage_end);
            run->allocs_end = bench_allocations();
        }
    }
}

extern "C" void bench_fail(bench_run* run, const char* what, int error_number)
{
    std::lock_guard lk(run->error_mu);
    if (!run->failed.load()) {
        run->error = what;
        if (error_number != 0) {
            run->error += ": ";
            run->error += std::strerror(error_number);
        }
        run->failed.store(true);
    }
}

extern "C" int bench_failed(const bench_run* run) { return run->failed.load() ? 1 : 0; }

extern "C" std::uint64_t bench_now_ns(void) { return now_ns(); }

extern "C" void bench_fair_round_trip(bench_run* run, int loaded, std::uint64_t nanoseconds)
{
    run->fair_rtt[loaded != 0 ? 1 : 0].push_back(nanoseconds);
}

extern "C" void bench_fair_stream(bench_run* run, int loaded, std::uint64_t bytes, std::uint64_t nanoseconds)
{
    run->fair_bytes[loaded != 0 ? 1 : 0] += bytes;
    run->fair_ns[loaded != 0 ? 1 : 0] += nanoseconds;
}

extern "C" void bench_nap(void) { std::this_thread::sleep_for(std::chrono::milliseconds(1)); }

int main(int argc, char** argv)
{
    std::signal(SIGPIPE, SIG_IGN);
    std::string impl_name;
    std::string workload = "pingpong";
    bench_config cfg{};
    cfg.connections = 1;
    cfg.message_size = 64;
    cfg.chunk_size = 64 * 1024;
    std::uint64_t warmup = 0;
    std::uint64_t count = 0;
    bool latency = false;
    bool chunk_given = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) {
                usage((std::string("missing value for ") + argv[i]).c_str());
            }
            return argv[++i];
        };
        if (a == "--list") {
            for (const bench_impl* impl : all_impls) {
                std::printf("%s\t%s\n", impl->name, impl->label);
            }
            return 0;
        } else if (a == "--impl") {
            impl_name = value();
        } else if (a == "--workload") {
            workload = value();
        } else if (a == "--connections") {
            cfg.connections = static_cast<std::uint32_t>(parse_number(value(), "--connections"));
        } else if (a == "--message-size") {
            cfg.message_size = static_cast<std::uint32_t>(parse_number(value(), "--message-size"));
        } else if (a == "--chunk-size") {
            cfg.chunk_size = static_cast<std::uint32_t>(parse_number(value(), "--chunk-size"));
            chunk_given = true;
        } else if (a == "--warmup") {
            warmup = parse_number(value(), "--warmup");
        } else if (a == "--count") {
            count = parse_number(value(), "--count");
        } else if (a == "--latency") {
            latency = true;
        } else {
            usage((std::string("unknown option ") + argv[i]).c_str());
        }
    }
    const bench_impl* impl = nullptr;
    for (const bench_impl* candidate : all_impls) {
        if (impl_name == candidate->name) {
            impl = candidate;
        }
    }
    if (impl == nullptr) {
        usage(("unknown or missing --impl '" + impl_name + "' (see --list)").c_str());
    }
    if (workload == "pingpong") {
        cfg.workload = BENCH_PINGPONG;
        warmup = warmup != 0 ? warmup : 2000;
        count = count != 0 ? count : 20000;
    } else if (workload == "bulk") {
        cfg.workload = BENCH_BULK;
        cfg.connections = 1;
        warmup = warmup != 0 ? warmup : 64ull << 20;
        count = count != 0 ? count : 1ull << 30;
    } else if (workload == "churn") {
        cfg.workload = BENCH_CHURN;
        cfg.connections = 1;
        warmup = warmup != 0 ? warmup : 200;
        count = count != 0 ? count : 3000;
    } else if (workload == "fairness") {
        cfg.workload = BENCH_FAIRNESS;
        cfg.connections = 1;
        // 1 KiB receives: slower than the source's 64 KiB sends, so the
        // stream's receives always find data.
        cfg.chunk_size = chunk_given ? cfg.chunk_size : 1024;
        warmup = warmup != 0 ? warmup : 1000;
        count = count != 0 ? count : 5000;
        if (impl->fairness == nullptr) {
            usage(("implementation '" + impl_name + "' has no fairness workload").c_str());
        }
    } else {
        usage("unknown workload");
    }
    if (cfg.connections == 0 || cfg.connections > 4096 || cfg.message_size == 0 ||
        cfg.message_size > BENCH_MAX_MESSAGE || cfg.chunk_size == 0 || cfg.chunk_size > BENCH_MAX_CHUNK) {
        usage("--connections, --message-size or --chunk-size out of range");
    }
    cfg.total = warmup + count;
    cfg.warmup = warmup;

    bench_run run;
    run.warmup_end = warmup;
    run.measure_end = warmup + count;
    run.latency = latency && cfg.workload == BENCH_PINGPONG && cfg.connections == 1;
    if (run.latency) {
        run.stamps.resize(count + 1);
    }

    if (cfg.workload == BENCH_FAIRNESS) {
        return report_fairness(*impl, cfg, run, count);
    }
    const int rc = impl->run(&cfg, &run);
    if (rc != 0 && !run.failed.load()) {
        bench_fail(&run, "implementation returned an error", 0);
    }
    if (!run.failed.load() && !run.ended) {
        bench_fail(&run, "the run ended before the measurement did", 0);
    }

    const double seconds = static_cast<double>(run.t_end - run.t_start) / 1e9;
    const double rate = run.ended && seconds > 0 ? static_cast<double>(count) / seconds : 0.0;
    // Operations for the allocation count: round trips, connections, or sends (bulk).
    const double ops = cfg.workload == BENCH_BULK ? static_cast<double>(count) / cfg.chunk_size
                                                  : static_cast<double>(count);
    const double allocs = static_cast<double>(run.allocs_end - run.allocs_start);
    std::printf("{\"impl\":\"%s\",\"label\":\"%s\",\"workload\":\"%s\",\"connections\":%u,\"message_size\":%u,"
                "\"chunk_size\":%u,\"warmup\":%llu,\"count\":%llu,\"ok\":%s,",
                impl->name, impl->label, workload.c_str(), cfg.connections, cfg.message_size, cfg.chunk_size,
                static_cast<unsigned long long>(warmup), static_cast<unsigned long long>(count),
                run.failed.load() ? "false" : "true");
    if (run.failed.load()) {
        std::printf("\"error\":\"%s\"}\n", json_escape(run.error).c_str());
        return 1;
    }
    // CPU time of the whole process (both loops) over the interval, per unit of work.
    const double user = seconds_between(run.usage_start.ru_utime, run.usage_end.ru_utime);
    const double sys = seconds_between(run.usage_start.ru_stime, run.usage_end.ru_stime);
    std::printf("\"seconds\":%.6f,\"rate\":%.3f,\"allocations\":%.0f,\"allocations_per_op\":%.4f,"
                "\"allocations_counted\":%s,\"cpu_user_us_per_op\":%.4f,\"cpu_sys_us_per_op\":%.4f",
                seconds, rate, allocs, allocs / ops, bench_allocations_counted() ? "true" : "false",
                user * 1e6 / ops, sys * 1e6 / ops);
    if (run.latency && run.nstamps > 1) {
        std::vector<double> lat;
        lat.reserve(run.nstamps - 1);
        for (std::size_t i = 1; i < run.nstamps; ++i) {
            lat.push_back(static_cast<double>(run.stamps[i] - run.stamps[i - 1]) / 1e3);
        }
        const double p50 = percentile(lat, 0.50);
        const double p99 = percentile(lat, 0.99);
        std::printf(",\"p50_us\":%.3f,\"p99_us\":%.3f", p50, p99);
    }
    std::printf("}\n");
    return 0;
}

namespace {

int report_fairness(const bench_impl& impl, const bench_config& cfg, bench_run& run, std::uint64_t count)
{
    const int rc = impl.fairness(&cfg, &run);
    if (rc != 0 && !run.failed.load()) {
        bench_fail(&run, "implementation returned an error", 0);
    }
    std::printf("{\"impl\":\"%s\",\"label\":\"%s\",\"workload\":\"fairness\",\"connections\":2,"
                "\"message_size\":%u,\"chunk_size\":%u,\"warmup\":%llu,\"count\":%llu,\"ok\":%s,",
                impl.name, impl.label, cfg.message_size, cfg.chunk_size,
                static_cast<unsigned long long>(cfg.total - count), static_cast<unsigned long long>(count),
                run.failed.load() ? "false" : "true");
    if (run.failed.load()) {
        std::printf("\"error\":\"%s\"}\n", json_escape(run.error).c_str());
        return 1;
    }
    double p50[2]{};
    double p99[2]{};
    double worst[2]{};
    for (int k = 0; k < 2; ++k) {
        std::vector<double> us;
        for (std::uint64_t ns : run.fair_rtt[k]) {
            us.push_back(static_cast<double>(ns) / 1e3);
        }
        worst[k] = us.empty() ? 0.0 : *std::max_element(us.begin(), us.end());
        p50[k] = percentile(us, 0.50);
        p99[k] = percentile(us, 0.99);
    }
    double gbps[2]{};
    for (int k = 0; k < 2; ++k) {
        gbps[k] = run.fair_ns[k] != 0 ? static_cast<double>(run.fair_bytes[k]) / static_cast<double>(run.fair_ns[k]) : 0.0;
    }
    // Round trips the loaded phase did not finish while the stream ran: the
    // stream starved the ping-pong until the phase's time limit.
    const std::uint64_t loaded = run.fair_rtt[1].size();
    const std::uint64_t starved = count > loaded ? count - loaded : 0;
    const double latency_ratio = p99[0] > 0 ? p99[1] / p99[0] : 0.0;
    const double stream_ratio = gbps[0] > 0 ? gbps[1] / gbps[0] : 0.0;
    const bool latency_ok = starved == 0 && latency_ratio > 0 && latency_ratio < fair_latency_bound;
    const bool stream_ok = stream_ratio >= fair_stream_bound;
    std::printf("\"pingpong_alone_p50_us\":%.3f,\"pingpong_alone_p99_us\":%.3f,\"pingpong_alone_max_us\":%.3f,"
                "\"pingpong_loaded_p50_us\":%.3f,\"pingpong_loaded_p99_us\":%.3f,\"pingpong_loaded_max_us\":%.3f,"
                "\"pingpong_loaded_round_trips\":%llu,\"pingpong_starved\":%llu,"
                "\"stream_alone_gbps\":%.4f,\"stream_loaded_gbps\":%.4f,"
                "\"latency_ratio\":%.3f,\"latency_bound\":%.1f,\"latency_ok\":%s,"
                "\"stream_ratio\":%.3f,\"stream_bound\":%.2f,\"stream_ok\":%s}\n",
                p50[0], p99[0], worst[0], p50[1], p99[1], worst[1], static_cast<unsigned long long>(loaded),
                static_cast<unsigned long long>(starved), gbps[0], gbps[1], latency_ratio, fair_latency_bound,
                latency_ok ? "true" : "false", stream_ratio, fair_stream_bound, stream_ok ? "true" : "false");
    return 0;
}

} // namespace
