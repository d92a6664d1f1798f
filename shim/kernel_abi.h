// SPDX-License-Identifier: MIT
// The kernel's dma-heap / dma-buf ioctl argument rules, as the shim reproduces them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <cenalloc/result.h>

namespace cenalloc::shim {

/// sizeof(struct dma_heap_allocation_data): len, fd, fd_flags, heap_flags.
inline constexpr size_t kHeapAllocSize = 24;
/// Offsets of its fields.
inline constexpr size_t kHeapAllocLen = 0;
inline constexpr size_t kHeapAllocFd = 8;
inline constexpr size_t kHeapAllocFdFlags = 12;
inline constexpr size_t kHeapAllocHeapFlags = 16;
/// The largest argument an ioctl number can describe (_IOC_SIZEBITS = 14).
inline constexpr size_t kMaxIoctlSize = (1u << 14) - 1;

/// DMA_BUF_NAME_LEN, terminator included.
inline constexpr size_t kDmaBufNameLen = 32;
/// DMA_BUF_SYNC_* and DMA_BUF_SYNC_VALID_FLAGS_MASK.
inline constexpr uint64_t kSyncRead = 1;
inline constexpr uint64_t kSyncWrite = 2;
inline constexpr uint64_t kSyncRw = 3;
inline constexpr uint64_t kSyncEnd = 4;
inline constexpr uint64_t kSyncValidMask = kSyncRw | kSyncEnd;

/// How the kernel's dma_heap_ioctl() handles a request number. It looks at
/// the number (nr) and the direction and size bits only, never at the type
/// ('H'): nr 0 is DMA_HEAP_IOCTL_ALLOC whatever the rest says. It copies
/// @c inSize bytes in (when the number says userspace writes), zero-fills up
/// to @c kernelSize, and copies @c outSize bytes back (when the number says
/// userspace reads) even when the allocation failed.
struct HeapIoctlShape {
    /// False for nr >= 1: the kernel answers EINVAL.
    bool known = false;
    size_t inSize = 0;
    size_t outSize = 0;
    /// max(inSize, outSize, kHeapAllocSize).
    size_t kernelSize = 0;
};
HeapIoctlShape heapIoctlShape(unsigned long request);

/// Copy @p size bytes from the caller's memory at @p from as copy_from_user
/// does: false where the kernel would fault (EFAULT) instead of crashing.
bool copyFromUser(void* to, const void* from, size_t size);
/// Copy to the caller's memory as copy_to_user does (false: EFAULT). The
/// bytes before a faulting page may have been written, as in the kernel.
bool copyToUser(void* to, const void* from, size_t size);

/// strndup_user(@p user, DMA_BUF_NAME_LEN), the argument of
/// DMA_BUF_SET_NAME: EFAULT when the string cannot be read up to its
/// terminator, EINVAL when it is longer than 31 bytes.
Result<std::string> copyNameFromUser(const char* user);

/// DMA_BUF_IOCTL_SYNC flag rules: EINVAL for bits outside
/// DMA_BUF_SYNC_VALID_FLAGS_MASK and for neither read nor write.
Result<void> validateSyncFlags(uint64_t flags);

} // namespace cenalloc::shim
