// SPDX-License-Identifier: MIT
// Tests of MemfdPool: size classes, hits and misses, budgets, zero fill, drain.
#include "base/memfd_pool.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cenalloc/memfd.h>
#include <cenalloc/units.h>

#include "support/fds.h"

namespace cenalloc {
namespace {

constexpr int kSizeSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

// Make every ordered refill now, as the background worker would.
size_t refillAll(MemfdPool& pool) {
    size_t made = 0;
    while (auto refill = pool.takeRefill()) {
        auto fd = makeReadyMemfd(refill->classBytes);
        EXPECT_TRUE(fd) << fd.error().message();
        if (!fd)
            return made;
        pool.put(*refill, std::move(*fd), std::chrono::nanoseconds(1));
        ++made;
    }
    return made;
}

// A take whose buffer is then used (mapped): it orders its class again, as
// Buffer does through RefillSink.
Result<std::optional<UniqueFd>> takeUsed(MemfdPool& pool, std::string_view heap, uint64_t bytes, int seals = 0) {
    auto taken = pool.take(heap, bytes, seals);
    pool.order(heap, bytes);
    return taken;
}

UniqueFd takeHit(MemfdPool& pool, std::string_view heap, uint64_t bytes, int seals = 0) {
    auto taken = takeUsed(pool, heap, bytes, seals);
    EXPECT_TRUE(taken) << taken.error().message();
    if (!taken || !*taken) {
        ADD_FAILURE() << "expected a ready memfd of " << bytes << " bytes";
        return UniqueFd();
    }
    return std::move(**taken);
}

bool allZero(int fd, size_t size) {
    test::Mapped map(fd, size);
    if (!map.valid())
        return false;
    for (size_t i = 0; i < size; ++i)
        if (map.bytes()[i] != 0)
            return false;
    return true;
}

MemfdPoolLimits limits(uint64_t heap, uint64_t total, uint64_t min = 0) {
    return MemfdPoolLimits{heap, total, min};
}

TEST(MemfdPoolClass, ExactPagesUpTo64KiBThenEighthsOfThePowerOfTwo) {
    struct Row {
        uint64_t bytes, expected;
    };
    const Row rows[] = {
        {4096, 4096},         {12288, 12288},
        {64 * KiB, 64 * KiB}, {68 * KiB, 72 * KiB}, // 64 KiB < size <= 128 KiB: steps of 8 KiB
        {MiB, MiB},           {MiB + 4096, MiB + 128 * KiB},
        {8294400, 8 * MiB}, // a 1920x1080 XRGB frame
        {3110400, 3 * MiB}, // a 1920x1080 NV12 frame (2 MiB < size: steps of 256 KiB)
        {32 * MiB, 32 * MiB},
    };
    for (const Row& r : rows) {
        SCOPED_TRACE(r.bytes);
        EXPECT_EQ(MemfdPool::classFor(r.bytes), r.expected);
    }
    for (uint64_t bytes = 4096; bytes <= 64 * MiB; bytes += 4096 * 37) {
        SCOPED_TRACE(bytes);
        const uint64_t cls = MemfdPool::classFor(bytes);
        EXPECT_GE(cls, bytes);
        EXPECT_EQ(cls % kPageSize, 0u);
        EXPECT_LE(cls - bytes, cls / 8); // at most an eighth is cut off
    }
}

TEST(MemfdPool, ServesOnlySizesWithinTheBudgetsAndAboveTheMinimum) {
    MemfdPool pool(limits(4 * MiB, 8 * MiB, 64 * KiB));
    EXPECT_FALSE(pool.serves(60 * KiB));
    EXPECT_TRUE(pool.serves(64 * KiB));
    EXPECT_TRUE(pool.serves(4 * MiB));
    EXPECT_FALSE(pool.serves(4 * MiB + 4096)); // its class exceeds the heap budget
    MemfdPool off(limits(0, 8 * MiB));
    EXPECT_FALSE(off.serves(MiB));
    MemfdPool offTotal(limits(4 * MiB, 0));
    EXPECT_FALSE(offTotal.serves(MiB));
}

TEST(MemfdPool, AUseOrdersARefillAndTheNextTakeHitsWithTheExactSizeSealed) {
    MemfdPool pool(limits(8 * MiB, 8 * MiB));
    auto miss = pool.take("system", MiB + 4096, 0);
    ASSERT_TRUE(miss);
    EXPECT_FALSE(*miss);
    EXPECT_EQ(pool.counters("system").misses, 1u);
    EXPECT_EQ(pool.counters("system").readyBytes, 0u);
    EXPECT_FALSE(pool.refillPending()); // a take orders nothing by itself
    EXPECT_EQ(pool.counters("system").orders, 0u);
    pool.order("system", MiB + 4096); // the buffer was used
    EXPECT_TRUE(pool.refillPending());
    EXPECT_EQ(pool.counters("system").orders, 1u);
    EXPECT_EQ(refillAll(pool), 1u);
    EXPECT_EQ(pool.counters("system").readyBytes, MiB + 128 * KiB);
    EXPECT_EQ(pool.counters("system").readyBuffers, 1u);
    EXPECT_EQ(pool.counters("system").refills, 1u);

    auto hit = pool.take("system", MiB + 4096, 0);
    ASSERT_TRUE(hit);
    ASSERT_TRUE(*hit);
    UniqueFd fd = std::move(**hit);
    EXPECT_EQ(test::fdSize(fd.get()), MiB + 4096); // shrunk to the request
    EXPECT_EQ(::fcntl(fd.get(), F_GET_SEALS), kSizeSeals);
    EXPECT_TRUE(isSizeSealed(fd.borrow()));
    EXPECT_NE(::ftruncate(fd.get(), 2 * MiB), 0);
    EXPECT_TRUE(test::hasCloexec(fd.get()));
    EXPECT_TRUE(allZero(fd.get(), MiB + 4096));
    const MemfdPoolCounters c = pool.counters("system");
    EXPECT_EQ(c.hits, 1u);
    EXPECT_EQ(c.misses, 1u);
    EXPECT_EQ(c.readyBytes, 0u);
    // A hit whose buffer is never used orders no replacement either.
    EXPECT_FALSE(pool.refillPending());
    EXPECT_EQ(c.orders, 1u);
    EXPECT_EQ(pool.counters("other").hits + pool.counters("other").misses, 0u); // stocks are per heap
}

TEST(MemfdPool, OrdersOnlySizesItServesAndWithinTheBudget) {
    MemfdPool pool(limits(2 * MiB, 2 * MiB, 64 * KiB));
    pool.order("system", 60 * KiB); // below the minimum
    pool.order("system", 4 * MiB);  // beyond the budget
    EXPECT_FALSE(pool.refillPending());
    EXPECT_EQ(pool.total().orders, 0u);
    for (int i = 0; i < 5; ++i)
        pool.order("system", MiB); // two fit
    EXPECT_EQ(pool.total().orders, 2u);
    EXPECT_EQ(refillAll(pool), 2u);
    EXPECT_EQ(pool.counters("system").readyBytes, 2 * MiB);
    pool.order("system", MiB); // full of ready memfds of the class
    EXPECT_FALSE(pool.refillPending());
}

TEST(MemfdPool, APooledMemfdIsZeroEvenAfterItsClassMateWasDirtied) {
    MemfdPool pool(limits(8 * MiB, 8 * MiB));
    ASSERT_TRUE(takeUsed(pool, "system", 2 * MiB));
    refillAll(pool);
    UniqueFd first = takeHit(pool, "system", 2 * MiB);
    ASSERT_TRUE(first.valid());
    {
        test::Mapped map(first.get(), 2 * MiB);
        ASSERT_TRUE(map.valid());
        std::memset(map.bytes(), 0xa5, 2 * MiB);
    }
    struct stat firstStat {};
    ASSERT_EQ(::fstat(first.get(), &firstStat), 0);
    first.reset(); // the dirty buffer is gone
    refillAll(pool);
    UniqueFd second = takeHit(pool, "system", 2 * MiB);
    ASSERT_TRUE(second.valid());
    struct stat secondStat {};
    ASSERT_EQ(::fstat(second.get(), &secondStat), 0);
    EXPECT_NE(secondStat.st_ino, firstStat.st_ino); // never the same memfd twice
    EXPECT_TRUE(allZero(second.get(), 2 * MiB));
}

TEST(MemfdPool, ReadyMemfdsHaveTheirPagesAlreadyCleared) {
    auto fd = makeReadyMemfd(MiB);
    ASSERT_TRUE(fd) << fd.error().message();
    struct stat st {};
    ASSERT_EQ(::fstat(fd->get(), &st), 0);
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), MiB);
    EXPECT_GE(static_cast<uint64_t>(st.st_blocks) * 512, MiB); // allocated, not a hole
    // Cleared too: SEEK_DATA counts a page as data only once it is
    // uptodate (folio_seek_hole_data() in mm/filemap.c); a page fallocate
    // allocated but nobody cleared yet is a hole to it.
    EXPECT_EQ(::lseek(fd->get(), 0, SEEK_DATA), 0);
    EXPECT_EQ(::lseek(fd->get(), 0, SEEK_HOLE), static_cast<off_t>(MiB));
    EXPECT_EQ(::fcntl(fd->get(), F_GET_SEALS), 0); // sealed only when taken
}

TEST(MemfdPool, ReadOnlySealsAreAddedWhenTaken) {
    MemfdPool pool(limits(8 * MiB, 8 * MiB));
    ASSERT_TRUE(takeUsed(pool, "system", MiB, F_SEAL_FUTURE_WRITE));
    refillAll(pool);
    UniqueFd fd = takeHit(pool, "system", MiB, F_SEAL_FUTURE_WRITE);
    ASSERT_TRUE(fd.valid());
    EXPECT_EQ(::fcntl(fd.get(), F_GET_SEALS), kSizeSeals | F_SEAL_FUTURE_WRITE);
    void* data = ::mmap(nullptr, MiB, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    EXPECT_EQ(data, MAP_FAILED);
    EXPECT_EQ(errno, EPERM);
}

TEST(MemfdPool, NeverHoldsMoreThanItsBudgets) {
    // Two heaps of 3 MiB each, 5 MiB in all, asked for a mix of sizes.
    MemfdPool pool(limits(3 * MiB, 5 * MiB));
    const uint64_t sizes[] = {MiB, 2 * MiB, 512 * KiB, 3 * MiB, MiB, 64 * KiB, 2 * MiB, 2 * MiB};
    for (int round = 0; round < 3; ++round) {
        for (uint64_t size : sizes) {
            for (const char* heap : {"a", "b"}) {
                SCOPED_TRACE(fmt::format("round {} heap {} size {}", round, heap, size));
                auto taken = takeUsed(pool, heap, size);
                ASSERT_TRUE(taken);
                refillAll(pool);
                EXPECT_LE(pool.counters("a").readyBytes, 3 * MiB);
                EXPECT_LE(pool.counters("b").readyBytes, 3 * MiB);
                EXPECT_LE(pool.total().readyBytes, 5 * MiB);
            }
        }
    }
    EXPECT_GT(pool.total().hits, 0u);
    EXPECT_GT(pool.total().readyBytes, 0u);
}

TEST(MemfdPool, TheStockFollowsTheSizesAskedFor) {
    // A budget of one 2 MiB class: asking for 1 MiB buffers gives back the
    // 2 MiB memfd to make room.
    MemfdPool pool(limits(2 * MiB, 2 * MiB));
    ASSERT_TRUE(takeUsed(pool, "system", 2 * MiB));
    refillAll(pool);
    EXPECT_EQ(pool.counters("system").readyBytes, 2 * MiB);
    ASSERT_TRUE(takeUsed(pool, "system", MiB)); // a miss
    refillAll(pool);
    EXPECT_EQ(pool.counters("system").readyBytes, MiB);
    EXPECT_EQ(pool.counters("system").drained, 1u);
    EXPECT_TRUE(takeHit(pool, "system", MiB).valid());
}

TEST(MemfdPool, DrainGivesEverythingBackAndDropsRefillsInFlight) {
    const size_t fdsBefore = test::everyOpenFdCount();
    {
        MemfdPool pool(limits(8 * MiB, 8 * MiB));
        ASSERT_TRUE(takeUsed(pool, "system", MiB));
        ASSERT_TRUE(takeUsed(pool, "system", 2 * MiB));
        refillAll(pool);
        EXPECT_EQ(pool.counters("system").readyBytes, 3 * MiB);
        EXPECT_EQ(test::everyOpenFdCount(), fdsBefore + 2);
        // Taken: orders a refill, which a worker starts making...
        UniqueFd taken = takeHit(pool, "system", MiB);
        auto inFlight = pool.takeRefill();
        ASSERT_TRUE(inFlight);
        // ... when memory runs short.
        pool.drain();
        EXPECT_EQ(pool.total().readyBytes, 0u);
        EXPECT_EQ(pool.total().readyBuffers, 0u);
        EXPECT_FALSE(pool.refillPending());
        auto made = makeReadyMemfd(inFlight->classBytes);
        ASSERT_TRUE(made);
        pool.put(*inFlight, std::move(*made), std::chrono::nanoseconds(1));
        EXPECT_EQ(pool.total().readyBytes, 0u); // dropped, not stocked
        EXPECT_EQ(pool.counters("system").drained, 2u);
        EXPECT_EQ(test::everyOpenFdCount(), fdsBefore + 1); // the buffer taken before only
        // After the drain the pool works again.
        ASSERT_TRUE(takeUsed(pool, "system", MiB));
        refillAll(pool);
        EXPECT_EQ(pool.counters("system").readyBytes, MiB);
    }
    EXPECT_EQ(test::everyOpenFdCount(), fdsBefore);
}

TEST(MemfdPool, AnAbandonedRefillFreesItsBudget) {
    MemfdPool pool(limits(MiB, MiB));
    pool.order("system", MiB);
    auto refill = pool.takeRefill();
    ASSERT_TRUE(refill);
    pool.order("system", MiB); // the budget is committed: no second order
    EXPECT_FALSE(pool.refillPending());
    pool.abandon(*refill);
    pool.order("system", MiB);
    EXPECT_TRUE(pool.refillPending());
}

} // namespace
} // namespace cenalloc
