// SPDX-License-Identifier: MIT
// ReadyMemory under concurrency: many threads taking while the refill thread works, drains and destruction
// meanwhile (built under TSan on its own: it needs nothing above the base layer but ReadyMemory).
#include "alloc/ready_memory.h"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

namespace cenalloc {
namespace {

TEST(ReadyMemoryThreads, ConcurrentTakesDrainsAndStatsStayWithinTheBudgets) {
    std::atomic<uint64_t> available{4 * GiB};
    ReadyPoolOptions options;
    options.heapBytes = 8 * MiB;
    options.totalBytes = 12 * MiB;
    options.memAvailable = [&available]() -> std::optional<uint64_t> { return available.load(); };
    ReadyMemory ready(options);
    std::atomic<uint64_t> hits{0};
    std::atomic<bool> failed{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            const char* heap = t % 2 ? "system" : "system-uncached";
            for (int i = 0; i < 200; ++i) {
                const uint64_t size = (t % 2 ? 1 : 2) * MiB - (i % 3) * 4096;
                auto fd = ready.take(heap, size, 0);
                if (!fd)
                    failed = true;
                else if (*fd)
                    ++hits;
                if (i % 4 != 3)
                    ready.orderRefill(heap, size); // most buffers are used

                if (i % 50 == 0)
                    ready.waitIdle();
            }
        });
    threads.emplace_back([&] {
        for (int i = 0; i < 20; ++i) {
            available = i % 2 ? 4 * GiB : 64 * MiB;
            ready.checkMemory();
            for (const ReadyPoolStats& s : ready.stats()) {
                if (s.readyBytes > (s.heap.empty() ? 12 * MiB : 8 * MiB))
                    failed = true;
            }
        }
        available = 4 * GiB;
        ready.checkMemory();
    });
    for (std::thread& t : threads)
        t.join();
    EXPECT_FALSE(failed);
    ready.waitIdle();
    const ReadyPoolStats all = ready.stats().back();
    EXPECT_EQ(all.hits, hits.load());
    EXPECT_EQ(all.hits + all.misses, 800u);
    EXPECT_LE(all.readyBytes, 12 * MiB);
}

TEST(ReadyMemoryThreads, DestroyedRightAfterOrderingRefills) {
    for (int i = 0; i < 20; ++i) {
        ReadyMemory ready(ReadyPoolOptions{});
        ASSERT_TRUE(ready.take("system", 4 * MiB, 0));
        ready.orderRefill("system", 4 * MiB);
        ASSERT_TRUE(ready.take("system", 2 * MiB, 0));
        ready.orderRefill("system", 2 * MiB);
        // Destroyed with the refills ordered or in flight: joins, no leak.
    }
}

} // namespace
} // namespace cenalloc
