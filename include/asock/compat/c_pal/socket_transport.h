/* c_pal/socket_transport.h: compatibility name of <asock/c/socket_transport.h>, for callers that
 * include "c_pal/socket_transport.h". On the include path through asock::c_pal_compat. */
#ifndef ASOCK_COMPAT_C_PAL_SOCKET_TRANSPORT_H
#define ASOCK_COMPAT_C_PAL_SOCKET_TRANSPORT_H

#include <asock/c/socket_transport.h>

#endif /* ASOCK_COMPAT_C_PAL_SOCKET_TRANSPORT_H */
