// SPDX-License-Identifier: MIT
// Tests of the buddy page allocator: cutting, split/merge, limits, preference, exhaustion, fragmentation.
#include <algorithm>
#include <cerrno>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "memory/page_allocator.h"

namespace cenalloc {
namespace {

using Blocks = std::array<uint64_t, PageAllocator::kMaxOrder + 1>;

constexpr uint64_t blockSize(unsigned order) {
    return kPageSize << order;
}

// Allocate blocks of @p order until ENOMEM; returns their addresses.
std::vector<uint64_t> drain(PageAllocator& pages, unsigned order, const AddressLimit& limit = {}) {
    std::vector<uint64_t> out;
    for (;;) {
        Result<uint64_t> a = pages.allocate(order, limit);
        if (!a) {
            EXPECT_EQ(a.error().code(), ENOMEM);
            return out;
        }
        out.push_back(*a);
    }
}

TEST(PageAllocator, CutsSpansIntoLargestAlignedBlocks) {
    // 8 KiB below a 4 MiB boundary, a full 4 MiB block, then 12 KiB: the
    // pieces are cut at absolute alignment, not relative to the span start.
    const PhysChunk span{4 * MiB - 8 * KiB, 8 * KiB + 4 * MiB + 12 * KiB};
    PageAllocator pages({&span, 1});
    Blocks expected{};
    expected[0] = 1;  // 8M + 8K
    expected[1] = 2;  // 4M - 8K and 8M
    expected[10] = 1; // 4M
    EXPECT_EQ(pages.freeBlocks(), expected);
    EXPECT_EQ(pages.totalBytes(), span.size);
    EXPECT_EQ(pages.freeBytes(), span.size);
}

TEST(PageAllocator, JoinsTouchingSpans) {
    // Two touching halves of a 4 MiB block are one block, not two of 2 MiB.
    const std::vector<PhysChunk> spans = {{6 * MiB, 2 * MiB}, {4 * MiB, 2 * MiB}};
    PageAllocator pages(spans);
    Blocks expected{};
    expected[10] = 1;
    EXPECT_EQ(pages.freeBlocks(), expected);
}

TEST(PageAllocator, EveryBlockIsNaturallyAligned) {
    // An odd span so that blocks of every order come from splits of unaligned pieces.
    const PhysChunk span{0x40000000 + 12 * KiB, 9 * MiB + 52 * KiB};
    for (unsigned order = 0; order <= PageAllocator::kMaxOrder; ++order) {
        SCOPED_TRACE(order);
        PageAllocator pages({&span, 1});
        std::vector<uint64_t> blocks = drain(pages, order);
        ASSERT_FALSE(blocks.empty());
        std::set<uint64_t> distinct(blocks.begin(), blocks.end());
        EXPECT_EQ(distinct.size(), blocks.size());
        for (uint64_t a : blocks) {
            EXPECT_EQ(a % blockSize(order), 0u) << std::hex << a;
            EXPECT_GE(a, span.address);
            EXPECT_LE(a + blockSize(order), span.end());
        }
        EXPECT_EQ(pages.freeBytes(), span.size - blocks.size() * blockSize(order));
    }
}

TEST(PageAllocator, FreeingEveryPageInAnyOrderRestoresTheInitialBlocks) {
    const std::vector<PhysChunk> spans = {{1 * MiB - 16 * KiB, 3 * MiB + 20 * KiB}, {8 * MiB, 4 * MiB}};
    PageAllocator pages(spans);
    const Blocks initial = pages.freeBlocks();
    const uint64_t total = pages.totalBytes();

    std::vector<uint64_t> all = drain(pages, 0);
    EXPECT_EQ(all.size(), total / kPageSize);
    EXPECT_EQ(pages.freeBytes(), 0u);
    EXPECT_EQ(pages.freeBlocks(), Blocks{});

    std::mt19937 rng(1234);
    std::shuffle(all.begin(), all.end(), rng);
    for (uint64_t a : all)
        pages.free(a, 0);
    EXPECT_EQ(pages.freeBlocks(), initial);
    EXPECT_EQ(pages.freeBytes(), total);
}

TEST(PageAllocator, SplitAndMergeOfMixedOrders) {
    const PhysChunk span{0, 4 * MiB};
    PageAllocator pages({&span, 1});
    const Blocks initial = pages.freeBlocks();
    std::vector<std::pair<uint64_t, unsigned>> live;
    std::mt19937 rng(99);
    for (int i = 0; i < 200; ++i) {
        unsigned order = rng() % 6;
        Result<uint64_t> a = pages.allocate(order);
        if (a)
            live.emplace_back(*a, order);
    }
    ASSERT_FALSE(live.empty());
    std::shuffle(live.begin(), live.end(), rng);
    for (auto [a, order] : live)
        pages.free(a, order);
    EXPECT_EQ(pages.freeBlocks(), initial);
    EXPECT_EQ(pages.freeBytes(), 4 * MiB);
}

TEST(PageAllocator, PrefersTheHighestAddress) {
    // A 4 MiB block and a lone page above it: the page goes first, then the
    // top of the big block, one page lower each time.
    const PhysChunk span{0, 4 * MiB + 4 * KiB};
    PageAllocator pages({&span, 1});
    EXPECT_EQ(*pages.allocate(0), 4 * MiB);
    EXPECT_EQ(*pages.allocate(0), 4 * MiB - 4 * KiB);
    EXPECT_EQ(*pages.allocate(0), 4 * MiB - 8 * KiB);
    EXPECT_EQ(*pages.allocate(1), 4 * MiB - 16 * KiB);
    EXPECT_EQ(*pages.allocate(8), 2 * MiB);
}

TEST(PageAllocator, HighestPreferenceSpansOrders) {
    // Free: a small block high up and a big block low down; the small one is
    // higher, so it is used even though the big one could be split.
    const std::vector<PhysChunk> spans = {{0, 4 * MiB}, {16 * MiB, 8 * KiB}};
    PageAllocator pages(spans);
    EXPECT_EQ(*pages.allocate(0), 16 * MiB + 4 * KiB);
    EXPECT_EQ(*pages.allocate(0), 16 * MiB);
    EXPECT_EQ(*pages.allocate(0), 4 * MiB - 4 * KiB);
}

TEST(PageAllocator, LimitInsideAStraddlingBlock) {
    // One 4 MiB block straddles the limit at 1 MiB: the allocation is the
    // highest page below the limit, and the split leaves one free block of
    // each order below 10.
    const PhysChunk span{0, 4 * MiB};
    PageAllocator pages({&span, 1});
    Result<uint64_t> a = pages.allocate(0, AddressLimit{0, 1 * MiB - 1});
    ASSERT_TRUE(a) << a.error().toString();
    EXPECT_EQ(*a, 1 * MiB - 4 * KiB);
    Blocks expected;
    expected.fill(1);
    expected[10] = 0;
    EXPECT_EQ(pages.freeBlocks(), expected);

    // A 1 MiB block below the limit is the one at 0; with a lowest bound the
    // allocation stays inside [lowest, highest].
    PageAllocator fresh({&span, 1});
    EXPECT_EQ(*fresh.allocate(8, AddressLimit{0, 1 * MiB - 1}), 0u);
    EXPECT_EQ(*fresh.allocate(0, AddressLimit{1 * MiB, 2 * MiB - 1}), 2 * MiB - 4 * KiB);
    fresh.free(0, 8);
    fresh.free(2 * MiB - 4 * KiB, 0);
    Blocks whole{};
    whole[10] = 1;
    EXPECT_EQ(fresh.freeBlocks(), whole);
}

TEST(PageAllocator, LimitMustHoldAWholeAlignedBlock) {
    const PhysChunk span{16 * MiB, 4 * MiB};
    PageAllocator pages({&span, 1});
    // 8 KiB of limit, but not 8 KiB-aligned: an order-1 block cannot fit, a page can.
    const AddressLimit limit{16 * MiB + 4 * KiB, 16 * MiB + 12 * KiB - 1};
    Result<uint64_t> pair = pages.allocate(1, limit);
    ASSERT_FALSE(pair);
    EXPECT_EQ(pair.error().code(), ENOMEM);
    EXPECT_EQ(pages.freeBytes(), 4 * MiB);
    EXPECT_EQ(*pages.allocate(0, limit), 16 * MiB + 8 * KiB);
}

TEST(PageAllocator, LimitExcludingEverythingIsEnomemAndChangesNothing) {
    const PhysChunk span{16 * MiB, 4 * MiB};
    const std::vector<AddressLimit> limits = {
        {0, 16 * MiB - 1},                        // below
        {20 * MiB, UINT64_MAX},                   // above
        {16 * MiB + 4 * KiB, 16 * MiB + 4 * KiB}, // one byte
        {18 * MiB, 17 * MiB},                     // empty
        {0, 100},                                 // smaller than a page
    };
    for (const AddressLimit& limit : limits) {
        SCOPED_TRACE(::testing::Message() << std::hex << limit.lowest << "-" << limit.highest);
        PageAllocator pages({&span, 1});
        const Blocks before = pages.freeBlocks();
        Result<uint64_t> a = pages.allocate(0, limit);
        ASSERT_FALSE(a);
        EXPECT_EQ(a.error().code(), ENOMEM);
        EXPECT_EQ(pages.freeBlocks(), before);
        EXPECT_EQ(pages.freeBytes(), 4 * MiB);
    }
}

TEST(PageAllocator, ExhaustionLeavesStateUnchanged) {
    const PhysChunk span{0, 8 * MiB + 64 * KiB};
    PageAllocator pages({&span, 1});
    std::vector<uint64_t> big = drain(pages, 10);
    ASSERT_EQ(big.size(), 2u);
    const Blocks before = pages.freeBlocks();
    EXPECT_EQ(pages.freeBytes(), 64 * KiB);

    for (unsigned order : {5u, 10u}) {
        Result<uint64_t> a = pages.allocate(order);
        ASSERT_FALSE(a);
        EXPECT_EQ(a.error().code(), ENOMEM);
    }
    Result<uint64_t> tooBig = pages.allocate(PageAllocator::kMaxOrder + 1);
    ASSERT_FALSE(tooBig);
    EXPECT_EQ(tooBig.error().code(), ENOMEM);
    EXPECT_EQ(pages.freeBlocks(), before);
    EXPECT_EQ(pages.freeBytes(), 64 * KiB);

    // What is left still works.
    EXPECT_EQ(*pages.allocate(4), 8 * MiB);
    pages.free(big[0], 10);
    EXPECT_EQ(*pages.allocate(10), big[0]);
}

TEST(PageAllocator, FragmentationDefeatsAnOrderOneRequest) {
    const PhysChunk span{0x40000000, 1 * MiB};
    PageAllocator pages({&span, 1});
    std::vector<uint64_t> all = drain(pages, 0);
    ASSERT_EQ(all.size(), 256u);
    std::sort(all.begin(), all.end());
    // Free every other page: half the memory is free, yet no two free pages are buddies.
    for (size_t i = 0; i < all.size(); i += 2)
        pages.free(all[i], 0);
    EXPECT_EQ(pages.freeBytes(), 512 * KiB);
    Blocks expected{};
    expected[0] = 128;
    EXPECT_EQ(pages.freeBlocks(), expected);
    Result<uint64_t> pair = pages.allocate(1);
    ASSERT_FALSE(pair);
    EXPECT_EQ(pair.error().code(), ENOMEM);
    EXPECT_EQ(pages.freeBlocks(), expected);

    // Freeing the right neighbours makes buddies merge: pages 2 and 3 become
    // an order-1 block, and with 0 and 1 an order-2 block.
    pages.free(all[3], 0);
    Result<uint64_t> merged = pages.allocate(1);
    ASSERT_TRUE(merged);
    EXPECT_EQ(*merged, all[2]);
    pages.free(*merged, 1);
    pages.free(all[1], 0);
    expected[0] = 126;
    expected[2] = 1;
    EXPECT_EQ(pages.freeBlocks(), expected);
    EXPECT_EQ(*pages.allocate(2), all[0]);
}

TEST(PageAllocator, FreeBytesInCountsOnlyTheLimit) {
    const PhysChunk span{0, 4 * MiB};
    PageAllocator pages({&span, 1});
    EXPECT_EQ(pages.freeBytesIn({0, UINT64_MAX}), 4 * MiB);
    EXPECT_EQ(pages.freeBytesIn({1 * MiB, 2 * MiB - 1}), 1 * MiB);
    EXPECT_EQ(pages.freeBytesIn({1 * MiB + 1, 1 * MiB + 10}), 10u);
    EXPECT_EQ(pages.freeBytesIn({8 * MiB, UINT64_MAX}), 0u);
    EXPECT_EQ(pages.freeBytesIn({2 * MiB, 1 * MiB}), 0u);
    ASSERT_TRUE(pages.allocate(0, {0, 2 * MiB - 1}));
    EXPECT_EQ(pages.freeBytesIn({1 * MiB, 2 * MiB - 1}), 1 * MiB - 4 * KiB);
    EXPECT_EQ(pages.freeBytesIn({2 * MiB, 4 * MiB - 1}), 2 * MiB);
}

#ifndef NDEBUG
TEST(PageAllocatorDeathTest, DoubleFreeAsserts) {
    const PhysChunk span{0, 1 * MiB};
    PageAllocator pages({&span, 1});
    uint64_t a = *pages.allocate(2);
    pages.free(a, 2);
    EXPECT_DEATH(pages.free(a, 2), "double free");
    // Freeing a page inside a free block is a double free too.
    EXPECT_DEATH(pages.free(a + 4 * KiB, 0), "double free");
}
#endif

} // namespace
} // namespace cenalloc
