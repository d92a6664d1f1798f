// SPDX-License-Identifier: MIT
// Tests of the real kernel backends: kernel:<name> heaps and udmabuf export (skipped where the host lacks them).
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <linux/dma-buf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cenalloc/memfd.h>

#include <cenalloc/udmabuf.h>
#include "heaps/kernel_heap.h"

namespace cenalloc {
namespace {

constexpr uint64_t kPage = 4096;

TEST(KernelHeaps, AreListedByNameAndNamedWithAPrefix) {
    char templ[] = "/tmp/cenalloc-kernel-heaps.XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    for (const char* name : {"system", "linux,cma"}) {
        std::FILE* f = std::fopen((std::string(templ) + "/" + name).c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fclose(f);
    }
    auto names = listKernelHeaps(templ);
    ASSERT_TRUE(names);
    EXPECT_EQ(*names, (std::vector<std::string>{"linux,cma", "system"}));
    std::filesystem::remove_all(templ);
    auto none = listKernelHeaps("/nonexistent/dma_heap");
    ASSERT_TRUE(none) << "no directory is a kernel without heaps, not an error";
    EXPECT_TRUE(none->empty());
    EXPECT_EQ(kernelHeapName("system"), "kernel:system");
}

TEST(KernelHeaps, DefaultsPromiseNothingTheKernelDoesNotSay) {
    HeapProperties system = kernelHeapProperties("system");
    EXPECT_EQ(system.name, "kernel:system");
    EXPECT_EQ(system.kind, HeapKind::Kernel);
    EXPECT_FALSE(system.contiguous);
    EXPECT_TRUE(system.cached);
    EXPECT_EQ(system.capacity, 0u) << "the capacity is unknown";
    EXPECT_EQ(system.maxChunkSize, 1u << 20);
    EXPECT_EQ(system.lowestAddress, 0u);
    EXPECT_EQ(system.highestAddress, UINT64_MAX) << "no address limit is promised";
    EXPECT_EQ(system.validHeapFlags, 0u);
    for (const char* cma : {"linux,cma", "reserved", "cma-camera"}) {
        SCOPED_TRACE(cma);
        HeapProperties p = kernelHeapProperties(cma);
        EXPECT_EQ(p.kind, HeapKind::Kernel);
        EXPECT_TRUE(p.contiguous);
    }
}

TEST(KernelHeaps, ThePlatformDescriptionOverridesTheDefaults) {
    KernelHeapDescription described{.name = "carveout",
                                    .description = "display carveout, write-combined",
                                    .contiguous = true,
                                    .cached = false,
                                    .size = 64u << 20};
    HeapProperties p = kernelHeapProperties("carveout", &described);
    EXPECT_EQ(p.name, "kernel:carveout");
    EXPECT_EQ(p.kind, HeapKind::Kernel);
    EXPECT_EQ(p.description, "display carveout, write-combined");
    EXPECT_TRUE(p.contiguous);
    EXPECT_FALSE(p.cached);
    EXPECT_EQ(p.capacity, 64u << 20);
    EXPECT_EQ(p.highestAddress, UINT64_MAX) << "a description promises no placement either";
    described.contiguous = false;
    described.description.clear();
    p = kernelHeapProperties("carveout", &described);
    EXPECT_FALSE(p.contiguous) << "the name's hint never beats the description";
    EXPECT_EQ(p.description, "the host kernel's dma-heap /dev/dma_heap/carveout");
}

TEST(KernelHeaps, OpeningOneTheHostLacksSaysSo) {
    auto heap = KernelHeap::open("system", {}, "/nonexistent/dma_heap");
    ASSERT_FALSE(heap);
    EXPECT_EQ(heap.error().code(), ENOENT);
    EXPECT_EQ(KernelHeap::open("../etc/passwd").error().code(), EINVAL);
}

TEST(KernelHeaps, AllocateRealDmaBufsWhereTheHostHasASystemHeap) {
    auto heap = KernelHeap::open("system");
    if (!heap)
        GTEST_SKIP() << "this host has no kernel system heap (" << heap.error().toString()
                     << "); scripts/kernel-conformance runs these checks in a qemu guest";
    EXPECT_EQ((*heap)->name(), "kernel:system");
    auto fd = (*heap)->allocateDmaBuf(5000);
    ASSERT_TRUE(fd) << fd.error().toString();
    auto size = dmaBufSize(*fd);
    ASSERT_TRUE(size);
    EXPECT_EQ(*size, 2 * kPage);
    EXPECT_TRUE(syncDmaBuf(*fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW));
    EXPECT_TRUE(syncDmaBuf(*fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW));
    EXPECT_EQ(syncDmaBuf(*fd, 0).error().code(), EINVAL);
    EXPECT_TRUE(setDmaBufName(*fd, "kernel-heap-test"));
    EXPECT_EQ(setDmaBufName(*fd, std::string(32, 'x')).error().code(), EINVAL);
    EXPECT_EQ((*heap)->allocateDmaBuf(0).error().code(), EINVAL);
    EXPECT_EQ((*heap)->allocateDmaBuf(kPage, O_RDWR | O_NONBLOCK).error().code(), EINVAL);
    EXPECT_EQ((*heap)->allocateDmaBuf(kPage, O_RDWR, 1).error().code(), EINVAL);
}

TEST(Udmabuf, PreconditionsAreCheckedWithTheReasonBeforeTheKernelIsAsked) {
    auto memfd = createSealedMemfd("udmabuf-test", 16 * kPage);
    ASSERT_TRUE(memfd);
    const struct {
        const char* name;
        uint64_t offset;
        uint64_t size;
    } ranges[] = {
        {"empty", 0, 0},
        {"unaligned offset", 100, kPage},
        {"unaligned size", 0, kPage + 1},
        {"beyond the end", 8 * kPage, 16 * kPage},
    };
    for (const auto& r : ranges) {
        SCOPED_TRACE(r.name);
        auto fd = exportUdmabuf(*memfd, r.offset, r.size);
        ASSERT_FALSE(fd);
        EXPECT_EQ(fd.error().code(), EINVAL);
    }
    int unsealed = ::memfd_create("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    ASSERT_GE(unsealed, 0);
    ASSERT_EQ(::ftruncate(unsealed, 4 * kPage), 0);
    auto fd = exportUdmabuf(BorrowedFd(unsealed), 0, 4 * kPage);
    ASSERT_FALSE(fd);
    EXPECT_EQ(fd.error().code(), EINVAL);
    EXPECT_NE(fd.error().message().find("F_SEAL_SHRINK"), std::string::npos);
    ASSERT_EQ(::fcntl(unsealed, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_WRITE), 0);
    fd = exportUdmabuf(BorrowedFd(unsealed), 0, 4 * kPage);
    ASSERT_FALSE(fd);
    EXPECT_NE(fd.error().message().find("F_SEAL_WRITE"), std::string::npos);
    ::close(unsealed);
    int regular = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(regular, 0);
    EXPECT_EQ(exportUdmabuf(BorrowedFd(regular), 0, kPage).error().code(), EINVAL);
    ::close(regular);
}

TEST(Udmabuf, AHostWithoutTheDeviceIsEnodev) {
    auto memfd = createSealedMemfd("udmabuf-test", 4 * kPage);
    ASSERT_TRUE(memfd);
    auto fd = exportUdmabuf(*memfd, 0, 4 * kPage, true, "/nonexistent/udmabuf");
    ASSERT_FALSE(fd);
    EXPECT_EQ(fd.error().code(), ENODEV);
    EXPECT_NE(fd.error().message().find("CONFIG_UDMABUF"), std::string::npos);
    EXPECT_FALSE(udmabufAvailable("/nonexistent/udmabuf"));
}

TEST(Udmabuf, ASealedMemfdBecomesADmaBufOfTheSamePages) {
    if (!udmabufAvailable())
        GTEST_SKIP() << "this host has no usable /dev/udmabuf; scripts/kernel-conformance runs these checks in a "
                        "qemu guest";
    const size_t size = 8 * kPage;
    auto memfd = createSealedMemfd("udmabuf-test", size);
    ASSERT_TRUE(memfd);
    auto dmabuf = exportUdmabuf(*memfd, 0, size);
    ASSERT_TRUE(dmabuf) << dmabuf.error().toString();
    EXPECT_EQ(*dmaBufSize(*dmabuf), size);
    auto* a = static_cast<unsigned char*>(::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd->get(), 0));
    auto* b = static_cast<unsigned char*>(::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, dmabuf->get(), 0));
    ASSERT_NE(a, MAP_FAILED);
    ASSERT_NE(b, MAP_FAILED);
    a[123] = 0x42;
    EXPECT_EQ(b[123], 0x42);
    b[size - 1] = 0x24;
    EXPECT_EQ(a[size - 1], 0x24);
    EXPECT_TRUE(syncDmaBuf(*dmabuf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW));
    EXPECT_TRUE(syncDmaBuf(*dmabuf, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW));
    ::munmap(a, size);
    ::munmap(b, size);
}

} // namespace
} // namespace cenalloc
