// SPDX-License-Identifier: MIT
// Early return on a failed Result, in the spirit of libbase's OR_RETURN.
#pragma once

#include <cenalloc/result.h>

/// The value of a Result<T> expression, or return its Error from the
/// enclosing function (whose return type is any Result): replaces
///   Result<T> x = f(); if (!x) return x.error(); use(*x);
/// with
///   T x = CENALLOC_TRY(f());
/// A GNU statement expression (GCC and Clang), so the value can initialise a
/// variable directly.
#define CENALLOC_TRY(expr)                                                                                             \
    ({                                                                                                                 \
        auto cenalloc_try_result_ = (expr);                                                                            \
        if (!cenalloc_try_result_)                                                                                     \
            return cenalloc_try_result_.error();                                                                       \
        std::move(cenalloc_try_result_).value();                                                                       \
    })

/// Return the Error of a failed Result<void> (or any Result whose value is not
/// needed) from the enclosing function.
#define CENALLOC_CHECK(expr)                                                                                           \
    do {                                                                                                               \
        if (auto cenalloc_check_result_ = (expr); !cenalloc_check_result_)                                             \
            return cenalloc_check_result_.error();                                                                     \
    } while (0)
