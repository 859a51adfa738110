/* tests/c/portable.h: the threads, locks and clocks of the C API tests, on
 * POSIX (pthread, clock_gettime, nanosleep) and on Windows (_beginthreadex,
 * SRWLOCK, CONDITION_VARIABLE, Sleep, GetTickCount64). Plain C11 and the
 * documented Win32 API only, so MSVC builds it as well as mingw-w64. */
#ifndef ASOCK_TESTS_C_PORTABLE_H
#define ASOCK_TESTS_C_PORTABLE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN /* keeps <winsock.h> out, so <winsock2.h> may follow */
#endif
#include <windows.h>
#else
#include <pthread.h>
#endif

#ifdef _WIN32
typedef SRWLOCK PORTABLE_MUTEX;
typedef CONDITION_VARIABLE PORTABLE_COND;
typedef DWORD PORTABLE_THREAD_ID;
#define PORTABLE_MUTEX_INITIALIZER SRWLOCK_INIT
#else
typedef pthread_mutex_t PORTABLE_MUTEX;
typedef pthread_cond_t PORTABLE_COND;
typedef pthread_t PORTABLE_THREAD_ID;
#define PORTABLE_MUTEX_INITIALIZER PTHREAD_MUTEX_INITIALIZER
#endif

#if defined(_MSC_VER) && !defined(__clang__)
#define PORTABLE_THREAD_LOCAL __declspec(thread)
#else
#define PORTABLE_THREAD_LOCAL _Thread_local
#endif

typedef void (*PORTABLE_THREAD_FUNCTION)(void* arg);

/* A joinable thread. Must stay at the same address until joined. */
typedef struct PORTABLE_THREAD_TAG
{
#ifdef _WIN32
    HANDLE handle;
#else
    pthread_t handle;
#endif
    PORTABLE_THREAD_FUNCTION function;
    void* arg;
} PORTABLE_THREAD;

/* Starts function(arg) on a new thread; false when the system refuses. */
bool portable_thread_start(PORTABLE_THREAD* thread, PORTABLE_THREAD_FUNCTION function, void* arg);
/* Waits for the thread to end and releases it. */
void portable_thread_join(PORTABLE_THREAD* thread);
PORTABLE_THREAD_ID portable_thread_self(void);
bool portable_thread_equal(PORTABLE_THREAD_ID a, PORTABLE_THREAD_ID b);

/* A mutex: PORTABLE_MUTEX_INITIALIZER or portable_mutex_init. Not recursive. */
void portable_mutex_init(PORTABLE_MUTEX* mutex);
void portable_mutex_deinit(PORTABLE_MUTEX* mutex);
void portable_mutex_lock(PORTABLE_MUTEX* mutex);
void portable_mutex_unlock(PORTABLE_MUTEX* mutex);

/* A condition variable used with a PORTABLE_MUTEX (portable_cond_init only). */
void portable_cond_init(PORTABLE_COND* cond);
void portable_cond_deinit(PORTABLE_COND* cond);
/* Waits (the mutex held) for a wake-up or until `ms` milliseconds passed;
 * false when the time ran out. Spurious wake-ups happen: wait in a loop. */
bool portable_cond_wait_ms(PORTABLE_COND* cond, PORTABLE_MUTEX* mutex, uint32_t ms);
void portable_cond_broadcast(PORTABLE_COND* cond);

void portable_sleep_ms(uint32_t ms);
/* Milliseconds of a monotonic clock (from an arbitrary start). */
uint64_t portable_now_ms(void);

#endif /* ASOCK_TESTS_C_PORTABLE_H */
