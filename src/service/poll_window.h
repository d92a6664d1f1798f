// SPDX-License-Identifier: MIT
// PollWindow: how long a worker polls for the next request before it sleeps, adapted as KVM adapts halt polling.
#pragma once

#include <algorithm>
#include <chrono>

namespace cenalloc {

/// How long an idle worker polls its sockets before it sleeps in
/// epoll_wait. Waking a sleeping thread costs two context switches and,
/// when its CPU had halted, an inter-processor interrupt (in a virtual
/// machine an exit to the hypervisor on both sides): several microseconds
/// on every hop of a round trip that is itself a few microseconds of work.
/// Polling avoids that when the next request is about to come, and wastes
/// the CPU when it is not, so the window adapts as KVM's halt polling does:
///
/// - it starts at zero: a daemon nobody talks to never polls;
/// - when work came within the limit but after the window (the worker
///   slept), polling longer would have caught it: the window grows (to
///   kGrowStart, then doubling, up to the limit);
/// - when work came later than the limit, requests are far apart: the
///   window goes back to zero.
///
/// A poll that finds work changes nothing. Not thread-safe: one per worker.
class PollWindow {
public:
    using Duration = std::chrono::nanoseconds;
    static constexpr Duration kGrowStart = std::chrono::microseconds(10);

    /// @p limit 0 turns polling off.
    explicit PollWindow(Duration limit) : limit_(limit) {}

    /// How long to poll before sleeping now.
    Duration window() const { return window_; }
    Duration limit() const { return limit_; }

    /// The worker polled for window() without finding work and slept; work
    /// came @p waited after it began to poll.
    void missed(Duration waited) {
        if (limit_ <= Duration::zero())
            return;
        if (waited > limit_) {
            window_ = Duration::zero();
            return;
        }
        window_ = window_ == Duration::zero() ? std::min(kGrowStart, limit_) : std::min(window_ * 2, limit_);
    }

private:
    Duration limit_;
    Duration window_{0};
};

} // namespace cenalloc
