/* asock/c/enum.h: the helpers every header of asock's C API uses.
 *
 * ASOCK_C_DEFINE_ENUM(NAME, NAME_VALUES) defines the C enum NAME whose first
 * member is NAME_INVALID = 0, followed by the members listed in the
 * NAME_VALUES macro, in order (so the first listed value is 1). It also
 * declares the value-to-name function of that enum:
 *
 *     const char* NAME_to_string(NAME value);
 *
 * which returns the member's name as a string ("NAME_INVALID" for 0) and
 * "ASOCK_C_UNKNOWN_ENUM_VALUE" for a number that names no member; it never
 * returns NULL. ASOCK_C_ENUM_TO_STRING(NAME, value) is the same call. The
 * library defines these functions (include/asock/c/detail/enum_strings.hpp).
 *
 * Compiles as C11 (also with -pedantic) and as C++. */
#ifndef ASOCK_C_ENUM_H
#define ASOCK_C_ENUM_H

#ifdef __cplusplus
#define ASOCK_C_BEGIN_DECLS extern "C" {
#define ASOCK_C_END_DECLS }
#else
#define ASOCK_C_BEGIN_DECLS
#define ASOCK_C_END_DECLS
#endif

/* Linkage of the C API's functions. The library is static (or an ELF shared
 * object with default visibility), so nothing is needed yet; a Windows DLL
 * build would put its import/export attribute here. */
#ifndef ASOCK_C_API
#define ASOCK_C_API
#endif

/* The name a value-to-name function returns for a number outside the enum. */
#define ASOCK_C_UNKNOWN_ENUM_VALUE "ASOCK_C_UNKNOWN_ENUM_VALUE"

#define ASOCK_C_DEFINE_ENUM(name, values)                                                                              \
    typedef enum name##_TAG { name##_INVALID = 0, values } name;                                                      \
    ASOCK_C_API const char* name##_to_string(name value);

#define ASOCK_C_ENUM_TO_STRING(name, value) name##_to_string(value)

#endif /* ASOCK_C_ENUM_H */
