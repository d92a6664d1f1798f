// SPDX-License-Identifier: MIT
// Encoding and decoding of the cenallocd wire protocol.
#include "service/protocol.h"

#include <cerrno>

#include <fmt/format.h>

namespace cenalloc::wire {

namespace {

constexpr size_t padded(size_t n) {
    return (n + 7) & ~size_t{7};
}

uint32_t length32(std::string_view s) {
    return static_cast<uint32_t>(s.size());
}

Error malformed(std::string_view what) {
    return Error(EPROTO, fmt::format("malformed reply: {}", what));
}

void encodeHeapProperties(Writer& w, const HeapProperties& p) {
    WireHeapProperties h{};
    h.lowestAddress = p.lowestAddress;
    h.highestAddress = p.highestAddress;
    h.maxChunkSize = p.maxChunkSize;
    h.minChunkSize = p.minChunkSize;
    h.chunkAlignment = p.chunkAlignment;
    h.accessBits = p.accessBits;
    h.capacity = p.capacity;
    h.validHeapFlags = p.validHeapFlags;
    h.kind = static_cast<uint32_t>(p.kind);
    h.flags = (p.contiguous ? kHeapContiguous : 0) | (p.cached ? kHeapCached : 0) |
              (p.honoursAddressLimit ? 0 : kHeapNoAddressLimit);
    h.nameLength = length32(p.name);
    h.descriptionLength = length32(p.description);
    w.put(h);
}

void encodeHeapPropertiesStrings(Writer& w, const HeapProperties& p) {
    w.putBytes(p.name);
    w.putBytes(p.description);
}

Result<HeapProperties> decodeHeapProperties(const WireHeapProperties& h) {
    if (h.kind > static_cast<uint32_t>(HeapKind::Kernel))
        return malformed(fmt::format("heap kind {}", h.kind));
    HeapProperties p;
    p.lowestAddress = h.lowestAddress;
    p.highestAddress = h.highestAddress;
    p.maxChunkSize = h.maxChunkSize;
    p.minChunkSize = h.minChunkSize;
    p.chunkAlignment = h.chunkAlignment;
    p.accessBits = h.accessBits;
    p.capacity = h.capacity;
    p.validHeapFlags = h.validHeapFlags;
    p.kind = static_cast<HeapKind>(h.kind);
    p.contiguous = h.flags & kHeapContiguous;
    p.cached = h.flags & kHeapCached;
    p.honoursAddressLimit = !(h.flags & kHeapNoAddressLimit);
    return p;
}

Result<void> decodeHeapPropertiesStrings(Reader& r, const WireHeapProperties& h, HeapProperties& p) {
    auto name = r.getString(h.nameLength);
    if (!name)
        return name.error();
    auto description = r.getString(h.descriptionLength);
    if (!description)
        return description.error();
    p.name = std::move(*name);
    p.description = std::move(*description);
    return {};
}

Result<DmaDirection> decodeDirection(uint32_t value) {
    if (value > static_cast<uint32_t>(DmaDirection::FromDevice))
        return malformed(fmt::format("direction {}", value));
    return static_cast<DmaDirection>(value);
}

Result<SgTable> decodeSegments(Reader& r, uint32_t count) {
    if (auto ok = r.checkCount(count, sizeof(WireSgEntry)); !ok)
        return ok.error();
    SgTable table;
    table.reserve(count);
    for (uint32_t i = 0; i < count; ++i) {
        auto e = r.get<WireSgEntry>();
        if (!e)
            return e.error();
        table.push_back({e->dmaAddress, e->length});
    }
    return table;
}

Result<uint32_t> getCount(Reader& r, size_t elementSize) {
    auto list = r.get<ListHeader>();
    if (!list)
        return list.error();
    if (auto ok = r.checkCount(list->count, elementSize); !ok)
        return ok.error();
    return list->count;
}

} // namespace

const char* opName(uint16_t op) {
    switch (static_cast<Op>(op)) {
    case Op::Handshake: return "handshake";
    case Op::ListHeaps: return "list-heaps";
    case Op::Allocate: return "allocate";
    case Op::Create: return "create";
    case Op::Import: return "import";
    case Op::Release: return "release";
    case Op::Attach: return "attach";
    case Op::Detach: return "detach";
    case Op::Map: return "map";
    case Op::Unmap: return "unmap";
    case Op::BeginCpuAccess: return "begin-cpu-access";
    case Op::EndCpuAccess: return "end-cpu-access";
    case Op::SetName: return "set-name";
    case Op::Bufinfo: return "bufinfo";
    case Op::Stats: return "stats";
    case Op::Platform: return "platform";
    }
    return "?";
}

bool opTakesFd(Op op) {
    switch (op) {
    case Op::Import:
    case Op::Release:
    case Op::Attach:
    case Op::BeginCpuAccess:
    case Op::EndCpuAccess:
    case Op::SetName: return true;
    default: return false;
    }
}

void Writer::putBytes(std::string_view text) {
    size_t at = bytes_.size();
    bytes_.resize(at + padded(text.size()), std::byte{0});
    if (!text.empty())
        std::memcpy(bytes_.data() + at, text.data(), text.size());
}

void Writer::pad() {
    bytes_.resize(padded(bytes_.size()), std::byte{0});
}

Result<std::string> Reader::getString(uint32_t length) {
    size_t total = padded(length);
    if (bytes_.size() - pos_ < total)
        return truncated(total);
    if (length == 0)
        return std::string(); // bytes_ may be empty, its data() null
    std::string text(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
    pos_ += total;
    return text;
}

Result<void> Reader::checkCount(uint64_t count, size_t elementSize) const {
    if (elementSize != 0 && count > remaining() / elementSize)
        return Error(EPROTO,
                     fmt::format("malformed reply: {} elements cannot fit in the {} bytes left", count, remaining()));
    return {};
}

Error Reader::truncated(size_t wanted) const {
    return Error(EPROTO, fmt::format("malformed reply: {} bytes wanted at offset {}, {} left", wanted, pos_,
                                     bytes_.size() - pos_));
}

Result<void> putName(char* field, size_t fieldSize, std::string_view name) {
    if (name.size() > fieldSize)
        return Error(ENAMETOOLONG, fmt::format("name '{}' is longer than the protocol's {} bytes", name, fieldSize));
    if (name.find('\0') != std::string_view::npos)
        return Error(EINVAL, "a name may not contain a NUL byte");
    std::memset(field, 0, fieldSize);
    if (!name.empty())
        std::memcpy(field, name.data(), name.size());
    return {};
}

Result<std::string> getName(const char* field, size_t fieldSize, std::string_view what) {
    size_t n = 0;
    while (n < fieldSize && field[n] != '\0')
        ++n;
    for (size_t i = n; i < fieldSize; ++i)
        if (field[i] != '\0')
            return Error(EINVAL, fmt::format("{}: non-zero bytes after the terminating NUL", what));
    return std::string(field, n);
}

Result<void> checkEmptyPayload(std::span<const std::byte> payload) {
    for (std::byte b : payload)
        if (b != std::byte{0})
            return Error(EINVAL, "the request has non-zero bytes past the end of its struct");
    return {};
}

MessageHeader makeHeader(Op op, uint32_t payloadSize, uint16_t fdCount, uint32_t sequence) {
    MessageHeader h{};
    h.magic = kMagic;
    h.version = kVersion;
    h.opcode = static_cast<uint16_t>(op);
    h.payloadSize = payloadSize;
    h.fdCount = fdCount;
    h.sequence = sequence;
    return h;
}

// ---------------------------------------------------------------- heaps

void encodeHeaps(Writer& w, const std::vector<HeapInfo>& heaps) {
    w.put(ListHeader{static_cast<uint32_t>(heaps.size()), 0});
    for (const HeapInfo& heap : heaps) {
        encodeHeapProperties(w, heap.properties);
        WireHeapStats s{};
        s.liveBuffers = heap.stats.liveBuffers;
        s.liveBytes = heap.stats.liveBytes;
        s.watermarkBytes = heap.stats.watermarkBytes;
        s.failedAllocations = heap.stats.failedAllocations;
        s.totalAllocations = heap.stats.totalAllocations;
        s.freeBytes = heap.freeBytes;
        w.put(s);
        encodeHeapPropertiesStrings(w, heap.properties);
    }
}

Result<std::vector<HeapInfo>> decodeHeaps(Reader& r) {
    auto count = getCount(r, sizeof(WireHeapProperties) + sizeof(WireHeapStats));
    if (!count)
        return count.error();
    std::vector<HeapInfo> heaps;
    heaps.reserve(*count);
    for (uint32_t i = 0; i < *count; ++i) {
        auto h = r.get<WireHeapProperties>();
        if (!h)
            return h.error();
        auto s = r.get<WireHeapStats>();
        if (!s)
            return s.error();
        auto props = decodeHeapProperties(*h);
        if (!props)
            return props.error();
        HeapInfo info;
        info.properties = std::move(*props);
        if (auto ok = decodeHeapPropertiesStrings(r, *h, info.properties); !ok)
            return ok.error();
        info.name = info.properties.name;
        info.stats.liveBuffers = s->liveBuffers;
        info.stats.liveBytes = s->liveBytes;
        info.stats.watermarkBytes = s->watermarkBytes;
        info.stats.failedAllocations = s->failedAllocations;
        info.stats.totalAllocations = s->totalAllocations;
        info.freeBytes = s->freeBytes;
        heaps.push_back(std::move(info));
    }
    return heaps;
}

// ---------------------------------------------------------------- stats

void encodeStats(Writer& w, const AllocatorStats& stats) {
    encodeHeaps(w, stats.heaps);
    w.put(ListHeader{static_cast<uint32_t>(stats.domains.size()), 0});
    for (const IommuDomainStats& d : stats.domains) {
        WireDomainStats s{};
        s.pageSize = d.pageSize;
        s.apertureBase = d.apertureBase;
        s.apertureSize = d.apertureSize;
        s.hits = d.hits;
        s.misses = d.misses;
        s.evictions = d.evictions;
        s.faults = d.faults;
        s.usedIovaBytes = d.usedIovaBytes;
        s.cachedIovaBytes = d.cachedIovaBytes;
        s.mappedBytes = d.mappedBytes;
        s.mappingCount = d.mappingCount;
        s.inUseCount = d.inUseCount;
        s.nameLength = length32(d.name);
        w.put(s);
        w.putBytes(d.name);
    }
    w.put(uint64_t{stats.liveBuffers});
    w.put(ListHeader{static_cast<uint32_t>(stats.lifetimeBugs.size()), 0});
    for (const std::string& bug : stats.lifetimeBugs) {
        w.put(ListHeader{length32(bug), 0});
        w.putBytes(bug);
    }
    const ServiceLimits& l = stats.limits;
    w.put(WireLimits{l.heldBytes, l.heldBuffers, l.quotaBytes, l.quotaBuffers, l.trackedBuffers, l.maxBuffers,
                     l.rootReserve, 0});
}

Result<AllocatorStats> decodeStats(Reader& r) {
    AllocatorStats stats;
    auto heaps = decodeHeaps(r);
    if (!heaps)
        return heaps.error();
    stats.heaps = std::move(*heaps);
    auto domains = getCount(r, sizeof(WireDomainStats));
    if (!domains)
        return domains.error();
    for (uint32_t i = 0; i < *domains; ++i) {
        auto s = r.get<WireDomainStats>();
        if (!s)
            return s.error();
        auto name = r.getString(s->nameLength);
        if (!name)
            return name.error();
        IommuDomainStats d;
        d.name = std::move(*name);
        d.pageSize = s->pageSize;
        d.apertureBase = s->apertureBase;
        d.apertureSize = s->apertureSize;
        d.hits = s->hits;
        d.misses = s->misses;
        d.evictions = s->evictions;
        d.faults = s->faults;
        d.usedIovaBytes = s->usedIovaBytes;
        d.cachedIovaBytes = s->cachedIovaBytes;
        d.mappedBytes = s->mappedBytes;
        d.mappingCount = s->mappingCount;
        d.inUseCount = s->inUseCount;
        stats.domains.push_back(std::move(d));
    }
    auto live = r.get<uint64_t>();
    if (!live)
        return live.error();
    stats.liveBuffers = *live;
    auto bugs = getCount(r, sizeof(ListHeader));
    if (!bugs)
        return bugs.error();
    for (uint32_t i = 0; i < *bugs; ++i) {
        auto length = r.get<ListHeader>();
        if (!length)
            return length.error();
        auto bug = r.getString(length->count);
        if (!bug)
            return bug.error();
        stats.lifetimeBugs.push_back(std::move(*bug));
    }
    if (r.remaining() == 0)
        return stats; // a daemon from before the limits
    auto l = r.get<WireLimits>();
    if (!l)
        return l.error();
    stats.limits = {l->heldBytes,      l->heldBuffers, l->quotaBytes, l->quotaBuffers,
                    l->trackedBuffers, l->maxBuffers,  l->rootReserve};
    return stats;
}

// -------------------------------------------------------------- bufinfo

void encodeBufinfo(Writer& w, const std::vector<BufferInfo>& buffers) {
    w.put(ListHeader{static_cast<uint32_t>(buffers.size()), 0});
    for (const BufferInfo& b : buffers) {
        WireBufferInfo h{};
        h.id = b.id;
        h.size = b.size;
        h.inode = b.inode;
        h.references = b.references;
        h.cacheMaintenanceOps = b.cacheMaintenanceOps;
        h.syncViolations = b.syncViolations;
        h.fdFlags = b.fdFlags;
        h.cpuAccessDepth = b.cpuAccessDepth;
        h.flags = (b.hasStorage ? kBufferHasStorage : 0) | (b.inHostKernel ? kBufferInHostKernel : 0);
        h.chunkCount = static_cast<uint32_t>(b.chunks.size());
        h.deviceCount = static_cast<uint32_t>(b.attachedDevices.size());
        h.mappingCount = static_cast<uint32_t>(b.mappings.size());
        h.exporterLength = length32(b.exporter);
        h.nameLength = length32(b.name);
        h.heapLength = length32(b.heap);
        h.exporterStateLength = length32(b.exporterState);
        w.put(h);
        w.putBytes(b.exporter);
        w.putBytes(b.name);
        w.putBytes(b.heap);
        w.putBytes(b.exporterState);
        for (const PhysChunk& c : b.chunks)
            w.put(WirePhysChunk{c.address, c.size});
        for (const std::string& device : b.attachedDevices) {
            w.put(ListHeader{length32(device), 0});
            w.putBytes(device);
        }
        for (const MappingInfo& m : b.mappings) {
            WireMappingInfo mh{};
            mh.direction = static_cast<uint32_t>(m.direction);
            mh.segmentCount = static_cast<uint32_t>(m.segments.size());
            mh.deviceLength = length32(m.device);
            mh.domainLength = length32(m.domain);
            w.put(mh);
            w.putBytes(m.device);
            w.putBytes(m.domain);
            for (const SgEntry& e : m.segments)
                w.put(WireSgEntry{e.dmaAddress, e.length});
        }
    }
}

Result<std::vector<BufferInfo>> decodeBufinfo(Reader& r) {
    auto count = getCount(r, sizeof(WireBufferInfo));
    if (!count)
        return count.error();
    std::vector<BufferInfo> buffers;
    buffers.reserve(*count);
    for (uint32_t i = 0; i < *count; ++i) {
        auto h = r.get<WireBufferInfo>();
        if (!h)
            return h.error();
        BufferInfo b;
        b.id = h->id;
        b.size = h->size;
        b.inode = h->inode;
        b.references = static_cast<long>(h->references);
        b.cacheMaintenanceOps = h->cacheMaintenanceOps;
        b.syncViolations = h->syncViolations;
        b.fdFlags = h->fdFlags;
        b.cpuAccessDepth = h->cpuAccessDepth;
        b.hasStorage = h->flags & kBufferHasStorage;
        b.inHostKernel = h->flags & kBufferInHostKernel;
        for (auto [length, out] :
             {std::pair{h->exporterLength, &b.exporter}, std::pair{h->nameLength, &b.name},
              std::pair{h->heapLength, &b.heap}, std::pair{h->exporterStateLength, &b.exporterState}}) {
            auto text = r.getString(length);
            if (!text)
                return text.error();
            *out = std::move(*text);
        }
        if (auto ok = r.checkCount(h->chunkCount, sizeof(WirePhysChunk)); !ok)
            return ok.error();
        for (uint32_t c = 0; c < h->chunkCount; ++c) {
            auto chunk = r.get<WirePhysChunk>();
            if (!chunk)
                return chunk.error();
            b.chunks.push_back({chunk->address, chunk->size});
        }
        if (auto ok = r.checkCount(h->deviceCount, sizeof(ListHeader)); !ok)
            return ok.error();
        for (uint32_t d = 0; d < h->deviceCount; ++d) {
            auto length = r.get<ListHeader>();
            if (!length)
                return length.error();
            auto device = r.getString(length->count);
            if (!device)
                return device.error();
            b.attachedDevices.push_back(std::move(*device));
        }
        if (auto ok = r.checkCount(h->mappingCount, sizeof(WireMappingInfo)); !ok)
            return ok.error();
        for (uint32_t m = 0; m < h->mappingCount; ++m) {
            auto mh = r.get<WireMappingInfo>();
            if (!mh)
                return mh.error();
            MappingInfo info;
            auto direction = decodeDirection(mh->direction);
            if (!direction)
                return direction.error();
            info.direction = *direction;
            auto device = r.getString(mh->deviceLength);
            if (!device)
                return device.error();
            auto domain = r.getString(mh->domainLength);
            if (!domain)
                return domain.error();
            auto segments = decodeSegments(r, mh->segmentCount);
            if (!segments)
                return segments.error();
            info.device = std::move(*device);
            info.domain = std::move(*domain);
            info.segments = std::move(*segments);
            b.mappings.push_back(std::move(info));
        }
        buffers.push_back(std::move(b));
    }
    return buffers;
}

// ------------------------------------------------------------- platform

namespace {

// A string list: a ListHeader count, then each string as a ListHeader
// length and its bytes (padded), as a buffer's attached devices travel.
void putStrings(Writer& w, std::span<const std::string> strings) {
    w.put(ListHeader{static_cast<uint32_t>(strings.size()), 0});
    for (const std::string& s : strings) {
        w.put(ListHeader{length32(s), 0});
        w.putBytes(s);
    }
}

Result<std::vector<std::string>> getStrings(Reader& r) {
    auto count = r.get<ListHeader>();
    if (!count)
        return count.error();
    if (auto ok = r.checkCount(count->count, sizeof(ListHeader)); !ok)
        return ok.error();
    std::vector<std::string> out;
    for (uint32_t i = 0; i < count->count; ++i) {
        auto length = r.get<ListHeader>();
        if (!length)
            return length.error();
        auto text = r.getString(length->count);
        if (!text)
            return text.error();
        out.push_back(std::move(*text));
    }
    return out;
}

Result<std::string> getOne(Reader& r) {
    auto length = r.get<ListHeader>();
    if (!length)
        return length.error();
    return r.getString(length->count);
}

void putOne(Writer& w, std::string_view s) {
    w.put(ListHeader{length32(s), 0});
    w.putBytes(s);
}

// The platform's facts beyond the fixed structs, after the heaps: whether
// the board's kernel names its vendor heaps, and which; per region its
// flags (restricted, heap) and owners; per device its IOMMU group,
// restricted pool, fact source and assumed facts; per heap its owners.
void encodePlatformFacts(Writer& w, const Platform& platform, std::span<const HeapProperties> heaps) {
    w.put(ListHeader{platform.vendorHeaps ? 1u : 0u, 0});
    putStrings(w, platform.vendorHeaps ? *platform.vendorHeaps : std::vector<std::string>{});
    for (const ReservedRegion& region : platform.regions) {
        w.put(ListHeader{(region.restricted ? kRegionRestricted : 0) | (region.heap ? kRegionHeap : 0), 0});
        putStrings(w, region.owners);
    }
    for (const Device& device : platform.devices) {
        putOne(w, device.iommuGroup);
        putOne(w, device.restrictedPool);
        putOne(w, device.factSource);
        putStrings(w, device.assumedFacts);
    }
    for (const HeapProperties& h : heaps)
        putStrings(w, h.owners);
}

Result<void> decodePlatformFacts(Reader& r, PlatformBody& body) {
    auto vendor = r.get<ListHeader>();
    if (!vendor)
        return vendor.error();
    if (vendor->count > 1)
        return malformed(fmt::format("vendor heap presence {}", vendor->count));
    auto vendorHeaps = getStrings(r);
    if (!vendorHeaps)
        return vendorHeaps.error();
    if (vendor->count == 1)
        body.platform.vendorHeaps = std::move(*vendorHeaps);
    for (ReservedRegion& region : body.platform.regions) {
        auto flags = r.get<ListHeader>();
        if (!flags)
            return flags.error();
        if (flags->count & ~(kRegionRestricted | kRegionHeap))
            return malformed(fmt::format("region flags {:#x}", flags->count));
        region.restricted = flags->count & kRegionRestricted;
        region.heap = flags->count & kRegionHeap;
        auto owners = getStrings(r);
        if (!owners)
            return owners.error();
        region.owners = std::move(*owners);
    }
    for (Device& device : body.platform.devices) {
        for (std::string* out : {&device.iommuGroup, &device.restrictedPool, &device.factSource}) {
            auto text = getOne(r);
            if (!text)
                return text.error();
            *out = std::move(*text);
        }
        auto assumed = getStrings(r);
        if (!assumed)
            return assumed.error();
        device.assumedFacts = std::move(*assumed);
    }
    for (HeapProperties& heap : body.heaps) {
        auto owners = getStrings(r);
        if (!owners)
            return owners.error();
        heap.owners = std::move(*owners);
    }
    return {};
}

} // namespace

void encodePlatform(Writer& w, const Platform& platform, std::span<const HeapProperties> heaps) {
    WirePlatform h{};
    h.nameLength = length32(platform.name);
    h.descriptionLength = length32(platform.description);
    h.sourceLength = length32(platform.source);
    h.bankCount = static_cast<uint32_t>(platform.memory.size());
    h.regionCount = static_cast<uint32_t>(platform.regions.size());
    h.iommuCount = static_cast<uint32_t>(platform.iommus.size());
    h.deviceCount = static_cast<uint32_t>(platform.devices.size());
    h.heapCount = static_cast<uint32_t>(heaps.size());
    w.put(h);
    w.putBytes(platform.name);
    w.putBytes(platform.description);
    w.putBytes(platform.source);
    for (const MemoryBank& bank : platform.memory) {
        w.put(WireBank{bank.base, bank.size, length32(bank.name), 0});
        w.putBytes(bank.name);
    }
    for (const ReservedRegion& region : platform.regions) {
        WireRegion r{};
        r.base = region.base;
        r.size = region.size;
        r.accessBits = region.accessBits;
        r.kind = static_cast<uint32_t>(region.kind);
        r.flags = (region.noMap ? kRegionNoMap : 0) | (region.isDefault ? kRegionDefault : 0);
        r.nameLength = length32(region.name);
        w.put(r);
        w.putBytes(region.name);
    }
    for (const Iommu& iommu : platform.iommus) {
        w.put(WireIommu{iommu.pageSize, iommu.apertureBase, iommu.apertureSize, length32(iommu.name), 0});
        w.putBytes(iommu.name);
    }
    for (const Device& device : platform.devices) {
        const DmaConstraints& c = device.constraints;
        WireDevice d{};
        d.dmaMask = c.dmaMask;
        d.coherentDmaMask = c.coherentDmaMask;
        d.maxSegmentSize = c.maxSegmentSize;
        d.segmentBoundaryMask = c.segmentBoundaryMask;
        d.alignment = c.alignment;
        d.accessBits = c.accessBits;
        d.maxSegmentCount = c.maxSegmentCount;
        d.flags = (c.contiguous ? kDeviceContiguous : 0) | (c.coherent ? kDeviceCoherent : 0) |
                  (device.iommu ? kDeviceHasIommu : 0);
        d.nameLength = length32(device.name);
        d.descriptionLength = length32(device.description);
        d.iommuLength = device.iommu ? length32(*device.iommu) : 0;
        w.put(d);
        w.putBytes(device.name);
        w.putBytes(device.description);
        w.putBytes(device.iommu ? std::string_view(*device.iommu) : std::string_view());
    }
    for (const HeapProperties& p : heaps)
        encodeHeapProperties(w, p), encodeHeapPropertiesStrings(w, p);
    encodePlatformFacts(w, platform, heaps);
}

Result<PlatformBody> decodePlatform(Reader& r) {
    auto h = r.get<WirePlatform>();
    if (!h)
        return h.error();
    PlatformBody body;
    Platform& p = body.platform;
    for (auto [length, out] : {std::pair{h->nameLength, &p.name}, std::pair{h->descriptionLength, &p.description},
                               std::pair{h->sourceLength, &p.source}}) {
        auto text = r.getString(length);
        if (!text)
            return text.error();
        *out = std::move(*text);
    }
    if (auto ok = r.checkCount(h->bankCount, sizeof(WireBank)); !ok)
        return ok.error();
    for (uint32_t i = 0; i < h->bankCount; ++i) {
        auto b = r.get<WireBank>();
        if (!b)
            return b.error();
        auto name = r.getString(b->nameLength);
        if (!name)
            return name.error();
        p.memory.push_back({std::move(*name), b->base, b->size});
    }
    if (auto ok = r.checkCount(h->regionCount, sizeof(WireRegion)); !ok)
        return ok.error();
    for (uint32_t i = 0; i < h->regionCount; ++i) {
        auto w = r.get<WireRegion>();
        if (!w)
            return w.error();
        if (w->kind > static_cast<uint32_t>(RegionKind::Carveout))
            return malformed(fmt::format("region kind {}", w->kind));
        auto name = r.getString(w->nameLength);
        if (!name)
            return name.error();
        ReservedRegion region;
        region.name = std::move(*name);
        region.kind = static_cast<RegionKind>(w->kind);
        region.base = w->base;
        region.size = w->size;
        region.noMap = w->flags & kRegionNoMap;
        region.isDefault = w->flags & kRegionDefault;
        region.accessBits = w->accessBits;
        p.regions.push_back(std::move(region));
    }
    if (auto ok = r.checkCount(h->iommuCount, sizeof(WireIommu)); !ok)
        return ok.error();
    for (uint32_t i = 0; i < h->iommuCount; ++i) {
        auto w = r.get<WireIommu>();
        if (!w)
            return w.error();
        auto name = r.getString(w->nameLength);
        if (!name)
            return name.error();
        p.iommus.push_back({std::move(*name), w->pageSize, w->apertureBase, w->apertureSize});
    }
    if (auto ok = r.checkCount(h->deviceCount, sizeof(WireDevice)); !ok)
        return ok.error();
    for (uint32_t i = 0; i < h->deviceCount; ++i) {
        auto w = r.get<WireDevice>();
        if (!w)
            return w.error();
        Device d;
        for (auto [length, out] :
             {std::pair{w->nameLength, &d.name}, std::pair{w->descriptionLength, &d.description}}) {
            auto text = r.getString(length);
            if (!text)
                return text.error();
            *out = std::move(*text);
        }
        auto iommu = r.getString(w->iommuLength);
        if (!iommu)
            return iommu.error();
        if (w->flags & kDeviceHasIommu)
            d.iommu = std::move(*iommu);
        DmaConstraints& c = d.constraints;
        c.dmaMask = w->dmaMask;
        c.coherentDmaMask = w->coherentDmaMask;
        c.maxSegmentSize = w->maxSegmentSize;
        c.segmentBoundaryMask = w->segmentBoundaryMask;
        c.alignment = w->alignment;
        c.accessBits = w->accessBits;
        c.maxSegmentCount = w->maxSegmentCount;
        c.contiguous = w->flags & kDeviceContiguous;
        c.coherent = w->flags & kDeviceCoherent;
        p.devices.push_back(std::move(d));
    }
    if (auto ok = r.checkCount(h->heapCount, sizeof(WireHeapProperties)); !ok)
        return ok.error();
    for (uint32_t i = 0; i < h->heapCount; ++i) {
        auto w = r.get<WireHeapProperties>();
        if (!w)
            return w.error();
        auto props = decodeHeapProperties(*w);
        if (!props)
            return props.error();
        if (auto ok = decodeHeapPropertiesStrings(r, *w, *props); !ok)
            return ok.error();
        body.heaps.push_back(std::move(*props));
    }
    if (auto ok = decodePlatformFacts(r, body); !ok)
        return ok.error();
    return body;
}

// -------------------------------------------------------------- mapping

void encodeMapping(Writer& w, const SessionMapping& mapping) {
    MapReply h{};
    h.mapping = mapping.id;
    h.direction = static_cast<uint32_t>(mapping.direction);
    h.segmentCount = static_cast<uint32_t>(mapping.segments.size());
    w.put(h);
    for (const SgEntry& e : mapping.segments)
        w.put(WireSgEntry{e.dmaAddress, e.length});
}

Result<SessionMapping> decodeMapping(Reader& r) {
    auto h = r.get<MapReply>();
    if (!h)
        return h.error();
    auto direction = decodeDirection(h->direction);
    if (!direction)
        return direction.error();
    auto segments = decodeSegments(r, h->segmentCount);
    if (!segments)
        return segments.error();
    SessionMapping m;
    m.id = h->mapping;
    m.direction = *direction;
    m.segments = std::move(*segments);
    return m;
}

} // namespace cenalloc::wire
