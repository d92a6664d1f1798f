// SPDX-License-Identifier: MIT
// Exact waits for the tests: an fd's readiness, a process's exit (pidfd), a one-shot event (eventfd).
#pragma once

#include <chrono>
#include <sys/types.h>

#include <cenalloc/unique_fd.h>

namespace cenalloc::test {

/// How long a test waits for something that is bound to happen before it
/// gives up and fails: a bound that turns a hang into a failure, never a
/// measure of time. Nothing waits this long unless something is broken.
inline constexpr std::chrono::milliseconds kPatience = std::chrono::seconds(60);

/// Wait until @p fd reports one of @p events (poll(2) bits; POLLERR and
/// POLLHUP always count). False when it did not within @p bound.
bool waitForEvents(BorrowedFd fd, short events, std::chrono::milliseconds bound = kPatience);
inline bool waitReadable(BorrowedFd fd, std::chrono::milliseconds bound = kPatience) {
    return waitForEvents(fd, 0x001 /* POLLIN */, bound);
}

/// A pidfd for @p pid (pidfd_open(2)); invalid when the kernel has none.
UniqueFd openPidfd(pid_t pid);

/// Wait until process @p pid (a child of this one) has exited, without
/// reaping it: its pidfd becomes readable. False when it had not within
/// @p bound. Without pidfds (kernels before 5.3) it reports true at once
/// and the caller's waitpid() is the wait.
bool waitForExit(pid_t pid, std::chrono::milliseconds bound = kPatience);

/// Reap child @p pid: its exit code, or 128 + N for death by signal N.
/// Bounded: a child still running after @p bound is killed (SIGKILL), the
/// test fails saying so, and the result is 128 + SIGKILL.
int reap(pid_t pid, std::chrono::milliseconds bound = kPatience);

/// A one-shot signal between threads, or between processes that share it
/// across fork(): an eventfd that becomes readable on notify() and stays so.
class Event {
public:
    Event();
    /// Safe from any thread, and in a forked child (one write(2)).
    void notify() const;
    /// Wait for notify(); false when it did not come within @p bound.
    bool wait(std::chrono::milliseconds bound = kPatience) const;
    /// Whether notify() was called (does not wait).
    bool notified() const;
    BorrowedFd fd() const { return fd_; }

private:
    UniqueFd fd_;
};

} // namespace cenalloc::test
