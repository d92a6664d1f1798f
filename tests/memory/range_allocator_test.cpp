// SPDX-License-Identifier: MIT
// Tests of the aligned first-fit range allocator: placement, alignment, coalescing, limits, errors.
#include <cerrno>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "memory/range_allocator.h"

namespace cenalloc {
namespace {

constexpr uint64_t kBase = 0x48000000;

TEST(RangeAllocator, FirstFitFromTheLowestAddress) {
    RangeAllocator ranges(kBase, 1 * MiB);
    EXPECT_EQ(ranges.base(), kBase);
    EXPECT_EQ(ranges.size(), 1 * MiB);
    EXPECT_EQ(*ranges.allocate(4 * KiB, 4 * KiB), kBase);
    EXPECT_EQ(*ranges.allocate(8 * KiB, 4 * KiB), kBase + 4 * KiB);
    EXPECT_EQ(*ranges.allocate(4 * KiB, 4 * KiB), kBase + 12 * KiB);
    EXPECT_EQ(ranges.freeBytes(), 1 * MiB - 16 * KiB);
    EXPECT_EQ(ranges.freeRangeCount(), 1u);
    // A hole at the bottom is reused first.
    ranges.free(kBase + 4 * KiB, 8 * KiB);
    EXPECT_EQ(*ranges.allocate(4 * KiB, 4 * KiB), kBase + 4 * KiB);
}

TEST(RangeAllocator, RoundsSizesUpToTheGranule) {
    RangeAllocator ranges(kBase, 1 * MiB);
    EXPECT_EQ(*ranges.allocate(1, 4 * KiB), kBase);
    EXPECT_EQ(ranges.freeBytes(), 1 * MiB - 4 * KiB);
    EXPECT_EQ(*ranges.allocate(4 * KiB + 1, 4 * KiB), kBase + 4 * KiB);
    EXPECT_EQ(ranges.freeBytes(), 1 * MiB - 12 * KiB);
    ranges.free(kBase + 4 * KiB, 4 * KiB + 1);
    ranges.free(kBase, 1);
    EXPECT_EQ(ranges.freeBytes(), 1 * MiB);
    EXPECT_EQ(ranges.freeRangeCount(), 1u);
}

TEST(RangeAllocator, HonoursAlignment) {
    struct Case {
        uint64_t alignment;
        uint64_t expected; // offset of the 64 KiB allocation from kBase
    };
    const Case cases[] = {
        {4 * KiB, 8 * KiB}, {8 * KiB, 8 * KiB}, {64 * KiB, 64 * KiB}, {1 * MiB, 1 * MiB}, {2 * MiB, 2 * MiB},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.alignment);
        // The region starts one page past a 128 MiB boundary and its first
        // page is taken, so the first free address is only 8 KiB-aligned.
        RangeAllocator ranges(kBase + 4 * KiB, 4 * MiB);
        ASSERT_EQ(*ranges.allocate(4 * KiB, 4 * KiB), kBase + 4 * KiB);
        Result<uint64_t> a = ranges.allocate(64 * KiB, c.alignment);
        ASSERT_TRUE(a) << a.error().toString();
        EXPECT_EQ(*a % c.alignment, 0u);
        EXPECT_EQ(*a, kBase + c.expected);
        // The gap below an aligned allocation stays free as its own range.
        EXPECT_EQ(ranges.freeBytes(), 4 * MiB - 68 * KiB);
        EXPECT_EQ(ranges.freeRangeCount(), c.expected == 8 * KiB ? 1u : 2u);
    }
}

TEST(RangeAllocator, FreeCoalescesWithBothNeighbours) {
    RangeAllocator ranges(kBase, 1 * MiB);
    uint64_t a = *ranges.allocate(64 * KiB, 4 * KiB);
    uint64_t b = *ranges.allocate(64 * KiB, 4 * KiB);
    uint64_t c = *ranges.allocate(64 * KiB, 4 * KiB);
    EXPECT_EQ(ranges.freeRangeCount(), 1u);
    ranges.free(a, 64 * KiB);
    EXPECT_EQ(ranges.freeRangeCount(), 2u);
    ranges.free(c, 64 * KiB); // merges with the tail
    EXPECT_EQ(ranges.freeRangeCount(), 2u);
    EXPECT_EQ(ranges.largestFree(), 1 * MiB - 128 * KiB);
    ranges.free(b, 64 * KiB); // merges with both
    EXPECT_EQ(ranges.freeRangeCount(), 1u);
    EXPECT_EQ(ranges.largestFree(), 1 * MiB);
    EXPECT_EQ(ranges.freeBytes(), 1 * MiB);
    EXPECT_EQ(*ranges.allocate(1 * MiB, 4 * KiB), kBase);
}

TEST(RangeAllocator, FragmentationDefeatsAContiguousRequest) {
    RangeAllocator ranges(kBase, 1 * MiB);
    std::vector<uint64_t> blocks;
    for (int i = 0; i < 16; ++i)
        blocks.push_back(*ranges.allocate(64 * KiB, 4 * KiB));
    for (size_t i = 0; i < blocks.size(); i += 2)
        ranges.free(blocks[i], 64 * KiB);
    EXPECT_EQ(ranges.freeBytes(), 512 * KiB);
    EXPECT_EQ(ranges.largestFree(), 64 * KiB);
    EXPECT_EQ(ranges.freeRangeCount(), 8u);

    // Enough bytes in total, none contiguous.
    Result<uint64_t> big = ranges.allocate(128 * KiB, 4 * KiB);
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error().code(), ENOMEM);
    EXPECT_EQ(ranges.freeBytes(), 512 * KiB);
    EXPECT_EQ(ranges.freeRangeCount(), 8u);

    // Freeing the range between two free ones joins three into 192 KiB.
    ranges.free(blocks[5], 64 * KiB);
    EXPECT_EQ(ranges.freeRangeCount(), 7u);
    EXPECT_EQ(ranges.largestFree(), 192 * KiB);
    EXPECT_EQ(*ranges.allocate(128 * KiB, 4 * KiB), blocks[4]);
}

TEST(RangeAllocator, TakeFreeTakesOnlyTheFreeBytesOfAWindowAndFreeGivesThemBack) {
    RangeAllocator ranges(kBase, 1 * MiB);
    std::vector<uint64_t> blocks;
    for (int i = 0; i < 4; ++i)
        blocks.push_back(*ranges.allocate(64 * KiB, 4 * KiB));
    ranges.free(blocks[1], 64 * KiB);
    ranges.free(blocks[3], 64 * KiB); // joins the free top: [192 KiB, 1 MiB)
    ASSERT_EQ(ranges.freeRanges(),
              (std::vector<PhysChunk>{{kBase + 64 * KiB, 64 * KiB}, {kBase + 192 * KiB, 832 * KiB}}));

    // The window [96 KiB, 256 KiB): half of hole 1, block 2 (not free), the
    // start of the top range.
    std::vector<PhysChunk> taken = ranges.takeFree(kBase + 96 * KiB, 160 * KiB);
    EXPECT_EQ(taken, (std::vector<PhysChunk>{{kBase + 96 * KiB, 32 * KiB}, {kBase + 192 * KiB, 64 * KiB}}));
    EXPECT_EQ(ranges.freeBytes(), 1 * MiB - 128 * KiB - 96 * KiB);
    EXPECT_EQ(ranges.freeRanges(),
              (std::vector<PhysChunk>{{kBase + 64 * KiB, 32 * KiB}, {kBase + 256 * KiB, 768 * KiB}}));
    // Nothing free there any more: a second take is empty.
    EXPECT_TRUE(ranges.takeFree(kBase + 96 * KiB, 160 * KiB).empty());

    for (const PhysChunk& piece : taken)
        ranges.free(piece.address, piece.size);
    EXPECT_EQ(ranges.freeRanges(),
              (std::vector<PhysChunk>{{kBase + 64 * KiB, 64 * KiB}, {kBase + 192 * KiB, 832 * KiB}}));
    EXPECT_EQ(ranges.freeBytes(), 1 * MiB - 128 * KiB);
}

TEST(RangeAllocator, HonoursAddressLimits) {
    RangeAllocator ranges(kBase, 4 * MiB);
    // Lowest bound inside the region.
    EXPECT_EQ(*ranges.allocate(64 * KiB, 4 * KiB, {kBase + 1 * MiB, UINT64_MAX}), kBase + 1 * MiB);
    // Unaligned lowest bound rounds up to the alignment.
    EXPECT_EQ(*ranges.allocate(64 * KiB, 64 * KiB, {kBase + 2 * MiB + 1, UINT64_MAX}), kBase + 2 * MiB + 64 * KiB);
    // Highest bound: the allocation ends at or before it.
    EXPECT_EQ(*ranges.allocate(1 * MiB, 4 * KiB, {0, kBase + 1 * MiB - 1}), kBase);
    const uint64_t freeBefore = ranges.freeBytes();
    const size_t rangesBefore = ranges.freeRangeCount();

    const AddressLimit impossible[] = {
        {0, kBase - 1},                                // below the region
        {kBase + 4 * MiB, UINT64_MAX},                 // above it
        {0, kBase + 1 * MiB + 96 * KiB - 1},           // a free range straddles the limit, 32 KiB below it
        {kBase + 4 * MiB - 32 * KiB, kBase + 8 * MiB}, // only 32 KiB at the top
    };
    for (const AddressLimit& limit : impossible) {
        SCOPED_TRACE(::testing::Message() << std::hex << limit.lowest << "-" << limit.highest);
        Result<uint64_t> a = ranges.allocate(64 * KiB, 4 * KiB, limit);
        ASSERT_FALSE(a);
        EXPECT_EQ(a.error().code(), ENOMEM);
        EXPECT_EQ(ranges.freeBytes(), freeBefore);
        EXPECT_EQ(ranges.freeRangeCount(), rangesBefore);
    }
}

TEST(RangeAllocator, RejectsBadRequestsWithEinval) {
    RangeAllocator ranges(kBase, 1 * MiB);
    struct Case {
        const char* what;
        uint64_t size;
        uint64_t alignment;
    };
    const Case cases[] = {
        {"zero size", 0, 4 * KiB},
        {"zero alignment", 4 * KiB, 0},
        {"alignment not a power of two", 4 * KiB, 12 * KiB},
        {"alignment below the granule", 4 * KiB, 2 * KiB},
        {"size overflows when rounded", UINT64_MAX, 4 * KiB},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        Result<uint64_t> a = ranges.allocate(c.size, c.alignment);
        ASSERT_FALSE(a);
        EXPECT_EQ(a.error().code(), EINVAL);
        EXPECT_EQ(ranges.freeBytes(), 1 * MiB);
        EXPECT_EQ(ranges.freeRangeCount(), 1u);
    }
}

TEST(RangeAllocator, ExhaustionIsEnomemAndChangesNothing) {
    RangeAllocator ranges(kBase, 1 * MiB);
    Result<uint64_t> tooBig = ranges.allocate(1 * MiB + 4 * KiB, 4 * KiB);
    ASSERT_FALSE(tooBig);
    EXPECT_EQ(tooBig.error().code(), ENOMEM);
    EXPECT_EQ(ranges.freeBytes(), 1 * MiB);

    uint64_t all = *ranges.allocate(1 * MiB, 4 * KiB);
    EXPECT_EQ(ranges.freeBytes(), 0u);
    EXPECT_EQ(ranges.freeRangeCount(), 0u);
    EXPECT_EQ(ranges.largestFree(), 0u);
    Result<uint64_t> none = ranges.allocate(4 * KiB, 4 * KiB);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code(), ENOMEM);
    ranges.free(all, 1 * MiB);
    EXPECT_EQ(*ranges.allocate(4 * KiB, 4 * KiB), kBase);
}

TEST(RangeAllocator, LargerGranule) {
    RangeAllocator ranges(kBase, 1 * MiB, 64 * KiB);
    Result<uint64_t> small = ranges.allocate(4 * KiB, 4 * KiB);
    ASSERT_FALSE(small);
    EXPECT_EQ(small.error().code(), EINVAL);
    EXPECT_EQ(*ranges.allocate(4 * KiB, 64 * KiB), kBase);
    EXPECT_EQ(ranges.freeBytes(), 1 * MiB - 64 * KiB);
}

#ifndef NDEBUG
TEST(RangeAllocatorDeathTest, DoubleFreeAsserts) {
    RangeAllocator ranges(kBase, 1 * MiB);
    uint64_t a = *ranges.allocate(64 * KiB, 4 * KiB);
    ASSERT_TRUE(ranges.allocate(64 * KiB, 4 * KiB));
    ranges.free(a, 64 * KiB);
    EXPECT_DEATH(ranges.free(a, 64 * KiB), "double free");
}
#endif

} // namespace
} // namespace cenalloc
