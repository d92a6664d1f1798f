// SPDX-License-Identifier: MIT
// CMA and carveout heaps: one physically contiguous chunk per buffer from a reserved region.
#pragma once

#include <memory>

#include <cenalloc/heap.h>
#include <cenalloc/platform.h>

namespace cenalloc {

/// Properties of the heap serving @p region: named after the region, kind
/// Cma or Carveout, contiguous, cached unless the region is no-map, range and
/// capacity of the region, the region's access bits. chunkAlignment is the
/// 4 KiB guaranteed to every buffer; a bigger alignment asked for through
/// StorageLimits::alignment is honoured too.
HeapProperties contiguousHeapProperties(const ReservedRegion& region, bool honoursAddressLimit = true);

/// The heap serving @p region (page-aligned, as validatePlatform() checks).
std::shared_ptr<Heap> createContiguousHeap(const ReservedRegion& region, bool honoursAddressLimit = true);
/// The same with @p properties made from contiguousHeapProperties() (a
/// KernelPlacement set on them, say).
std::shared_ptr<Heap> createContiguousHeap(const ReservedRegion& region, HeapProperties properties);

} // namespace cenalloc
