// SPDX-License-Identifier: MIT
// Kernel dma-heaps: listing /dev/dma_heap, allocating real dma-bufs, SYNC and SET_NAME on them.
#include "heaps/kernel_heap.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "base/try.h"

namespace cenalloc {

namespace {

bool looksLikeCma(std::string_view name) {
    return name == "reserved" || name.find("cma") != std::string_view::npos;
}

} // namespace

std::string kernelHeapName(std::string_view kernelName) {
    return fmt::format("{}{}", kKernelHeapPrefix, kernelName);
}

Result<std::vector<std::string>> listKernelHeaps(std::string_view dir) {
    std::string path(dir);
    DIR* stream = ::opendir(path.c_str());
    if (!stream) {
        if (errno == ENOENT)
            return std::vector<std::string>{};
        return Error::fromErrno(fmt::format("opendir {}", path));
    }
    std::vector<std::string> names;
    while (const dirent* entry = ::readdir(stream)) {
        std::string_view name(entry->d_name);
        if (name != "." && name != "..")
            names.emplace_back(name);
    }
    ::closedir(stream);
    std::sort(names.begin(), names.end());
    return names;
}

HeapProperties kernelHeapProperties(std::string_view kernelName, const KernelHeapDescription* described) {
    HeapProperties p;
    p.name = kernelHeapName(kernelName);
    p.kind = HeapKind::Kernel;
    p.minChunkSize = kPageSize;
    p.chunkAlignment = kPageSize;
    p.description = fmt::format("the host kernel's dma-heap {}/{}", kKernelHeapDir, kernelName);
    if (described) {
        if (!described->description.empty())
            p.description = described->description;
        p.contiguous = described->contiguous;
        p.cached = described->cached;
        p.capacity = described->size;
    } else {
        p.contiguous = looksLikeCma(kernelName);
        p.cached = true;
        p.capacity = 0; // unknown
    }
    p.maxChunkSize = p.contiguous ? UINT64_MAX : kPageSize << 8;
    return p;
}

Result<std::shared_ptr<KernelHeap>> KernelHeap::open(std::string_view kernelName, HeapProperties properties,
                                                     std::string_view dir) {
    if (kernelName.empty() || kernelName.find('/') != std::string_view::npos)
        return Error(EINVAL, fmt::format("'{}' is not a heap name", kernelName));
    std::string path = fmt::format("{}/{}", dir, kernelName);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid())
        return Error::fromErrno(fmt::format("opening {}", path));
    if (properties.name.empty())
        properties = kernelHeapProperties(kernelName);
    return std::shared_ptr<KernelHeap>(new KernelHeap(std::string(kernelName), std::move(properties), std::move(fd)));
}

Result<UniqueFd> KernelHeap::allocateDmaBuf(const AllocRequest& request) const {
    // The heap flags are the one part of a request that only its heap can
    // judge; AllocRequest::make judged the rest.
    CENALLOC_CHECK(request.checkHeap(properties()));
    return ioctlAlloc(request.length(), request.fdFlags(), request.heapFlags());
}

Result<UniqueFd> KernelHeap::allocateDmaBuf(uint64_t length, uint32_t fdFlags, uint64_t heapFlags) const {
    return allocateDmaBuf(CENALLOC_TRY(AllocRequest::make(name(), length, fdFlags, heapFlags)));
}

Result<UniqueFd> KernelHeap::ioctlAlloc(uint64_t length, uint32_t fdFlags, uint64_t heapFlags) const {
    dma_heap_allocation_data data{};
    data.len = length;
    data.fd_flags = fdFlags;
    data.heap_flags = heapFlags;
    if (::ioctl(fd_.get(), DMA_HEAP_IOCTL_ALLOC, &data) != 0)
        return Error::fromErrno(fmt::format("allocating {} bytes from {}", length, name()));
    return UniqueFd(static_cast<int>(data.fd));
}

Result<Heap::Backing> KernelHeap::allocateBacking(uint64_t length, const StorageLimits& limits) {
    if (limits.highestAddress != UINT64_MAX || limits.alignment > kPageSize)
        return Error(
            EINVAL, fmt::format("heap '{}' takes no placement limits: the kernel decides where its pages lie", name()));
    // Heap::allocate's caller validated the request (AllocRequest).
    return Backing{{}, CENALLOC_TRY(ioctlAlloc(length, O_CLOEXEC | O_RDWR, 0))};
}

Result<std::vector<std::shared_ptr<KernelHeap>>>
openKernelHeaps(const Platform& platform, std::vector<std::string>* skipped, std::string_view dir) {
    std::vector<std::string> names = CENALLOC_TRY(listKernelHeaps(dir));
    std::vector<std::shared_ptr<KernelHeap>> heaps;
    for (const std::string& kernelName : names) {
        auto heap =
            KernelHeap::open(kernelName, kernelHeapProperties(kernelName, platform.findKernelHeap(kernelName)), dir);
        if (!heap) {
            // One heap this user may not open does not hide the others.
            if (skipped)
                skipped->push_back(fmt::format("{}: {}", kernelName, std::strerror(heap.error().code())));
            continue;
        }
        heaps.push_back(std::move(*heap));
    }
    return heaps;
}

Result<void> syncDmaBuf(BorrowedFd buffer, uint64_t flags) {
    dma_buf_sync sync{};
    sync.flags = flags;
    if (::ioctl(buffer.get(), DMA_BUF_IOCTL_SYNC, &sync) != 0)
        return Error::fromErrno(fmt::format("DMA_BUF_IOCTL_SYNC {:#x}", flags));
    return {};
}

Result<void> setDmaBufName(BorrowedFd buffer, const BufferName& name) {
    static_assert(kBufferNameMax == DMA_BUF_NAME_LEN - 1);
    if (::ioctl(buffer.get(), DMA_BUF_SET_NAME_B, name.str().c_str()) != 0)
        return Error::fromErrno("DMA_BUF_SET_NAME");
    return {};
}

Result<void> setDmaBufName(BorrowedFd buffer, std::string_view name) {
    return setDmaBufName(buffer, CENALLOC_TRY(BufferName::make(name)));
}

Result<uint64_t> dmaBufSize(BorrowedFd buffer) {
    off_t end = ::lseek(buffer.get(), 0, SEEK_END);
    if (end < 0)
        return Error::fromErrno("lseek");
    ::lseek(buffer.get(), 0, SEEK_SET);
    return static_cast<uint64_t>(end);
}

} // namespace cenalloc
