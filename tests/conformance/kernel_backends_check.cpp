// SPDX-License-Identifier: MIT
// The real kernel backends (kernel:<name> heaps, udmabuf export of sealed memfds) exercised where they exist.
//
// scripts/kernel-conformance runs this, statically linked, in the qemu guest
// (whose kernel has the system heap and udmabuf) and compares its output with
// tests/conformance/kernel_backends_expected.txt. On a host without them it
// says so and exits 0. One deterministic line per case, as the conformance
// program prints them.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <linux/dma-buf.h>
#include <linux/udmabuf.h>
#include <string>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cenalloc/memfd.h>

#include "core/udmabuf.h"
#include "heaps/kernel_heap.h"

namespace {

using namespace cenalloc;

constexpr size_t kPage = 4096;

void report(const char* name, const std::string& result) {
    std::printf("%s: %s\n", name, result.c_str());
    std::fflush(stdout);
}

std::string outcome(const Error& error) {
    return errnoName(error.code());
}

template <typename T> std::string outcome(const Result<T>& r) {
    return r ? std::string("ok") : outcome(r.error());
}

/// The "name:" line the kernel prints in /proc/self/fdinfo for a dma-buf.
std::string fdinfoName(int fd) {
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("name:", 0) == 0)
            return line.substr(line.find_first_not_of(" \t", 5));
    return "(none)";
}

unsigned char* mapFd(int fd, size_t size, int prot) {
    void* p = ::mmap(nullptr, size, prot, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? nullptr : static_cast<unsigned char*>(p);
}

void kernelHeaps() {
    auto heaps = listKernelHeaps();
    if (!heaps) {
        report("kernel-heaps", outcome(heaps.error()));
        return;
    }
    std::string names;
    for (const auto& n : *heaps)
        names += (names.empty() ? "" : " ") + n;
    report("kernel-heaps", names.empty() ? "none" : names);
    if (names.empty())
        return;

    auto heap = KernelHeap::open("system");
    report("kernel-heap-open", heap ? heap->name() : outcome(heap.error()));
    if (!heap)
        return;
    auto props = heap->properties();
    report("kernel-heap-defaults", std::string(props.contiguous ? "contiguous" : "scattered") +
                                       (props.cached ? " cached" : " uncached") +
                                       " max-chunk=" + std::to_string(props.maxChunkSize));
    report("kernel-heap-missing", outcome(KernelHeap::open("no-such-heap")));

    auto fd = heap->allocate(1 << 20);
    if (!fd) {
        report("kernel-alloc", outcome(fd.error()));
        return;
    }
    auto size = dmaBufSize(*fd);
    report("kernel-alloc", size ? "ok size=" + std::to_string(*size) : outcome(size.error()));
    unsigned char* p = mapFd(fd->get(), 1 << 20, PROT_READ | PROT_WRITE);
    bool zero = p != nullptr;
    for (size_t i = 0; p && i < (1u << 20); ++i)
        zero &= p[i] == 0;
    report("kernel-alloc-zeroed", p ? (zero ? "ok" : "dirty") : errnoName(errno));
    report("kernel-sync-start", outcome(syncDmaBuf(*fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE)));
    if (p)
        std::memset(p, 0x5a, 1 << 20);
    report("kernel-sync-end", outcome(syncDmaBuf(*fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE)));
    report("kernel-sync-bad-flags", outcome(syncDmaBuf(*fd, 0)));
    report("kernel-set-name", outcome(setDmaBufName(*fd, "cenalloc-check")));
    report("kernel-name-in-fdinfo", fdinfoName(fd->get()));
    report("kernel-set-name-too-long", outcome(setDmaBufName(*fd, std::string(32, 'x'))));
    if (p)
        ::munmap(p, 1 << 20);
    report("kernel-alloc-zero-length", outcome(heap->allocate(0)));
    report("kernel-alloc-bad-fd-flags", outcome(heap->allocate(kPage, O_RDWR | O_NONBLOCK)));
    report("kernel-alloc-heap-flags", outcome(heap->allocate(kPage, O_RDWR | O_CLOEXEC, 1)));
    auto rounded = heap->allocate(5000);
    auto roundedSize = rounded ? dmaBufSize(*rounded) : Result<uint64_t>(rounded.error());
    report("kernel-alloc-rounded",
           roundedSize ? "ok size=" + std::to_string(*roundedSize) : outcome(roundedSize.error()));
}

/// UDMABUF_CREATE straight to the kernel, bypassing exportUdmabuf's checks:
/// what the kernel itself says of a request.
std::string kernelSays(int memfd, uint64_t offset, uint64_t size) {
    int dev = ::open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
    if (dev < 0)
        return errnoName(errno);
    udmabuf_create create{};
    create.memfd = static_cast<uint32_t>(memfd);
    create.flags = UDMABUF_FLAGS_CLOEXEC;
    create.offset = offset;
    create.size = size;
    int fd = ::ioctl(dev, UDMABUF_CREATE, &create);
    int error = errno;
    ::close(dev);
    if (fd < 0)
        return errnoName(error);
    ::close(fd);
    return "ok";
}

void udmabuf() {
    const bool available = udmabufAvailable();
    report("udmabuf-available", available ? "yes" : "no");
    const size_t size = 16 * kPage;
    auto memfd = createSealedMemfd("cenalloc-check", size);
    if (!memfd) {
        report("udmabuf-memfd", outcome(memfd.error()));
        return;
    }
    auto exported = exportUdmabuf(*memfd, 0, size);
    report("udmabuf-export", exported ? "ok" : outcome(exported.error()));
    if (!available)
        return;
    if (!exported)
        return;
    auto exportedSize = dmaBufSize(*exported);
    report("udmabuf-size", exportedSize ? std::to_string(*exportedSize) : outcome(exportedSize.error()));

    // The same pages: writes through either mapping are seen by the other.
    unsigned char* viaMemfd = mapFd(memfd->get(), size, PROT_READ | PROT_WRITE);
    unsigned char* viaDmaBuf = mapFd(exported->get(), size, PROT_READ | PROT_WRITE);
    report("udmabuf-mmap", viaMemfd && viaDmaBuf ? "ok" : errnoName(errno));
    if (viaMemfd && viaDmaBuf) {
        for (size_t i = 0; i < size; ++i)
            viaMemfd[i] = static_cast<unsigned char>(i * 13);
        bool same = true;
        for (size_t i = 0; i < size; ++i)
            same &= viaDmaBuf[i] == static_cast<unsigned char>(i * 13);
        report("udmabuf-sees-memfd-writes", same ? "ok" : "stale");
        report("udmabuf-sync-start", outcome(syncDmaBuf(*exported, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW)));
        viaDmaBuf[size - 1] = 0x77;
        report("udmabuf-sync-end", outcome(syncDmaBuf(*exported, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW)));
        report("memfd-sees-udmabuf-writes", viaMemfd[size - 1] == 0x77 ? "ok" : "stale");
    }
    report("udmabuf-set-name", outcome(setDmaBufName(*exported, "cenalloc-udmabuf")));
    report("udmabuf-name-in-fdinfo", fdinfoName(exported->get()));

    auto part = exportUdmabuf(*memfd, 4 * kPage, 2 * kPage);
    auto partSize = part ? dmaBufSize(*part) : Result<uint64_t>(part.error());
    report("udmabuf-export-range", partSize ? "ok size=" + std::to_string(*partSize) : outcome(partSize.error()));
    if (part) {
        unsigned char* q = mapFd(part->get(), 2 * kPage, PROT_READ);
        report("udmabuf-range-content", q && q[0] == static_cast<unsigned char>(4 * kPage * 13) ? "ok" : "wrong");
        if (q)
            ::munmap(q, 2 * kPage);
    }

    // What cenalloc refuses before asking, and what the kernel says of it.
    struct {
        const char* name;
        uint64_t offset;
        uint64_t size;
    } ranges[] = {
        {"udmabuf-unaligned-offset", 100, kPage},
        {"udmabuf-unaligned-size", 0, kPage + 1},
        {"udmabuf-beyond-end", 8 * kPage, 16 * kPage},
        {"udmabuf-empty", 0, 0},
    };
    for (const auto& r : ranges) {
        report(r.name, outcome(exportUdmabuf(*memfd, r.offset, r.size)) +
                           " kernel=" + kernelSays(memfd->get(), r.offset, r.size));
    }
    int unsealed = ::memfd_create("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (unsealed >= 0 && ::ftruncate(unsealed, static_cast<off_t>(size)) == 0) {
        report("udmabuf-unsealed",
               outcome(exportUdmabuf(BorrowedFd(unsealed), 0, size)) + " kernel=" + kernelSays(unsealed, 0, size));
        ::fcntl(unsealed, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_WRITE);
        report("udmabuf-write-sealed",
               outcome(exportUdmabuf(BorrowedFd(unsealed), 0, size)) + " kernel=" + kernelSays(unsealed, 0, size));
        ::close(unsealed);
    }
    int regular = ::open("/init", O_RDONLY | O_CLOEXEC);
    if (regular >= 0) {
        report("udmabuf-not-a-memfd", outcome(exportUdmabuf(BorrowedFd(regular), 0, kPage)));
        ::close(regular);
    }

    // The dma-buf keeps the pages after the memfd and its mapping are gone.
    if (viaMemfd)
        ::munmap(viaMemfd, size);
    memfd->reset();
    report("udmabuf-outlives-memfd", viaDmaBuf && viaDmaBuf[size - 1] == 0x77 && viaDmaBuf[1] == 13 ? "ok" : "lost");
    if (viaDmaBuf)
        ::munmap(viaDmaBuf, size);
}

} // namespace

int main() {
    kernelHeaps();
    udmabuf();
    std::printf("summary: done\n");
    return 0;
}
