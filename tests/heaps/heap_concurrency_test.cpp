// SPDX-License-Identifier: MIT
// Concurrent allocation and release on shared heaps; statistics end at the baseline.
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "heaps/platform_heaps.h"

namespace cenalloc {
namespace {

constexpr int kThreads = 4;
constexpr int kIterations = 300;

// Each thread allocates buffers of pseudo-random page counts, keeps a few
// alive, and frees them in a mixed order; returns how many succeeded.
uint64_t churn(Heap& heap, unsigned seed, uint64_t maxPages) {
    std::mt19937 rng(seed);
    std::vector<Storage> live;
    uint64_t done = 0;
    for (int i = 0; i < kIterations; ++i) {
        const uint64_t length = (rng() % maxPages + 1) * kPageSize;
        Result<Storage> s = heap.allocate(length);
        if (s) {
            EXPECT_EQ(s->size(), length);
            live.push_back(std::move(*s));
            ++done;
        }
        if (live.size() > 4 || (rng() % 3 == 0 && !live.empty()))
            live.erase(live.begin() + static_cast<long>(rng() % live.size()));
    }
    return done;
}

TEST(HeapConcurrency, ThreadsShareHeapsAndStatsReturnToBaseline) {
    Platform p;
    p.memory = {{.name = "dram", .base = 0x40000000, .size = 32 * MiB}};
    p.regions = {{.name = "cma", .kind = RegionKind::Cma, .base = 0x41000000, .size = 8 * MiB}};
    ASSERT_TRUE(validatePlatform(p));
    auto memory = std::make_shared<PhysicalMemory>(p);
    Result<std::vector<std::shared_ptr<Heap>>> heaps = createPlatformHeaps(p, memory);
    ASSERT_TRUE(heaps);
    auto system = (*heaps)[0];
    auto uncached = (*heaps)[1];
    auto cma = (*heaps)[2];
    const uint64_t systemFree = system->freeBytes();
    const uint64_t cmaFree = cma->freeBytes();

    // Two threads on "system", one on "system-uncached" (same memory), one on the CMA pool.
    std::vector<uint64_t> done(kThreads);
    std::vector<std::thread> threads;
    threads.emplace_back([&] { done[0] = churn(*system, 1, 600); });
    threads.emplace_back([&] { done[1] = churn(*system, 2, 300); });
    threads.emplace_back([&] { done[2] = churn(*uncached, 3, 300); });
    threads.emplace_back([&] { done[3] = churn(*cma, 4, 256); });
    for (std::thread& t : threads)
        t.join();

    EXPECT_EQ(system->freeBytes(), systemFree);
    EXPECT_EQ(cma->freeBytes(), cmaFree);
    EXPECT_EQ(memory->freeBytes(), systemFree);
    const std::pair<Heap*, uint64_t> expected[] = {
        {system.get(), done[0] + done[1]}, {uncached.get(), done[2]}, {cma.get(), done[3]}};
    for (const auto& [heap, total] : expected) {
        SCOPED_TRACE(heap->name());
        const HeapStats s = heap->stats();
        EXPECT_EQ(s.liveBuffers, 0u);
        EXPECT_EQ(s.liveBytes, 0u);
        EXPECT_GT(s.watermarkBytes, 0u);
        EXPECT_EQ(s.totalAllocations, total);
        EXPECT_EQ(s.totalAllocations + s.failedAllocations,
                  static_cast<uint64_t>(heap == system.get() ? 2 * kIterations : kIterations));
    }
    // Everything merged back: the whole of general memory in 1 MiB chunks.
    Result<Storage> all = system->allocate(systemFree);
    ASSERT_TRUE(all);
    EXPECT_EQ(all->chunks().size(), systemFree / MiB);
}

} // namespace
} // namespace cenalloc
