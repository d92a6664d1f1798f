// SPDX-License-Identifier: MIT
// Tests of the CMA and carveout heaps: one contiguous chunk, alignment, limits, exhaustion.
#include <cerrno>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "heaps/contiguous_heap.h"

namespace cenalloc {
namespace {

constexpr uint64_t kBase = 0x48001000; // one page past a 1 MiB boundary

ReservedRegion cmaRegion() {
    return {.name = "cma", .kind = RegionKind::Cma, .base = kBase, .size = 8 * MiB};
}

TEST(ContiguousHeap, KindAndCachingFollowTheRegion) {
    auto cma = createContiguousHeap(cmaRegion());
    EXPECT_EQ(cma->name(), "cma");
    EXPECT_EQ(cma->properties().kind, HeapKind::Cma);
    EXPECT_TRUE(cma->properties().cached);
    EXPECT_TRUE(cma->properties().contiguous);

    const ReservedRegion secure{.name = "secure",
                                .kind = RegionKind::Carveout,
                                .base = 0x50000000,
                                .size = 1 * MiB,
                                .noMap = true,
                                .accessBits = 0x4};
    auto carveout = createContiguousHeap(secure);
    EXPECT_EQ(carveout->name(), "secure");
    EXPECT_EQ(carveout->properties().kind, HeapKind::Carveout);
    EXPECT_FALSE(carveout->properties().cached);
    EXPECT_EQ(carveout->properties().accessBits, 0x4u);
    EXPECT_EQ(carveout->freeBytes(), 1 * MiB);
}

TEST(ContiguousHeap, OneChunkPerBufferInsideTheRegion) {
    auto heap = createContiguousHeap(cmaRegion());
    for (uint64_t length : {4 * KiB, 68 * KiB, 1 * MiB + 4 * KiB, 3 * MiB}) {
        SCOPED_TRACE(length);
        Result<Storage> s = heap->allocate(length);
        ASSERT_TRUE(s) << s.error().toString();
        ASSERT_EQ(s->chunks().size(), 1u);
        const PhysChunk& c = s->chunks()[0];
        EXPECT_EQ(c.size, length);
        EXPECT_EQ(s->size(), length);
        EXPECT_GE(c.address, kBase);
        EXPECT_LE(c.end(), kBase + 8 * MiB);
        EXPECT_EQ(heap->freeBytes(), 8 * MiB - length);
    }
    EXPECT_EQ(heap->freeBytes(), 8 * MiB);
}

TEST(ContiguousHeap, HonoursRequestedAlignment) {
    auto heap = createContiguousHeap(cmaRegion());
    Result<Storage> first = heap->allocate(4 * KiB);
    ASSERT_TRUE(first);
    EXPECT_EQ(first->chunks()[0].address, kBase);
    for (uint64_t alignment : {4 * KiB, 64 * KiB, 1 * MiB, 2 * MiB}) {
        SCOPED_TRACE(alignment);
        StorageLimits limits;
        limits.alignment = alignment;
        Result<Storage> s = heap->allocate(64 * KiB, limits);
        ASSERT_TRUE(s) << s.error().toString();
        EXPECT_EQ(s->chunks()[0].address % alignment, 0u);
    }
    // An alignment below a page still gets a page-aligned chunk.
    StorageLimits small;
    small.alignment = 512;
    Result<Storage> s = heap->allocate(4 * KiB, small);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->chunks()[0].address, kBase + 4 * KiB);
}

TEST(ContiguousHeap, HonoursTheHighestAddressLimit) {
    auto heap = createContiguousHeap(cmaRegion());
    StorageLimits limits;
    limits.highestAddress = kBase + 2 * MiB - 1;
    Result<Storage> fits = heap->allocate(2 * MiB, limits);
    ASSERT_TRUE(fits);
    EXPECT_EQ(fits->chunks()[0].address, kBase);
    Result<Storage> over = heap->allocate(4 * KiB, limits);
    ASSERT_FALSE(over);
    EXPECT_EQ(over.error().code(), ENOMEM);
    EXPECT_NE(over.error().message().find("'cma'"), std::string::npos) << over.error().message();

    limits.highestAddress = kBase - 1;
    Result<Storage> below = heap->allocate(4 * KiB, limits);
    ASSERT_FALSE(below);
    EXPECT_EQ(below.error().code(), ENOMEM);
    EXPECT_EQ(heap->freeBytes(), 6 * MiB);
    EXPECT_EQ(heap->stats().failedAllocations, 2u);
    EXPECT_EQ(heap->stats().liveBuffers, 1u);
}

TEST(ContiguousHeap, ExhaustionAndFragmentation) {
    auto heap = createContiguousHeap(cmaRegion());
    std::vector<Storage> parts;
    for (int i = 0; i < 8; ++i) {
        Result<Storage> s = heap->allocate(1 * MiB);
        ASSERT_TRUE(s);
        parts.push_back(std::move(*s));
    }
    EXPECT_EQ(heap->freeBytes(), 0u);
    Result<Storage> none = heap->allocate(4 * KiB);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code(), ENOMEM);

    // 4 MiB free in 1 MiB holes: a 2 MiB buffer still fails, and changes nothing.
    for (size_t i = 0; i < parts.size(); i += 2)
        parts[i].reset();
    EXPECT_EQ(heap->freeBytes(), 4 * MiB);
    Result<Storage> two = heap->allocate(2 * MiB);
    ASSERT_FALSE(two);
    EXPECT_EQ(two.error().code(), ENOMEM);
    EXPECT_EQ(heap->freeBytes(), 4 * MiB);
    EXPECT_EQ(heap->stats().failedAllocations, 2u);
    EXPECT_EQ(heap->stats().liveBuffers, 4u);

    // Freeing the neighbour joins two holes and a third.
    parts[1].reset();
    Result<Storage> joined = heap->allocate(3 * MiB);
    ASSERT_TRUE(joined);
    EXPECT_EQ(joined->chunks()[0].address, kBase);
}

TEST(ContiguousHeap, BadAlignmentIsEinval) {
    auto heap = createContiguousHeap(cmaRegion());
    StorageLimits limits;
    limits.alignment = 3 * 4096;
    Result<Storage> s = heap->allocate(4 * KiB, limits);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code(), EINVAL);
    EXPECT_EQ(heap->freeBytes(), 8 * MiB);
}

} // namespace
} // namespace cenalloc
