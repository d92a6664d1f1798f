// SPDX-License-Identifier: MIT
// Tests of the IOMMU page table: map, translate, unmap, overlaps and faults.
#include "iommu/page_table.h"

#include <cerrno>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

namespace cenalloc {
namespace {

TEST(IoPageTable, MapTranslateUnmap) {
    IoPageTable t(4 * KiB);
    ASSERT_TRUE(t.map(0x10000, 0x80000000, 3 * 4 * KiB));
    EXPECT_EQ(t.mappedBytes(), 12 * KiB);
    for (uint64_t off : {uint64_t{0}, uint64_t{1}, uint64_t{0x1234}, uint64_t{0x2fff}}) {
        SCOPED_TRACE(off);
        Result<uint64_t> phys = t.translate(0x10000 + off);
        ASSERT_TRUE(phys);
        EXPECT_EQ(*phys, 0x80000000 + off);
    }
    EXPECT_EQ(t.unmap(0x10000, 12 * KiB), 12 * KiB);
    EXPECT_EQ(t.mappedBytes(), 0u);
    EXPECT_EQ(t.regionCount(), 0u);
    Result<uint64_t> gone = t.translate(0x10000);
    ASSERT_FALSE(gone);
    EXPECT_EQ(gone.error().code(), EFAULT);
}

TEST(IoPageTable, UnmappedAddressesFault) {
    IoPageTable t(4 * KiB);
    ASSERT_TRUE(t.map(0x10000, 0x80000000, 8 * KiB));
    for (uint64_t iova : {uint64_t{0}, uint64_t{0xffff}, uint64_t{0x12000}, uint64_t{0x12001}, UINT64_MAX}) {
        SCOPED_TRACE(iova);
        Result<uint64_t> r = t.translate(iova);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code(), EFAULT);
        EXPECT_NE(r.error().message().find("is not mapped"), std::string::npos);
        EXPECT_FALSE(t.translateRun(iova));
    }
    Result<uint64_t> r = t.translate(0x12000);
    EXPECT_EQ(r.error().message(), "iova 0x12000 is not mapped");
}

TEST(IoPageTable, MapScatterPlacesChunksBackToBack) {
    IoPageTable t(4 * KiB);
    const std::vector<PhysChunk> chunks = {
        {0x90000000, 4 * KiB},
        {0x50000000, 8 * KiB},
        {0x50002000, 4 * KiB}, // physically adjacent to the previous
        {0x70000000, 4 * KiB},
    };
    const uint64_t iova = 0x100000;
    ASSERT_TRUE(t.mapScatter(iova, chunks));
    EXPECT_EQ(t.mappedBytes(), 20 * KiB);
    uint64_t offset = 0;
    for (size_t i = 0; i < chunks.size(); ++i) {
        SCOPED_TRACE(i);
        for (uint64_t in = 0; in < chunks[i].size; in += 2 * KiB) {
            Result<uint64_t> phys = t.translate(iova + offset + in);
            ASSERT_TRUE(phys);
            EXPECT_EQ(*phys, chunks[i].address + in);
        }
        offset += chunks[i].size;
    }
    // Runs end where physical contiguity ends; the adjacent chunks form one run.
    Result<PhysChunk> run = t.translateRun(iova + 4 * KiB + 100);
    ASSERT_TRUE(run);
    EXPECT_EQ(run->address, 0x50000000u + 100);
    EXPECT_EQ(run->size, 12 * KiB - 100);
    Result<PhysChunk> last = t.translateRun(iova + 16 * KiB);
    ASSERT_TRUE(last);
    EXPECT_EQ(last->size, 4 * KiB);
}

TEST(IoPageTable, OverlappingMapIsEexistAndChangesNothing) {
    struct Case {
        const char* name;
        uint64_t iova;
        uint64_t size;
    };
    const Case cases[] = {
        {"same range", 0x10000, 16 * KiB},    {"head", 0xe000, 12 * KiB},     {"tail", 0x13000, 8 * KiB},
        {"inside", 0x11000, 4 * KiB},         {"covering", 0x8000, 64 * KiB}, {"second region", 0x40000, 4 * KiB},
        {"between and in", 0x20000, 0x21000},
    };
    IoPageTable t(4 * KiB);
    ASSERT_TRUE(t.map(0x10000, 0x80000000, 16 * KiB));
    ASSERT_TRUE(t.map(0x40000, 0x90000000, 4 * KiB));
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        Result<void> r = t.map(c.iova, 0xa0000000, c.size);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code(), EEXIST);
        std::vector<PhysChunk> chunks = {{0xa0000000, 4 * KiB}, {0xb0000000, c.size - 4 * KiB}};
        if (c.size > 4 * KiB) {
            Result<void> s = t.mapScatter(c.iova, chunks);
            ASSERT_FALSE(s);
            EXPECT_EQ(s.error().code(), EEXIST);
        }
        EXPECT_EQ(t.mappedBytes(), 20 * KiB);
        EXPECT_EQ(t.regionCount(), 2u);
        EXPECT_EQ(*t.translate(0x10000), 0x80000000u);
        EXPECT_EQ(*t.translate(0x13fff), 0x80003fffu);
        EXPECT_EQ(*t.translate(0x40000), 0x90000000u);
        EXPECT_FALSE(t.translate(0xf000));
        EXPECT_FALSE(t.translate(0x14000));
    }
    // Touching but not overlapping is fine.
    EXPECT_TRUE(t.map(0x14000, 0xa0000000, 4 * KiB));
    EXPECT_TRUE(t.map(0xf000, 0xa0001000, 4 * KiB));
}

TEST(IoPageTable, BadArgumentsAreEinvalAndChangeNothing) {
    struct Case {
        const char* name;
        uint64_t iova;
        uint64_t phys;
        uint64_t size;
    };
    const Case cases[] = {
        {"zero size", 0x10000, 0x80000000, 0},
        {"unaligned iova", 0x10800, 0x80000000, 4 * KiB},
        {"unaligned phys", 0x10000, 0x80000800, 4 * KiB},
        {"unaligned size", 0x10000, 0x80000000, 6 * KiB},
        {"iova wraps", UINT64_MAX - 4 * KiB + 1, 0x80000000, 8 * KiB},
        {"phys wraps", 0x10000, UINT64_MAX - 4 * KiB + 1, 8 * KiB},
    };
    IoPageTable t(4 * KiB);
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        Result<void> r = t.map(c.iova, c.phys, c.size);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code(), EINVAL);
        EXPECT_EQ(t.mappedBytes(), 0u);
        EXPECT_EQ(t.regionCount(), 0u);
    }
    Result<void> empty = t.mapScatter(0x10000, {});
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.error().code(), EINVAL);
    // One bad chunk spoils the whole list.
    std::vector<PhysChunk> chunks = {{0x80000000, 4 * KiB}, {0x90000000, 0}};
    Result<void> bad = t.mapScatter(0x10000, chunks);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), EINVAL);
    EXPECT_EQ(t.mappedBytes(), 0u);
}

TEST(IoPageTable, PartialUnmapKeepsTheRestOfARegion) {
    IoPageTable t(4 * KiB);
    const std::vector<PhysChunk> chunks = {{0x90000000, 4 * KiB}, {0x50000000, 8 * KiB}, {0x70000000, 4 * KiB}};
    ASSERT_TRUE(t.mapScatter(0x100000, chunks));
    // Unmap the middle two pages: they straddle the first and second chunk.
    EXPECT_EQ(t.unmap(0x101000, 8 * KiB), 8 * KiB);
    EXPECT_EQ(t.mappedBytes(), 8 * KiB);
    EXPECT_EQ(t.regionCount(), 2u);
    EXPECT_EQ(*t.translate(0x100010), 0x90000010u);
    EXPECT_FALSE(t.translate(0x101000));
    EXPECT_FALSE(t.translate(0x102fff));
    EXPECT_EQ(*t.translate(0x103010), 0x70000010u);
    Result<PhysChunk> run = t.translateRun(0x103000);
    ASSERT_TRUE(run);
    EXPECT_EQ(run->size, 4 * KiB);

    // The tail of the second chunk survives in a split region.
    ASSERT_TRUE(t.map(0x200000, 0x60000000, 16 * KiB));
    EXPECT_EQ(t.unmap(0x200000, 4 * KiB), 4 * KiB);
    EXPECT_EQ(*t.translate(0x201000), 0x60001000u);
    EXPECT_EQ(*t.translate(0x203fff), 0x60003fffu);

    // An unmap spanning several regions and holes reports only mapped bytes.
    EXPECT_EQ(t.unmap(0, 4 * MiB), 4 * KiB + 4 * KiB + 12 * KiB);
    EXPECT_EQ(t.mappedBytes(), 0u);
    EXPECT_EQ(t.regionCount(), 0u);
    EXPECT_EQ(t.unmap(0x100000, 4 * KiB), 0u);
}

TEST(IoPageTable, LargePagesWork) {
    IoPageTable t(64 * KiB);
    Result<void> small = t.map(0x10000, 0x80000000, 4 * KiB);
    ASSERT_FALSE(small);
    EXPECT_EQ(small.error().code(), EINVAL);
    ASSERT_TRUE(t.map(0x10000, 0x80000000, 128 * KiB));
    EXPECT_EQ(*t.translate(0x2ffff), 0x8001ffffu);
}

} // namespace
} // namespace cenalloc
