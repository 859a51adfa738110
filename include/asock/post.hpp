// asock/post.hpp: run a function on an engine thread.
//
//   asock::post(engine, [] { ... });       // one heap allocation per call
//   engine.post(&item);                    // an asock::work_item of your own: none
//
// post(engine, f) runs `f()` once, later, on one of the engine's threads (the
// caller's loop for an engine with threads = 0). Posted work runs before the
// engine is destroyed: destroying an engine runs everything posted to it
// first. An exception escaping `f` ends the program (std::terminate).
// In a coroutine, `co_await asock::schedule(engine)` (asock/time.hpp) moves
// the coroutine itself onto an engine thread without allocating.
//
// For posting without allocation, derive from asock::work_item, set `run`
// (a function taking the item back), keep the item alive until it ran, and
// pass it to engine.post(&item).
#pragma once

#include <asock/detail/operation.hpp>

#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

namespace asock {

/// An intrusive unit of work for engine.post(): `next` belongs to the engine
/// until `run(item)` is called.
using work_item = detail::work_item;

/// Runs `f()` on an engine thread; see the top of this header.
template <class Engine, class F>
void post(Engine& engine, F&& f)
{
    struct holder : work_item {
        std::decay_t<F> fn;
        explicit holder(F&& g) : fn(std::forward<F>(g)) {}
    };
    auto item = std::make_unique<holder>(std::forward<F>(f));
    item->run = [](work_item* w) noexcept {
        std::unique_ptr<holder> self(static_cast<holder*>(w));
        self->fn();
    };
    engine.post(item.release());
}

} // namespace asock
