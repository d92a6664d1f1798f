// SPDX-License-Identifier: MIT
// Tests of the index of a device's mapped segments: overlaps, removal, and a cost that does not grow with others.
#include "core/dma_segment_index.h"

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

namespace cenalloc {
namespace {

std::shared_ptr<const DmaSegment> segment(uint64_t mappingId, uint64_t start, uint64_t end,
                                          DmaDirection direction = DmaDirection::Bidirectional) {
    auto s = std::make_shared<DmaSegment>();
    s->mappingId = mappingId;
    s->start = start;
    s->end = end;
    s->direction = direction;
    return s;
}

// Every segment containing the address ranks the same: the earliest added wins.
int same(const DmaSegment&) {
    return 0;
}

// Ranks a segment the way a device write of @p length at @p address does.
auto forWrite(uint64_t address, uint64_t length) {
    return [=](const DmaSegment& s) {
        if (length > s.end - address)
            return 0;
        return s.direction == DmaDirection::Bidirectional || s.direction == DmaDirection::FromDevice ? 2 : 1;
    };
}

TEST(DmaSegmentIndex, TwoMappingsOfOneRangeRemovingOneKeepsTheOther) {
    DmaSegmentIndex index;
    auto first = segment(1, 0x10000, 0x12000);
    auto second = segment(2, 0x10000, 0x12000);
    index.add(first);
    index.add(second);
    EXPECT_EQ(index.mappingCount(), 2u);
    EXPECT_EQ(index.best(0x11000, same), first);

    EXPECT_EQ(index.remove(1), (SgTable{{0x10000, 0x2000}}));
    EXPECT_EQ(index.mappingCount(), 1u);
    EXPECT_EQ(index.best(0x10000, same), second);
    EXPECT_EQ(index.best(0x11fff, same), second);

    EXPECT_EQ(index.remove(2), (SgTable{{0x10000, 0x2000}}));
    EXPECT_EQ(index.mappingCount(), 0u);
    EXPECT_EQ(index.best(0x11000, same), nullptr);
}

TEST(DmaSegmentIndex, TheHighestRankWinsAndTheEarliestAddedAmongEquals) {
    DmaSegmentIndex index;
    auto toDevice = segment(1, 0x10000, 0x14000, DmaDirection::ToDevice);
    auto shorter = segment(2, 0x10000, 0x11000, DmaDirection::Bidirectional);
    auto bidi = segment(3, 0x10000, 0x14000, DmaDirection::Bidirectional);
    auto alsoBidi = segment(4, 0x10000, 0x14000, DmaDirection::Bidirectional);
    for (const auto& s : {toDevice, shorter, bidi, alsoBidi})
        index.add(s);
    EXPECT_EQ(index.best(0x10800, same), toDevice);
    // 8 KiB from the start: the 4 KiB segment covers only the start.
    EXPECT_EQ(index.best(0x10000, forWrite(0x10000, 0x2000)), bidi);
    index.remove(3);
    EXPECT_EQ(index.best(0x10000, forWrite(0x10000, 0x2000)), alsoBidi);
    index.remove(4);
    EXPECT_EQ(index.best(0x10000, forWrite(0x10000, 0x2000)), toDevice) << "it covers the length, wrong direction";
    index.remove(1);
    EXPECT_EQ(index.best(0x10000, forWrite(0x10000, 0x2000)), shorter) << "it covers the start only";
}

TEST(DmaSegmentIndex, PartialOverlapsAndAdjacentSegmentsOfDifferentMappings) {
    DmaSegmentIndex index;
    auto wide = segment(1, 0x10000, 0x18000);
    auto inner = segment(2, 0x12000, 0x13000);
    auto left = segment(3, 0x20000, 0x21000);
    auto right = segment(4, 0x21000, 0x22000);
    for (const auto& s : {wide, inner, left, right})
        index.add(s);
    EXPECT_EQ(index.best(0x12800, same), wide);
    EXPECT_EQ(index.best(0x17fff, same), wide);
    EXPECT_EQ(index.best(0x18000, same), nullptr) << "the end is exclusive";
    EXPECT_EQ(index.best(0x20fff, same), left) << "a transfer from here runs beyond its segment";
    EXPECT_EQ(index.best(0x21000, same), right);
    EXPECT_EQ(index.best(0xffff, same), nullptr);
    index.remove(1);
    EXPECT_EQ(index.best(0x12800, same), inner);
    EXPECT_EQ(index.best(0x11000, same), nullptr);
    EXPECT_EQ(index.best(0x13000, same), nullptr);
}

TEST(DmaSegmentIndex, RemovingAnUnknownIdChangesNothing) {
    DmaSegmentIndex index;
    auto s = segment(7, 0x10000, 0x11000);
    index.add(s);
    EXPECT_TRUE(index.remove(8).empty());
    EXPECT_TRUE(index.remove(0).empty());
    EXPECT_EQ(index.mappingCount(), 1u);
    EXPECT_EQ(index.best(0x10000, same), s);
    EXPECT_EQ(index.remove(7).size(), 1u);
    EXPECT_TRUE(index.remove(7).empty()) << "a second removal finds nothing";
    EXPECT_EQ(index.mappingCount(), 0u);
}

TEST(DmaSegmentIndex, RemoveGivesTheRangesInTheOrderAdded) {
    DmaSegmentIndex index;
    index.add(segment(1, 0x30000, 0x31000));
    index.add(segment(2, 0x40000, 0x41000));
    index.add(segment(1, 0x10000, 0x12000));
    index.add(segment(1, 0x30000, 0x31000)); // the same range twice in one mapping
    EXPECT_EQ(index.remove(1), (SgTable{{0x30000, 0x1000}, {0x10000, 0x2000}, {0x30000, 0x1000}}));
    EXPECT_EQ(index.best(0x30000, same), nullptr);
    EXPECT_EQ(index.mappingCount(), 1u);
}

// The linear scan the index replaces: what it chooses is the specification.
struct LinearModel {
    std::vector<std::shared_ptr<const DmaSegment>> active;

    template <typename Rank> std::shared_ptr<const DmaSegment> best(uint64_t address, Rank rank) const {
        std::shared_ptr<const DmaSegment> chosen;
        int chosenRank = 0;
        for (const auto& s : active) {
            if (address < s->start || address >= s->end)
                continue;
            int r = rank(*s);
            if (!chosen || r > chosenRank) {
                chosen = s;
                chosenRank = r;
            }
        }
        return chosen;
    }
    SgTable remove(uint64_t id) {
        SgTable ranges;
        for (const auto& s : active)
            if (s->mappingId == id)
                ranges.push_back({s->start, s->end - s->start});
        std::erase_if(active, [&](const auto& s) { return s->mappingId == id; });
        return ranges;
    }
    size_t mappingCount() const {
        std::vector<uint64_t> ids;
        for (const auto& s : active)
            ids.push_back(s->mappingId);
        std::sort(ids.begin(), ids.end());
        return static_cast<size_t>(std::unique(ids.begin(), ids.end()) - ids.begin());
    }
};

TEST(DmaSegmentIndex, ChoosesWhatALinearScanChoosesUnderRandomOverlappingMappings) {
    std::mt19937_64 random(20261203);
    const DmaDirection directions[] = {DmaDirection::Bidirectional, DmaDirection::ToDevice, DmaDirection::FromDevice};
    DmaSegmentIndex index;
    LinearModel model;
    uint64_t nextId = 1;
    std::vector<uint64_t> live;
    for (int step = 0; step < 5000; ++step) {
        const unsigned what = random() % 8;
        if (what < 3) {
            // A mapping of 1 to 3 segments in a small space: many overlap.
            const uint64_t id = nextId++;
            live.push_back(id);
            const DmaDirection direction = directions[random() % 3];
            for (uint64_t n = 1 + random() % 3; n > 0; --n) {
                const uint64_t start = (random() % 64) * 0x1000;
                auto s = segment(id, start, start + (1 + random() % 8) * 0x1000, direction);
                index.add(s);
                model.active.push_back(s);
            }
        } else if (what < 5) {
            // A live mapping, or now and then one gone or never made.
            uint64_t id = nextId + random() % 2;
            if (!live.empty() && random() % 4 != 0) {
                const size_t i = random() % live.size();
                id = live[i];
                live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
            }
            ASSERT_EQ(index.remove(id), model.remove(id)) << "step " << step;
        } else {
            const uint64_t address = random() % (80 * 0x1000);
            const uint64_t length = 1 + random() % 0x4000;
            ASSERT_EQ(index.best(address, forWrite(address, length)), model.best(address, forWrite(address, length)))
                << "step " << step;
            ASSERT_EQ(index.best(address, same), model.best(address, same)) << "step " << step;
        }
        if (step % 64 == 0) {
            ASSERT_EQ(index.mappingCount(), model.mappingCount()) << "step " << step;
        }
    }
}

// Nodes one lookup and one removal of a mapping look at, with @p others
// other mappings on the device (one 4 KiB segment each, side by side).
struct Cost {
    uint64_t lookup = 0;
    uint64_t removal = 0;
};
Cost costWithOthers(uint64_t others) {
    DmaSegmentIndex index;
    for (uint64_t i = 0; i < others; ++i) {
        // Half below the mapping measured, half above.
        const uint64_t start = (i % 2 ? 0x1'0000'0000 : 0x1000) + i * 0x1000;
        index.add(segment(i + 2, start, start + 0x1000));
    }
    const uint64_t mine = 0x8000'0000;
    auto s = segment(1, mine, mine + 64 * KiB);
    index.add(s);
    Cost cost;
    uint64_t before = index.visits();
    EXPECT_EQ(index.best(mine + 0x3000, same), s);
    cost.lookup = index.visits() - before;
    before = index.visits();
    EXPECT_EQ(index.remove(1).size(), 1u);
    cost.removal = index.visits() - before;
    EXPECT_EQ(index.best(mine + 0x3000, same), nullptr);
    EXPECT_EQ(index.mappingCount(), others);
    return cost;
}

TEST(DmaSegmentIndex, AnUnmapOrATransferLooksAtLogarithmicallyManyOthers) {
    // A linear scan looks at all 100000; a balanced tree at a small
    // multiple of log2(100000) = 17.
    const Cost one = costWithOthers(1);
    const Cost many = costWithOthers(100000);
    const uint64_t bound = 12 * std::bit_width(uint64_t{100000});
    EXPECT_LE(one.lookup, 4u);
    EXPECT_LE(many.lookup, bound) << "a lookup among 100000 others";
    EXPECT_LE(many.removal, bound) << "a removal among 100000 others";
    EXPECT_GE(many.lookup, 1u);
    RecordProperty("lookupAmong100000", static_cast<int>(many.lookup));
    RecordProperty("removalAmong100000", static_cast<int>(many.removal));
}

TEST(DmaSegmentIndex, ManyMappingsOfOneRangeCostOneNode) {
    // The same buffer mapped 100000 times (a client may): a transfer
    // through it, and an unmap, look at one node for all of them.
    DmaSegmentIndex index;
    for (uint64_t id = 1; id <= 100000; ++id)
        index.add(segment(id, 0x10000, 0x20000));
    auto other = segment(100001, 0x20000, 0x21000);
    index.add(other);
    uint64_t before = index.visits();
    EXPECT_EQ(index.best(0x18000, same)->mappingId, 1u);
    EXPECT_LE(index.visits() - before, 2u);
    before = index.visits();
    index.remove(1);
    EXPECT_LE(index.visits() - before, 2u);
    EXPECT_EQ(index.best(0x18000, same)->mappingId, 2u);
    EXPECT_EQ(index.best(0x20000, same), other);
    EXPECT_EQ(index.mappingCount(), 100000u);
}

} // namespace
} // namespace cenalloc
