// SPDX-License-Identifier: MIT
// The heap ranking policy and the device tightness order as data.
#include "alloc/ranking.h"

#include <algorithm>
#include <array>

namespace cenalloc {

namespace {

template <typename T> int threeWay(const T& a, const T& b) {
    return a < b ? -1 : (b < a ? 1 : 0);
}

// A ranking criterion from a key where the smaller key ranks first.
template <uint64_t (*Key)(const HeapProperties&, const RankingContext&)>
int byKey(const HeapProperties& a, const HeapProperties& b, const RankingContext& context) {
    return threeWay(Key(a, context), Key(b, context));
}

// General memory is plentiful; a CMA pool is shared with movable pages and
// fragments; a carveout is set aside for particular devices. Take the
// least scarce memory that works.
uint64_t scarcity(const HeapProperties& h, const RankingContext&) {
    switch (h.kind) {
    case HeapKind::System: return 0;
    case HeapKind::Cma: return 1;
    case HeapKind::Carveout: return 2;
    case HeapKind::Kernel: return 3; // never matches a device set (no placement known)
    }
    return 4;
}

// A heap that would have to honour the devices' address limit serves them
// from the same low memory as the narrower heap whose range the limit
// covers; the narrower one says so by its name (system-dma32 for a 32-bit
// device), which is the answer a kernel engineer gives.
uint64_t reach(const HeapProperties& h, const RankingContext& context) {
    return h.highestAddress <= context.addressLimit ? 0 : 1;
}

// Within a kind and reach, the wider range keeps the narrow one free for
// devices that need it.
uint64_t range(const HeapProperties& h, const RankingContext&) {
    return UINT64_MAX - h.highestAddress;
}

uint64_t cacheAttribute(const HeapProperties& h, const RankingContext& context) {
    return h.cached == context.preferCached() ? 0 : 1;
}

int byName(const HeapProperties& a, const HeapProperties& b, const RankingContext&) {
    return threeWay(a.name, b.name);
}

constexpr std::array<RankingCriterion, 5> kRanking = {{
    {"scarcity", "system before cma before carveout", byKey<scarcity>},
    {"reach", "a heap all of whose memory the devices reach first", byKey<reach>},
    {"range", "the wider address range first", byKey<range>},
    {"cache", "cached when every device is coherent or the cpu accesses the buffer often, else uncached",
     byKey<cacheAttribute>},
    {"name", "by name", byName},
}};

// Tightness keys, smaller is tighter.
int contiguity(const DmaConstraints& a, const DmaConstraints& b) {
    return threeWay(!a.needsContiguous(), !b.needsContiguous());
}

int limit(const DmaConstraints& a, const DmaConstraints& b) {
    return threeWay(addressLimit(a), addressLimit(b));
}

int segmentCount(const DmaConstraints& a, const DmaConstraints& b) {
    // 0 (unlimited) wraps to the largest value.
    return threeWay(a.maxSegmentCount - 1u, b.maxSegmentCount - 1u);
}

int segmentSize(const DmaConstraints& a, const DmaConstraints& b) {
    return threeWay(a.maxSegmentSize, b.maxSegmentSize);
}

int alignment(const DmaConstraints& a, const DmaConstraints& b) {
    return threeWay(b.alignment, a.alignment);
}

int coherency(const DmaConstraints& a, const DmaConstraints& b) {
    return threeWay(a.coherent, b.coherent);
}

constexpr std::array<TightnessCriterion, 6> kTightness = {{
    {"contiguous", contiguity},
    {"address limit", limit},
    {"segment count", segmentCount},
    {"segment size", segmentSize},
    {"alignment", alignment},
    {"coherency", coherency},
}};

} // namespace

RankingContext RankingContext::of(const ConstraintSet& set, CpuAccess cpuAccess) {
    return RankingContext{set.coherent(), cpuAccess, set.addressLimit()};
}

std::span<const RankingCriterion> rankingCriteria() {
    return kRanking;
}

bool ranksBefore(const HeapProperties& a, const HeapProperties& b, const RankingContext& context) {
    for (const RankingCriterion& c : kRanking)
        if (int r = c.compare(a, b, context); r != 0)
            return r < 0;
    return false;
}

const HeapProperties* bestHeap(std::span<const HeapProperties* const> candidates, const RankingContext& context) {
    const HeapProperties* best = nullptr;
    for (const HeapProperties* h : candidates)
        if (!best || ranksBefore(*h, *best, context))
            best = h;
    return best;
}

void rankHeaps(std::vector<const HeapProperties*>& heaps, const RankingContext& context) {
    std::stable_sort(heaps.begin(), heaps.end(),
                     [&](const HeapProperties* a, const HeapProperties* b) { return ranksBefore(*a, *b, context); });
}

std::span<const TightnessCriterion> tightnessCriteria() {
    return kTightness;
}

int compareTightness(const DmaConstraints& a, const DmaConstraints& b) {
    for (const TightnessCriterion& c : kTightness)
        if (int r = c.compare(a, b); r != 0)
            return r;
    return 0;
}

} // namespace cenalloc
