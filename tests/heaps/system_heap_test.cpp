// SPDX-License-Identifier: MIT
// Tests of the system heaps: chunk orders, the never-grow-again rule, limits and exhaustion.
#include <algorithm>
#include <cerrno>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "heaps/platform_heaps.h"
#include "heaps/system_heap.h"

namespace cenalloc {
namespace {

constexpr uint64_t kDram = 0x40000000;
constexpr uint64_t kHigh = 0x100000000;

struct Board {
    Platform platform;
    std::shared_ptr<PhysicalMemory> memory;
    std::vector<std::shared_ptr<Heap>> heaps;

    std::shared_ptr<Heap> heap(const std::string& name) const {
        for (const auto& h : heaps)
            if (h->name() == name)
                return h;
        ADD_FAILURE() << "no heap " << name;
        return nullptr;
    }
};

Board makeBoard(Platform p) {
    EXPECT_TRUE(validatePlatform(p));
    Board b{std::move(p), nullptr, {}};
    b.memory = std::make_shared<PhysicalMemory>(b.platform);
    Result<std::vector<std::shared_ptr<Heap>>> heaps = createPlatformHeaps(b.platform, b.memory);
    EXPECT_TRUE(heaps);
    if (heaps)
        b.heaps = std::move(*heaps);
    return b;
}

// 256 MiB below 4 GiB with a CMA pool, 64 MiB above.
Board bigBoard() {
    Platform p;
    p.memory = {{.name = "dram", .base = kDram, .size = 256 * MiB}, {.name = "high", .base = kHigh, .size = 64 * MiB}};
    p.regions = {{.name = "cma", .kind = RegionKind::Cma, .base = kDram + 128 * MiB, .size = 32 * MiB}};
    return makeBoard(std::move(p));
}

// One 4 MiB bank: small enough to fill and fragment by hand.
Board smallBoard() {
    Platform p;
    p.memory = {{.name = "dram", .base = kDram, .size = 4 * MiB}};
    return makeBoard(std::move(p));
}

std::vector<uint64_t> sizesOf(const Storage& s) {
    std::vector<uint64_t> out;
    for (const PhysChunk& c : s.chunks())
        out.push_back(c.size);
    return out;
}

// Every chunk aligned to its size (a buddy block), inside [lowest, highest], none overlapping.
void expectWellFormed(const Storage& s, uint64_t lowest, uint64_t highest) {
    std::vector<PhysChunk> sorted = s.chunks();
    std::sort(sorted.begin(), sorted.end(),
              [](const PhysChunk& a, const PhysChunk& b) { return a.address < b.address; });
    uint64_t total = 0;
    for (size_t i = 0; i < sorted.size(); ++i) {
        const PhysChunk& c = sorted[i];
        EXPECT_EQ(c.address % c.size, 0u) << std::hex << c.address;
        EXPECT_GE(c.address, lowest);
        EXPECT_LE(c.end() - 1, highest);
        if (i > 0) {
            EXPECT_LE(sorted[i - 1].end(), c.address);
        }
        total += c.size;
    }
    EXPECT_EQ(total, s.size());
}

std::vector<uint64_t> repeat(uint64_t size, size_t n) {
    return std::vector<uint64_t>(n, size);
}

std::vector<uint64_t> concat(std::vector<uint64_t> a, const std::vector<uint64_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

TEST(SystemHeap, ChunkSizesAreTheLargestOrdersThatFit) {
    Board b = bigBoard();
    auto heap = b.heap("system");
    struct Case {
        uint64_t length;
        std::vector<uint64_t> chunks;
    };
    const Case cases[] = {
        {4 * KiB, {4 * KiB}},
        {60 * KiB, repeat(4 * KiB, 15)},
        {64 * KiB, {64 * KiB}},
        {68 * KiB, {64 * KiB, 4 * KiB}},
        {1 * MiB, {1 * MiB}},
        {1 * MiB + 64 * KiB + 4 * KiB, {1 * MiB, 64 * KiB, 4 * KiB}},
        {1 * MiB - 4 * KiB, concat(repeat(64 * KiB, 15), repeat(4 * KiB, 15))},
        {3 * MiB + 8 * KiB, concat(repeat(1 * MiB, 3), repeat(4 * KiB, 2))},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.length);
        Result<Storage> s = heap->allocate(c.length);
        ASSERT_TRUE(s) << s.error().toString();
        EXPECT_EQ(s->size(), c.length);
        EXPECT_EQ(sizesOf(*s), c.chunks);
        EXPECT_EQ(s->heap(), heap.get());
        expectWellFormed(*s, kDram, kHigh + 64 * MiB - 1);
    }
}

TEST(SystemHeap, MaxChunkSizeLimitsTheFirstOrder) {
    Board b = bigBoard();
    auto heap = b.heap("system");
    struct Case {
        uint64_t maxChunk;
        std::vector<uint64_t> chunks;
    };
    const uint64_t length = 1 * MiB + 64 * KiB + 4 * KiB;
    const Case cases[] = {
        {0, {1 * MiB, 64 * KiB, 4 * KiB}},
        {2 * MiB, {1 * MiB, 64 * KiB, 4 * KiB}},
        {1 * MiB, {1 * MiB, 64 * KiB, 4 * KiB}},
        {1 * MiB - 4 * KiB, concat(repeat(64 * KiB, 17), {4 * KiB})},
        {64 * KiB, concat(repeat(64 * KiB, 17), {4 * KiB})},
        {32 * KiB, repeat(4 * KiB, 273)},
        {1 * KiB, repeat(4 * KiB, 273)},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.maxChunk);
        StorageLimits limits;
        limits.maxChunkSize = c.maxChunk;
        Result<Storage> s = heap->allocate(length, limits);
        ASSERT_TRUE(s) << s.error().toString();
        EXPECT_EQ(sizesOf(*s), c.chunks);
    }
}

TEST(SystemHeap, NeverGrowsAgainAfterAFallback) {
    Board b = smallBoard();
    auto heap = b.heap("system");
    // Fill memory with 64 KiB blocks and free every other one: 2 MiB free in
    // 64 KiB pieces, none of them buddies, so no 1 MiB block exists.
    std::vector<uint64_t> blocks;
    while (Result<uint64_t> a = b.memory->allocatePages(4))
        blocks.push_back(*a);
    ASSERT_EQ(blocks.size(), 64u);
    std::sort(blocks.begin(), blocks.end());
    for (size_t i = 0; i < blocks.size(); i += 2)
        b.memory->freePages(blocks[i], 4);
    ASSERT_EQ(heap->freeBytes(), 2 * MiB);

    Result<Storage> s = heap->allocate(2 * MiB);
    ASSERT_TRUE(s) << s.error().toString();
    EXPECT_EQ(sizesOf(*s), repeat(64 * KiB, 32));
    EXPECT_EQ(heap->freeBytes(), 0u);
    expectWellFormed(*s, kDram, kDram + 4 * MiB - 1);
}

TEST(SystemHeap, FallsBackOrderByOrder) {
    Board b = smallBoard();
    auto heap = b.heap("system");
    // Free memory: one whole 1 MiB block and 128 lone pages, no 64 KiB block.
    std::vector<uint64_t> pages;
    while (Result<uint64_t> a = b.memory->allocatePages(0))
        pages.push_back(*a);
    ASSERT_EQ(pages.size(), 1024u);
    std::sort(pages.begin(), pages.end());
    for (size_t i = 0; i < 256; ++i)
        b.memory->freePages(pages[i], 0);
    for (size_t i = 256; i < 512; i += 2)
        b.memory->freePages(pages[i], 0);

    Result<Storage> s = heap->allocate(1 * MiB + 64 * KiB + 4 * KiB);
    ASSERT_TRUE(s) << s.error().toString();
    EXPECT_EQ(sizesOf(*s), concat({1 * MiB}, repeat(4 * KiB, 17)));
    EXPECT_EQ(s->chunks()[0].address, kDram);
    expectWellFormed(*s, kDram, kDram + 4 * MiB - 1);
}

TEST(SystemHeap, HonoursTheHighestAddressLimit) {
    Board b = bigBoard();
    auto heap = b.heap("system");
    // Unlimited: the high bank is used first.
    Result<Storage> any = heap->allocate(2 * MiB);
    ASSERT_TRUE(any);
    EXPECT_GE(any->chunks()[0].address, kHigh);

    StorageLimits dma32;
    dma32.highestAddress = 0xffffffff;
    Result<Storage> low = heap->allocate(2 * MiB + 68 * KiB, dma32);
    ASSERT_TRUE(low);
    expectWellFormed(*low, kDram, 0xffffffff);

    // A 30-bit limit below all memory.
    StorageLimits tooLow;
    tooLow.highestAddress = kDram - 1;
    const HeapStats before = heap->stats();
    const uint64_t freeBefore = heap->freeBytes();
    Result<Storage> none = heap->allocate(4 * KiB, tooLow);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code(), ENOMEM);
    EXPECT_EQ(heap->freeBytes(), freeBefore);
    EXPECT_EQ(heap->stats().failedAllocations, before.failedAllocations + 1);
    EXPECT_EQ(heap->stats().liveBuffers, before.liveBuffers);
}

TEST(SystemHeap, Dma32HeapsStayBelow4G) {
    Board b = bigBoard();
    for (const char* name : {"system-dma32", "system-uncached-dma32"}) {
        SCOPED_TRACE(name);
        auto heap = b.heap(name);
        const uint64_t free = heap->freeBytes();
        EXPECT_EQ(free, 256 * MiB - 32 * MiB);
        Result<Storage> s = heap->allocate(3 * MiB + 4 * KiB);
        ASSERT_TRUE(s);
        expectWellFormed(*s, kDram, 0xffffffff);
        EXPECT_EQ(heap->freeBytes(), free - s->size());
    }
    // Allocations from "system" come from above 4 GiB first, so the dma32
    // heaps' free memory is untouched by them.
    auto dma32 = b.heap("system-dma32");
    const uint64_t free = dma32->freeBytes();
    Result<Storage> high = b.heap("system")->allocate(8 * MiB);
    ASSERT_TRUE(high);
    EXPECT_EQ(dma32->freeBytes(), free);
    EXPECT_EQ(b.heap("system")->freeBytes(), b.memory->freeBytes());
}

TEST(SystemHeap, CachedAndUncachedShareMemory) {
    Board b = smallBoard();
    auto cached = b.heap("system");
    auto uncached = b.heap("system-uncached");
    Result<Storage> s = cached->allocate(3 * MiB);
    ASSERT_TRUE(s);
    EXPECT_EQ(uncached->freeBytes(), 1 * MiB);
    Result<Storage> t = uncached->allocate(2 * MiB);
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error().code(), ENOMEM);
}

TEST(SystemHeap, ExhaustionGivesEverythingBack) {
    Board b = smallBoard();
    auto heap = b.heap("system");
    const uint64_t baseline = heap->freeBytes();
    ASSERT_EQ(baseline, 4 * MiB);

    // Fails after taking all 4 MiB: every chunk taken so far is returned.
    Result<Storage> tooBig = heap->allocate(4 * MiB + 4 * KiB);
    ASSERT_FALSE(tooBig);
    EXPECT_EQ(tooBig.error().code(), ENOMEM);
    EXPECT_EQ(heap->freeBytes(), baseline);
    HeapStats st = heap->stats();
    EXPECT_EQ(st.liveBuffers, 0u);
    EXPECT_EQ(st.liveBytes, 0u);
    EXPECT_EQ(st.watermarkBytes, 0u);
    EXPECT_EQ(st.totalAllocations, 0u);
    EXPECT_EQ(st.failedAllocations, 1u);

    // Partly used: the failure leaves exactly what was free, and nothing is
    // half-allocated, so the whole remainder can still be had in 1 MiB chunks.
    Result<Storage> three = heap->allocate(3 * MiB);
    ASSERT_TRUE(three);
    Result<Storage> two = heap->allocate(2 * MiB);
    ASSERT_FALSE(two);
    EXPECT_EQ(two.error().code(), ENOMEM);
    EXPECT_EQ(heap->freeBytes(), 1 * MiB);
    Result<Storage> one = heap->allocate(1 * MiB);
    ASSERT_TRUE(one);
    EXPECT_EQ(sizesOf(*one), std::vector<uint64_t>{1 * MiB});
    EXPECT_EQ(heap->freeBytes(), 0u);

    st = heap->stats();
    EXPECT_EQ(st.liveBuffers, 2u);
    EXPECT_EQ(st.liveBytes, 4 * MiB);
    EXPECT_EQ(st.failedAllocations, 2u);
    three->reset();
    one->reset();
    EXPECT_EQ(heap->freeBytes(), baseline);
    // Everything merged back: the whole bank in 1 MiB chunks again.
    Result<Storage> all = heap->allocate(4 * MiB);
    ASSERT_TRUE(all);
    EXPECT_EQ(sizesOf(*all), repeat(1 * MiB, 4));
}

} // namespace
} // namespace cenalloc
