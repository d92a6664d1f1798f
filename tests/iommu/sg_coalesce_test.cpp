// SPDX-License-Identifier: MIT
// Tests of segment splitting and chunk coalescing against device limits.
#include "iommu/sg_coalesce.h"

#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/platform.h>
#include <cenalloc/units.h>

namespace cenalloc {
namespace {

bool crosses(const SgEntry& s, uint64_t mask) {
    return (s.dmaAddress & ~mask) != ((s.dmaAddress + s.length - 1) & ~mask);
}

// What every split must satisfy, whatever the input.
void checkSegments(const SgTable& segs, uint64_t address, uint64_t length, uint64_t maxSeg, uint64_t mask) {
    uint64_t next = address;
    uint64_t total = 0;
    for (size_t i = 0; i < segs.size(); ++i) {
        SCOPED_TRACE(::testing::Message() << "segment " << i);
        const SgEntry& s = segs[i];
        EXPECT_EQ(s.dmaAddress, next) << "segments must be contiguous and in order";
        EXPECT_GT(s.length, 0u);
        EXPECT_LE(s.length, maxSeg);
        EXPECT_FALSE(crosses(s, mask));
        // Fewest segments: every cut but the last is forced by a limit.
        if (i + 1 < segs.size()) {
            EXPECT_TRUE(s.length == maxSeg || ((s.dmaAddress + s.length) & mask) == 0) << "needless cut";
        }
        next = s.dmaAddress + s.length;
        total += s.length;
    }
    EXPECT_EQ(total, length);
    EXPECT_EQ(countSegments(address, length, maxSeg, mask), segs.size());
}

TEST(SplitSegments, CutsAtMaxSizeAndBoundaries) {
    struct Case {
        const char* name;
        uint64_t address;
        uint64_t length;
        uint64_t maxSeg;
        uint64_t mask;
        SgTable expected;
    };
    const Case cases[] = {
        {"no limits", 0x1000, 1 * MiB, kNoLimit, kNoLimit, {{0x1000, 1 * MiB}}},
        {"zero length", 0x1000, 0, 64 * KiB, kNoLimit, {}},
        {"max size",
         0x100000,
         256 * KiB,
         64 * KiB,
         kNoLimit,
         {{0x100000, 0x10000}, {0x110000, 0x10000}, {0x120000, 0x10000}, {0x130000, 0x10000}}},
        {"max size remainder", 0x100000, 100 * KiB, 64 * KiB, kNoLimit, {{0x100000, 0x10000}, {0x110000, 0x9000}}},
        {"boundary", 0xf000, 0x3000, kNoLimit, 0xffff, {{0xf000, 0x1000}, {0x10000, 0x2000}}},
        {"aligned to boundary", 0x20000, 0x20000, kNoLimit, 0xffff, {{0x20000, 0x10000}, {0x30000, 0x10000}}},
        {"unaligned start and length",
         0x1234,
         0x20000,
         64 * KiB,
         0xffff,
         {{0x1234, 0xedcc}, {0x10000, 0x10000}, {0x20000, 0x1234}}},
        {"unaligned inside one window", 0x10010, 0x100, 64 * KiB, 0xffff, {{0x10010, 0x100}}},
        {"both limits",
         0x8000,
         0x1c000,
         0x6000,
         0xffff,
         {{0x8000, 0x6000},
          {0xe000, 0x2000},
          {0x10000, 0x6000},
          {0x16000, 0x6000},
          {0x1c000, 0x4000},
          {0x20000, 0x4000}}},
        {"boundary tighter than max",
         0x0,
         0x4000,
         64 * KiB,
         0xfff,
         {{0x0, 0x1000}, {0x1000, 0x1000}, {0x2000, 0x1000}, {0x3000, 0x1000}}},
        {"top of the address space",
         0xffffffffffff0000,
         0x10000,
         0x4000,
         kNoLimit,
         {{0xffffffffffff0000, 0x4000},
          {0xffffffffffff4000, 0x4000},
          {0xffffffffffff8000, 0x4000},
          {0xffffffffffffc000, 0x4000}}},
        {"32-bit boundary", 0xfffff000, 0x3000, kNoLimit, 0xffffffff, {{0xfffff000, 0x1000}, {0x100000000, 0x2000}}},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        SgTable segs = splitSegments(c.address, c.length, c.maxSeg, c.mask);
        EXPECT_EQ(segs, c.expected);
        checkSegments(segs, c.address, c.length, c.maxSeg, c.mask);
    }
}

TEST(SplitSegments, InvariantsHoldOverASweep) {
    const uint64_t maxSegs[] = {4 * KiB, 12 * KiB, 64 * KiB, 1 * MiB, kNoLimit};
    const uint64_t masks[] = {0xfff, 0xffff, 0x1ffff, 0xffffffff, kNoLimit};
    const uint64_t starts[] = {0, 0x1000, 0x1234, 0xfff0, 0x7fff000};
    const uint64_t lengths[] = {1, 0x1000, 0x10001, 0x3f000, 0x123456};
    for (uint64_t maxSeg : maxSegs)
        for (uint64_t mask : masks)
            for (uint64_t start : starts)
                for (uint64_t length : lengths) {
                    SCOPED_TRACE(::testing::Message() << std::hex << "max " << maxSeg << " mask " << mask << " start "
                                                      << start << " length " << length);
                    checkSegments(splitSegments(start, length, maxSeg, mask), start, length, maxSeg, mask);
                }
}

TEST(SplitSegments, AppendBuildsOneTableFromManyRanges) {
    SgTable out = {{0x1, 0x1}};
    appendSegments(out, 0x10000, 0x20000, 64 * KiB, kNoLimit);
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[1], (SgEntry{0x10000, 0x10000}));
    EXPECT_EQ(out[2], (SgEntry{0x20000, 0x10000}));
}

TEST(CoalesceChunks, MergesAdjacentChunksAndSplitsByTheLimits) {
    struct Case {
        const char* name;
        std::vector<PhysChunk> chunks;
        uint64_t maxSeg;
        uint64_t mask;
        SgTable expected;
    };
    const Case cases[] = {
        {"adjacent merge",
         {{0x10000, 0x1000}, {0x11000, 0x1000}, {0x12000, 0x2000}},
         kNoLimit,
         kNoLimit,
         {{0x10000, 0x4000}}},
        {"scattered stay apart",
         {{0x30000, 0x1000}, {0x10000, 0x1000}},
         kNoLimit,
         kNoLimit,
         {{0x30000, 0x1000}, {0x10000, 0x1000}}},
        {"adjacent but out of order stay apart",
         {{0x11000, 0x1000}, {0x10000, 0x1000}},
         kNoLimit,
         kNoLimit,
         {{0x11000, 0x1000}, {0x10000, 0x1000}}},
        {"merged run split by max",
         {{0x10000, 0x2000}, {0x12000, 0x2000}, {0x50000, 0x1000}},
         0x3000,
         kNoLimit,
         {{0x10000, 0x3000}, {0x13000, 0x1000}, {0x50000, 0x1000}}},
        {"merged run split at a boundary",
         {{0xe000, 0x2000}, {0x10000, 0x2000}},
         kNoLimit,
         0xffff,
         {{0xe000, 0x2000}, {0x10000, 0x2000}}},
        {"empty", {}, kNoLimit, kNoLimit, {}},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(coalesceChunks(c.chunks, c.maxSeg, c.mask), c.expected);
    }
}

TEST(CoalesceChunks, ContiguousPagesBecomeFewSegments) {
    // 128 pages, physically contiguous in runs of 16: 8 runs of 64 KiB.
    std::vector<PhysChunk> chunks;
    for (uint64_t run = 0; run < 8; ++run)
        for (uint64_t p = 0; p < 16; ++p)
            chunks.push_back({0x40000000 + run * 1 * MiB + p * 4 * KiB, 4 * KiB});
    SgTable segs = coalesceChunks(chunks, 64 * KiB, kNoLimit);
    ASSERT_EQ(segs.size(), 8u);
    for (const SgEntry& s : segs) {
        EXPECT_EQ(s.length, 64 * KiB);
    }
    // A 32 KiB max segment doubles the count.
    EXPECT_EQ(coalesceChunks(chunks, 32 * KiB, kNoLimit).size(), 16u);
}

} // namespace
} // namespace cenalloc
