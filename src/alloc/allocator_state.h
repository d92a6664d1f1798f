// SPDX-License-Identifier: MIT
// What deferred buffers share with their context: the platform, its heaps and domains.
#pragma once

#include <memory>
#include <vector>

#include <cenalloc/heap.h>
#include <cenalloc/platform.h>

#include "alloc/heap_moves.h"
#include "heaps/heap_registry.h"

#include "iommu/iommu_domain.h"
#include "memory/physical_memory.h"

namespace cenalloc {

/// Immutable after Context::create: shared by the context and every
/// deferred buffer's exporter, so a buffer can still get its storage after
/// the context is gone.
struct AllocatorState {
    Platform platform;
    std::shared_ptr<PhysicalMemory> memory;
    HeapRegistry heaps;
    std::vector<HeapProperties> heapProperties;        // parallel to heaps.heaps()
    std::vector<std::shared_ptr<IommuDomain>> domains; // parallel to platform.iommus
    /// Moves the buffers in a CMA heap's way (thread-safe itself).
    std::shared_ptr<HeapMover> mover;
};

} // namespace cenalloc
