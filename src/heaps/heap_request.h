// SPDX-License-Identifier: MIT
// Allocation request validation with the kernel dma-heap's rules, shared by every heap and every entry point.
#pragma once

#include <cstdint>

#include <cenalloc/heap.h>
#include <cenalloc/result.h>

namespace cenalloc {

/// Kernel dma-heap: the fd flags an allocation may carry.
inline constexpr uint32_t kValidFdFlags = 02000000 /* O_CLOEXEC */ | 03 /* O_ACCMODE */;

/// Validate an allocation request once, at the boundary, with the rules of
/// the kernel's DMA_HEAP_IOCTL_ALLOC: zero length, a length that overflows
/// when page-aligned, fd flags outside O_CLOEXEC|O_ACCMODE and heap flags the
/// heap does not define are all EINVAL. Returns the page-aligned length.
Result<uint64_t> validateHeapRequest(const HeapProperties& heap, uint64_t length, uint32_t fdFlags, uint64_t heapFlags);

} // namespace cenalloc
