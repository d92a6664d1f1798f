// SPDX-License-Identifier: MIT
// Every heap a platform offers: the system heaps and one per reserved region.
#pragma once

#include <memory>
#include <vector>

#include <cenalloc/heap.h>
#include <cenalloc/platform.h>
#include <cenalloc/result.h>

#include "memory/physical_memory.h"

namespace cenalloc {

/// The properties of every heap createPlatformHeaps() would create, in the
/// same order, without creating any allocator (what heap matching needs).
std::vector<HeapProperties> platformHeapProperties(const Platform& platform);

/// The heaps of @p platform in registration order: system, system-uncached,
/// [system-dma32, system-uncached-dma32], then one per reserved region in
/// platform order. The system heaps share @p memory, which must have been
/// built from @p platform. Errors: EINVAL when a region has the name of a
/// system heap.
Result<std::vector<std::shared_ptr<Heap>>> createPlatformHeaps(const Platform& platform,
                                                               std::shared_ptr<PhysicalMemory> memory);

} // namespace cenalloc
