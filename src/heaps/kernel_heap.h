// SPDX-License-Identifier: MIT
// The host kernel's dma-heaps (/dev/dma_heap/*): real dma-buf fds, where the host has them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/heap.h>
#include <cenalloc/result.h>
#include <cenalloc/unique_fd.h>

namespace cenalloc {

/// Where the kernel puts its heaps.
inline constexpr std::string_view kKernelHeapDir = "/dev/dma_heap";
/// cenalloc names a kernel heap "kernel:<its name>" so that it never
/// collides with a heap of the platform model.
inline constexpr std::string_view kKernelHeapPrefix = "kernel:";

/// "kernel:<name>".
std::string kernelHeapName(std::string_view kernelName);

/// The kernel heaps in @p dir, sorted by name; empty when the directory
/// does not exist (a kernel without CONFIG_DMABUF_HEAPS).
/// Errors: the errno of opendir() other than ENOENT.
Result<std::vector<std::string>> listKernelHeaps(std::string_view dir = kKernelHeapDir);

/// What cenalloc assumes of a kernel heap the platform description does not
/// describe: nothing it cannot know. The address range is unknown (so no
/// address limit is promised), capacity unknown (0), pages are cached; a
/// heap named like a CMA pool ("linux,cma", "reserved", "*cma*") hands out
/// one contiguous chunk, any other one scattered pages of up to 1 MiB (the
/// system heap's orders 8, 4 and 0).
HeapProperties kernelHeapDefaults(std::string_view kernelName);

/// One opened kernel heap. Allocations are real dma-bufs, made by the
/// kernel: kernel drivers can import them.
///
/// Move-only. Thread safety: all methods may be called concurrently (the
/// kernel serialises).
class KernelHeap {
public:
    /// Open <@p dir>/<@p kernelName>, with @p properties (kernelHeapDefaults()
    /// when its name is empty). Errors: ENOENT when the host has no such heap,
    /// EACCES without permission, EINVAL for a name with '/'.
    static Result<KernelHeap> open(std::string_view kernelName, HeapProperties properties = {},
                                   std::string_view dir = kKernelHeapDir);

    /// The heap's name in cenalloc ("kernel:system").
    const std::string& name() const { return properties_.name; }
    const std::string& kernelName() const { return kernelName_; }
    const HeapProperties& properties() const { return properties_; }

    /// DMA_HEAP_IOCTL_ALLOC. The request is validated like every cenalloc
    /// heap's (validateHeapRequest rules: EINVAL for a zero or overflowing
    /// length, fd flags beyond O_CLOEXEC|O_ACCMODE, heap flags the heap does
    /// not define) before the kernel sees it; then the kernel's errors
    /// (ENOMEM, EMFILE, ...).
    Result<UniqueFd> allocate(uint64_t length, uint32_t fdFlags = 02000002 /* O_CLOEXEC | O_RDWR */,
                              uint64_t heapFlags = 0) const;

private:
    KernelHeap(std::string kernelName, HeapProperties properties, UniqueFd fd)
        : kernelName_(std::move(kernelName)), properties_(std::move(properties)), fd_(std::move(fd)) {}
    std::string kernelName_;
    HeapProperties properties_;
    UniqueFd fd_;
};

/// DMA_BUF_IOCTL_SYNC on a real dma-buf (a kernel heap's or a udmabuf).
/// Errors: the kernel's (EINVAL for bad flags, ENOTTY for a non-dma-buf).
Result<void> syncDmaBuf(BorrowedFd buffer, uint64_t flags);
/// DMA_BUF_SET_NAME on a real dma-buf. Errors: EINVAL for a name over 31
/// bytes (checked here), the kernel's otherwise.
Result<void> setDmaBufName(BorrowedFd buffer, std::string_view name);
/// The size of a real dma-buf (what lseek(SEEK_END) says).
Result<uint64_t> dmaBufSize(BorrowedFd buffer);

} // namespace cenalloc
