// asock/win32/threadpool_socket_core.hpp: the Windows threadpool-IO backend's
// socket core: the shared completion core (include/asock/detail/completion_core.hpp)
// over a small policy that registers a socket with a threadpool IO on the
// engine's pool and issues overlapped WSASend / WSARecv calls (`Api`: the real
// Win32 layer, include/asock/win32/win32_api.hpp, or the unit tests' fake,
// tests/win32/fake_win32.hpp).
//
// Design: see the header comment of detail/completion_core.hpp and
// docs/windows.md, "The backend". What is only Windows lives here: the
// threadpool IO and its callback environment, the WSABUF batches, the Win32 /
// WSA error codes, and overlapped_op (ConnectEx / AcceptEx of the TCP helpers,
// an `other`-direction call of the core).
#pragma once

#include <asock/buffer.hpp>
#include <asock/detail/completion_core.hpp>
#include <asock/detail/operation.hpp>
#include <asock/results.hpp>
#include <asock/win32/win32_api.hpp>

#include <cstdint>

namespace asock::win32 {

template <class Api>
class basic_threadpool_engine;

using asock::detail::completion_mode;
using asock::detail::notify_op;
using asock::detail::op_direction;
using asock::detail::op_list;
using asock::detail::operation;
using asock::detail::receive_op;
using asock::detail::send_op;
using asock::detail::work_item;

/// An overlapped call other than a send or a receive (the TCP helpers' ConnectEx
/// and AcceptEx), run through a socket's threadpool IO so that its completion
/// arrives like any other. `issue` starts the call on `socket` with `overlapped`
/// and returns 0 when it is outstanding or already done (the completion comes
/// through the IO callback either way; WSA_IO_PENDING counts as 0 too) or the
/// WSA error with which it failed at once.
///
/// `result` (a notify_op's): `in` the call succeeded; `error` it failed
/// (`io_result` holds the Win32 / WSA code); `abandoned` the socket was closed
/// first; `cancelled` a stop request cancelled it; `not_open` the socket was
/// not OPEN. `bytes` is the completion's byte count.
struct overlapped_op : notify_op {
    overlapped_op() noexcept : notify_op(asock::detail::op_type_of<overlapped_op>, asock::detail::op_direction::other) {}
    int (*issue)(void* context, SOCKET socket, OVERLAPPED* overlapped) noexcept = nullptr;
    void* issue_context = nullptr;
    DWORD io_result = NO_ERROR;
    DWORD bytes = 0;
    /// Given to the OS by the call, from its start until its completion.
    OVERLAPPED call{};
};

namespace detail {

/// The engine whose callback (IO completion or posted work) this thread is running.
inline thread_local const void* tls_engine = nullptr;

/// Most WSABUF entries given to one call; longer buffer lists are sent in
/// several calls, and a receive that filled every buffer of its call goes on
/// into the next ones with another call while bytes are waiting.
inline constexpr DWORD max_wsabuf = 64;

} // namespace detail

/// The completion policy of the threadpool-IO backend (asock::detail::completion_io).
template <class Api>
struct threadpool_io {
    using engine_type = basic_threadpool_engine<Api>;
    using handle_type = SOCKET;
    using call_record = OVERLAPPED;
    using status = ULONG;
    using byte_count = ULONG_PTR;
    using call_op = overlapped_op;

    /// One per open socket: its threadpool IO, on its own callback environment.
    struct registration {
        PTP_IO io = nullptr;
        TP_CALLBACK_ENVIRON env{};
    };

    static constexpr SOCKET invalid_handle = INVALID_SOCKET;
    static constexpr ULONG success = NO_ERROR;
    static constexpr std::uint32_t max_batch = detail::max_wsabuf;

    static bool is_socket(SOCKET socket) noexcept { return Api::is_socket(socket); }

    /// A callback environment on the engine's pool and a threadpool IO on the
    /// socket whose callback, on_io_complete, receives every completion of it.
    template <class Core>
    static bool register_socket(engine_type& engine, SOCKET socket, registration& reg, Core* core) noexcept
    {
        Api::initialize_environment(&reg.env);                // 01_016
        Api::set_environment_pool(&reg.env, engine.pool());    // 01_035, 01_036
        reg.io = Api::create_io(socket, &on_io_complete<Core>, core, &reg.env); // 01_058
        if (reg.io == nullptr) {
            Api::destroy_environment(&reg.env);
            return false;
        }
        return true;
    }

    static void wait_callbacks(registration& reg) noexcept { Api::wait_io_callbacks(reg.io, FALSE); } // 01_040

    static void unregister_socket(registration& reg) noexcept
    {
        Api::close_io(reg.io); // 01_059
        reg.io = nullptr;
        Api::destroy_environment(&reg.env); // 01_042
    }

    static int issue_send(SOCKET socket, registration& reg, OVERLAPPED& call, const send_op& op,
                          std::uint32_t& asked) noexcept
    {
        WSABUF bufs[detail::max_wsabuf];
        DWORD n = 0;
        DWORD total = 0;
        for (std::uint32_t i = op.index; i < op.count && n < detail::max_wsabuf; ++i, ++n) {
            const std::uint32_t skip = i == op.index ? op.offset : 0;
            // 01_056: the WSABUFs point at the caller's buffers; nothing is copied.
            bufs[n].buf = const_cast<CHAR*>(static_cast<const CHAR*>(op.buffers[i].data)) + skip;
            bufs[n].len = op.buffers[i].size - skip;
            total += bufs[n].len; // at most op.total, which fits
        }
        call = OVERLAPPED{};
        asked = total;
        Api::start_io(reg.io);                                        // 01_060
        if (Api::wsa_send(socket, bufs, n, nullptr, 0, &call) == 0) { // 01_061
            return 0; // done at once; the completion still arrives through the callback
        }
        const int err = Api::wsa_get_last_error(); // 01_062
        if (err == WSA_IO_PENDING) {
            return 0; // 01_053
        }
        Api::cancel_io(reg.io); // 01_100, 01_106
        return err != 0 ? err : WSAEFAULT;
    }

    static int issue_receive(SOCKET socket, registration& reg, OVERLAPPED& call, const receive_op& op,
                             std::uint32_t first, std::uint32_t& asked) noexcept
    {
        WSABUF bufs[detail::max_wsabuf];
        DWORD n = 0;
        DWORD total = 0;
        for (std::uint32_t i = first; i < op.count && n < detail::max_wsabuf; ++i, ++n) {
            bufs[n].buf = static_cast<CHAR*>(op.buffers[i].data); // 01_079
            bufs[n].len = op.buffers[i].size;
            total += bufs[n].len;
        }
        call = OVERLAPPED{};
        asked = total;
        Api::start_io(reg.io); // 01_081
        DWORD flags = 0;
        if (Api::wsa_recv(socket, bufs, n, nullptr, &flags, &call) == 0) { // 01_082
            return 0;
        }
        const int err = Api::wsa_get_last_error(); // 01_054
        if (err == WSA_IO_PENDING) {
            return 0; // 01_055
        }
        Api::cancel_io(reg.io); // 01_099
        return err != 0 ? err : WSAEFAULT;
    }

    static int issue_call(SOCKET socket, registration& reg, overlapped_op& op) noexcept
    {
        Api::start_io(reg.io);
        const int err = op.issue(op.issue_context, socket, &op.call);
        if (err == 0 || err == WSA_IO_PENDING) {
            return 0;
        }
        Api::cancel_io(reg.io);
        return err;
    }

    /// Half-close: shutdown(s, SD_SEND). 0, or the WSA error.
    static int shutdown_send(SOCKET socket) noexcept
    {
        if (Api::shutdown_send(socket) == 0) {
            return 0;
        }
        const int err = Api::wsa_get_last_error();
        return err != 0 ? err : WSAEFAULT;
    }

    static bool cancel(SOCKET socket, OVERLAPPED* call) noexcept { return Api::cancel_io_ex(socket, call) != FALSE; }

    static bool poll(SOCKET socket, OVERLAPPED* call, ULONG& err, ULONG_PTR& bytes) noexcept
    {
        DWORD n = 0;
        DWORD e = NO_ERROR;
        if (!Api::overlapped_result(socket, call, &n, &e)) {
            return false;
        }
        err = e;
        bytes = n;
        return true;
    }

    static bool bytes_waiting(SOCKET socket) noexcept
    {
        u_long waiting = 0;
        return Api::bytes_readable(socket, &waiting) == 0 && waiting != 0;
    }

    // A completion error (or a WSASend / WSARecv error) that means the peer
    // reset or the connection dropped: a send failing with one completes
    // abandoned, as on Linux.
    static bool connection_gone(ULONG err) noexcept
    {
        return err == ERROR_NETNAME_DELETED || err == ERROR_CONNECTION_ABORTED || err == WSAECONNRESET ||
               err == WSAECONNABORTED || err == WSAENETRESET;
    }

    static bool aborted(ULONG err) noexcept { return err == ERROR_OPERATION_ABORTED; }

    /// A receive failing with one completes abandoned (42_001); other codes error (01_070).
    static bool peer_gone(ULONG err) noexcept { return err == ERROR_NETNAME_DELETED || err == ERROR_CONNECTION_ABORTED; }

    static bool reset(int err) noexcept { return err == WSAECONNRESET; }

private:
    template <class Core>
    static VOID CALLBACK on_io_complete(PTP_CALLBACK_INSTANCE, PVOID context, PVOID overlapped, ULONG io_result,
                                        ULONG_PTR bytes, PTP_IO) noexcept
    {
        if (overlapped == nullptr) {
            return; // 01_063
        }
        Core::on_call_complete(static_cast<Core*>(context), static_cast<const OVERLAPPED*>(overlapped), io_result,
                               bytes);
    }
};

template <class Api>
using threadpool_socket_core = asock::detail::completion_core<threadpool_io<Api>>;

} // namespace asock::win32
