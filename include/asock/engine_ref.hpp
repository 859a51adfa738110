// asock/engine_ref.hpp: an owning reference to an execution engine.
#pragma once

#include <utility>

namespace asock {

/// Holds one reference on an engine (engines are reference counted, as the
/// spec's execution engine is); copying adds one, destruction drops one. The
/// engine stops and joins its threads when its last reference goes, which
/// includes the references its sockets hold.
template <class Engine>
class engine_ref {
public:
    engine_ref() noexcept = default;
    /// Takes over one reference the caller already owns.
    explicit engine_ref(Engine* adopted) noexcept : e_(adopted) {}
    engine_ref(const engine_ref& o) noexcept : e_(o.e_)
    {
        if (e_ != nullptr) {
            e_->inc_ref();
        }
    }
    engine_ref(engine_ref&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
    engine_ref& operator=(engine_ref o) noexcept
    {
        std::swap(e_, o.e_);
        return *this;
    }
    ~engine_ref()
    {
        if (e_ != nullptr) {
            e_->dec_ref();
        }
    }

    /// Creates an engine; empty when the OS refused one.
    template <class Options>
    static engine_ref create(const Options& options)
    {
        return engine_ref(Engine::create(options));
    }

    Engine* get() const noexcept { return e_; }
    Engine& operator*() const noexcept { return *e_; }
    Engine* operator->() const noexcept { return e_; }
    explicit operator bool() const noexcept { return e_ != nullptr; }

private:
    Engine* e_ = nullptr;
};

} // namespace asock
