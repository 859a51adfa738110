/* c_pal/execution_engine.h: compatibility name of <asock/c/execution_engine.h>, for callers that
 * include "c_pal/execution_engine.h". On the include path through asock::c_pal_compat. */
#ifndef ASOCK_COMPAT_C_PAL_EXECUTION_ENGINE_H
#define ASOCK_COMPAT_C_PAL_EXECUTION_ENGINE_H

#include <asock/c/execution_engine.h>

#endif /* ASOCK_COMPAT_C_PAL_EXECUTION_ENGINE_H */
