// SPDX-License-Identifier: MIT
// Tests of the IOVA allocator: alignment, limits, coalescing, caches, exhaustion.
#include "iommu/iova_allocator.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <iterator>
#include <map>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

namespace cenalloc {
namespace {

constexpr uint64_t k32BitLimit = 0xffffffffull;

// Live ranges handed out, to check that none overlap.
class LiveRanges {
public:
    void add(uint64_t iova, uint64_t size) {
        auto next = ranges_.lower_bound(iova);
        if (next != ranges_.end()) {
            EXPECT_LE(iova + size, next->first) << "overlaps a live range";
        }
        if (next != ranges_.begin()) {
            EXPECT_LE(std::prev(next)->first + std::prev(next)->second, iova) << "overlaps a live range";
        }
        ranges_[iova] = size;
    }
    void remove(uint64_t iova) { ranges_.erase(iova); }
    const std::map<uint64_t, uint64_t>& all() const { return ranges_; }

private:
    std::map<uint64_t, uint64_t> ranges_;
};

TEST(IovaAllocator, EveryRangeIsSizeAligned) {
    struct Case {
        uint64_t size;
        uint64_t reserved;
        uint64_t alignment;
    };
    const Case cases[] = {
        {4 * KiB, 4 * KiB, 4 * KiB},       {1, 4 * KiB, 4 * KiB},
        {8 * KiB, 8 * KiB, 8 * KiB},       {12 * KiB, 16 * KiB, 16 * KiB}, // cacheable: rounded to a power of two
        {64 * KiB, 64 * KiB, 64 * KiB},    {100 * KiB, 128 * KiB, 128 * KiB},
        {128 * KiB, 128 * KiB, 128 * KiB}, {132 * KiB, 132 * KiB, 256 * KiB}, // not cacheable: not rounded
        {1 * MiB, 1 * MiB, 1 * MiB},       {3 * MiB, 3 * MiB, 4 * MiB},
        {8 * MiB, 8 * MiB, 4 * MiB}, // alignment capped
    };
    IovaAllocator a(0x10000000, 1 * GiB, 4 * KiB);
    LiveRanges live;
    for (int round = 0; round < 4; ++round) {
        for (const Case& c : cases) {
            SCOPED_TRACE(::testing::Message() << "size " << c.size << " round " << round);
            EXPECT_EQ(a.reservedSize(c.size), c.reserved);
            Result<uint64_t> iova = a.allocate(c.size);
            ASSERT_TRUE(iova) << iova.error().toString();
            EXPECT_EQ(*iova % c.alignment, 0u);
            EXPECT_GE(*iova, a.base());
            EXPECT_LE(*iova + c.reserved, a.base() + a.size());
            live.add(*iova, c.reserved);
        }
    }
    uint64_t total = 0;
    for (const auto& [iova, size] : live.all())
        total += size;
    EXPECT_EQ(a.usedBytes(), total);
}

TEST(IovaAllocator, AllocatesTopDown) {
    IovaAllocator a(0, 1 * GiB, 4 * KiB);
    Result<uint64_t> first = a.allocate(1 * MiB);
    ASSERT_TRUE(first);
    EXPECT_EQ(*first, 1 * GiB - 1 * MiB);
    Result<uint64_t> second = a.allocate(4 * KiB);
    ASSERT_TRUE(second);
    EXPECT_EQ(*second, 1 * GiB - 1 * MiB - 4 * KiB);
}

TEST(IovaAllocator, NeverReturnsAnIovaAboveA32BitLimitInA40BitAperture) {
    IovaAllocator a(0, uint64_t{1} << 40, 4 * KiB);
    std::mt19937_64 rng(7);
    const uint64_t sizes[] = {4 * KiB, 8 * KiB, 64 * KiB, 128 * KiB, 1 * MiB, 5 * MiB};
    std::vector<std::pair<uint64_t, uint64_t>> live;
    for (int i = 0; i < 5000; ++i) {
        SCOPED_TRACE(i);
        uint64_t size = sizes[rng() % std::size(sizes)];
        bool limited = rng() % 2 == 0;
        // Frees feed the caches with high ranges that a limited request must skip.
        if (!live.empty() && rng() % 3 == 0) {
            size_t k = rng() % live.size();
            a.free(live[k].first, live[k].second);
            live.erase(live.begin() + static_cast<ptrdiff_t>(k));
        }
        Result<uint64_t> iova = a.allocate(size, limited ? k32BitLimit : UINT64_MAX);
        ASSERT_TRUE(iova) << iova.error().toString();
        if (limited) {
            ASSERT_LE(*iova + a.reservedSize(size) - 1, k32BitLimit);
        }
        live.emplace_back(*iova, size);
    }
}

TEST(IovaAllocator, CachedRangeAboveTheLimitIsNotReused) {
    IovaAllocator a(0, uint64_t{1} << 40, 4 * KiB);
    Result<uint64_t> high = a.allocate(4 * KiB);
    ASSERT_TRUE(high);
    ASSERT_GT(*high, k32BitLimit);
    a.free(*high, 4 * KiB);
    ASSERT_EQ(a.cachedBytes(), 4 * KiB);
    Result<uint64_t> low = a.allocate(4 * KiB, k32BitLimit);
    ASSERT_TRUE(low);
    EXPECT_LE(*low + 4 * KiB - 1, k32BitLimit);
    EXPECT_EQ(a.cachedBytes(), 4 * KiB); // the high one is still cached
}

TEST(IovaAllocator, FreesCoalesceBackIntoTheWholeAperture) {
    const uint64_t base = 0x40000000;
    const uint64_t size = 64 * MiB;
    for (bool explicitFlush : {true, false}) {
        SCOPED_TRACE(explicitFlush ? "explicit flush" : "flush on exhaustion");
        IovaAllocator a(base, size, 4 * KiB);
        std::mt19937_64 rng(11);
        const uint64_t sizes[] = {4 * KiB, 12 * KiB, 64 * KiB, 128 * KiB, 200 * KiB, 1 * MiB, 3 * MiB};
        std::vector<std::pair<uint64_t, uint64_t>> live;
        for (;;) {
            uint64_t s = sizes[rng() % std::size(sizes)];
            Result<uint64_t> iova = a.allocate(s);
            if (!iova) {
                EXPECT_EQ(iova.error().code(), ENOMEM);
                break;
            }
            live.emplace_back(*iova, s);
        }
        ASSERT_GT(live.size(), 30u);
        std::shuffle(live.begin(), live.end(), rng);
        for (const auto& [iova, s] : live)
            a.free(iova, s);
        EXPECT_EQ(a.usedBytes(), 0u);
        if (explicitFlush) {
            a.flushCaches();
            EXPECT_EQ(a.cachedBytes(), 0u);
            EXPECT_EQ(a.freeRangeCount(), 1u);
            EXPECT_EQ(a.largestFree(), size);
        }
        Result<uint64_t> whole = a.allocate(size);
        ASSERT_TRUE(whole) << whole.error().toString();
        EXPECT_EQ(*whole, base);
        EXPECT_EQ(a.usedBytes(), size);
    }
}

TEST(IovaAllocator, CachedFastPathReturnsRecentlyFreedRanges) {
    IovaAllocator a(0, 1 * GiB, 4 * KiB);
    for (uint64_t pages = 1; pages <= 32; pages *= 2) {
        SCOPED_TRACE(pages);
        uint64_t size = pages * 4 * KiB;
        Result<uint64_t> first = a.allocate(size);
        Result<uint64_t> other = a.allocate(size);
        ASSERT_TRUE(first && other);
        const uint64_t cachedBefore = a.cachedBytes(); // smaller classes still hold earlier rounds
        a.free(*first, size);
        EXPECT_EQ(a.cachedBytes(), cachedBefore + size);
        EXPECT_EQ(a.usedBytes(), size);
        Result<uint64_t> again = a.allocate(size);
        ASSERT_TRUE(again);
        EXPECT_EQ(*again, *first);
        EXPECT_EQ(a.cachedBytes(), cachedBefore);
        a.free(*again, size);
        a.free(*other, size);
        EXPECT_EQ(a.usedBytes(), 0u);
    }
    // Larger than the biggest class: straight back to the tree.
    Result<uint64_t> big = a.allocate(256 * KiB);
    ASSERT_TRUE(big);
    uint64_t cached = a.cachedBytes();
    a.free(*big, 256 * KiB);
    EXPECT_EQ(a.cachedBytes(), cached);
}

TEST(IovaAllocator, CachesAreBoundedAndKeepTheAccounting) {
    IovaAllocator a(0, 1 * GiB, 4 * KiB);
    const size_t n = (IovaAllocator::kDepotMagazines + 4) * IovaAllocator::kMagazineSize;
    std::vector<uint64_t> live;
    for (size_t i = 0; i < n; ++i) {
        Result<uint64_t> iova = a.allocate(8 * KiB);
        ASSERT_TRUE(iova);
        live.push_back(*iova);
    }
    for (uint64_t iova : live)
        a.free(iova, 8 * KiB);
    EXPECT_EQ(a.usedBytes(), 0u);
    EXPECT_LE(a.cachedBytes(), (IovaAllocator::kDepotMagazines + 2) * IovaAllocator::kMagazineSize * 8 * KiB);
    EXPECT_GT(a.cachedBytes(), 0u);
    EXPECT_EQ(a.freeBytes() + a.cachedBytes(), a.size());
    // Everything cached comes back out before the tree is touched again.
    size_t fromCache = a.cachedBytes() / (8 * KiB);
    for (size_t i = 0; i < fromCache; ++i) {
        ASSERT_TRUE(a.allocate(8 * KiB));
    }
    EXPECT_EQ(a.cachedBytes(), 0u);
}

TEST(IovaAllocator, ExhaustionFlushesTheCachesBeforeFailing) {
    const uint64_t size = 1 * MiB;
    IovaAllocator a(0x100000, size, 4 * KiB);
    std::vector<uint64_t> pages;
    for (;;) {
        Result<uint64_t> iova = a.allocate(4 * KiB);
        if (!iova)
            break;
        pages.push_back(*iova);
    }
    ASSERT_EQ(pages.size(), size / (4 * KiB));
    ASSERT_EQ(a.freeBytes(), 0u);

    // Free one 64 KiB-aligned run of 16 pages: it sits in the 4 KiB cache,
    // invisible to a 64 KiB request until flushed and coalesced.
    const uint64_t run = 0x100000 + 5 * 64 * KiB;
    for (uint64_t p = run; p < run + 64 * KiB; p += 4 * KiB)
        a.free(p, 4 * KiB);
    ASSERT_EQ(a.cachedBytes(), 64 * KiB);
    ASSERT_EQ(a.freeBytes(), 0u);
    uint64_t used = a.usedBytes();
    Result<uint64_t> big = a.allocate(64 * KiB);
    ASSERT_TRUE(big) << big.error().toString();
    EXPECT_EQ(*big, run);
    EXPECT_EQ(a.usedBytes(), used + 64 * KiB);
    EXPECT_EQ(a.cachedBytes(), 0u);

    // Two free pages that are not adjacent cannot hold 8 KiB even after a flush.
    a.free(0x100000 + 4 * KiB, 4 * KiB);
    a.free(0x100000 + 12 * KiB, 4 * KiB);
    used = a.usedBytes();
    Result<uint64_t> tooBig = a.allocate(8 * KiB);
    ASSERT_FALSE(tooBig);
    EXPECT_EQ(tooBig.error().code(), ENOMEM);
    EXPECT_EQ(a.usedBytes(), used);
    EXPECT_EQ(a.freeBytes() + a.cachedBytes(), 8 * KiB);

    // Far more than is free.
    Result<uint64_t> huge = a.allocate(512 * KiB);
    ASSERT_FALSE(huge);
    EXPECT_EQ(huge.error().code(), ENOMEM);
    EXPECT_EQ(a.usedBytes(), used);
}

TEST(IovaAllocator, RejectsZeroSizesAndLimitsOutsideTheSpace) {
    IovaAllocator a(0x10000000, 16 * MiB, 4 * KiB);
    Result<uint64_t> zero = a.allocate(0);
    ASSERT_FALSE(zero);
    EXPECT_EQ(zero.error().code(), EINVAL);

    Result<uint64_t> belowBase = a.allocate(4 * KiB, 0x0fffffff);
    ASSERT_FALSE(belowBase);
    EXPECT_EQ(belowBase.error().code(), ENOMEM);

    Result<uint64_t> tooLarge = a.allocate(32 * MiB);
    ASSERT_FALSE(tooLarge);
    EXPECT_EQ(tooLarge.error().code(), ENOMEM);

    // A limit inside the space clips it: only the first page is admitted.
    Result<uint64_t> firstPage = a.allocate(4 * KiB, 0x10000fff);
    ASSERT_TRUE(firstPage);
    EXPECT_EQ(*firstPage, 0x10000000u);
    Result<uint64_t> none = a.allocate(4 * KiB, 0x10000fff);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code(), ENOMEM);
    EXPECT_EQ(a.usedBytes(), 4 * KiB);
}

TEST(IovaAllocator, WorksAtTheTopOfTheAddressSpace) {
    const uint64_t base = UINT64_MAX - 1 * GiB + 1;
    IovaAllocator a(base, 1 * GiB, 64 * KiB);
    EXPECT_EQ(a.size(), 1 * GiB);
    Result<uint64_t> top = a.allocate(64 * KiB);
    ASSERT_TRUE(top);
    EXPECT_EQ(*top, UINT64_MAX - 64 * KiB + 1);
    a.free(*top, 64 * KiB);
    Result<uint64_t> whole = a.allocate(1 * GiB);
    ASSERT_TRUE(whole) << whole.error().toString();
    EXPECT_EQ(*whole, base);
}

// Random operations against a reference model of what must hold.
TEST(IovaAllocator, RandomOperationsKeepTheInvariants) {
    const uint64_t base = 0x80000000;
    const uint64_t size = 256 * MiB;
    IovaAllocator a(base, size, 4 * KiB);
    std::mt19937_64 rng(1234);
    LiveRanges live;
    std::map<uint64_t, uint64_t> requested; // iova -> requested size
    uint64_t reservedTotal = 0;
    for (int i = 0; i < 20000; ++i) {
        SCOPED_TRACE(i);
        if (requested.empty() || rng() % 5 < 3) {
            uint64_t s = (rng() % 3 == 0) ? (1 + rng() % (8 * MiB)) : (1 + rng() % (160 * KiB));
            uint64_t limit = (rng() % 4 == 0) ? base + rng() % size : UINT64_MAX;
            Result<uint64_t> iova = a.allocate(s, limit);
            if (!iova) {
                ASSERT_EQ(iova.error().code(), ENOMEM);
                continue;
            }
            uint64_t r = a.reservedSize(s);
            ASSERT_LE(*iova + r - 1, limit);
            ASSERT_EQ(*iova % std::min<uint64_t>(std::bit_ceil(r), IovaAllocator::kMaxAlignment), 0u);
            live.add(*iova, r);
            requested[*iova] = s;
            reservedTotal += r;
        } else {
            auto it = requested.begin();
            std::advance(it, static_cast<ptrdiff_t>(rng() % requested.size()));
            a.free(it->first, it->second);
            reservedTotal -= a.reservedSize(it->second);
            live.remove(it->first);
            requested.erase(it);
        }
        ASSERT_EQ(a.usedBytes(), reservedTotal);
        ASSERT_EQ(a.usedBytes() + a.cachedBytes() + a.freeBytes(), size);
    }
    for (const auto& [iova, s] : requested)
        a.free(iova, s);
    a.flushCaches();
    EXPECT_EQ(a.usedBytes(), 0u);
    EXPECT_EQ(a.freeRangeCount(), 1u);
    EXPECT_EQ(a.largestFree(), size);
}

} // namespace
} // namespace cenalloc
