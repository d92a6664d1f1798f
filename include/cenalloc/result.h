// SPDX-License-Identifier: MIT
// Result<T>: a value or an errno with a short context message.
#pragma once

#include <cassert>
#include <cerrno>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <cenalloc/export.h>

namespace cenalloc {

/// An errno-style code and a message saying what was wrong.
///
/// Messages are lowercase, without a final period, and name the thing that
/// failed ("heap 'cma' has 4 MiB free, 16 MiB requested").
class CENALLOC_EXPORT Error {
public:
    Error(int code, std::string message) : code_(code), message_(std::move(message)) {}

    /// The errno value (EINVAL, ENOMEM, ...); never 0.
    int code() const { return code_; }
    const std::string& message() const { return message_; }
    /// "message (EINVAL)"; what a tool prints.
    std::string toString() const;
    /// Prefix the message with more context: "loading 'x.yaml': " + message.
    Error withContext(const std::string& context) const { return Error(code_, context + ": " + message_); }
    /// The error of a failed system call: @p code (errno by default) and
    /// "what: strerror(code)". Read errno before building @p what if building it
    /// could make another call.
    static Error fromErrno(std::string_view what, int code = errno);

private:
    int code_;
    std::string message_;
};

/// Symbolic name of an errno value ("EINVAL"), or its number as text.
CENALLOC_EXPORT std::string errnoName(int code);

/// A value of type T or an Error. Shaped like std::expected so it can become one.
template <typename T> class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

    bool has_value() const { return v_.index() == 0; }
    explicit operator bool() const { return has_value(); }

    T& value() & {
        assert(has_value());
        return std::get<0>(v_);
    }
    const T& value() const& {
        assert(has_value());
        return std::get<0>(v_);
    }
    T&& value() && {
        assert(has_value());
        return std::get<0>(std::move(v_));
    }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const {
        assert(!has_value());
        return std::get<1>(v_);
    }

private:
    std::variant<T, Error> v_;
};

/// Success or an Error.
template <> class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), failed_(true) {}

    bool has_value() const { return !failed_; }
    explicit operator bool() const { return has_value(); }
    const Error& error() const {
        assert(failed_);
        return error_;
    }

private:
    Error error_{0, {}};
    bool failed_ = false;
};

} // namespace cenalloc
