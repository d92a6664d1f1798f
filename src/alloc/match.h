// SPDX-License-Identifier: MIT
// The heap-matching rules, as a table checked in order, and their segment arithmetic.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <cenalloc/constraints.h>
#include <cenalloc/explain.h>
#include <cenalloc/heap.h>

namespace cenalloc {

/// What one rule looks at.
struct MatchInput {
    const HeapProperties& heap;
    const ConstraintSet& set;
    uint64_t size; ///< non-zero, page-aligned
    Subject subject;
};

/// One matching rule: a row of matchRules(). A rule that refuses fills in
/// the verdict with the numbers its reason quotes (no text is built).
struct MatchRule {
    /// What the rule checks: "placement", "private", "access", "address",
    /// "contiguity", "segments", "alignment", "capacity", "iova".
    std::string_view name;
    /// True, with @p out set, when the rule refuses.
    bool (*refuses)(const MatchInput& in, HeapVerdict& out);
};

/// The rules in the order matchHeap() checks them (see its documentation).
std::span<const MatchRule> matchRules();

/// Builds refused verdicts; the only writer of HeapVerdict's fields.
struct VerdictAccess {
    /// @p iommu and @p device must be interned (internName()): the verdict keeps the views.
    static HeapVerdict refuse(Refusal refusal, Subject subject, std::array<uint64_t, 7> values,
                              std::string_view iommu = {}, std::string_view device = {});
    /// A placement refusal (HostKernel, NotInHostKernel, KernelAlias) quoting @p kernelHeap (interned).
    static HeapVerdict refusePlacement(Refusal refusal, Subject subject, std::string_view kernelHeap);
    static const std::array<uint64_t, 7>& values(const HeapVerdict& v) { return v.values_; }
    static Subject subject(const HeapVerdict& v) { return v.subject_; }
    static std::string_view iommu(const HeapVerdict& v) { return v.iommu_; }
    static std::string_view device(const HeapVerdict& v) { return v.device_; }
};

/// Most segments one contiguous range of @p size bytes can split into when
/// segments hold at most @p maxSegmentSize bytes and may not cross a
/// boundary of @p boundaryMask (kNoLimit: none), the range starting at some
/// multiple of @p startAlignment. Exact when there is no boundary or the
/// start is boundary-aligned; otherwise an upper bound at most one above
/// the exact worst case (the start's offset inside a boundary window is not
/// known, and the partial windows at both ends may each add a segment).
/// A @p maxSegmentSize of 0 gives UINT64_MAX: no segment holds anything.
uint64_t contiguousSegments(uint64_t size, uint64_t maxSegmentSize, uint64_t boundaryMask, uint64_t startAlignment);

/// Most segments a buffer of @p size bytes can take from a heap whose chunks
/// can be as small as @p minChunkSize and are not guaranteed to be adjacent:
/// ceil(size / min(minChunkSize, maxSegmentSize, boundary window)). Every
/// chunk may be as small as the heap allows, and each is split at the
/// segment size and at boundaries. (A chunk larger than the smallest that
/// straddles a boundary could add one more; the heaps cenalloc builds have
/// page-sized smallest chunks aligned to themselves, so boundaries of at
/// least a page never split them.)
uint64_t scatteredSegments(uint64_t size, uint64_t minChunkSize, uint64_t maxSegmentSize, uint64_t boundaryMask);

} // namespace cenalloc
