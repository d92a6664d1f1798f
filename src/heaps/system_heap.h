// SPDX-License-Identifier: MIT
// The system heaps: scattered pages from general-purpose memory.
#pragma once

#include <memory>
#include <vector>

#include <cenalloc/heap.h>
#include <cenalloc/platform.h>

#include "memory/physical_memory.h"

namespace cenalloc {

/// Properties of the system heaps of @p platform, in registration order:
/// "system" (cached) and "system-uncached" over all general-purpose memory,
/// then, when the platform has general memory both below and at or above
/// 4 GiB, "system-dma32" and "system-uncached-dma32" limited to addresses up
/// to 0xffffffff. With no general memory at all the range is [0, 0] and the
/// capacity 0.
std::vector<HeapProperties> systemHeapProperties(const Platform& platform);

/// A system heap promising @p properties, drawing pages from @p memory
/// (shared with the other system heaps). @p properties come from
/// systemHeapProperties() for the platform @p memory was built from.
std::shared_ptr<Heap> createSystemHeap(HeapProperties properties, std::shared_ptr<PhysicalMemory> memory);

} // namespace cenalloc
