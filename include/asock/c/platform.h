/* asock/c/platform.h: process-wide set-up of asock's C API.
 *
 * Callers pair the two calls; they may be nested (each platform_init needs
 * its own platform_deinit). See docs/c_api.md. */
#ifndef ASOCK_C_PLATFORM_H
#define ASOCK_C_PLATFORM_H

#include <asock/c/enum.h>

ASOCK_C_BEGIN_DECLS

/* Returns 0 on success, non-zero on failure. On Linux the first call takes a
 * reference on the process-wide default execution engine (the one used by
 * async sockets created with a NULL execution engine), so that engine and its
 * thread live until the matching last platform_deinit. */
ASOCK_C_API int platform_init(void);

/* Undoes one successful platform_init. Extra calls do nothing. */
ASOCK_C_API void platform_deinit(void);

ASOCK_C_END_DECLS

#endif /* ASOCK_C_PLATFORM_H */
