// tests/catch_main.cpp: the one Catch2 main shared by every C++ test executable.
//
// It also watches for hangs: a test case that runs longer than
// ASOCK_TEST_HANG_SECONDS (default 150; see tests/support/hang_report.h) is
// reported by name, with every thread's stack, and the program aborts, so a
// deadlock in CI names its test and shows where each thread stood instead of
// ending as a bare ctest "Timeout".
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include "support/hang_report.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace {

class hang_watchdog {
public:
    static hang_watchdog& get()
    {
        static hang_watchdog* w = new hang_watchdog(); // lives as long as the process, like its thread
        return *w;
    }

    void started(const std::string& name)
    {
        std::lock_guard lk(mu_);
        name_ = name;
        deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(hang_report_limit_seconds());
        armed_ = true;
    }

    void ended()
    {
        std::lock_guard lk(mu_);
        armed_ = false;
    }

private:
    hang_watchdog()
    {
        std::thread([this] { run(); }).detach();
    }

    void run()
    {
        std::unique_lock lk(mu_);
        for (;;) {
            cv_.wait_for(lk, std::chrono::milliseconds(500));
            if (armed_ && std::chrono::steady_clock::now() > deadline_) {
                std::fprintf(stderr, "HANG: test case \"%s\" still running after %lu s; every thread's stack follows\n",
                             name_.c_str(), hang_report_limit_seconds());
                std::fflush(stderr);
                hang_report_dump_stacks();
                std::abort();
            }
        }
    }

    std::mutex mu_;
    std::condition_variable cv_;
    std::string name_;
    std::chrono::steady_clock::time_point deadline_{};
    bool armed_ = false;
};

struct hang_listener : Catch::TestEventListenerBase {
    using TestEventListenerBase::TestEventListenerBase;
    void testCaseStarting(const Catch::TestCaseInfo& info) override { hang_watchdog::get().started(info.name); }
    void testCaseEnded(const Catch::TestCaseStats&) override { hang_watchdog::get().ended(); }
};

} // namespace

CATCH_REGISTER_LISTENER(hang_listener)
