// SPDX-License-Identifier: MIT
// Tests of the device DMA model: transfers through mappings, and faults that change nothing.
#include <cenalloc/device.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "support/core_board.h"

namespace cenalloc {
namespace {

using test::CoreBoard;

std::vector<std::byte> pattern(size_t size, unsigned seed) {
    std::vector<std::byte> bytes(size);
    for (size_t i = 0; i < size; ++i)
        bytes[i] = std::byte(static_cast<unsigned char>((i * 7 + seed) ^ (i >> 8)));
    return bytes;
}

std::vector<std::byte> snapshot(const BufferMapping& m) {
    return {m.bytes(), m.bytes() + m.size()};
}

// Reads every segment of @p mapping through @p device, in order.
std::vector<std::byte> readAll(const DmaDevice& device, const Attachment::Mapping& mapping) {
    std::vector<std::byte> out;
    for (const SgEntry& s : mapping.segments()) {
        std::vector<std::byte> piece(s.length);
        auto ok = device.read(s.dmaAddress, piece);
        EXPECT_TRUE(ok) << ok.error().toString();
        out.insert(out.end(), piece.begin(), piece.end());
    }
    return out;
}

// Writes @p data through every segment of @p mapping, in order.
void writeAll(const DmaDevice& device, const Attachment::Mapping& mapping, const std::vector<std::byte>& data) {
    size_t offset = 0;
    for (const SgEntry& s : mapping.segments()) {
        auto ok = device.write(s.dmaAddress, std::span(data).subspan(offset, s.length));
        ASSERT_TRUE(ok) << ok.error().toString();
        offset += s.length;
    }
    ASSERT_EQ(offset, data.size());
}

struct TransferCase {
    const char* what;
    const char* heap;
    uint64_t size;
    const char* writer;
    const char* reader;
};

TEST(DeviceDma, OneDeviceWritesAnotherReadsAndTheCpuSees) {
    const TransferCase cases[] = {
        {"direct to direct", "linux,cma", 256 * KiB, "usb", "camera"},
        {"iommu to iommu in different domains", "system", 1 * MiB + 68 * KiB, "gpu", "isp"},
        {"iommu to direct", "system-dma32", 1 * MiB + 68 * KiB, "gpu", "usb"},
        {"direct to iommu", "system-dma32", 200 * KiB, "camera", "codec"},
    };
    for (const TransferCase& c : cases) {
        SCOPED_TRACE(c.what);
        CoreBoard board;
        auto buffer = board.allocate(c.heap, c.size);
        ASSERT_TRUE(buffer);
        const DmaDevice& writer = board.device(c.writer);
        const DmaDevice& reader = board.device(c.reader);
        auto wa = (*buffer)->attach(writer);
        auto ra = (*buffer)->attach(reader);
        ASSERT_TRUE(wa && ra);
        auto wm = wa->map(DmaDirection::FromDevice);
        auto rm = ra->map(DmaDirection::ToDevice);
        ASSERT_TRUE(wm && rm);

        const std::vector<std::byte> data = pattern(c.size, 3);
        writeAll(writer, *wm, data);
        EXPECT_EQ(readAll(reader, *rm), data);
        auto cpu = (*buffer)->mmap();
        ASSERT_TRUE(cpu);
        EXPECT_EQ(snapshot(*cpu), data);

        // And back: the CPU writes, the writer reads through a bidirectional mapping.
        const std::vector<std::byte> fromCpu = pattern(c.size, 99);
        std::memcpy(cpu->data(), fromCpu.data(), fromCpu.size());
        auto both = wa->map(DmaDirection::Bidirectional);
        ASSERT_TRUE(both);
        EXPECT_EQ(readAll(writer, *both), fromCpu);
        EXPECT_EQ(writer.faultCount(), 0u);
        EXPECT_EQ(reader.faultCount(), 0u);
    }
}

TEST(DeviceDma, ATransferMayCrossChunksWithinOneIovaSegment) {
    CoreBoard board;
    const DmaDevice& gpu = board.device("gpu");
    auto buffer = board.allocate("system", 64 * KiB + 4 * 4 * KiB);
    ASSERT_TRUE(buffer);
    ASSERT_EQ((*buffer)->chunks().size(), 5u);
    auto attachment = (*buffer)->attach(gpu);
    ASSERT_TRUE(attachment);
    auto mapping = attachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping);
    ASSERT_EQ(mapping->segments().size(), 1u);
    // From the middle of the 64 KiB chunk across three 4 KiB chunks.
    const uint64_t iova = mapping->segments()[0].dmaAddress;
    const std::vector<std::byte> data = pattern(40 * KiB, 5);
    auto written = gpu.write(iova + 40 * KiB, data);
    ASSERT_TRUE(written) << written.error().toString();
    auto cpu = (*buffer)->mmap();
    ASSERT_TRUE(cpu);
    EXPECT_EQ(std::memcmp(cpu->bytes() + 40 * KiB, data.data(), data.size()), 0);
    EXPECT_TRUE(std::all_of(cpu->bytes(), cpu->bytes() + 40 * KiB, [](std::byte b) { return b == std::byte{0}; }));
}

// ------------------------------------------------------------- faults

// Runs @p transfer, which must fault with @p kind at @p address, and checks
// that it changed none of the buffer's bytes and that the fault was
// recorded against the device (and its IOMMU domain, if any).
void expectFault(const DmaDevice& device, const BufferMapping& cpu, DmaFaultKind kind, int code, uint64_t address,
                 bool write, const std::function<Result<void>()>& transfer) {
    SCOPED_TRACE(dmaFaultKindName(kind));
    const std::vector<std::byte> before = snapshot(cpu);
    const uint64_t faults = device.faultCount();
    const uint64_t domainFaults = device.domain() ? device.domain()->stats().faults : 0;

    Result<void> r = transfer();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), code) << r.error().toString();
    EXPECT_NE(r.error().message().find(device.name()), std::string::npos) << r.error().message();

    EXPECT_EQ(snapshot(cpu), before) << "a faulting transfer wrote to the buffer";
    EXPECT_EQ(device.faultCount(), faults + 1);
    if (device.domain()) {
        EXPECT_EQ(device.domain()->stats().faults, domainFaults + 1);
    }
    const std::vector<DmaFault> recent = device.recentFaults();
    ASSERT_FALSE(recent.empty());
    const DmaFault& f = recent.back();
    EXPECT_EQ(f.device, device.name());
    EXPECT_EQ(f.address, address);
    EXPECT_EQ(f.kind, kind);
    EXPECT_EQ(f.write, write);
    EXPECT_FALSE(f.message.empty());
}

struct FaultSetup {
    const char* what;
    const char* heap;
    const char* device;
    uint64_t size;
};

TEST(DeviceDma, FaultsChangeNothingAndAreReported) {
    const FaultSetup setups[] = {
        {"direct, physical addresses", "linux,cma", "usb", 128 * KiB},
        {"behind an IOMMU, IOVA addresses", "system", "gpu", 1 * MiB + 12 * KiB},
        {"behind the shared media IOMMU", "system", "isp", 256 * KiB},
    };
    for (const FaultSetup& s : setups) {
        SCOPED_TRACE(s.what);
        CoreBoard board;
        const DmaDevice& device = board.device(s.device);
        auto buffer = board.allocate(s.heap, s.size);
        ASSERT_TRUE(buffer);
        auto cpu = (*buffer)->mmap();
        ASSERT_TRUE(cpu);
        std::memset(cpu->data(), 0x11, cpu->size());
        auto attachment = (*buffer)->attach(device);
        ASSERT_TRUE(attachment) << attachment.error().toString();

        const std::vector<std::byte> data(64, std::byte{0xee});
        std::vector<std::byte> out(64, std::byte{0x77});

        {
            auto bidi = attachment->map(DmaDirection::Bidirectional);
            ASSERT_TRUE(bidi);
            const SgEntry last = bidi->segments().back();
            const uint64_t end = last.dmaAddress + last.length;

            // Nothing maps an address far past the buffer.
            const uint64_t unmapped = end + 64 * MiB;
            expectFault(device, *cpu, DmaFaultKind::Unmapped, EFAULT, unmapped, true,
                        [&] { return device.write(unmapped, data); });
            expectFault(device, *cpu, DmaFaultKind::Unmapped, EFAULT, unmapped, false,
                        [&] { return device.read(unmapped, out); });

            // Starts 16 bytes before the end of the last segment, runs 48 past it:
            // not even the 16 bytes inside may be written.
            const uint64_t straddle = end - 16;
            expectFault(device, *cpu, DmaFaultKind::BeyondSegment, EFAULT, straddle, true,
                        [&] { return device.write(straddle, data); });
            expectFault(device, *cpu, DmaFaultKind::BeyondSegment, EFAULT, straddle, false,
                        [&] { return device.read(straddle, out); });
            EXPECT_EQ(out, std::vector<std::byte>(64, std::byte{0x77})) << "a faulting read filled the output";

            // The same transfer wholly inside works, proving the address was right.
            auto inside = device.write(end - 64, data);
            ASSERT_TRUE(inside) << inside.error().toString();
            EXPECT_EQ(std::memcmp(cpu->bytes() + cpu->size() - 64, data.data(), 64), 0);
            std::memset(cpu->data(), 0x11, cpu->size());
        }

        // Directions: writing through DMA_TO_DEVICE, reading through DMA_FROM_DEVICE.
        {
            auto toDevice = attachment->map(DmaDirection::ToDevice);
            ASSERT_TRUE(toDevice);
            const uint64_t address = toDevice->segments().front().dmaAddress;
            expectFault(device, *cpu, DmaFaultKind::WrongDirection, EPERM, address, true,
                        [&] { return device.write(address, data); });
            ASSERT_TRUE(device.read(address, out));
        }
        {
            auto fromDevice = attachment->map(DmaDirection::FromDevice);
            ASSERT_TRUE(fromDevice);
            const uint64_t address = fromDevice->segments().front().dmaAddress;
            expectFault(device, *cpu, DmaFaultKind::WrongDirection, EPERM, address, false,
                        [&] { return device.read(address, out); });
        }

        // After unmap, the old DMA address faults, in both directions.
        {
            auto mapping = attachment->map(DmaDirection::Bidirectional);
            ASSERT_TRUE(mapping);
            const uint64_t stale = mapping->segments().front().dmaAddress + 128;
            ASSERT_TRUE(device.read(stale, out));
            mapping->unmap();
            expectFault(device, *cpu, DmaFaultKind::AfterUnmap, EFAULT, stale, true,
                        [&] { return device.write(stale, data); });
            expectFault(device, *cpu, DmaFaultKind::AfterUnmap, EFAULT, stale, false,
                        [&] { return device.read(stale, out); });
        }
        EXPECT_EQ(device.faultCount(), 8u);
        EXPECT_EQ(device.activeMappingCount(), 0u);
    }
}

TEST(DeviceDma, AnIommuDeviceCannotUseAPhysicalAddress) {
    CoreBoard board;
    const DmaDevice& gpu = board.device("gpu");
    auto buffer = board.allocate("system", 64 * KiB);
    ASSERT_TRUE(buffer);
    auto cpu = (*buffer)->mmap();
    ASSERT_TRUE(cpu);
    auto attachment = (*buffer)->attach(gpu);
    ASSERT_TRUE(attachment);
    auto mapping = attachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping);
    const uint64_t phys = (*buffer)->chunks().front().address;
    ASSERT_NE(phys, mapping->segments().front().dmaAddress);
    const std::vector<std::byte> data(32, std::byte{0xab});
    expectFault(gpu, *cpu, DmaFaultKind::Unmapped, EFAULT, phys, true, [&] { return gpu.write(phys, data); });
}

TEST(DeviceDma, AMappingOfAnotherDeviceIsNotYours) {
    CoreBoard board;
    auto buffer = board.allocate("linux,cma", 64 * KiB);
    ASSERT_TRUE(buffer);
    auto cpu = (*buffer)->mmap();
    ASSERT_TRUE(cpu);
    auto attachment = (*buffer)->attach(board.device("usb"));
    ASSERT_TRUE(attachment);
    auto mapping = attachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping);
    // The camera reaches the same physical memory but holds no mapping of it.
    const DmaDevice& camera = board.device("camera");
    const uint64_t address = mapping->segments().front().dmaAddress;
    const std::vector<std::byte> data(32, std::byte{0xab});
    expectFault(camera, *cpu, DmaFaultKind::Unmapped, EFAULT, address, true,
                [&] { return camera.write(address, data); });
}

TEST(DeviceDma, DmaAfterTheBufferWasReleasedFaults) {
    CoreBoard board;
    const DmaDevice& usb = board.device("usb");
    auto buffer = board.allocate("linux,cma", 64 * KiB);
    ASSERT_TRUE(buffer);
    auto attachment = (*buffer)->attach(usb);
    ASSERT_TRUE(attachment);
    auto mapping = attachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping);
    const uint64_t address = mapping->segments().front().dmaAddress;
    buffer->reset(); // a lifetime bug: attached and mapped

    const std::vector<std::byte> data(32, std::byte{0xab});
    auto r = usb.write(address, data);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EFAULT);
    ASSERT_FALSE(usb.recentFaults().empty());
    EXPECT_EQ(usb.recentFaults().back().kind, DmaFaultKind::AfterUnmap);
    EXPECT_FALSE(board.registry()->bugs().empty());
}

// Two mappings of one buffer on one device hold the same DMA addresses:
// taking one away leaves the other's reachable, with its own direction.
TEST(DeviceDma, TwoMappingsOfOneAddressRemovingOneKeepsTheOtherReachable) {
    CoreBoard board;
    const DmaDevice& usb = board.device("usb");
    auto buffer = board.allocate("linux,cma", 64 * KiB);
    ASSERT_TRUE(buffer);
    auto cpu = (*buffer)->mmap();
    ASSERT_TRUE(cpu);
    auto attachment = (*buffer)->attach(usb);
    ASSERT_TRUE(attachment);
    auto toDevice = attachment->map(DmaDirection::ToDevice);
    auto fromDevice = attachment->map(DmaDirection::FromDevice);
    auto bidi = attachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(toDevice && fromDevice && bidi);
    ASSERT_EQ(toDevice->segments(), fromDevice->segments()) << "direct: the physical addresses, both times";
    ASSERT_EQ(toDevice->segments(), bidi->segments());
    EXPECT_EQ(usb.activeMappingCount(), 3u);
    const uint64_t address = bidi->segments().front().dmaAddress + 256;
    const std::vector<std::byte> data = pattern(64, 9);
    std::vector<std::byte> out(64);

    bidi->unmap();
    EXPECT_EQ(usb.activeMappingCount(), 2u);
    ASSERT_TRUE(usb.write(address, data)) << "through the from-device mapping";
    ASSERT_TRUE(usb.read(address, out)) << "through the to-device mapping";
    EXPECT_EQ(out, data);

    fromDevice->unmap();
    EXPECT_EQ(usb.activeMappingCount(), 1u);
    expectFault(usb, *cpu, DmaFaultKind::WrongDirection, EPERM, address, true,
                [&] { return usb.write(address, data); });
    ASSERT_TRUE(usb.read(address, out)) << "the to-device mapping is still there";
    EXPECT_EQ(out, data);

    toDevice->unmap();
    EXPECT_EQ(usb.activeMappingCount(), 0u);
    expectFault(usb, *cpu, DmaFaultKind::AfterUnmap, EFAULT, address, false, [&] { return usb.read(address, out); });
}

// The history remembers a mapping's touching segments as one range: every
// address of the sixteen 64 KiB segments of a 1 MiB mapping on usb faults
// as after-unmap once it is gone, and the first byte past it as unmapped.
TEST(DeviceDma, AnUnmappedMappingOfManySegmentsIsRememberedWhole) {
    CoreBoard board;
    const DmaDevice& usb = board.device("usb");
    auto buffer = board.allocate("linux,cma", MiB);
    ASSERT_TRUE(buffer);
    auto cpu = (*buffer)->mmap();
    ASSERT_TRUE(cpu);
    auto attachment = (*buffer)->attach(usb);
    ASSERT_TRUE(attachment);
    auto mapping = attachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping);
    ASSERT_EQ(mapping->segments().size(), 16u);
    const uint64_t start = mapping->segments().front().dmaAddress;
    ASSERT_EQ(mapping->segments().back().end(), start + MiB) << "one contiguous chunk";
    mapping->unmap();
    std::vector<std::byte> out(16);
    for (uint64_t address : {start, start + 64 * KiB - 8, start + 64 * KiB, start + 500 * KiB, start + MiB - 16}) {
        SCOPED_TRACE(address - start);
        expectFault(usb, *cpu, DmaFaultKind::AfterUnmap, EFAULT, address, false,
                    [&] { return usb.read(address, out); });
    }
    expectFault(usb, *cpu, DmaFaultKind::Unmapped, EFAULT, start + MiB, false,
                [&] { return usb.read(start + MiB, out); });
}

// Two buffers side by side in physical memory, each mapped on a direct
// device: one transfer may not run from one's segment into the other's.
TEST(DeviceDma, ATransferAcrossAdjacentSegmentsOfTwoMappingsFaults) {
    CoreBoard board;
    const DmaDevice& usb = board.device("usb");
    auto first = board.allocate("linux,cma", 64 * KiB);
    auto second = board.allocate("linux,cma", 64 * KiB);
    ASSERT_TRUE(first && second);
    ASSERT_EQ((*first)->chunks().size(), 1u);
    ASSERT_EQ((*second)->chunks().size(), 1u);
    const PhysChunk a = (*first)->chunks().front();
    const PhysChunk b = (*second)->chunks().front();
    ASSERT_TRUE(a.end() == b.address || b.end() == a.address) << "the CMA heap gave them side by side";
    auto firstCpu = (*first)->mmap();
    auto secondCpu = (*second)->mmap();
    ASSERT_TRUE(firstCpu && secondCpu);
    auto firstAttachment = (*first)->attach(usb);
    auto secondAttachment = (*second)->attach(usb);
    ASSERT_TRUE(firstAttachment && secondAttachment);
    auto firstMapping = firstAttachment->map(DmaDirection::Bidirectional);
    auto secondMapping = secondAttachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(firstMapping && secondMapping);
    const uint64_t boundary = std::max(a.address, b.address);
    const BufferMapping& lowCpu = a.address < b.address ? *firstCpu : *secondCpu;
    const BufferMapping& highCpu = a.address < b.address ? *secondCpu : *firstCpu;

    const std::vector<std::byte> data = pattern(64, 4);
    std::vector<std::byte> out(64, std::byte{0x77});
    const std::vector<std::byte> high = snapshot(highCpu);
    expectFault(usb, lowCpu, DmaFaultKind::BeyondSegment, EFAULT, boundary - 16, true,
                [&] { return usb.write(boundary - 16, data); });
    EXPECT_EQ(snapshot(highCpu), high) << "the faulting write reached the next buffer";
    EXPECT_NE(usb.recentFaults().back().message.find(formatAddress(boundary)), std::string::npos)
        << usb.recentFaults().back().message;
    expectFault(usb, lowCpu, DmaFaultKind::BeyondSegment, EFAULT, boundary - 16, false,
                [&] { return usb.read(boundary - 16, out); });
    EXPECT_EQ(out, std::vector<std::byte>(64, std::byte{0x77}));
    // Each side on its own is fine.
    ASSERT_TRUE(usb.write(boundary - 64, data));
    ASSERT_TRUE(usb.write(boundary, data));
    EXPECT_EQ(std::memcmp(lowCpu.bytes() + lowCpu.size() - 64, data.data(), 64), 0);
    EXPECT_EQ(std::memcmp(highCpu.bytes(), data.data(), 64), 0);
}

TEST(DeviceDma, FaultHistoryIsBoundedButTheCountIsNot) {
    CoreBoard board;
    const DmaDevice& usb = board.device("usb");
    const std::vector<std::byte> data(8, std::byte{1});
    for (uint64_t i = 0; i < 100; ++i)
        ASSERT_FALSE(usb.write(0x1000 + i * 8, data));
    EXPECT_EQ(usb.faultCount(), 100u);
    const std::vector<DmaFault> recent = usb.recentFaults();
    ASSERT_FALSE(recent.empty());
    EXPECT_LT(recent.size(), 100u);
    EXPECT_EQ(recent.back().address, 0x1000 + 99 * 8u);
    // Oldest first, and the oldest are the ones dropped.
    for (size_t i = 1; i < recent.size(); ++i)
        EXPECT_EQ(recent[i].address, recent[i - 1].address + 8);
}

TEST(DmaFaultKind, HasNames) {
    EXPECT_STREQ(dmaFaultKindName(DmaFaultKind::Unmapped), "unmapped");
    EXPECT_STREQ(dmaFaultKindName(DmaFaultKind::AfterUnmap), "after-unmap");
    EXPECT_STREQ(dmaFaultKindName(DmaFaultKind::BeyondSegment), "beyond-segment");
    EXPECT_STREQ(dmaFaultKindName(DmaFaultKind::WrongDirection), "wrong-direction");
    EXPECT_STREQ(dmaFaultKindName(DmaFaultKind::Translation), "translation");
}

} // namespace
} // namespace cenalloc
