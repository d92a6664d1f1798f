// SPDX-License-Identifier: MIT
// Tests of heap statistics and of Storage ownership (move, reset, destruction).
#include <cerrno>
#include <memory>
#include <utility>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "heaps/platform_heaps.h"

namespace cenalloc {
namespace {

constexpr uint64_t kDram = 0x40000000;

struct Board {
    std::shared_ptr<PhysicalMemory> memory;
    std::shared_ptr<Heap> system;
    std::shared_ptr<Heap> cma;
};

// 16 MiB of RAM holding a 4 MiB CMA pool.
Board makeBoard() {
    Platform p;
    p.memory = {{.name = "dram", .base = kDram, .size = 16 * MiB}};
    p.regions = {{.name = "cma", .kind = RegionKind::Cma, .base = kDram + 12 * MiB, .size = 4 * MiB}};
    EXPECT_TRUE(validatePlatform(p));
    Board b;
    b.memory = std::make_shared<PhysicalMemory>(p);
    Result<std::vector<std::shared_ptr<Heap>>> heaps = createPlatformHeaps(p, b.memory);
    EXPECT_TRUE(heaps);
    if (heaps) {
        b.system = (*heaps)[0];
        b.cma = (*heaps)[2];
    }
    return b;
}

void expectStats(const HeapStats& s, uint64_t buffers, uint64_t bytes, uint64_t watermark, uint64_t total,
                 uint64_t failed) {
    EXPECT_EQ(s.liveBuffers, buffers);
    EXPECT_EQ(s.liveBytes, bytes);
    EXPECT_EQ(s.watermarkBytes, watermark);
    EXPECT_EQ(s.totalAllocations, total);
    EXPECT_EQ(s.failedAllocations, failed);
}

TEST(HeapStats, CountLiveBuffersBytesAndWatermark) {
    Board b = makeBoard();
    for (const auto& heap : {b.system, b.cma}) {
        SCOPED_TRACE(heap->name());
        expectStats(heap->stats(), 0, 0, 0, 0, 0);

        Result<Storage> a = heap->allocate(64 * KiB);
        Result<Storage> c = heap->allocate(1 * MiB);
        ASSERT_TRUE(a && c);
        expectStats(heap->stats(), 2, 1 * MiB + 64 * KiB, 1 * MiB + 64 * KiB, 2, 0);

        // The watermark survives frees.
        c->reset();
        expectStats(heap->stats(), 1, 64 * KiB, 1 * MiB + 64 * KiB, 2, 0);

        // Resetting it brings it down to what is live now.
        heap->resetWatermark();
        expectStats(heap->stats(), 1, 64 * KiB, 64 * KiB, 2, 0);

        Result<Storage> d = heap->allocate(8 * KiB);
        ASSERT_TRUE(d);
        expectStats(heap->stats(), 2, 72 * KiB, 72 * KiB, 3, 0);

        // A failure counts and changes nothing else.
        Result<Storage> tooBig = heap->allocate(64 * MiB);
        ASSERT_FALSE(tooBig);
        EXPECT_EQ(tooBig.error().code(), ENOMEM);
        expectStats(heap->stats(), 2, 72 * KiB, 72 * KiB, 3, 1);

        a->reset();
        d->reset();
        expectStats(heap->stats(), 0, 0, 72 * KiB, 3, 1);
        heap->resetWatermark();
        expectStats(heap->stats(), 0, 0, 0, 3, 1);
    }
}

TEST(HeapStats, HeapsKeepSeparateStatistics) {
    Board b = makeBoard();
    Result<Storage> s = b.system->allocate(4 * KiB);
    ASSERT_TRUE(s);
    expectStats(b.cma->stats(), 0, 0, 0, 0, 0);
    expectStats(b.system->stats(), 1, 4 * KiB, 4 * KiB, 1, 0);
}

TEST(Storage, DestructionReturnsMemory) {
    Board b = makeBoard();
    const uint64_t baseline = b.system->freeBytes();
    {
        Result<Storage> s = b.system->allocate(2 * MiB);
        ASSERT_TRUE(s);
        EXPECT_EQ(b.system->freeBytes(), baseline - 2 * MiB);
    }
    EXPECT_EQ(b.system->freeBytes(), baseline);
    EXPECT_EQ(b.system->stats().liveBuffers, 0u);
}

TEST(Storage, DefaultIsEmpty) {
    Storage s;
    EXPECT_TRUE(s.empty());
    EXPECT_EQ(s.size(), 0u);
    EXPECT_EQ(s.heap(), nullptr);
    EXPECT_TRUE(s.chunks().empty());
    s.reset();
    EXPECT_TRUE(s.empty());
}

TEST(Storage, MoveTransfersOwnership) {
    Board b = makeBoard();
    const uint64_t baseline = b.cma->freeBytes();
    Result<Storage> r = b.cma->allocate(1 * MiB);
    ASSERT_TRUE(r);
    const std::vector<PhysChunk> chunks = r->chunks();

    Storage moved(std::move(*r));
    EXPECT_TRUE(r->empty());
    EXPECT_EQ(r->size(), 0u);
    EXPECT_TRUE(r->chunks().empty());
    EXPECT_FALSE(moved.empty());
    EXPECT_EQ(moved.chunks(), chunks);
    EXPECT_EQ(moved.size(), 1 * MiB);
    EXPECT_EQ(moved.heap(), b.cma.get());

    // Destroying or resetting the moved-from object frees nothing.
    r->reset();
    EXPECT_EQ(b.cma->freeBytes(), baseline - 1 * MiB);
    EXPECT_EQ(b.cma->stats().liveBuffers, 1u);

    Storage assigned;
    assigned = std::move(moved);
    EXPECT_TRUE(moved.empty());
    EXPECT_EQ(assigned.chunks(), chunks);
    EXPECT_EQ(b.cma->freeBytes(), baseline - 1 * MiB);

    // Self-move keeps the storage.
    Storage& alias = assigned;
    assigned = std::move(alias);
    EXPECT_EQ(assigned.chunks(), chunks);

    assigned.reset();
    EXPECT_TRUE(assigned.empty());
    EXPECT_EQ(b.cma->freeBytes(), baseline);
    EXPECT_EQ(b.cma->stats().liveBuffers, 0u);
    assigned.reset();
    EXPECT_EQ(b.cma->stats().liveBuffers, 0u);
}

TEST(Storage, MoveAssignReleasesTheOldStorage) {
    Board b = makeBoard();
    const uint64_t baseline = b.system->freeBytes();
    Result<Storage> first = b.system->allocate(1 * MiB);
    Result<Storage> second = b.system->allocate(64 * KiB);
    ASSERT_TRUE(first && second);
    *first = std::move(*second);
    EXPECT_EQ(first->size(), 64 * KiB);
    EXPECT_EQ(b.system->freeBytes(), baseline - 64 * KiB);
    EXPECT_EQ(b.system->stats().liveBuffers, 1u);
    EXPECT_EQ(b.system->stats().liveBytes, 64 * KiB);
}

TEST(Storage, KeepsItsHeapAlive) {
    Board b = makeBoard();
    std::weak_ptr<Heap> watch = b.cma;
    Result<Storage> s = b.cma->allocate(64 * KiB);
    ASSERT_TRUE(s);
    b.cma.reset();
    EXPECT_FALSE(watch.expired());
    s->reset();
    EXPECT_TRUE(watch.expired());
}

} // namespace
} // namespace cenalloc
