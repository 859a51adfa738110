/* tests/c/harness.c: see harness.h. */
#include "harness.h"

#include "portable.h"

#include "../support/hang_report.h"

#include <stdio.h>
#include <string.h>

static PORTABLE_MUTEX harness_lock = PORTABLE_MUTEX_INITIALIZER;
static unsigned long harness_current_failures = 0;

/* The watchdog: a test that runs longer than hang_report_limit_seconds() is
 * reported by name with every thread's stack, and the program aborts, rather
 * than sit until ctest's timeout kills it silently. */
static const char* harness_current_name = NULL; /* guarded by harness_lock */
static uint64_t harness_current_start_ms = 0;            /* guarded by harness_lock */
static int harness_finished = 0;                         /* guarded by harness_lock */

static void harness_watchdog(void* arg)
{
    const uint64_t limit_ms = (uint64_t)hang_report_limit_seconds() * 1000u;
    (void)arg;
    for (;;) {
        const char* name;
        uint64_t start;
        int finished;
        portable_sleep_ms(200);
        portable_mutex_lock(&harness_lock);
        name = harness_current_name;
        start = harness_current_start_ms;
        finished = harness_finished;
        portable_mutex_unlock(&harness_lock);
        if (finished) {
            return;
        }
        if (name != NULL && portable_now_ms() - start > limit_ms) {
            fprintf(stdout, "HANG %s: still running after %lu s; every thread's stack follows on stderr\n", name,
                    (unsigned long)(limit_ms / 1000u));
            fflush(stdout);
            hang_report_dump_stacks();
            abort();
        }
    }
}

void harness_record_failure(const char* file, int line, const char* expression)
{
    portable_mutex_lock(&harness_lock);
    ++harness_current_failures;
    fprintf(stdout, "    %s:%d: check failed: %s\n", file, line, expression);
    fflush(stdout);
    portable_mutex_unlock(&harness_lock);
}

int harness_run(const HARNESS_TEST* tests, size_t count, int argc, char** argv)
{
    const char* filter = argc > 1 ? argv[1] : NULL;
    unsigned long passed = 0;
    unsigned long failed = 0;
    size_t i;
    PORTABLE_THREAD watchdog;
    const bool watching = portable_thread_start(&watchdog, harness_watchdog, NULL);
    for (i = 0; i < count; ++i) {
        unsigned long failures;
        if (filter != NULL && strstr(tests[i].name, filter) == NULL) {
            continue;
        }
        portable_mutex_lock(&harness_lock);
        harness_current_failures = 0;
        harness_current_name = tests[i].name;
        harness_current_start_ms = portable_now_ms();
        portable_mutex_unlock(&harness_lock);
        fprintf(stdout, "RUN  %s\n", tests[i].name);
        fflush(stdout);
        tests[i].function();
        portable_mutex_lock(&harness_lock);
        failures = harness_current_failures;
        portable_mutex_unlock(&harness_lock);
        if (failures == 0) {
            ++passed;
            fprintf(stdout, "PASS %s\n", tests[i].name);
        } else {
            ++failed;
            fprintf(stdout, "FAIL %s (%lu failed checks)\n", tests[i].name, failures);
        }
        fflush(stdout);
    }
    portable_mutex_lock(&harness_lock);
    harness_current_name = NULL;
    harness_finished = 1;
    portable_mutex_unlock(&harness_lock);
    if (watching) {
        portable_thread_join(&watchdog);
    }
    fprintf(stdout, "%lu passed, %lu failed\n", passed, failed);
    fflush(stdout);
    return (failed == 0 && passed > 0) ? 0 : 1;
}
