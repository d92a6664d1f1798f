// SPDX-License-Identifier: MIT
// Tests of deferred buffers (the cenalloc exporter): storage at first use, attach checks, late attach, detach.
#include <cenalloc/context.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/memfd.h>
#include <cenalloc/units.h>

#include "alloc/constraint_work.h"
#include "support/context.h"
#include "support/core_board.h"

namespace cenalloc {
namespace {

using test::contains;
using test::deviceOf;
using test::makeContext;

constexpr uint64_t kFrame = 8 * MiB;
constexpr uint64_t k1GiB = uint64_t{1} << 30;
constexpr uint64_t k4GiB = uint64_t{1} << 32;

std::vector<HeapStats> allStats(const Context& context) {
    std::vector<HeapStats> stats;
    for (const auto& heap : context.heaps())
        stats.push_back(heap->stats());
    return stats;
}

uint64_t liveBuffersIn(const std::vector<HeapStats>& stats) {
    uint64_t n = 0;
    for (const HeapStats& s : stats)
        n += s.liveBuffers;
    return n;
}

// A board where two reasonable devices cannot share a buffer: a legacy
// master that reaches only the first GiB (scatter-gather is fine) and a
// scanout engine that needs one contiguous buffer, whose only contiguous
// pools lie above 4 GiB. Plus two masters that reach disjoint kinds of memory.
Platform conflictBoard() {
    Platform p;
    p.name = "conflict";
    p.memory = {{.name = "low", .base = 0x0, .size = 1 * GiB}, {.name = "high", .base = k4GiB, .size = 4 * GiB}};
    p.regions = {
        {.name = "cma-a", .kind = RegionKind::Cma, .base = k4GiB + 3 * GiB, .size = 64 * MiB},
        {.name = "cma-b", .kind = RegionKind::Cma, .base = k4GiB + 3 * GiB + 64 * MiB, .size = 64 * MiB},
    };
    auto device = [](std::string name) {
        Device d;
        d.name = std::move(name);
        return d;
    };
    Device legacy = device("legacy");
    legacy.constraints.dmaMask = legacy.constraints.coherentDmaMask = k1GiB - 1;
    Device scanout = device("scanout");
    scanout.constraints.maxSegmentSize = 0xffffffff;
    scanout.constraints.maxSegmentCount = 1;
    scanout.constraints.contiguous = true;
    Device secure = device("secure");
    secure.constraints.accessBits = 0x2;
    Device normal = device("normal");
    normal.constraints.accessBits = 0x1;
    p.devices = {legacy, scanout, secure, normal};
    EXPECT_TRUE(validatePlatform(p));
    return p;
}

TEST(Deferred, CreateGivesAnFdButNoStorage) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    const std::vector<HeapStats> before = allStats(*context);
    auto buffer = context->create(5000, "later");
    ASSERT_TRUE(buffer) << buffer.error().toString();
    const Buffer& b = **buffer;
    EXPECT_EQ(b.size(), 8 * KiB);
    EXPECT_TRUE(isSizeSealed(b.fd()));
    auto fd = b.dupFd();
    ASSERT_TRUE(fd);
    EXPECT_FALSE(b.hasStorage());
    EXPECT_TRUE(b.chunks().empty());
    EXPECT_EQ(b.heapName(), "");
    EXPECT_STREQ(b.exporterName(), "cenalloc");
    EXPECT_EQ(b.name(), "later");
    EXPECT_EQ(context->liveBuffers(), 1u);
    EXPECT_EQ(liveBuffersIn(allStats(*context)), liveBuffersIn(before));

    // Attaching decides nothing yet.
    auto gpu = (*buffer)->attach(deviceOf(*context, "gpu"));
    auto display = (*buffer)->attach(deviceOf(*context, "display"));
    ASSERT_TRUE(gpu && display);
    EXPECT_FALSE(b.hasStorage());
    EXPECT_EQ(liveBuffersIn(allStats(*context)), liveBuffersIn(before));
    EXPECT_EQ(b.info().attachedDevices, (std::vector<std::string>{"gpu", "display"}));
}

TEST(Deferred, CreateValidatesSizeAndNameWithoutLeaking) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    const size_t fds = test::openFdCount();
    struct Case {
        const char* what;
        uint64_t size;
        std::string name;
    };
    const Case cases[] = {
        {"zero size", 0, ""},
        {"UINT64_MAX overflows when page-aligned", UINT64_MAX, ""},
        {"a name of 32 bytes", 4 * KiB, std::string(32, 'n')},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        auto buffer = context->create(c.size, c.name);
        ASSERT_FALSE(buffer);
        EXPECT_EQ(buffer.error().code(), EINVAL);
        EXPECT_EQ(context->liveBuffers(), 0u);
        EXPECT_EQ(test::openFdCount(), fds);
    }
    auto longest = context->create(4 * KiB, std::string(31, 'n'));
    EXPECT_TRUE(longest);
}

enum class FirstUse { Map, Mmap, CpuAccess };

TEST(Deferred, StorageArrivesAtFirstUseFromTheBestHeapForTheAttachedSet) {
    struct Case {
        const char* what;
        FirstUse use;
        std::vector<std::string> devices;
    };
    const Case cases[] = {
        {"first map, gpu + display", FirstUse::Map, {"gpu", "display"}},
        {"first mmap, gpu + display", FirstUse::Mmap, {"gpu", "display"}},
        {"first cpu access, gpu + display", FirstUse::CpuAccess, {"gpu", "display"}},
        {"first map, gpu + isp", FirstUse::Map, {"gpu", "isp"}},
        {"first mmap, usb + isp", FirstUse::Mmap, {"usb", "isp"}},
        {"first cpu access, codec", FirstUse::CpuAccess, {"codec"}},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        auto context = makeContext();
        ASSERT_TRUE(context);
        auto buffer = context->create(kFrame);
        ASSERT_TRUE(buffer);
        std::vector<Attachment> attachments;
        for (const std::string& name : c.devices) {
            auto a = (*buffer)->attach(deviceOf(*context, name));
            ASSERT_TRUE(a) << a.error().toString();
            attachments.push_back(std::move(*a));
        }
        const std::vector<HeapStats> before = allStats(*context);
        ASSERT_FALSE((*buffer)->hasStorage());

        Attachment::Mapping mapping;
        BufferMapping cpu;
        CpuAccessGuard guard;
        switch (c.use) {
        case FirstUse::Map: {
            auto m = attachments.front().map(DmaDirection::Bidirectional);
            ASSERT_TRUE(m) << m.error().toString();
            mapping = std::move(*m);
            break;
        }
        case FirstUse::Mmap: {
            auto m = (*buffer)->mmap();
            ASSERT_TRUE(m) << m.error().toString();
            cpu = std::move(*m);
            break;
        }
        case FirstUse::CpuAccess: {
            auto g = (*buffer)->beginCpuAccess(kSyncReadWrite);
            ASSERT_TRUE(g) << g.error().toString();
            guard = std::move(*g);
            break;
        }
        }
        ASSERT_TRUE((*buffer)->hasStorage());

        auto explanation = context->explain(c.devices, kFrame);
        ASSERT_TRUE(explanation) << explanation.error().toString();
        ASSERT_TRUE(explanation->heap);
        const std::string heap = (*buffer)->heapName();
        EXPECT_EQ(heap, *explanation->heap);
        EXPECT_EQ((*buffer)->info().heap, heap);
        EXPECT_TRUE(contains((*buffer)->info().exporterState, heap)) << (*buffer)->info().exporterState;

        // Exactly one heap gained exactly this buffer.
        const std::vector<HeapStats> after = allStats(*context);
        for (size_t i = 0; i < after.size(); ++i) {
            const bool chosen = context->heaps()[i]->name() == heap;
            SCOPED_TRACE(context->heaps()[i]->name());
            EXPECT_EQ(after[i].liveBuffers, before[i].liveBuffers + (chosen ? 1 : 0));
            EXPECT_EQ(after[i].liveBytes, before[i].liveBytes + (chosen ? kFrame : 0));
        }
        // Every attached device can map it.
        for (Attachment& a : attachments) {
            auto m = a.map(DmaDirection::Bidirectional);
            EXPECT_TRUE(m) << a.device().name() << ": " << m.error().toString();
        }
        // A second use allocates nothing more.
        auto again = (*buffer)->mmap();
        ASSERT_TRUE(again);
        EXPECT_EQ(liveBuffersIn(allStats(*context)), liveBuffersIn(after));
    }
}

TEST(Deferred, AReleasedBufferThatNeverHadStorageLeavesNoTrace) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    const std::vector<HeapStats> before = allStats(*context);
    {
        auto buffer = context->create(kFrame);
        ASSERT_TRUE(buffer);
        auto a = (*buffer)->attach(deviceOf(*context, "display"));
        ASSERT_TRUE(a);
    }
    EXPECT_EQ(context->liveBuffers(), 0u);
    const std::vector<HeapStats> after = allStats(*context);
    for (size_t i = 0; i < after.size(); ++i) {
        EXPECT_EQ(after[i].totalAllocations, before[i].totalAllocations);
        EXPECT_EQ(after[i].liveBuffers, before[i].liveBuffers);
    }
    EXPECT_TRUE(context->lifetimeBugs().empty());
}

TEST(Deferred, AnAttachThatLeavesNoHeapIsRefusedAndChangesNothing) {
    auto context = makeContext(conflictBoard());
    ASSERT_TRUE(context);
    struct Case {
        const char* first;
        const char* second;
    };
    for (const Case& c :
         {Case{"legacy", "scanout"}, Case{"scanout", "legacy"}, Case{"secure", "normal"}, Case{"normal", "secure"}}) {
        SCOPED_TRACE(std::string(c.first) + " then " + c.second);
        // Each device alone can be served.
        ASSERT_TRUE(context->explain(std::vector<std::string>{c.first}, kFrame)->satisfiable);
        ASSERT_TRUE(context->explain(std::vector<std::string>{c.second}, kFrame)->satisfiable);

        auto buffer = context->create(kFrame);
        ASSERT_TRUE(buffer);
        auto first = (*buffer)->attach(deviceOf(*context, c.first));
        ASSERT_TRUE(first) << first.error().toString();
        const BufferInfo before = (*buffer)->info();

        auto second = (*buffer)->attach(deviceOf(*context, c.second));
        ASSERT_FALSE(second);
        EXPECT_EQ(second.error().code(), EINVAL);
        EXPECT_TRUE(contains(second.error().message(), std::string("'") + c.second + "'")) << second.error().message();

        const BufferInfo after = (*buffer)->info();
        EXPECT_EQ(after.attachedDevices, before.attachedDevices);
        EXPECT_EQ(after.attachedDevices, std::vector<std::string>{c.first});
        EXPECT_FALSE(after.hasStorage);

        // The refused device left no trace: storage is what the first device alone gets.
        auto mapping = first->map(DmaDirection::Bidirectional);
        ASSERT_TRUE(mapping) << mapping.error().toString();
        auto alone = context->explain(std::vector<std::string>{c.first}, kFrame);
        ASSERT_TRUE(alone && alone->heap);
        EXPECT_EQ((*buffer)->heapName(), *alone->heap);
        if (std::string(c.first) == "legacy") {
            for (const PhysChunk& chunk : (*buffer)->chunks())
                EXPECT_LE(chunk.end(), k1GiB);
        }
    }
}

// A client may attach one device to one buffer thousands of times (a
// daemon session: 4096). Each detach recomputes the intersection of what
// remains, under the buffer's lock and the daemon's: merging every remaining
// attachment made tearing them down quadratic (some 2 million device merges
// for 2000 attachments, seconds of every other client's time).
TEST(Deferred, ADetachMergesEachDistinctRemainingDeviceNotEachAttachment) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    auto buffer = context->create(kFrame);
    ASSERT_TRUE(buffer);
    auto display = (*buffer)->attach(deviceOf(*context, "display"));
    ASSERT_TRUE(display) << display.error().toString();
    constexpr size_t kAttachments = 2000;
    std::vector<Attachment> gpus;
    for (size_t i = 0; i < kAttachments; ++i) {
        auto gpu = (*buffer)->attach(deviceOf(*context, "gpu"));
        ASSERT_TRUE(gpu) << gpu.error().toString();
        gpus.push_back(std::move(*gpu));
    }
    const uint64_t before = deviceContributionsWorkedOut();
    // Oldest first, the order that is no help to finding them either.
    for (Attachment& gpu : gpus)
        gpu.detach();
    const uint64_t merged = deviceContributionsWorkedOut() - before;
    EXPECT_LE(merged, 2u) << "the display, once, when the last gpu went";
    // What remains is the display's alone: contiguous storage.
    EXPECT_EQ((*buffer)->info().attachedDevices, std::vector<std::string>{"display"});
    auto mapping = display->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping) << mapping.error().toString();
    EXPECT_EQ((*buffer)->heapName(), "linux,cma");
}

TEST(Deferred, DetachRecomputesTheIntersection) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    // Control: with the display attached, the buffer must be contiguous.
    {
        auto buffer = context->create(kFrame);
        ASSERT_TRUE(buffer);
        auto display = (*buffer)->attach(deviceOf(*context, "display"));
        auto gpu = (*buffer)->attach(deviceOf(*context, "gpu"));
        ASSERT_TRUE(display && gpu);
        auto mapping = gpu->map(DmaDirection::Bidirectional);
        ASSERT_TRUE(mapping) << mapping.error().toString();
        EXPECT_EQ((*buffer)->heapName(), "linux,cma");
    }
    // The display leaves before the first map: nothing needs contiguity any more.
    auto buffer = context->create(kFrame);
    ASSERT_TRUE(buffer);
    auto display = (*buffer)->attach(deviceOf(*context, "display"));
    auto gpu = (*buffer)->attach(deviceOf(*context, "gpu"));
    ASSERT_TRUE(display && gpu);
    display->detach();
    EXPECT_EQ((*buffer)->info().attachedDevices, std::vector<std::string>{"gpu"});
    auto mapping = gpu->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping) << mapping.error().toString();
    EXPECT_EQ(context->findHeap((*buffer)->heapName())->properties().kind, HeapKind::System);
    EXPECT_EQ((*buffer)->heapName(), *context->explain(std::vector<std::string>{"gpu"}, kFrame)->heap);
    EXPECT_GT(test::mergedChunks((*buffer)->chunks()).size(), 1u) << "scattered pages, not one contiguous block";
}

TEST(Deferred, DetachingTheDeviceThatConflictedLetsTheOtherJoin) {
    auto context = makeContext(conflictBoard());
    ASSERT_TRUE(context);
    auto buffer = context->create(kFrame);
    ASSERT_TRUE(buffer);
    auto scanout = (*buffer)->attach(deviceOf(*context, "scanout"));
    ASSERT_TRUE(scanout);
    ASSERT_FALSE((*buffer)->attach(deviceOf(*context, "legacy")));
    scanout->detach();
    auto legacy = (*buffer)->attach(deviceOf(*context, "legacy"));
    ASSERT_TRUE(legacy) << legacy.error().toString();
    auto mapping = legacy->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping) << mapping.error().toString();
    for (const PhysChunk& chunk : (*buffer)->chunks())
        EXPECT_LE(chunk.end(), k1GiB);
}

TEST(Deferred, LateAttachIsCheckedAgainstTheStorage) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    const DmaDevice& gpu = deviceOf(*context, "gpu");
    auto buffer = context->create(kFrame, "late");
    ASSERT_TRUE(buffer);
    auto gpuAttachment = (*buffer)->attach(gpu);
    ASSERT_TRUE(gpuAttachment);
    auto gpuMapping = gpuAttachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(gpuMapping) << gpuMapping.error().toString();
    // The gpu alone sits behind an IOMMU: scattered pages anywhere will do.
    ASSERT_EQ(context->findHeap((*buffer)->heapName())->properties().kind, HeapKind::System);
    for (const PhysChunk& chunk : (*buffer)->chunks())
        ASSERT_GE(chunk.address, k4GiB) << "precondition: storage above 4 GiB";
    const std::string heap = (*buffer)->heapName();
    const std::vector<PhysChunk> chunks = (*buffer)->chunks();
    const SgTable segments = gpuMapping->segments();

    const std::vector<std::byte> data(64 * KiB, std::byte{0x42});
    ASSERT_TRUE(gpu.write(segments.front().dmaAddress, data));

    // Devices without an IOMMU and a 32-bit mask cannot use it, whatever they need.
    for (const char* name : {"display", "usb", "camera"}) {
        SCOPED_TRACE(name);
        auto late = (*buffer)->attach(deviceOf(*context, name));
        ASSERT_FALSE(late);
        EXPECT_EQ(late.error().code(), EBUSY);
        EXPECT_TRUE(contains(late.error().message(), name)) << late.error().message();
        EXPECT_TRUE(contains(late.error().message(), heap)) << late.error().message();
        EXPECT_EQ(deviceOf(*context, name).activeMappingCount(), 0u);
    }
    EXPECT_TRUE(contains((*buffer)->attach(deviceOf(*context, "usb")).error().message(), "32-bit"));

    // The buffer, its attachment and its mapping are untouched.
    BufferInfo info = (*buffer)->info();
    EXPECT_EQ(info.attachedDevices, std::vector<std::string>{"gpu"});
    ASSERT_EQ(info.mappings.size(), 1u);
    EXPECT_EQ(info.mappings[0].segments, segments);
    EXPECT_EQ((*buffer)->heapName(), heap);
    EXPECT_EQ((*buffer)->chunks(), chunks);
    EXPECT_TRUE(gpuMapping->mapped());
    std::vector<std::byte> out(64 * KiB);
    ASSERT_TRUE(gpu.read(segments.front().dmaAddress, out));
    EXPECT_EQ(out, data);

    // The isp is behind an IOMMU: its 32-bit mask applies to IOVAs, so the
    // storage serves it and the attach succeeds.
    const DmaDevice& isp = deviceOf(*context, "isp");
    auto ispAttachment = (*buffer)->attach(isp);
    ASSERT_TRUE(ispAttachment) << ispAttachment.error().toString();
    auto ispMapping = ispAttachment->map(DmaDirection::ToDevice);
    ASSERT_TRUE(ispMapping) << ispMapping.error().toString();
    ASSERT_TRUE(isp.read(ispMapping->segments().front().dmaAddress, out));
    EXPECT_EQ(out, data);
    EXPECT_EQ((*buffer)->chunks(), chunks);
    EXPECT_EQ((*buffer)->info().attachedDevices, (std::vector<std::string>{"gpu", "isp"}));
}

TEST(Deferred, LateAttachToStorageThatServesTheDeviceSucceeds) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    auto buffer = context->create(1 * MiB);
    ASSERT_TRUE(buffer);
    auto display = (*buffer)->attach(deviceOf(*context, "display"));
    ASSERT_TRUE(display);
    auto mapping = display->map(DmaDirection::ToDevice);
    ASSERT_TRUE(mapping);
    ASSERT_EQ((*buffer)->heapName(), "linux,cma");
    // Contiguous memory below 4 GiB serves every device of the platform but
    // the secure-only ones; none of these asked for it.
    std::vector<Attachment> attachments;
    std::vector<Attachment::Mapping> mappings;
    for (const char* name : {"usb", "camera", "gpu", "isp", "codec"}) {
        SCOPED_TRACE(name);
        auto late = (*buffer)->attach(deviceOf(*context, name));
        ASSERT_TRUE(late) << late.error().toString();
        auto m = late->map(DmaDirection::Bidirectional);
        ASSERT_TRUE(m) << m.error().toString();
        attachments.push_back(std::move(*late));
        mappings.push_back(std::move(*m));
    }
    EXPECT_EQ((*buffer)->info().attachedDevices.size(), 6u);
}

// A display that scans out one contiguous block and a USB controller that
// takes 64 KiB segments share a frame, as they do in Linux every day: the
// display's limits place the storage (a CMA block), the controller maps
// that block under its own limits as many segments. (Merging their segment
// limits into one imaginary device refused this.)
TEST(Deferred, ScatterGatherAndContiguousDevicesShareOneBufferEachWithItsOwnSegments) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    const DmaDevice& display = deviceOf(*context, "display");
    const DmaDevice& usb = deviceOf(*context, "usb");
    for (bool displayFirst : {true, false}) {
        SCOPED_TRACE(displayFirst ? "display first" : "usb first");
        auto buffer = context->create(kFrame, "frame");
        ASSERT_TRUE(buffer);
        std::vector<Attachment> attachments;
        for (const DmaDevice* d : displayFirst ? std::vector{&display, &usb} : std::vector{&usb, &display}) {
            auto a = (*buffer)->attach(*d);
            ASSERT_TRUE(a) << a.error().toString();
            attachments.push_back(std::move(*a));
        }
        Attachment& usbAttachment = attachments[displayFirst ? 1 : 0];
        Attachment& displayAttachment = attachments[displayFirst ? 0 : 1];
        auto usbMapping = usbAttachment.map(DmaDirection::FromDevice);
        ASSERT_TRUE(usbMapping) << usbMapping.error().toString();
        EXPECT_EQ((*buffer)->heapName(), "linux,cma");
        const SgTable usbSegments = usbMapping->segments();
        EXPECT_EQ(usbSegments.size(), kFrame / (64 * KiB));
        for (const SgEntry& seg : usbSegments)
            EXPECT_LE(seg.length, 64 * KiB);
        auto displayMapping = displayAttachment.map(DmaDirection::ToDevice);
        ASSERT_TRUE(displayMapping) << displayMapping.error().toString();
        ASSERT_EQ(displayMapping->segments().size(), 1u);
        EXPECT_EQ(displayMapping->segments()[0].length, kFrame);

        // The controller writes the frame through its segments; the display
        // reads it through its one.
        std::vector<std::byte> frame(kFrame);
        for (size_t i = 0; i < frame.size(); ++i)
            frame[i] = std::byte(i * 7 + 3);
        uint64_t offset = 0;
        for (const SgEntry& seg : usbSegments) {
            ASSERT_TRUE(usb.write(seg.dmaAddress, std::span(frame).subspan(offset, seg.length)));
            offset += seg.length;
        }
        std::vector<std::byte> seen(kFrame);
        ASSERT_TRUE(display.read(displayMapping->segments()[0].dmaAddress, seen));
        EXPECT_EQ(seen, frame);
    }
}

// Masters behind one IOMMU hardware with different stream IDs are in
// different IOMMU groups: each has its own domain, IOVA space and mapping
// cache, and a mapping for one is never reused for the other.
TEST(Context, SeparateIommuGroupsGetSeparateDomains) {
    Platform p = defaultPlatform();
    for (Device& d : p.devices) {
        if (d.name == "isp")
            d.iommuGroup = "0x10";
        if (d.name == "codec")
            d.iommuGroup = "0x20";
    }
    ASSERT_TRUE(validatePlatform(p));
    auto context = makeContext(p);
    ASSERT_TRUE(context);
    std::vector<std::string> names;
    for (const IommuDomainStats& s : context->domainStats())
        names.push_back(s.name);
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"gpu-smmu", "media-smmu:0x10", "media-smmu:0x20"}));

    auto buffer = context->create(1 * MiB);
    ASSERT_TRUE(buffer);
    auto isp = (*buffer)->attach(deviceOf(*context, "isp"));
    auto codec = (*buffer)->attach(deviceOf(*context, "codec"));
    ASSERT_TRUE(isp && codec);
    auto ispMapping = isp->map(DmaDirection::ToDevice);
    auto codecMapping = codec->map(DmaDirection::ToDevice);
    ASSERT_TRUE(ispMapping && codecMapping);
    for (const IommuDomainStats& s : context->domainStats()) {
        SCOPED_TRACE(s.name);
        if (s.name == "gpu-smmu")
            continue;
        EXPECT_EQ(s.misses, 1u) << "each group builds its own mapping";
        EXPECT_EQ(s.hits, 0u);
        EXPECT_EQ(s.mappingCount, 1u);
    }
    // The same group shares one: the codec joins the isp's group.
    for (Device& d : p.devices)
        if (d.name == "codec")
            d.iommuGroup = "0x10";
    auto shared = makeContext(p);
    ASSERT_TRUE(shared);
    auto b = shared->create(1 * MiB);
    ASSERT_TRUE(b);
    auto i2 = (*b)->attach(deviceOf(*shared, "isp"));
    auto c2 = (*b)->attach(deviceOf(*shared, "codec"));
    ASSERT_TRUE(i2 && c2);
    auto m1 = i2->map(DmaDirection::ToDevice);
    auto m2 = c2->map(DmaDirection::ToDevice);
    ASSERT_TRUE(m1 && m2);
    for (const IommuDomainStats& s : shared->domainStats())
        if (s.name == "media-smmu:0x10") {
            EXPECT_EQ(s.misses, 1u);
            EXPECT_EQ(s.hits, 1u);
        }
}

// A private pool stays its owners' even for a buffer allocated from it by
// name: another device's attach is refused, as matching refuses the pool.
TEST(Context, APrivatePoolAllocatedByNameStillRefusesOtherDevices) {
    Platform p = defaultPlatform();
    for (ReservedRegion& r : p.regions)
        if (r.name == "linux,cma")
            r.owners = {"display"};
    ASSERT_TRUE(validatePlatform(p));
    auto context = makeContext(p);
    ASSERT_TRUE(context);
    auto buffer = context->allocate("linux,cma", 1 * MiB);
    ASSERT_TRUE(buffer) << buffer.error().toString();
    auto usb = (*buffer)->attach(deviceOf(*context, "usb"));
    ASSERT_FALSE(usb);
    EXPECT_EQ(usb.error().code(), EBUSY);
    EXPECT_TRUE(contains(usb.error().message(), "private to display")) << usb.error().message();
    EXPECT_EQ(deviceOf(*context, "usb").activeMappingCount(), 0u);
    auto display = (*buffer)->attach(deviceOf(*context, "display"));
    EXPECT_TRUE(display) << display.error().toString();
}

TEST(Deferred, CpuDataWrittenBeforeAnyDeviceReachesLaterDevices) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    auto buffer = context->create(256 * KiB);
    ASSERT_TRUE(buffer);
    auto cpu = (*buffer)->mmap();
    ASSERT_TRUE(cpu) << cpu.error().toString();
    ASSERT_TRUE((*buffer)->hasStorage());
    std::memset(cpu->data(), 0x6b, cpu->size());

    const DmaDevice& gpu = deviceOf(*context, "gpu");
    auto attachment = (*buffer)->attach(gpu);
    ASSERT_TRUE(attachment) << attachment.error().toString();
    auto mapping = attachment->map(DmaDirection::ToDevice);
    ASSERT_TRUE(mapping);
    std::vector<std::byte> out(256 * KiB);
    ASSERT_TRUE(gpu.read(mapping->segments().front().dmaAddress, out));
    EXPECT_EQ(out, std::vector<std::byte>(256 * KiB, std::byte{0x6b}));
}

TEST(Deferred, ExhaustionAtFirstMapIsEnomemWithNothingAllocated) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    // Only the cma pool serves the display (the carveout is secure memory).
    auto filler = context->allocate("linux,cma", 256 * MiB - 4 * MiB);
    ASSERT_TRUE(filler);

    auto buffer = context->create(kFrame);
    ASSERT_TRUE(buffer);
    auto display = (*buffer)->attach(deviceOf(*context, "display"));
    ASSERT_TRUE(display);
    const std::vector<HeapStats> before = allStats(*context);
    std::vector<uint64_t> freeBefore;
    for (const auto& heap : context->heaps())
        freeBefore.push_back(heap->freeBytes());

    auto mapping = display->map(DmaDirection::ToDevice);
    ASSERT_FALSE(mapping);
    EXPECT_EQ(mapping.error().code(), ENOMEM) << mapping.error().toString();
    EXPECT_FALSE((*buffer)->hasStorage());
    EXPECT_EQ(deviceOf(*context, "display").activeMappingCount(), 0u);
    const std::vector<HeapStats> after = allStats(*context);
    for (size_t i = 0; i < after.size(); ++i) {
        SCOPED_TRACE(context->heaps()[i]->name());
        EXPECT_EQ(after[i].liveBuffers, before[i].liveBuffers);
        EXPECT_EQ(after[i].liveBytes, before[i].liveBytes);
        EXPECT_EQ(context->heaps()[i]->freeBytes(), freeBefore[i]);
    }
    const auto& heaps = context->heaps();
    const size_t cma =
        static_cast<size_t>(std::find(heaps.begin(), heaps.end(), context->findHeap("linux,cma")) - heaps.begin());
    ASSERT_LT(cma, heaps.size());
    EXPECT_EQ(after[cma].failedAllocations, before[cma].failedAllocations + 1);

    // Once memory is back, the same attachment maps.
    filler->reset();
    auto retry = display->map(DmaDirection::ToDevice);
    ASSERT_TRUE(retry) << retry.error().toString();
    EXPECT_EQ((*buffer)->heapName(), "linux,cma");
}

TEST(Deferred, AnExhaustedBestHeapFallsBackToTheNextThatServes) {
    auto context = makeContext(conflictBoard());
    ASSERT_TRUE(context);
    auto buffer = context->create(kFrame);
    ASSERT_TRUE(buffer);
    auto scanout = (*buffer)->attach(deviceOf(*context, "scanout"));
    ASSERT_TRUE(scanout);
    auto explanation = context->explain(std::vector<std::string>{"scanout"}, kFrame);
    ASSERT_TRUE(explanation && explanation->heap);
    const std::string best = *explanation->heap;
    const std::string next = best == "cma-a" ? "cma-b" : "cma-a";
    ASSERT_TRUE(best == "cma-a" || best == "cma-b") << best;

    auto filler = context->allocate(best, 64 * MiB);
    ASSERT_TRUE(filler) << filler.error().toString();
    auto mapping = scanout->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping) << mapping.error().toString();
    EXPECT_EQ((*buffer)->heapName(), next);
    EXPECT_EQ(context->findHeap(best)->stats().liveBuffers, 1u);
    EXPECT_EQ(context->findHeap(next)->stats().liveBuffers, 1u);
}

} // namespace
} // namespace cenalloc
