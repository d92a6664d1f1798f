// SPDX-License-Identifier: MIT
// Tests of CPU access brackets: flag validation, nesting, cache maintenance and missing-sync detection.
#include <cenalloc/buffer.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/device.h>

#include "support/core_board.h"

namespace cenalloc {
namespace {

using test::CoreBoard;

TEST(CpuAccess, FlagsMustBeReadOrWriteAndNothingElse) {
    CoreBoard board;
    auto buffer = board.allocate("system-dma32", 64 * KiB);
    ASSERT_TRUE(buffer);
    auto attachment = (*buffer)->attach(board.device("camera"));
    ASSERT_TRUE(attachment);
    for (uint32_t flags : {0u, 4u, 8u, kSyncReadWrite | 4u, 0x80000000u, 0xffffffffu}) {
        SCOPED_TRACE(flags);
        auto guard = (*buffer)->beginCpuAccess(flags);
        ASSERT_FALSE(guard);
        EXPECT_EQ(guard.error().code(), EINVAL);
        EXPECT_EQ((*buffer)->info().cpuAccessDepth, 0u);
        EXPECT_EQ((*buffer)->info().cacheMaintenanceOps, 0u);
    }
    for (uint32_t flags : {uint32_t{kSyncRead}, uint32_t{kSyncWrite}, uint32_t{kSyncReadWrite}}) {
        SCOPED_TRACE(flags);
        auto guard = (*buffer)->beginCpuAccess(flags);
        ASSERT_TRUE(guard) << guard.error().toString();
        EXPECT_EQ((*buffer)->info().cpuAccessDepth, 1u);
    }
    EXPECT_EQ((*buffer)->info().cpuAccessDepth, 0u);
}

TEST(CpuAccess, BracketsNestAndAreCounted) {
    CoreBoard board;
    auto buffer = board.allocate("system", 16 * KiB);
    ASSERT_TRUE(buffer);
    Buffer& b = **buffer;
    auto read = b.beginCpuAccess(kSyncRead);
    auto write = b.beginCpuAccess(kSyncWrite);
    ASSERT_TRUE(read && write);
    EXPECT_EQ(b.info().cpuAccessDepth, 2u);
    read->end();
    EXPECT_EQ(b.info().cpuAccessDepth, 1u);
    read->end(); // idempotent: ends once
    EXPECT_EQ(b.info().cpuAccessDepth, 1u);

    // Move-assigning ends the bracket that is overwritten.
    auto other = b.beginCpuAccess(kSyncReadWrite);
    ASSERT_TRUE(other);
    EXPECT_EQ(b.info().cpuAccessDepth, 2u);
    *write = std::move(*other);
    EXPECT_EQ(b.info().cpuAccessDepth, 1u);
    *write = CpuAccessGuard();
    EXPECT_EQ(b.info().cpuAccessDepth, 0u);
}

struct CacheCase {
    const char* what;
    const char* heap;
    const char* device; // nullptr: none attached
    uint64_t afterMap;
    uint64_t afterRead;      // begin(READ) + end
    uint64_t afterWrite;     // begin(WRITE) + end
    uint64_t afterReadWrite; // begin(READ|WRITE) + end
};

TEST(CpuAccess, CacheMaintenanceIsCountedForNonCoherentDevicesOnCachedMemory) {
    const CacheCase cases[] = {
        // map cleans; begin(READ) invalidates; end(WRITE) cleans.
        {"non-coherent camera, cached heap", "system-dma32", "camera", 1, 2, 3, 5},
        {"non-coherent display, cached cma", "linux,cma", "display", 1, 2, 3, 5},
        {"coherent usb, cached heap", "system-dma32", "usb", 0, 0, 0, 0},
        {"non-coherent camera, uncached heap", "system-uncached-dma32", "camera", 0, 0, 0, 0},
        {"no device attached", "system", nullptr, 0, 0, 0, 0},
    };
    for (const CacheCase& c : cases) {
        SCOPED_TRACE(c.what);
        CoreBoard board;
        auto buffer = board.allocate(c.heap, 256 * KiB);
        ASSERT_TRUE(buffer);
        Buffer& b = **buffer;
        Attachment attachment;
        Attachment::Mapping mapping;
        if (c.device) {
            auto a = b.attach(board.device(c.device));
            ASSERT_TRUE(a) << a.error().toString();
            attachment = std::move(*a);
            auto m = attachment.map(DmaDirection::Bidirectional);
            ASSERT_TRUE(m) << m.error().toString();
            mapping = std::move(*m);
        }
        EXPECT_EQ(b.info().cacheMaintenanceOps, c.afterMap);
        ASSERT_TRUE(b.beginCpuAccess(kSyncRead));
        EXPECT_EQ(b.info().cacheMaintenanceOps, c.afterRead);
        ASSERT_TRUE(b.beginCpuAccess(kSyncWrite));
        EXPECT_EQ(b.info().cacheMaintenanceOps, c.afterWrite);
        ASSERT_TRUE(b.beginCpuAccess(kSyncReadWrite));
        EXPECT_EQ(b.info().cacheMaintenanceOps, c.afterReadWrite);
        EXPECT_EQ(b.info().cpuAccessDepth, 0u);
    }
}

TEST(CpuAccess, DmaDuringAnOpenBracketIsASyncViolation) {
    CoreBoard board;
    const DmaDevice& camera = board.device("camera");
    auto buffer = board.allocate("linux,cma", 64 * KiB);
    ASSERT_TRUE(buffer);
    Buffer& b = **buffer;
    auto attachment = b.attach(camera);
    ASSERT_TRUE(attachment);
    auto mapping = attachment->map(DmaDirection::ToDevice);
    ASSERT_TRUE(mapping);
    const uint64_t address = mapping->segments().front().dmaAddress;
    std::vector<std::byte> out(256);

    // DMA with no bracket open is fine.
    ASSERT_TRUE(camera.read(address, out));
    EXPECT_EQ(b.info().syncViolations, 0u);

    auto guard = b.beginCpuAccess(kSyncWrite);
    ASSERT_TRUE(guard);
    ASSERT_TRUE(camera.read(address, out));
    EXPECT_EQ(b.info().syncViolations, 1u);
    // A transfer that faults never touched memory: no violation.
    const std::vector<std::byte> data(16, std::byte{1});
    ASSERT_FALSE(camera.write(address, data));
    EXPECT_EQ(b.info().syncViolations, 1u);
    ASSERT_TRUE(camera.read(address + 4 * KiB, out));
    EXPECT_EQ(b.info().syncViolations, 2u);

    guard->end();
    ASSERT_TRUE(camera.read(address, out));
    EXPECT_EQ(b.info().syncViolations, 2u);
}

TEST(CpuAccess, MmapDoesNotOpenABracket) {
    CoreBoard board;
    auto buffer = board.allocate("system", 8 * KiB);
    ASSERT_TRUE(buffer);
    auto mapping = (*buffer)->mmap(0x1 /* PROT_READ */);
    ASSERT_TRUE(mapping) << mapping.error().toString();
    EXPECT_EQ(mapping->size(), 8 * KiB);
    EXPECT_TRUE(test::allBytesAre(*mapping, std::byte{0}));
    EXPECT_EQ((*buffer)->info().cpuAccessDepth, 0u);
}

} // namespace
} // namespace cenalloc
