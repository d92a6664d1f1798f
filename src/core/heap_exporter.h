// SPDX-License-Identifier: MIT
// The exporter of eagerly allocated heap buffers, and dma-heap request validation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <cenalloc/buffer.h>
#include <cenalloc/heap.h>

namespace cenalloc {

/// Kernel dma-heap: the fd flags an allocation may carry.
inline constexpr uint32_t kValidFdFlags = 02000000 /* O_CLOEXEC */ | 03 /* O_ACCMODE */;

/// Validate an allocation request once, at the boundary, with the rules of
/// the kernel's DMA_HEAP_IOCTL_ALLOC: zero length, a length that overflows
/// when page-aligned, fd flags outside O_CLOEXEC|O_ACCMODE and heap flags the
/// heap does not define are all EINVAL. Returns the page-aligned length.
Result<uint64_t> validateHeapRequest(const HeapProperties& heap, uint64_t length, uint32_t fdFlags, uint64_t heapFlags);

/// Ops for a buffer born with storage from @p heapName (the dma-heap way).
/// Attach checks that the existing storage serves the device (EBUSY if not).
std::unique_ptr<BufferOps> makeHeapExporter(std::string heapName);

} // namespace cenalloc
