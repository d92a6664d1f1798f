// SPDX-License-Identifier: MIT
// Test boards built in code (mirroring examples/platforms) and their heap properties.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/heap.h>
#include <cenalloc/platform.h>
#include <cenalloc/units.h>

namespace cenalloc::test {

constexpr uint64_t bitMask(int bits) {
    return bits >= 64 ? kNoLimit : (uint64_t{1} << bits) - 1;
}

struct DeviceSpec {
    std::string name;
    int maskBits = 64;
    uint64_t maxSegmentSize = kDefaultMaxSegmentSize;
    uint32_t maxSegmentCount = 0;
    bool contiguous = false;
    bool coherent = true;
    uint64_t accessBits = kAllAccess;
    std::optional<std::string> iommu = std::nullopt;
    uint64_t boundaryMask = kNoLimit;
    uint64_t alignment = 4096;
};

inline Device makeDevice(const DeviceSpec& s) {
    Device d;
    d.name = s.name;
    d.constraints.dmaMask = bitMask(s.maskBits);
    d.constraints.coherentDmaMask = bitMask(s.maskBits);
    d.constraints.maxSegmentSize = s.maxSegmentSize;
    d.constraints.maxSegmentCount = s.maxSegmentCount;
    d.constraints.contiguous = s.contiguous;
    d.constraints.coherent = s.coherent;
    d.constraints.accessBits = s.accessBits;
    d.constraints.segmentBoundaryMask = s.boundaryMask;
    d.constraints.alignment = s.alignment;
    d.iommu = s.iommu;
    return d;
}

/// Raspberry Pi 4 (examples/platforms/rpi4.yaml): no IOMMU, 30-bit legacy masters.
inline Platform piBoard() {
    Platform p;
    p.name = "rpi4";
    p.memory = {{"dram-low", 0x0, 0x3b400000}, {"dram-high", 0x40000000, 0xbc000000}};
    ReservedRegion cma;
    cma.name = "linux,cma";
    cma.kind = RegionKind::Cma;
    cma.base = 0x2b400000;
    cma.size = 256 * MiB;
    cma.isDefault = true;
    p.regions = {cma};
    p.devices = {
        makeDevice({.name = "dma", .maskBits = 30, .maxSegmentSize = 0x3fffffff, .coherent = false}),
        makeDevice({.name = "hvs",
                    .maskBits = 30,
                    .maxSegmentSize = 0xffffffff,
                    .maxSegmentCount = 1,
                    .contiguous = true,
                    .coherent = false}),
        makeDevice({.name = "unicam",
                    .maskBits = 30,
                    .maxSegmentSize = 0xffffffff,
                    .maxSegmentCount = 1,
                    .contiguous = true,
                    .coherent = false}),
        makeDevice({.name = "v3d", .maskBits = 32, .maxSegmentSize = 0xffffffff, .coherent = false}),
        makeDevice({.name = "pcie-xhci", .maskBits = 32, .coherent = false}),
        makeDevice({.name = "genet", .maskBits = 40, .coherent = false}),
    };
    return p;
}

/// A phone-class SoC (examples/platforms/phone-soc.yaml): SMMUs for GPU,
/// camera and codec, a display without IOMMU, most DRAM above 4 GiB.
inline Platform phoneBoard() {
    Platform p;
    p.name = "phone-soc";
    p.memory = {{"dram0", 0x80000000, 2 * GiB}, {"dram1", 0x880000000, 10 * GiB}};
    ReservedRegion cma;
    cma.name = "linux,cma";
    cma.kind = RegionKind::Cma;
    cma.base = 0xf0000000;
    cma.size = 256 * MiB;
    cma.isDefault = true;
    ReservedRegion secure;
    secure.name = "vpu-secure";
    secure.kind = RegionKind::Carveout;
    secure.base = 0xe8000000;
    secure.size = 128 * MiB;
    secure.noMap = true;
    secure.accessBits = 0x2;
    p.regions = {cma, secure};
    p.iommus = {{"gpu-smmu", 4096, 0x100000, 0xfffff00000},
                {"camera-smmu", 4096, 0x100000, 0xfff00000},
                {"video-smmu", 4096, 0x100000, 0xfff00000}};
    p.devices = {
        makeDevice({.name = "gpu",
                    .maskBits = 40,
                    .maxSegmentSize = 0xffffffff,
                    .coherent = true,
                    .accessBits = 0x1,
                    .iommu = "gpu-smmu"}),
        makeDevice({.name = "isp",
                    .maskBits = 32,
                    .maxSegmentSize = 0xffffffff,
                    .coherent = false,
                    .accessBits = 0x1,
                    .iommu = "camera-smmu"}),
        makeDevice({.name = "camera", .maskBits = 32, .coherent = false, .accessBits = 0x1, .iommu = "camera-smmu"}),
        makeDevice({.name = "codec", .maskBits = 32, .coherent = false, .accessBits = 0x3, .iommu = "video-smmu"}),
        makeDevice({.name = "display",
                    .maskBits = 32,
                    .maxSegmentSize = 0xffffffff,
                    .maxSegmentCount = 1,
                    .contiguous = true,
                    .coherent = false,
                    .accessBits = 0x1}),
        makeDevice({.name = "usb", .maskBits = 36, .coherent = false, .accessBits = 0x1}),
    };
    return p;
}

/// An x86-64 PC (examples/platforms/pc-x86.yaml): IOMMU off, a 32-bit capture card.
inline Platform pcBoard() {
    Platform p;
    p.name = "pc-x86";
    p.memory = {{"low", 0x100000, 0xbff00000}, {"high", 0x100000000, 12 * GiB}};
    p.devices = {
        makeDevice({.name = "capture", .maskBits = 32}),
        makeDevice({.name = "gpu", .maskBits = 44, .maxSegmentSize = 0xffffffff}),
        makeDevice({.name = "nvme", .maskBits = 64, .maxSegmentSize = 0xffffffff, .boundaryMask = 0xfff}),
        makeDevice({.name = "xhci", .maskBits = 64}),
    };
    return p;
}

/// The heap properties the heaps layer gives a platform (src/heaps,
/// platformHeapProperties), rebuilt here so these tests do not depend on
/// that layer: system and system-uncached over general memory (banks minus
/// reserved regions), the dma32 pair when memory reaches above 4 GiB, then
/// one contiguous heap per reserved region the kernel or its owners
/// allocate from; the vendor heaps the platform's kernel has.
inline std::vector<HeapProperties> boardHeaps(const Platform& p) {
    struct Span {
        uint64_t base, end;
    };
    std::vector<Span> spans;
    for (const MemoryBank& b : p.memory) {
        std::vector<Span> pieces = {{b.base, b.end()}};
        for (const ReservedRegion& r : p.regions) {
            std::vector<Span> next;
            for (const Span& s : pieces) {
                if (r.end() <= s.base || r.base >= s.end) {
                    next.push_back(s);
                    continue;
                }
                if (r.base > s.base)
                    next.push_back({s.base, r.base});
                if (r.end() < s.end)
                    next.push_back({r.end(), s.end});
            }
            pieces = next;
        }
        spans.insert(spans.end(), pieces.begin(), pieces.end());
    }
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.base < b.base; });
    const uint64_t lowest = spans.front().base;
    uint64_t highest = 0;
    for (const Span& s : spans)
        highest = std::max(highest, s.end - 1);
    auto within = [&](uint64_t lo, uint64_t hi) {
        uint64_t total = 0;
        for (const Span& s : spans) {
            const uint64_t a = std::max(s.base, lo);
            const uint64_t b = std::min(s.end - 1, hi);
            if (a <= b)
                total += b - a + 1;
        }
        return total;
    };
    auto system = [&](std::string name, bool cached, uint64_t hi) {
        HeapProperties h;
        h.name = std::move(name);
        h.kind = HeapKind::System;
        h.lowestAddress = lowest;
        h.highestAddress = hi;
        h.contiguous = false;
        h.cached = cached;
        h.maxChunkSize = 1 * MiB;
        h.minChunkSize = 4 * KiB;
        h.chunkAlignment = 4 * KiB;
        h.accessBits = kAllAccess;
        h.capacity = within(lowest, hi);
        return h;
    };
    auto exists = [&](std::string_view name) {
        return !p.vendorHeaps || std::find(p.vendorHeaps->begin(), p.vendorHeaps->end(), name) != p.vendorHeaps->end();
    };
    std::vector<HeapProperties> heaps = {system("system", true, highest)};
    if (exists("system-uncached"))
        heaps.push_back(system("system-uncached", false, highest));
    constexpr uint64_t kDma32 = 0xffffffff;
    if (highest > kDma32 && lowest <= kDma32) {
        if (exists("system-dma32"))
            heaps.push_back(system("system-dma32", true, kDma32));
        if (exists("system-uncached-dma32"))
            heaps.push_back(system("system-uncached-dma32", false, kDma32));
    }
    for (const ReservedRegion& r : p.regions) {
        // A restricted pool, or memory set aside that neither the kernel
        // nor an owner allocates from, is no heap.
        if (r.restricted || (!r.heap && r.owners.empty()))
            continue;
        HeapProperties h;
        h.name = r.name;
        h.owners = r.owners;
        h.kind = r.kind == RegionKind::Cma ? HeapKind::Cma : HeapKind::Carveout;
        h.lowestAddress = r.base;
        h.highestAddress = r.end() - 1;
        h.contiguous = true;
        h.cached = !r.noMap;
        h.maxChunkSize = r.size;
        h.minChunkSize = 4 * KiB;
        h.chunkAlignment = 4 * KiB;
        h.accessBits = r.accessBits;
        h.capacity = r.size;
        heaps.push_back(h);
    }
    return heaps;
}

} // namespace cenalloc::test
