/* benchmarks/alloc_hook.c: counts every heap allocation made in the process.
 *
 * The benchmark binary defines the C allocation functions itself; glibc lets a
 * program replace them, and routes its own internal calls (and libstdc++'s
 * operator new, and every library's malloc) to the program's definitions. Each
 * one bumps a counter and forwards to glibc's allocator under its __libc_*
 * name, so memory behaves exactly as without the hook. Frees are not counted:
 * the figure reported is allocations per operation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc_hook.h"

extern void* __libc_malloc(size_t size);
extern void __libc_free(void* p);
extern void* __libc_calloc(size_t n, size_t size);
extern void* __libc_realloc(void* p, size_t size);
extern void* __libc_memalign(size_t alignment, size_t size);

#ifndef ASOCK_BENCH_NO_ALLOC_HOOK

static uint64_t allocations;

static inline void count_one(void) { __atomic_fetch_add(&allocations, 1, __ATOMIC_RELAXED); }

uint64_t bench_allocations(void) { return __atomic_load_n(&allocations, __ATOMIC_RELAXED); }
int bench_allocations_counted(void) { return 1; }

void* malloc(size_t size)
{
    count_one();
    return __libc_malloc(size);
}

void free(void* p) { __libc_free(p); }

void* calloc(size_t n, size_t size)
{
    count_one();
    return __libc_calloc(n, size);
}

void* realloc(void* p, size_t size)
{
    count_one();
    return __libc_realloc(p, size);
}

void* memalign(size_t alignment, size_t size)
{
    count_one();
    return __libc_memalign(alignment, size);
}

void* aligned_alloc(size_t alignment, size_t size)
{
    count_one();
    return __libc_memalign(alignment, size);
}

int posix_memalign(void** out, size_t alignment, size_t size)
{
    if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) {
        return EINVAL;
    }
    count_one();
    void* p = __libc_memalign(alignment, size);
    if (p == NULL) {
        return ENOMEM;
    }
    *out = p;
    return 0;
}

void* valloc(size_t size)
{
    count_one();
    return __libc_memalign(4096, size);
}

#else /* built with sanitizers, which bring their own allocator */

uint64_t bench_allocations(void) { return 0; }
int bench_allocations_counted(void) { return 0; }

#endif
