// SPDX-License-Identifier: MIT
// The host kernel's dma-heaps (/dev/dma_heap/*): real dma-buf fds, where the host has them.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/heap.h>
#include <cenalloc/platform.h>
#include <cenalloc/request.h>
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

/// The properties of the heap "kernel:<@p kernelName>": what @p described
/// says (the platform's kernel_heaps entry) or, without one, nothing
/// cenalloc cannot know. Either way the kind is HeapKind::Kernel and the
/// address range unknown ([0, UINT64_MAX]: no limit is promised); without a
/// description the capacity is unknown (0), pages are cached, and a heap
/// named like a CMA pool ("reserved", "*cma*") hands out one contiguous
/// chunk, any other scattered pages of up to 1 MiB (the system heap's
/// orders 8, 4 and 0).
HeapProperties kernelHeapProperties(std::string_view kernelName, const KernelHeapDescription* described = nullptr);

/// One opened kernel heap: a cenalloc Heap whose storage is a real dma-buf
/// made by the kernel (kernel drivers can import it), with no chunks.
///
/// Ownership: std::shared_ptr (Storage keeps its heap alive).
/// Thread safety: all methods may be called concurrently (the kernel
/// serialises).
class KernelHeap final : public Heap {
public:
    /// Open <@p dir>/<@p kernelName> with @p properties (kernelHeapProperties()
    /// when its name is empty). Errors: ENOENT when the host has no such heap,
    /// EACCES without permission, EINVAL for a name with '/'.
    static Result<std::shared_ptr<KernelHeap>> open(std::string_view kernelName, HeapProperties properties = {},
                                                    std::string_view dir = kKernelHeapDir);

    const std::string& kernelName() const { return kernelName_; }

    /// DMA_HEAP_IOCTL_ALLOC, outside cenalloc's bookkeeping (the shim and
    /// tests use it; Heap::allocate is the counted way). @p request was
    /// validated when it was made (AllocRequest::make); its heap flags are
    /// checked against this heap (EINVAL) before the kernel sees it; then the
    /// kernel's errors (ENOMEM, EMFILE, ...). The request's heap name is not
    /// looked at: this heap is the one asked.
    Result<UniqueFd> allocateDmaBuf(const AllocRequest& request) const;
    /// The same for arguments not checked yet (they are made into an
    /// AllocRequest first: EINVAL as AllocRequest::make says).
    Result<UniqueFd> allocateDmaBuf(uint64_t length, uint32_t fdFlags = kDefaultFdFlags, uint64_t heapFlags = 0) const;

    /// Unknown: the kernel does not say (0).
    uint64_t freeBytes() const override { return 0; }

protected:
    /// A read-write, close-on-exec dma-buf and no chunks. The kernel takes
    /// no placement limits: EINVAL for an address limit or an alignment
    /// beyond a page in @p limits.
    Result<Backing> allocateBacking(uint64_t length, const StorageLimits& limits) override;
    void freeChunks(std::span<const PhysChunk> chunks) override { (void)chunks; }

private:
    /// DMA_HEAP_IOCTL_ALLOC of a request already validated.
    Result<UniqueFd> ioctlAlloc(uint64_t length, uint32_t fdFlags, uint64_t heapFlags) const;
    KernelHeap(std::string kernelName, HeapProperties properties, UniqueFd fd)
        : Heap(std::move(properties)), kernelName_(std::move(kernelName)), fd_(std::move(fd)) {}
    std::string kernelName_;
    UniqueFd fd_;
};

/// Every heap in @p dir as a KernelHeap, sorted by name, with the properties
/// @p platform describes for it. A heap that cannot be opened (EACCES) is
/// left out and said in @p skipped ("system: permission denied"); no
/// directory means no heaps. Errors: listKernelHeaps()'s.
Result<std::vector<std::shared_ptr<KernelHeap>>> openKernelHeaps(const Platform& platform,
                                                                 std::vector<std::string>* skipped = nullptr,
                                                                 std::string_view dir = kKernelHeapDir);

/// DMA_BUF_IOCTL_SYNC on a real dma-buf (a kernel heap's or a udmabuf).
/// Errors: the kernel's (EINVAL for bad flags, ENOTTY for a non-dma-buf).
Result<void> syncDmaBuf(BorrowedFd buffer, uint64_t flags);
/// DMA_BUF_SET_NAME on a real dma-buf. Errors: the kernel's.
Result<void> setDmaBufName(BorrowedFd buffer, const BufferName& name);
/// The same for a name not checked yet: EINVAL for one over 31 bytes.
Result<void> setDmaBufName(BorrowedFd buffer, std::string_view name);
/// The size of a real dma-buf (what lseek(SEEK_END) says).
Result<uint64_t> dmaBufSize(BorrowedFd buffer);

} // namespace cenalloc
