// SPDX-License-Identifier: MIT
// Tests of the wire encoding: struct sizes, round trips, the zero-extension rule, names, truncated replies.
#include "service/protocol.h"

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/context.h>
#include <cenalloc/explain.h>

#include <cenalloc/memfd.h>

#include "service/operations.h"
#include "support/fake_kernel_heaps.h"

namespace cenalloc::wire {
namespace {

using test::FakeKernelHeapDir;

TEST(Protocol, HeaderAndRequestsHaveTheDocumentedSizes) {
    EXPECT_EQ(sizeof(MessageHeader), 32u);
    EXPECT_EQ(sizeof(AllocateRequest), 88u);
    EXPECT_EQ(sizeof(CreateRequest), 48u);
    EXPECT_EQ(sizeof(MapRequest), 16u);
    EXPECT_EQ(offsetof(MessageHeader, payloadSize), 8u);
    EXPECT_EQ(offsetof(MessageHeader, fdCount), 12u);
    EXPECT_EQ(offsetof(MessageHeader, error), 20u);
    EXPECT_EQ(offsetof(AllocateRequest, heap), 24u);
}

TEST(Protocol, AShorterPayloadIsZeroExtendedALongerOneOnlyWithZeros) {
    MapRequest full{7, 2, 0};
    std::vector<std::byte> bytes(sizeof full);
    std::memcpy(bytes.data(), &full, sizeof full);

    auto shorter = decodePayload<MapRequest>(std::span(bytes).first(8)); // an older client: attachment only
    ASSERT_TRUE(shorter);
    EXPECT_EQ(shorter->attachment, 7u);
    EXPECT_EQ(shorter->direction, 0u);
    EXPECT_EQ(shorter->reserved, 0u);

    auto none = decodePayload<MapRequest>({});
    ASSERT_TRUE(none);
    EXPECT_EQ(none->attachment, 0u);

    bytes.resize(sizeof full + 16, std::byte{0}); // a newer client, fields unused
    auto longer = decodePayload<MapRequest>(bytes);
    ASSERT_TRUE(longer);
    EXPECT_EQ(longer->direction, 2u);

    for (size_t i = sizeof full; i < bytes.size(); ++i) {
        SCOPED_TRACE(i);
        auto copy = bytes;
        copy[i] = std::byte{1};
        auto bad = decodePayload<MapRequest>(copy);
        ASSERT_FALSE(bad);
        EXPECT_EQ(bad.error().code(), EINVAL);
    }
    EXPECT_TRUE(checkEmptyPayload(std::vector<std::byte>(8)));
    EXPECT_EQ(checkEmptyPayload(std::vector<std::byte>{std::byte{0}, std::byte{3}}).error().code(), EINVAL);
}

TEST(Protocol, NameFieldsAreNulPaddedAndRefuseJunkAfterTheNul) {
    char field[8];
    ASSERT_TRUE(putName(field, sizeof field, "gpu"));
    auto name = getName(field, sizeof field, "x");
    ASSERT_TRUE(name);
    EXPECT_EQ(*name, "gpu");
    ASSERT_TRUE(putName(field, sizeof field, "12345678")); // fills the field: no NUL needed
    EXPECT_EQ(*getName(field, sizeof field, "x"), "12345678");
    EXPECT_EQ(putName(field, sizeof field, "123456789").error().code(), ENAMETOOLONG);
    EXPECT_EQ(putName(field, sizeof field, std::string_view("a\0b", 3)).error().code(), EINVAL);
    ASSERT_TRUE(putName(field, sizeof field, "gpu"));
    field[6] = 'x';
    EXPECT_EQ(getName(field, sizeof field, "x").error().code(), EINVAL);
}

std::vector<HeapInfo> someHeaps() {
    HeapInfo a;
    a.name = "system";
    a.properties.name = "system";
    a.properties.description = "pages from anywhere";
    a.properties.kind = HeapKind::System;
    a.properties.lowestAddress = 0x40000000;
    a.properties.highestAddress = 0x8ffffffff;
    a.properties.maxChunkSize = 1 << 20;
    a.properties.capacity = 1ull << 32;
    a.properties.cached = true;
    a.stats = {3, 12288, 65536, 1, 9};
    a.freeBytes = 12345;
    HeapInfo b;
    b.name = "linux,cma";
    b.properties.name = "linux,cma";
    b.properties.kind = HeapKind::Cma;
    b.properties.contiguous = true;
    b.properties.cached = false;
    b.properties.validHeapFlags = 0x5;
    return {a, b};
}

void expectSameHeaps(const std::vector<HeapInfo>& a, const std::vector<HeapInfo>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
        SCOPED_TRACE(a[i].name);
        EXPECT_EQ(a[i].name, b[i].name);
        const HeapProperties &p = a[i].properties, &q = b[i].properties;
        EXPECT_EQ(p.name, q.name);
        EXPECT_EQ(p.description, q.description);
        EXPECT_EQ(p.kind, q.kind);
        EXPECT_EQ(p.lowestAddress, q.lowestAddress);
        EXPECT_EQ(p.highestAddress, q.highestAddress);
        EXPECT_EQ(p.contiguous, q.contiguous);
        EXPECT_EQ(p.cached, q.cached);
        EXPECT_EQ(p.maxChunkSize, q.maxChunkSize);
        EXPECT_EQ(p.minChunkSize, q.minChunkSize);
        EXPECT_EQ(p.chunkAlignment, q.chunkAlignment);
        EXPECT_EQ(p.accessBits, q.accessBits);
        EXPECT_EQ(p.capacity, q.capacity);
        EXPECT_EQ(p.validHeapFlags, q.validHeapFlags);
        EXPECT_EQ(a[i].stats.liveBuffers, b[i].stats.liveBuffers);
        EXPECT_EQ(a[i].stats.liveBytes, b[i].stats.liveBytes);
        EXPECT_EQ(a[i].stats.watermarkBytes, b[i].stats.watermarkBytes);
        EXPECT_EQ(a[i].stats.failedAllocations, b[i].stats.failedAllocations);
        EXPECT_EQ(a[i].stats.totalAllocations, b[i].stats.totalAllocations);
        EXPECT_EQ(a[i].freeBytes, b[i].freeBytes);
    }
}

TEST(Protocol, StatsRoundTrip) {
    AllocatorStats stats;
    stats.heaps = someHeaps();
    IommuDomainStats d;
    d.name = "gpu-smmu";
    d.pageSize = 4096;
    d.apertureBase = 0x100000;
    d.apertureSize = 0xfff00000;
    d.hits = 1, d.misses = 2, d.evictions = 3, d.faults = 4, d.usedIovaBytes = 5, d.cachedIovaBytes = 6;
    d.mappedBytes = 7, d.mappingCount = 8, d.inUseCount = 9;
    stats.domains = {d};
    stats.liveBuffers = 42;
    stats.lifetimeBugs = {"buffer 3 released with 1 device(s) still attached", ""};
    Writer w;
    encode(w, stats);
    EXPECT_EQ(w.bytes().size() % 8, 0u);
    Reader r(w.bytes());
    auto back = decode<AllocatorStats>(r);
    ASSERT_TRUE(back) << back.error().toString();
    expectSameHeaps(back->heaps, stats.heaps);
    ASSERT_EQ(back->domains.size(), 1u);
    const IommuDomainStats& e = back->domains[0];
    EXPECT_EQ(e.name, "gpu-smmu");
    EXPECT_EQ(
        std::vector<uint64_t>({e.pageSize, e.apertureBase, e.apertureSize, e.hits, e.misses, e.evictions, e.faults,
                               e.usedIovaBytes, e.cachedIovaBytes, e.mappedBytes, e.mappingCount, e.inUseCount}),
        std::vector<uint64_t>({4096, 0x100000, 0xfff00000, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
    EXPECT_EQ(back->liveBuffers, 42u);
    EXPECT_EQ(back->lifetimeBugs, stats.lifetimeBugs);
    EXPECT_EQ(r.remaining(), 0u);
}

std::vector<BufferInfo> someBuffers() {
    BufferInfo b;
    b.id = 7;
    b.size = 8192;
    b.fdFlags = 02000002;
    b.exporter = "system";
    b.name = "frame";
    b.inode = 991;
    b.references = 2;
    b.hasStorage = true;
    b.heap = "system";
    b.chunks = {{0x40000000, 4096}, {0x40010000, 4096}};
    b.attachedDevices = {"gpu", "display"};
    b.mappings = {{"gpu", DmaDirection::ToDevice, "gpu-smmu", {{0x100000, 8192}}},
                  {"display", DmaDirection::FromDevice, "", {{0x40000000, 4096}, {0x40010000, 4096}}}};
    b.cpuAccessDepth = 1;
    b.cacheMaintenanceOps = 5;
    b.syncViolations = 1;
    b.exporterState = "deferred, cpu access rare";
    BufferInfo empty;
    empty.id = 8;
    return {b, empty};
}

TEST(Protocol, BufinfoRoundTrip) {
    auto buffers = someBuffers();
    Writer w;
    encode(w, buffers);
    Reader r(w.bytes());
    auto back = decode<std::vector<BufferInfo>>(r);
    ASSERT_TRUE(back) << back.error().toString();
    ASSERT_EQ(back->size(), 2u);
    const BufferInfo &a = buffers[0], &b = (*back)[0];
    EXPECT_EQ(b.id, a.id);
    EXPECT_EQ(b.size, a.size);
    EXPECT_EQ(b.fdFlags, a.fdFlags);
    EXPECT_EQ(b.exporter, a.exporter);
    EXPECT_EQ(b.name, a.name);
    EXPECT_EQ(b.inode, a.inode);
    EXPECT_EQ(b.references, a.references);
    EXPECT_EQ(b.hasStorage, a.hasStorage);
    EXPECT_EQ(b.heap, a.heap);
    EXPECT_EQ(b.chunks, a.chunks);
    EXPECT_EQ(b.attachedDevices, a.attachedDevices);
    ASSERT_EQ(b.mappings.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(b.mappings[i].device, a.mappings[i].device);
        EXPECT_EQ(b.mappings[i].direction, a.mappings[i].direction);
        EXPECT_EQ(b.mappings[i].domain, a.mappings[i].domain);
        EXPECT_EQ(b.mappings[i].segments, a.mappings[i].segments);
    }
    EXPECT_EQ(b.cpuAccessDepth, a.cpuAccessDepth);
    EXPECT_EQ(b.cacheMaintenanceOps, a.cacheMaintenanceOps);
    EXPECT_EQ(b.syncViolations, a.syncViolations);
    EXPECT_EQ(b.exporterState, a.exporterState);
    EXPECT_EQ((*back)[1].id, 8u);
    EXPECT_FALSE((*back)[1].hasStorage);
}

TEST(Protocol, EveryTruncationOfAReplyIsEprotoNeverACrash) {
    Writer w;
    encode(w, someBuffers());
    const auto& bytes = w.bytes();
    for (size_t n = 0; n < bytes.size(); ++n) {
        SCOPED_TRACE(n);
        Reader r(std::span<const std::byte>(bytes).first(n));
        auto back = decode<std::vector<BufferInfo>>(r);
        ASSERT_FALSE(back);
        EXPECT_EQ(back.error().code(), EPROTO);
    }
}

TEST(Protocol, AHugeCountIsRefusedBeforeAllocating) {
    Writer w;
    w.put(ListHeader{0xffffffff, 0});
    Reader r(w.bytes());
    auto back = decode<std::vector<BufferInfo>>(r);
    ASSERT_FALSE(back);
    EXPECT_EQ(back.error().code(), EPROTO);
}

TEST(Protocol, MappingRoundTripAndBadDirection) {
    SessionMapping m{3, DmaDirection::FromDevice, {{0x1000, 4096}, {0x9000, 8192}}};
    Writer w;
    encode(w, m);
    Reader r(w.bytes());
    auto back = decode<SessionMapping>(r);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->id, 3u);
    EXPECT_EQ(back->direction, DmaDirection::FromDevice);
    EXPECT_EQ(back->segments, m.segments);
    w.bytes()[8] = std::byte{3}; // direction 3 does not exist
    Reader bad(w.bytes());
    EXPECT_EQ(decode<SessionMapping>(bad).error().code(), EPROTO);
}

TEST(Protocol, PlatformRoundTripGivesTheSameExplanations) {
    // The built-in platform with every fact the fixed structs do not hold.
    Platform facts = defaultPlatform();
    facts.vendorHeaps = std::vector<std::string>{"system-dma32"};
    for (ReservedRegion& r : facts.regions)
        if (r.name == "vpu-carveout")
            r.owners = {"codec"};
    for (Device& d : facts.devices) {
        if (d.name == "isp")
            d.iommuGroup = "0x10";
        if (d.name == "display") {
            d.factSource = "drivers/gpu/drm/example.c: drm_gem_dma helpers";
            d.assumedFacts = {"needs one contiguous buffer", "not coherent"};
            // What the host loader adds: the trailing section of the body.
            d.sysfsPath = "/sys/devices/platform/ff900000.display";
            d.driver = "rockchip-vop";
        }
        if (d.name == "isp")
            d.sysfsPath = "/sys/devices/platform/ff910000.isp";
    }
    ASSERT_TRUE(validatePlatform(facts));
    auto context = Context::create(facts);
    ASSERT_TRUE(context);
    const Platform& platform = (*context)->platform();
    Writer w;
    encode(w, PlatformView{platform, (*context)->heapProperties()});
    Reader r(w.bytes());
    auto back = decode<PlatformBody>(r);
    ASSERT_TRUE(back) << back.error().toString();
    EXPECT_EQ(r.remaining(), 0u);
    EXPECT_EQ(back->platform.name, platform.name);
    EXPECT_EQ(back->platform.description, platform.description);
    EXPECT_EQ(back->platform.source, platform.source);
    ASSERT_EQ(back->platform.devices.size(), platform.devices.size());
    for (size_t i = 0; i < platform.devices.size(); ++i) {
        SCOPED_TRACE(platform.devices[i].name);
        EXPECT_EQ(back->platform.devices[i].name, platform.devices[i].name);
        EXPECT_EQ(back->platform.devices[i].description, platform.devices[i].description);
        EXPECT_EQ(back->platform.devices[i].iommu, platform.devices[i].iommu);
        EXPECT_EQ(back->platform.devices[i].constraints, platform.devices[i].constraints);
        EXPECT_EQ(back->platform.devices[i].iommuGroup, platform.devices[i].iommuGroup);
        EXPECT_EQ(back->platform.devices[i].restrictedPool, platform.devices[i].restrictedPool);
        EXPECT_EQ(back->platform.devices[i].factSource, platform.devices[i].factSource);
        EXPECT_EQ(back->platform.devices[i].assumedFacts, platform.devices[i].assumedFacts);
        EXPECT_EQ(back->platform.devices[i].sysfsPath, platform.devices[i].sysfsPath);
        EXPECT_EQ(back->platform.devices[i].driver, platform.devices[i].driver);
    }
    EXPECT_NE(platform.findDevice("display")->driver, "") << "the host facts made it through Context::create";
    EXPECT_EQ(back->platform.vendorHeaps, platform.vendorHeaps);
    ASSERT_EQ(back->platform.regions.size(), platform.regions.size());
    for (size_t i = 0; i < platform.regions.size(); ++i) {
        EXPECT_EQ(back->platform.regions[i].name, platform.regions[i].name);
        EXPECT_EQ(back->platform.regions[i].kind, platform.regions[i].kind);
        EXPECT_EQ(back->platform.regions[i].noMap, platform.regions[i].noMap);
        EXPECT_EQ(back->platform.regions[i].isDefault, platform.regions[i].isDefault);
        EXPECT_EQ(back->platform.regions[i].accessBits, platform.regions[i].accessBits);
        EXPECT_EQ(back->platform.regions[i].owners, platform.regions[i].owners);
        EXPECT_EQ(back->platform.regions[i].restricted, platform.regions[i].restricted);
        EXPECT_EQ(back->platform.regions[i].heap, platform.regions[i].heap);
    }
    for (size_t i = 0; i < back->heaps.size() && i < (*context)->heapProperties().size(); ++i)
        EXPECT_EQ(back->heaps[i].owners, (*context)->heapProperties()[i].owners);
    ASSERT_EQ(back->platform.iommus.size(), platform.iommus.size());
    ASSERT_EQ(back->platform.memory.size(), platform.memory.size());
    EXPECT_TRUE(validatePlatform(back->platform));
    ASSERT_EQ(back->heaps.size(), (*context)->heapProperties().size());

    // explain() is pure: over the decoded copy it must say exactly what it says over the original.
    const std::vector<std::vector<std::string>> sets = {
        {"gpu"}, {"gpu", "display"}, {"display", "codec"}, {"camera", "isp", "usb"}, {"codec"}, {"isp", "codec"}};
    for (const auto& devices : sets) {
        for (CpuAccess cpu : {CpuAccess::None, CpuAccess::Often}) {
            SCOPED_TRACE(devices.size());
            auto a = explain(platform, (*context)->heapProperties(), devices, 8 << 20, cpu);
            auto b = explain(back->platform, back->heaps, devices, 8 << 20, cpu);
            ASSERT_TRUE(a);
            ASSERT_TRUE(b);
            EXPECT_EQ(a->satisfiable, b->satisfiable);
            EXPECT_EQ(a->heap, b->heap);
            EXPECT_EQ(a->ranking, b->ranking);
            EXPECT_EQ(a->allocatingDevice, b->allocatingDevice);
            EXPECT_EQ(a->allocatingReason, b->allocatingReason);
            EXPECT_EQ(a->cachePolicy, b->cachePolicy);
            EXPECT_EQ(a->constraints, b->constraints);
            EXPECT_EQ(a->notes, b->notes);
            ASSERT_EQ(a->heaps.size(), b->heaps.size());
            for (size_t i = 0; i < a->heaps.size(); ++i) {
                EXPECT_EQ(a->heaps[i].accepted, b->heaps[i].accepted);
                EXPECT_EQ(a->heaps[i].combined.reason(), b->heaps[i].combined.reason());
            }
            EXPECT_EQ(a->conflict.has_value(), b->conflict.has_value());
            if (a->conflict && b->conflict) {
                EXPECT_EQ(a->conflict->reason, b->conflict->reason);
            }
        }
    }
}

TEST(Protocol, PlacementOnTheHostKernelsHeapsRoundTripsAndAnUnknownOneIsEproto) {
    FakeKernelHeapDir dir;
    dir.addHeap("system");
    dir.addHeap("linux,cma");
    dir.addHeap("zz"); // matches no heap: "kernel:zz", the last heap
    auto context = Context::create(
        defaultPlatform(), ContextOptions{.kernelHeapDir = dir.path(), .placeKernelHeaps = true, .readyPool = {}});
    ASSERT_TRUE(context) << context.error().toString();
    std::span<const HeapProperties> heaps = (*context)->heapProperties();
    ASSERT_EQ(heaps.back().kernelHeap, "zz");
    Writer w;
    encode(w, PlatformView{(*context)->platform(), heaps});
    {
        Reader r(w.bytes());
        auto back = decode<PlatformBody>(r);
        ASSERT_TRUE(back) << back.error().toString();
        EXPECT_EQ(r.remaining(), 0u);
        ASSERT_EQ(back->heaps.size(), heaps.size());
        for (size_t i = 0; i < heaps.size(); ++i) {
            SCOPED_TRACE(heaps[i].name);
            EXPECT_EQ(back->heaps[i].kernelPlacement, heaps[i].kernelPlacement);
            EXPECT_EQ(back->heaps[i].kernelHeap, heaps[i].kernelHeap);
        }
        // A client's explain over the decoded copy names the kernel heap, as the daemon's would.
        const std::vector<std::string> gpu = {"gpu"};
        auto local = explain((*context)->platform(), heaps, gpu, 1 << 20, CpuAccess::Rare);
        auto remote = explain(back->platform, back->heaps, gpu, 1 << 20, CpuAccess::Rare);
        ASSERT_TRUE(local && remote);
        EXPECT_EQ(local->kernelHeap, std::optional<std::string>("system"));
        EXPECT_EQ(remote->kernelHeap, local->kernelHeap);
        EXPECT_EQ(remote->ranking, local->ranking);
    }
    // The last heap's part ends the body: {u32 placement, u32 0}, then "zz" as {u32 2, u32 0} + 8 bytes.
    std::vector<std::byte> bytes = w.bytes();
    ASSERT_GE(bytes.size(), 24u);
    const size_t at = bytes.size() - 24;
    ASSERT_EQ(static_cast<uint8_t>(bytes[at]), static_cast<uint8_t>(KernelPlacement::Unplaced));
    bytes[at] = std::byte{5};
    Reader r(bytes);
    auto bad = decode<PlatformBody>(r);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), EPROTO);

    // Without placement the body is what it was: no part for it.
    auto plain = Context::create(defaultPlatform(), ContextOptions{.kernelHeaps = false, .readyPool = {}});
    ASSERT_TRUE(plain);
    Writer before;
    encode(before, PlatformView{(*plain)->platform(), (*plain)->heapProperties()});
    Reader rb(before.bytes());
    auto modelled = decode<PlatformBody>(rb);
    ASSERT_TRUE(modelled);
    for (const HeapProperties& h : modelled->heaps)
        EXPECT_EQ(h.kernelPlacement, KernelPlacement::Modelled) << h.name;
    EXPECT_LT(before.bytes().size(), w.bytes().size());
}

TEST(Protocol, HeapsRoundTrip) {
    auto heaps = someHeaps();
    Writer w;
    encode(w, heaps);
    Reader r(w.bytes());
    auto back = decode<std::vector<HeapInfo>>(r);
    ASSERT_TRUE(back);
    expectSameHeaps(*back, heaps);
}

TEST(Protocol, TheHeapListOfAPlacedDaemonCarriesPlacementAfterTheListOnly) {
    const std::vector<HeapInfo> modelled = someHeaps();
    Writer plain;
    encode(plain, modelled);
    std::vector<HeapInfo> heaps = modelled;
    heaps[0].properties.kernelPlacement = KernelPlacement::Placed;
    heaps[0].properties.kernelHeap = "system";
    heaps[1].properties.kernelPlacement = KernelPlacement::NotInKernel;
    Writer w;
    encode(w, heaps);
    // Per heap {u32 placement, u32 0} + its node as {u32 n, u32 0} + bytes padded to 8.
    ASSERT_EQ(w.bytes().size(), plain.bytes().size() + (8 + 8 + 8) + (8 + 8));
    {
        Reader r(w.bytes());
        auto back = decode<std::vector<HeapInfo>>(r);
        ASSERT_TRUE(back) << back.error().toString();
        EXPECT_EQ(r.remaining(), 0u);
        expectSameHeaps(*back, heaps);
        ASSERT_EQ(back->size(), 2u);
        EXPECT_EQ((*back)[0].properties.kernelPlacement, KernelPlacement::Placed);
        EXPECT_EQ((*back)[0].properties.kernelHeap, "system");
        EXPECT_EQ((*back)[1].properties.kernelPlacement, KernelPlacement::NotInKernel);
        EXPECT_EQ((*back)[1].properties.kernelHeap, "");
    }
    // What an older daemon sends (the list alone) is every heap modelled,
    // and the list's bytes are the same as before: an older client reads
    // them and stops.
    ASSERT_TRUE(std::equal(plain.bytes().begin(), plain.bytes().end(), w.bytes().begin()));
    {
        Reader r(plain.bytes());
        auto back = decode<std::vector<HeapInfo>>(r);
        ASSERT_TRUE(back);
        for (const HeapInfo& h : *back)
            EXPECT_EQ(h.properties.kernelPlacement, KernelPlacement::Modelled) << h.name;
    }
    // A placement past the last defined one, or placements cut short, are EPROTO.
    std::vector<std::byte> bad = w.bytes();
    bad[plain.bytes().size()] = std::byte{static_cast<uint8_t>(KernelPlacement::Alias) + 1};
    Reader rb(bad);
    auto undefined = decode<std::vector<HeapInfo>>(rb);
    ASSERT_FALSE(undefined);
    EXPECT_EQ(undefined.error().code(), EPROTO);
    std::vector<std::byte> cut(w.bytes().begin(), w.bytes().end() - 8);
    Reader rc(cut);
    auto truncated = decode<std::vector<HeapInfo>>(rc);
    ASSERT_FALSE(truncated);
    EXPECT_EQ(truncated.error().code(), EPROTO);
}

AllocForReply someAllocFor() {
    AllocForReply a;
    a.buffer = 7;
    a.size = 1 << 20;
    a.heap = "linux,cma@50000000";
    a.kernelHeap = "linux,cma@50000000";
    a.reason = "the best of the heaps that serve display and gpu";
    a.exporter = "linux,cma@50000000";
    a.devices = {{"display", "/sys/devices/platform/soc@0/32e80000.display-controller", ""},
                 {"gpu", "/sys/devices/platform/soc@0/38000000.gpu", "etnaviv"}};
    return a;
}

Result<SessionAllocatedFor> finishAllocFor(AllocForReply body, std::vector<std::string> devices) {
    auto fd = createSealedMemfd("alloc-for", 4096);
    EXPECT_TRUE(fd);
    auto request = cenalloc::AllocForRequest::make(std::move(devices), 4096, "asked");
    EXPECT_TRUE(request);
    return ops::AllocFor::finish(std::move(body), std::move(*fd), *request);
}

TEST(Protocol, AllocForRepliesCarryTheExporterAndEachDevicesSysfsPathAndDriver) {
    const AllocForReply a = someAllocFor();
    Writer w;
    encode(w, a);
    Reader r(w.bytes());
    auto back = decode<AllocForReply>(r);
    ASSERT_TRUE(back) << back.error().toString();
    EXPECT_EQ(r.remaining(), 0u);
    EXPECT_EQ(back->exporter, a.exporter);
    ASSERT_EQ(back->devices.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(back->devices[i].name, a.devices[i].name);
        EXPECT_EQ(back->devices[i].sysfsPath, a.devices[i].sysfsPath);
        EXPECT_EQ(back->devices[i].driver, a.devices[i].driver);
    }
    auto finished = finishAllocFor(*back, {"display", "gpu"});
    ASSERT_TRUE(finished) << finished.error().toString();
    EXPECT_EQ(finished->name, "asked");
    EXPECT_EQ(finished->exporter, a.exporter);
    ASSERT_EQ(finished->devices.size(), 2u);
    EXPECT_EQ(finished->devices[1].driver, "etnaviv");

    // Every prefix of the body either decodes as an older daemon's (ending
    // right after the reason) or is EPROTO: never a partial device list.
    AllocForReply older = a;
    older.exporter.clear();
    older.devices.clear();
    Writer wo;
    encode(wo, older);
    const std::vector<std::byte>& full = w.bytes();
    const size_t olderSize = wo.bytes().size() - 16; // its empty exporter and device list are 16 bytes
    for (size_t n = 0; n < full.size(); n += 8) {
        SCOPED_TRACE(n);
        std::vector<std::byte> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        Reader rc(cut);
        auto partial = decode<AllocForReply>(rc);
        EXPECT_EQ(bool(partial), n == olderSize) << (partial ? "" : partial.error().toString());
        if (!partial) {
            EXPECT_EQ(partial.error().code(), EPROTO);
        }
    }
    // An older daemon's reply: the devices are the names asked, nothing known of them.
    std::vector<std::byte> olderBytes(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(olderSize));
    Reader ro(olderBytes);
    auto fromOlder = decode<AllocForReply>(ro);
    ASSERT_TRUE(fromOlder);
    auto finishedOlder = finishAllocFor(*fromOlder, {"display", "gpu"});
    ASSERT_TRUE(finishedOlder) << finishedOlder.error().toString();
    ASSERT_EQ(finishedOlder->devices.size(), 2u);
    EXPECT_EQ(finishedOlder->devices[0].name, "display");
    EXPECT_EQ(finishedOlder->devices[0].sysfsPath, "");
    EXPECT_EQ(finishedOlder->exporter, "");
}

TEST(Protocol, AnAllocForReplyWhoseDevicesAreNotTheOnesAskedOrTooLongIsEproto) {
    struct Case {
        const char* what;
        void (*change)(AllocForReply&);
    };
    const Case cases[] = {
        {"a device fewer", [](AllocForReply& a) { a.devices.pop_back(); }},
        {"a device more",
         [](AllocForReply& a) {
             a.devices.push_back({"usb", "", ""});
         }},
        {"another device", [](AllocForReply& a) { a.devices[1].name = "usb"; }},
        {"the devices swapped", [](AllocForReply& a) { std::swap(a.devices[0], a.devices[1]); }},
        {"a sysfs path past PATH_MAX", [](AllocForReply& a) { a.devices[0].sysfsPath.assign(4096, 'p'); }},
        {"a driver past NAME_MAX", [](AllocForReply& a) { a.devices[1].driver.assign(256, 'd'); }},
        {"an exporter longer than a heap name", [](AllocForReply& a) { a.exporter.assign(65, 'e'); }},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        AllocForReply a = someAllocFor();
        c.change(a);
        auto finished = finishAllocFor(a, {"display", "gpu"});
        ASSERT_FALSE(finished);
        EXPECT_EQ(finished.error().code(), EPROTO);
    }
    // At the limits it is accepted.
    AllocForReply longest = someAllocFor();
    longest.devices[0].sysfsPath.assign(4095, 'p');
    longest.devices[1].driver.assign(255, 'd');
    longest.exporter.assign(64, 'e');
    EXPECT_TRUE(finishAllocFor(longest, {"display", "gpu"}));
}

// ---------------------------------------------------- byte-identical bodies
//
// The encodings of these values were taken from the hand-written encoders
// the field descriptions replaced (FNV-1a of the bytes): the wire format
// did not change, and a description that drifts from it fails here.
uint64_t fnv1a(const std::vector<std::byte>& bytes) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (std::byte b : bytes) {
        h ^= static_cast<uint8_t>(b);
        h *= 0x100000001b3ull;
    }
    return h;
}
std::vector<cenalloc::HeapInfo> goldenHeaps() {
    using namespace cenalloc;
    HeapInfo a;
    a.name = "system";
    a.properties.name = "system";
    a.properties.description = "pages from anywhere";
    a.properties.kind = HeapKind::System;
    a.properties.lowestAddress = 0x40000000;
    a.properties.highestAddress = 0x8ffffffff;
    a.properties.maxChunkSize = 1 << 20;
    a.properties.minChunkSize = 8192;
    a.properties.chunkAlignment = 65536;
    a.properties.accessBits = 0x3;
    a.properties.capacity = 1ull << 32;
    a.properties.validHeapFlags = 0x5;
    a.properties.cached = true;
    a.properties.honoursAddressLimit = false;
    a.stats = {3, 12288, 65536, 1, 9};
    a.freeBytes = 12345;
    HeapInfo b;
    b.name = "linux,cma";
    b.properties.name = "linux,cma";
    b.properties.kind = HeapKind::Kernel;
    b.properties.contiguous = true;
    b.properties.cached = false;
    return {a, b};
}
cenalloc::AllocatorStats goldenStats() {
    using namespace cenalloc;
    AllocatorStats stats;
    stats.heaps = goldenHeaps();
    IommuDomainStats d;
    d.name = "gpu-smmu";
    d.pageSize = 4096;
    d.apertureBase = 0x100000;
    d.apertureSize = 0xfff00000;
    d.hits = 1, d.misses = 2, d.evictions = 3, d.faults = 4, d.usedIovaBytes = 5, d.cachedIovaBytes = 6;
    d.mappedBytes = 7, d.mappingCount = 8, d.inUseCount = 9;
    stats.domains = {d, IommuDomainStats{}};
    stats.liveBuffers = 42;
    stats.lifetimeBugs = {"buffer 3 released with 1 device(s) still attached", ""};
    stats.limits = {1, 2, 3, 4, 5, 6, 7};
    return stats;
}
std::vector<cenalloc::BufferInfo> goldenBuffers() {
    using namespace cenalloc;
    BufferInfo b;
    b.id = 7;
    b.size = 8192;
    b.fdFlags = 02000002;
    b.exporter = "system";
    b.name = "frame";
    b.inode = 991;
    b.references = -2;
    b.hasStorage = true;
    b.inHostKernel = true;
    b.heap = "system";
    b.chunks = {{0x40000000, 4096}, {0x40010000, 4096}};
    b.attachedDevices = {"gpu", "display"};
    b.mappings = {{"gpu", DmaDirection::ToDevice, "gpu-smmu", {{0x100000, 8192}}},
                  {"display", DmaDirection::FromDevice, "", {{0x40000000, 4096}, {0x40010000, 4096}}}};
    b.cpuAccessDepth = 1;
    b.cacheMaintenanceOps = 5;
    b.syncViolations = 1;
    b.exporterState = "deferred, cpu access rare";
    BufferInfo empty;
    empty.id = 8;
    return {b, empty};
}
cenalloc::Platform goldenPlatform() {
    using namespace cenalloc;
    Platform facts = defaultPlatform();
    facts.vendorHeaps = std::vector<std::string>{"system-dma32", "system-uncached"};
    for (ReservedRegion& r : facts.regions) {
        if (r.name == "vpu-carveout")
            r.owners = {"codec"};
    }
    for (Device& d : facts.devices) {
        if (d.name == "isp") {
            d.iommuGroup = "0x10";
        }
        if (d.name == "display") {
            d.factSource = "drivers/gpu/drm/example.c: drm_gem_dma helpers";
            d.assumedFacts = {"needs one contiguous buffer", "not coherent"};
        }
    }
    return facts;
}

TEST(Protocol, BodiesKeepTheirVersion1Bytes) {
    auto check = [](std::string_view what, const std::vector<std::byte>& bytes, size_t size, uint64_t hash) {
        SCOPED_TRACE(what);
        EXPECT_EQ(bytes.size(), size);
        EXPECT_EQ(fnv1a(bytes), hash);
    };
    {
        Writer w;
        encode(w, goldenHeaps());
        check("heaps", w.bytes(), 312, 0xce18dd9ec11f87b3ull);
    }
    {
        Writer w;
        encode(w, goldenStats());
        // Version 1's bytes, then the (here empty) list of ready pools a
        // version-1 client does not read.
        ASSERT_GT(w.bytes().size(), 688u);
        check("stats", std::vector<std::byte>(w.bytes().begin(), w.bytes().begin() + 688), 688, 0x336041af4bb4e0f2ull);
    }
    {
        Writer w;
        encode(w, goldenBuffers());
        check("bufinfo", w.bytes(), 408, 0x296f08885cad3b72ull);
    }
    {
        Writer w;
        encode(w, SessionMapping{3, DmaDirection::FromDevice, {{0x1000, 4096}, {0x9000, 8192}}});
        check("mapping", w.bytes(), 48, 0xd1aa90bd26f38cf6ull);
    }
    {
        auto context = Context::create(goldenPlatform());
        ASSERT_TRUE(context) << context.error().toString();
        auto properties = (*context)->heapProperties();
        std::vector<HeapProperties> heaps(properties.begin(), properties.end());
        heaps[0].owners = {"a", "bc"};
        Writer w;
        encode(w, PlatformView{(*context)->platform(), heaps});
        check("platform", w.bytes(), 2752, 0xa751abe7dd58aed9ull);
        // And what it encodes decodes to what it was.
        Reader r(w.bytes());
        auto back = decode<PlatformBody>(r);
        ASSERT_TRUE(back) << back.error().toString();
        Writer again;
        encode(again, PlatformView{back->platform, back->heaps});
        EXPECT_EQ(again.bytes(), w.bytes());
    }
    // Each list body decodes to values that encode to the same bytes.
    for (const auto& buffers : {goldenBuffers()}) {
        Writer w;
        encode(w, buffers);
        Reader r(w.bytes());
        auto back = decode<std::vector<BufferInfo>>(r);
        ASSERT_TRUE(back);
        Writer again;
        encode(again, *back);
        EXPECT_EQ(again.bytes(), w.bytes());
    }
    {
        Writer w;
        encode(w, goldenStats());
        Reader r(w.bytes());
        auto back = decode<AllocatorStats>(r);
        ASSERT_TRUE(back);
        EXPECT_EQ(back->limits, goldenStats().limits);
        Writer again;
        encode(again, *back);
        EXPECT_EQ(again.bytes(), w.bytes());
    }
}

TEST(Protocol, AStatsReplyFromBeforeTheLimitsDecodesWithZeroLimits) {
    Writer w;
    encode(w, goldenStats());
    std::vector<std::byte> older = w.bytes();
    older.resize(688 - 64); // version 1 (688 bytes, see above) without the limits
    Reader r(older);
    auto back = decode<AllocatorStats>(r);
    ASSERT_TRUE(back) << back.error().toString();
    EXPECT_EQ(back->limits, ServiceLimits{});
    EXPECT_EQ(back->lifetimeBugs, goldenStats().lifetimeBugs);
}

TEST(Protocol, ReadyPoolStatisticsRoundTripAndAreEmptyFromAnOlderDaemon) {
    AllocatorStats stats = goldenStats();
    stats.readyPools = {ReadyPoolStats{"system", 8 * 1024 * 1024, 2, 10, 3, 12, 4567},
                        ReadyPoolStats{"", 8 * 1024 * 1024, 2, 10, 3, 12, 4567}};
    Writer w;
    encode(w, stats);
    EXPECT_EQ(w.bytes().size() % 8, 0u);
    Reader r(w.bytes());
    auto back = decode<AllocatorStats>(r);
    ASSERT_TRUE(back) << back.error().toString();
    EXPECT_EQ(back->readyPools, stats.readyPools);
    EXPECT_EQ(back->limits, stats.limits);
    EXPECT_EQ(r.remaining(), 0u);

    Writer older;
    encode(older, goldenStats());
    std::vector<std::byte> v1 = older.bytes();
    v1.resize(688); // a daemon from before the pool
    Reader r1(v1);
    auto fromOlder = decode<AllocatorStats>(r1);
    ASSERT_TRUE(fromOlder) << fromOlder.error().toString();
    EXPECT_TRUE(fromOlder->readyPools.empty());
    EXPECT_EQ(fromOlder->limits, goldenStats().limits);
}

TEST(Protocol, ReservedRequestFieldsAreCheckedOnceForEveryRequest) {
    AllocateRequest a{};
    a.reserved = 1;
    std::vector<std::byte> bytes(sizeof a);
    std::memcpy(bytes.data(), &a, sizeof a);
    auto bad = decodeRequest<AllocateRequest>(bytes, "allocate");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), EINVAL);
    EXPECT_EQ(bad.error().message(), "allocate: reserved field is not zero");
    a.reserved = 0;
    std::memcpy(bytes.data(), &a, sizeof a);
    EXPECT_TRUE(decodeRequest<AllocateRequest>(bytes, "allocate"));
    // A request without reserved fields has nothing more to check.
    EXPECT_TRUE(decodeRequest<IdRequest>(std::vector<std::byte>(8, std::byte{0xff}), "detach"));
}

} // namespace
} // namespace cenalloc::wire
