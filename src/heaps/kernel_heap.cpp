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

namespace cenalloc {

namespace {

constexpr uint64_t kPage = 4096;
// DMA_HEAP_VALID_FD_FLAGS.
constexpr uint32_t kKernelValidFdFlags = O_CLOEXEC | O_ACCMODE;

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
        return Error(errno, fmt::format("opendir {}: {}", path, std::strerror(errno)));
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

HeapProperties kernelHeapDefaults(std::string_view kernelName) {
    HeapProperties p;
    p.name = kernelHeapName(kernelName);
    p.description = fmt::format("the host kernel's dma-heap {}/{}", kKernelHeapDir, kernelName);
    p.cached = true;
    p.capacity = 0; // unknown
    if (looksLikeCma(kernelName)) {
        p.kind = HeapKind::Cma;
        p.contiguous = true;
        p.maxChunkSize = UINT64_MAX;
    } else {
        p.kind = HeapKind::System;
        p.contiguous = false;
        p.maxChunkSize = kPage << 8;
    }
    p.minChunkSize = kPage;
    p.chunkAlignment = kPage;
    return p;
}

Result<KernelHeap> KernelHeap::open(std::string_view kernelName, HeapProperties properties, std::string_view dir) {
    if (kernelName.empty() || kernelName.find('/') != std::string_view::npos)
        return Error(EINVAL, fmt::format("'{}' is not a heap name", kernelName));
    std::string path = fmt::format("{}/{}", dir, kernelName);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid())
        return Error(errno, fmt::format("opening {}: {}", path, std::strerror(errno)));
    if (properties.name.empty())
        properties = kernelHeapDefaults(kernelName);
    return KernelHeap(std::string(kernelName), std::move(properties), std::move(fd));
}

Result<UniqueFd> KernelHeap::allocate(uint64_t length, uint32_t fdFlags, uint64_t heapFlags) const {
    // The boundary checks of every cenalloc heap, so that a kernel heap and a
    // modelled one refuse the same requests with the same words.
    if (length == 0)
        return Error(EINVAL, "length is 0");
    if (length > UINT64_MAX - (kPage - 1))
        return Error(EINVAL, fmt::format("length {} overflows when rounded up to a page", length));
    if (fdFlags & ~kKernelValidFdFlags)
        return Error(EINVAL, fmt::format("fd flags {:#o} include bits other than O_CLOEXEC and O_ACCMODE", fdFlags));
    if (heapFlags & ~properties_.validHeapFlags)
        return Error(EINVAL, fmt::format("heap flags {:#x} are not defined by heap '{}'", heapFlags, name()));
    dma_heap_allocation_data data{};
    data.len = length;
    data.fd_flags = fdFlags;
    data.heap_flags = heapFlags;
    if (::ioctl(fd_.get(), DMA_HEAP_IOCTL_ALLOC, &data) != 0)
        return Error(errno, fmt::format("allocating {} bytes from {}: {}", length, name(), std::strerror(errno)));
    return UniqueFd(static_cast<int>(data.fd));
}

Result<void> syncDmaBuf(BorrowedFd buffer, uint64_t flags) {
    dma_buf_sync sync{};
    sync.flags = flags;
    if (::ioctl(buffer.get(), DMA_BUF_IOCTL_SYNC, &sync) != 0)
        return Error(errno, fmt::format("DMA_BUF_IOCTL_SYNC {:#x}: {}", flags, std::strerror(errno)));
    return {};
}

Result<void> setDmaBufName(BorrowedFd buffer, std::string_view name) {
    if (name.size() >= DMA_BUF_NAME_LEN)
        return Error(EINVAL,
                     fmt::format("buffer name of {} bytes is longer than {}", name.size(), DMA_BUF_NAME_LEN - 1));
    std::string terminated(name);
    if (::ioctl(buffer.get(), DMA_BUF_SET_NAME_B, terminated.c_str()) != 0)
        return Error(errno, fmt::format("DMA_BUF_SET_NAME: {}", std::strerror(errno)));
    return {};
}

Result<uint64_t> dmaBufSize(BorrowedFd buffer) {
    off_t end = ::lseek(buffer.get(), 0, SEEK_END);
    if (end < 0)
        return Error(errno, fmt::format("lseek: {}", std::strerror(errno)));
    ::lseek(buffer.get(), 0, SEEK_SET);
    return static_cast<uint64_t>(end);
}

} // namespace cenalloc
