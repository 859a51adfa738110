// asock/detail/toolchain.hpp: checks for standard-library defects that would
// make asock hang, made at compile time so that they cannot surface as a rare
// deadlock in production.
//
// libstdc++ on mingw-w64 (seen with GCC 12): std::binary_semaphore is built on
// std::atomic::wait, which on targets without a futex can lose a wake-up, so
// an acquire() that starts waiting just before the matching release() may
// sleep forever (a two-thread release/acquire ping-pong hangs within a few
// thousand rounds under Wine). std::stop_callback's destructor waits on such a
// semaphore whenever the callback is running on another thread, which is
// exactly what happens when an operation completes while a stop request for it
// is being delivered: the coroutine resumes, destroys its awaitable, and that
// destructor would never return.
//
// The same libstdc++ has a correct semaphore over POSIX sem_t (winpthreads),
// chosen by defining _GLIBCXX_USE_POSIX_SEMAPHORE=1 in every translation unit
// (it changes std::binary_semaphore's layout, so all of a program must agree).
// The CMake target asock::asock defines it for every Windows build other than
// MSVC (mingw-w64 with GCC, or clang over its libstdc++); a build that
// does not use the target must define it too, or define
// ASOCK_ALLOW_ATOMIC_WAIT_SEMAPHORE to accept the risk (for instance with a
// libstdc++ known to be fixed).
#pragma once

#include <version> // defines __GLIBCXX__ and the configuration macros

#if defined(__MINGW32__) && defined(__GLIBCXX__) && defined(_GLIBCXX_HAVE_POSIX_SEMAPHORE) \
    && !_GLIBCXX_USE_POSIX_SEMAPHORE && !defined(ASOCK_ALLOW_ATOMIC_WAIT_SEMAPHORE)
#error "asock on mingw-w64 with libstdc++: define _GLIBCXX_USE_POSIX_SEMAPHORE=1 (the asock::asock CMake target does), because this libstdc++'s atomic-wait semaphore, used by std::stop_callback, can lose wake-ups and hang; see asock/detail/toolchain.hpp"
#endif

// Forces a small function on the hot path of every operation inline where the
// compiler's heuristics would keep it out of line (inside a large coroutine
// body, for instance), to save the call and its register traffic.
#if defined(__GNUC__) || defined(__clang__)
#define ASOCK_ALWAYS_INLINE [[gnu::always_inline]] inline
#elif defined(_MSC_VER)
#define ASOCK_ALWAYS_INLINE __forceinline
#else
#define ASOCK_ALWAYS_INLINE inline
#endif
