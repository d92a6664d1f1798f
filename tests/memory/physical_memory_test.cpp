// SPDX-License-Identifier: MIT
// Tests of the simulated physical memory: banks minus reserved regions, bank preference, limits.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "memory/physical_memory.h"

namespace cenalloc {
namespace {

constexpr uint64_t kLow = 0x40000000;
constexpr uint64_t kHigh = 0x100000000;

// 64 MiB below 4 GiB with an 8 MiB CMA pool inside, 16 MiB above 4 GiB
// starting with a 4 MiB no-map carveout.
Platform twoBanks() {
    Platform p;
    p.name = "test";
    p.memory = {{.name = "low", .base = kLow, .size = 64 * MiB}, {.name = "high", .base = kHigh, .size = 16 * MiB}};
    p.regions = {
        {.name = "cma", .kind = RegionKind::Cma, .base = kLow + 16 * MiB, .size = 8 * MiB},
        {.name = "secure", .kind = RegionKind::Carveout, .base = kHigh, .size = 4 * MiB, .noMap = true},
    };
    EXPECT_TRUE(validatePlatform(p));
    return p;
}

bool insideRegion(const Platform& p, uint64_t address, uint64_t size) {
    for (const ReservedRegion& r : p.regions)
        if (address < r.end() && r.base < address + size)
            return true;
    return false;
}

TEST(PhysicalMemory, GeneralMemoryIsBanksMinusRegions) {
    const Platform p = twoBanks();
    const std::vector<PhysChunk> expected = {
        {kLow, 16 * MiB},
        {kLow + 24 * MiB, 40 * MiB},
        {kHigh + 4 * MiB, 12 * MiB},
    };
    EXPECT_EQ(generalMemorySpans(p), expected);

    PhysicalMemory memory(p);
    EXPECT_EQ(memory.totalBytes(), 68 * MiB);
    EXPECT_EQ(memory.freeBytes(), 68 * MiB);
    EXPECT_EQ(memory.lowestAddress(), kLow);
    EXPECT_EQ(memory.endAddress(), kHigh + 16 * MiB);
}

TEST(PhysicalMemory, LowestAddressSkipsARegionAtTheBottom) {
    Platform p;
    p.memory = {{.name = "ram", .base = kLow, .size = 32 * MiB}};
    p.regions = {
        {.name = "bottom", .kind = RegionKind::Carveout, .base = kLow, .size = 4 * MiB},
        {.name = "top", .kind = RegionKind::Cma, .base = kLow + 28 * MiB, .size = 4 * MiB},
    };
    ASSERT_TRUE(validatePlatform(p));
    PhysicalMemory memory(p);
    EXPECT_EQ(memory.lowestAddress(), kLow + 4 * MiB);
    EXPECT_EQ(memory.endAddress(), kLow + 28 * MiB);
    EXPECT_EQ(memory.totalBytes(), 24 * MiB);
}

TEST(PhysicalMemory, ReservedRegionsAreNeverHandedOut) {
    const Platform p = twoBanks();
    PhysicalMemory memory(p);
    std::vector<uint64_t> pages;
    for (;;) {
        Result<uint64_t> a = memory.allocatePages(0);
        if (!a) {
            EXPECT_EQ(a.error().code(), ENOMEM);
            break;
        }
        pages.push_back(*a);
    }
    EXPECT_EQ(pages.size(), 68 * MiB / kPageSize);
    EXPECT_EQ(memory.freeBytes(), 0u);
    for (uint64_t a : pages)
        ASSERT_FALSE(insideRegion(p, a, kPageSize)) << std::hex << a;
    for (uint64_t a : pages)
        memory.freePages(a, 0);
    EXPECT_EQ(memory.freeBytes(), 68 * MiB);
    // Everything merged back: the high bank's 12 MiB is three 4 MiB blocks again.
    for (int i = 0; i < 3; ++i)
        EXPECT_GE(*memory.allocatePages(PageAllocator::kMaxOrder), kHigh);
}

TEST(PhysicalMemory, HighestBankFirst) {
    const Platform p = twoBanks();
    PhysicalMemory memory(p);
    uint64_t first = *memory.allocatePages(0);
    EXPECT_EQ(first, kHigh + 16 * MiB - kPageSize);

    // A 32-bit limit goes to the low bank, at its top.
    Result<uint64_t> low = memory.allocatePages(0, AddressLimit{0, 0xffffffff});
    ASSERT_TRUE(low);
    EXPECT_EQ(*low, kLow + 64 * MiB - kPageSize);

    // Once the high bank is full, the low bank serves unlimited requests too.
    memory.freePages(first, 0);
    for (int i = 0; i < 3; ++i)
        EXPECT_GE(*memory.allocatePages(PageAllocator::kMaxOrder), kHigh);
    Result<uint64_t> next = memory.allocatePages(PageAllocator::kMaxOrder);
    ASSERT_TRUE(next);
    EXPECT_LT(*next, kHigh);
}

TEST(PhysicalMemory, BulkFreeCachesBlocksAndBulkAllocateTakesTheNewestFirst) {
    const Platform p = twoBanks();
    PhysicalMemory memory(p);
    const uint64_t total = memory.freeBytes();
    std::vector<PhysChunk> chunks;
    ASSERT_EQ(memory.allocatePagesBulk(4, 8, AddressLimit{}, chunks), 8u);
    ASSERT_EQ(chunks.size(), 8u);
    EXPECT_EQ(memory.freeBytes(), total - 8 * 64 * KiB);

    memory.freePagesBulk(chunks);
    EXPECT_EQ(memory.cachedBytes(), 8 * 64 * KiB);
    EXPECT_EQ(memory.freeBytes(), total) << "cached blocks count as free";

    // Taken back newest (last freed) first, after what `out` already holds.
    std::vector<PhysChunk> again = {{0x1234000, kPageSize}};
    ASSERT_EQ(memory.allocatePagesBulk(4, 5, AddressLimit{}, again), 5u);
    ASSERT_EQ(again.size(), 6u);
    EXPECT_EQ(again[0].address, 0x1234000u);
    for (size_t i = 0; i < 5; ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(again[1 + i].address, chunks[7 - i].address);
        EXPECT_EQ(again[1 + i].size, 64 * KiB);
    }
    EXPECT_EQ(memory.cachedBytes(), 3 * 64 * KiB);
    EXPECT_EQ(memory.freeBytes(), total - 5 * 64 * KiB);

    // Asking for more than the cache holds: the rest comes from the buddies.
    again.erase(again.begin());
    ASSERT_EQ(memory.allocatePagesBulk(4, 5, AddressLimit{}, again), 5u);
    EXPECT_EQ(memory.cachedBytes(), 0u);
    EXPECT_EQ(memory.freeBytes(), total - 10 * 64 * KiB);
    std::vector<uint64_t> addresses;
    for (const PhysChunk& c : again)
        addresses.push_back(c.address);
    std::sort(addresses.begin(), addresses.end());
    EXPECT_EQ(std::adjacent_find(addresses.begin(), addresses.end()), addresses.end()) << "no block twice";
    memory.freePagesBulk(again);
    EXPECT_EQ(memory.freeBytes(), total);
}

TEST(PhysicalMemory, BulkAllocateFromTheCacheStopsAtABlockOutsideTheLimit) {
    const Platform p = twoBanks();
    PhysicalMemory memory(p);
    const uint64_t total = memory.freeBytes();
    // Low-bank blocks, then high-bank blocks on top of the high bank's cache.
    std::vector<PhysChunk> low;
    ASSERT_EQ(memory.allocatePagesBulk(0, 3, AddressLimit{0, 0xffffffff}, low), 3u);
    std::vector<PhysChunk> high;
    ASSERT_EQ(memory.allocatePagesBulk(0, 3, AddressLimit{}, high), 3u);
    for (const PhysChunk& c : high)
        ASSERT_GE(c.address, kHigh);
    // Free a mix in one call: each block goes to its own bank's cache.
    std::vector<PhysChunk> mixed = {high[0], low[0], high[1], low[1], high[2], low[2]};
    memory.freePagesBulk(mixed);
    EXPECT_EQ(memory.cachedBytes(), 6 * kPageSize);
    EXPECT_EQ(memory.freeBytes(), total);

    // Blocks come from the top of a bank down, so a limit ending at the
    // newest cached high block admits it and not the next one: the fast
    // path stops there, the buddies serve the rest, all inside the limit.
    ASSERT_LT(high[2].address, high[1].address);
    const AddressLimit limit{0, high[2].address + kPageSize - 1};
    std::vector<PhysChunk> out;
    ASSERT_EQ(memory.allocatePagesBulk(0, 3, limit, out), 3u);
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].address, high[2].address);
    for (const PhysChunk& c : out) {
        SCOPED_TRACE(c.address);
        EXPECT_TRUE(limit.admits(c.address, c.size));
    }
    EXPECT_EQ(memory.freeBytes(), total - 3 * kPageSize);
    memory.freePagesBulk(out);
    EXPECT_EQ(memory.freeBytes(), total);
}

TEST(PhysicalMemory, BulkFreeBeyondTheCacheLimitGoesToTheBuddies) {
    Platform p;
    p.name = "big";
    p.memory = {{.name = "dram", .base = kLow, .size = 256 * MiB}};
    ASSERT_TRUE(validatePlatform(p));
    PhysicalMemory memory(p);
    const uint64_t total = memory.freeBytes();
    const size_t blocks = PhysicalMemory::kMaxCachedBytes / MiB + 8;
    std::vector<PhysChunk> chunks;
    ASSERT_EQ(memory.allocatePagesBulk(8, blocks, AddressLimit{}, chunks), blocks);
    memory.freePagesBulk(chunks);
    EXPECT_EQ(memory.cachedBytes(), PhysicalMemory::kMaxCachedBytes);
    EXPECT_EQ(memory.freeBytes(), total);
    memory.drainCache();
    EXPECT_EQ(memory.cachedBytes(), 0u);
    EXPECT_EQ(memory.freeBytes(), total);
    // Everything merged back: the largest blocks exist again.
    std::vector<PhysChunk> whole;
    EXPECT_EQ(memory.allocatePagesBulk(PageAllocator::kMaxOrder, 64, AddressLimit{}, whole), 64u);
}

TEST(PhysicalMemory, LimitOutsideEveryBankIsEnomem) {
    const Platform p = twoBanks();
    PhysicalMemory memory(p);
    const AddressLimit limits[] = {
        {0, kLow - 1}, {kHigh + 16 * MiB, UINT64_MAX}, {kLow + 16 * MiB, kLow + 24 * MiB - 1}, // the CMA pool only
    };
    for (const AddressLimit& limit : limits) {
        SCOPED_TRACE(::testing::Message() << std::hex << limit.lowest << "-" << limit.highest);
        Result<uint64_t> a = memory.allocatePages(0, limit);
        ASSERT_FALSE(a);
        EXPECT_EQ(a.error().code(), ENOMEM);
        EXPECT_EQ(memory.freeBytes(), 68 * MiB);
    }
}

TEST(PhysicalMemory, FreeBytesInsideALimit) {
    const Platform p = twoBanks();
    PhysicalMemory memory(p);
    const AddressLimit dma32{0, 0xffffffff};
    const AddressLimit above{kHigh, UINT64_MAX};
    EXPECT_EQ(memory.freeBytes(dma32), 56 * MiB);
    EXPECT_EQ(memory.freeBytes(above), 12 * MiB);
    EXPECT_EQ(memory.freeBytes(AddressLimit{kLow + 8 * MiB, kLow + 32 * MiB - 1}), 16 * MiB);

    uint64_t high = *memory.allocatePages(4);
    EXPECT_EQ(memory.freeBytes(dma32), 56 * MiB);
    EXPECT_EQ(memory.freeBytes(above), 12 * MiB - 64 * KiB);
    uint64_t low = *memory.allocatePages(4, dma32);
    EXPECT_EQ(memory.freeBytes(dma32), 56 * MiB - 64 * KiB);
    memory.freePages(high, 4);
    memory.freePages(low, 4);
    EXPECT_EQ(memory.freeBytes(dma32), 56 * MiB);
    EXPECT_EQ(memory.freeBytes(), 68 * MiB);
}

TEST(PhysicalMemory, FullyReservedBankGivesNothing) {
    Platform p;
    p.memory = {{.name = "ram", .base = kLow, .size = 8 * MiB}};
    p.regions = {{.name = "all", .kind = RegionKind::Carveout, .base = kLow, .size = 8 * MiB}};
    ASSERT_TRUE(validatePlatform(p));
    PhysicalMemory memory(p);
    EXPECT_EQ(memory.totalBytes(), 0u);
    Result<uint64_t> a = memory.allocatePages(0);
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().code(), ENOMEM);
    EXPECT_TRUE(generalMemorySpans(p).empty());
}

} // namespace
} // namespace cenalloc
