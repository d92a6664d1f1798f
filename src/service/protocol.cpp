// SPDX-License-Identifier: MIT
// The cenallocd wire encoding: each reply body described once, for encoding and decoding alike.
#include "service/protocol.h"

#include <algorithm>
#include <cerrno>
#include <optional>

#include <fmt/format.h>

namespace cenalloc::wire {

namespace {

constexpr size_t padded(size_t n) {
    return (n + 7) & ~size_t{7};
}

Error malformed(std::string_view what) {
    return Error(EPROTO, fmt::format("malformed reply: {}", what));
}

// ------------------------------------------------------------- the codec
//
// A body's description is a function template transfer(io, value) naming
// its fields in wire order. It runs with one of three kinds of io:
//  - Encoder: value is const, every field is written;
//  - Decoder: value is filled from the bytes, the first failure sticks and
//    the rest of the description reads nothing;
//  - Sizer: counts the bytes an element takes at least (its fixed part),
//    so that a count read from the wire is checked against the bytes left
//    before anything is sized from it.
// Fields are scalars (u64, u32, i64), reserved zeros, enumerations and flag
// words; a string or a list whose length or count sits in a fixed part and
// whose contents follow later is a Tail (length()/count(), then
// text()/each()); a string or list that carries its own {u32 n, u32 0}
// header is lstring()/list().

/// A length or count written in a fixed part, for contents that follow.
struct Tail {
    uint32_t n = 0;
};

/// One bit of a flag word and the bool it stands for (inverted: set when
/// the bool is false).
template <typename B> struct Bit {
    B& value;
    uint32_t mask;
    bool inverted = false;
};
template <typename B> Bit<B> bit(B& value, uint32_t mask) {
    return {value, mask, false};
}
template <typename B> Bit<B> notBit(B& value, uint32_t mask) {
    return {value, mask, true};
}

class Sizer;

class Encoder {
public:
    static constexpr bool kDecoding = false;
    explicit Encoder(Writer& w) : w_(w) {}

    template <typename T> void u64(const T& v) { w_.put(static_cast<uint64_t>(v)); }
    template <typename T> void u32(const T& v) { w_.put(static_cast<uint32_t>(v)); }
    template <typename T> void i64(const T& v) { w_.put(static_cast<int64_t>(v)); }
    void zero32() { w_.put(uint32_t{0}); }
    void zero64() { w_.put(uint64_t{0}); }
    template <typename E> void enum32(const E& e, E, std::string_view) { u32(e); }
    template <typename... B> void flags32(std::string_view, uint32_t, const Bit<B>&... bits) {
        w_.put((uint32_t{0} | ... | ((bool(bits.value) != bits.inverted) ? bits.mask : 0u)));
    }
    void boolean32(const bool& b, std::string_view) { w_.put(uint32_t{b ? 1u : 0u}); }
    Tail length(const std::string& s) { return count(s); }
    template <typename V> Tail count(const V& v) {
        w_.put(static_cast<uint32_t>(v.size()));
        return {static_cast<uint32_t>(v.size())};
    }
    void text(const std::string& s, Tail) { w_.putBytes(s); }
    template <typename V, typename F> void each(const V& v, Tail, F f) {
        for (const auto& element : v)
            f(*this, element);
    }
    void lstring(const std::string& s) {
        w_.put(ListHeader{static_cast<uint32_t>(s.size()), 0});
        w_.putBytes(s);
    }
    template <typename V, typename F> void list(const V& v, F f) {
        w_.put(ListHeader{static_cast<uint32_t>(v.size()), 0});
        each(v, {}, f);
    }
    void strings(const std::vector<std::string>& v) {
        list(v, [](auto& sub, const std::string& s) { sub.lstring(s); });
    }
    /// Whether more follows: always, when writing.
    bool more() const { return true; }

private:
    Writer& w_;
};

class Decoder {
public:
    static constexpr bool kDecoding = true;
    explicit Decoder(Reader& r) : r_(r) {}

    template <typename T> void u64(T& v) { v = static_cast<T>(read<uint64_t>()); }
    template <typename T> void u32(T& v) { v = static_cast<T>(read<uint32_t>()); }
    template <typename T> void i64(T& v) { v = static_cast<T>(read<int64_t>()); }
    // Reserved fields of replies are not checked: a newer daemon may use them.
    void zero32() { (void)read<uint32_t>(); }
    void zero64() { (void)read<uint64_t>(); }
    template <typename E> void enum32(E& e, E last, std::string_view what) {
        uint32_t value = read<uint32_t>();
        if (ok() && value > static_cast<uint32_t>(last))
            fail(malformed(fmt::format("{} {}", what, value)));
        e = ok() ? static_cast<E>(value) : E{};
    }
    /// Bits outside @p strict fail (none when @p strict is 0: unknown bits
    /// of a newer daemon are ignored).
    template <typename... B> void flags32(std::string_view what, uint32_t strict, const Bit<B>&... bits) {
        uint32_t word = read<uint32_t>();
        if (ok() && strict != 0 && (word & ~strict))
            fail(malformed(fmt::format("{} {:#x}", what, word)));
        ((bits.value = (bool(word & bits.mask) != bits.inverted)), ...);
    }
    void boolean32(bool& b, std::string_view what) {
        uint32_t value = read<uint32_t>();
        if (ok() && value > 1)
            fail(malformed(fmt::format("{} {}", what, value)));
        b = value == 1;
    }
    Tail length(std::string&) { return {read<uint32_t>()}; }
    template <typename V> Tail count(V&) { return {read<uint32_t>()}; }
    void text(std::string& s, Tail length) {
        if (!ok())
            return;
        if (auto text = r_.getString(length.n))
            s = std::move(*text);
        else
            fail(text.error());
    }
    template <typename V, typename F> void each(V& v, Tail count, F f);
    void lstring(std::string& s) {
        auto header = read<ListHeader>();
        text(s, {header.count});
    }
    template <typename V, typename F> void list(V& v, F f) { each(v, {read<ListHeader>().count}, f); }
    void strings(std::vector<std::string>& v) {
        list(v, [](auto& sub, std::string& s) { sub.lstring(s); });
    }
    /// Whether more follows: an older daemon's body may end early.
    bool more() const { return r_.remaining() > 0; }

    bool ok() const { return !error_; }
    Result<void> result() const {
        if (error_)
            return *error_;
        return {};
    }

private:
    template <typename T> T read() {
        if (!ok())
            return T{};
        auto value = r_.get<T>();
        if (!value) {
            fail(value.error());
            return T{};
        }
        return *value;
    }
    void fail(Error e) {
        if (!error_)
            error_ = std::move(e);
    }
    Reader& r_;
    std::optional<Error> error_;
};

class Sizer {
public:
    static constexpr bool kDecoding = true;
    template <typename T> void u64(T&) { bytes_ += 8; }
    template <typename T> void u32(T&) { bytes_ += 4; }
    template <typename T> void i64(T&) { bytes_ += 8; }
    void zero32() { bytes_ += 4; }
    void zero64() { bytes_ += 8; }
    template <typename E> void enum32(E&, E, std::string_view) { bytes_ += 4; }
    template <typename... B> void flags32(std::string_view, uint32_t, const Bit<B>&...) { bytes_ += 4; }
    void boolean32(bool&, std::string_view) { bytes_ += 4; }
    Tail length(std::string&) {
        bytes_ += 4;
        return {};
    }
    template <typename V> Tail count(V&) {
        bytes_ += 4;
        return {};
    }
    void text(std::string&, Tail) {}
    template <typename V, typename F> void each(V&, Tail, F) {}
    void lstring(std::string&) { bytes_ += sizeof(ListHeader); }
    template <typename V, typename F> void list(V&, F) { bytes_ += sizeof(ListHeader); }
    void strings(std::vector<std::string>&) { bytes_ += sizeof(ListHeader); }
    bool more() const { return false; }
    size_t bytes() const { return bytes_; }

private:
    size_t bytes_ = 0;
};

template <typename V, typename F> void Decoder::each(V& v, Tail count, F f) {
    if (!ok())
        return;
    // The least an element takes, measured on its own description.
    Sizer sizer;
    typename V::value_type probe{};
    f(sizer, probe);
    if (auto fits = r_.checkCount(count.n, sizer.bytes()); !fits)
        return fail(fits.error());
    v.resize(count.n);
    for (auto& element : v) {
        f(*this, element);
        if (!ok())
            return;
    }
}

// --------------------------------------------------------- descriptions
//
// In each, V is the value's type, const when encoding.

template <typename Io, typename V> void transferSegment(Io& io, V& e) {
    io.u64(e.dmaAddress);
    io.u64(e.length);
}

/// A heap's properties, but for its strings (which follow later).
template <typename Io, typename V> std::pair<Tail, Tail> transferHeapFixed(Io& io, V& p) {
    io.u64(p.lowestAddress);
    io.u64(p.highestAddress);
    io.u64(p.maxChunkSize);
    io.u64(p.minChunkSize);
    io.u64(p.chunkAlignment);
    io.u64(p.accessBits);
    io.u64(p.capacity);
    io.u64(p.validHeapFlags);
    io.enum32(p.kind, HeapKind::Kernel, "heap kind");
    io.flags32("heap flags", 0, bit(p.contiguous, kHeapContiguous), bit(p.cached, kHeapCached),
               notBit(p.honoursAddressLimit, kHeapNoAddressLimit));
    Tail name = io.length(p.name);
    Tail description = io.length(p.description);
    return {name, description};
}

template <typename Io, typename V> void transferHeapProperties(Io& io, V& p) {
    auto [name, description] = transferHeapFixed(io, p);
    io.text(p.name, name);
    io.text(p.description, description);
}

template <typename Io, typename V> void transferHeapInfo(Io& io, V& h) {
    auto [name, description] = transferHeapFixed(io, h.properties);
    io.u64(h.stats.liveBuffers);
    io.u64(h.stats.liveBytes);
    io.u64(h.stats.watermarkBytes);
    io.u64(h.stats.failedAllocations);
    io.u64(h.stats.totalAllocations);
    io.u64(h.freeBytes);
    io.text(h.properties.name, name);
    io.text(h.properties.description, description);
    if constexpr (Io::kDecoding)
        h.name = h.properties.name;
}

template <typename Io, typename V> void transferHeaps(Io& io, V& heaps) {
    io.list(heaps, [](auto& sub, auto& h) { transferHeapInfo(sub, h); });
}

/// How a heap relates to the host kernel's (KernelPlacement) and its
/// /dev/dma_heap node: {u32 placement, u32 0} + the node's name.
template <typename Io, typename V> void transferKernelPlacement(Io& io, V& p) {
    io.enum32(p.kernelPlacement, KernelPlacement::Alias, "kernel placement");
    io.zero32();
    io.lstring(p.kernelHeap);
}

/// Whether any of @p heaps (properties) is placed on the host kernel's: only
/// then do the bodies that can carry placement carry it.
template <typename H, typename Props> bool anyPlaced(const H& heaps, Props props) {
    return std::any_of(heaps.begin(), heaps.end(),
                       [&](const auto& h) { return props(h).kernelPlacement != KernelPlacement::Modelled; });
}

/// The ListHeaps body: the heap list, then, from a daemon placed on the host
/// kernel's heaps only, per heap its kernel placement. A body that ends after
/// the list (any other daemon, an older one) means every heap is modelled,
/// and an older client stops reading before the placements.
template <typename Io, typename V> void transferHeapList(Io& io, V& heaps) {
    transferHeaps(io, heaps);
    bool placement = io.more();
    if constexpr (!Io::kDecoding)
        placement = anyPlaced(heaps, [](const auto& h) -> const HeapProperties& { return h.properties; });
    if (!placement)
        return;
    io.each(heaps, Tail{static_cast<uint32_t>(heaps.size())},
            [](auto& sub, auto& h) { transferKernelPlacement(sub, h.properties); });
}

template <typename Io, typename V> void transferStats(Io& io, V& s) {
    transferHeaps(io, s.heaps);
    io.list(s.domains, [](auto& sub, auto& d) {
        sub.u64(d.pageSize);
        sub.u64(d.apertureBase);
        sub.u64(d.apertureSize);
        sub.u64(d.hits);
        sub.u64(d.misses);
        sub.u64(d.evictions);
        sub.u64(d.faults);
        sub.u64(d.usedIovaBytes);
        sub.u64(d.cachedIovaBytes);
        sub.u64(d.mappedBytes);
        sub.u64(d.mappingCount);
        sub.u64(d.inUseCount);
        Tail name = sub.length(d.name);
        sub.zero32();
        sub.text(d.name, name);
    });
    io.u64(s.liveBuffers);
    io.strings(s.lifetimeBugs);
    if (!io.more())
        return; // a daemon from before the limits: zeros
    auto& l = s.limits;
    io.u64(l.heldBytes);
    io.u64(l.heldBuffers);
    io.u64(l.quotaBytes);
    io.u64(l.quotaBuffers);
    io.u64(l.trackedBuffers);
    io.u64(l.maxBuffers);
    io.u64(l.rootReserve);
    io.zero64();
    if (!io.more())
        return; // a daemon from before the pool of ready memory: none
    io.list(s.readyPools, [](auto& sub, auto& p) {
        sub.u64(p.readyBytes);
        sub.u64(p.readyBuffers);
        sub.u64(p.hits);
        sub.u64(p.misses);
        sub.u64(p.refills);
        sub.u64(p.refillNanos);
        Tail heap = sub.length(p.heap);
        sub.zero32();
        sub.text(p.heap, heap);
    });
}

template <typename Io, typename V> void transferBuffer(Io& io, V& b) {
    io.u64(b.id);
    io.u64(b.size);
    io.u64(b.inode);
    io.i64(b.references);
    io.u64(b.cacheMaintenanceOps);
    io.u64(b.syncViolations);
    io.u32(b.fdFlags);
    io.u32(b.cpuAccessDepth);
    io.flags32("buffer flags", 0, bit(b.hasStorage, kBufferHasStorage), bit(b.inHostKernel, kBufferInHostKernel));
    Tail chunks = io.count(b.chunks);
    Tail devices = io.count(b.attachedDevices);
    Tail mappings = io.count(b.mappings);
    Tail exporter = io.length(b.exporter);
    Tail name = io.length(b.name);
    Tail heap = io.length(b.heap);
    Tail exporterState = io.length(b.exporterState);
    io.text(b.exporter, exporter);
    io.text(b.name, name);
    io.text(b.heap, heap);
    io.text(b.exporterState, exporterState);
    io.each(b.chunks, chunks, [](auto& sub, auto& c) {
        sub.u64(c.address);
        sub.u64(c.size);
    });
    io.each(b.attachedDevices, devices, [](auto& sub, auto& device) { sub.lstring(device); });
    io.each(b.mappings, mappings, [](auto& sub, auto& m) {
        sub.enum32(m.direction, DmaDirection::FromDevice, "direction");
        Tail segments = sub.count(m.segments);
        Tail device = sub.length(m.device);
        Tail domain = sub.length(m.domain);
        sub.text(m.device, device);
        sub.text(m.domain, domain);
        sub.each(m.segments, segments, [](auto& seg, auto& e) { transferSegment(seg, e); });
    });
}

template <typename Io, typename V> void transferBuffers(Io& io, V& buffers) {
    io.list(buffers, [](auto& sub, auto& b) { transferBuffer(sub, b); });
}

template <typename Io, typename V> void transferMapping(Io& io, V& m) {
    io.u64(m.id);
    io.enum32(m.direction, DmaDirection::FromDevice, "direction");
    Tail segments = io.count(m.segments);
    io.each(m.segments, segments, [](auto& sub, auto& e) { transferSegment(sub, e); });
}

template <typename Io, typename V> void transferForecast(Io& io, V& f) {
    io.enum32(f.outcome, AttachForecast::Outcome::Unsatisfiable, "forecast outcome");
    io.zero32();
    io.lstring(f.fromHeap);
    io.lstring(f.toHeap);
    io.lstring(f.reason);
    io.strings(f.notified);
}

/// An AllocFor reply: the buffer and size, then heap, kernel heap and
/// reason; then, but from an older daemon, the exporter and the devices.
template <typename Io, typename V> void transferAllocFor(Io& io, V& a) {
    io.u64(a.buffer);
    io.u64(a.size);
    io.lstring(a.heap);
    io.lstring(a.kernelHeap);
    io.lstring(a.reason);
    if (!io.more())
        return;
    io.lstring(a.exporter);
    io.list(a.devices, [](auto& sub, auto& device) {
        sub.lstring(device.name);
        sub.lstring(device.sysfsPath);
        sub.lstring(device.driver);
    });
}

/// A move event: MoveEventBody, then its cause.
template <typename Io, typename V> void transferMoveEvent(Io& io, V& e) {
    io.u64(e.buffer);
    io.u64(e.attachment);
    io.u64(e.sequence);
    io.enum32(e.kind, MoveEvent::Kind::Cancelled, "move event kind");
    Tail cause = io.length(e.cause);
    io.text(e.cause, cause);
}

/// @p platform and @p heaps: the Platform op's body. The facts the fixed
/// parts do not hold follow the heaps, in the same order (a second pass
/// over regions, devices and heaps).
template <typename Io, typename P, typename H> void transferPlatform(Io& io, P& platform, H& heaps) {
    Tail name = io.length(platform.name);
    Tail description = io.length(platform.description);
    Tail source = io.length(platform.source);
    Tail banks = io.count(platform.memory);
    Tail regions = io.count(platform.regions);
    Tail iommus = io.count(platform.iommus);
    Tail devices = io.count(platform.devices);
    Tail heapCount = io.count(heaps);
    io.text(platform.name, name);
    io.text(platform.description, description);
    io.text(platform.source, source);
    io.each(platform.memory, banks, [](auto& sub, auto& bank) {
        sub.u64(bank.base);
        sub.u64(bank.size);
        Tail bankName = sub.length(bank.name);
        sub.zero32();
        sub.text(bank.name, bankName);
    });
    io.each(platform.regions, regions, [](auto& sub, auto& region) {
        sub.u64(region.base);
        sub.u64(region.size);
        sub.u64(region.accessBits);
        sub.enum32(region.kind, RegionKind::Carveout, "region kind");
        sub.flags32("region flags", 0, bit(region.noMap, kRegionNoMap), bit(region.isDefault, kRegionDefault));
        Tail regionName = sub.length(region.name);
        sub.zero32();
        sub.text(region.name, regionName);
    });
    io.each(platform.iommus, iommus, [](auto& sub, auto& iommu) {
        sub.u64(iommu.pageSize);
        sub.u64(iommu.apertureBase);
        sub.u64(iommu.apertureSize);
        Tail iommuName = sub.length(iommu.name);
        sub.zero32();
        sub.text(iommu.name, iommuName);
    });
    io.each(platform.devices, devices, [](auto& sub, auto& device) {
        auto& c = device.constraints;
        sub.u64(c.dmaMask);
        sub.u64(c.coherentDmaMask);
        sub.u64(c.maxSegmentSize);
        sub.u64(c.segmentBoundaryMask);
        sub.u64(c.alignment);
        sub.u64(c.accessBits);
        sub.u32(c.maxSegmentCount);
        // The IOMMU name is a string whose presence is a flag.
        bool hasIommu = device.iommu.has_value();
        std::string iommu = device.iommu.value_or(std::string());
        sub.flags32("device flags", 0, bit(c.contiguous, kDeviceContiguous), bit(c.coherent, kDeviceCoherent),
                    bit(hasIommu, kDeviceHasIommu));
        Tail deviceName = sub.length(device.name);
        Tail deviceDescription = sub.length(device.description);
        Tail iommuName = sub.length(iommu);
        sub.zero32();
        sub.text(device.name, deviceName);
        sub.text(device.description, deviceDescription);
        sub.text(iommu, iommuName);
        if constexpr (std::remove_reference_t<decltype(sub)>::kDecoding)
            if (hasIommu)
                device.iommu = std::move(iommu);
    });
    io.each(heaps, heapCount, [](auto& sub, auto& heap) { transferHeapProperties(sub, heap); });

    // The facts: whether the board's kernel names its vendor heaps, and which.
    bool vendor = platform.vendorHeaps.has_value();
    std::vector<std::string> vendorHeaps = platform.vendorHeaps.value_or(std::vector<std::string>());
    io.boolean32(vendor, "vendor heap presence");
    io.zero32();
    io.strings(vendorHeaps);
    if constexpr (Io::kDecoding)
        if (vendor)
            platform.vendorHeaps = std::move(vendorHeaps);
    // Then per region its flags and owners; per device its IOMMU group,
    // restricted pool, fact source and assumed facts; per heap its owners.
    io.each(platform.regions, regions, [](auto& sub, auto& region) {
        sub.flags32("region flags", kRegionRestricted | kRegionHeap, bit(region.restricted, kRegionRestricted),
                    bit(region.heap, kRegionHeap));
        sub.zero32();
        sub.strings(region.owners);
    });
    io.each(platform.devices, devices, [](auto& sub, auto& device) {
        sub.lstring(device.iommuGroup);
        sub.lstring(device.restrictedPool);
        sub.lstring(device.factSource);
        sub.strings(device.assumedFacts);
    });
    io.each(heaps, heapCount, [](auto& sub, auto& heap) { sub.strings(heap.owners); });

    // Last, for a platform read from the running host only, per device its
    // sysfs path and bound driver. A body without them ends above: any
    // other platform (so its bytes stay those of version 1), or an older
    // daemon's.
    bool hostFacts = io.more();
    // After them, for heaps placed on the host kernel's only, per heap its
    // placement and kernel heap node (the host facts come first, empty if
    // need be). A body without them: every heap is KernelPlacement::Modelled.
    bool placement = false;
    if constexpr (!Io::kDecoding) {
        placement = anyPlaced(heaps, [](const auto& h) -> const HeapProperties& { return h; });
        hostFacts = placement || std::any_of(platform.devices.begin(), platform.devices.end(),
                                             [](const auto& d) { return !d.sysfsPath.empty() || !d.driver.empty(); });
    }
    if (!hostFacts)
        return;
    io.each(platform.devices, devices, [](auto& sub, auto& device) {
        sub.lstring(device.sysfsPath);
        sub.lstring(device.driver);
    });
    if constexpr (Io::kDecoding)
        placement = io.more();
    if (!placement)
        return;
    io.each(heaps, heapCount, [](auto& sub, auto& heap) { transferKernelPlacement(sub, heap); });
}

template <typename Body> Result<void> decodeWith(Reader& r, Body body) {
    Decoder d(r);
    body(d);
    return d.result();
}

} // namespace

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

MessageHeader makeHeader(uint16_t opcode, uint32_t payloadSize, uint16_t fdCount, uint32_t sequence) {
    MessageHeader h{};
    h.magic = kMagic;
    h.version = kVersion;
    h.opcode = opcode;
    h.payloadSize = payloadSize;
    h.fdCount = fdCount;
    h.sequence = sequence;
    return h;
}

// Each body: its one description, run to encode and to decode.

void encode(Writer& w, const std::vector<HeapInfo>& heaps) {
    Encoder e(w);
    transferHeapList(e, heaps);
}
Result<void> decodeInto(Reader& r, std::vector<HeapInfo>& heaps) {
    return decodeWith(r, [&](Decoder& d) { transferHeapList(d, heaps); });
}

void encode(Writer& w, const AllocatorStats& stats) {
    Encoder e(w);
    transferStats(e, stats);
}
Result<void> decodeInto(Reader& r, AllocatorStats& stats) {
    return decodeWith(r, [&](Decoder& d) { transferStats(d, stats); });
}

void encode(Writer& w, const BufferInfo& buffer) {
    Encoder e(w);
    transferBuffer(e, buffer);
}
Result<void> decodeInto(Reader& r, BufferInfo& buffer) {
    return decodeWith(r, [&](Decoder& d) { transferBuffer(d, buffer); });
}

void encode(Writer& w, const std::vector<BufferInfo>& buffers) {
    Encoder e(w);
    transferBuffers(e, buffers);
}
Result<void> decodeInto(Reader& r, std::vector<BufferInfo>& buffers) {
    return decodeWith(r, [&](Decoder& d) { transferBuffers(d, buffers); });
}

void encode(Writer& w, const SessionMapping& mapping) {
    Encoder e(w);
    transferMapping(e, mapping);
}
Result<void> decodeInto(Reader& r, SessionMapping& mapping) {
    return decodeWith(r, [&](Decoder& d) { transferMapping(d, mapping); });
}

void encode(Writer& w, const PlatformView& platform) {
    Encoder e(w);
    transferPlatform(e, platform.platform, platform.heaps);
}
Result<void> decodeInto(Reader& r, PlatformBody& platform) {
    return decodeWith(r, [&](Decoder& d) { transferPlatform(d, platform.platform, platform.heaps); });
}

void encode(Writer& w, const AttachForecast& forecast) {
    Encoder e(w);
    transferForecast(e, forecast);
}
Result<void> decodeInto(Reader& r, AttachForecast& forecast) {
    return decodeWith(r, [&](Decoder& d) { transferForecast(d, forecast); });
}

void encode(Writer& w, const AllocForReply& reply) {
    Encoder e(w);
    transferAllocFor(e, reply);
}
Result<void> decodeInto(Reader& r, AllocForReply& reply) {
    return decodeWith(r, [&](Decoder& d) { transferAllocFor(d, reply); });
}

void encode(Writer& w, const MoveEvent& event) {
    Encoder e(w);
    transferMoveEvent(e, event);
}
Result<void> decodeInto(Reader& r, MoveEvent& event) {
    return decodeWith(r, [&](Decoder& d) { transferMoveEvent(d, event); });
}

} // namespace cenalloc::wire
