/* tests/c/harness.c: see harness.h. */
#include "harness.h"

#include "portable.h"

#include <stdio.h>
#include <string.h>

static PORTABLE_MUTEX harness_lock = PORTABLE_MUTEX_INITIALIZER;
static unsigned long harness_current_failures = 0;

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
    for (i = 0; i < count; ++i) {
        unsigned long failures;
        if (filter != NULL && strstr(tests[i].name, filter) == NULL) {
            continue;
        }
        portable_mutex_lock(&harness_lock);
        harness_current_failures = 0;
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
    fprintf(stdout, "%lu passed, %lu failed\n", passed, failed);
    fflush(stdout);
    return (failed == 0 && passed > 0) ? 0 : 1;
}
