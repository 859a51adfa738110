/* tests/c/harness.h: the tiny test harness of the C API tests.
 *
 * Each test executable lists its test functions in a table and calls
 * harness_run(), which runs them in order (or only those whose name contains
 * argv[1]), prints one line per test and a final "N passed, N failed" line,
 * and returns the exit status (non-zero when a test failed). CHECK records a
 * failure and continues; REQUIRE records it and returns from the test. Both
 * may be used from any thread (callbacks run on engine threads). */
#ifndef ASOCK_TESTS_C_HARNESS_H
#define ASOCK_TESTS_C_HARNESS_H

#include <stddef.h>

typedef void (*harness_test_function)(void);

typedef struct HARNESS_TEST_TAG
{
    const char* name;
    harness_test_function function;
} HARNESS_TEST;

#define HARNESS_TEST_ENTRY(function) { #function, function }

void harness_record_failure(const char* file, int line, const char* expression);
int harness_run(const HARNESS_TEST* tests, size_t count, int argc, char** argv);

#define CHECK(condition)                                                                                               \
    do {                                                                                                               \
        if (!(condition)) {                                                                                            \
            harness_record_failure(__FILE__, __LINE__, #condition);                                                    \
        }                                                                                                              \
    } while (0)

#define REQUIRE(condition)                                                                                             \
    do {                                                                                                               \
        if (!(condition)) {                                                                                            \
            harness_record_failure(__FILE__, __LINE__, #condition);                                                    \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)

#define HARNESS_COUNT(table) (sizeof(table) / sizeof((table)[0]))

#endif /* ASOCK_TESTS_C_HARNESS_H */
