// tests/fuzz/fuzz_cpp_api.cpp: a libFuzzer target for asock's C++ API
// (asock::async_socket over the epoll backend; docs/awaitables.md,
// docs/design.md).
//
// Like fuzz_c_api.cpp, the input is a program of up to 64 actions on three
// socket slots, interleaved with actions on the peer and with faults of a
// custom transport; here the operations are started in both forms: with a
// caller-owned record and a callback, or co_awaited in a coroutine (spawned
// asock::task), optionally with a stop_token that is stopped before the
// start, later from the main thread, from another thread, or by a timer
// while sync_wait runs the loop. The engine has 0, 1, 2 or 4 threads; with 0
// the harness runs the loop itself (run_one / poll / sync_wait). Sockets may
// be plain or custom, on the default or a custom handle owner, moved, empty.
//
// Checked, besides what fuzz_c_api.cpp checks (every completion exactly once,
// none after close / destroy returned, the byte streams both ways, no
// descriptor leaked):
// - the answers of docs/awaitables.md's bad-input table (not_open,
//   invalid_argument, cancelled before the start) in both forms;
// - an awaiter resumes inline only inside its own start, otherwise on an
//   engine thread (with 0 threads: inside the loop the harness runs), never
//   inside close, the destructor or a stop request;
// - a cancelled receive loses no byte, a cancelled send that sent nothing is
//   withdrawn and one that sent part fails the later sends;
// - a handle owner's disconnect is called once by close and its destroy
//   once by the destructor, with the handle that was opened.
//
// The harness keeps to the contract itself: the destructor and moves never
// race with other calls on the object (async_socket.hpp), so a socket whose
// completions call back into it is closed, and its coroutines finished,
// before it is destroyed; and since an awaiter may be resumed after its
// socket is gone, a completion that destroys the socket is never combined
// with completions that still use it.
#include "fuzz_common.hpp"

#include <asock/asock.hpp>

#include <cerrno>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stop_token>

namespace {

using fz::fail;
using fz::reader;
using fz::tls_marks;
using fz::trace;

using socket_t = asock::tcp_socket;
using engine_t = asock::engine;

constexpr int slot_count = 3;
constexpr int max_actions = 64;
constexpr std::size_t arg_bytes = 8;
constexpr std::size_t byte_budget = 8u << 20;
constexpr std::uint8_t canary = 0xA5;
constexpr std::size_t canary_len = 16;

struct incarnation;

enum class op_kind : std::uint8_t { send, receive, notify };
enum class style : std::uint8_t { callback, await, await_token, await_prestopped, sync_wait };
enum class cb_action : std::uint8_t { none, close, destroy };
enum dir : int { dir_send = 0, dir_recv = 1 };
enum class fault : std::uint8_t { pass, eagain, eintr, reset, error, shortio, zero, over, count_ };

const char* fault_name(fault f)
{
    static const char* names[] = {"pass", "EAGAIN", "EINTR", "ECONNRESET", "error", "short", "zero", "over-report"};
    return names[static_cast<int>(f)];
}
const char* kind_name(op_kind k)
{
    return k == op_kind::send ? "send" : k == op_kind::receive ? "receive" : "notify";
}
const char* style_name(style s)
{
    static const char* names[] = {"callback", "co_await", "co_await+token", "co_await+stopped token", "sync_wait"};
    return names[static_cast<int>(s)];
}

struct op_rec {
    op_kind kind;
    style how = style::callback;
    incarnation* inc;
    std::uint32_t id = 0;
    std::uint32_t epoch = 0;
    std::vector<std::uint8_t> mem;
    std::vector<std::uint32_t> ends;
    std::uint32_t total = 0;
    std::vector<asock::const_buffer> cdesc;
    std::vector<asock::mutable_buffer> mdesc;
    bool single = false; ///< passed as one buffer (by value) rather than a span
    asock::notify_io_type ntype = asock::notify_io_type::in;
    asock::send_operation sop;
    asock::receive_operation rop;
    asock::notify_operation nop;
    std::stop_source stop;
    cb_action action = cb_action::none;
    int chain_left = 0;
    std::atomic<bool> chain_token{false};
    std::atomic<int> calls{0};
    std::atomic<int> accepted{-1}; ///< -1 start in progress; 0 rejected; 1 started (a callback / resumption follows)
    std::atomic<int> result{0};
    std::atomic<std::uint32_t> bytes{0};
    std::atomic<std::uint32_t> ticket{0};
    std::atomic<bool> eof_eligible{false};
    std::atomic<bool> inline_done{false};
    std::atomic<std::uint64_t> began_seq{0};
    std::atomic<std::uint64_t> cb_seq{0};
    std::atomic<std::uint64_t> ret_seq{0};
    // Custom transport accounting, under inc->mu.
    std::uint64_t wire = 0;
    std::uint64_t consumed = 0;
    bool over = false;
    bool faulted = false;
};

struct incarnation {
    int slot = 0;
    std::uint32_t serial = 0;
    bool custom = false;
    bool tcp = false;
    bool custom_owner = false;
    bool default_engine = false;
    std::atomic<socket_t*> sock{nullptr};
    int mine = -1;
    int io_fd = -1;
    int peer = -1;
    int opened_fd = -1;
    std::uint64_t salt = 0;
    bool opened = false;
    bool closed = false;
    std::uint64_t conc_close_call = 0;
    std::uint64_t conc_close_return = 0;
    std::atomic<bool> close_started{false};
    std::atomic<bool> main_close_returned{false};
    std::atomic<bool> destroy_returned{false};
    std::atomic<bool> cb_owned{false};
    std::atomic<bool> cb_close_armed{false};
    std::atomic<bool> cb_destroy_done{false};
    std::atomic<bool> api_from_callbacks{false};
    std::atomic<bool> peer_eof_sent{false};
    /// A TCP peer closed or reset: an RST may have discarded what its send()
    /// had accepted, so "every byte before the end of stream" no longer holds.
    std::atomic<bool> peer_reset{false};
    std::atomic<int> claim{0};
    std::atomic<int> active_chains[2] = {0, 0};
    std::uint32_t epoch_now[2] = {0, 0};
    std::atomic<std::uint32_t> max_done[2] = {0, 0};
    std::atomic<std::uint32_t> recv_tickets{0};
    std::atomic<int> live_coros{0};
    std::atomic<int> owner_disconnects{0};
    std::atomic<int> owner_destroys{0};
    std::mutex mu;
    std::vector<std::unique_ptr<op_rec>> ops;
    std::map<const std::uint8_t*, op_rec*> by_addr;
    std::deque<std::pair<fault, std::uint8_t>> faults[2];
    std::uint32_t over_epoch = UINT32_MAX;
    std::vector<std::uint8_t> peer_got;
    bool peer_incomplete = false;
    std::uint64_t peer_written = 0;
};

struct input_state {
    asock::engine_ref<engine_t> engine;
    unsigned threads = 1;
    std::vector<std::unique_ptr<incarnation>> all;
    incarnation* slots[slot_count] = {};
    std::size_t budget = byte_budget;
    std::uint32_t next_serial = 1;
};

std::atomic<std::uint32_t> g_next_id{1};
std::atomic<std::uint64_t> g_seq{1};
fz::progress& g_progress = *new fz::progress; // never destroyed: engine threads may notify it up to the end
input_state* g_in = nullptr;

// ---- records -----------------------------------------------------------------------

op_rec* new_op(incarnation* I, op_kind kind)
{
    auto op = std::make_unique<op_rec>();
    op->kind = kind;
    op->inc = I;
    op->id = g_next_id.fetch_add(1);
    op_rec* p = op.get();
    std::lock_guard lk(I->mu);
    I->ops.push_back(std::move(op));
    return p;
}

void shape(op_rec* op, std::uint32_t total, std::uint32_t count)
{
    total = std::max<std::uint32_t>(total, 1);
    count = std::max<std::uint32_t>(1, std::min(count, total));
    op->total = total;
    if (op->kind == op_kind::send) {
        op->mem.resize(total);
        for (std::uint32_t i = 0; i < total; ++i) {
            op->mem[i] = fz::send_byte(op->id, i);
        }
    } else {
        op->mem.assign(total + canary_len, canary);
    }
    const std::uint32_t base = total / count;
    std::uint32_t at = 0;
    for (std::uint32_t i = 0; i < count; ++i) {
        const std::uint32_t from = at;
        at += i + 1 == count ? total - at : base;
        op->ends.push_back(at);
        if (op->kind == op_kind::send) {
            op->cdesc.emplace_back(op->mem.data() + from, at - from);
        } else {
            op->mdesc.emplace_back(op->mem.data() + from, at - from);
        }
    }
    op->single = count == 1 && (op->id & 1) != 0; // one buffer: sometimes by value, sometimes as a span
    std::lock_guard lk(op->inc->mu);
    op->inc->by_addr[op->mem.data()] = op;
}

op_rec* find_op(incarnation* I, const void* p, std::size_t len)
{
    const auto* b = static_cast<const std::uint8_t*>(p);
    auto it = I->by_addr.upper_bound(b);
    if (it == I->by_addr.begin()) {
        return nullptr;
    }
    --it;
    op_rec* op = it->second;
    const std::size_t room = op->kind == op_kind::send ? op->mem.size() : op->total;
    if (b < op->mem.data() || b + len > op->mem.data() + room) {
        return nullptr;
    }
    return op;
}

std::uint32_t buffer_end(const op_rec* op, std::uint64_t offset)
{
    for (std::uint32_t e : op->ends) {
        if (offset < e) {
            return e;
        }
    }
    return op->total;
}

// ---- the custom transport and the custom owner -----------------------------------

void check_transport_call(incarnation* I, const char* what)
{
    if (I->destroy_returned.load()) {
        fail("%s of socket %u called after the socket was destroyed", what, I->serial);
    }
    if (I->main_close_returned.load()) {
        fail("%s of socket %u called after close() returned", what, I->serial);
    }
}

int transport_send(void* context, const void* buf, std::size_t len)
{
    const fz::in_flight scope;
    auto* I = static_cast<incarnation*>(context);
    check_transport_call(I, "on_send");
    if (tls_marks.harness && tls_marks.in_send == 0 && tls_marks.in_loop == 0) {
        fail("on_send of socket %u called on a harness thread outside a send start and outside the loop", I->serial);
    }
    std::unique_lock lk(I->mu);
    op_rec* op = find_op(I, buf, len);
    if (op == nullptr || op->kind != op_kind::send || len == 0) {
        fail("on_send of socket %u given %zu bytes at %p: not inside any send's buffers", I->serial, len, buf);
    }
    const std::uint64_t offset = static_cast<const std::uint8_t*>(buf) - op->mem.data();
    if (op->over) {
        fail("on_send called again for send #%u after it over-reported", op->id);
    }
    if (op->calls.load() != 0) {
        fail("on_send called for send #%u after it completed", op->id);
    }
    if (offset != op->wire) {
        fail("on_send for send #%u at offset %llu, but %llu bytes were already taken", op->id,
             static_cast<unsigned long long>(offset), static_cast<unsigned long long>(op->wire));
    }
    if (offset + len != buffer_end(op, offset)) {
        fail("on_send for send #%u: %zu bytes at offset %llu, not the rest of its buffer (ends at %u)", op->id, len,
             static_cast<unsigned long long>(offset), buffer_end(op, offset));
    }
    fault f = fault::pass;
    std::uint8_t arg = 0;
    if (!I->faults[dir_send].empty()) {
        f = I->faults[dir_send].front().first;
        arg = I->faults[dir_send].front().second;
        I->faults[dir_send].pop_front();
    }
    auto really_send = [&](std::size_t n) -> long {
        const long r = ::send(I->io_fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r < 0) {
            fz::check_not_ebadf(errno, "on_send's send", I->io_fd);
        } else {
            op->wire += static_cast<std::uint64_t>(r);
        }
        return r;
    };
    long ret = -1;
    int err = 0;
    switch (f) {
    case fault::pass:
    case fault::count_:
        ret = really_send(len);
        err = errno;
        break;
    case fault::eagain: err = EAGAIN; break;
    case fault::eintr: err = EINTR; break;
    case fault::reset:
        op->faulted = true;
        err = ECONNRESET;
        break;
    case fault::error:
        op->faulted = true;
        err = arg % 3 == 0 ? EIO : arg % 3 == 1 ? ENOTCONN : EPIPE;
        break;
    case fault::shortio:
        ret = really_send(std::min<std::size_t>(len, 1 + arg % 16));
        err = errno;
        break;
    case fault::zero:
        op->faulted = true;
        ret = 0;
        break;
    case fault::over:
        really_send(arg % 2 != 0 ? len : std::min<std::size_t>(len, 1 + arg % 8));
        op->over = true;
        op->faulted = true;
        I->over_epoch = std::min(I->over_epoch, op->epoch);
        ret = static_cast<long>(len + 1 + arg % 64);
        break;
    }
    lk.unlock();
    errno = err;
    return static_cast<int>(ret);
}

int transport_recv(void* context, void* buf, std::size_t len)
{
    const fz::in_flight scope;
    auto* I = static_cast<incarnation*>(context);
    check_transport_call(I, "on_recv");
    if (tls_marks.harness && tls_marks.in_loop == 0 && tls_marks.starting == nullptr) {
        fail("on_recv of socket %u called on a harness thread outside a receive start and outside the loop",
             I->serial);
    }
    std::unique_lock lk(I->mu);
    op_rec* op = find_op(I, buf, len);
    if (op == nullptr || op->kind != op_kind::receive || len == 0) {
        fail("on_recv of socket %u given %zu bytes at %p: not inside any receive's buffers", I->serial, len, buf);
    }
    if (tls_marks.harness && tls_marks.in_loop == 0 && op->how == style::callback) {
        fail("on_recv for callback-form receive #%u ran on the starting thread (it must be tried on an engine thread)",
             op->id);
    }
    const std::uint64_t offset = static_cast<std::uint8_t*>(buf) - op->mem.data();
    if (op->calls.load() != 0) {
        fail("on_recv called for receive #%u after it completed", op->id);
    }
    if (op->over) {
        fail("on_recv called again for receive #%u after it over-reported", op->id);
    }
    if (offset != op->consumed) {
        fail("on_recv for receive #%u at offset %llu, but %llu bytes were already read into it", op->id,
             static_cast<unsigned long long>(offset), static_cast<unsigned long long>(op->consumed));
    }
    if (offset + len != buffer_end(op, offset)) {
        fail("on_recv for receive #%u: %zu bytes at offset %llu, not the rest of its buffer (ends at %u)", op->id,
             len, static_cast<unsigned long long>(offset), buffer_end(op, offset));
    }
    fault f = fault::pass;
    std::uint8_t arg = 0;
    if (!I->faults[dir_recv].empty()) {
        f = I->faults[dir_recv].front().first;
        arg = I->faults[dir_recv].front().second;
        I->faults[dir_recv].pop_front();
    }
    auto really_recv = [&](std::size_t n) -> long {
        const long r = ::recv(I->io_fd, buf, n, MSG_DONTWAIT);
        if (r < 0) {
            fz::check_not_ebadf(errno, "on_recv's recv", I->io_fd);
        } else {
            op->consumed += static_cast<std::uint64_t>(r);
        }
        return r;
    };
    long ret = -1;
    int err = 0;
    switch (f) {
    case fault::pass:
    case fault::count_:
        ret = really_recv(len);
        err = errno;
        break;
    case fault::eagain: err = EAGAIN; break;
    case fault::eintr: err = EINTR; break;
    case fault::reset:
        op->faulted = true;
        err = ECONNRESET;
        break;
    case fault::error:
        op->faulted = true;
        err = arg % 2 == 0 ? EIO : ENOTCONN;
        break;
    case fault::shortio:
        ret = really_recv(std::min<std::size_t>(len, 1 + arg % 16));
        err = errno;
        break;
    case fault::zero:
        op->faulted = true;
        ret = 0;
        break;
    case fault::over:
        op->over = true;
        op->faulted = true;
        ret = static_cast<long>(len + 1 + arg % 64);
        break;
    }
    lk.unlock();
    errno = err;
    return static_cast<int>(ret);
}

void owner_disconnect(void* context, int fd)
{
    const fz::in_flight scope;
    auto* I = static_cast<incarnation*>(context);
    if (fd != I->opened_fd) {
        fail("socket %u: the owner's disconnect got descriptor %d, the socket was opened with %d", I->serial, fd,
             I->opened_fd);
    }
    if (I->owner_destroys.load() != 0) {
        fail("socket %u: the owner's disconnect called after its destroy", I->serial);
    }
    I->owner_disconnects.fetch_add(1);
    ::shutdown(fd, SHUT_RDWR);
}

void owner_destroy(void* context, int fd)
{
    const fz::in_flight scope;
    auto* I = static_cast<incarnation*>(context);
    if (fd != I->opened_fd) {
        fail("socket %u: the owner's destroy got descriptor %d, the socket was opened with %d", I->serial, fd,
             I->opened_fd);
    }
    I->owner_destroys.fetch_add(1);
    if (::close(fd) != 0) {
        fz::check_not_ebadf(errno, "the owner's close", fd);
    }
}

// ---- completions ------------------------------------------------------------------------

void check_order(op_rec* op, dir d)
{
    incarnation* I = op->inc;
    std::uint32_t prev = I->max_done[d].load();
    while (prev < op->epoch && !I->max_done[d].compare_exchange_weak(prev, op->epoch)) {
    }
    if (op->epoch < prev) {
        fail("callback-form %s #%u (epoch %u) completed after a later-started one (epoch %u) had completed",
             kind_name(op->kind), op->id, op->epoch, prev);
    }
}

/// Where a completion runs, and how often.
void enter_completion(op_rec* op)
{
    incarnation* I = op->inc;
    // An awaiter's resumption is posted to the engine when close, the
    // destructor or a stop request completed it: it may come later. A
    // callback may not.
    if (op->how == style::callback && I->destroy_returned.load()) {
        fail("callback-form %s #%u of socket %u completed after the socket was destroyed", kind_name(op->kind),
             op->id, I->serial);
    }
    if (op->how == style::callback && I->main_close_returned.load()) {
        fail("callback-form %s #%u of socket %u completed after close() returned", kind_name(op->kind), op->id,
             I->serial);
    }
    op->cb_seq.store(g_seq.fetch_add(1));
    const int calls = op->calls.fetch_add(1) + 1;
    if (calls != 1) {
        fail("%s #%u (%s) of socket %u completed %d times", kind_name(op->kind), op->id, style_name(op->how),
             I->serial, calls);
    }
    if (op->accepted.load() == 0) {
        fail("%s #%u of socket %u: callback of a rejected operation", kind_name(op->kind), op->id, I->serial);
    }
    const bool inline_here = tls_marks.starting == op;
    op->inline_done.store(inline_here);
    if (op->how == style::callback) {
        if (inline_here && op->kind != op_kind::send) {
            fail("callback-form %s #%u: callback on the calling thread before the start call returned",
                 kind_name(op->kind), op->id);
        }
        if (tls_marks.harness && tls_marks.in_loop == 0) {
            const bool ok = op->kind == op_kind::send ? (tls_marks.in_send > 0 || tls_marks.in_close > 0)
                                                      : tls_marks.in_close > 0;
            if (!ok && tls_marks.in_stop > 0 && !fz::skipped("callback-on-stopping-thread")) {
                fail("[callback-on-stopping-thread] callback-form %s #%u of socket %u: its callback (result %d) ran "
                     "on the thread that called request_stop() for another operation of the socket, inside that "
                     "call; design.md: a callback-form send completes on the calling thread only when it completes "
                     "at once, otherwise on an engine thread (close / the destructor excepted)",
                     kind_name(op->kind), op->id, I->serial, op->result.load());
            }
            if (!ok && tls_marks.in_stop == 0) {
                fail("callback-form %s #%u: callback on a harness thread outside %s (must be an engine thread)",
                     kind_name(op->kind), op->id,
                     op->kind == op_kind::send ? "its send call, close or the destructor" : "close / the destructor");
            }
        }
    } else if (tls_marks.harness && tls_marks.in_loop == 0 && !inline_here) {
        fail("%s #%u (%s): the coroutine resumed on a harness thread outside its own start and outside the loop "
             "(in close: %d; it must be resumed on an engine thread)",
             kind_name(op->kind), op->id, style_name(op->how), tls_marks.in_close);
    }
}

void release_chain(op_rec* op, dir d)
{
    if (op->chain_token.exchange(false)) {
        op->inc->active_chains[d].fetch_sub(1);
    }
}

void check_all_completed(incarnation* I, const char* when)
{
    std::lock_guard lk(I->mu);
    for (const auto& op : I->ops) {
        if (op->how != style::callback) {
            continue; // awaiters are resumed on an engine thread, later
        }
        const int a = op->accepted.load();
        const int c = op->calls.load();
        if (a == -1 && c == 0) {
            fail("%s of socket %u returned while the start of %s #%u was still in progress", when, I->serial,
                 kind_name(op->kind), op->id);
        }
        if (a == 1 && c != 1) {
            fail("%s of socket %u returned, but started callback-form %s #%u had %d callbacks", when, I->serial,
                 kind_name(op->kind), op->id, c);
        }
    }
}

/// Destroys the socket of `I`. A socket on the default engine may hold that
/// engine's last reference: its destructor then destroys the engine, which
/// runs what was posted to it and not yet run (awaiters' resumptions) on
/// this thread, as a loop thread would (design.md, "Engine").
void destroy_socket(incarnation* I)
{
    ++tls_marks.in_close;
    tls_marks.in_loop += I->default_engine ? 1 : 0;
    delete I->sock.load();
    tls_marks.in_loop -= I->default_engine ? 1 : 0;
    --tls_marks.in_close;
    I->destroy_returned.store(true);
}

void run_action(op_rec* op)
{
    incarnation* I = op->inc;
    if (op->action == cb_action::close) {
        I->close_started.store(true);
        ++tls_marks.in_close;
        I->sock.load()->close();
        --tls_marks.in_close;
    } else if (op->action == cb_action::destroy) {
        int expected = 0;
        if (!I->claim.compare_exchange_strong(expected, 2)) {
            return;
        }
        I->close_started.store(true);
        destroy_socket(I);
        check_all_completed(I, "the destructor (from a completion)");
        if (I->opened && (I->owner_disconnects.load() != (I->custom_owner ? 1 : 0) ||
                          I->owner_destroys.load() != (I->custom_owner ? 1 : 0))) {
            fail("socket %u destroyed: owner disconnect %d, destroy %d times", I->serial, I->owner_disconnects.load(),
                 I->owner_destroys.load());
        }
        I->cb_destroy_done.store(true);
    }
}

void record_send(op_rec* op, asock::send_result r)
{
    incarnation* I = op->inc;
    const int v = static_cast<int>(r);
    const bool callback = op->how == style::callback;
    if (callback ? (r != asock::send_result::ok && r != asock::send_result::error &&
                    r != asock::send_result::abandoned)
                 : (v < 1 || v > 6)) {
        fail("send #%u (%s): result %d is not one its form gives", op->id, style_name(op->how), v);
    }
    op->result.store(v);
    if (callback) {
        check_order(op, dir_send);
    }
    if (r == asock::send_result::cancelled && op->how == style::await_prestopped && !op->inline_done.load()) {
        fail("send #%u: its token was stopped before the start, but it did not complete at once", op->id);
    }
    if (I->custom) {
        std::lock_guard lk(I->mu);
        if (op->over && r != asock::send_result::error) {
            fail("send #%u: its transport over-reported, but it completed %s, not error", op->id,
                 std::string(asock::to_string(r)).c_str());
        }
        if (r == asock::send_result::ok && I->over_epoch < op->epoch) {
            fail("send #%u (epoch %u) completed ok after a send of epoch %u over-reported", op->id, op->epoch,
                 I->over_epoch);
        }
        if (r == asock::send_result::ok && op->wire != op->total) {
            fail("send #%u completed ok, but on_send wrote %llu of its %u bytes", op->id,
                 static_cast<unsigned long long>(op->wire), op->total);
        }
        if ((r == asock::send_result::not_open || r == asock::send_result::invalid_argument) && op->wire != 0) {
            fail("send #%u answered %s after on_send had written %llu of its bytes", op->id,
                 std::string(asock::to_string(r)).c_str(), static_cast<unsigned long long>(op->wire));
        }
    }
}

void record_receive(op_rec* op, asock::receive_result r, std::uint32_t n)
{
    incarnation* I = op->inc;
    const int v = static_cast<int>(r);
    const bool callback = op->how == style::callback;
    op->ticket.store(I->recv_tickets.fetch_add(1) + 1);
    if (callback ? (r != asock::receive_result::ok && r != asock::receive_result::error &&
                    r != asock::receive_result::abandoned)
                 : (v < 1 || v > 6)) {
        fail("receive #%u (%s): result %d is not one its form gives", op->id, style_name(op->how), v);
    }
    if (r == asock::receive_result::ok ? (n == 0 || n > op->total) : n != 0) {
        fail("receive #%u (%s): %s with %u bytes (room %u; only ok carries bytes, and on Linux a cancelled receive "
             "has read none)",
             op->id, style_name(op->how), std::string(asock::to_string(r)).c_str(), n, op->total);
    }
    op->result.store(v);
    op->bytes.store(n);
    if (callback) {
        check_order(op, dir_recv);
    }
    if (r == asock::receive_result::cancelled && op->how == style::await_prestopped && !op->inline_done.load()) {
        fail("receive #%u: its token was stopped before the start, but it did not complete at once", op->id);
    }
    if (r == asock::receive_result::ok) {
        for (std::size_t i = n; i < op->mem.size(); ++i) {
            if (op->mem[i] != canary) {
                fail("receive #%u: byte %zu written, past bytes_received %u", op->id, i, n);
            }
        }
    }
    bool faulted = false;
    if (I->custom) {
        std::lock_guard lk(I->mu);
        faulted = op->faulted;
        if (op->over && r != asock::receive_result::error) {
            fail("receive #%u: its transport over-reported, but it completed %s, not error", op->id,
                 std::string(asock::to_string(r)).c_str());
        }
        if (r == asock::receive_result::ok && op->consumed != n) {
            fail("receive #%u completed with %u bytes, but on_recv read %llu into it", op->id, n,
                 static_cast<unsigned long long>(op->consumed));
        }
        if (r != asock::receive_result::ok && !op->over && op->consumed != 0) {
            fail("receive #%u completed %s, losing the %llu bytes on_recv had read into it", op->id,
                 std::string(asock::to_string(r)).c_str(), static_cast<unsigned long long>(op->consumed));
        }
    }
    op->eof_eligible.store(r == asock::receive_result::abandoned && !faulted && !I->close_started.load() &&
                           I->peer_eof_sent.load() && !I->peer_reset.load());
}

void record_notify(op_rec* op, asock::notify_io_result r)
{
    const int v = static_cast<int>(r);
    const bool callback = op->how == style::callback;
    if (callback ? (v < 1 || v > 4) : (v < 1 || v > 7)) {
        fail("notify #%u (%s): result %d is not one its form gives", op->id, style_name(op->how), v);
    }
    if ((r == asock::notify_io_result::in && op->ntype != asock::notify_io_type::in) ||
        (r == asock::notify_io_result::out && op->ntype != asock::notify_io_type::out)) {
        fail("notify #%u for %d completed %s", op->id, static_cast<int>(op->ntype),
             std::string(asock::to_string(r)).c_str());
    }
    op->result.store(v);
}

void start_op(incarnation* I, socket_t* s, op_rec* op);

void continue_chain(op_rec* prev)
{
    incarnation* I = prev->inc;
    op_rec* op = new_op(I, prev->kind);
    op->how = style::callback;
    op->epoch = prev->epoch;
    op->chain_left = prev->chain_left - 1;
    shape(op, prev->kind == op_kind::send ? 1 + prev->id % 97 : prev->total, 1 + prev->id % 2);
    op->chain_token.store(true);
    prev->chain_token.store(false);
    start_op(I, I->sock.load(), op);
    if (op->accepted.load() != 1) {
        release_chain(op, prev->kind == op_kind::send ? dir_send : dir_recv);
    }
}

void after_completion(op_rec* op, bool ok)
{
    const dir d = op->kind == op_kind::send ? dir_send : dir_recv;
    if (op->chain_token.load()) {
        if (op->chain_left > 0 && ok) {
            continue_chain(op);
        } else {
            release_chain(op, d);
        }
    }
    run_action(op);
    g_progress.notify();
}

void on_send_done(void* context, asock::send_result r)
{
    const fz::in_flight scope;
    auto* op = static_cast<op_rec*>(context);
    op->result.store(static_cast<int>(r)); // for the messages of enter_completion
    enter_completion(op);
    record_send(op, r);
    after_completion(op, r == asock::send_result::ok);
}

void on_receive_done(void* context, asock::receive_result r, std::uint32_t n)
{
    const fz::in_flight scope;
    auto* op = static_cast<op_rec*>(context);
    enter_completion(op);
    record_receive(op, r, n);
    after_completion(op, r == asock::receive_result::ok);
}

void on_notify_done(void* context, asock::notify_io_result r)
{
    const fz::in_flight scope;
    auto* op = static_cast<op_rec*>(context);
    enter_completion(op);
    record_notify(op, r);
    run_action(op);
    g_progress.notify();
}

/// A co_await of one operation, in a coroutine that spawn starts at once;
/// `s` is used only before the first suspension.
asock::task<void> await_one(op_rec* op, socket_t* s, std::stop_token token)
{
    incarnation* I = op->inc;
    std::optional<fz::in_flight> scope; // from the resumption on
    switch (op->kind) {
    case op_kind::send: {
        const asock::send_result r = op->single
                                         ? co_await s->send_async(op->cdesc[0], token)
                                         : co_await s->send_async(std::span<const asock::const_buffer>(op->cdesc), token);
        scope.emplace();
        enter_completion(op);
        record_send(op, r);
        break;
    }
    case op_kind::receive: {
        const asock::receive_outcome r =
            op->single ? co_await s->receive_async(op->mdesc[0], token)
                       : co_await s->receive_async(std::span<const asock::mutable_buffer>(op->mdesc), token);
        scope.emplace();
        enter_completion(op);
        record_receive(op, r.result, r.bytes_received);
        break;
    }
    case op_kind::notify: {
        const asock::notify_io_result r = co_await s->notify_io_async(op->ntype, token);
        scope.emplace();
        enter_completion(op);
        record_notify(op, r);
        break;
    }
    }
    run_action(op);
    g_progress.notify();
    I->live_coros.fetch_sub(1); // last: the records may go once it is 0
}

/// A coroutine that awaits `count` sends or receives in a row on its socket
/// (it uses the socket after resuming: the socket's api_from_callbacks is set).
asock::task<void> await_chain(incarnation* I, op_kind kind, std::uint32_t epoch, int count, std::uint32_t size)
{
    for (int i = 0; i < count; ++i) {
        op_rec* op = new_op(I, kind);
        op->how = style::await;
        op->epoch = epoch;
        shape(op, size, 1 + static_cast<std::uint32_t>(i % 2));
        socket_t* s = I->sock.load();
        op->began_seq.store(g_seq.fetch_add(1));
        op->accepted.store(1);
        // Marks this start on the current thread, so that an inline completion
        // is recognised. (Left set when the coroutine suspends: only harness
        // threads are checked, and they restore their own mark.)
        tls_marks.starting = op;
        bool ok = false;
        if (kind == op_kind::send) {
            const asock::send_result r = co_await s->send_async(std::span<const asock::const_buffer>(op->cdesc));
            const fz::in_flight scope;
            enter_completion(op);
            record_send(op, r);
            ok = r == asock::send_result::ok;
        } else {
            const asock::receive_outcome r = co_await s->receive_async(std::span<const asock::mutable_buffer>(op->mdesc));
            const fz::in_flight scope;
            enter_completion(op);
            record_receive(op, r.result, r.bytes_received);
            ok = r.result == asock::receive_result::ok;
        }
        g_progress.notify();
        if (!ok) {
            break;
        }
    }
    I->active_chains[kind == op_kind::send ? dir_send : dir_recv].fetch_sub(1);
    g_progress.notify();
    I->live_coros.fetch_sub(1); // last: the records may go once it is 0
}

/// Starts `op` on `s` in its style. Callback form: sets accepted from the
/// immediate answer. Awaitable forms: always started (the answer comes with
/// the completion).
void start_op(incarnation* I, socket_t* s, op_rec* op)
{
    const void* saved = tls_marks.starting;
    tls_marks.starting = op;
    op->began_seq.store(g_seq.fetch_add(1));
    if (op->how == style::callback) {
        int immediate = 0;
        if (op->kind == op_kind::send) {
            ++tls_marks.in_send;
            const asock::send_sync_result r =
                op->single ? s->send_async(op->sop, op->cdesc[0], on_send_done, op)
                           : s->send_async(op->sop, std::span<const asock::const_buffer>(op->cdesc), on_send_done, op);
            --tls_marks.in_send;
            immediate = static_cast<int>(r);
            if (immediate < 1 || immediate > 4) {
                fail("send #%u: send_sync_result %d", op->id, immediate);
            }
            op->accepted.store(r == asock::send_sync_result::ok ? 1 : 0);
        } else if (op->kind == op_kind::receive) {
            const asock::start_result r =
                op->single ? s->receive_async(op->rop, op->mdesc[0], on_receive_done, op)
                           : s->receive_async(op->rop, std::span<const asock::mutable_buffer>(op->mdesc),
                                              on_receive_done, op);
            immediate = static_cast<int>(r);
            op->accepted.store(r == asock::start_result::started ? 1 : 0);
        } else {
            const asock::start_result r = s->notify_io_async(op->nop, op->ntype, on_notify_done, op);
            immediate = static_cast<int>(r);
            op->accepted.store(r == asock::start_result::started ? 1 : 0);
        }
        if (op->accepted.load() != 1) {
            op->result.store(immediate); // (an accepted one's callback stores its result, maybe on another thread)
        }
        if (op->accepted.load() == 0 && op->calls.load() != 0) {
            fail("%s #%u: rejected (%d), but its callback ran", kind_name(op->kind), op->id, immediate);
        }
        if (op->accepted.load() == 0 && op->kind == op_kind::send && I->custom) {
            std::lock_guard lk(I->mu);
            if (op->wire != 0) {
                fail("send #%u: rejected (%d) after on_send had written %llu of its bytes", op->id, immediate,
                     static_cast<unsigned long long>(op->wire));
            }
        }
    } else {
        std::stop_token token;
        if (op->how == style::await_token || op->how == style::await_prestopped) {
            token = op->stop.get_token();
            if (op->how == style::await_prestopped) {
                op->stop.request_stop();
            }
        }
        op->accepted.store(1);
        I->live_coros.fetch_add(1);
        ++tls_marks.in_send; // a send may complete (and run on_send) inside the start
        asock::spawn(await_one(op, s, token));
        --tls_marks.in_send;
    }
    op->ret_seq.store(g_seq.fetch_add(1));
    tls_marks.starting = saved;
}

// ---- the engine's loop (threads == 0) --------------------------------------------------

/// Waits up to `ms` for `pred`, running the loop when the engine has no threads.
template <class Pred>
bool wait_until(Pred pred, int ms)
{
    if (g_in->threads != 0) {
        return g_progress.wait_for(pred, std::chrono::milliseconds(ms));
    }
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    ++tls_marks.in_loop;
    bool ok = false;
    for (;;) {
        while (g_in->engine->poll() != 0) {
        }
        if ((ok = pred())) {
            break;
        }
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count();
        if (left <= 0) {
            break;
        }
        g_in->engine->run_one(static_cast<int>(std::min<long long>(left, 5)));
    }
    --tls_marks.in_loop;
    return ok;
}

// ---- actions ----------------------------------------------------------------------------

std::uint32_t take_budget(std::uint32_t want)
{
    if (want > g_in->budget) {
        want = 1;
    }
    g_in->budget -= std::min<std::size_t>(g_in->budget, want);
    return want;
}

std::uint32_t size_class(reader& r)
{
    switch (r.below(5)) {
    case 0: return 1;
    case 1: return 1 + r.below(16);
    case 2: return 17 + r.u16() % 4080;
    case 3: return 4097 + r.u16() % 61440;
    default: return 65536 + static_cast<std::uint32_t>(r.u16()) * 12;
    }
}

bool usable(incarnation* I)
{
    return I != nullptr && I->sock.load() != nullptr && !I->cb_owned.load();
}
bool known_open(incarnation* I)
{
    return I->opened && !I->closed && !I->cb_close_armed.load();
}
bool known_not_open(incarnation* I)
{
    return !I->opened || I->closed;
}

std::uint32_t next_epoch(incarnation* I, dir d)
{
    if (I->active_chains[d].load() == 0) {
        ++I->epoch_now[d];
    }
    return I->epoch_now[d];
}

style pick_style(reader& r)
{
    switch (r.below(8)) {
    case 0:
    case 1:
    case 2: return style::callback;
    case 3:
    case 4: return style::await;
    case 5:
    case 6: return style::await_token;
    default: return style::await_prestopped;
    }
}

cb_action pick_action(reader& r)
{
    const unsigned v = r.below(16);
    return v == 0 ? cb_action::close : v == 1 ? cb_action::destroy : cb_action::none;
}

void arm(incarnation* I, op_rec* op, cb_action a)
{
    op->action = a;
    if (a == cb_action::close) {
        I->cb_close_armed.store(true);
        I->api_from_callbacks.store(true);
    } else if (a == cb_action::destroy) {
        I->cb_owned.store(true);
    }
}

const char* action_name(cb_action a)
{
    return a == cb_action::close ? " +close on completion" : a == cb_action::destroy ? " +destroy on completion" : "";
}

/// What the immediate answer (callback form) or the completion (co_await
/// forms) must be for an operation started with these arguments on this
/// socket: docs/awaitables.md, "Bad input: one answer per condition". 0: no
/// fixed answer.
int expected_answer(incarnation* I, const op_rec* op, bool valid_socket, bool bad_args)
{
    const bool callback = op->how == style::callback;
    if (!valid_socket) {
        // not_open in every form: send_sync_result / start_result / *_result values
        if (callback) {
            return op->kind == op_kind::send ? static_cast<int>(asock::send_sync_result::not_open)
                                             : static_cast<int>(asock::start_result::not_open);
        }
        return op->kind == op_kind::send      ? static_cast<int>(asock::send_result::not_open)
               : op->kind == op_kind::receive ? static_cast<int>(asock::receive_result::not_open)
                                              : static_cast<int>(asock::notify_io_result::not_open);
    }
    if (bad_args) {
        if (callback) {
            return op->kind == op_kind::send ? static_cast<int>(asock::send_sync_result::invalid_argument)
                                             : static_cast<int>(asock::start_result::invalid_argument);
        }
        return op->kind == op_kind::send      ? static_cast<int>(asock::send_result::invalid_argument)
               : op->kind == op_kind::receive ? static_cast<int>(asock::receive_result::invalid_argument)
                                              : static_cast<int>(asock::notify_io_result::invalid_argument);
    }
    if (op->how == style::await_prestopped) {
        return op->kind == op_kind::send      ? static_cast<int>(asock::send_result::cancelled)
               : op->kind == op_kind::receive ? static_cast<int>(asock::receive_result::cancelled)
                                              : static_cast<int>(asock::notify_io_result::cancelled);
    }
    if (known_not_open(I)) {
        if (callback) {
            return op->kind == op_kind::send ? static_cast<int>(asock::send_sync_result::not_open)
                                             : static_cast<int>(asock::start_result::not_open);
        }
        return op->kind == op_kind::send      ? static_cast<int>(asock::send_result::not_open)
               : op->kind == op_kind::receive ? static_cast<int>(asock::receive_result::not_open)
                                              : static_cast<int>(asock::notify_io_result::not_open);
    }
    if (known_open(I) && callback && op->kind != op_kind::send) {
        return static_cast<int>(asock::start_result::started) + 100; // 100 + started: must be accepted
    }
    return 0;
}

/// Checks the answer of a start with fixed expectations. For co_await forms
/// the answer must also come at once (inline).
void check_answer(op_rec* op, int want, const char* what)
{
    if (want == 0) {
        return;
    }
    if (op->how == style::callback) {
        const int got = op->accepted.load() == 1 ? (op->kind == op_kind::send ? 1 : 0) : op->result.load();
        if (want >= 100) {
            if (op->accepted.load() != 1) {
                fail("%s #%u (%s) with valid arguments on an open socket was refused (%d)", kind_name(op->kind),
                     op->id, what, got);
            }
            return;
        }
        if (got != want || op->accepted.load() != 0) {
            fail("%s #%u (%s): immediate answer %d, accepted %d; docs/awaitables.md's table says %d",
                 kind_name(op->kind), op->id, what, got, op->accepted.load(), want);
        }
        return;
    }
    if (want >= 100) {
        return;
    }
    if (op->calls.load() != 1 || !op->inline_done.load() || op->result.load() != want) {
        fail("%s #%u (%s, %s): completed %d times, inline %d, result %d; docs/awaitables.md's table says %d at once",
             kind_name(op->kind), op->id, style_name(op->how), what, op->calls.load(), op->inline_done.load(),
             op->result.load(), want);
    }
}

void retire(incarnation* I);

incarnation* create(int slot, reader& r)
{
    if (g_in->slots[slot] != nullptr) {
        retire(g_in->slots[slot]);
    }
    const unsigned v = r.below(8);
    const bool tcp = r.below(3) == 0;
    const bool owner = r.below(2) == 0;
    auto inc = std::make_unique<incarnation>();
    incarnation* I = inc.get();
    I->slot = slot;
    I->serial = g_in->next_serial++;
    I->salt = (static_cast<std::uint64_t>(I->serial) << 8) ^ 0x99;
    I->custom = v >= 4 && v < 6;
    I->custom_owner = owner;
    I->default_engine = v == 7;
    socket_t* s = nullptr;
    const asock::custom_transport ct{transport_send, I, transport_recv, I};
    if (v == 6) {
        // No socket: an empty one, or creation refused for half a custom transport.
        socket_t empty;
        socket_t half(*g_in->engine, asock::custom_transport{transport_send, I, nullptr, nullptr});
        for (socket_t* e : {&empty, &half}) {
            if (e->valid()) {
                fail("a socket %s is valid", e == &empty ? "constructed empty" : "with on_send but no on_recv");
            }
            if (e->state() != asock::socket_state::closed) {
                fail("a socket without a core reports state %d, not closed", static_cast<int>(e->state()));
            }
            asock::send_operation so;
            asock::receive_operation ro;
            asock::notify_operation no;
            std::uint8_t b[4] = {};
            const auto r1 = e->send_async(so, asock::const_buffer{b, 4}, on_send_done, nullptr);
            const auto r2 = e->receive_async(ro, asock::mutable_buffer{b, 4}, on_receive_done, nullptr);
            const auto r3 = e->notify_io_async(no, asock::notify_io_type::in, on_notify_done, nullptr);
            const auto r4 = e->send_async(so, asock::const_buffer{b, 4}, nullptr, nullptr);
            if (r1 != asock::send_sync_result::not_open || r2 != asock::start_result::not_open ||
                r3 != asock::start_result::not_open || r4 != asock::send_sync_result::not_open) {
                fail("a socket without a core answered %d %d %d %d, not not_open (docs/awaitables.md: no socket "
                     "comes first)",
                     static_cast<int>(r1), static_cast<int>(r2), static_cast<int>(r3), static_cast<int>(r4));
            }
            const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (e->open(fd) != asock::open_result::error) {
                fail("open on a socket without a core did not fail");
            }
            ::close(fd); // not taken
            e->close();
        }
        trace("create slot %d: empty sockets answer not_open", slot);
        return nullptr;
    }
    if (I->default_engine) {
        s = new socket_t(socket_t::on_default_engine());
    } else if (I->custom) {
        s = new socket_t(*g_in->engine, ct);
    } else {
        s = new socket_t(*g_in->engine);
    }
    if (!s->valid()) {
        fail("a new socket is not valid");
    }
    if (s->state() != asock::socket_state::created) {
        fail("a new socket is in state %d, not created", static_cast<int>(s->state()));
    }
    fz::conn_pair p;
    if (!(tcp ? fz::make_tcp_pair(p) : fz::make_unix_pair(p)) && !(tcp && fz::make_unix_pair(p))) {
        fail("cannot make a connected pair: %s", std::strerror(errno));
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(p.peer, reinterpret_cast<sockaddr*>(&ss), &len);
    I->tcp = ss.ss_family == AF_INET;
    I->mine = p.mine;
    I->peer = p.peer;
    if (I->custom) {
        I->io_fd = ::fcntl(I->mine, F_DUPFD_CLOEXEC, 0);
    }
    I->sock.store(s);
    g_in->slots[slot] = I;
    g_in->all.push_back(std::move(inc));
    trace("create slot %d: socket %u %s%s over %s%s", slot, I->serial, I->custom ? "custom transport" : "plain",
          I->default_engine ? " on the default engine" : "", I->tcp ? "TCP" : "AF_UNIX",
          I->custom_owner ? ", custom owner" : "");
    return I;
}

void on_open_cb(void* context, asock::open_result r)
{
    auto* calls = static_cast<int*>(context);
    if (r != asock::open_result::ok) {
        fail("open_async callback with %d, not ok", static_cast<int>(r));
    }
    if (tls_marks.in_open == 0) {
        fail("open_async callback outside the open_async call");
    }
    ++*calls;
}

void open_slot(incarnation* I, int variant)
{
    socket_t* s = I->sock.load();
    const asock::basic_handle_owner<int> owner =
        I->custom_owner ? asock::basic_handle_owner<int>{I, owner_disconnect, owner_destroy}
                        : asock::default_platform::default_owner();
    switch (variant) {
    case 0:
    case 1: { // the real thing, open or open_async
        const bool fresh = !I->opened && I->mine >= 0;
        int fd = I->mine;
        fz::conn_pair spare;
        if (!fresh) {
            if (!fz::make_unix_pair(spare)) {
                fail("socketpair failed");
            }
            fd = spare.mine;
        }
        int calls = 0;
        asock::open_result res;
        if (fresh) {
            I->opened_fd = fd;
        }
        if (variant == 0) {
            res = s->open(fd, owner);
        } else {
            ++tls_marks.in_open;
            res = s->open_async(fd, owner, on_open_cb, &calls);
            --tls_marks.in_open;
        }
        trace("open socket %u: %s%s -> %d", I->serial, fresh ? "fresh descriptor" : "again",
              variant == 1 ? " (open_async)" : "", static_cast<int>(res));
        if (fresh) {
            if (res != asock::open_result::ok || (variant == 1 && calls != 1)) {
                fail("open of a created socket on a connected descriptor: %d, %d callbacks", static_cast<int>(res),
                     calls);
            }
            if (s->state() != asock::socket_state::open || s->native_handle() != fd) {
                fail("after open: state %d, handle %d (opened %d)", static_cast<int>(s->state()), s->native_handle(),
                     fd);
            }
            I->mine = -1;
            I->opened = true;
        } else {
            if (res != asock::open_result::error || calls != 0) {
                fail("a second open returned %d with %d callbacks", static_cast<int>(res), calls);
            }
            ::close(spare.mine); // not taken
            ::close(spare.peer);
        }
        break;
    }
    case 2: { // open_async without a callback
        if (I->opened || I->mine < 0) {
            break;
        }
        const asock::open_result res = s->open_async(I->mine, owner, nullptr, nullptr);
        trace("open socket %u: open_async with no callback -> %d", I->serial, static_cast<int>(res));
        if (res != asock::open_result::error || s->state() != asock::socket_state::created) {
            fail("open_async with no callback: %d, state %d", static_cast<int>(res), static_cast<int>(s->state()));
        }
        break;
    }
    default: { // not a socket: a pipe, a negative or a closed descriptor
        if (I->custom) {
            break; // a custom transport's descriptor only has to be accepted by epoll
        }
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            fail("pipe2 failed");
        }
        const int candidates[] = {fds[0], -1, -12345, 1 << 20};
        for (int fd : candidates) {
            const asock::open_result res = s->open(fd, owner);
            if (res != asock::open_result::error) {
                fail("open of socket %u on descriptor %d (not a socket) returned %d", I->serial, fd,
                     static_cast<int>(res));
            }
        }
        ::close(fds[0]);
        ::close(fds[1]);
        if (!I->opened && s->state() != asock::socket_state::created) {
            fail("a refused open left the socket in state %d", static_cast<int>(s->state()));
        }
        trace("open socket %u: a pipe, -1, -12345 and an unused number refused", I->serial);
        break;
    }
    }
}

void op_action(incarnation* I, op_kind kind, reader& r)
{
    socket_t* s = I->sock.load();
    op_rec* op = new_op(I, kind);
    op->how = pick_style(r);
    const unsigned form = r.below(12);
    bool bad = false;
    const char* what = "";
    std::uint32_t total = 8;
    std::uint32_t count = 1;
    int chain = 0;
    if (kind == op_kind::notify) {
        switch (form % 6) {
        case 0:
        case 1:
        case 2: op->ntype = asock::notify_io_type::in; break;
        case 3:
        case 4: op->ntype = asock::notify_io_type::out; break;
        default:
            op->ntype = static_cast<asock::notify_io_type>(form == 5 ? 0 : 3 + r.below(250));
            bad = true;
            what = "a type neither in nor out";
            break;
        }
    } else {
        switch (form) {
        case 0: total = take_budget(kind == op_kind::send ? size_class(r) : 1 + r.u16() % 4096); break;
        case 1:
            count = 2 + r.below(7);
            total = take_budget(std::max(count, kind == op_kind::send ? size_class(r) : 1 + r.u16() % 4096));
            break;
        case 2:
            count = 65 + r.below(200);
            total = take_budget(count * (1 + r.below(3)));
            break;
        case 3: total = take_budget(kind == op_kind::send ? 65536 + static_cast<std::uint32_t>(r.u16()) * 15 : 65536); break;
        case 4:
        case 5:
            chain = 1 + static_cast<int>(r.below(kind == op_kind::send ? 24 : 8));
            total = take_budget(1 + r.below(200));
            break;
        case 6: bad = true; what = "no buffers"; break;
        case 7: bad = true; what = "a null buffer"; break;
        case 8: bad = true; what = "a zero length"; break;
        case 9: bad = true; what = "lengths past UINT32_MAX"; break;
        case 10:
            bad = op->how == style::callback;
            what = bad ? "a null callback" : "";
            break;
        default: break;
        }
    }
    if (kind != op_kind::notify) {
        shape(op, total, count);
    }
    op->epoch = next_epoch(I, kind == op_kind::receive ? dir_recv : dir_send);
    const bool coroutine_chain = chain > 0 && op->how != style::callback;
    if (!bad) {
        cb_action a = pick_action(r);
        // An awaiter is resumed after its socket is gone when close or the
        // destructor completed it: a completion that destroys the socket
        // must not share it with completions that still use it (a close on
        // completion, a chain).
        if (a == cb_action::destroy && (chain > 0 || I->api_from_callbacks.load())) {
            a = cb_action::none;
        }
        arm(I, op, a);
    }
    if (chain > 0) {
        I->api_from_callbacks.store(true);
        if (coroutine_chain) {
            // A coroutine awaiting `chain` operations in a row on the socket.
            op->accepted.store(0); // this record is not used: the coroutine makes its own
            op->action = cb_action::none;
            I->active_chains[kind == op_kind::send ? dir_send : dir_recv].fetch_add(1);
            I->live_coros.fetch_add(1);
            ++tls_marks.in_send;
            const void* saved = tls_marks.starting;
            asock::spawn(await_chain(I, kind, op->epoch, chain, total));
            tls_marks.starting = saved;
            --tls_marks.in_send;
            trace("%s coroutine chain on socket %u: %d x %u bytes, epoch %u", kind_name(kind), I->serial, chain, total,
                  op->epoch);
            return;
        }
        op->chain_left = chain;
        op->chain_token.store(true);
        I->active_chains[kind == op_kind::send ? dir_send : dir_recv].fetch_add(1);
    }
    if (bad && kind != op_kind::notify) {
        // Spoil the descriptors as asked.
        if (form == 6) {
            op->cdesc.clear();
            op->mdesc.clear();
            op->single = false;
        } else if (form == 7) {
            op->cdesc.empty() ? void() : void(op->cdesc[0].data = nullptr);
            op->mdesc.empty() ? void() : void(op->mdesc[0].data = nullptr);
        } else if (form == 8) {
            op->cdesc.empty() ? void() : void(op->cdesc[0].size = 0);
            op->mdesc.empty() ? void() : void(op->mdesc[0].size = 0);
        } else if (form == 9) {
            op->single = false;
            op->cdesc.assign({{fz::forbidden_page(), UINT32_MAX}, {fz::forbidden_page(), 1}});
            op->mdesc.assign({{fz::forbidden_page(), UINT32_MAX}, {fz::forbidden_page(), 1}});
        }
    }
    const int want = expected_answer(I, op, true, bad);
    if (form == 10 && op->how == style::callback && kind != op_kind::notify) {
        // A null callback.
        const void* saved = tls_marks.starting;
        tls_marks.starting = op;
        const int got = kind == op_kind::send
                            ? static_cast<int>(s->send_async(op->sop, std::span<const asock::const_buffer>(op->cdesc),
                                                             nullptr, op))
                            : static_cast<int>(s->receive_async(
                                  op->rop, std::span<const asock::mutable_buffer>(op->mdesc), nullptr, op));
        tls_marks.starting = saved;
        op->accepted.store(0);
        op->result.store(got);
        release_chain(op, kind == op_kind::send ? dir_send : dir_recv);
    } else {
        start_op(I, s, op);
        if (op->accepted.load() != 1) {
            release_chain(op, kind == op_kind::send ? dir_send : dir_recv);
        }
    }
    std::string outcome;
    if (op->how == style::callback) {
        outcome = op->accepted.load() == 1 ? "accepted" : fz::format("refused (%d)", op->result.load());
    } else {
        outcome = op->inline_done.load() ? fz::format("completed at once: %d", op->result.load()) : "pending";
    }
    trace("%s #%u on socket %u (%s): %u bytes in %u buffers%s%s, epoch %u, chain %d%s -> %s", kind_name(kind), op->id,
          I->serial, style_name(op->how), op->total, static_cast<unsigned>(op->ends.size()), bad ? ", bad: " : "",
          what, op->epoch, op->chain_left, action_name(op->action), outcome.c_str());
    check_answer(op, want, bad ? what : "valid arguments");
}

void close_action(incarnation* I, bool concurrent = false)
{
    socket_t* s = I->sock.load();
    const bool effective = I->opened && !I->closed && !I->cb_close_armed.load();
    if (I->opened) {
        I->close_started.store(true);
    }
    const std::uint64_t call_seq = g_seq.fetch_add(1);
    ++tls_marks.in_close;
    s->close();
    --tls_marks.in_close;
    const std::uint64_t return_seq = g_seq.fetch_add(1);
    trace("close socket %u%s%s", I->serial, effective ? "" : " (not open, or a completion may close it)",
          concurrent ? " (while other threads start operations)" : "");
    if (I->opened) {
        I->closed = true;
        if (s->state() != asock::socket_state::closed && effective) {
            fail("after close() the socket is in state %d, not closed", static_cast<int>(s->state()));
        }
    }
    if (!effective) {
        return;
    }
    if (I->custom_owner && I->owner_disconnects.load() != 1) {
        fail("close() of socket %u called the owner's disconnect %d times, not once", I->serial,
             I->owner_disconnects.load());
    }
    if (!concurrent) {
        check_all_completed(I, "close()");
        I->main_close_returned.store(true);
        return;
    }
    I->conc_close_call = call_seq;
    I->conc_close_return = return_seq;
}

void check_concurrent_close(incarnation* I)
{
    if (I->conc_close_call == 0 || fz::skipped("close-waits-for-concurrent-starts")) {
        return;
    }
    std::lock_guard lk(I->mu);
    for (const auto& op : I->ops) {
        const std::uint64_t began = op->began_seq.load();
        if (op->how != style::callback || began == 0 || began > I->conc_close_call || op->accepted.load() != 1) {
            continue;
        }
        const std::uint64_t cb = op->cb_seq.load();
        if (cb == 0 || cb > I->conc_close_return) {
            fail("[close-waits-for-concurrent-starts] callback-form %s #%u of socket %u: its start call began on "
                 "another thread before close() was called and was accepted, but its callback ran %s close "
                 "returned (start call began %llu, close called %llu, returned %llu, callback %llu, start call "
                 "returned %llu; result %d, inline %d)",
                 kind_name(op->kind), op->id, I->serial, cb == 0 ? "never, even after" : "after",
                 static_cast<unsigned long long>(began), static_cast<unsigned long long>(I->conc_close_call),
                 static_cast<unsigned long long>(I->conc_close_return), static_cast<unsigned long long>(cb),
                 static_cast<unsigned long long>(op->ret_seq.load()), op->result.load(), op->inline_done.load());
        }
    }
    I->conc_close_call = 0;
}

/// Stops the token of one of the socket's awaiting operations (that may have
/// completed already: then nothing happens).
void cancel_action(incarnation* I, reader& r)
{
    std::vector<op_rec*> candidates;
    {
        std::lock_guard lk(I->mu);
        for (const auto& op : I->ops) {
            if (op->how == style::await_token && !op->stop.stop_requested()) {
                candidates.push_back(op.get());
            }
        }
    }
    if (candidates.empty()) {
        return;
    }
    op_rec* op = candidates[r.below(static_cast<unsigned>(std::min<std::size_t>(candidates.size(), 256)))];
    const int before = op->calls.load();
    ++tls_marks.in_stop;
    op->stop.request_stop();
    --tls_marks.in_stop;
    trace("cancel %s #%u of socket %u (%s)", kind_name(op->kind), op->id, I->serial,
          before != 0 ? "already completed" : "pending");
}

void burst_action(incarnation* I, reader& r)
{
    socket_t* s = I->sock.load();
    const unsigned senders = 2 + r.below(2);
    const unsigned per = 1 + r.below(4);
    const bool receiver = r.below(2) == 0;
    const bool close_meanwhile = r.below(6) == 0;
    const unsigned c = r.u8();
    const bool canceller = c % 2 == 0;
    const unsigned styles = (c >> 1) % 4; // 0 mixed, 1 all callback form, 2 all co_await, 3 all co_await + token
    const unsigned sizes = r.u8();
    const std::uint64_t seed = r.u16();
    const std::uint32_t send_epoch = next_epoch(I, dir_send);
    const std::uint32_t recv_epoch = receiver ? next_epoch(I, dir_recv) : 0;
    std::vector<std::vector<op_rec*>> plans(senders + (receiver ? 1 : 0));
    std::vector<op_rec*> cancellable;
    unsigned n = 0;
    for (unsigned t = 0; t < plans.size(); ++t) {
        const bool rx = t == senders;
        for (unsigned k = 0; k < per; ++k) {
            const std::uint64_t x = fz::mix(seed * 64 + n++);
            op_rec* op = new_op(I, rx ? op_kind::receive : op_kind::send);
            op->epoch = rx ? recv_epoch : send_epoch;
            const unsigned pick = styles == 0 ? static_cast<unsigned>(x % 3) : styles - 1;
            op->how = pick == 0 ? style::callback : pick == 1 ? style::await : style::await_token;
            const bool large = !rx && (sizes & 3) == 0 && (x >> 4) % 4 == 0;
            const std::uint32_t total =
                rx ? 1 + static_cast<std::uint32_t>((x >> 8) % 512)
                   : take_budget(large ? 4096 + static_cast<std::uint32_t>((x >> 8) % 65536)
                                       : 1 + static_cast<std::uint32_t>((x >> 8) % (1 + (sizes >> 2) * 8)));
            shape(op, total, 1 + static_cast<std::uint32_t>((x >> 40) % 3));
            plans[t].push_back(op);
            if (op->how == style::await_token) {
                cancellable.push_back(op);
            }
        }
    }
    trace("burst on socket %u begins: %u threads x %u operations%s%s%s", I->serial, senders, per,
          receiver ? ", a receiving thread" : "", canceller ? ", a cancelling thread" : "",
          close_meanwhile ? ", close meanwhile" : "");
    std::atomic<bool> go{false};
    std::atomic<int> running{0};
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < plans.size(); ++t) {
        running.fetch_add(1);
        threads.emplace_back([&, t] {
            tls_marks = fz::thread_marks{};
            tls_marks.harness = true;
            while (!go.load()) {
                std::this_thread::yield();
            }
            for (op_rec* op : plans[t]) {
                start_op(I, s, op);
            }
            running.fetch_sub(1);
        });
    }
    if (canceller && !cancellable.empty()) {
        threads.emplace_back([&] {
            tls_marks = fz::thread_marks{};
            tls_marks.harness = true;
            while (!go.load()) {
                std::this_thread::yield();
            }
            for (std::size_t i = 0; i < cancellable.size(); i += 2) {
                while (cancellable[i]->accepted.load() != 1 && running.load() != 0) {
                    std::this_thread::yield();
                }
                ++tls_marks.in_stop;
                cancellable[i]->stop.request_stop();
                --tls_marks.in_stop;
            }
        });
    }
    go.store(true);
    if (close_meanwhile) {
        auto any_returned = [&] {
            for (const auto& plan : plans) {
                for (op_rec* op : plan) {
                    if (op->ret_seq.load() != 0) {
                        return true;
                    }
                }
            }
            return false;
        };
        while (!any_returned()) {
            std::this_thread::yield();
        }
        close_action(I, true);
    }
    for (auto& t : threads) {
        t.join();
    }
    check_concurrent_close(I);
    trace("burst on socket %u ends (sends in epoch %u)", I->serial, send_epoch);
}

/// sync_wait(engine, awaitable) with a stop request from a timer thread: the
/// loop runs on this thread when the engine has none.
void sync_wait_action(incarnation* I, reader& r)
{
    socket_t* s = I->sock.load();
    const unsigned which = r.below(3);
    const int after_ms = static_cast<int>(r.below(30));
    op_rec* op = new_op(I, which == 0 ? op_kind::send : which == 1 ? op_kind::receive : op_kind::notify);
    op->how = style::sync_wait;
    op->ntype = r.below(2) == 0 ? asock::notify_io_type::in : asock::notify_io_type::out;
    if (op->kind != op_kind::notify) {
        shape(op, take_budget(op->kind == op_kind::send ? size_class(r) : 1 + r.u16() % 8192), 1);
    }
    op->epoch = next_epoch(I, op->kind == op_kind::receive ? dir_recv : dir_send);
    std::stop_source src;
    std::atomic<bool> done{false};
    std::thread timer([&] {
        tls_marks = fz::thread_marks{};
        tls_marks.harness = true;
        const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(after_ms);
        while (!done.load() && std::chrono::steady_clock::now() < end) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        ++tls_marks.in_stop;
        src.request_stop();
        --tls_marks.in_stop;
    });
    op->accepted.store(1);
    tls_marks.starting = op;
    ++tls_marks.in_loop; // sync_wait runs the loop here when the engine has no threads
    ++tls_marks.in_send;
    op->began_seq.store(g_seq.fetch_add(1));
    switch (op->kind) {
    case op_kind::send: {
        const asock::send_result res = asock::sync_wait(*g_in->engine, s->send_async(op->cdesc[0], src.get_token()));
        enter_completion(op);
        record_send(op, res);
        break;
    }
    case op_kind::receive: {
        const asock::receive_outcome res =
            asock::sync_wait(*g_in->engine, s->receive_async(op->mdesc[0], src.get_token()));
        enter_completion(op);
        record_receive(op, res.result, res.bytes_received);
        break;
    }
    case op_kind::notify: {
        const asock::notify_io_result res = asock::sync_wait(*g_in->engine, s->notify_io_async(op->ntype, src.get_token()));
        enter_completion(op);
        record_notify(op, res);
        break;
    }
    }
    --tls_marks.in_send;
    --tls_marks.in_loop;
    tls_marks.starting = nullptr;
    done.store(true);
    timer.join();
    trace("sync_wait %s #%u on socket %u (stop after %d ms) -> %d", kind_name(op->kind), op->id, I->serial, after_ms,
          op->result.load());
}

/// Moves the socket into a new object (construction or assignment) and checks
/// that the moved-from one answers like an empty socket.
void move_action(incarnation* I, reader& r)
{
    if (I->api_from_callbacks.load()) {
        return; // completions may use the object: a move must not race with them
    }
    socket_t* old = I->sock.load();
    socket_t* fresh = nullptr;
    const bool assign = r.below(2) == 0;
    if (assign) {
        fresh = new socket_t(*g_in->engine); // replaced: its own (unopened) core is released
        *fresh = std::move(*old);
    } else {
        fresh = new socket_t(std::move(*old));
    }
    I->sock.store(fresh);
    if (old->valid() || old->state() != asock::socket_state::closed) {
        fail("a moved-from socket is still valid (state %d)", static_cast<int>(old->state()));
    }
    asock::send_operation so;
    asock::receive_operation ro;
    std::uint8_t b[2] = {};
    if (old->send_async(so, asock::const_buffer{b, 2}, on_send_done, nullptr) != asock::send_sync_result::not_open ||
        old->receive_async(ro, asock::mutable_buffer{b, 2}, on_receive_done, nullptr) !=
            asock::start_result::not_open) {
        fail("a moved-from socket does not answer not_open");
    }
    old->close();
    delete old;
    trace("move socket %u (%s)", I->serial, assign ? "assignment" : "construction");
}

void peer_action(incarnation* I, reader& r, int which)
{
    if (I->peer < 0) {
        return;
    }
    switch (which) {
    case 0: {
        const std::uint32_t n = take_budget(size_class(r));
        std::vector<std::uint8_t> data(n);
        for (std::uint32_t i = 0; i < n; ++i) {
            data[i] = fz::peer_byte(I->salt, I->peer_written + i);
        }
        const long w = ::send(I->peer, data.data(), n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            const int err = errno;
            fz::check_not_ebadf(err, "send by the peer", I->peer);
            if (I->tcp && (err == ECONNRESET || err == EPIPE)) {
                // Reset (our side closed with unread data, say): TCP drops
                // what was still in flight, so the stream is not whole.
                I->peer_incomplete = true;
            }
        } else {
            I->peer_written += static_cast<std::uint64_t>(w);
        }
        trace("peer of socket %u: write %u -> %ld", I->serial, n, w);
        break;
    }
    case 1: {
        const std::size_t before = I->peer_got.size();
        const int rc = fz::peer_read_some(I->peer, I->peer_got, size_class(r));
        if (rc < 0) {
            I->peer_incomplete = true;
        }
        trace("peer of socket %u: read %zu%s", I->serial, I->peer_got.size() - before,
              rc > 0 ? " (end of stream)" : rc < 0 ? " (error)" : "");
        break;
    }
    case 2: {
        const int how = static_cast<int>(r.below(3));
        if (how != SHUT_RD) {
            I->peer_eof_sent.store(true);
        }
        if (how != SHUT_WR) {
            I->peer_incomplete = true;
        }
        ::shutdown(I->peer, how);
        trace("peer of socket %u: shutdown(%s)", I->serial, how == SHUT_RD ? "RD" : how == SHUT_WR ? "WR" : "RDWR");
        break;
    }
    default: {
        const bool reset = r.below(2) == 0;
        if (!I->tcp) {
            I->peer_eof_sent.store(true);
        }
        if (I->tcp) {
            I->peer_reset.store(true);
        }
        I->peer_incomplete = true;
        if (reset) {
            fz::reset_close(I->peer);
        } else {
            ::close(I->peer);
        }
        I->peer = -1;
        trace("peer of socket %u: %s", I->serial, reset ? "reset" : "close");
        break;
    }
    }
}

void fault_action(incarnation* I, reader& r)
{
    const dir d = r.below(2) == 0 ? dir_send : dir_recv;
    const auto f = static_cast<fault>(1 + r.below(static_cast<unsigned>(fault::count_) - 1));
    const unsigned n = 1 + r.below(4);
    const std::uint8_t arg = r.u8();
    if (!I->custom) {
        return;
    }
    std::lock_guard lk(I->mu);
    for (unsigned i = 0; i < n; ++i) {
        I->faults[d].emplace_back(f, static_cast<std::uint8_t>(arg + i));
    }
    trace("fault on socket %u: next %u %s calls: %s", I->serial, n, d == dir_send ? "on_send" : "on_recv",
          fault_name(f));
}

bool all_settled()
{
    for (const auto& inc : g_in->all) {
        if (inc->live_coros.load() != 0) {
            return false;
        }
        std::lock_guard lk(inc->mu);
        for (const auto& op : inc->ops) {
            if (op->accepted.load() == 1 && op->calls.load() == 0) {
                return false;
            }
        }
    }
    return true;
}

// ---- retiring a socket -------------------------------------------------------------------

void check_receives(incarnation* I)
{
    std::vector<fz::wire_send> chunks;
    std::uint64_t total = 0;
    bool eof = false;
    {
        std::lock_guard lk(I->mu);
        for (const auto& op : I->ops) {
            if (op->kind != op_kind::receive || op->calls.load() != 1) {
                continue;
            }
            const int res = op->result.load();
            std::uint32_t n = 0;
            if (res == static_cast<int>(asock::receive_result::ok)) {
                n = op->bytes.load();
            } else if (op->over) {
                n = static_cast<std::uint32_t>(op->consumed); // read, then dropped with the failure
            }
            if (res == static_cast<int>(asock::receive_result::cancelled) && op->consumed != 0) {
                fail("receive #%u was cancelled after on_recv had read %llu bytes into it (a cancelled receive "
                     "loses no byte)",
                     op->id, static_cast<unsigned long long>(op->consumed));
            }
            eof = eof || op->eof_eligible.load();
            if (n != 0) {
                chunks.push_back(fz::wire_send{op->id, op->epoch, true, op->mem.data(), n});
                total += n;
            }
        }
    }
    if (total > I->peer_written) {
        fail("socket %u: receives delivered %llu bytes, the peer wrote only %llu", I->serial,
             static_cast<unsigned long long>(total), static_cast<unsigned long long>(I->peer_written));
    }
    if (eof && total != I->peer_written) {
        fail("socket %u: a receive reported abandoned after the peer hung up, but only %llu of the %llu bytes the "
             "peer wrote before were delivered",
             I->serial, static_cast<unsigned long long>(total), static_cast<unsigned long long>(I->peer_written));
    }
    // The chunks, in start order (any order within an epoch), must tile the
    // first `total` bytes of the peer's stream: in order, none twice.
    std::vector<std::uint8_t> stream(total);
    for (std::uint64_t i = 0; i < total; ++i) {
        stream[i] = fz::peer_byte(I->salt, i);
    }
    fz::wire_checker checker(std::move(chunks), stream, true);
    const std::string why = checker.run();
    if (!why.empty()) {
        fail("socket %u: the received bytes are not the peer's stream in order: %s", I->serial, why.c_str());
    }
}

void check_sends(incarnation* I, bool complete)
{
    std::vector<fz::wire_send> sends;
    std::uint32_t torn_epoch = UINT32_MAX;
    {
        std::lock_guard lk(I->mu);
        for (const auto& op : I->ops) {
            if (op->kind != op_kind::send || op->accepted.load() != 1 || op->calls.load() != 1) {
                continue;
            }
            const int res = op->result.load();
            if (res == static_cast<int>(asock::send_result::not_open) ||
                res == static_cast<int>(asock::send_result::invalid_argument)) {
                continue; // never started: no byte may be on the stream
            }
            const bool ok = res == static_cast<int>(asock::send_result::ok);
            if (I->custom && !ok && op->wire > 0 && op->wire < op->total && !op->over) {
                torn_epoch = std::min(torn_epoch, op->epoch);
            }
            sends.push_back(fz::wire_send{op->id, op->epoch, ok, op->mem.data(), op->mem.size()});
        }
        for (const auto& op : I->ops) {
            if (op->kind == op_kind::send && op->result.load() == static_cast<int>(asock::send_result::ok) &&
                op->epoch > torn_epoch) {
                fail("send #%u (epoch %u) completed ok after a send of epoch %u was torn (part of it sent, then "
                     "failed or cancelled): the send direction must have failed for good",
                     op->id, op->epoch, torn_epoch);
            }
        }
    }
    fz::wire_checker checker(std::move(sends), I->peer_got, complete);
    const std::string why = checker.run();
    if (!why.empty()) {
        fail("socket %u (%s over %s): %s", I->serial, I->custom ? "custom transport" : "plain",
             I->tcp ? "TCP" : "AF_UNIX", why.c_str());
    }
}

void retire(incarnation* I)
{
    int expected = 0;
    if (I->claim.compare_exchange_strong(expected, 1)) {
        socket_t* s = I->sock.load();
        if (I->api_from_callbacks.load() && I->opened && !I->closed) {
            // Completions may use the socket: close it (nothing runs after
            // that), and let the coroutines that use it finish, before it goes.
            close_action(I);
        }
        if (I->api_from_callbacks.load() &&
            !wait_until([I] { return I->live_coros.load() == 0; }, 3000)) {
            fail("socket %u: coroutines still running 3 s after close()", I->serial);
        }
        if (I->opened) {
            I->close_started.store(true);
        }
        (void)s;
        destroy_socket(I);
        check_all_completed(I, "the destructor");
        if (I->custom_owner && I->opened &&
            (I->owner_disconnects.load() != 1 || I->owner_destroys.load() != 1)) {
            fail("socket %u destroyed: the owner's disconnect was called %d times, its destroy %d times (once each)",
                 I->serial, I->owner_disconnects.load(), I->owner_destroys.load());
        }
        trace("destroy socket %u", I->serial);
    } else if (!wait_until([I] { return I->cb_destroy_done.load(); }, 5000)) {
        fail("socket %u: the destroy from a completion did not return", I->serial);
    }
    if (!I->opened && I->custom_owner && (I->owner_disconnects.load() != 0 || I->owner_destroys.load() != 0)) {
        fail("socket %u was never opened, but its owner was called", I->serial);
    }
    // Awaiters of the socket are resumed on the engine: let them finish.
    if (!wait_until([I] { return I->live_coros.load() == 0; }, 3000)) {
        fail("socket %u: awaiting coroutines not resumed within 3 s of its destruction", I->serial);
    }
    if (I->mine >= 0) {
        ::close(I->mine);
        I->mine = -1;
    }
    if (I->io_fd >= 0) {
        ::close(I->io_fd);
        I->io_fd = -1;
    }
    bool complete = false;
    if (I->peer >= 0) {
        const int rc = fz::peer_drain(I->peer, I->peer_got, 3000);
        if (rc == 0) {
            fail("socket %u: its peer saw no end of stream within 3 s of the destruction", I->serial);
        }
        complete = rc > 0 && !I->peer_incomplete;
        ::close(I->peer);
        I->peer = -1;
    }
    check_sends(I, complete);
    check_receives(I);
    g_in->slots[I->slot] = nullptr;
}

incarnation* ensure(int slot)
{
    incarnation* I = g_in->slots[slot];
    if (I == nullptr) {
        std::uint8_t args[arg_bytes] = {static_cast<std::uint8_t>(slot == 2 ? 4 : 0),
                                        static_cast<std::uint8_t>(slot == 1 ? 0 : 1), 1};
        reader r{args, sizeof args};
        I = create(slot, r);
        if (I != nullptr) {
            open_slot(I, 0);
        }
    }
    return I;
}

void run_input(reader& in)
{
    for (int step = 0; step < max_actions && !in.empty(); ++step) {
        const unsigned code = in.below(32);
        const int slot = static_cast<int>(in.below(slot_count));
        reader r = in.block(arg_bytes);
        incarnation* I = g_in->slots[slot];
        if (code <= 2) {
            create(slot, r);
        } else if (code <= 4) {
            const int variant = static_cast<int>(r.below(6));
            if (usable(I)) {
                open_slot(I, variant < 3 ? 0 : variant - 2);
            }
        } else if (code <= 16) {
            I = ensure(slot);
            if (usable(I)) {
                op_action(I, code <= 10 ? op_kind::send : code <= 14 ? op_kind::receive : op_kind::notify, r);
            }
        } else if (code == 17) {
            if (usable(I)) {
                close_action(I);
            }
        } else if (code == 18) {
            if (I != nullptr) {
                retire(I);
            }
        } else if (code <= 21) {
            if (I != nullptr) {
                peer_action(I, r, 0);
            }
        } else if (code <= 23) {
            if (I != nullptr) {
                peer_action(I, r, 1);
            }
        } else if (code == 24) {
            if (I != nullptr) {
                peer_action(I, r, 2);
            }
        } else if (code == 25) {
            if (I != nullptr) {
                peer_action(I, r, 3);
            }
        } else if (code == 26) {
            I = ensure(slot);
            if (I != nullptr) {
                fault_action(I, r);
            }
        } else if (code == 27) {
            if (I != nullptr) {
                cancel_action(I, r);
            }
        } else if (code <= 29) {
            static const int ms[] = {0, 1, 5, 20, 60};
            const int w = ms[r.below(5)];
            const bool settled = wait_until(all_settled, w);
            trace("wait %d ms%s", w, settled ? " (all settled)" : "");
        } else if (code == 30) {
            I = ensure(slot);
            if (usable(I) && I->opened) {
                burst_action(I, r);
            }
        } else {
            I = ensure(slot);
            if (!usable(I)) {
                continue;
            }
            if (r.below(2) == 0) {
                if (I->opened && !I->closed) {
                    sync_wait_action(I, r);
                }
            } else {
                move_action(I, r);
            }
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    fz::install_sigpipe_trap();
    tls_marks = fz::thread_marks{};
    tls_marks.harness = true;
    fz::log_reset();
    fz::watchdog::get().arm(fz::watchdog::input_limit());
    const std::vector<std::string> fds_before = fz::fd_set_now();

    reader r{data, size};
    input_state in;
    g_in = &in;
    static const unsigned thread_choices[] = {0, 1, 2, 4};
    in.threads = thread_choices[r.below(4)];
    in.engine = asock::make_engine(asock::engine_options{.threads = in.threads});
    if (!in.engine) {
        fail("make_engine({.threads = %u}) failed", in.threads);
    }
    if (in.engine->thread_count() != in.threads) {
        fail("an engine made with %u threads has %u", in.threads, in.engine->thread_count());
    }
    trace("engine: %u threads", in.threads);

    run_input(r);

    for (int s = 0; s < slot_count; ++s) {
        if (in.slots[s] != nullptr) {
            retire(in.slots[s]);
        }
    }
    // The last reference runs whatever the engine still holds (resumptions
    // posted by closes and stop requests) on this thread, then the engine goes.
    ++tls_marks.in_loop;
    in.engine = {};
    --tls_marks.in_loop;
    fz::expect_no_new_fds(fds_before);
    fz::wait_no_harness_code_in_flight();
    for (const auto& inc : in.all) {
        if (inc->live_coros.load() != 0) {
            fail("socket %u: %d coroutines never finished", inc->serial, inc->live_coros.load());
        }
        std::lock_guard lk(inc->mu);
        for (const auto& op : inc->ops) {
            const int a = op->accepted.load();
            const int c = op->calls.load();
            if ((a == 1 && c != 1) || (a != 1 && c != 0)) {
                fail("%s #%u (%s) of socket %u: started %d, completions %d at the end", kind_name(op->kind), op->id,
                     style_name(op->how), inc->serial, a, c);
            }
        }
    }
    in.all.clear();
    g_in = nullptr;
    fz::watchdog::get().input_done();
    return 0;
}
