// SPDX-License-Identifier: MIT
// The merge table of DMA constraint kinds and the ConstraintSet built from it.
#include <cenalloc/constraints.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <numeric>
#include <optional>
#include <tuple>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "alloc/constraint_work.h"
#include "base/try.h"

namespace cenalloc {

namespace {

// deviceContributionsWorkedOut(): a relaxed count, for tests.
std::atomic<uint64_t> gContributions{0};

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
                                   [](const IovaSpace& a, std::string_view name) { return a.iommu < name; });
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

// What one device adds to a set: its placement, its mapping and, behind an
// IOMMU, its domain's IOVA space.
struct DeviceContribution {
    DmaConstraints physical;
    DeviceMapping mapping;
    std::optional<IovaSpace> space;
};

Result<DeviceContribution> contributionOf(const Device& device, const Platform& platform) {
    gContributions.fetch_add(1, std::memory_order_relaxed);
    const Iommu* iommu = nullptr;
    if (device.iommu) {
        iommu = platform.findIommu(*device.iommu);
        if (!iommu)
            return Error(EINVAL, fmt::format("device '{}' sits behind iommu '{}', which platform '{}' does not have",
                                             device.name, *device.iommu, platform.name));
    }
    const DmaConstraints& c = device.constraints;
    DeviceContribution out{physicalContribution(device, iommu),
                           DeviceMapping{internName(device.name), internName(iommuDomainName(device)), c.maxSegmentSize,
                                         c.segmentBoundaryMask, c.maxSegmentCount},
                           std::nullopt};
    if (iommu) {
        IovaSpace& space = out.space.emplace();
        space.iommu = out.mapping.domain;
        space.pageSize = iommu->pageSize;
        space.apertureBase = iommu->apertureBase;
        // validatePlatform() rules out a wrapping aperture; an empty one
        // would make apertureLast wrap below apertureBase, which
        // windowEmpty() treats as empty.
        space.apertureLast = iommu->apertureBase + (iommu->apertureSize - 1);
        space.limits = placementOf(device.constraints);
        // An I/O virtual range is contiguous whatever the device asks.
        space.limits.contiguous = false;
    }
    return out;
}

} // namespace

// Apply @p f to every row in order, the table walked at compile time: each
// row's functions are constants, so the calls are direct and inlined (the
// attach check and explain merge placements for every device).
template <typename F> void forEachRule(F&& f) {
    [&]<size_t... I>(std::index_sequence<I...>) {
        (f(kRules[I]), ...);
    }
    (std::make_index_sequence<kRules.size()>());
}

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
    forEachRule([&](const ConstraintRule& r) {
        if (r.part == ConstraintPart::Mapping)
            r.relax(out);
    });
    return out;
}

DmaConstraints mergePlacement(const DmaConstraints& a, const DmaConstraints& b) {
    DmaConstraints out = placementOf(a);
    const DmaConstraints other = placementOf(b);
    forEachRule([&](const ConstraintRule& r) {
        if (r.part == ConstraintPart::Placement)
            r.combine(out, other);
    });
    return out;
}

const ConstraintRule* unsatisfiableRule(const DmaConstraints& c) {
    for (const ConstraintRule& r : kRules)
        if (r.unsatisfiable && r.unsatisfiable(c))
            return &r;
    return nullptr;
}

std::string describeMask(uint64_t mask) {
    if (mask == kNoLimit || isPowerOfTwo(mask + 1))
        return fmt::format("{}-bit mask", maskBits(mask));
    if (mask == 0)
        return "0-bit mask";
    return fmt::format("address limit {:#x}", mask);
}

uint64_t deviceContributionsWorkedOut() {
    return gContributions.load(std::memory_order_relaxed);
}

ConstraintSet::ConstraintSet() : physical_(unconstrained()) {}

Result<ConstraintSet> ConstraintSet::forDevice(const Device& device, const Platform& platform) {
    Result<DeviceContribution> c = contributionOf(device, platform);
    if (!c)
        return c.error();
    ConstraintSet set;
    set.physical_ = c->physical;
    set.mappings_.push_back(c->mapping);
    if (c->space)
        set.iova_.push_back(*c->space);
    return set;
}

Result<ConstraintSet> ConstraintSet::merge(const Device& device, const Platform& platform) const {
    // The device's part is merged in place: no set of its own is built (the
    // attach check runs this once per attach).
    Result<DeviceContribution> c = contributionOf(device, platform);
    if (!c)
        return c.error();
    ConstraintSet out;
    out.physical_ = mergePlacement(physical_, c->physical);
    out.iova_.reserve(iova_.size() + (c->space ? 1 : 0));
    out.iova_.assign(iova_.begin(), iova_.end());
    if (c->space)
        mergeSpaces(out.iova_, std::span<const IovaSpace>(&*c->space, 1));
    out.mappings_.reserve(mappings_.size() + 1);
    out.mappings_.assign(mappings_.begin(), mappings_.end());
    mergeMappings(out.mappings_, std::span<const DeviceMapping>(&c->mapping, 1));
    return out;
}

ConstraintSet ConstraintSet::merge(const ConstraintSet& other) const {
    ConstraintSet out;
    out.physical_ = mergePlacement(physical_, other.physical_);
    // Room for both, so the insertions below never reallocate.
    out.iova_.reserve(iova_.size() + other.iova_.size());
    out.iova_.assign(iova_.begin(), iova_.end());
    mergeSpaces(out.iova_, other.iova_);
    out.mappings_.reserve(mappings_.size() + other.mappings_.size());
    out.mappings_.assign(mappings_.begin(), mappings_.end());
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

namespace {

std::string_view internSlow(std::string_view name) {
    // Node-based: an element never moves once inserted. Looked up by view
    // first, so a name already interned costs no allocation.
    struct Hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
    };
    static std::mutex mutex;
    static std::unordered_set<std::string, Hash, std::equal_to<>> names;
    std::lock_guard lock(mutex);
    if (auto it = names.find(name); it != names.end())
        return *it;
    return *names.emplace(name).first;
}

} // namespace

std::string_view internName(std::string_view name) {
    if (name.empty())
        return {};
    // A per-thread cache of recent lookups, keyed by where the caller's
    // text lies and checked against the interned text (the caller's string
    // may since hold another name): the attach check interns the joining
    // device's names on every attach, and this spares it the lock and the
    // hash.
    struct Slot {
        const char* key = nullptr;
        std::string_view interned;
    };
    thread_local std::array<Slot, 64> recent{};
    Slot& slot = recent[(reinterpret_cast<uintptr_t>(name.data()) >> 4) % recent.size()];
    if (slot.key == name.data() && slot.interned == name)
        return slot.interned;
    slot = Slot{name.data(), internSlow(name)};
    return slot.interned;
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
