// SPDX-License-Identifier: MIT
// The constraint algebra: merging devices' DMA limits into one immutable ConstraintSet.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/export.h>
#include <cenalloc/heap.h>
#include <cenalloc/platform.h>
#include <cenalloc/result.h>

namespace cenalloc {

/// How a constraint's value reads (what a printer or a JSON writer needs).
enum class ConstraintValueKind {
    Mask,  ///< an address or boundary mask
    Bytes, ///< a size in bytes; kNoLimit means none
    Count, ///< a count; 0 means unlimited
    Flag,  ///< a boolean, 0 or 1
    Bits,  ///< an opaque bit set
};

/// The two kinds of DMA limit (shared/DESIGN.md section 5), which combine
/// differently.
enum class ConstraintPart {
    /// What the storage itself must be (reachable addresses, contiguity,
    /// alignment, coherency, kinds of memory): the limits of every device
    /// sharing the buffer intersect.
    Placement,
    /// How one device sees the storage (segment size, boundary and count):
    /// each attachment maps the storage under its own device's limits, so
    /// these are checked per device and never merged across devices.
    Mapping,
};

/// One kind of constraint and the one rule that merges it: a row of the
/// table constraintRules() returns. Adding a kind of constraint to
/// DmaConstraints means adding one row; everything that merges, prints,
/// tests for the unconstrained value or for unsatisfiability walks the table.
///
/// Every merge is commutative, associative and idempotent, and the
/// unconstrained value is its identity (tests/alloc check each row). Only
/// Placement rows are merged across devices; a Mapping row's merge is what
/// two limits of one device's mapping come to (the lower), used within one
/// device's mapping only.
struct ConstraintRule {
    /// The name used in platform descriptions and JSON: "dma_mask".
    std::string_view name;
    ConstraintPart part;
    /// How the merge combines two values, in words: "and", "min", ...
    std::string_view merge;
    ConstraintValueKind kind;
    /// The field's value (a flag reads 0 or 1).
    uint64_t (*get)(const DmaConstraints& c);
    /// Merge @p other's value of this kind into @p into.
    void (*combine)(DmaConstraints& into, const DmaConstraints& other);
    /// Set the value that constrains nothing (the identity of combine).
    void (*relax)(DmaConstraints& c);
    /// The value for people: "0x00000000ffffffff (32-bit)", "64 KiB", "unlimited".
    std::string (*print)(const DmaConstraints& c);
    /// True when the value is absorbing: no memory at all could meet it
    /// (a mask of 0, no access bit left). Null for kinds where every value
    /// can be met by some memory.
    bool (*unsatisfiable)(const DmaConstraints& c);
};

/// The merge table, one row per DmaConstraints field, in declaration order.
CENALLOC_EXPORT std::span<const ConstraintRule> constraintRules();

/// The row called @p name, or nullptr.
CENALLOC_EXPORT const ConstraintRule* findConstraintRule(std::string_view name);

/// The constraints of a device that constrains nothing: the identity of
/// mergeConstraints. (Not DmaConstraints{}, whose defaults are what Linux
/// assumes for a device without dma_parms, e.g. 64 KiB segments.)
CENALLOC_EXPORT const DmaConstraints& unconstrained();

/// The intersection of @p a and @p b: every row's merge applied.
CENALLOC_EXPORT DmaConstraints mergeConstraints(const DmaConstraints& a, const DmaConstraints& b);

/// What @p c asks of the storage when the device maps it without an IOMMU:
/// its Placement rows, with `contiguous` set when it takes one segment
/// (needsContiguous()), and every Mapping row relaxed.
CENALLOC_EXPORT DmaConstraints placementOf(const DmaConstraints& c);

/// The intersection of the placement parts of @p a and @p b: the Placement
/// rows merged, the Mapping rows relaxed.
CENALLOC_EXPORT DmaConstraints mergePlacement(const DmaConstraints& a, const DmaConstraints& b);

/// The first row whose value in @p c is absorbing, or nullptr.
CENALLOC_EXPORT const ConstraintRule* unsatisfiableRule(const DmaConstraints& c);

/// Highest address a DMA with @p c may use (inclusive): the lower of the
/// streaming and the coherent mask, as Linux's dma_capable() compares
/// against the mask, not bitwise. A shared buffer must satisfy both: the
/// exporter may allocate it coherently, importers map it for streaming DMA.
inline uint64_t addressLimit(const DmaConstraints& c) {
    return std::min(c.dmaMask, c.coherentDmaMask);
}

/// "32-bit mask" for masks of the form 2^n-1, "address limit 0x..." otherwise.
CENALLOC_EXPORT std::string describeMask(uint64_t mask);

/// The IOVA side of one IOMMU domain: the merged placement limits of every
/// device of the set that maps in it, which must hold for the buffer's one
/// I/O virtual range there rather than its physical addresses (devices of
/// one domain share that range through the mapping cache).
struct CENALLOC_EXPORT IovaSpace {
    /// Name of the domain: the IOMMU's name, with ":group" for a device in
    /// an IOMMU group of its own (iommuDomainName()); interned (internName()),
    /// like DeviceMapping::domain, so sets copy and compare it for free.
    std::string_view iommu;
    /// The IOMMU's page size: the IOVA granule.
    uint64_t pageSize = 4096;
    /// The IOMMU's aperture, inclusive at both ends.
    uint64_t apertureBase = 0;
    uint64_t apertureLast = 0;
    /// The devices' placement limits merged with the same table as physical
    /// ones, in IOVA space; the Mapping rows are relaxed (each device's own
    /// are in ConstraintSet::mappings()). `contiguous` is always met there
    /// (an IOVA range is contiguous).
    DmaConstraints limits;

    /// The part of the aperture the devices' masks reach: [apertureBase, windowLast()].
    uint64_t windowLast() const { return std::min(apertureLast, addressLimit(limits)); }
    /// The masks reach no address of the aperture.
    bool windowEmpty() const { return apertureBase > windowLast() || apertureBase > apertureLast; }
    /// Bytes in the window, saturated at UINT64_MAX; 0 when empty.
    uint64_t windowSize() const {
        if (windowEmpty())
            return 0;
        const uint64_t span = windowLast() - apertureBase;
        return span == UINT64_MAX ? UINT64_MAX : span + 1;
    }
    bool operator==(const IovaSpace&) const = default;
};

/// How one device of a set maps the buffer: its own Mapping limits, never
/// merged with another device's. A device without an IOMMU maps the
/// physical storage; one behind an IOMMU maps the buffer's one I/O virtual
/// range in its domain.
///
/// The names are views of strings interned for the life of the process
/// (internName()), so a set copies and compares its mappings without
/// allocating: the attach check and the conflict search merge sets often.
struct DeviceMapping {
    /// The device's name.
    std::string_view device;
    /// The IOMMU domain it maps in (IovaSpace::iommu), or empty for direct
    /// DMA to the physical storage.
    std::string_view domain;
    uint64_t maxSegmentSize = kNoLimit;
    uint64_t segmentBoundaryMask = kNoLimit;
    /// 0 = unlimited.
    uint32_t maxSegmentCount = 0;

    bool direct() const { return domain.empty(); }
    bool operator==(const DeviceMapping&) const = default;
};

/// The DMA limits of a set of devices: an immutable value.
///
/// It has three parts (shared/DESIGN.md section 5). physical() is what the
/// buffer's memory itself must meet: the Placement limits every device
/// contributes, intersected. A device without an IOMMU contributes its
/// address limits, contiguity (also when it takes one segment), alignment,
/// coherency and access bits; a device behind an IOMMU contributes only its
/// coherency, its access bits and the IOMMU page size as the alignment (the
/// granule the IOMMU maps): the IOMMU can gather any pages into one I/O
/// virtual range. iovaSpaces() holds, per IOMMU domain, the intersected
/// placement limits of the devices mapping in it, checked in IOVA space.
/// mappings() holds every device's own segment limits, each checked
/// against what that device maps (the storage, or its I/O virtual range):
/// a USB controller taking 64 KiB segments and a display taking one
/// segment share a contiguous buffer, which the controller maps as many
/// segments.
///
/// Merging is commutative, associative and idempotent, with the empty set
/// (no devices) as identity, so a set does not depend on the order devices
/// joined it. The IOVA spaces are kept sorted by domain name, the mappings
/// by domain and device name (a device joining twice counts once).
class CENALLOC_EXPORT ConstraintSet {
public:
    /// The set of no devices: constrains nothing.
    ConstraintSet();

    /// The set of one device. Errors: EINVAL when the device names an IOMMU
    /// @p platform does not have.
    static Result<ConstraintSet> forDevice(const Device& device, const Platform& platform);

    /// This set with @p device added; this set is unchanged. O(IOMMUs).
    /// Errors: as forDevice().
    Result<ConstraintSet> merge(const Device& device, const Platform& platform) const;
    /// The intersection of two sets.
    ConstraintSet merge(const ConstraintSet& other) const;
    /// The intersection of all of @p sets (the empty set for none), built in
    /// one pass rather than by a copy per merge.
    static ConstraintSet intersect(std::span<const ConstraintSet> sets);

    /// What the buffer's memory must meet.
    const DmaConstraints& physical() const { return physical_; }
    /// One entry per IOMMU domain some device of the set maps in, by name.
    std::span<const IovaSpace> iovaSpaces() const { return iova_; }
    /// One entry per device of the set: the direct devices by name, then
    /// each domain's devices by name, the domains in iovaSpaces() order.
    std::span<const DeviceMapping> mappings() const { return mappings_; }
    /// The device called @p name, or nullptr.
    const DeviceMapping* findMapping(std::string_view name) const;
    /// Highest physical address the buffer may use (inclusive).
    uint64_t addressLimit() const { return cenalloc::addressLimit(physical_); }
    /// Every device snoops the CPU caches.
    bool coherent() const { return physical_.coherent; }
    /// No memory at all could meet the set, whatever the heaps: an
    /// absorbing value (mask 0, no common access bit) or an IOVA space whose
    /// masks reach none of its aperture.
    bool unsatisfiable() const;
    /// Why unsatisfiable() holds, in words; empty when it does not.
    std::string unsatisfiableReason() const;

    bool operator==(const ConstraintSet&) const = default;

private:
    DmaConstraints physical_;
    std::vector<IovaSpace> iova_;         // sorted by domain name
    std::vector<DeviceMapping> mappings_; // sorted by domain, then device name
};

/// The set for people, one "name: value" line per Placement kind, then
/// each IOVA space ("iommu gpu-smmu: ..." and its placement limits,
/// indented), then each device's mapping limits ("mapping usb: ...").
CENALLOC_EXPORT std::string describe(const ConstraintSet& set);

/// A view of a string equal to @p name that lives as long as the process:
/// one copy per distinct name (device and domain names are few). Thread-safe.
CENALLOC_EXPORT std::string_view internName(std::string_view name);

/// One device's mapping limits in words: "direct, at most 1 segment of up
/// to 8 MiB" or "in smmu:0x880, any number of segments of up to 64 KiB".
CENALLOC_EXPORT std::string describeMapping(const DeviceMapping& mapping);

/// What a heap must be asked for when it allocates for @p set: the
/// physical address limit, the alignment, and, when every device mapping
/// the storage directly takes segments of at most N bytes (N the largest of
/// their limits), no chunks larger than N (none of them gains from them).
CENALLOC_EXPORT StorageLimits storageLimits(const ConstraintSet& set);

} // namespace cenalloc
