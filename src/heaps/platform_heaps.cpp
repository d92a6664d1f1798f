// SPDX-License-Identifier: MIT
// Building every heap of a platform, in registration order.
#include "heaps/platform_heaps.h"

#include <algorithm>
#include <cassert>
#include <cerrno>

#include <fmt/format.h>

#include "heaps/contiguous_heap.h"
#include "heaps/system_heap.h"

namespace cenalloc {

namespace {

// A reserved region is a heap when the board's kernel hands it out as one
// (the default CMA area) or when devices own it: their drivers allocate
// from it (of_reserved_mem_device_init), so it is a heap for them alone. A
// restricted-dma-pool is a bounce buffer, never a heap; any other region is
// memory set aside that nothing hands out.
bool isHeap(const ReservedRegion& r) {
    return !r.restricted && (r.heap || !r.owners.empty());
}

// The kernel's CMA heap (cma_heap.c) allocates anywhere in its area and
// takes no address limit; a device's private pool is allocated from by its
// own driver, which honours its mask (dma_alloc_coherent).
bool honoursAddressLimit(const Platform& platform, const ReservedRegion& r) {
    return !platform.vendorHeaps || !r.owners.empty();
}

} // namespace

std::vector<HeapProperties> platformHeapProperties(const Platform& platform) {
    std::vector<HeapProperties> heaps = systemHeapProperties(platform);
    for (const ReservedRegion& r : platform.regions)
        if (isHeap(r))
            heaps.push_back(contiguousHeapProperties(r, honoursAddressLimit(platform, r)));
    return heaps;
}

Result<std::vector<std::shared_ptr<Heap>>> createPlatformHeaps(const Platform& platform,
                                                               std::shared_ptr<PhysicalMemory> memory) {
    assert(memory);
    std::vector<HeapProperties> system = systemHeapProperties(platform);
    // Region names are unique (validatePlatform), but nothing stops a region
    // being called "system"; two heaps of one name could not both be found.
    for (const ReservedRegion& r : platform.regions)
        if (std::any_of(system.begin(), system.end(), [&](const HeapProperties& p) { return p.name == r.name; }))
            return Error(EINVAL, fmt::format("reserved region '{}' has the name of a system heap", r.name));

    std::vector<std::shared_ptr<Heap>> heaps;
    for (HeapProperties& p : system)
        heaps.push_back(createSystemHeap(std::move(p), memory));
    for (const ReservedRegion& r : platform.regions)
        if (isHeap(r))
            heaps.push_back(createContiguousHeap(r, honoursAddressLimit(platform, r)));
    return heaps;
}

} // namespace cenalloc
