// SPDX-License-Identifier: MIT
// SubordinateIds: subuid(5) ranges, read from text and from a file that changes.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "service/config.h"
#include "service/subordinate_ids.h"

namespace cenalloc {
namespace {

std::optional<uint32_t> fakeNames(std::string_view name) {
    if (name == "alice")
        return 1000;
    if (name == "bob")
        return 1001;
    if (name == "root")
        return 0;
    return std::nullopt;
}

TEST(SubordinateIds, RangesByNameOrUidAreTheirOwnersFromFirstToLast) {
    std::vector<std::string> problems;
    const SubordinateIds ids =
        SubordinateIds::parse("# made by useradd\n\nalice:100000:65536\n1001:165536:65536\n", fakeNames, &problems);
    EXPECT_TRUE(problems.empty()) << problems.front();
    ASSERT_EQ(ids.ranges().size(), 2u);
    EXPECT_EQ(ids.ownerOf(99999), std::nullopt);
    EXPECT_EQ(ids.ownerOf(100000), 1000u);
    EXPECT_EQ(ids.ownerOf(165535), 1000u);
    EXPECT_EQ(ids.ownerOf(165536), 1001u);
    EXPECT_EQ(ids.ownerOf(231071), 1001u);
    EXPECT_EQ(ids.ownerOf(231072), std::nullopt);
    EXPECT_EQ(ids.ownerOf(1000), std::nullopt) << "an owner's own uid is no range's";
}

TEST(SubordinateIds, RootsRangesAreLeftOutSoNoContainerUidBecomesRoot) {
    const SubordinateIds ids = SubordinateIds::parse("root:300000:10\n0:400000:10\nalice:300005:10\n", fakeNames);
    EXPECT_EQ(ids.ownerOf(300001), std::nullopt);
    EXPECT_EQ(ids.ownerOf(400001), std::nullopt);
    EXPECT_EQ(ids.ownerOf(300007), 1000u) << "the next range holding it";
}

TEST(SubordinateIds, OverlappingRangesGoToTheFirstInFileOrder) {
    const SubordinateIds ids = SubordinateIds::parse("bob:500000:100\nalice:500050:100\n", fakeNames);
    EXPECT_EQ(ids.ownerOf(500060), 1001u);
    EXPECT_EQ(ids.ownerOf(500120), 1000u);
}

TEST(SubordinateIds, MalformedLinesAreSkippedAndSaidWithTheirLineNumbers) {
    std::vector<std::string> problems;
    const SubordinateIds ids = SubordinateIds::parse("alice:100000\n"          // 1: two fields
                                                     "alice:100000:10:5\n"     // 2: four
                                                     "alice:x:10\n"            // 3: not a number
                                                     "alice:100000:0\n"        // 4: empty range
                                                     "alice:4294967290:10\n"   // 5: past the last uid
                                                     "alice:4294967295:1\n"    // 6: (uid_t)-1
                                                     "nobody-here:100000:10\n" // 7: unknown user
                                                     ":100000:10\n"            // 8: no owner
                                                     "alice:-5:10\n"           // 9: negative
                                                     "  bob:700000:10  \r\n",  // 10: good, spaces and CR
                                                     fakeNames, &problems);
    ASSERT_EQ(problems.size(), 9u);
    for (size_t i = 0; i < problems.size(); ++i)
        EXPECT_EQ(problems[i].substr(0, problems[i].find(':')), std::to_string(i + 1)) << problems[i];
    EXPECT_NE(problems[6].find("no user 'nobody-here'"), std::string::npos) << problems[6];
    ASSERT_EQ(ids.ranges().size(), 1u);
    EXPECT_EQ(ids.ownerOf(700009), 1001u);
    EXPECT_EQ(ids.ownerOf(100005), std::nullopt);
}

TEST(SubordinateIds, TheLastUidBeforeTheInvalidOneCanBeInARange) {
    const SubordinateIds ids = SubordinateIds::parse("alice:4294967285:10\n", fakeNames);
    EXPECT_EQ(ids.ownerOf(4294967294u), 1000u);
    EXPECT_EQ(ids.ownerOf(4294967295u), std::nullopt);
}

class SubordinateIdsFileTest : public ::testing::Test {
protected:
    void SetUp() override {
        char name[] = "/tmp/cenalloc-subuid-XXXXXX";
        const int fd = ::mkstemp(name);
        ASSERT_GE(fd, 0);
        ::close(fd);
        path_ = name;
    }
    void TearDown() override { ::unlink(path_.c_str()); }
    // Written whole, then given a modification time of its own so that a
    // rewrite within the clock's resolution is seen too.
    void write(const std::string& text, long stamp) {
        std::ofstream(path_, std::ios::trunc) << text;
        const timespec times[2] = {{stamp, 0}, {stamp, 0}};
        ASSERT_EQ(::utimensat(AT_FDCWD, path_.c_str(), times, 0), 0);
    }
    std::string path_;
};

TEST_F(SubordinateIdsFileTest, IsReadAgainWhenItChangesAndAMissingFileHoldsNoRanges) {
    write("0:1:1\n1000:100000:10\n", 1000);
    SubordinateIdsFile file(path_);
    EXPECT_EQ(file.ownerOf(100003), 1000u);
    EXPECT_TRUE(file.takeProblems().empty());
    write("0:1:1\n1001:100000:10\n", 2000); // the same size: the time tells
    EXPECT_EQ(file.ownerOf(100003), 1001u);
    ::unlink(path_.c_str());
    EXPECT_EQ(file.ownerOf(100003), std::nullopt);
    EXPECT_TRUE(file.takeProblems().empty()) << "a missing file is no problem";
    write("1000:100000:10\nbroken\n", 3000);
    EXPECT_EQ(file.ownerOf(100003), 1000u);
    const std::vector<std::string> problems = file.takeProblems();
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0], path_ + ":2: not owner:first:count");
    EXPECT_EQ(file.ownerOf(100003), 1000u);
    EXPECT_TRUE(file.takeProblems().empty()) << "said once per read, not per client";
}

TEST(SubordinateIdsConfig, TheDefaultIsEtcSubuidAndNothingTurnsItOff) {
    EXPECT_EQ(ServiceConfig{}.subordinateUids, "/etc/subuid");
    auto none = parseServiceConfig("subordinate_uids: ~\n", "t.yaml");
    ASSERT_TRUE(none) << none.error().toString();
    EXPECT_EQ(none->subordinateUids, "");
    auto other = parseServiceConfig("subordinate_uids: /srv/subuid\n", "t.yaml");
    ASSERT_TRUE(other) << other.error().toString();
    EXPECT_EQ(other->subordinateUids, "/srv/subuid");
    auto list = parseServiceConfig("subordinate_uids: [a, b]\n", "t.yaml");
    ASSERT_FALSE(list);
    EXPECT_NE(list.error().toString().find("expected a file name, got a list"), std::string::npos)
        << list.error().toString();
}

} // namespace
} // namespace cenalloc
