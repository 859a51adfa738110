/* benchmarks/alloc_hook.h: the allocation counter of the benchmark binary. */
#ifndef ASOCK_BENCH_ALLOC_HOOK_H
#define ASOCK_BENCH_ALLOC_HOOK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Heap allocations made so far by every thread of the process. */
uint64_t bench_allocations(void);
/* 0 when the hook is compiled out (sanitizer builds): counts are then meaningless. */
int bench_allocations_counted(void);

#ifdef __cplusplus
}
#endif

#endif
