/* tests/support/hang_report.h: what a test program prints when it hangs.
 *
 * A deadlock caught by ctest's timeout says only "Timeout": which test, and
 * where every thread stood, is lost with the process. The watchdogs of the
 * test mains (tests/catch_main.cpp, tests/c/harness.c) and of the fuzzers
 * call hang_report_dump_stacks() before they abort: on Linux it attaches gdb
 * (when installed; scripts/setup.sh installs it) and prints every thread's
 * stack to stderr. Usable from C11 and C++.
 *
 * The time a single test may take before it counts as hung:
 * ASOCK_TEST_HANG_SECONDS (default 150), read by hang_report_limit_seconds(). */
#ifndef ASOCK_TESTS_SUPPORT_HANG_REPORT_H
#define ASOCK_TESTS_SUPPORT_HANG_REPORT_H

#include <stdio.h>
#include <stdlib.h>

#if !defined(_WIN32)
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif
#endif

static inline unsigned long hang_report_limit_seconds(void)
{
    const char* v = getenv("ASOCK_TEST_HANG_SECONDS");
    const unsigned long n = v != NULL ? strtoul(v, NULL, 10) : 0;
    return n != 0 ? n : 150;
}

/* Prints every thread's stack of this process to stderr (Linux, gdb). */
static inline void hang_report_dump_stacks(void)
{
#if defined(_WIN32)
    fprintf(stderr, "hang report: no thread stacks on Windows\n");
#else
    char cmd[256];
    if (system("command -v gdb >/dev/null 2>&1") != 0) {
        fprintf(stderr, "hang report: gdb is not installed; no thread stacks (install gdb to get them)\n");
        return;
    }
#if defined(PR_SET_PTRACER)
    prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0); /* Yama: let the child attach to us */
#endif
    snprintf(cmd, sizeof cmd,
             "gdb -p %d -batch -nx -ex 'set pagination off' -ex 'thread apply all bt' </dev/null 1>&2 2>&1",
             (int)getpid());
    fprintf(stderr, "hang report: %s\n", cmd);
    fflush(stderr);
    if (system(cmd) != 0) {
        fprintf(stderr, "hang report: gdb failed\n");
    }
#endif
    fflush(stderr);
}

#endif /* ASOCK_TESTS_SUPPORT_HANG_REPORT_H */
