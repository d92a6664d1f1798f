// SPDX-License-Identifier: MIT
// Tests of attachments and device mappings: direct tables, refusals, IOVA mappings and the mapping cache.
#include <cenalloc/buffer.h>

#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/device.h>

#include "support/core_board.h"

namespace cenalloc {
namespace {

using test::CoreBoard;

constexpr uint64_t k4GiB = uint64_t{1} << 32;

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// A small board without IOMMUs whose CMA pool starts 64 KiB-aligned, so the
// placement of each buffer is known exactly (the pool is first fit from the
// bottom), with devices whose limits the tests exercise one by one.
Platform boundaryBoard() {
    Platform p;
    p.name = "boundary";
    p.memory = {{.name = "dram", .base = 0x40000000, .size = 64 * MiB}};
    p.regions = {{.name = "cma", .kind = RegionKind::Cma, .base = 0x42000000, .size = 8 * MiB}};
    auto device = [](std::string name, uint64_t maxSegment, uint64_t boundary, uint32_t count) {
        Device d;
        d.name = std::move(name);
        d.constraints.dmaMask = d.constraints.coherentDmaMask = 0xffffffff;
        d.constraints.maxSegmentSize = maxSegment;
        d.constraints.segmentBoundaryMask = boundary;
        d.constraints.maxSegmentCount = count;
        return d;
    };
    p.devices = {
        device("bounded", 0xffffffff, 0xffff, 0),
        device("small-segments", 16 * KiB, kNoLimit, 0),
        device("both", 32 * KiB, 0xffff, 0),
        device("four-segments", 64 * KiB, kNoLimit, 4),
    };
    EXPECT_TRUE(validatePlatform(p));
    return p;
}

// Checks that @p table is a direct table for @p chunks: physical addresses,
// in order, covering exactly the chunks, every segment within the limits.
void expectDirectTable(const SgTable& table, const std::vector<PhysChunk>& chunks, const DmaConstraints& c) {
    ASSERT_FALSE(table.empty());
    EXPECT_EQ(test::mergedSegments(table), test::mergedChunks(chunks));
    for (const SgEntry& s : table) {
        EXPECT_GT(s.length, 0u);
        EXPECT_LE(s.length, c.maxSegmentSize);
        EXPECT_FALSE(test::crossesBoundary(s, c.segmentBoundaryMask)) << std::hex << s.dmaAddress << "+" << s.length;
        EXPECT_LE(s.dmaAddress + s.length - 1, c.dmaMask);
    }
    if (c.maxSegmentCount != 0) {
        EXPECT_LE(table.size(), c.maxSegmentCount);
    }
}

TEST(DirectMapping, DmaAddressesArePhysicalAddresses) {
    CoreBoard board;
    // 1 MiB + 3 x 64 KiB + 2 x 4 KiB: several chunk sizes from the system heap.
    const uint64_t size = 1 * MiB + 3 * 64 * KiB + 2 * 4 * KiB;
    auto buffer = board.allocate("system-dma32", size);
    ASSERT_TRUE(buffer) << buffer.error().toString();
    ASSERT_GE((*buffer)->chunks().size(), 6u);
    const DmaDevice& usb = board.device("usb");
    auto attachment = (*buffer)->attach(usb);
    ASSERT_TRUE(attachment) << attachment.error().toString();
    auto mapping = attachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping) << mapping.error().toString();
    expectDirectTable(mapping->segments(), (*buffer)->chunks(), usb.constraints());
    // usb takes the default 64 KiB segments: the 1 MiB chunk alone needs 16.
    EXPECT_GE(mapping->segments().size(), 16u + 3u + 1u);
    EXPECT_EQ(mapping->direction(), DmaDirection::Bidirectional);
    EXPECT_EQ(usb.activeMappingCount(), 1u);
}

TEST(DirectMapping, ContiguousStorageSplitsAtMaxSegmentSize) {
    CoreBoard board;
    auto buffer = board.allocate("linux,cma", 256 * KiB);
    ASSERT_TRUE(buffer);
    const std::vector<PhysChunk> chunks = (*buffer)->chunks();
    ASSERT_EQ(chunks.size(), 1u);
    const uint64_t base = chunks[0].address;
    auto attachment = (*buffer)->attach(board.device("usb"));
    ASSERT_TRUE(attachment) << attachment.error().toString();
    auto mapping = attachment->map(DmaDirection::ToDevice);
    ASSERT_TRUE(mapping) << mapping.error().toString();
    const SgTable expected = {
        {base, 64 * KiB}, {base + 64 * KiB, 64 * KiB}, {base + 128 * KiB, 64 * KiB}, {base + 192 * KiB, 64 * KiB}};
    EXPECT_EQ(mapping->segments(), expected);
}

TEST(DirectMapping, SegmentsSplitAtBoundariesAndMaxSize) {
    CoreBoard board(boundaryBoard());
    const uint64_t cma = 0x42000000;
    // The first page of the pool pushes the next buffer off the 64 KiB grid.
    auto pad = board.allocate("cma", 4 * KiB);
    auto buffer = board.allocate("cma", 136 * KiB);
    ASSERT_TRUE(pad && buffer);
    ASSERT_EQ((*buffer)->chunks(), (std::vector<PhysChunk>{{cma + 4 * KiB, 136 * KiB}}));

    struct Case {
        const char* device;
        SgTable expected;
    };
    const Case cases[] = {
        {"bounded", {{cma + 4 * KiB, 60 * KiB}, {cma + 64 * KiB, 64 * KiB}, {cma + 128 * KiB, 12 * KiB}}},
        {"small-segments",
         {{cma + 4 * KiB, 16 * KiB},
          {cma + 20 * KiB, 16 * KiB},
          {cma + 36 * KiB, 16 * KiB},
          {cma + 52 * KiB, 16 * KiB},
          {cma + 68 * KiB, 16 * KiB},
          {cma + 84 * KiB, 16 * KiB},
          {cma + 100 * KiB, 16 * KiB},
          {cma + 116 * KiB, 16 * KiB},
          {cma + 132 * KiB, 8 * KiB}}},
        {"both",
         {{cma + 4 * KiB, 32 * KiB},
          {cma + 36 * KiB, 28 * KiB},
          {cma + 64 * KiB, 32 * KiB},
          {cma + 96 * KiB, 32 * KiB},
          {cma + 128 * KiB, 12 * KiB}}},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.device);
        auto attachment = (*buffer)->attach(board.device(c.device));
        ASSERT_TRUE(attachment) << attachment.error().toString();
        auto mapping = attachment->map(DmaDirection::Bidirectional);
        ASSERT_TRUE(mapping) << mapping.error().toString();
        EXPECT_EQ(mapping->segments(), c.expected);
        expectDirectTable(mapping->segments(), (*buffer)->chunks(), board.device(c.device).constraints());
    }
}

TEST(DirectMapping, TooManySegmentsIsRefusedAtAttach) {
    CoreBoard board(boundaryBoard());
    const DmaDevice& device = board.device("four-segments");
    auto fits = board.allocate("cma", 256 * KiB);
    auto tooBig = board.allocate("cma", 320 * KiB);
    ASSERT_TRUE(fits && tooBig);

    auto refused = (*tooBig)->attach(device);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), EBUSY);
    EXPECT_TRUE(contains(refused.error().message(), "four-segments")) << refused.error().message();
    EXPECT_TRUE((*tooBig)->info().attachedDevices.empty());
    EXPECT_EQ(device.activeMappingCount(), 0u);

    auto ok = (*fits)->attach(device);
    ASSERT_TRUE(ok) << ok.error().toString();
    auto mapping = ok->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping);
    EXPECT_EQ(mapping->segments().size(), 4u);
}

TEST(DirectMapping, MemoryAboveA32BitMaskIsRefusedAtAttach) {
    CoreBoard board;
    auto buffer = board.allocate("system", 256 * KiB);
    ASSERT_TRUE(buffer);
    // Precondition: the system heap hands out the high bank first.
    for (const PhysChunk& c : (*buffer)->chunks())
        ASSERT_GE(c.address, k4GiB);

    for (const char* name : {"usb", "camera", "display"}) {
        SCOPED_TRACE(name);
        const DmaDevice& device = board.device(name);
        auto attachment = (*buffer)->attach(device);
        ASSERT_FALSE(attachment);
        EXPECT_EQ(attachment.error().code(), EBUSY);
        EXPECT_TRUE(contains(attachment.error().message(), name)) << attachment.error().message();
        EXPECT_EQ(device.activeMappingCount(), 0u);
    }
    EXPECT_TRUE(contains((*buffer)->attach(board.device("usb")).error().message(), "32-bit"));
    const BufferInfo info = (*buffer)->info();
    EXPECT_TRUE(info.attachedDevices.empty());
    EXPECT_TRUE(info.mappings.empty());
}

TEST(DirectMapping, DisplayTakesOnlyOneContiguousPiece) {
    CoreBoard board;
    const DmaDevice& display = board.device("display");

    // Below 4 GiB but in several pieces.
    auto scattered = board.allocate("system-dma32", 1 * MiB + 64 * KiB + 4 * KiB);
    ASSERT_TRUE(scattered);
    ASSERT_GT(test::mergedChunks((*scattered)->chunks()).size(), 1u) << "precondition: scattered storage";
    auto refused = (*scattered)->attach(display);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), EBUSY);
    EXPECT_TRUE(contains(refused.error().message(), "contiguous")) << refused.error().message();
    EXPECT_TRUE((*scattered)->info().attachedDevices.empty());

    auto system = board.allocate("system", 1 * MiB + 64 * KiB + 4 * KiB);
    ASSERT_TRUE(system);
    auto refusedHigh = (*system)->attach(display);
    ASSERT_FALSE(refusedHigh);
    EXPECT_EQ(refusedHigh.error().code(), EBUSY);

    auto cma = board.allocate("linux,cma", 8 * MiB);
    ASSERT_TRUE(cma);
    auto attachment = (*cma)->attach(display);
    ASSERT_TRUE(attachment) << attachment.error().toString();
    auto mapping = attachment->map(DmaDirection::ToDevice);
    ASSERT_TRUE(mapping) << mapping.error().toString();
    const PhysChunk chunk = (*cma)->chunks().at(0);
    EXPECT_EQ(mapping->segments(), (SgTable{{chunk.address, 8 * MiB}}));
    EXPECT_EQ(display.activeMappingCount(), 1u);
}

TEST(Attachment, SecureMemoryServesOnlyDevicesWithItsAccessBits) {
    CoreBoard board;
    auto buffer = board.allocate("vpu-carveout", 1 * MiB);
    ASSERT_TRUE(buffer);
    for (const char* name : {"gpu", "isp", "display", "usb"}) {
        SCOPED_TRACE(name);
        auto refused = (*buffer)->attach(board.device(name));
        ASSERT_FALSE(refused);
        EXPECT_EQ(refused.error().code(), EBUSY);
        EXPECT_TRUE(contains(refused.error().message(), "access bits")) << refused.error().message();
    }
    auto codec = (*buffer)->attach(board.device("codec"));
    ASSERT_TRUE(codec) << codec.error().toString();
    auto mapping = codec->map(DmaDirection::FromDevice);
    ASSERT_TRUE(mapping) << mapping.error().toString();
    EXPECT_EQ((*buffer)->info().attachedDevices, std::vector<std::string>{"codec"});
}

TEST(DirectMapping, UnmapTakesBackExactlyWhatMapGave) {
    CoreBoard board;
    const DmaDevice& camera = board.device("camera");
    auto buffer = board.allocate("linux,cma", 1 * MiB);
    ASSERT_TRUE(buffer);
    auto attachment = (*buffer)->attach(camera);
    ASSERT_TRUE(attachment);
    auto first = attachment->map(DmaDirection::FromDevice);
    auto second = attachment->map(DmaDirection::ToDevice);
    ASSERT_TRUE(first && second);
    EXPECT_EQ(camera.activeMappingCount(), 2u);
    EXPECT_EQ((*buffer)->info().mappings.size(), 2u);

    first->unmap();
    EXPECT_FALSE(first->mapped());
    EXPECT_EQ(camera.activeMappingCount(), 1u);
    const BufferInfo info = (*buffer)->info();
    ASSERT_EQ(info.mappings.size(), 1u);
    EXPECT_EQ(info.mappings[0].direction, DmaDirection::ToDevice);
    EXPECT_EQ(info.mappings[0].segments, second->segments());
    first->unmap(); // idempotent

    *second = Attachment::Mapping();
    EXPECT_EQ(camera.activeMappingCount(), 0u);
    EXPECT_TRUE((*buffer)->info().mappings.empty());
    EXPECT_EQ((*buffer)->info().attachedDevices, std::vector<std::string>{"camera"});
}

TEST(Attachment, DetachRemovesTheDeviceAndRefusesLaterMaps) {
    CoreBoard board;
    auto buffer = board.allocate("linux,cma", 64 * KiB);
    ASSERT_TRUE(buffer);
    auto usb = (*buffer)->attach(board.device("usb"));
    auto camera = (*buffer)->attach(board.device("camera"));
    ASSERT_TRUE(usb && camera);
    EXPECT_EQ((*buffer)->info().attachedDevices, (std::vector<std::string>{"usb", "camera"}));
    EXPECT_EQ(&usb->device(), &board.device("usb"));

    usb->detach();
    EXPECT_FALSE(usb->attached());
    EXPECT_EQ((*buffer)->info().attachedDevices, std::vector<std::string>{"camera"});
    auto map = usb->map(DmaDirection::Bidirectional);
    ASSERT_FALSE(map);
    EXPECT_EQ(map.error().code(), ENODEV);
    usb->detach(); // idempotent

    // Moving an attachment onto another detaches the overwritten one.
    *camera = std::move(*usb);
    EXPECT_TRUE((*buffer)->info().attachedDevices.empty());
    EXPECT_TRUE(board.registry()->bugs().empty());
}

TEST(Attachment, DetachingWithALiveMappingIsReportedAndUnmaps) {
    CoreBoard board;
    const DmaDevice& usb = board.device("usb");
    auto buffer = board.allocate("linux,cma", 64 * KiB);
    ASSERT_TRUE(buffer);
    auto attachment = (*buffer)->attach(usb);
    ASSERT_TRUE(attachment);
    auto mapping = attachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping);
    EXPECT_TRUE(mapping->mapped());
    attachment->detach();
    EXPECT_FALSE(mapping->mapped());
    EXPECT_EQ(usb.activeMappingCount(), 0u);
    EXPECT_TRUE((*buffer)->info().mappings.empty());
    ASSERT_EQ(board.registry()->bugs().size(), 1u);
    EXPECT_TRUE(contains(board.registry()->bugs()[0], "usb")) << board.registry()->bugs()[0];
    mapping->unmap(); // after the teardown: nothing left to undo, no crash
}

TEST(Attachment, ReleasingTheBufferWithALiveAttachmentIsALifetimeBug) {
    CoreBoard board;
    const DmaDevice& usb = board.device("usb");
    const DmaDevice& gpu = board.device("gpu");
    IommuDomain& domain = board.domain("gpu-smmu");
    const IommuDomainStats domainBefore = domain.stats();
    const HeapStats heapBefore = board.heap("linux,cma")->stats();

    auto buffer = board.allocate("linux,cma", 128 * KiB, "leaky");
    ASSERT_TRUE(buffer);
    const uint64_t id = (*buffer)->id();
    auto usbAttachment = (*buffer)->attach(usb);
    auto gpuAttachment = (*buffer)->attach(gpu);
    ASSERT_TRUE(usbAttachment && gpuAttachment);
    auto usbMapping = usbAttachment->map(DmaDirection::Bidirectional);
    auto gpuMapping = gpuAttachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(usbMapping && gpuMapping);
    EXPECT_GT(domain.stats().usedIovaBytes, domainBefore.usedIovaBytes);

    buffer->reset(); // the last handle: the attachments are still live

    const std::vector<std::string> bugs = board.registry()->bugs();
    ASSERT_FALSE(bugs.empty());
    EXPECT_TRUE(contains(bugs[0], std::to_string(id))) << bugs[0];
    EXPECT_TRUE(contains(bugs[0], "leaky")) << bugs[0];
    EXPECT_EQ(board.registry()->liveCount(), 0u);
    // The storage and the IOVA space went with the buffer.
    EXPECT_EQ(board.heap("linux,cma")->stats().liveBuffers, heapBefore.liveBuffers);
    EXPECT_EQ(board.heap("linux,cma")->stats().liveBytes, heapBefore.liveBytes);
    EXPECT_EQ(domain.stats().usedIovaBytes, domainBefore.usedIovaBytes);
    EXPECT_EQ(domain.stats().mappingCount, domainBefore.mappingCount);
    EXPECT_EQ(usb.activeMappingCount(), 0u);
    EXPECT_EQ(gpu.activeMappingCount(), 0u);

    // The attachments are inert.
    for (Attachment* a : {&*usbAttachment, &*gpuAttachment}) {
        auto map = a->map(DmaDirection::Bidirectional);
        ASSERT_FALSE(map);
        EXPECT_EQ(map.error().code(), ENODEV);
    }
    usbMapping->unmap();
    gpuMapping->unmap();
    usbAttachment->detach();
    gpuAttachment->detach();
}

// ------------------------------------------------------------ IOMMU

TEST(IommuMapping, ScatteredStorageBecomesOneIovaRange) {
    CoreBoard board;
    const DmaDevice& gpu = board.device("gpu");
    // 15 x 64 KiB + 15 x 4 KiB: thirty chunks from the system heap.
    auto buffer = board.allocate("system", 15 * 64 * KiB + 15 * 4 * KiB);
    ASSERT_TRUE(buffer);
    const std::vector<PhysChunk> chunks = (*buffer)->chunks();
    ASSERT_EQ(chunks.size(), 30u);
    auto attachment = (*buffer)->attach(gpu);
    ASSERT_TRUE(attachment) << attachment.error().toString();
    auto mapping = attachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping) << mapping.error().toString();

    const SgTable& table = mapping->segments();
    ASSERT_EQ(table.size(), 1u); // the gpu takes segments up to 4 GiB - 1
    EXPECT_LE(table.size(), chunks.size());
    EXPECT_EQ(table[0].length, (*buffer)->size());
    const IommuDomain& domain = board.domain("gpu-smmu");
    EXPECT_GE(table[0].dmaAddress, domain.apertureBase());
    EXPECT_LE(table[0].dmaAddress + table[0].length - 1, domain.apertureBase() + domain.apertureSize() - 1);

    // Every IOVA page translates to the physical page at the same buffer offset.
    uint64_t offset = 0;
    for (const PhysChunk& c : chunks) {
        for (uint64_t page = 0; page < c.size; page += kPageSize) {
            auto phys = domain.translate(table[0].dmaAddress + offset + page);
            ASSERT_TRUE(phys);
            EXPECT_EQ(*phys, c.address + page);
        }
        offset += c.size;
    }

    const BufferInfo info = (*buffer)->info();
    ASSERT_EQ(info.mappings.size(), 1u);
    EXPECT_EQ(info.mappings[0].device, "gpu");
    EXPECT_EQ(info.mappings[0].domain, "gpu-smmu");
    EXPECT_EQ(info.mappings[0].segments, table);
}

TEST(IommuMapping, OneIovaRangeSplitsAtTheDevicesMaxSegmentSize) {
    CoreBoard board;
    const DmaDevice& isp = board.device("isp");
    ASSERT_EQ(isp.constraints().maxSegmentSize, 64 * KiB); // no max_segment_size given: Linux's default
    auto buffer = board.allocate("system", 1 * MiB);
    ASSERT_TRUE(buffer);
    auto attachment = (*buffer)->attach(isp);
    ASSERT_TRUE(attachment);
    auto mapping = attachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping) << mapping.error().toString();
    const SgTable& table = mapping->segments();
    ASSERT_EQ(table.size(), 16u);
    for (size_t i = 0; i < table.size(); ++i) {
        EXPECT_EQ(table[i].length, 64 * KiB);
        EXPECT_EQ(table[i].dmaAddress, table[0].dmaAddress + i * 64 * KiB);
    }
    EXPECT_EQ(test::mergedSegments(table).size(), 1u);
    EXPECT_LT(table.back().dmaAddress + table.back().length - 1, k4GiB);
}

TEST(IommuMapping, ASecondMapInTheSameDomainIsACacheHit) {
    CoreBoard board;
    const DmaDevice& gpu = board.device("gpu");
    IommuDomain& domain = board.domain("gpu-smmu");
    auto buffer = board.allocate("system", 256 * KiB);
    ASSERT_TRUE(buffer);
    auto attachment = (*buffer)->attach(gpu);
    ASSERT_TRUE(attachment);

    const IommuDomainStats s0 = domain.stats();
    auto first = attachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(first);
    const IommuDomainStats s1 = domain.stats();
    EXPECT_EQ(s1.misses, s0.misses + 1);
    EXPECT_EQ(s1.hits, s0.hits);

    auto second = attachment->map(DmaDirection::ToDevice);
    ASSERT_TRUE(second);
    const IommuDomainStats s2 = domain.stats();
    EXPECT_EQ(s2.hits, s1.hits + 1);
    EXPECT_EQ(s2.misses, s1.misses);
    EXPECT_EQ(s2.usedIovaBytes, s1.usedIovaBytes);
    EXPECT_EQ(second->segments(), first->segments());

    // Unmapping leaves the IOVA mapping cached: the next map is a hit too.
    const SgTable firstSegments = first->segments();
    first->unmap();
    second->unmap();
    EXPECT_EQ(domain.stats().inUseCount, s0.inUseCount);
    EXPECT_EQ(domain.stats().mappingCount, s1.mappingCount);
    auto third = attachment->map(DmaDirection::FromDevice);
    ASSERT_TRUE(third);
    EXPECT_EQ(domain.stats().hits, s2.hits + 1);
    EXPECT_EQ(domain.stats().misses, s2.misses);
    EXPECT_EQ(third->segments(), firstSegments);
}

TEST(IommuMapping, DevicesInOneDomainShareOneIovaMapping) {
    CoreBoard board;
    const DmaDevice& isp = board.device("isp");
    const DmaDevice& codec = board.device("codec");
    ASSERT_EQ(isp.domain(), codec.domain());
    IommuDomain& domain = board.domain("media-smmu");
    auto buffer = board.allocate("system", 512 * KiB);
    ASSERT_TRUE(buffer);
    auto ispAttachment = (*buffer)->attach(isp);
    auto codecAttachment = (*buffer)->attach(codec);
    ASSERT_TRUE(ispAttachment && codecAttachment);

    const IommuDomainStats s0 = domain.stats();
    auto ispMapping = ispAttachment->map(DmaDirection::FromDevice);
    ASSERT_TRUE(ispMapping);
    auto codecMapping = codecAttachment->map(DmaDirection::ToDevice);
    ASSERT_TRUE(codecMapping);
    const IommuDomainStats s1 = domain.stats();
    EXPECT_EQ(s1.misses, s0.misses + 1);
    EXPECT_EQ(s1.hits, s0.hits + 1);
    EXPECT_EQ(s1.mappingCount, s0.mappingCount + 1);
    EXPECT_EQ(codecMapping->segments().front().dmaAddress, ispMapping->segments().front().dmaAddress);
    EXPECT_EQ(test::mergedSegments(codecMapping->segments()), test::mergedSegments(ispMapping->segments()));
}

TEST(IommuMapping, A32BitDeviceNeverGetsAnIovaAbove4GiB) {
    CoreBoard board;
    const DmaDevice& isp = board.device("isp");
    const DmaDevice& codec = board.device("codec");
    IommuDomain& domain = board.domain("media-smmu");
    ASSERT_GT(domain.apertureBase() + domain.apertureSize(), k4GiB) << "precondition: a 40-bit aperture";

    std::vector<std::shared_ptr<Buffer>> buffers;
    std::vector<Attachment> attachments;
    std::vector<Attachment::Mapping> mappings;
    for (int i = 0; i < 8; ++i) {
        SCOPED_TRACE(i);
        auto buffer = board.allocate("system", 2 * MiB);
        ASSERT_TRUE(buffer);
        // The codec (36-bit) maps first: the top-down allocator puts it above 4 GiB.
        auto codecAttachment = (*buffer)->attach(codec);
        ASSERT_TRUE(codecAttachment);
        auto codecMapping = codecAttachment->map(DmaDirection::Bidirectional);
        ASSERT_TRUE(codecMapping);
        EXPECT_GE(codecMapping->segments().front().dmaAddress, k4GiB);

        // The isp cannot share that mapping: it gets its own below 4 GiB.
        const uint64_t missesBefore = domain.stats().misses;
        auto ispAttachment = (*buffer)->attach(isp);
        ASSERT_TRUE(ispAttachment);
        auto ispMapping = ispAttachment->map(DmaDirection::Bidirectional);
        ASSERT_TRUE(ispMapping) << ispMapping.error().toString();
        EXPECT_EQ(domain.stats().misses, missesBefore + 1);
        for (const SgEntry& s : ispMapping->segments())
            EXPECT_LT(s.dmaAddress + s.length - 1, k4GiB);

        buffers.push_back(*buffer);
        attachments.push_back(std::move(*codecAttachment));
        attachments.push_back(std::move(*ispAttachment));
        mappings.push_back(std::move(*codecMapping));
        mappings.push_back(std::move(*ispMapping));
    }
    mappings.clear();
    attachments.clear();
}

TEST(IommuMapping, ReleasingTheBufferFreesItsIovaSpace) {
    CoreBoard board;
    IommuDomain& gpuDomain = board.domain("gpu-smmu");
    IommuDomain& mediaDomain = board.domain("media-smmu");
    const IommuDomainStats gpuBefore = gpuDomain.stats();
    const IommuDomainStats mediaBefore = mediaDomain.stats();
    {
        auto buffer = board.allocate("system", 3 * MiB);
        ASSERT_TRUE(buffer);
        for (const char* name : {"gpu", "isp", "codec"}) {
            SCOPED_TRACE(name);
            auto attachment = (*buffer)->attach(board.device(name));
            ASSERT_TRUE(attachment);
            auto mapping = attachment->map(DmaDirection::Bidirectional);
            ASSERT_TRUE(mapping);
        }
        // Unmapped and detached, the mappings stay cached while the buffer lives.
        EXPECT_GT(gpuDomain.stats().usedIovaBytes, gpuBefore.usedIovaBytes);
        EXPECT_GT(mediaDomain.stats().usedIovaBytes, mediaBefore.usedIovaBytes);
        EXPECT_GT(gpuDomain.stats().mappingCount, gpuBefore.mappingCount);
    }
    EXPECT_EQ(gpuDomain.stats().usedIovaBytes, gpuBefore.usedIovaBytes);
    EXPECT_EQ(gpuDomain.stats().mappingCount, gpuBefore.mappingCount);
    EXPECT_EQ(gpuDomain.stats().mappedBytes, gpuBefore.mappedBytes);
    EXPECT_EQ(mediaDomain.stats().usedIovaBytes, mediaBefore.usedIovaBytes);
    EXPECT_EQ(mediaDomain.stats().mappingCount, mediaBefore.mappingCount);
    EXPECT_TRUE(board.registry()->bugs().empty());
}

TEST(DmaDirection, HasKernelNames) {
    EXPECT_STREQ(dmaDirectionName(DmaDirection::Bidirectional), "bidirectional");
    EXPECT_STREQ(dmaDirectionName(DmaDirection::ToDevice), "to-device");
    EXPECT_STREQ(dmaDirectionName(DmaDirection::FromDevice), "from-device");
}

} // namespace
} // namespace cenalloc
