// SPDX-License-Identifier: MIT
// Heap matching: the refusal rules in order, and the words for each refusal.
#include "alloc/match.h"

#include <algorithm>
#include <bit>
#include <utility>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "heaps/kernel_heap.h"

namespace cenalloc {

namespace {

using Values = std::array<uint64_t, 7>;
using U128 = unsigned __int128;

// 64-bit operands: no 128-bit division (a library call) on the matching path.
uint64_t ceilDiv(uint64_t a, uint64_t b) {
    return a / b + (a % b != 0 ? 1 : 0);
}

uint64_t saturate(U128 v) {
    return v > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(v);
}

// The boundary window a mask defines: segments may not cross a multiple of
// it. Masks are 2^n-1 (validatePlatform); anything else is rounded down to
// the power of two below, which only makes the count more conservative.
// 0 means no boundary.
uint64_t boundaryWindow(uint64_t boundaryMask) {
    if (boundaryMask == kNoLimit)
        return 0;
    return std::bit_floor(boundaryMask + 1);
}

// Words that change with the subject: "the device needs" / "the devices need".
struct Words {
    const char* who;
    const char* whose;
    const char* needs;
    const char* accepts;
    const char* reaches;
};

constexpr Words kDevice = {"the device", "the device's", "needs", "accepts", "reaches"};
constexpr Words kDevices = {"the devices", "the devices'", "need", "accept", "reach"};

const Words& words(Subject s) {
    return s == Subject::Device ? kDevice : kDevices;
}

std::string bits(uint64_t v) {
    return v == kAllAccess ? std::string("all") : fmt::format("{:#x}", v);
}

// ", each at most 64 KiB and none crossing a 1 MiB boundary": the shape of
// the segments a device takes, empty when unrestricted.
std::string segmentShape(uint64_t maxSegmentSize, uint64_t boundaryMask) {
    const uint64_t window = boundaryWindow(boundaryMask);
    std::string out;
    if (maxSegmentSize != kNoLimit)
        out = fmt::format(" of up to {}", formatSize(maxSegmentSize));
    if (window != 0)
        out += fmt::format("{} not crossing a {} boundary", out.empty() ? "" : ",", formatSize(window));
    return out;
}

// Rule 0: a host kernel heap whose placement is unknown says nothing of
// where its pages lie, so no device limit can be checked against it and no
// modelled device can map its buffers: it is allocated from by name, for
// kernel drivers. A heap of the model that the host kernel does not expose
// cannot hand out a real dma-buf on the host: it is never chosen there. A
// second node of a placed heap's memory is that heap again: the placed heap
// is chosen, so that one memory is not ranked twice.
bool refusesHostKernel(const MatchInput& in, HeapVerdict& out) {
    if (in.heap.kernelPlacement == KernelPlacement::NotInKernel) {
        out = VerdictAccess::refusePlacement(Refusal::NotInHostKernel, in.subject, internName(in.heap.name));
        return true;
    }
    if (in.heap.kernelPlacement == KernelPlacement::Alias) {
        out = VerdictAccess::refusePlacement(Refusal::KernelAlias, in.subject, internName(in.heap.kernelHeap));
        return true;
    }
    if (in.heap.kind != HeapKind::Kernel)
        return false;
    // Only a heap the Context tried to place names its node: the others
    // keep the words of a kernel heap offered beside the model.
    const bool tried = in.heap.kernelPlacement != KernelPlacement::Modelled;
    out = VerdictAccess::refusePlacement(Refusal::HostKernel, in.subject,
                                         tried ? internName(in.heap.kernelHeap) : std::string_view());
    return true;
}

// Rule 0b: a private pool (a reserved region some devices name in their
// memory-region) is those devices' alone: the kernel hands it to their
// drivers' dma_alloc_* calls and to nobody else (of_reserved_mem_device_init),
// so it serves a set of its owners only. values[0]: the index of the first
// device it refuses, or UINT64_MAX for an empty set.
bool refusesPrivatePool(const MatchInput& in, HeapVerdict& out) {
    const std::vector<std::string>& owners = in.heap.owners;
    if (owners.empty())
        return false;
    std::span<const DeviceMapping> devices = in.set.mappings();
    if (devices.empty()) {
        out = VerdictAccess::refuse(Refusal::PrivatePool, in.subject, {UINT64_MAX}, {}, {});
        return true;
    }
    for (const DeviceMapping& d : devices)
        if (std::find(owners.begin(), owners.end(), d.device) == owners.end()) {
            out = VerdictAccess::refuse(Refusal::PrivatePool, in.subject, {0}, {}, d.device);
            return true;
        }
    return false;
}

// Rule 1: the memory must be of a kind the devices reach.
bool refusesAccess(const MatchInput& in, HeapVerdict& out) {
    const uint64_t device = in.set.physical().accessBits;
    if ((in.heap.accessBits & device) != 0)
        return false;
    out = VerdictAccess::refuse(Refusal::AccessBits, in.subject, {in.heap.accessBits, device});
    return true;
}

// Rule 2: the address limit. A heap asked for storage honours the limit
// (StorageLimits::highestAddress), so what matters is whether enough of
// its memory lies below it, not whether all of it does.
bool refusesAddress(const MatchInput& in, HeapVerdict& out) {
    const uint64_t limit = in.set.addressLimit();
    const HeapProperties& h = in.heap;
    if (h.lowestAddress > limit) {
        out = VerdictAccess::refuse(Refusal::AboveAddressLimit, in.subject, {h.lowestAddress, limit});
        return true;
    }
    if (!h.honoursAddressLimit) {
        // A kernel heap hands out its memory anywhere in its range, and the
        // devices import it with dma_map_sgtable: their streaming mask
        // (dma_capable) must reach all of it, or swiotlb bounces it.
        const uint64_t streaming = in.set.physical().dmaMask;
        if (streaming >= h.highestAddress)
            return false;
        out = VerdictAccess::refuse(Refusal::AboveAddressLimit, in.subject, {h.highestAddress, streaming, 1});
        return true;
    }
    if (limit >= h.highestAddress)
        return false; // the limit cuts nothing: rule 6 judges the capacity
    // The heap's memory below the limit is at most the address span below
    // it (the heap's range may have holes, so this is an upper bound: a
    // heap refused here could never serve the buffer).
    const uint64_t reach = std::min(h.capacity, saturate(U128(limit) - h.lowestAddress + 1));
    if (reach >= in.size)
        return false;
    out = VerdictAccess::refuse(Refusal::BelowLimitCapacity, in.subject, {reach, in.size, limit});
    return true;
}

// Rule 3: contiguity (by the flag or a one-segment limit).
bool refusesContiguity(const MatchInput& in, HeapVerdict& out) {
    if (!in.set.physical().needsContiguous() || in.heap.contiguous)
        return false;
    out = VerdictAccess::refuse(Refusal::NotContiguous, in.subject, {in.heap.minChunkSize});
    return true;
}

// The device a per-device refusal names: none when the set is that one
// device (the words then say "the device").
std::string_view refusedDevice(const MatchInput& in, const DeviceMapping& m) {
    return in.set.mappings().size() > 1 ? m.device : std::string_view();
}

// Rule 4: segments, per device mapping the storage without an IOMMU, each
// under its own limits: Linux maps the storage once per attachment
// (dma_map_sgtable on the attachment's device), so one device's segment
// size never constrains another's count. A contiguous heap's one chunk
// starts at a multiple of its chunk alignment; the devices' own alignment
// is not counted on, so that a tighter set never looks better than a
// looser one.
bool refusesSegments(const MatchInput& in, HeapVerdict& out) {
    const HeapProperties& h = in.heap;
    for (const DeviceMapping& m : in.set.mappings()) {
        if (!m.direct())
            break; // the direct devices come first
        if (m.maxSegmentCount == 0)
            continue;
        const uint64_t worst =
            h.contiguous ? contiguousSegments(in.size, m.maxSegmentSize, m.segmentBoundaryMask, h.chunkAlignment)
                         : scatteredSegments(in.size, h.minChunkSize, m.maxSegmentSize, m.segmentBoundaryMask);
        if (worst <= m.maxSegmentCount)
            continue;
        out = VerdictAccess::refuse(Refusal::TooManySegments, in.subject,
                                    {h.contiguous ? 1u : 0u, in.size, worst, m.maxSegmentCount, m.maxSegmentSize,
                                     m.segmentBoundaryMask, h.minChunkSize},
                                    {}, refusedDevice(in, m));
        return true;
    }
    return false;
}

// Rule 5: alignment. A contiguous heap places its one chunk where asked
// (StorageLimits::alignment); a scattered heap's first chunk is only as
// aligned as its chunks are. An alignment of 0 (an lcm that overflowed)
// no address meets.
bool refusesAlignment(const MatchInput& in, HeapVerdict& out) {
    const uint64_t need = in.set.physical().alignment;
    if (need != 0 && (in.heap.contiguous || need <= in.heap.chunkAlignment))
        return false;
    out = VerdictAccess::refuse(Refusal::Alignment, in.subject, {in.heap.chunkAlignment, need});
    return true;
}

// Rule 6: size.
bool refusesCapacity(const MatchInput& in, HeapVerdict& out) {
    if (in.size <= in.heap.capacity)
        return false;
    out = VerdictAccess::refuse(Refusal::Capacity, in.subject, {in.size, in.heap.capacity});
    return true;
}

// Rule 7: IOVA space. The IOMMU maps the buffer's pages into one I/O
// virtual range of whole IOMMU pages, placed at a multiple of the page
// size, inside the window every device of the domain reaches (they share
// the range through the mapping cache). The range is contiguous, so
// "contiguous" is met; each device's own segment limits still split it.
bool refusesIova(const MatchInput& in, HeapVerdict& out) {
    if (in.set.iovaSpaces().empty())
        return false;
    for (const IovaSpace& s : in.set.iovaSpaces()) {
        const uint64_t length = alignUpChecked(in.size, s.pageSize).value_or(UINT64_MAX);
        const uint64_t window = s.windowSize();
        if (s.windowEmpty() || window < length) {
            out = VerdictAccess::refuse(Refusal::IovaWindow, in.subject,
                                        {window, length, addressLimit(s.limits), s.apertureBase}, s.iommu);
            return true;
        }
    }
    // Mappings are sorted by domain like the spaces: walk both together.
    std::span<const IovaSpace> spaces = in.set.iovaSpaces();
    size_t next = 0;
    for (const DeviceMapping& m : in.set.mappings()) {
        if (m.direct() || m.maxSegmentCount == 0)
            continue;
        // Interned names: the same domain is the same pointer.
        while (next < spaces.size() && spaces[next].iommu.data() != m.domain.data() && spaces[next].iommu < m.domain)
            ++next;
        if (next == spaces.size() || spaces[next].iommu != m.domain)
            continue; // a set always has the space of each of its devices' domains
        const IovaSpace* s = &spaces[next];
        const uint64_t length = alignUpChecked(in.size, s->pageSize).value_or(UINT64_MAX);
        const uint64_t worst = contiguousSegments(length, m.maxSegmentSize, m.segmentBoundaryMask, s->pageSize);
        if (worst > m.maxSegmentCount) {
            out =
                VerdictAccess::refuse(Refusal::IovaSegments, in.subject,
                                      {0, length, worst, m.maxSegmentCount, m.maxSegmentSize, m.segmentBoundaryMask, 0},
                                      s->iommu, refusedDevice(in, m));
            return true;
        }
    }
    return false;
}

// The order of matchHeap()'s documentation; the first refusal is the verdict.
constexpr std::array<MatchRule, 9> kMatchRules = {{
    {"placement", refusesHostKernel},
    {"private", refusesPrivatePool},
    {"access", refusesAccess},
    {"address", refusesAddress},
    {"contiguity", refusesContiguity},
    {"segments", refusesSegments},
    {"alignment", refusesAlignment},
    {"capacity", refusesCapacity},
    {"iova", refusesIova},
}};

} // namespace

std::span<const MatchRule> matchRules() {
    return kMatchRules;
}

HeapVerdict VerdictAccess::refuse(Refusal refusal, Subject subject, std::array<uint64_t, 7> values,
                                  std::string_view iommu, std::string_view device) {
    HeapVerdict v;
    v.refusal_ = refusal;
    v.subject_ = subject;
    v.values_ = values;
    v.iommu_ = iommu;
    v.device_ = device;
    return v;
}

HeapVerdict VerdictAccess::refusePlacement(Refusal refusal, Subject subject, std::string_view kernelHeap) {
    HeapVerdict v = refuse(refusal, subject, {});
    v.kernelHeap_ = kernelHeap;
    return v;
}

uint64_t contiguousSegments(uint64_t size, uint64_t maxSegmentSize, uint64_t boundaryMask, uint64_t startAlignment) {
    if (size == 0)
        return 0;
    if (maxSegmentSize == 0)
        return UINT64_MAX;
    const uint64_t b = boundaryWindow(boundaryMask);
    if (b == 0)
        return ceilDiv(size, maxSegmentSize);
    const uint64_t m = maxSegmentSize;
    // The range covers K whole boundary windows plus t bytes when it starts
    // on a boundary; each whole window splits into ceil(B/M) segments. Only
    // the products need 128 bits (B is at most 2^63, so t + B fits in 64).
    const U128 perWindow = ceilDiv(b, m);
    const U128 k = size / b;
    const uint64_t t = size % b;
    if (startAlignment != 0 && startAlignment % b == 0)
        return saturate(k * perWindow + ceilDiv(t, m));
    // Otherwise it starts f bytes before a boundary and ends r bytes after
    // one, with f + r = t (K whole windows between) or f + r = t + B (K - 1).
    // ceil(f/M) + ceil(r/M) <= ceil((f+r)/M) + 1 bounds both cases.
    U128 worst = 0;
    if (t > 0)
        worst = k * perWindow + ceilDiv(t, m) + 1;
    if (k > 0)
        worst = std::max(worst, (k - 1) * perWindow + ceilDiv(t + b, m) + 1);
    return saturate(worst);
}

uint64_t scatteredSegments(uint64_t size, uint64_t minChunkSize, uint64_t maxSegmentSize, uint64_t boundaryMask) {
    if (size == 0)
        return 0;
    uint64_t unit = std::min(std::max<uint64_t>(minChunkSize, 1), maxSegmentSize);
    if (const uint64_t b = boundaryWindow(boundaryMask); b != 0)
        unit = std::min(unit, b);
    if (unit == 0)
        return UINT64_MAX;
    return ceilDiv(size, unit);
}

HeapVerdict matchHeap(const HeapProperties& heap, const ConstraintSet& set, uint64_t size, Subject subject) {
    const MatchInput in{heap, set, size, subject};
    HeapVerdict verdict;
    // The table, walked at compile time: each row's function is a constant,
    // so the calls are direct and inlined (matching runs for every device-heap
    // pair of an explanation).
    [&]<size_t... I>(std::index_sequence<I...>) {
        (kMatchRules[I].refuses(in, verdict) || ...);
    }
    (std::make_index_sequence<kMatchRules.size()>());
    return verdict;
}

const char* refusalName(Refusal refusal) {
    switch (refusal) {
    case Refusal::None: return "none";
    case Refusal::HostKernel: return "host-kernel";
    case Refusal::NotInHostKernel: return "not-in-host-kernel";
    case Refusal::KernelAlias: return "kernel-alias";
    case Refusal::PrivatePool: return "private-pool";
    case Refusal::AccessBits: return "access-bits";
    case Refusal::AboveAddressLimit: return "above-address-limit";
    case Refusal::BelowLimitCapacity: return "below-limit-capacity";
    case Refusal::NotContiguous: return "not-contiguous";
    case Refusal::TooManySegments: return "too-many-segments";
    case Refusal::Alignment: return "alignment";
    case Refusal::Capacity: return "capacity";
    case Refusal::IovaWindow: return "iova-window";
    case Refusal::IovaSegments: return "iova-segments";
    }
    return "unknown";
}

std::string HeapVerdict::reason() const {
    const Words& w = words(subject_);
    const Values& v = values_;
    // A per-device rule names the device it refused when the set has more.
    const std::string named = device_.empty() ? std::string() : fmt::format("'{}'", device_);
    const char* who = device_.empty() ? w.who : named.c_str();
    const char* accepts = device_.empty() ? w.accepts : kDevice.accepts;
    switch (refusal_) {
    case Refusal::None: return {};
    case Refusal::NotInHostKernel:
        return fmt::format(
            "the host kernel has no heap '{}' ({}/{} does not exist): nothing on this host hands out its "
            "memory as a dma-buf",
            kernelHeap_, kKernelHeapDir, kernelHeap_);
    case Refusal::KernelAlias:
        return fmt::format("{}/{} is a second node of the memory a placed heap stands for (the kernel's default CMA "
                           "area, which cma_heap.c registers under two names): that heap is chosen instead "
                           "(allocate from this one by name)",
                           kKernelHeapDir, kernelHeap_);
    case Refusal::HostKernel:
        if (!kernelHeap_.empty())
            return fmt::format("placement unknown: no reserved-memory region or vendor heap of the platform matches "
                               "{}/{} (allocate from it by name for kernel drivers)",
                               kKernelHeapDir, kernelHeap_);
        return fmt::format("a host kernel heap: the kernel does not say where its pages lie, so {} limits cannot be "
                           "checked and no modelled device can map it (allocate from it by name for kernel drivers)",
                           w.whose);
    case Refusal::PrivatePool:
        if (v[0] == UINT64_MAX)
            return "a pool private to the devices that name it in memory-region: no buffer without them";
        return fmt::format("a pool private to other devices (their memory-region): '{}' may not use it", device_);
    case Refusal::AccessBits:
        if (v[1] == 0)
            return fmt::format("{} access bits have no bit in common: together they reach no memory", w.whose);
        return fmt::format("heap memory has access bits {}; {} {} only {}", bits(v[0]), w.who, w.reaches, bits(v[1]));
    case Refusal::AboveAddressLimit:
        if (v[2] != 0)
            return fmt::format("the kernel's heap takes no address limit and its memory reaches {:#x}, above {} {} "
                               "(the driver would bounce the buffer through swiotlb)",
                               v[0], w.whose, describeMask(v[1]));
        return fmt::format("memory starts at {:#x}, above {} {}", v[0], w.whose, describeMask(v[1]));
    case Refusal::BelowLimitCapacity:
        return fmt::format("only {} of the heap lies below {} {}, less than the {} buffer", formatSize(v[0]), w.whose,
                           describeMask(v[2]), formatSize(v[1]));
    case Refusal::NotContiguous:
        return fmt::format("chunks can be as small as {} but {} {} one contiguous buffer", formatSize(v[0]), w.who,
                           w.needs);
    case Refusal::TooManySegments:
        if (v[0] != 0)
            return fmt::format("one {} chunk can split into {} segments{} but {} {} at most {}", formatSize(v[1]), v[2],
                               segmentShape(v[4], v[5]), who, accepts, v[3]);
        return fmt::format("a {} buffer can take {} segments (chunks can be as small as {}) but {} {} at most {} "
                           "segments{}",
                           formatSize(v[1]), v[2], formatSize(v[6]), who, accepts, v[3], segmentShape(v[4], v[5]));
    case Refusal::Alignment:
        if (v[1] == 0)
            return fmt::format("{} alignments have no common multiple", w.whose);
        return fmt::format("chunks are aligned to {} but {} {} {} alignment", formatSize(v[0]), w.who, w.needs,
                           formatSize(v[1]));
    case Refusal::Capacity:
        return fmt::format("buffer of {} exceeds the heap's {}", formatSize(v[0]), formatSize(v[1]));
    case Refusal::IovaWindow:
        if (v[0] == 0)
            return fmt::format("behind {}, {} {} reaches none of the aperture starting at {:#x}", iommu_, w.whose,
                               describeMask(v[2]), v[3]);
        return fmt::format("behind {}, the I/O virtual window {} {} holds {}, less than the {} buffer", iommu_, w.who,
                           w.reaches, formatSize(v[0]), formatSize(v[1]));
    case Refusal::IovaSegments:
        return fmt::format("behind {}, the buffer's one {} I/O virtual range can split into {} segments{} but {} {} "
                           "at most {}",
                           iommu_, formatSize(v[1]), v[2], segmentShape(v[4], v[5]), who, accepts, v[3]);
    }
    return {};
}

} // namespace cenalloc
