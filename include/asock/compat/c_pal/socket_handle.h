/* c_pal/socket_handle.h: compatibility name of <asock/c/socket_handle.h>, for callers that
 * include "c_pal/socket_handle.h". On the include path through asock::c_pal_compat. */
#ifndef ASOCK_COMPAT_C_PAL_SOCKET_HANDLE_H
#define ASOCK_COMPAT_C_PAL_SOCKET_HANDLE_H

#include <asock/c/socket_handle.h>

#endif /* ASOCK_COMPAT_C_PAL_SOCKET_HANDLE_H */
