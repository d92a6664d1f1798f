// SPDX-License-Identifier: MIT
// The pool of ready memory as a session's statistics show it.
#include <cenalloc/session.h>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

namespace cenalloc {
namespace {

TEST(ReadyPoolStatsInSession, AnInProcessSessionReportsItsPoolPerHeapAndInAll) {
    auto session = Session::local();
    ASSERT_TRUE(session) << session.error().toString();
    auto before = (*session)->stats(false);
    ASSERT_TRUE(before);
    ASSERT_FALSE(before->readyPools.empty());
    EXPECT_EQ(before->readyPools.back().heap, ""); // the whole pool's, always last
    EXPECT_EQ(before->readyPools.back().misses, 0u);
    auto fd = (*session)->allocate("system", MiB);
    ASSERT_TRUE(fd) << fd.error().toString();
    auto after = (*session)->stats(false);
    ASSERT_TRUE(after);
    ASSERT_EQ(after->readyPools.size(), 2u);
    EXPECT_EQ(after->readyPools[0].heap, "system");
    EXPECT_EQ(after->readyPools[0].misses + after->readyPools[0].hits, 1u);
    EXPECT_EQ(after->readyPools[1].misses + after->readyPools[1].hits, 1u);
}

} // namespace
} // namespace cenalloc
