/* tests/c/portable.c: see portable.h. */
#include "portable.h"

#ifdef _WIN32

#include <process.h>

static unsigned __stdcall portable_thread_main(void* arg)
{
    PORTABLE_THREAD* thread = arg;
    thread->function(thread->arg);
    return 0;
}

bool portable_thread_start(PORTABLE_THREAD* thread, PORTABLE_THREAD_FUNCTION function, void* arg)
{
    uintptr_t handle;
    thread->function = function;
    thread->arg = arg;
    handle = _beginthreadex(NULL, 0, portable_thread_main, thread, 0, NULL);
    thread->handle = (HANDLE)handle;
    return handle != 0;
}

void portable_thread_join(PORTABLE_THREAD* thread)
{
    (void)WaitForSingleObject(thread->handle, INFINITE);
    (void)CloseHandle(thread->handle);
    thread->handle = NULL;
}

PORTABLE_THREAD_ID portable_thread_self(void) { return GetCurrentThreadId(); }
bool portable_thread_equal(PORTABLE_THREAD_ID a, PORTABLE_THREAD_ID b) { return a == b; }

void portable_mutex_init(PORTABLE_MUTEX* mutex) { InitializeSRWLock(mutex); }
void portable_mutex_deinit(PORTABLE_MUTEX* mutex) { (void)mutex; /* an SRWLOCK holds no resources */ }
void portable_mutex_lock(PORTABLE_MUTEX* mutex) { AcquireSRWLockExclusive(mutex); }
void portable_mutex_unlock(PORTABLE_MUTEX* mutex) { ReleaseSRWLockExclusive(mutex); }

void portable_cond_init(PORTABLE_COND* cond) { InitializeConditionVariable(cond); }
void portable_cond_deinit(PORTABLE_COND* cond) { (void)cond; /* holds no resources */ }

bool portable_cond_wait_ms(PORTABLE_COND* cond, PORTABLE_MUTEX* mutex, uint32_t ms)
{
    /* FALSE with ERROR_TIMEOUT when the time ran out */
    return SleepConditionVariableSRW(cond, mutex, ms, 0) != 0 || GetLastError() != ERROR_TIMEOUT;
}

void portable_cond_broadcast(PORTABLE_COND* cond) { WakeAllConditionVariable(cond); }

void portable_sleep_ms(uint32_t ms) { Sleep(ms); }
uint64_t portable_now_ms(void) { return (uint64_t)GetTickCount64(); }

#else /* POSIX */

#include <errno.h>
#include <time.h>

static void* portable_thread_main(void* arg)
{
    PORTABLE_THREAD* thread = arg;
    thread->function(thread->arg);
    return NULL;
}

bool portable_thread_start(PORTABLE_THREAD* thread, PORTABLE_THREAD_FUNCTION function, void* arg)
{
    thread->function = function;
    thread->arg = arg;
    return pthread_create(&thread->handle, NULL, portable_thread_main, thread) == 0;
}

void portable_thread_join(PORTABLE_THREAD* thread) { (void)pthread_join(thread->handle, NULL); }

PORTABLE_THREAD_ID portable_thread_self(void) { return pthread_self(); }
bool portable_thread_equal(PORTABLE_THREAD_ID a, PORTABLE_THREAD_ID b) { return pthread_equal(a, b) != 0; }

void portable_mutex_init(PORTABLE_MUTEX* mutex) { (void)pthread_mutex_init(mutex, NULL); }
void portable_mutex_deinit(PORTABLE_MUTEX* mutex) { (void)pthread_mutex_destroy(mutex); }
void portable_mutex_lock(PORTABLE_MUTEX* mutex) { (void)pthread_mutex_lock(mutex); }
void portable_mutex_unlock(PORTABLE_MUTEX* mutex) { (void)pthread_mutex_unlock(mutex); }

/* Timed waits measure CLOCK_MONOTONIC, which clock changes do not move. */
void portable_cond_init(PORTABLE_COND* cond)
{
    pthread_condattr_t attributes;
    (void)pthread_condattr_init(&attributes);
    (void)pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    (void)pthread_cond_init(cond, &attributes);
    (void)pthread_condattr_destroy(&attributes);
}

void portable_cond_deinit(PORTABLE_COND* cond) { (void)pthread_cond_destroy(cond); }

bool portable_cond_wait_ms(PORTABLE_COND* cond, PORTABLE_MUTEX* mutex, uint32_t ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)(ms / 1000u);
    deadline.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(cond, mutex, &deadline) != ETIMEDOUT;
}

void portable_cond_broadcast(PORTABLE_COND* cond) { (void)pthread_cond_broadcast(cond); }

void portable_sleep_ms(uint32_t ms)
{
    struct timespec t;
    t.tv_sec = (time_t)(ms / 1000u);
    t.tv_nsec = (long)(ms % 1000u) * 1000000L;
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

uint64_t portable_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

#endif
