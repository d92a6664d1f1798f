// SPDX-License-Identifier: MIT
// The heap ranking policy and the device tightness order, both kept as tables of criteria.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include <cenalloc/constraints.h>
#include <cenalloc/explain.h>
#include <cenalloc/heap.h>

namespace cenalloc {

/// What the ranking needs to know about the devices and the caller.
struct RankingContext {
    /// Every device snoops the CPU caches.
    bool allCoherent = true;
    CpuAccess cpuAccess = CpuAccess::Rare;
    /// The devices' physical address limit (inclusive).
    uint64_t addressLimit = kNoLimit;

    static RankingContext of(const ConstraintSet& set, CpuAccess cpuAccess);

    /// Cached memory is preferred when every device is coherent or the CPU
    /// accesses the buffer often; uncached when some device is not coherent
    /// and the CPU access is none or rare (its cache maintenance would cost
    /// more than uncached CPU access saves).
    bool preferCached() const { return allCoherent || cpuAccess == CpuAccess::Often; }
};

/// One criterion of the heap ranking.
struct RankingCriterion {
    std::string_view name;
    /// The preference in words.
    std::string_view rule;
    /// < 0 when @p a ranks before @p b, > 0 after, 0 when this criterion
    /// does not tell them apart.
    int (*compare)(const HeapProperties& a, const HeapProperties& b, const RankingContext& context);
};

/// The heap ranking policy, most important criterion first (explain.h
/// documents it for users):
///  1. scarcity: System < Cma < Carveout (use the least scarce memory that works);
///  2. reach: a heap whose whole range lies within the address limit first;
///  3. range: the higher highestAddress first (system before system-dma32);
///  4. cache: the heap whose cached attribute is RankingContext::preferCached();
///  5. name: ascending, so the result never depends on the order of heaps.
std::span<const RankingCriterion> rankingCriteria();

/// @p a ranks strictly before @p b. A strict weak order; with the name
/// criterion last it is total over heaps of distinct names.
bool ranksBefore(const HeapProperties& a, const HeapProperties& b, const RankingContext& context);

/// The best of @p candidates, or nullptr when there are none.
const HeapProperties* bestHeap(std::span<const HeapProperties* const> candidates, const RankingContext& context);

/// Sort @p heaps best first.
void rankHeaps(std::vector<const HeapProperties*>& heaps, const RankingContext& context);

/// One criterion of the device tightness order (which device's limits are
/// closest to the intersection's).
struct TightnessCriterion {
    std::string_view name;
    /// < 0 when @p a is tighter than @p b, > 0 looser, 0 undecided.
    int (*compare)(const DmaConstraints& a, const DmaConstraints& b);
};

/// Tightness of what devices ask of physical memory, most important first:
/// needs contiguous memory, lower address limit, fewer segments (0 =
/// unlimited counts as most), smaller segments, larger alignment,
/// non-coherent before coherent. The caller breaks remaining ties by name.
std::span<const TightnessCriterion> tightnessCriteria();

/// < 0 when @p a is tighter than @p b, > 0 looser, 0 when no criterion tells.
int compareTightness(const DmaConstraints& a, const DmaConstraints& b);

} // namespace cenalloc
