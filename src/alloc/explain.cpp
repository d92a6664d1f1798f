// SPDX-License-Identifier: MIT
// explain(), chooseHeap() and checkAttach(): matching and ranking applied to a set of devices.
#include <cenalloc/explain.h>

#include <algorithm>
#include <cerrno>
#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cenalloc/units.h>

#include "alloc/match.h"
#include "alloc/ranking.h"
#include "base/try.h"

namespace cenalloc {

namespace {

// Both heap-list spellings (values, or pointers to the Heap objects'
// properties) go through the same code.
const HeapProperties& at(std::span<const HeapProperties> heaps, size_t i) {
    return heaps[i];
}
const HeapProperties& at(std::span<const HeapProperties* const> heaps, size_t i) {
    return *heaps[i];
}

// Storage is page-granular, so matching sees the length a heap would
// allocate.
Result<uint64_t> bufferSize(uint64_t size) {
    if (size == 0)
        return Error(EINVAL, "buffer size 0");
    std::optional<uint64_t> aligned = alignUpChecked(size, kPageSize);
    if (!aligned)
        return Error(EINVAL, fmt::format("buffer size {} overflows when rounded up to a page", size));
    return *aligned;
}

std::string inQuotes(std::string_view name) {
    return fmt::format("'{}'", name);
}

// "'a'", "'a' and 'b'", "'a', 'b' and 'c'".
std::string listNames(std::span<const std::string> names) {
    std::string out;
    for (size_t i = 0; i < names.size(); ++i) {
        if (i > 0)
            out += i + 1 == names.size() ? " and " : ", ";
        out += inQuotes(names[i]);
    }
    return out;
}

template <typename Heaps> std::string refusals(const ConstraintSet& set, Heaps heaps, uint64_t size) {
    if (heaps.empty())
        return "there are no heaps";
    std::string out;
    for (size_t i = 0; i < heaps.size(); ++i) {
        const HeapProperties& h = at(heaps, i);
        out += fmt::format("{}heap '{}': {}", i ? "; " : "", h.name, matchHeap(h, set, size).reason());
    }
    return out;
}

template <typename Heaps>
Result<const HeapProperties*> chooseImpl(const ConstraintSet& set, Heaps heaps, uint64_t size, CpuAccess cpuAccess) {
    uint64_t length = CENALLOC_TRY(bufferSize(size));
    const RankingContext context = RankingContext::of(set, cpuAccess);
    const HeapProperties* best = nullptr;
    for (size_t i = 0; i < heaps.size(); ++i) {
        const HeapProperties& h = at(heaps, i);
        if (matchHeap(h, set, length).accepted() && (!best || ranksBefore(h, *best, context)))
            best = &h;
    }
    if (!best)
        return Error(EINVAL, "no heap serves the devices: " + refusals(set, heaps, length));
    return best;
}

template <typename Heaps>
Result<ConstraintSet> checkAttachImpl(const ConstraintSet& attached, const Device& device, const Platform& platform,
                                      Heaps heaps, uint64_t size) {
    uint64_t length = CENALLOC_TRY(bufferSize(size));
    ConstraintSet merged = CENALLOC_TRY(attached.merge(device, platform));
    for (size_t i = 0; i < heaps.size(); ++i)
        if (matchHeap(at(heaps, i), merged, length).accepted())
            return merged;
    ConstraintSet alone = CENALLOC_TRY(ConstraintSet::forDevice(device, platform));

    // The failure path only: say for each heap whether the new device, the
    // devices already there, or only their combination is the problem.
    std::string message = fmt::format("attaching '{}' would leave no heap for the buffer: ", device.name);
    if (heaps.empty())
        return Error(EINVAL, message + "there are no heaps");
    for (size_t i = 0; i < heaps.size(); ++i) {
        const HeapProperties& h = at(heaps, i);
        if (i > 0)
            message += "; ";
        if (HeapVerdict v = matchHeap(h, alone, length, Subject::Device); !v.accepted())
            message += fmt::format("heap '{}' refuses '{}': {}", h.name, device.name, v.reason());
        else if (HeapVerdict w = matchHeap(h, attached, length); !w.accepted())
            message += fmt::format("heap '{}' refuses the devices already attached: {}", h.name, w.reason());
        else
            message += fmt::format("heap '{}' refuses '{}' together with the devices already attached: {}", h.name,
                                   device.name, matchHeap(h, merged, length).reason());
    }
    return Error(EINVAL, message);
}

// Why cached or uncached memory is preferred, naming the non-coherent devices.
std::string cachePolicy(const RankingContext& context, std::span<const std::string> names,
                        std::span<const ConstraintSet> singles) {
    if (context.allCoherent)
        return names.empty() ? "cached: no device needs cache maintenance" : "cached: every device is coherent";
    std::vector<std::string> nonCoherent;
    for (size_t i = 0; i < names.size(); ++i)
        if (!singles[i].coherent())
            nonCoherent.push_back(names[i]);
    std::sort(nonCoherent.begin(), nonCoherent.end());
    const std::string who =
        fmt::format("{} {} not coherent", listNames(nonCoherent), nonCoherent.size() == 1 ? "is" : "are");
    switch (context.cpuAccess) {
    case CpuAccess::Often: return fmt::format("cached: the cpu accesses the buffer often, though {}", who);
    case CpuAccess::Rare: return fmt::format("uncached: {} and the cpu accesses the buffer rarely", who);
    case CpuAccess::None: return fmt::format("uncached: {} and the cpu does not access the buffer", who);
    }
    return {};
}

// "contiguous, 30-bit mask, at most 1 segment": what makes a device tight.
std::string tightnessSummary(const DmaConstraints& c) {
    std::vector<std::string> parts;
    if (c.needsContiguous())
        parts.push_back("contiguous");
    if (addressLimit(c) != kNoLimit)
        parts.push_back(describeMask(addressLimit(c)));
    if (c.maxSegmentCount != 0)
        parts.push_back(fmt::format("at most {} segment{}", c.maxSegmentCount, c.maxSegmentCount == 1 ? "" : "s"));
    if (c.maxSegmentSize != kNoLimit)
        parts.push_back(fmt::format("segments of up to {}", formatSize(c.maxSegmentSize)));
    if (!c.coherent)
        parts.push_back("not coherent");
    if (parts.empty())
        return "no physical limits";
    std::string out = parts[0];
    for (size_t i = 1; i < parts.size(); ++i)
        out += ", " + parts[i];
    return out;
}

// What a device asks of the storage it maps: its placement, plus its own
// segment limits when it maps the storage directly (behind an IOMMU they
// apply to its I/O virtual range, not to the memory).
DmaConstraints storageView(const ConstraintSet& single) {
    DmaConstraints c = single.physical();
    if (single.mappings().size() == 1 && single.mappings()[0].direct()) {
        const DeviceMapping& m = single.mappings()[0];
        c.maxSegmentSize = m.maxSegmentSize;
        c.segmentBoundaryMask = m.segmentBoundaryMask;
        c.maxSegmentCount = m.maxSegmentCount;
    }
    return c;
}

// Where each device's facts came from, and the notes a user must read.
void describeFacts(Explanation& e, std::span<const Device* const> devices) {
    e.facts.reserve(devices.size());
    for (const Device* d : devices) {
        e.facts.push_back(DeviceFacts{d->name, d->factSource, d->assumedFacts, d->restrictedPool});
        if (!d->restrictedPool.empty())
            e.notes.push_back(fmt::format("'{}' bounces every DMA through its restricted-dma-pool '{}': the kernel "
                                          "copies the buffer through that pool, so '{}' never shares it zero-copy",
                                          d->name, d->restrictedPool, d->name));
        for (const std::string& fact : d->assumedFacts)
            e.notes.push_back(fmt::format("'{}': assumed, confirm with its driver: {}", d->name, fact));
    }
}

// A private pool of one of the devices (its memory-region) on a host whose
// kernel heaps the model is placed on: the kernel hands the pool to its
// owners' drivers (of_reserved_mem_device_init, drivers/of/of_reserved_mem.c),
// whose dma_alloc_* calls allocate from it, and exports no dma-heap node for
// it, so nothing here can hand it out as a dma-buf.
void notePrivatePoolOffHost(Explanation& e, const HeapProperties& h) {
    if (h.owners.empty() || h.kernelPlacement != KernelPlacement::NotInKernel)
        return;
    auto owner = std::find_if(h.owners.begin(), h.owners.end(), [&](const std::string& o) {
        return std::find(e.devices.begin(), e.devices.end(), o) != e.devices.end();
    });
    if (owner == h.owners.end())
        return;
    e.notes.push_back(fmt::format("'{}' is the private pool of {} (memory-region): on this host the driver of '{}' "
                                  "allocates from it itself (dma_alloc_*), and no /dev/dma_heap node exists for it, "
                                  "so it is not a heap to allocate from here",
                                  h.name, fmt::format("'{}'", fmt::join(h.owners, "', '")), *owner));
}

struct Solver {
    const Platform& platform;
    std::span<const HeapProperties> heaps;
    uint64_t size; // page-aligned
    CpuAccess cpuAccess;
    std::vector<std::string> names;     // request order
    std::vector<ConstraintSet> singles; // parallel to names

    bool serves(const ConstraintSet& set) const {
        return std::any_of(heaps.begin(), heaps.end(),
                           [&](const HeapProperties& h) { return matchHeap(h, set, size).accepted(); });
    }

    // The device whose own choice is @p chosen and whose limits are the
    // tightest, or none, with the reason in words.
    void recommend(Explanation& e, const HeapProperties* chosen) const {
        const size_t n = names.size();
        if (n == 0) {
            e.allocatingReason = "no devices: cenalloc allocates";
            return;
        }
        // Each device's own first choice, heap by heap (a heap's verdicts
        // lie together in memory).
        std::vector<RankingContext> contexts;
        contexts.reserve(n);
        for (const ConstraintSet& single : singles)
            contexts.push_back(RankingContext::of(single, cpuAccess));
        std::vector<const HeapProperties*> own(n, nullptr);
        for (size_t h = 0; h < heaps.size(); ++h) {
            const std::vector<HeapVerdict>& verdicts = e.heaps[h].devices;
            for (size_t d = 0; d < n; ++d)
                if (verdicts[d].accepted() && (!own[d] || ranksBefore(heaps[h], *own[d], contexts[d])))
                    own[d] = &heaps[h];
        }
        std::optional<size_t> best;
        size_t qualifying = 0;
        for (size_t d = 0; d < n; ++d) {
            if (own[d] != chosen)
                continue;
            ++qualifying;
            if (!best) {
                best = d;
                continue;
            }
            const int t = compareTightness(storageView(singles[d]), storageView(singles[*best]));
            if (t < 0 || (t == 0 && names[d] < names[*best]))
                best = d;
        }
        if (best) {
            e.allocatingDevice = names[*best];
            e.allocatingReason = fmt::format("'{}' alone would choose '{}' too", names[*best], chosen->name);
            if (qualifying > 1)
                e.allocatingReason += fmt::format("; of the {} devices that would, its limits are the tightest ({})",
                                                  qualifying, tightnessSummary(storageView(singles[*best])));
            return;
        }
        // Name what each device would pick instead, a few of them, by name.
        std::vector<size_t> order(n);
        std::iota(order.begin(), order.end(), size_t{0});
        std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return names[a] < names[b]; });
        std::string detail;
        constexpr size_t kShown = 4;
        for (size_t i = 0; i < std::min(n, kShown); ++i) {
            const size_t d = order[i];
            detail += fmt::format("{}'{}' alone would choose {}", i ? ", " : "", names[d],
                                  own[d] ? inQuotes(own[d]->name) : std::string("no heap"));
        }
        if (n > kShown)
            detail += fmt::format(", and {} more", n - kShown);
        e.allocatingReason =
            fmt::format("no single device's own preference works: cenalloc must allocate ({})", detail);
    }

    // A smallest set of devices no heap serves: singles, pairs, triples in
    // name order, else all of them.
    Conflict conflict() const {
        const size_t n = names.size();
        std::vector<size_t> order(n);
        std::iota(order.begin(), order.end(), size_t{0});
        std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return names[a] < names[b]; });

        std::vector<size_t> found;
        for (size_t i = 0; i < n && found.empty(); ++i)
            if (!serves(singles[order[i]]))
                found = {order[i]};
        for (size_t i = 0; i < n && found.empty(); ++i)
            for (size_t j = i + 1; j < n && found.empty(); ++j)
                if (!serves(singles[order[i]].merge(singles[order[j]])))
                    found = {order[i], order[j]};
        for (size_t i = 0; i < n && found.empty(); ++i)
            for (size_t j = i + 1; j < n && found.empty(); ++j) {
                const ConstraintSet pair = singles[order[i]].merge(singles[order[j]]);
                for (size_t k = j + 1; k < n && found.empty(); ++k)
                    if (!serves(pair.merge(singles[order[k]])))
                        found = {order[i], order[j], order[k]};
            }
        const bool whole = found.empty();
        if (whole)
            found = order;

        Conflict c;
        ConstraintSet merged;
        for (size_t d : found) {
            c.devices.push_back(names[d]);
            merged = merged.merge(singles[d]);
        }
        const Subject subject = found.size() == 1 ? Subject::Device : Subject::Devices;
        for (const HeapProperties& h : heaps) {
            ConflictRefusal r{h.name, {}, {}};
            if (found.size() == 1) {
                r.device = names[found[0]];
                r.reason = matchHeap(h, merged, size, subject).reason();
            } else {
                for (size_t d : found)
                    if (HeapVerdict v = matchHeap(h, singles[d], size, Subject::Device); !v.accepted()) {
                        r.device = names[d];
                        r.reason = v.reason();
                        break;
                    }
                if (r.device.empty())
                    r.reason = matchHeap(h, merged, size, subject).reason();
            }
            c.heaps.push_back(std::move(r));
        }

        std::string heapsText;
        for (const ConflictRefusal& r : c.heaps)
            heapsText += fmt::format("{}heap '{}' refuses {}: {}", heapsText.empty() ? "" : "; ", r.heap,
                                     r.device.empty() ? std::string(found.empty() ? "the buffer" : "them together")
                                                      : inQuotes(r.device),
                                     r.reason);
        if (c.heaps.empty())
            heapsText = "there are no heaps";
        if (n == 0)
            c.reason = fmt::format("no heap serves a buffer of {}: {}", formatSize(size), heapsText);
        else if (found.size() == 1)
            c.reason = fmt::format("no heap serves '{}': {}", c.devices[0], heapsText);
        else if (whole)
            c.reason = fmt::format(
                "no heap serves all {} devices together, though any 3 of them can share a buffer: {}", n, heapsText);
        else
            c.reason = fmt::format("no heap serves {} together: {}", listNames(c.devices), heapsText);
        return c;
    }
};

Result<Explanation> explainDevices(const Platform& platform, std::span<const HeapProperties> heaps,
                                   std::span<const Device* const> devices, uint64_t size, CpuAccess cpuAccess) {
    uint64_t length = CENALLOC_TRY(bufferSize(size));
    Solver s{platform, heaps, length, cpuAccess, {}, {}};
    s.names.reserve(devices.size());
    s.singles.reserve(devices.size());
    for (const Device* d : devices) {
        ConstraintSet one = CENALLOC_TRY(ConstraintSet::forDevice(*d, platform));
        s.names.push_back(d->name);
        s.singles.push_back(std::move(one));
    }
    if (s.names.size() > 1) {
        std::vector<std::string_view> sorted(s.names.begin(), s.names.end());
        std::sort(sorted.begin(), sorted.end());
        if (auto twice = std::adjacent_find(sorted.begin(), sorted.end()); twice != sorted.end())
            return Error(EINVAL, fmt::format("device '{}' is listed twice", *twice));
    }

    Explanation e;
    e.devices = s.names;
    describeFacts(e, devices);
    e.size = s.size;
    e.cpuAccess = cpuAccess;
    e.constraints = ConstraintSet::intersect(s.singles);

    // Every (heap, device) verdict, plus each heap's verdict for the whole
    // set. Verdicts carry numbers, not text: nothing here formats a string.
    const Subject subject = devices.size() == 1 ? Subject::Device : Subject::Devices;
    std::vector<const HeapProperties*> accepted;
    e.heaps.reserve(heaps.size());
    for (const HeapProperties& h : heaps) {
        HeapExplanation he;
        he.name = h.name;
        he.owners = h.owners;
        he.devices.reserve(s.singles.size());
        for (const ConstraintSet& one : s.singles)
            he.devices.push_back(matchHeap(h, one, s.size, Subject::Device));
        he.combined = matchHeap(h, e.constraints, s.size, subject);
        he.accepted = he.combined.accepted();
        if (he.accepted)
            accepted.push_back(&h);
        e.heaps.push_back(std::move(he));
        notePrivatePoolOffHost(e, h);
    }

    const RankingContext context = RankingContext::of(e.constraints, cpuAccess);
    rankHeaps(accepted, context);
    e.ranking.reserve(accepted.size());
    for (const HeapProperties* h : accepted)
        e.ranking.push_back(h->name);
    e.preferCached = context.preferCached();
    e.cachePolicy = cachePolicy(context, s.names, s.singles);

    e.satisfiable = !accepted.empty();
    if (e.satisfiable) {
        e.heap = accepted.front()->name;
        if (!accepted.front()->kernelHeap.empty())
            e.kernelHeap = accepted.front()->kernelHeap;
        s.recommend(e, accepted.front());
    } else {
        e.allocatingReason = "no heap serves every device, so no device can allocate for all of them";
        e.conflict = s.conflict();
    }
    return e;
}

} // namespace

const char* cpuAccessName(CpuAccess access) {
    switch (access) {
    case CpuAccess::None: return "none";
    case CpuAccess::Rare: return "rare";
    case CpuAccess::Often: return "often";
    }
    return "unknown";
}

Result<CpuAccess> parseCpuAccess(std::string_view text) {
    for (CpuAccess a : {CpuAccess::None, CpuAccess::Rare, CpuAccess::Often})
        if (text == cpuAccessName(a))
            return a;
    return Error(EINVAL, fmt::format("'{}' is not a cpu access hint (expected none, rare or often)", text));
}

Result<const HeapProperties*> chooseHeap(const ConstraintSet& set, std::span<const HeapProperties> heaps, uint64_t size,
                                         CpuAccess cpuAccess) {
    return chooseImpl(set, heaps, size, cpuAccess);
}

Result<const HeapProperties*> chooseHeap(const ConstraintSet& set, std::span<const HeapProperties* const> heaps,
                                         uint64_t size, CpuAccess cpuAccess) {
    return chooseImpl(set, heaps, size, cpuAccess);
}

Result<ConstraintSet> checkAttach(const ConstraintSet& attached, const Device& device, const Platform& platform,
                                  std::span<const HeapProperties> heaps, uint64_t size) {
    return checkAttachImpl(attached, device, platform, heaps, size);
}

Result<ConstraintSet> checkAttach(const ConstraintSet& attached, const Device& device, const Platform& platform,
                                  std::span<const HeapProperties* const> heaps, uint64_t size) {
    return checkAttachImpl(attached, device, platform, heaps, size);
}

Result<Explanation> explain(const Platform& platform, std::span<const HeapProperties> heaps,
                            std::span<const Device* const> devices, uint64_t size, CpuAccess cpuAccess) {
    for (const Device* d : devices)
        if (!d)
            return Error(EINVAL, "a device is null");
    return explainDevices(platform, heaps, devices, size, cpuAccess);
}

Result<Explanation> explain(const Platform& platform, std::span<const HeapProperties> heaps,
                            std::span<const std::string> devices, uint64_t size, CpuAccess cpuAccess) {
    // Platform::findDevice() scans; with many devices a sorted index keeps
    // resolving the names O(n log n).
    std::vector<const Device*> byName;
    byName.reserve(platform.devices.size());
    for (const Device& d : platform.devices)
        byName.push_back(&d);
    std::sort(byName.begin(), byName.end(), [](const Device* a, const Device* b) { return a->name < b->name; });
    std::vector<const Device*> resolved;
    resolved.reserve(devices.size());
    for (const std::string& name : devices) {
        auto it = std::lower_bound(byName.begin(), byName.end(), name,
                                   [](const Device* d, const std::string& n) { return d->name < n; });
        if (it == byName.end() || (*it)->name != name) {
            std::vector<std::string> known;
            for (const Device& k : platform.devices)
                known.push_back(k.name);
            return Error(ENOENT, fmt::format("platform '{}' has no device '{}' (it has {})", platform.name, name,
                                             known.empty() ? std::string("none") : listNames(known)));
        }
        resolved.push_back(*it);
    }
    return explainDevices(platform, heaps, resolved, size, cpuAccess);
}

} // namespace cenalloc
