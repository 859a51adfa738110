/* asock/c/execution_engine.h: the execution engine of asock's C API: the
 * threads on which async socket callbacks run. Reference counted; every async
 * socket holds a reference on its engine. See docs/c_api.md. */
#ifndef ASOCK_C_EXECUTION_ENGINE_H
#define ASOCK_C_EXECUTION_ENGINE_H

#ifdef __cplusplus
#include <cstdint>
#else
#include <stdint.h>
#endif

#include <asock/c/enum.h>

ASOCK_C_BEGIN_DECLS

typedef struct EXECUTION_ENGINE_PARAMETERS_TAG
{
    uint32_t min_thread_count;
    uint32_t max_thread_count;
} EXECUTION_ENGINE_PARAMETERS;

#define DEFAULT_MIN_THREAD_COUNT 4
#define DEFAULT_MAX_THREAD_COUNT 0 /* no maximum */

typedef struct EXECUTION_ENGINE_TAG* EXECUTION_ENGINE_HANDLE;

/* Creates an engine holding one reference (released with
 * execution_engine_dec_ref). NULL parameters: DEFAULT_MIN_THREAD_COUNT and
 * DEFAULT_MAX_THREAD_COUNT. On Linux the engine starts a fixed pool of
 * max(min_thread_count, 1) threads; max_thread_count is an upper bound that
 * must not be below min_thread_count unless it is 0 (no maximum). Returns NULL
 * when the parameters are inconsistent or the system refuses the resources. */
ASOCK_C_API EXECUTION_ENGINE_HANDLE execution_engine_create(const EXECUTION_ENGINE_PARAMETERS* execution_engine_parameters);

/* Drops one reference; the last one stops and joins the engine's threads.
 * NULL: does nothing. */
ASOCK_C_API void execution_engine_dec_ref(EXECUTION_ENGINE_HANDLE execution_engine);

/* Adds one reference. NULL: does nothing. */
ASOCK_C_API void execution_engine_inc_ref(EXECUTION_ENGINE_HANDLE execution_engine);

ASOCK_C_END_DECLS

#endif /* ASOCK_C_EXECUTION_ENGINE_H */
