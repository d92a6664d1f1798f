// SPDX-License-Identifier: MIT
// Tests of the workers' adaptive busy-poll window: closed at first, growing while requests come soon, else closed.
#include "service/poll_window.h"

#include <chrono>

#include <gtest/gtest.h>

namespace cenalloc {
namespace {

using std::chrono::microseconds;
using Us = microseconds;

TEST(PollWindow, StartsClosedSoAnIdleDaemonNeverPolls) {
    PollWindow poll(Us(50));
    EXPECT_EQ(poll.window(), Us(0));
    EXPECT_EQ(poll.limit(), Us(50));
}

TEST(PollWindow, GrowsWhileWorkComesWithinTheLimitDoublingUpToIt) {
    PollWindow poll(Us(50));
    poll.missed(Us(30));
    EXPECT_EQ(poll.window(), PollWindow::kGrowStart);
    poll.missed(Us(30));
    EXPECT_EQ(poll.window(), Us(20));
    poll.missed(Us(30));
    EXPECT_EQ(poll.window(), Us(40));
    poll.missed(Us(50)); // exactly the limit still counts as soon
    EXPECT_EQ(poll.window(), Us(50)) << "never past the limit";
    poll.missed(Us(1));
    EXPECT_EQ(poll.window(), Us(50));
}

TEST(PollWindow, ClosesAtOnceWhenWorkComesLaterThanTheLimit) {
    PollWindow poll(Us(50));
    for (int i = 0; i < 4; ++i)
        poll.missed(Us(5));
    ASSERT_EQ(poll.window(), Us(50));
    poll.missed(Us(51));
    EXPECT_EQ(poll.window(), Us(0));
    poll.missed(std::chrono::seconds(3));
    EXPECT_EQ(poll.window(), Us(0));
    poll.missed(Us(5));
    EXPECT_EQ(poll.window(), PollWindow::kGrowStart) << "and opens again when requests come close together";
}

TEST(PollWindow, ALimitBelowTheFirstStepIsTheWindow) {
    PollWindow poll(Us(4));
    poll.missed(Us(2));
    EXPECT_EQ(poll.window(), Us(4));
}

TEST(PollWindow, AZeroLimitNeverPolls) {
    PollWindow poll(Us(0));
    for (int i = 0; i < 3; ++i)
        poll.missed(Us(0));
    EXPECT_EQ(poll.window(), Us(0));
}

} // namespace
} // namespace cenalloc
