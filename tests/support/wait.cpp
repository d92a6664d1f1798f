// SPDX-License-Identifier: MIT
// Exact waits: poll(2) on fds, pidfds and eventfds, each with a bound that turns a hang into a failure.
#include "support/wait.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <csignal>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace cenalloc::test {

bool waitForEvents(BorrowedFd fd, short events, std::chrono::milliseconds bound) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd.get(), events, 0};
        int n = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
        if (n > 0)
            return true;
        if (n == 0 || errno != EINTR)
            return false;
    }
}

UniqueFd openPidfd(pid_t pid) {
#ifdef SYS_pidfd_open
    return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
#else
    (void)pid;
    return UniqueFd();
#endif
}

bool waitForExit(pid_t pid, std::chrono::milliseconds bound) {
    UniqueFd pidfd = openPidfd(pid);
    if (!pidfd.valid())
        return true;
    return waitReadable(pidfd, bound);
}

int reap(pid_t pid, std::chrono::milliseconds bound) {
    if (!waitForExit(pid, bound)) {
        ADD_FAILURE() << "process " << pid << " still ran after " << bound.count() << " ms: killed";
        ::kill(pid, SIGKILL);
    }
    int status = 0;
    pid_t reaped;
    do {
        reaped = ::waitpid(pid, &status, 0);
    } while (reaped < 0 && errno == EINTR);
    if (reaped != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Event::Event() : fd_(::eventfd(0, EFD_CLOEXEC)) {
    EXPECT_TRUE(fd_.valid()) << "eventfd: " << std::strerror(errno);
}

void Event::notify() const {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(fd_.get(), &one, sizeof one);
}

bool Event::wait(std::chrono::milliseconds bound) const {
    return waitReadable(fd_, bound);
}

bool Event::notified() const {
    return waitReadable(fd_, std::chrono::milliseconds(0));
}

} // namespace cenalloc::test
