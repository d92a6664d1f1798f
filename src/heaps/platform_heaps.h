// SPDX-License-Identifier: MIT
// Every heap a platform offers: the system heaps and one per reserved region.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <cenalloc/heap.h>
#include <cenalloc/platform.h>
#include <cenalloc/result.h>

#include "memory/physical_memory.h"

namespace cenalloc {

/// The properties of every heap createPlatformHeaps() would create, in the
/// same order, without creating any allocator (what heap matching needs).
std::vector<HeapProperties> platformHeapProperties(const Platform& platform);

/// The host kernel's heaps a Context places the model on.
struct KernelHeapNodes {
    /// Where they are (/dev/dma_heap, or a stand-in for tests).
    std::string dir;
    /// Their names (listKernelHeaps()).
    std::vector<std::string> names;
};

/// The heaps of @p platform in registration order: system, system-uncached,
/// [system-dma32, system-uncached-dma32], then one per reserved region in
/// platform order. The system heaps share @p memory, which must have been
/// built from @p platform. Errors: EINVAL when a region has the name of a
/// system heap.
///
/// With @p place, the model is placed on the host kernel's heaps (DESIGN.md
/// section 4, last paragraph): a heap of the model whose name is a node
/// there becomes a KernelHeap with the model's properties
/// (KernelPlacement::Placed: the model's placement reasoning, the kernel's
/// storage; it takes no address limit, as the kernel's heaps take none),
/// one without a node stays modelled but KernelPlacement::NotInKernel (never
/// chosen), and every node that matches no heap follows as "kernel:<n>",
/// KernelPlacement::Unplaced. A node that cannot be opened leaves its heap
/// NotInKernel and is said in @p problems ("system: Permission denied").
Result<std::vector<std::shared_ptr<Heap>>> createPlatformHeaps(const Platform& platform,
                                                               std::shared_ptr<PhysicalMemory> memory,
                                                               const KernelHeapNodes* place = nullptr,
                                                               std::vector<std::string>* problems = nullptr);

} // namespace cenalloc
