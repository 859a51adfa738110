// asock/detail/combinator.hpp: how when_any, when_all and with_timeout hold
// and run each of their operations ("children").
//
// A child is one of:
// - an asock operation (detail::launchable: a socket's send / receive /
//   notify, a sleep, schedule, or another combinator): launched with a
//   listener embedded in the combinator and cancelled directly. No
//   allocation.
// - a factory: something callable with a std::stop_token that returns an
//   awaitable (a lambda that calls a coroutine, for example). The combinator
//   owns a std::stop_source for it (one allocation, made by the standard
//   library) and cancels the child by requesting stop; the awaitable it
//   returns is launched as above when it is an asock operation, else awaited
//   by a driver coroutine (one frame).
// - any other awaitable (an asock::task, ...): awaited by a driver coroutine
//   (one frame); it cannot be cancelled, so a combinator waits for it to end.
//
// Rvalue arguments are moved into the combinator (every asock awaitable can
// be moved until it is awaited); lvalue arguments, and rvalues of types that
// cannot move, are held by reference and must outlive the combinator.
#pragma once

#include <asock/detail/awaiter.hpp>
#include <asock/detail/continuation.hpp>

#include <array>
#include <atomic>
#include <concepts>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <stop_token>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace asock::detail {

template <class T>
using value_or_monostate = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// ---- the driver coroutine ---------------------------------------------------

struct driver_state {
    enum : int { launching = 0, launched = 1, finished = 2 };
    std::atomic<int> phase{launching};
    op_listener* listener = nullptr;
    std::exception_ptr exception;
};

struct driver {
    struct promise_type {
        driver_state* state = nullptr;

        driver get_return_object() noexcept { return driver{std::coroutine_handle<promise_type>::from_promise(*this)}; }
        std::suspend_always initial_suspend() const noexcept { return {}; }

        struct final_awaiter {
            bool await_ready() const noexcept { return false; }
            // The frame stays suspended here until the combinator destroys it.
            void await_suspend(std::coroutine_handle<promise_type> h) const noexcept
            {
                driver_state* st = h.promise().state;
                if (st->phase.exchange(driver_state::finished, std::memory_order_acq_rel) == driver_state::launched) {
                    st->listener->done(st->listener);
                }
            }
            void await_resume() const noexcept {}
        };
        final_awaiter final_suspend() const noexcept { return {}; }
        void return_void() const noexcept {}
        void unhandled_exception() noexcept { state->exception = std::current_exception(); }
    };
    std::coroutine_handle<promise_type> handle;
};

template <class X, class Out>
driver drive(X& x, Out& out)
{
    if constexpr (std::is_void_v<awaitable_result_t<X&&>>) {
        co_await static_cast<X&&>(x);
        out.emplace();
    } else {
        out.emplace(co_await static_cast<X&&>(x));
    }
}

/// Awaits `x` in a driver coroutine on behalf of a combinator.
template <class X>
class driven {
public:
    using value_type = value_or_monostate<awaitable_result_t<X&&>>;

    driven() noexcept = default;
    /// Before launch only (nothing to carry over).
    driven(driven&&) noexcept {}
    driven(const driven&) = delete;
    driven& operator=(const driven&) = delete;
    ~driven()
    {
        if (frame_) {
            frame_.destroy();
        }
    }

    /// launchable::launch for `x`. The frame's allocation failing ends the
    /// program (launch cannot report it).
    bool launch(X& x, op_listener* l) noexcept
    {
        state_.listener = l;
        driver d = drive(x, out_); // allocation failure: std::terminate (noexcept)
        frame_ = d.handle;
        frame_.promise().state = &state_;
        frame_.resume();
        return state_.phase.exchange(driver_state::launched, std::memory_order_acq_rel) != driver_state::finished;
    }

    value_type take()
    {
        if (state_.exception) {
            std::rethrow_exception(state_.exception);
        }
        return std::move(*out_);
    }

private:
    driver_state state_;
    std::optional<value_type> out_;
    std::coroutine_handle<driver::promise_type> frame_;
};

// ---- a child ------------------------------------------------------------------

template <class A>
inline constexpr bool held_by_value = !std::is_lvalue_reference_v<A> && std::is_move_constructible_v<std::remove_cvref_t<A>>;

template <class A>
using held_t = std::conditional_t<held_by_value<A>, std::remove_cvref_t<A>, std::remove_reference_t<A>&>;

/// Runs an awaitable `X` (held as `held_t`): launched directly when it is an
/// asock operation, through a driver otherwise.
template <class T>
struct launched_value {
    using type = value_or_monostate<decltype(std::declval<T&>().await_resume())>;
};
template <class T>
struct driven_value {
    using type = typename driven<T>::value_type;
};

/// The tag of the combinators' constructors (so that a one-argument
/// constructor template never passes for a copy or move constructor).
struct combinator_args_t {};

template <class X>
class awaitable_child {
    using plain = std::remove_reference_t<X>;

public:
    static constexpr bool cancellable = launchable<plain>;
    using value_type =
        typename std::conditional_t<launchable<plain>, launched_value<plain>, driven_value<plain>>::type;

    template <class U>
        requires(!std::same_as<std::remove_cvref_t<U>, awaitable_child>)
    explicit awaitable_child(U&& a) : x_(forward_to_member(a))
    {
    }
    awaitable_child(awaitable_child&&) = default; // before launch only

    /// Holds the awaitable `make()` returns, made in place (it need not move).
    struct from_call_t {};
    template <class G>
    awaitable_child(from_call_t, G&& make) : x_(std::forward<G>(make)())
    {
    }

    bool launch(op_listener* l) noexcept
    {
        if constexpr (launchable<plain>) {
            return x_.launch(l);
        } else {
            return driver_.launch(x_, l);
        }
    }

    void request_cancel() noexcept
    {
        if constexpr (launchable<plain>) {
            x_.request_cancel();
        }
    }

    value_type take()
    {
        if constexpr (launchable<plain>) {
            if constexpr (std::is_void_v<decltype(x_.await_resume())>) {
                x_.await_resume();
                return {};
            } else {
                return x_.await_resume();
            }
        } else {
            return driver_.take();
        }
    }

private:
    // A held reference binds to the argument even when it is an rvalue (it
    // lives until the end of the co_await's full expression).
    template <class U>
    static decltype(auto) forward_to_member(U& a) noexcept
    {
        if constexpr (std::is_reference_v<X>) {
            return static_cast<plain&>(a);
        } else {
            return static_cast<std::remove_cvref_t<U>&&>(a);
        }
    }

    X x_;
    [[no_unique_address]] std::conditional_t<launchable<plain>, std::monostate, driven<plain>> driver_;
};

/// A factory child: `f(token)` makes the awaitable when the child is launched.
template <class F>
class factory_child {
    using made = std::invoke_result_t<F&, std::stop_token>;

public:
    static constexpr bool cancellable = true;
    using value_type = typename awaitable_child<made>::value_type;

    template <class U>
        requires(!std::same_as<std::remove_cvref_t<U>, factory_child>)
    explicit factory_child(U&& f) : f_(std::forward<U>(f))
    {
    }
    /// Before launch only.
    factory_child(factory_child&& o) : f_(std::move(o.f_)), source_(std::move(o.source_)) {}
    factory_child(const factory_child&) = delete;
    factory_child& operator=(const factory_child&) = delete;
    ~factory_child()
    {
        if (made_) {
            std::destroy_at(child());
        }
    }

    bool launch(op_listener* l) noexcept
    {
        // The awaitable is made in place (it may not be movable).
        using c = awaitable_child<made>;
        ::new (static_cast<void*>(storage_)) c(typename c::from_call_t{}, [this] { return std::invoke(f_, source_.get_token()); });
        made_ = true;
        return child()->launch(l);
    }

    void request_cancel() noexcept { source_.request_stop(); }

    value_type take() { return child()->take(); }

private:
    awaitable_child<made>* child() noexcept { return std::launder(reinterpret_cast<awaitable_child<made>*>(storage_)); }

    F f_;
    std::stop_source source_;
    bool made_ = false;
    alignas(awaitable_child<made>) unsigned char storage_[sizeof(awaitable_child<made>)];
};

template <class A>
concept stop_token_factory = std::invocable<std::remove_cvref_t<A>&, std::stop_token> && !launchable<std::remove_cvref_t<A>>;

/// The child a combinator makes of an argument of type A (as deduced by a
/// forwarding reference).
template <class A>
using child_t = std::conditional_t<stop_token_factory<A>, factory_child<std::remove_cvref_t<A>>, awaitable_child<held_t<A>>>;

// ---- the group of children of when_any / when_all ------------------------------

/// Starts every child in argument order and counts them down; with
/// `FirstWins`, the first to finish is the winner and every other one is
/// asked to cancel. The count holds one extra share for the start itself,
/// and the winner cancels the others before it drops its own share, so the
/// group cannot finish (and go) while it still touches a child.
template <bool FirstWins, class... A>
class child_group {
public:
    static constexpr std::size_t count = sizeof...(A);
    static constexpr std::size_t none = ~std::size_t{0};
    static_assert(count > 0, "a combinator needs at least one operation");

    template <class... U>
    explicit child_group(combinator_args_t, U&&... args) : children_(std::forward<U>(args)...)
    {
        init_slots();
    }
    child_group(const child_group&) = delete;
    child_group& operator=(const child_group&) = delete;
    /// Before the start only.
    child_group(child_group&& o) : children_(std::move(o.children_)) { init_slots(); }

    /// Starts every child; false when all finished during the call (the
    /// continuation is then not used), true when `c` will be resumed.
    bool start(continuation c) noexcept
    {
        cont_ = c;
        remaining_.store(count + 1, std::memory_order_relaxed);
        launch_all(std::index_sequence_for<A...>{});
        return !release();
    }

    void request_cancel() noexcept
    {
        std::apply([](auto&... c) { (c.request_cancel(), ...); }, children_);
    }

    std::size_t winner() const noexcept { return winner_.load(std::memory_order_acquire); }

    /// Every child's value, in argument order (rethrows the first exception).
    std::tuple<typename child_t<A>::value_type...> take() { return take(std::index_sequence_for<A...>{}); }

private:
    struct slot : op_listener {
        child_group* self = nullptr;
        std::size_t index = 0;
    };

    void init_slots() noexcept
    {
        for (std::size_t i = 0; i < count; ++i) {
            slots_[i].done = &on_done;
            slots_[i].self = this;
            slots_[i].index = i;
        }
    }

    bool release() noexcept { return remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1; }

    template <std::size_t... I>
    void launch_all(std::index_sequence<I...>) noexcept
    {
        (launch_one<I>(), ...);
    }

    template <std::size_t I>
    void launch_one() noexcept
    {
        auto& child = std::get<I>(children_);
        if (FirstWins && winner_.load(std::memory_order_acquire) != none) {
            child.request_cancel(); // started already cancelled: it does nothing
        }
        if (!child.launch(&slots_[I])) {
            finished(I);
            release(); // never the last share: the start holds one
        }
    }

    void finished(std::size_t i) noexcept
    {
        if constexpr (FirstWins) {
            std::size_t expected = none;
            if (winner_.compare_exchange_strong(expected, i, std::memory_order_acq_rel)) {
                cancel_all_but(i, std::index_sequence_for<A...>{});
            }
        }
    }

    template <std::size_t... I>
    void cancel_all_but(std::size_t winner, std::index_sequence<I...>) noexcept
    {
        ((I != winner ? std::get<I>(children_).request_cancel() : void()), ...);
    }

    static void on_done(op_listener* l) noexcept
    {
        auto* s = static_cast<slot*>(l);
        child_group* self = s->self;
        self->finished(s->index);
        if (self->release()) {
            self->cont_.resume();
        }
    }

    template <std::size_t... I>
    std::tuple<typename child_t<A>::value_type...> take(std::index_sequence<I...>)
    {
        return std::tuple<typename child_t<A>::value_type...>{std::get<I>(children_).take()...};
    }

    std::tuple<child_t<A>...> children_;
    std::array<slot, count> slots_{};
    std::atomic<std::size_t> remaining_{0};
    std::atomic<std::size_t> winner_{none};
    continuation cont_;
};

} // namespace asock::detail
