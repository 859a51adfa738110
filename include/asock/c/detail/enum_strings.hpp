// asock/c/detail/enum_strings.hpp: defines the value-to-name functions that
// ASOCK_C_DEFINE_ENUM (asock/c/enum.h) declares. Used by implementation.hpp.
#pragma once

#include <asock/c/enum.h>

#include <cstring>
#include <type_traits>

namespace asock::c_api {

/// The number an enum object holds, read without an enum-typed load: a C
/// caller may pass any int, which C++ must not read through the enum type.
template <class E>
unsigned long long raw_enum_value(const E& value) noexcept
{
    std::underlying_type_t<E> raw;
    static_assert(sizeof raw == sizeof value);
    std::memcpy(&raw, &value, sizeof raw);
    return static_cast<unsigned long long>(raw);
}

} // namespace asock::c_api

// ASOCK_C_DEFINE_ENUM_STRINGS(NAME, NAME_VALUES): the definition of
// NAME_to_string. ASOCK_C_FOR_EACH applies a macro to each listed member (at
// most 16).
#define ASOCK_C_FE_1(m, a) m(a)
#define ASOCK_C_FE_2(m, a, ...) m(a) ASOCK_C_FE_1(m, __VA_ARGS__)
#define ASOCK_C_FE_3(m, a, ...) m(a) ASOCK_C_FE_2(m, __VA_ARGS__)
#define ASOCK_C_FE_4(m, a, ...) m(a) ASOCK_C_FE_3(m, __VA_ARGS__)
#define ASOCK_C_FE_5(m, a, ...) m(a) ASOCK_C_FE_4(m, __VA_ARGS__)
#define ASOCK_C_FE_6(m, a, ...) m(a) ASOCK_C_FE_5(m, __VA_ARGS__)
#define ASOCK_C_FE_7(m, a, ...) m(a) ASOCK_C_FE_6(m, __VA_ARGS__)
#define ASOCK_C_FE_8(m, a, ...) m(a) ASOCK_C_FE_7(m, __VA_ARGS__)
#define ASOCK_C_FE_9(m, a, ...) m(a) ASOCK_C_FE_8(m, __VA_ARGS__)
#define ASOCK_C_FE_10(m, a, ...) m(a) ASOCK_C_FE_9(m, __VA_ARGS__)
#define ASOCK_C_FE_11(m, a, ...) m(a) ASOCK_C_FE_10(m, __VA_ARGS__)
#define ASOCK_C_FE_12(m, a, ...) m(a) ASOCK_C_FE_11(m, __VA_ARGS__)
#define ASOCK_C_FE_13(m, a, ...) m(a) ASOCK_C_FE_12(m, __VA_ARGS__)
#define ASOCK_C_FE_14(m, a, ...) m(a) ASOCK_C_FE_13(m, __VA_ARGS__)
#define ASOCK_C_FE_15(m, a, ...) m(a) ASOCK_C_FE_14(m, __VA_ARGS__)
#define ASOCK_C_FE_16(m, a, ...) m(a) ASOCK_C_FE_15(m, __VA_ARGS__)
#define ASOCK_C_FE_PICK_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, n, ...) n
#define ASOCK_C_FOR_EACH(m, ...)                                                                                       \
    ASOCK_C_FE_PICK_(__VA_ARGS__, ASOCK_C_FE_16, ASOCK_C_FE_15, ASOCK_C_FE_14, ASOCK_C_FE_13, ASOCK_C_FE_12,          \
                     ASOCK_C_FE_11, ASOCK_C_FE_10, ASOCK_C_FE_9, ASOCK_C_FE_8, ASOCK_C_FE_7, ASOCK_C_FE_6,            \
                     ASOCK_C_FE_5, ASOCK_C_FE_4, ASOCK_C_FE_3, ASOCK_C_FE_2, ASOCK_C_FE_1, unused)                    \
    (m, __VA_ARGS__)

#define ASOCK_C_ENUM_NAME_(x) #x,

#define ASOCK_C_DEFINE_ENUM_STRINGS(name, values)                                                                      \
    ASOCK_C_API const char* name##_to_string(name value)                                                              \
    {                                                                                                                  \
        static const char* const names[] = {#name "_INVALID", ASOCK_C_FOR_EACH(ASOCK_C_ENUM_NAME_, values)};          \
        const unsigned long long index = ::asock::c_api::raw_enum_value(value);                                       \
        return index < sizeof(names) / sizeof(names[0]) ? names[index] : ASOCK_C_UNKNOWN_ENUM_VALUE;                 \
    }
