/* SPDX-License-Identifier: MIT */
/*
 * faultring_pin.h - compile-time layout pins shared by the contract headers:
 * a moved byte or a resized struct fails the build of every consumer, in C11
 * (_Static_assert) and in C++ (static_assert) alike.
 */
#ifndef FAULTRING_PIN_H
#define FAULTRING_PIN_H

#include <stddef.h>

#ifdef __cplusplus
#define FAULTRING_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define FAULTRING_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/** FAULTRING_PIN - struct @type's @field sits at byte @off. */
#define FAULTRING_PIN(type, field, off) \
	FAULTRING_STATIC_ASSERT(offsetof(struct type, field) == (off), #type "." #field " moved")
/** FAULTRING_PIN_SIZE - struct @type is @size bytes. */
#define FAULTRING_PIN_SIZE(type, size) FAULTRING_STATIC_ASSERT(sizeof(struct type) == (size), #type " changed size")

/*
 * FAULTRING_FLEX_BEGIN / _END - bracket structs that end in a flexible array
 * member. They are C99; ISO C++ has none, but GCC and Clang accept them as an
 * extension, and these keep a VMM's -pedantic -Werror C++ build quiet.
 */
#if defined(__cplusplus) && defined(__clang__)
#define FAULTRING_FLEX_BEGIN \
	_Pragma("clang diagnostic push") _Pragma("clang diagnostic ignored \"-Wc99-extensions\"")
#define FAULTRING_FLEX_END _Pragma("clang diagnostic pop")
#elif defined(__cplusplus) && defined(__GNUC__)
#define FAULTRING_FLEX_BEGIN _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wpedantic\"")
#define FAULTRING_FLEX_END _Pragma("GCC diagnostic pop")
#else
#define FAULTRING_FLEX_BEGIN
#define FAULTRING_FLEX_END
#endif

#endif /* FAULTRING_PIN_H */
