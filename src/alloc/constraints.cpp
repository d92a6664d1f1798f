// SPDX-License-Identifier: MIT
// The merge table of DMA constraint kinds and the ConstraintSet built from it.
#include <cenalloc/constraints.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <mutex>
#include <numeric>
#include <tuple>
#include <unordered_set>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "base/try.h"

namespace cenalloc {

namespace {

// Row building blocks, parameterised by the field they act on, so each row
// of the table below states its rule and nothing else.

template <auto Field> uint64_t get(const DmaConstraints& c) {
    return static_cast<uint64_t>(c.*Field);
}

template <auto Field> void combineAnd(DmaConstraints& into, const DmaConstraints& other) {
    into.*Field &= other.*Field;
}

template <auto Field> void combineOr(DmaConstraints& into, const DmaConstraints& other) {
    into.*Field = into.*Field || other.*Field;
}

template <auto Field> void combineMin(DmaConstraints& into, const DmaConstraints& other) {
    into.*Field = std::min(into.*Field, other.*Field);
}

// 0 means "unlimited" for segment counts, so it is the largest value.
template <auto Field> void combineMinNonZero(DmaConstraints& into, const DmaConstraints& other) {
    if (into.*Field == 0 || (other.*Field != 0 && other.*Field < into.*Field))
        into.*Field = other.*Field;
}

// Least common multiple; for the powers of two validatePlatform() admits it
// is the larger value. An lcm that does not fit (only possible for values
// that are not powers of two) becomes 0, which the table marks absorbing:
// no address is aligned to it.
template <auto Field> void combineLcm(DmaConstraints& into, const DmaConstraints& other) {
    const uint64_t a = into.*Field;
    const uint64_t b = other.*Field;
    if (a == 0 || b == 0) {
        into.*Field = 0;
        return;
    }
    const uint64_t g = std::gcd(a, b);
    const uint64_t q = a / g;
    into.*Field = q > UINT64_MAX / b ? 0 : q * b;
}

template <auto Field, auto Value> void relax(DmaConstraints& c) {
    c.*Field = Value;
}

template <auto Field> bool isZero(const DmaConstraints& c) {
    return c.*Field == 0;
}

template <auto Field> std::string printMask(const DmaConstraints& c) {
    const uint64_t m = c.*Field;
    if (m == 0)
        return "0 (reaches nothing)";
    return fmt::format("{} ({})", formatAddress(m), describeMask(m));
}

template <auto Field> std::string printBoundary(const DmaConstraints& c) {
    const uint64_t m = c.*Field;
    if (m == kNoLimit)
        return "none";
    if (isPowerOfTwo(m + 1))
        return fmt::format("{:#x} (segments do not cross {} boundaries)", m, formatSize(m + 1));
    return fmt::format("{:#x}", m);
}

template <auto Field> std::string printBytes(const DmaConstraints& c) {
    const uint64_t v = c.*Field;
    return v == kNoLimit ? std::string("unlimited") : formatSize(v);
}

template <auto Field> std::string printCount(const DmaConstraints& c) {
    const uint64_t v = c.*Field;
    return v == 0 ? std::string("unlimited") : fmt::format("{}", v);
}

template <auto Field> std::string printFlag(const DmaConstraints& c) {
    return c.*Field ? "yes" : "no";
}

template <auto Field> std::string printBits(const DmaConstraints& c) {
    const uint64_t v = c.*Field;
    return v == kAllAccess ? std::string("all") : fmt::format("{:#x}", v);
}

using C = DmaConstraints;

// The one place that says how each kind of constraint merges (DESIGN.md
// section 5). Rows follow the field order of DmaConstraints.
constexpr std::array<ConstraintRule, 9> kRules = {{
    // Masks are inclusive address limits (DMA_BIT_MASK(n) or a bus window's
    // end), so the lower one wins; for 2^n-1 masks that is their AND.
    {"dma_mask", ConstraintPart::Placement, "min", ConstraintValueKind::Mask, get<&C::dmaMask>, combineMin<&C::dmaMask>,
     relax<&C::dmaMask, kNoLimit>, printMask<&C::dmaMask>, isZero<&C::dmaMask>},
    {"coherent_dma_mask", ConstraintPart::Placement, "min", ConstraintValueKind::Mask, get<&C::coherentDmaMask>,
     combineMin<&C::coherentDmaMask>, relax<&C::coherentDmaMask, kNoLimit>, printMask<&C::coherentDmaMask>,
     isZero<&C::coherentDmaMask>},
    {"max_segment_size", ConstraintPart::Mapping, "min", ConstraintValueKind::Bytes, get<&C::maxSegmentSize>,
     combineMin<&C::maxSegmentSize>, relax<&C::maxSegmentSize, kNoLimit>, printBytes<&C::maxSegmentSize>,
     isZero<&C::maxSegmentSize>},
    // A boundary mask of any value can be met (by more, smaller segments).
    {"segment_boundary_mask", ConstraintPart::Mapping, "and", ConstraintValueKind::Mask, get<&C::segmentBoundaryMask>,
     combineAnd<&C::segmentBoundaryMask>, relax<&C::segmentBoundaryMask, kNoLimit>,
     printBoundary<&C::segmentBoundaryMask>, nullptr},
    {"max_segment_count", ConstraintPart::Mapping, "min (0 = unlimited)", ConstraintValueKind::Count,
     get<&C::maxSegmentCount>, combineMinNonZero<&C::maxSegmentCount>, relax<&C::maxSegmentCount, uint32_t{0}>,
     printCount<&C::maxSegmentCount>, nullptr},
    {"alignment", ConstraintPart::Placement, "lcm", ConstraintValueKind::Bytes, get<&C::alignment>,
     combineLcm<&C::alignment>, relax<&C::alignment, uint64_t{1}>, printBytes<&C::alignment>, isZero<&C::alignment>},
    {"contiguous", ConstraintPart::Placement, "or", ConstraintValueKind::Flag, get<&C::contiguous>,
     combineOr<&C::contiguous>, relax<&C::contiguous, false>, printFlag<&C::contiguous>, nullptr},
    // "Coherent" ANDs, which is "non-coherent" ORing: one device that does
    // not snoop makes the buffer need cache maintenance.
    {"coherent", ConstraintPart::Placement, "and", ConstraintValueKind::Flag, get<&C::coherent>,
     combineAnd<&C::coherent>, relax<&C::coherent, true>, printFlag<&C::coherent>, nullptr},
    {"access_bits", ConstraintPart::Placement, "and", ConstraintValueKind::Bits, get<&C::accessBits>,
     combineAnd<&C::accessBits>, relax<&C::accessBits, kAllAccess>, printBits<&C::accessBits>, isZero<&C::accessBits>},
}};

DmaConstraints buildUnconstrained() {
    DmaConstraints c;
    for (const ConstraintRule& r : kRules)
        r.relax(c);
    return c;
}

// What a device behind an IOMMU asks of physical memory: the IOMMU maps
// pages of its own size wherever they are, so only the granule, coherency
// (cache maintenance happens on the physical pages) and the opaque access
// bits (the memory's kind does not change by being translated) remain.
//
// A device with a restricted-dma-pool never touches the buffer's memory:
// swiotlb copies every mapping through the pool (swiotlb_map, with
// dev->dma_io_tlb_mem set by rmem_swiotlb_device_init), so the buffer may
// lie anywhere; its mask matters for the pool only. Its coherency and
// access bits still apply (the copy is a CPU access to the buffer).
DmaConstraints physicalContribution(const Device& device, const Iommu* iommu) {
    if (!iommu && !device.restrictedPool.empty()) {
        DmaConstraints c = unconstrained();
        c.coherent = device.constraints.coherent;
        c.accessBits = device.constraints.accessBits;
        return c;
    }
    if (!iommu)
        return placementOf(device.constraints);
    DmaConstraints c = unconstrained();
    c.coherent = device.constraints.coherent;
    c.accessBits = device.constraints.accessBits;
    c.alignment = iommu->pageSize;
    return c;
}

// Merge @p from into @p into, keeping the spaces sorted by name.
void mergeSpaces(std::vector<IovaSpace>& into, std::span<const IovaSpace> from) {
    for (const IovaSpace& s : from) {
        auto it = std::lower_bound(into.begin(), into.end(), s.iommu,
                                   [](const IovaSpace& a, const std::string& name) { return a.iommu < name; });
        if (it != into.end() && it->iommu == s.iommu)
            it->limits = mergePlacement(it->limits, s.limits);
        else
            into.insert(it, s);
    }
}

// Add @p from's devices to @p into, keeping them sorted by domain, then
// device name: the direct devices first, then each domain's devices
// together, in the order of the IOVA spaces, so matching walks both in one
// pass. A device already there is the same device (names are unique on a
// platform), so the union keeps one entry: merging stays idempotent.
void mergeMappings(std::vector<DeviceMapping>& into, std::span<const DeviceMapping> from) {
    for (const DeviceMapping& m : from) {
        auto it = std::lower_bound(into.begin(), into.end(), m, [](const DeviceMapping& a, const DeviceMapping& b) {
            return std::tie(a.domain, a.device) < std::tie(b.domain, b.device);
        });
        if (it == into.end() || *it != m)
            into.insert(it, m);
    }
}

} // namespace

std::span<const ConstraintRule> constraintRules() {
    return kRules;
}

const ConstraintRule* findConstraintRule(std::string_view name) {
    for (const ConstraintRule& r : kRules)
        if (r.name == name)
            return &r;
    return nullptr;
}

const DmaConstraints& unconstrained() {
    static const DmaConstraints kUnconstrained = buildUnconstrained();
    return kUnconstrained;
}

DmaConstraints mergeConstraints(const DmaConstraints& a, const DmaConstraints& b) {
    DmaConstraints out = a;
    for (const ConstraintRule& r : kRules)
        r.combine(out, b);
    return out;
}

DmaConstraints placementOf(const DmaConstraints& c) {
    DmaConstraints out = c;
    out.contiguous = c.needsContiguous();
    for (const ConstraintRule& r : kRules)
        if (r.part == ConstraintPart::Mapping)
            r.relax(out);
    return out;
}

DmaConstraints mergePlacement(const DmaConstraints& a, const DmaConstraints& b) {
    DmaConstraints out = placementOf(a);
    const DmaConstraints other = placementOf(b);
    for (const ConstraintRule& r : kRules)
        if (r.part == ConstraintPart::Placement)
            r.combine(out, other);
    return out;
}

const ConstraintRule* unsatisfiableRule(const DmaConstraints& c) {
    for (const ConstraintRule& r : kRules)
        if (r.unsatisfiable && r.unsatisfiable(c))
            return &r;
    return nullptr;
}

uint64_t addressLimit(const DmaConstraints& c) {
    return std::min(c.dmaMask, c.coherentDmaMask);
}

std::string describeMask(uint64_t mask) {
    if (mask == kNoLimit || isPowerOfTwo(mask + 1))
        return fmt::format("{}-bit mask", maskBits(mask));
    if (mask == 0)
        return "0-bit mask";
    return fmt::format("address limit {:#x}", mask);
}

uint64_t IovaSpace::windowLast() const {
    return std::min(apertureLast, addressLimit(limits));
}

bool IovaSpace::windowEmpty() const {
    return apertureBase > windowLast() || apertureBase > apertureLast;
}

uint64_t IovaSpace::windowSize() const {
    if (windowEmpty())
        return 0;
    const uint64_t span = windowLast() - apertureBase;
    return span == UINT64_MAX ? UINT64_MAX : span + 1;
}

ConstraintSet::ConstraintSet() : physical_(unconstrained()) {}

Result<ConstraintSet> ConstraintSet::forDevice(const Device& device, const Platform& platform) {
    const Iommu* iommu = nullptr;
    if (device.iommu) {
        iommu = platform.findIommu(*device.iommu);
        if (!iommu)
            return Error(EINVAL, fmt::format("device '{}' sits behind iommu '{}', which platform '{}' does not have",
                                             device.name, *device.iommu, platform.name));
    }
    ConstraintSet set;
    set.physical_ = physicalContribution(device, iommu);
    const DmaConstraints& c = device.constraints;
    set.mappings_.push_back(DeviceMapping{internName(device.name), internName(iommuDomainName(device)),
                                          c.maxSegmentSize, c.segmentBoundaryMask, c.maxSegmentCount});
    if (iommu) {
        IovaSpace space;
        space.iommu = iommuDomainName(device);
        space.pageSize = iommu->pageSize;
        space.apertureBase = iommu->apertureBase;
        // validatePlatform() rules out a wrapping aperture; an empty one
        // would make apertureLast wrap below apertureBase, which
        // windowEmpty() treats as empty.
        space.apertureLast = iommu->apertureBase + (iommu->apertureSize - 1);
        space.limits = placementOf(device.constraints);
        // An I/O virtual range is contiguous whatever the device asks.
        space.limits.contiguous = false;
        set.iova_.push_back(std::move(space));
    }
    return set;
}

Result<ConstraintSet> ConstraintSet::merge(const Device& device, const Platform& platform) const {
    return merge(CENALLOC_TRY(forDevice(device, platform)));
}

ConstraintSet ConstraintSet::merge(const ConstraintSet& other) const {
    ConstraintSet out = *this;
    out.physical_ = mergePlacement(physical_, other.physical_);
    mergeSpaces(out.iova_, other.iova_);
    mergeMappings(out.mappings_, other.mappings_);
    return out;
}

ConstraintSet ConstraintSet::intersect(std::span<const ConstraintSet> sets) {
    ConstraintSet out;
    size_t devices = 0;
    for (const ConstraintSet& s : sets)
        devices += s.mappings_.size();
    out.mappings_.reserve(devices);
    for (const ConstraintSet& s : sets) {
        out.physical_ = mergePlacement(out.physical_, s.physical_);
        mergeSpaces(out.iova_, s.iova_);
        out.mappings_.insert(out.mappings_.end(), s.mappings_.begin(), s.mappings_.end());
    }
    // One sort instead of an insertion per device; a device given twice
    // counts once, as merge() keeps it.
    auto order = [](const DeviceMapping& a, const DeviceMapping& b) {
        return std::tie(a.domain, a.device) < std::tie(b.domain, b.device);
    };
    std::sort(out.mappings_.begin(), out.mappings_.end(), order);
    out.mappings_.erase(std::unique(out.mappings_.begin(), out.mappings_.end()), out.mappings_.end());
    return out;
}

const DeviceMapping* ConstraintSet::findMapping(std::string_view name) const {
    auto it =
        std::find_if(mappings_.begin(), mappings_.end(), [&](const DeviceMapping& m) { return m.device == name; });
    return it != mappings_.end() ? &*it : nullptr;
}

bool ConstraintSet::unsatisfiable() const {
    if (unsatisfiableRule(physical_))
        return true;
    return std::any_of(iova_.begin(), iova_.end(),
                       [](const IovaSpace& s) { return s.windowEmpty() || unsatisfiableRule(s.limits); });
}

std::string ConstraintSet::unsatisfiableReason() const {
    if (const ConstraintRule* r = unsatisfiableRule(physical_))
        return fmt::format("the merged {} is {}: no memory can meet it", r->name, r->print(physical_));
    for (const IovaSpace& s : iova_) {
        if (const ConstraintRule* r = unsatisfiableRule(s.limits))
            return fmt::format("behind {}, the merged {} is {}: no address can meet it", s.iommu, r->name,
                               r->print(s.limits));
        if (s.windowEmpty())
            return fmt::format("behind {}, the devices' {} reaches none of the aperture starting at {}", s.iommu,
                               describeMask(cenalloc::addressLimit(s.limits)), formatAddress(s.apertureBase));
    }
    return {};
}

std::string describe(const ConstraintSet& set) {
    std::string out;
    for (const ConstraintRule& r : constraintRules())
        if (r.part == ConstraintPart::Placement)
            out += fmt::format("{}: {}\n", r.name, r.print(set.physical()));
    for (const IovaSpace& s : set.iovaSpaces()) {
        if (s.windowEmpty())
            out += fmt::format("iommu {}: page {}, no address of the aperture is reachable\n", s.iommu,
                               formatSize(s.pageSize));
        else
            out +=
                fmt::format("iommu {}: page {}, window {}..{} ({})\n", s.iommu, formatSize(s.pageSize),
                            formatAddress(s.apertureBase), formatAddress(s.windowLast()), formatSize(s.windowSize()));
        for (const ConstraintRule& r : constraintRules())
            if (r.part == ConstraintPart::Placement && r.name != "contiguous")
                out += fmt::format("  {}: {}\n", r.name, r.print(s.limits));
    }
    for (const DeviceMapping& m : set.mappings())
        out += fmt::format("mapping {}: {}\n", m.device, describeMapping(m));
    if (!out.empty())
        out.pop_back();
    return out;
}

std::string_view internName(std::string_view name) {
    if (name.empty())
        return {};
    // Node-based: an element never moves once inserted.
    static std::mutex mutex;
    static std::unordered_set<std::string> names;
    std::lock_guard lock(mutex);
    return *names.emplace(name).first;
}

std::string describeMapping(const DeviceMapping& m) {
    std::string out = m.direct() ? "direct" : fmt::format("in {}", m.domain);
    out += m.maxSegmentCount == 0
               ? ", any number of segments"
               : fmt::format(", at most {} segment{}", m.maxSegmentCount, m.maxSegmentCount == 1 ? "" : "s");
    out += m.maxSegmentSize == kNoLimit ? " of any size" : fmt::format(" of up to {}", formatSize(m.maxSegmentSize));
    if (m.segmentBoundaryMask != kNoLimit)
        out += fmt::format(", not crossing {:#x} boundaries", m.segmentBoundaryMask + 1);
    return out;
}

StorageLimits storageLimits(const ConstraintSet& set) {
    const DmaConstraints& c = set.physical();
    StorageLimits limits;
    limits.highestAddress = set.addressLimit();
    limits.alignment = std::max(c.alignment, kPageSize);
    // Chunks larger than every direct device's segments gain none of them
    // anything; a device behind an IOMMU or one without a limit makes any
    // chunk size useful.
    uint64_t largest = 0;
    for (const DeviceMapping& m : set.mappings()) {
        if (!m.direct() || m.maxSegmentSize == kNoLimit) {
            largest = 0;
            break;
        }
        largest = std::max(largest, m.maxSegmentSize);
    }
    limits.maxChunkSize = largest;
    return limits;
}

} // namespace cenalloc
