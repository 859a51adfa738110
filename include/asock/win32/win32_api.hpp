// asock/win32/win32_api.hpp: the Win32 calls the threadpool-IO backend makes, in one place.
//
// Rationale: the Windows backend (engine + socket core) is a template over this
// "Win32 layer" policy, as the Linux backend is over its Sys policy
// (include/asock/linux/epoll_sys.hpp). The real layer below forwards to the
// OS; the unit tests (tests/win32/fake_win32.hpp) substitute a fake with the
// same static functions that scripts results, records the call sequence and
// invokes the IO callbacks itself, so every branch of the production logic is
// exercised deterministically.
//
// Each function keeps the OS's own failure convention (NULL handles, FALSE,
// SOCKET_ERROR + WSAGetLastError), so the backend reads like ordinary Win32 code.
//
// This directory is the only place asock includes platform headers on Windows.
// They are included in the order <winsock2.h>, <ws2tcpip.h>, <windows.h>
// (then <mswsock.h> for ConnectEx / AcceptEx), with NOMINMAX defined unless the
// includer already chose, so that std::min / std::max keep working.
#pragma once

#if !defined(_WIN32)
#error "asock/win32: this backend is for Windows only"
#endif

#ifndef NOMINMAX
#define NOMINMAX
#endif
// clang-format off
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <mswsock.h>
// clang-format on

#include <chrono>

#if defined(_WIN32_WINNT) && _WIN32_WINNT < 0x0600
#error "asock/win32 needs the Windows Vista API (threadpool IO, CancelIoEx): define _WIN32_WINNT >= 0x0600"
#endif

namespace asock::win32 {

struct win32_api {
    // ---- Winsock start-up (one pair per engine; Winsock counts them) -------
    static int wsa_startup() noexcept
    {
        WSADATA data;
        return ::WSAStartup(MAKEWORD(2, 2), &data);
    }
    static void wsa_cleanup() noexcept { ::WSACleanup(); }
    static int wsa_get_last_error() noexcept { return ::WSAGetLastError(); }

    // ---- the thread pool -----------------------------------------------------
    static PTP_POOL create_pool() noexcept { return ::CreateThreadpool(nullptr); }
    static BOOL set_pool_minimum(PTP_POOL pool, DWORD threads) noexcept
    {
        return ::SetThreadpoolThreadMinimum(pool, threads);
    }
    static void set_pool_maximum(PTP_POOL pool, DWORD threads) noexcept { ::SetThreadpoolThreadMaximum(pool, threads); }
    static void close_pool(PTP_POOL pool) noexcept { ::CloseThreadpool(pool); }

    // ---- callback environments -------------------------------------------------
    static void initialize_environment(PTP_CALLBACK_ENVIRON env) noexcept { ::InitializeThreadpoolEnvironment(env); }
    static void set_environment_pool(PTP_CALLBACK_ENVIRON env, PTP_POOL pool) noexcept
    {
        ::SetThreadpoolCallbackPool(env, pool);
    }
    static void destroy_environment(PTP_CALLBACK_ENVIRON env) noexcept { ::DestroyThreadpoolEnvironment(env); }

    // ---- work objects (the engine's post()) -------------------------------------
    static PTP_WORK create_work(PTP_WORK_CALLBACK callback, void* context, PTP_CALLBACK_ENVIRON env) noexcept
    {
        return ::CreateThreadpoolWork(callback, context, env);
    }
    static void submit_work(PTP_WORK work) noexcept { ::SubmitThreadpoolWork(work); }
    static void wait_work_callbacks(PTP_WORK work, BOOL cancel_pending) noexcept
    {
        ::WaitForThreadpoolWorkCallbacks(work, cancel_pending);
    }
    static void close_work(PTP_WORK work) noexcept { ::CloseThreadpoolWork(work); }

    // ---- the engine's timer (one threadpool timer per engine) -------------------
    /// The clock of the engine's timers: std::chrono::steady_clock
    /// (QueryPerformanceCounter). The unit tests' fake gives a virtual one.
    static std::chrono::steady_clock::time_point now() noexcept { return std::chrono::steady_clock::now(); }
    static PTP_TIMER create_timer(PTP_TIMER_CALLBACK callback, void* context, PTP_CALLBACK_ENVIRON env) noexcept
    {
        return ::CreateThreadpoolTimer(callback, context, env);
    }
    /// SetThreadpoolTimer, one-shot (no period, no window). `due` as the OS
    /// reads it: negative, relative in 100 ns units; 0, at once; NULL stops
    /// the timer queuing callbacks (one already queued still runs).
    static void set_timer(PTP_TIMER timer, FILETIME* due) noexcept { ::SetThreadpoolTimer(timer, due, 0, 0); }
    static void wait_timer_callbacks(PTP_TIMER timer, BOOL cancel_pending) noexcept
    {
        ::WaitForThreadpoolTimerCallbacks(timer, cancel_pending);
    }
    static void close_timer(PTP_TIMER timer) noexcept { ::CloseThreadpoolTimer(timer); }

    // ---- threadpool IO (one per open socket) ------------------------------------
    static PTP_IO create_io(SOCKET socket, PTP_WIN32_IO_CALLBACK callback, void* context,
                            PTP_CALLBACK_ENVIRON env) noexcept
    {
        return ::CreateThreadpoolIo(reinterpret_cast<HANDLE>(socket), callback, context, env);
    }
    static void start_io(PTP_IO io) noexcept { ::StartThreadpoolIo(io); }
    static void cancel_io(PTP_IO io) noexcept { ::CancelThreadpoolIo(io); }
    static void wait_io_callbacks(PTP_IO io, BOOL cancel_pending) noexcept
    {
        ::WaitForThreadpoolIoCallbacks(io, cancel_pending);
    }
    static void close_io(PTP_IO io) noexcept { ::CloseThreadpoolIo(io); }

    // ---- overlapped socket I/O ----------------------------------------------------
    /// WSASend without a completion routine: 0 or SOCKET_ERROR (then wsa_get_last_error()).
    static int wsa_send(SOCKET socket, WSABUF* buffers, DWORD count, DWORD* bytes_sent, DWORD flags,
                        OVERLAPPED* overlapped) noexcept
    {
        return ::WSASend(socket, buffers, count, bytes_sent, flags, overlapped, nullptr);
    }
    /// WSARecv without a completion routine: 0 or SOCKET_ERROR (then wsa_get_last_error()).
    static int wsa_recv(SOCKET socket, WSABUF* buffers, DWORD count, DWORD* bytes_received, DWORD* flags,
                        OVERLAPPED* overlapped) noexcept
    {
        return ::WSARecv(socket, buffers, count, bytes_received, flags, overlapped, nullptr);
    }
    /// The number of bytes waiting to be read on `socket` now, without
    /// waiting (ioctlsocket FIONREAD): 0 or SOCKET_ERROR (then wsa_get_last_error()).
    static int bytes_readable(SOCKET socket, u_long* bytes) noexcept { return ::ioctlsocket(socket, FIONREAD, bytes); }
    /// Asks the OS to cancel one outstanding overlapped call on `socket`.
    static BOOL cancel_io_ex(SOCKET socket, OVERLAPPED* overlapped) noexcept
    {
        return ::CancelIoEx(reinterpret_cast<HANDLE>(socket), overlapped);
    }
    /// Whether an overlapped call on `socket` has finished, without waiting
    /// (WSAGetOverlappedResult, fWait FALSE): true with its byte count and its
    /// error (0 on success, else the WSA code), false while it is in progress.
    /// Its completion packet may still be on its way to the IO callback.
    static bool overlapped_result(SOCKET socket, OVERLAPPED* overlapped, DWORD* bytes, DWORD* error) noexcept
    {
        DWORD flags = 0;
        if (::WSAGetOverlappedResult(socket, overlapped, bytes, FALSE, &flags)) {
            *error = NO_ERROR;
            return true;
        }
        const int e = ::WSAGetLastError();
        if (e == WSA_IO_INCOMPLETE) {
            return false;
        }
        *error = static_cast<DWORD>(e);
        return true;
    }

    // ---- the default handle owner -----------------------------------------------------
    static int shutdown(SOCKET socket) noexcept { return ::shutdown(socket, SD_BOTH); }
    /// Half-close (async_socket::shutdown_send): the FIN goes after the bytes
    /// of the completed sends; receiving goes on. 0 or SOCKET_ERROR (then
    /// wsa_get_last_error()).
    static int shutdown_send(SOCKET socket) noexcept { return ::shutdown(socket, SD_SEND); }
    static int closesocket(SOCKET socket) noexcept { return ::closesocket(socket); }
    /// True when `socket` is a socket: SO_TYPE exists only on sockets (a pipe
    /// or file handle passed as a SOCKET fails with WSAENOTSOCK).
    static bool is_socket(SOCKET socket) noexcept
    {
        int type = 0;
        int len = sizeof type;
        return ::getsockopt(socket, SOL_SOCKET, SO_TYPE, reinterpret_cast<char*>(&type), &len) == 0;
    }
};

} // namespace asock::win32
