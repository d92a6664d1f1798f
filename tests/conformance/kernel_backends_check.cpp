// SPDX-License-Identifier: MIT
// The real kernel backends (kernel:<name> heaps, udmabuf export of sealed memfds) exercised where they exist.
//
// scripts/kernel-conformance runs this in the qemu guest (whose kernel has
// the system heap and udmabuf), with the shared libraries it links, and
// compares its output with tests/conformance/kernel_backends_expected.txt. On
// a host without them it says so and exits 0. One deterministic line per
// case, as the conformance program prints them. It checks the backends alone,
// then kernel:<name> heaps inside a Context and through a Session.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/udmabuf.h>
#include <string>
#include <sys/ioctl.h>
#include <thread>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cenalloc/context.h>
#include <cenalloc/memfd.h>
#include <cenalloc/session.h>

#include <cenalloc/udmabuf.h>
#include "support/dmabuf_fdinfo.h"
#include "heaps/kernel_heap.h"
#include "service/server.h"

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

/// A "field:" line the kernel prints in /proc/self/fdinfo for a dma-buf.
std::string fdinfoField(int fd, const std::string& field) {
    std::string value = test::dmaBufFdinfo(fd, field);
    return value.empty() ? "(none)" : value;
}

std::string fdinfoName(int fd) {
    return fdinfoField(fd, "name");
}

std::string statsLine(const HeapStats& s) {
    return fmt::format("live={} bytes={} failed={}", s.liveBuffers, s.liveBytes, s.failedAllocations);
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

    auto opened = KernelHeap::open("system");
    report("kernel-heap-open", opened ? (*opened)->name() : outcome(opened.error()));
    if (!opened)
        return;
    const KernelHeap* heap = opened->get();
    auto props = heap->properties();
    report("kernel-heap-defaults", std::string(props.contiguous ? "contiguous" : "scattered") +
                                       (props.cached ? " cached" : " uncached") +
                                       " max-chunk=" + std::to_string(props.maxChunkSize));
    report("kernel-heap-missing", outcome(KernelHeap::open("no-such-heap")));

    auto fd = heap->allocateDmaBuf(1 << 20);
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
    report("kernel-alloc-zero-length", outcome(heap->allocateDmaBuf(0)));
    report("kernel-alloc-bad-fd-flags", outcome(heap->allocateDmaBuf(kPage, O_RDWR | O_NONBLOCK)));
    report("kernel-alloc-heap-flags", outcome(heap->allocateDmaBuf(kPage, O_RDWR | O_CLOEXEC, 1)));
    auto rounded = heap->allocateDmaBuf(5000);
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

/// The same heap as a Context offers it: "kernel:system", allocated by name.
void contextKernelHeaps() {
    auto created = Context::create();
    if (!created) {
        report("context", outcome(created.error()));
        return;
    }
    Context& context = **created;
    auto heap = context.findHeap("kernel:system");
    report("context-kernel-heap",
           heap ? std::string("kernel:system kind=") + heapKindName(heap->properties().kind) : std::string("missing"));
    if (!heap)
        return;
    report("context-alloc-zero-length", outcome(context.allocate("kernel:system", 0)));
    {
        auto buffer = context.allocate("kernel:system", 5000);
        report("context-alloc", buffer ? "ok size=" + std::to_string((*buffer)->size()) : outcome(buffer.error()));
        if (!buffer)
            return;
        Buffer& b = **buffer;
        report("context-alloc-exporter", fdinfoField(b.fd().get(), "exp_name"));
        report("context-stats", statsLine(heap->stats()));
        auto map = b.mmap();
        bool zero = map.has_value();
        for (size_t i = 0; map && i < map->size(); ++i)
            zero &= std::to_integer<int>(map->bytes()[i]) == 0;
        report("context-mmap-zeroed", map ? (zero ? "ok" : "dirty") : outcome(map.error()));
        {
            auto access = b.beginCpuAccess(kSyncWrite);
            report("context-cpu-access", outcome(access));
            if (map)
                std::memset(map->data(), 0x5a, map->size());
        }
        report("context-set-name", outcome(b.setName("ctx-kernel")));
        report("context-name-in-fdinfo", fdinfoName(b.fd().get()));
        report("context-set-name-too-long", outcome(b.setName(std::string(32, 'x'))));
        report("context-attach-device", outcome(b.attach(*context.devices().front())));
        auto exported = exportUdmabuf(b);
        report("context-export-kernel-buffer",
               exported ? "exporter=" + fdinfoField(exported->get(), "exp_name") : outcome(exported.error()));
        BufferInfo info = b.info();
        report("context-bufinfo", fmt::format("heap={} in-host-kernel={} chunks={}", info.heap,
                                              info.inHostKernel ? "yes" : "no", info.chunks.size()));
        std::vector<std::string> devices{context.devices().front()->name()};
        auto why = context.explain(devices, 1 << 20);
        std::string verdict = "not listed";
        for (const auto& h : why ? why->heaps : std::vector<HeapExplanation>{})
            if (h.name == "kernel:system")
                verdict = refusalName(h.combined.refusal());
        report("context-explain-verdict", verdict);
        report("context-explain-chosen", why && why->heap && *why->heap != "kernel:system" ? "a modelled heap" : "?");
    }
    report("context-stats-after-free", statsLine(heap->stats()));

    // A modelled heap's buffer becomes a real dma-buf through udmabuf.
    auto modelled = context.allocate("system", 64 * 1024);
    auto exported = modelled ? exportUdmabuf(**modelled) : Result<UniqueFd>(modelled.error());
    report("context-export-system-buffer",
           exported ? "exporter=" + fdinfoField(exported->get(), "exp_name") : outcome(exported.error()));
}

/// A Session (the service's code, in-process) hands out the kernel's fd and
/// follows its lifetime through inotify on the dma-buf inode.
void sessionKernelHeaps() {
    auto session = Session::local();
    if (!session) {
        report("session", outcome(session.error()));
        return;
    }
    auto liveOf = [&]() -> std::string {
        auto stats = (*session)->stats();
        if (!stats)
            return outcome(stats.error());
        for (const HeapInfo& h : stats->heaps)
            if (h.name == "kernel:system")
                return statsLine(h.stats);
        return "missing";
    };
    auto fd = (*session)->allocate("kernel:system", 64 * 1024);
    report("session-alloc", outcome(fd));
    if (!fd)
        return;
    report("session-alloc-exporter", fdinfoField(fd->get(), "exp_name"));
    report("session-stats", liveOf());
    report("session-set-name", outcome((*session)->setName(*fd, "session-kernel")));
    report("session-name-in-fdinfo", fdinfoName(fd->get()));
    report("session-cpu-access-begin", outcome((*session)->beginCpuAccess(*fd, kSyncRead)));
    report("session-cpu-access-end", outcome((*session)->endCpuAccess(*fd, kSyncRead)));
    unsigned char* p = mapFd(fd->get(), 64 * 1024, PROT_READ | PROT_WRITE);
    fd->reset();
    report("session-mapping-holds-it", liveOf());
    if (p)
        ::munmap(p, 64 * 1024);
    report("session-freed-with-last-mapping", liveOf());
}

// A deferred buffer for a device the placed system heap serves (issue 15):
// its handle holds no bytes; its storage is the kernel's dma-buf, made at
// its first use, which the CPU maps and a driver imports (the storage fd).
void deferredOnPlacedHeaps() {
    const ContextOptions placed{.placeKernelHeaps = true, .readyPool = {}};
    auto context = Context::create(defaultPlatform(), placed);
    if (!context) {
        report("deferred-context", outcome(context.error()));
        return;
    }
    auto systemStats = [&] { return statsLine((*context)->findHeap("system")->stats()); };
    {
        auto buffer = (*context)->create(5000, "deferred");
        if (!buffer) {
            report("deferred-create", outcome(buffer.error()));
            return;
        }
        Buffer& b = **buffer;
        struct stat st {};
        const bool empty = ::fstat(b.fd().get(), &st) == 0 && st.st_size == 0;
        report("deferred-create",
               fmt::format("ok bytes-apart={} handle-empty={}", b.bytesApart() ? "yes" : "no", empty ? "yes" : "no"));
        auto device = (*context)->device("gpu");
        if (!device) {
            report("deferred-attach", outcome(device.error()));
            return;
        }
        auto attachment = b.attach(**device);
        report("deferred-attach", outcome(attachment));
        report("deferred-storage-before-use", b.hasStorage() ? "yes" : "no");
        auto cpu = b.mmap();
        report("deferred-mmap", outcome(cpu));
        report("deferred-heap", fmt::format("{} in-host-kernel={}", b.heapName(), b.inHostKernel() ? "yes" : "no"));
        report("deferred-stats", systemStats());
        if (cpu)
            std::memset(cpu->data(), 0x5a, cpu->size());
        auto storage = b.dupStorageFd();
        report("deferred-storage-fd", outcome(storage));
        if (storage) {
            auto size = dmaBufSize(*storage);
            report("deferred-storage-dmabuf",
                   fmt::format("exporter={} name={} size={}", fdinfoField(storage->get(), "exp_name"),
                               fdinfoName(storage->get()), size ? std::to_string(*size) : outcome(size.error())));
            unsigned char* seen = mapFd(storage->get(), 2 * kPage, PROT_READ);
            report("deferred-storage-sees-cpu-writes",
                   seen && seen[0] == 0x5a && seen[4999] == 0x5a ? "ok" : "differs");
            if (seen)
                ::munmap(seen, 2 * kPage);
        }
        report("deferred-cpu-access", outcome(b.beginCpuAccess(kSyncRead | kSyncWrite)));
        if (attachment)
            report("deferred-map-for-device", outcome(attachment->map(DmaDirection::Bidirectional)));
        // A display without an IOMMU needs one contiguous block, which the
        // system heap's dma-buf is not, and the kernel's storage cannot move.
        if (auto display = (*context)->device("display"))
            report("deferred-attach-display-after", outcome(b.attach(**display)));
    }
    report("deferred-stats-after-free", systemStats());

    // The same through a session: the storage-fd op.
    auto session = Session::local(defaultPlatform(), placed);
    if (!session) {
        report("session-deferred", outcome(session.error()));
        return;
    }
    auto handle = (*session)->create(64 * 1024, "session-deferred");
    report("session-deferred-create", outcome(handle));
    if (!handle)
        return;
    report("session-deferred-attach", outcome((*session)->attach(*handle, "gpu")));
    auto storage = (*session)->storageFd(*handle);
    report("session-deferred-storage-fd", outcome(storage));
    if (storage)
        report("session-deferred-dmabuf",
               fmt::format("exporter={} name={}", fdinfoField(storage->get(), "exp_name"), fdinfoName(storage->get())));
    report("session-deferred-cpu-access", outcome((*session)->beginCpuAccess(*handle, kSyncWrite)));
    report("session-deferred-cpu-access-end", outcome((*session)->endCpuAccess(*handle, kSyncWrite)));
}

// Through cenallocd placed on the kernel's heaps, with a quota of one
// buffer: the kernel's dma-buf storage-fd handed out outlives the buffer
// in the client's hands, and the charge lasts until it goes too.
void daemonChargesKeptStorage() {
    ServerOptions options;
    options.socketPath = "/tmp/cenalloc-check.sock";
    options.config.context.placeKernelHeaps = true;
    options.config.defaultQuota = Quota{kUnlimited, 1};
    options.config.defaultBuffersConfigured = true; // for root too
    auto server = Server::create(defaultPlatform(), std::move(options));
    if (!server) {
        report("daemon", outcome(server.error()));
        return;
    }
    std::thread serving([&] { (void)(*server)->run(); });
    {
        auto session = Session::connect("/tmp/cenalloc-check.sock");
        report("daemon-connect", outcome(session));
        if (session) {
            Session& s = **session;
            UniqueFd storage;
            {
                auto handle = s.create(64 * 1024, "kept");
                report("daemon-deferred-create", outcome(handle));
                if (handle) {
                    auto gpu = s.attach(*handle, "gpu");
                    auto out = s.storageFd(*handle);
                    report("daemon-deferred-storage-fd", outcome(out));
                    if (out) {
                        report("daemon-deferred-dmabuf", fdinfoField(out->get(), "exp_name"));
                        storage = std::move(*out);
                    }
                    if (gpu)
                        (void)s.detach(*gpu);
                    (void)s.release(*handle);
                }
            } // the handle's last fd closes
            report("daemon-create-while-storage-kept", outcome(s.create(4096, "second")));
            storage.reset();
            auto second = s.create(4096, "second");
            report("daemon-create-after-storage-closed", outcome(second));
            if (second)
                (void)s.release(*second);
        }
    }
    (*server)->stop();
    serving.join();
}

int main() {
    kernelHeaps();
    udmabuf();
    contextKernelHeaps();
    sessionKernelHeaps();
    deferredOnPlacedHeaps();
    daemonChargesKeptStorage();
    std::printf("summary: done\n");
    return 0;
}
