// asock/detail/sync_wait_probe.hpp: how sync_wait(awaitable) notices that it
// waits for an engine nobody runs.
//
// Rationale: sync_wait(awaitable) blocks its thread until the awaitable
// completes on some engine thread. An engine created with `threads = 0` has no
// threads: its loop runs only inside run() / run_one() / poll() (or
// sync_wait(engine, awaitable)). Awaiting one of its operations under the
// plain sync_wait, with no thread running that loop, can never complete: it
// used to hang without a word. While sync_wait(awaitable) runs the coroutine's
// first steps on its own thread, it installs a probe in a thread-local slot;
// every asock awaitable that suspends there records its engine in it. If the
// wait then lasts, sync_wait asks that engine whether any thread runs its
// loop, and stops the program with a message naming the mistake rather than
// hang forever.
#pragma once

#include <concepts>

namespace asock::detail {

struct sync_wait_probe {
    const void* engine = nullptr;
    bool (*unattended)(const void* engine) noexcept = nullptr;
};

inline thread_local sync_wait_probe* tls_sync_wait = nullptr;

/// Called by an awaitable about to suspend on an operation of `engine`.
template <class Engine>
void note_suspension(sync_wait_probe* probe, const Engine& engine) noexcept
{
    if constexpr (requires(const Engine& e) {
                      { e.loop_unattended() } -> std::same_as<bool>;
                  }) {
        probe->engine = &engine;
        probe->unattended = [](const void* e) noexcept { return static_cast<const Engine*>(e)->loop_unattended(); };
    } else {
        probe->engine = nullptr; // an engine that always has threads of its own
    }
}

} // namespace asock::detail
