/* c_pal/async_socket.h: compatibility name of <asock/c/async_socket.h>, for callers that
 * include "c_pal/async_socket.h". On the include path through asock::c_pal_compat. */
#ifndef ASOCK_COMPAT_C_PAL_ASYNC_SOCKET_H
#define ASOCK_COMPAT_C_PAL_ASYNC_SOCKET_H

#include <asock/c/async_socket.h>

#endif /* ASOCK_COMPAT_C_PAL_ASYNC_SOCKET_H */
