// SPDX-License-Identifier: MIT
// The ranking policy (scarcity, reach, range, cache attribute, name) and the device tightness order.
#include "alloc/ranking.h"

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "support/boards.h"

namespace cenalloc {
namespace {

HeapProperties heap(std::string name, HeapKind kind, uint64_t highest, bool cached) {
    HeapProperties h;
    h.name = std::move(name);
    h.kind = kind;
    h.lowestAddress = 0x100000;
    h.highestAddress = highest;
    h.cached = cached;
    h.contiguous = kind != HeapKind::System;
    h.capacity = 1 * GiB;
    return h;
}

// The PC-like heaps plus a CMA pool and a carveout, deliberately out of order.
std::vector<HeapProperties> heaps() {
    return {
        heap("carveout", HeapKind::Carveout, 0x9fffffff, true),
        heap("system-uncached-dma32", HeapKind::System, 0xffffffff, false),
        heap("cma", HeapKind::Cma, 0xafffffff, true),
        heap("system-dma32", HeapKind::System, 0xffffffff, true),
        heap("system-uncached", HeapKind::System, 0x3ffffffff, false),
        heap("system", HeapKind::System, 0x3ffffffff, true),
    };
}

std::vector<std::string> ranked(const std::vector<HeapProperties>& hs, const RankingContext& context) {
    std::vector<const HeapProperties*> ptrs;
    for (const HeapProperties& h : hs)
        ptrs.push_back(&h);
    rankHeaps(ptrs, context);
    std::vector<std::string> names;
    for (const HeapProperties* h : ptrs)
        names.push_back(h->name);
    return names;
}

TEST(Ranking, CriteriaAreATableInPriorityOrder) {
    std::vector<std::string> names;
    for (const RankingCriterion& c : rankingCriteria()) {
        names.emplace_back(c.name);
        EXPECT_FALSE(c.rule.empty());
    }
    EXPECT_EQ(names, (std::vector<std::string>{"scarcity", "reach", "range", "cache", "name"}));
}

struct PolicyCase {
    const char* what;
    bool allCoherent;
    CpuAccess cpu;
    uint64_t limit;
    std::vector<std::string> order;
};

TEST(Ranking, PolicyCases) {
    const PolicyCase cases[] = {
        {"coherent devices get cached memory",
         true,
         CpuAccess::None,
         kNoLimit,
         {"system", "system-uncached", "system-dma32", "system-uncached-dma32", "cma", "carveout"}},
        {"non-coherent device, cpu rarely: uncached",
         false,
         CpuAccess::Rare,
         kNoLimit,
         {"system-uncached", "system", "system-uncached-dma32", "system-dma32", "cma", "carveout"}},
        {"non-coherent device, no cpu access: uncached",
         false,
         CpuAccess::None,
         kNoLimit,
         {"system-uncached", "system", "system-uncached-dma32", "system-dma32", "cma", "carveout"}},
        {"non-coherent device, cpu often: cached",
         false,
         CpuAccess::Often,
         kNoLimit,
         {"system", "system-uncached", "system-dma32", "system-uncached-dma32", "cma", "carveout"}},
        {"32-bit limit: the heaps the devices reach entirely first",
         true,
         CpuAccess::Often,
         0xffffffff,
         {"system-dma32", "system-uncached-dma32", "system", "system-uncached", "cma", "carveout"}},
        {"32-bit limit, non-coherent and rare",
         false,
         CpuAccess::Rare,
         0xffffffff,
         {"system-uncached-dma32", "system-dma32", "system-uncached", "system", "cma", "carveout"}},
    };
    for (const PolicyCase& c : cases) {
        SCOPED_TRACE(c.what);
        const RankingContext context{c.allCoherent, c.cpu, c.limit};
        EXPECT_EQ(ranked(heaps(), context), c.order);
    }
}

TEST(Ranking, ScarcityOutranksTheCacheAttribute) {
    // An uncached system heap beats a cached CMA pool even when cached is preferred.
    std::vector<HeapProperties> hs = {heap("cma", HeapKind::Cma, 0xffffffff, true),
                                      heap("system-uncached", HeapKind::System, 0xffffffff, false)};
    EXPECT_EQ(ranked(hs, RankingContext{true, CpuAccess::Often, kNoLimit}),
              (std::vector<std::string>{"system-uncached", "cma"}));
}

TEST(Ranking, TiesAreBrokenByName) {
    std::vector<HeapProperties> hs = {heap("pool-b", HeapKind::Cma, 0xffffffff, true),
                                      heap("pool-c", HeapKind::Cma, 0xffffffff, true),
                                      heap("pool-a", HeapKind::Cma, 0xffffffff, true)};
    EXPECT_EQ(ranked(hs, RankingContext{}), (std::vector<std::string>{"pool-a", "pool-b", "pool-c"}));
    EXPECT_FALSE(ranksBefore(hs[0], hs[0], RankingContext{}));
}

TEST(Ranking, DoesNotDependOnTheOrderOfHeaps) {
    std::vector<HeapProperties> hs = heaps();
    std::sort(hs.begin(), hs.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    const RankingContext context{false, CpuAccess::Rare, 0xffffffff};
    const std::vector<std::string> expected = ranked(hs, context);
    int permutations = 0;
    do {
        ASSERT_EQ(ranked(hs, context), expected);
        std::vector<const HeapProperties*> ptrs;
        for (const HeapProperties& h : hs)
            ptrs.push_back(&h);
        ASSERT_EQ(bestHeap(ptrs, context)->name, expected.front());
        ++permutations;
    } while (std::next_permutation(hs.begin(), hs.end(), [](const auto& a, const auto& b) { return a.name < b.name; }));
    EXPECT_EQ(permutations, 720);
}

TEST(Ranking, BestOfNothingIsNull) {
    EXPECT_EQ(bestHeap({}, RankingContext{}), nullptr);
}

TEST(Ranking, ContextComesFromTheSet) {
    Platform p = test::pcBoard();
    ConstraintSet set = *ConstraintSet::forDevice(*p.findDevice("capture"), p);
    RankingContext c = RankingContext::of(set, CpuAccess::None);
    EXPECT_TRUE(c.allCoherent);
    EXPECT_EQ(c.addressLimit, 0xffffffffu);
    EXPECT_EQ(c.cpuAccess, CpuAccess::None);
    EXPECT_TRUE(c.preferCached());
    EXPECT_FALSE((RankingContext{false, CpuAccess::None, kNoLimit}.preferCached()));
    EXPECT_FALSE((RankingContext{false, CpuAccess::Rare, kNoLimit}.preferCached()));
    EXPECT_TRUE((RankingContext{false, CpuAccess::Often, kNoLimit}.preferCached()));
}

TEST(Tightness, CriteriaInOrder) {
    std::vector<std::string> names;
    for (const TightnessCriterion& c : tightnessCriteria())
        names.emplace_back(c.name);
    EXPECT_EQ(names, (std::vector<std::string>{"contiguous", "address limit", "segment count", "segment size",
                                               "alignment", "coherency"}));
}

TEST(Tightness, EachCriterionDecidesBeforeTheNextOne) {
    // Pairs (tighter, looser) that differ first in the named criterion while
    // the looser one is tighter in every later one.
    struct Case {
        const char* what;
        test::DeviceSpec tight;
        test::DeviceSpec loose;
    };
    const Case cases[] = {
        {"contiguous", {.name = "t", .contiguous = true}, {.name = "l", .maskBits = 30, .maxSegmentCount = 2}},
        {"contiguous by one segment", {.name = "t", .maxSegmentCount = 1}, {.name = "l", .maskBits = 30}},
        {"address limit", {.name = "t", .maskBits = 30}, {.name = "l", .maskBits = 32, .maxSegmentCount = 2}},
        {"segment count", {.name = "t", .maxSegmentCount = 16}, {.name = "l", .maxSegmentSize = 4096}},
        {"unlimited count is most", {.name = "t", .maxSegmentCount = 1000}, {.name = "l", .maxSegmentSize = 4096}},
        {"segment size", {.name = "t", .maxSegmentSize = 4096}, {.name = "l", .alignment = 1 * MiB}},
        {"alignment", {.name = "t", .alignment = 1 * MiB}, {.name = "l", .coherent = false}},
        {"coherency", {.name = "t", .coherent = false}, {.name = "l"}},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        const DmaConstraints t = test::makeDevice(c.tight).constraints;
        const DmaConstraints l = test::makeDevice(c.loose).constraints;
        EXPECT_LT(compareTightness(t, l), 0);
        EXPECT_GT(compareTightness(l, t), 0);
    }
    EXPECT_EQ(compareTightness(unconstrained(), unconstrained()), 0);
}

TEST(CpuAccessHint, ParsesAndPrints) {
    for (CpuAccess a : {CpuAccess::None, CpuAccess::Rare, CpuAccess::Often}) {
        Result<CpuAccess> r = parseCpuAccess(cpuAccessName(a));
        ASSERT_TRUE(r);
        EXPECT_EQ(*r, a);
    }
    EXPECT_STREQ(cpuAccessName(CpuAccess::Often), "often");
    for (const char* bad : {"", "Often", "sometimes", "rare "}) {
        SCOPED_TRACE(bad);
        Result<CpuAccess> r = parseCpuAccess(bad);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code(), EINVAL);
        EXPECT_NE(r.error().message().find("none, rare or often"), std::string::npos);
    }
}

} // namespace
} // namespace cenalloc
