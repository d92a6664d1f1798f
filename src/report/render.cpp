// SPDX-License-Identifier: MIT
// Text and JSON renderings of platforms, heaps, bufinfo, IOMMU domains and explanations.
#include "report/report.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cenalloc/constraints.h>
#include <cenalloc/units.h>

#include "report/table.h"
#include "report/untrusted_text.h"

namespace cenalloc {

namespace {

using nlohmann::json;

std::string hex(uint64_t v) {
    return fmt::format("{:#x}", v);
}

std::string maskText(uint64_t mask) {
    return mask == kNoLimit ? "none" : describeMask(mask);
}

std::string limitText(uint64_t value) {
    return value == kNoLimit ? "none" : formatSize(value);
}

// Every string below may have come from a peer (a buffer name any client
// set, whatever a daemon sent): JSON gets well-formed UTF-8 (the JSON
// library refuses anything else), text gets printableText().
json text(std::string_view bytes) {
    return validUtf8(bytes);
}

json texts(const std::vector<std::string>& list) {
    json out = json::array();
    for (const std::string& s : list)
        out.push_back(text(s));
    return out;
}

json constraintsJson(const DmaConstraints& c, bool placementOnly = false) {
    json j;
    for (const ConstraintRule& rule : constraintRules()) {
        if (placementOnly && rule.part != ConstraintPart::Placement)
            continue;
        uint64_t v = rule.get(c);
        if (rule.kind == ConstraintValueKind::Flag)
            j[std::string(rule.name)] = v != 0;
        else
            j[std::string(rule.name)] = v;
    }
    return j;
}

} // namespace

// ------------------------------------------------------------- platform

json platformJson(const Platform& p) {
    json j;
    j["name"] = p.name;
    j["description"] = p.description;
    j["source"] = p.source;
    j["memory"] = json::array();
    for (const MemoryBank& b : p.memory)
        j["memory"].push_back({{"name", b.name}, {"base", b.base}, {"size", b.size}});
    j["regions"] = json::array();
    for (const ReservedRegion& r : p.regions)
        j["regions"].push_back({{"name", r.name},
                                {"kind", r.kind == RegionKind::Cma ? "cma" : "carveout"},
                                {"base", r.base},
                                {"size", r.size},
                                {"no_map", r.noMap},
                                {"default", r.isDefault},
                                {"access_bits", r.accessBits}});
    j["iommus"] = json::array();
    for (const Iommu& m : p.iommus)
        j["iommus"].push_back({{"name", m.name},
                               {"page_size", m.pageSize},
                               {"aperture_base", m.apertureBase},
                               {"aperture_size", m.apertureSize}});
    j["devices"] = json::array();
    for (const Device& d : p.devices) {
        json dj{{"name", d.name}, {"description", d.description}, {"constraints", constraintsJson(d.constraints)}};
        dj["iommu"] = d.iommu ? json(*d.iommu) : json(nullptr);
        dj["sysfs_path"] = d.sysfsPath.empty() ? json(nullptr) : json(d.sysfsPath);
        dj["driver"] = d.driver.empty() ? json(nullptr) : json(d.driver);
        j["devices"].push_back(std::move(dj));
    }
    return j;
}

std::string renderPlatform(const Platform& p) {
    std::string out = fmt::format("platform {}  ({})\n", p.name, p.source);
    if (!p.description.empty())
        out += fmt::format("  {}\n", p.description);
    out += fmt::format("\nmemory: {} in {} bank(s)\n", formatSize(p.totalMemory()), p.memory.size());
    TextTable banks({"bank", "base", "end", "size"});
    for (const MemoryBank& b : p.memory)
        banks.addRow({b.name, formatAddress(b.base), formatAddress(b.end()), formatSize(b.size)});
    out += banks.render();
    if (!p.regions.empty()) {
        out += "\nreserved regions:\n";
        TextTable t({"region", "kind", "base", "size", "flags"});
        for (const ReservedRegion& r : p.regions) {
            std::string flags;
            if (r.isDefault)
                flags += "default ";
            if (r.noMap)
                flags += "no-map ";
            if (r.accessBits != kAllAccess)
                flags += fmt::format("access={:#x}", r.accessBits);
            t.addRow({r.name, r.kind == RegionKind::Cma ? "cma" : "carveout", formatAddress(r.base), formatSize(r.size),
                      flags});
        }
        out += t.render();
    }
    if (!p.iommus.empty()) {
        out += "\niommus:\n";
        TextTable t({"iommu", "page", "aperture"});
        for (const Iommu& m : p.iommus)
            t.addRow({m.name, formatSize(m.pageSize),
                      fmt::format("{} + {}", formatAddress(m.apertureBase), formatSize(m.apertureSize))});
        out += t.render();
    }
    out += "\ndevices:\n";
    TextTable t({"device", "iommu", "dma mask", "max seg", "segs", "boundary", "align", "contig", "coherent"});
    for (const Device& d : p.devices) {
        const DmaConstraints& c = d.constraints;
        t.addRow({d.name, d.iommu.value_or("-"), maskText(c.dmaMask), limitText(c.maxSegmentSize),
                  c.maxSegmentCount ? std::to_string(c.maxSegmentCount) : "any", maskText(c.segmentBoundaryMask),
                  formatSize(c.alignment), c.needsContiguous() ? "yes" : "no", c.coherent ? "yes" : "no"});
    }
    out += t.render();
    // On the host: which device of the running system each one is.
    bool host = std::any_of(p.devices.begin(), p.devices.end(), [](const Device& d) { return !d.sysfsPath.empty(); });
    if (host) {
        out += "\nhost devices:\n";
        TextTable h({"device", "sysfs", "driver"});
        for (const Device& d : p.devices)
            h.addRow({d.name, d.sysfsPath.empty() ? "-" : d.sysfsPath,
                      d.driver.empty() ? "no driver bound" : "driver: " + d.driver});
        out += h.render();
    }
    return out;
}

// ---------------------------------------------------------------- heaps

json heapPropertiesJson(const HeapProperties& h) {
    json j{{"kind", heapKindName(h.kind)},
           {"description", h.description},
           {"lowest_address", h.lowestAddress},
           {"highest_address", h.highestAddress},
           {"contiguous", h.contiguous},
           {"cached", h.cached},
           {"max_chunk_size", h.maxChunkSize},
           {"min_chunk_size", h.minChunkSize},
           {"chunk_alignment", h.chunkAlignment},
           {"access_bits", h.accessBits},
           {"capacity", h.capacity},
           {"valid_heap_flags", h.validHeapFlags}};
    // Only a context placed on the host kernel's heaps says how each relates to them.
    if (h.kernelPlacement != KernelPlacement::Modelled) {
        j["kernel_placement"] = kernelPlacementName(h.kernelPlacement);
        j["kernel_heap"] = h.kernelHeap.empty() ? json(nullptr) : text(fmt::format("/dev/dma_heap/{}", h.kernelHeap));
    }
    return j;
}

json heapStatsJson(const HeapStats& s) {
    return {{"live_buffers", s.liveBuffers},
            {"live_bytes", s.liveBytes},
            {"watermark_bytes", s.watermarkBytes},
            {"failed_allocations", s.failedAllocations},
            {"total_allocations", s.totalAllocations}};
}

std::vector<HeapInfo> heapInfos(const Context& context) {
    std::vector<HeapInfo> out;
    for (const auto& heap : context.heaps())
        out.push_back({heap->name(), heap->properties(), heap->stats(), heap->freeBytes()});
    return out;
}

json heapsJson(const std::string& platform, const std::vector<HeapInfo>& heaps) {
    json list = json::array();
    for (const HeapInfo& heap : heaps) {
        json s = heapStatsJson(heap.stats);
        s["free_bytes"] = heap.freeBytes;
        list.push_back({{"name", text(heap.name)}, {"properties", heapPropertiesJson(heap.properties)}, {"stats", s}});
    }
    return {{"source", text(platform)}, {"heaps", list}};
}

std::string renderHeaps(const std::string& platform, const std::vector<HeapInfo>& heaps) {
    // Placed on the host kernel's heaps: which node each heap stands for.
    const bool placed = std::any_of(heaps.begin(), heaps.end(), [](const HeapInfo& h) {
        return h.properties.kernelPlacement != KernelPlacement::Modelled;
    });
    std::vector<std::string> header = {"heap", "kind", "range",      "contig",    "cached", "capacity",
                                       "free", "live", "live bytes", "watermark", "failed"};
    if (placed)
        header.insert(header.begin() + 1, "kernel heap");
    TextTable t(std::move(header));
    for (const HeapInfo& heap : heaps) {
        const HeapProperties& p = heap.properties;
        const HeapStats& s = heap.stats;
        // A host kernel heap's placement and free memory are the kernel's secret.
        const bool known = p.kind != HeapKind::Kernel;
        std::vector<std::string> row = {
            p.name,
            heapKindName(p.kind),
            known && p.capacity ? fmt::format("{}..{}", hex(p.lowestAddress), hex(p.highestAddress)) : "-",
            p.contiguous ? "yes" : "no",
            p.cached ? "yes" : "no",
            p.capacity ? formatSize(p.capacity) : "?",
            known && !p.inHostKernel() ? formatSize(heap.freeBytes) : "?",
            std::to_string(s.liveBuffers),
            formatSize(s.liveBytes),
            formatSize(s.watermarkBytes),
            std::to_string(s.failedAllocations)};
        if (placed)
            row.insert(row.begin() + 1, p.kernelHeap.empty()
                                            ? fmt::format("- ({})", kernelPlacementName(p.kernelPlacement))
                                        : p.kernelPlacement == KernelPlacement::Alias
                                            ? fmt::format("/dev/dma_heap/{} (alias)", p.kernelHeap)
                                            : fmt::format("/dev/dma_heap/{}", p.kernelHeap));
        t.addRow(std::move(row));
    }
    return fmt::format("heaps of {}:\n", printableText(platform)) + t.render();
}

json heapsJson(const Context& context) {
    return heapsJson(context.platform().name, heapInfos(context));
}

std::string renderHeaps(const Context& context) {
    return renderHeaps("platform " + context.platform().name, heapInfos(context));
}

// -------------------------------------------------------------- bufinfo

json bufinfoJson(const std::vector<BufferInfo>& buffers) {
    json list = json::array();
    for (const BufferInfo& b : buffers) {
        json chunks = json::array();
        for (const PhysChunk& c : b.chunks)
            chunks.push_back({{"address", c.address}, {"size", c.size}});
        json mappings = json::array();
        for (const MappingInfo& m : b.mappings) {
            json segs = json::array();
            for (const SgEntry& s : m.segments)
                segs.push_back({{"dma_address", s.dmaAddress}, {"length", s.length}});
            mappings.push_back({{"device", text(m.device)},
                                {"direction", dmaDirectionName(m.direction)},
                                {"domain", m.domain.empty() ? json(nullptr) : text(m.domain)},
                                {"segment_count", m.segments.size()},
                                {"segments", segs}});
        }
        list.push_back({{"id", b.id},
                        {"size", b.size},
                        {"flags", b.fdFlags},
                        {"exporter", text(b.exporter)},
                        // The name is bytes any client chose: "name" is them
                        // as UTF-8 (U+FFFD for each byte of an ill-formed
                        // sequence), "name_hex" every byte, losslessly.
                        {"name", text(b.name)},
                        {"name_hex", hexBytes(b.name)},
                        {"inode", b.inode},
                        {"references", b.references},
                        {"has_storage", b.hasStorage},
                        {"in_host_kernel", b.inHostKernel},
                        {"heap", b.heap.empty() ? json(nullptr) : text(b.heap)},
                        {"chunk_count", b.chunks.size()},
                        {"chunks", chunks},
                        {"attached_devices", texts(b.attachedDevices)},
                        {"mappings", mappings},
                        {"cpu_access_depth", b.cpuAccessDepth},
                        {"cache_maintenance_ops", b.cacheMaintenanceOps},
                        {"sync_violations", b.syncViolations},
                        {"exporter_state", text(b.exporterState)}});
    }
    return {{"buffers", list}};
}

std::string renderBufinfo(const std::vector<BufferInfo>& buffers) {
    uint64_t total = 0;
    for (const BufferInfo& b : buffers)
        total += b.size;
    std::string out = fmt::format("dma-buf objects: {} buffers, {}\n", buffers.size(), formatSize(total));
    TextTable t({"id", "size", "flags", "exporter", "name", "ino", "refs", "storage", "attached"});
    for (const BufferInfo& b : buffers) {
        std::string storage = "deferred";
        if (b.hasStorage && b.inHostKernel)
            storage = fmt::format("{} (host kernel)", b.heap);
        else if (b.hasStorage)
            storage = fmt::format("{} ({} chunk{})", b.heap, b.chunks.size(), b.chunks.size() == 1 ? "" : "s");
        std::string attached;
        for (const std::string& d : b.attachedDevices)
            attached += (attached.empty() ? "" : ",") + d;
        t.addRow({std::to_string(b.id), formatSize(b.size), fmt::format("{:08o}", b.fdFlags), b.exporter,
                  b.name.empty() ? "-" : b.name, std::to_string(b.inode), std::to_string(b.references), storage,
                  attached.empty() ? "-" : attached});
    }
    out += t.render();
    bool anyMapping = false;
    TextTable m({"buffer", "device", "direction", "via", "segments", "first segment"});
    for (const BufferInfo& b : buffers)
        for (const MappingInfo& mi : b.mappings) {
            anyMapping = true;
            std::string first = mi.segments.empty()
                                    ? "-"
                                    : fmt::format("{} + {}", formatAddress(mi.segments.front().dmaAddress),
                                                  formatSize(mi.segments.front().length));
            m.addRow({std::to_string(b.id), mi.device, dmaDirectionName(mi.direction),
                      mi.domain.empty() ? "direct" : "iommu " + mi.domain, std::to_string(mi.segments.size()), first});
        }
    if (anyMapping)
        out += "\nmappings:\n" + m.render();
    return out;
}

// -------------------------------------------------------------- domains

json domainsJson(const std::vector<IommuDomainStats>& domains) {
    json list = json::array();
    for (const IommuDomainStats& d : domains)
        list.push_back({{"name", text(d.name)},
                        {"page_size", d.pageSize},
                        {"aperture_base", d.apertureBase},
                        {"aperture_size", d.apertureSize},
                        {"hits", d.hits},
                        {"misses", d.misses},
                        {"evictions", d.evictions},
                        {"faults", d.faults},
                        {"used_iova_bytes", d.usedIovaBytes},
                        {"mapped_bytes", d.mappedBytes},
                        {"mapping_count", d.mappingCount},
                        {"in_use_count", d.inUseCount}});
    return {{"domains", list}};
}

std::string renderDomains(const std::vector<IommuDomainStats>& domains) {
    TextTable t({"domain", "hits", "misses", "evictions", "faults", "mappings", "in use", "iova used"});
    for (const IommuDomainStats& d : domains)
        t.addRow({d.name, std::to_string(d.hits), std::to_string(d.misses), std::to_string(d.evictions),
                  std::to_string(d.faults), std::to_string(d.mappingCount), std::to_string(d.inUseCount),
                  formatSize(d.usedIovaBytes)});
    return "iommu domains:\n" + t.render();
}

json statsJson(const AllocatorStats& stats) {
    json heaps = json::array();
    for (const HeapInfo& heap : stats.heaps) {
        json s = heapStatsJson(heap.stats);
        s["free_bytes"] = heap.freeBytes;
        heaps.push_back({{"name", text(heap.name)}, {"stats", s}});
    }
    json pools = json::array();
    for (const ReadyPoolStats& p : stats.readyPools)
        pools.push_back({{"heap", p.heap.empty() ? json(nullptr) : json(text(p.heap))},
                         {"ready_bytes", p.readyBytes},
                         {"ready_buffers", p.readyBuffers},
                         {"hits", p.hits},
                         {"misses", p.misses},
                         {"refills", p.refills},
                         {"refill_ns", p.refillNanos}});
    return {{"heaps", heaps},
            {"domains", domainsJson(stats.domains)["domains"]},
            {"live_buffers", stats.liveBuffers},
            {"lifetime_bugs", texts(stats.lifetimeBugs)},
            {"ready_memory", pools}};
}

std::string renderReadyPools(const std::vector<ReadyPoolStats>& pools) {
    TextTable t({"heap", "ready", "buffers", "hits", "misses", "refills", "refill time"});
    for (const ReadyPoolStats& p : pools)
        t.addRow({p.heap.empty() ? "(all)" : p.heap, formatSize(p.readyBytes), std::to_string(p.readyBuffers),
                  std::to_string(p.hits), std::to_string(p.misses), std::to_string(p.refills),
                  fmt::format("{:.1f} ms", static_cast<double>(p.refillNanos) / 1e6)});
    return "ready memory:\n" + t.render();
}

std::string renderStats(const std::string& where, const AllocatorStats& stats) {
    std::string out = fmt::format("cenalloc statistics ({}): {} live buffer{}\n\n", printableText(where),
                                  stats.liveBuffers, stats.liveBuffers == 1 ? "" : "s");
    TextTable t({"heap", "live", "live bytes", "watermark", "failed", "allocations", "free"});
    for (const HeapInfo& heap : stats.heaps)
        t.addRow({heap.name, std::to_string(heap.stats.liveBuffers), formatSize(heap.stats.liveBytes),
                  formatSize(heap.stats.watermarkBytes), std::to_string(heap.stats.failedAllocations),
                  std::to_string(heap.stats.totalAllocations), formatSize(heap.freeBytes)});
    out += t.render();
    if (!stats.domains.empty()) {
        out += "\n";
        out += renderDomains(stats.domains);
    }
    // The whole pool's line is always last; alone it says nothing was asked.
    if (stats.readyPools.size() > 1) {
        out += "\n";
        out += renderReadyPools(stats.readyPools);
    }
    if (!stats.lifetimeBugs.empty()) {
        out += "\nlifetime bugs:\n";
        for (const std::string& bug : stats.lifetimeBugs)
            out += "  " + printableText(bug) + "\n";
    }
    return out;
}

// -------------------------------------------------------------- explain

json constraintSetJson(const ConstraintSet& set) {
    json j = constraintsJson(set.physical(), true);
    j["address_limit"] = set.addressLimit();
    j["unsatisfiable"] = set.unsatisfiable();
    if (set.unsatisfiable())
        j["unsatisfiable_reason"] = set.unsatisfiableReason();
    j["iova_spaces"] = json::array();
    for (const IovaSpace& s : set.iovaSpaces())
        j["iova_spaces"].push_back({{"iommu", s.iommu},
                                    {"page_size", s.pageSize},
                                    {"aperture_base", s.apertureBase},
                                    {"window_last", s.windowLast()},
                                    {"limits", constraintsJson(s.limits, true)}});
    // Mapping limits are each device's own, never merged.
    j["mappings"] = json::array();
    for (const DeviceMapping& m : set.mappings())
        j["mappings"].push_back({{"device", m.device},
                                 {"domain", m.direct() ? json(nullptr) : json(m.domain)},
                                 {"max_segment_size", m.maxSegmentSize},
                                 {"segment_boundary_mask", m.segmentBoundaryMask},
                                 {"max_segment_count", m.maxSegmentCount}});
    return j;
}

json explanationJson(const Explanation& e) {
    json heaps = json::array();
    for (const HeapExplanation& h : e.heaps) {
        json reasons = json::object();
        for (size_t i = 0; i < h.devices.size() && i < e.devices.size(); ++i)
            if (!h.devices[i].accepted())
                reasons[e.devices[i]] = h.devices[i].reason();
        json hj{{"name", h.name}, {"accepted", h.accepted}, {"reasons", reasons}, {"private_to", h.owners}};
        if (!h.combined.accepted()) {
            hj["combined_reason"] = h.combined.reason();
            hj["refusal"] = refusalName(h.combined.refusal());
        }
        heaps.push_back(std::move(hj));
    }
    json j{{"devices", e.devices},
           {"size", e.size},
           {"cpu_access", cpuAccessName(e.cpuAccess)},
           {"satisfiable", e.satisfiable},
           {"heap", e.heap ? json(*e.heap) : json(nullptr)},
           {"kernel_heap", e.kernelHeap ? text(fmt::format("/dev/dma_heap/{}", *e.kernelHeap)) : json(nullptr)},
           {"ranking", e.ranking},
           {"prefer_cached", e.preferCached},
           {"cache_policy", e.cachePolicy},
           {"allocating_device", e.allocatingDevice ? json(*e.allocatingDevice) : json(nullptr)},
           {"allocating_reason", e.allocatingReason},
           {"constraints", constraintSetJson(e.constraints)},
           {"heaps", heaps},
           {"notes", texts(e.notes)}};
    json facts = json::array();
    for (const DeviceFacts& f : e.facts)
        facts.push_back({{"device", text(f.device)},
                         {"source", f.source.empty() ? json(nullptr) : text(f.source)},
                         {"assumed", texts(f.assumed)},
                         {"restricted_pool", f.restrictedPool.empty() ? json(nullptr) : json(f.restrictedPool)}});
    j["facts"] = std::move(facts);
    if (e.conflict) {
        json hs = json::array();
        for (const ConflictRefusal& r : e.conflict->heaps)
            hs.push_back(json{
                {"heap", r.heap}, {"device", r.device.empty() ? json(nullptr) : json(r.device)}, {"reason", r.reason}});
        j["conflict"] = {{"devices", e.conflict->devices}, {"reason", e.conflict->reason}, {"heaps", hs}};
    } else {
        j["conflict"] = nullptr;
    }
    return j;
}

std::string renderExplanation(const Explanation& e) {
    std::string devices;
    for (const std::string& d : e.devices)
        devices += (devices.empty() ? "" : ", ") + printableText(d);
    std::string out = fmt::format("buffer of {} shared by {} (cpu access: {})\n\n", formatSize(e.size), devices,
                                  cpuAccessName(e.cpuAccess));
    out += "placement (intersected) and each device's mapping:\n";
    std::string described = describe(e.constraints);
    size_t start = 0;
    while (start < described.size()) {
        size_t end = described.find('\n', start);
        if (end == std::string::npos)
            end = described.size();
        out += "  " + described.substr(start, end - start) + "\n";
        start = end + 1;
    }
    out += "\nheaps:\n";
    for (const HeapExplanation& h : e.heaps) {
        if (h.accepted) {
            out += fmt::format("  {:<24} accepted\n", h.name);
            continue;
        }
        bool anyDevice = false;
        for (size_t i = 0; i < h.devices.size() && i < e.devices.size(); ++i)
            if (!h.devices[i].accepted()) {
                out += fmt::format("  {:<24} refused for {}: {}\n", anyDevice ? "" : h.name, e.devices[i],
                                   h.devices[i].reason());
                anyDevice = true;
            }
        if (!anyDevice)
            out += fmt::format("  {:<24} refused for the devices together: {}\n", h.name, h.combined.reason());
    }
    out += "\n";
    if (e.satisfiable) {
        out += fmt::format("chosen heap:       {}\n", *e.heap);
        if (e.kernelHeap)
            out += fmt::format("kernel heap:       /dev/dma_heap/{}\n", printableText(*e.kernelHeap));
        for (const HeapExplanation& h : e.heaps)
            if (h.name == *e.heap && !h.owners.empty())
                out += fmt::format("                   a pool private to {}: {} driver allocates it from its "
                                   "memory-region; there is no /dev/dma_heap node for it\n",
                                   fmt::join(h.owners, ", "), h.owners.size() == 1 ? "its" : "their");
        if (e.ranking.size() > 1) {
            std::string rest;
            for (size_t i = 1; i < e.ranking.size(); ++i)
                rest += (rest.empty() ? "" : ", ") + e.ranking[i];
            out += fmt::format("then:              {}\n", rest);
        }
        out += fmt::format("cache policy:      {}\n", e.cachePolicy);
        out += fmt::format("allocating device: {} ({})\n", e.allocatingDevice.value_or("none"), e.allocatingReason);
    } else {
        out += "unsatisfiable: no heap serves every device\n";
        if (e.conflict)
            out += fmt::format("conflict:          {}\n", e.conflict->reason);
    }
    bool anySource =
        std::any_of(e.facts.begin(), e.facts.end(), [](const DeviceFacts& f) { return !f.source.empty(); });
    if (anySource || !e.notes.empty()) {
        out += "\nfacts:\n";
        for (const DeviceFacts& f : e.facts)
            if (!f.source.empty())
                out += fmt::format("  {}: {}\n", printableText(f.device), printableText(f.source));
        for (const std::string& note : e.notes)
            out += fmt::format("  note: {}\n", printableText(note));
    }
    return out;
}

json allocatedForJson(const SessionAllocatedFor& c, const AllocatedFdFacts& fd) {
    json devices = json::array();
    for (const AllocForDevice& d : c.devices)
        devices.push_back({{"name", text(d.name)},
                           {"sysfs", d.sysfsPath.empty() ? json(nullptr) : text(d.sysfsPath)},
                           {"driver", d.driver.empty() ? json(nullptr) : text(d.driver)}});
    return {{"heap", text(c.heap)},
            {"kernel_heap", c.kernelHeap.empty() ? json(nullptr) : text(fmt::format("/dev/dma_heap/{}", c.kernelHeap))},
            {"size", c.size},
            {"fd", fd.fd},
            {"inode", fd.inode},
            {"exporter", text(fd.exporter)},
            {"name", text(c.name)},
            {"reason", text(c.reason)},
            {"devices", devices}};
}

std::string renderAllocatedFor(const SessionAllocatedFor& c, const AllocatedFdFacts& fd) {
    auto orDash = [](const std::string& s) { return s.empty() ? std::string("-") : printableText(s); };
    std::string out;
    out += fmt::format("heap: {}\n", printableText(c.heap));
    out += fmt::format("kernel heap: {}\n", c.kernelHeap.empty()
                                                ? "- (the model's storage: a sealed memfd)"
                                                : printableText(fmt::format("/dev/dma_heap/{}", c.kernelHeap)));
    out += fmt::format("size: {} ({} bytes)\n", formatSize(c.size), c.size);
    out += fmt::format("fd: {}\n", fd.fd);
    out += fmt::format("inode: {}\n", fd.inode);
    out += fmt::format("exporter: {}\n", orDash(fd.exporter));
    out += fmt::format("name: {}\n", orDash(c.name));
    out += fmt::format("reason: {}\n", printableText(c.reason));
    for (const AllocForDevice& d : c.devices)
        out += fmt::format("device: {} sysfs={} driver={}\n", printableText(d.name), orDash(d.sysfsPath),
                           orDash(d.driver));
    return out;
}

} // namespace cenalloc
