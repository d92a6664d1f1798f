// SPDX-License-Identifier: MIT
// UniqueFd owns a file descriptor; BorrowedFd names one for the length of a call.
#pragma once

#include <cenalloc/export.h>

namespace cenalloc {

class BorrowedFd;

/// Sole owner of a file descriptor; closes it on destruction.
///
/// No implicit conversion to int or bool: call get() or valid(). close() is
/// never retried (on Linux the fd is gone even when close() reports EINTR).
class CENALLOC_EXPORT UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    UniqueFd(UniqueFd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    UniqueFd& operator=(UniqueFd&& other) noexcept;
    ~UniqueFd() { reset(); }

    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }
    /// Give up ownership; the caller must close the returned fd.
    [[nodiscard]] int release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }
    /// Close the owned fd (if any) and own @p fd instead.
    void reset(int fd = -1);
    BorrowedFd borrow() const;

private:
    int fd_ = -1;
};

/// A file descriptor owned by someone else, valid for as long as its owner
/// keeps it open. Never closes anything.
class BorrowedFd {
public:
    BorrowedFd() = default;
    explicit BorrowedFd(int fd) : fd_(fd) {}
    BorrowedFd(const UniqueFd& owner) : fd_(owner.get()) {} // NOLINT: borrowing is the point

    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }

private:
    int fd_ = -1;
};

inline BorrowedFd UniqueFd::borrow() const {
    return BorrowedFd(fd_);
}

} // namespace cenalloc
