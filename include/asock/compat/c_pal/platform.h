/* c_pal/platform.h: compatibility name of <asock/c/platform.h>, for callers that
 * include "c_pal/platform.h". On the include path through asock::c_pal_compat. */
#ifndef ASOCK_COMPAT_C_PAL_PLATFORM_H
#define ASOCK_COMPAT_C_PAL_PLATFORM_H

#include <asock/c/platform.h>

#endif /* ASOCK_COMPAT_C_PAL_PLATFORM_H */
