// SPDX-License-Identifier: MIT
// Building every heap of a platform, in registration order.
#include "heaps/platform_heaps.h"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <functional>

#include <fmt/format.h>

#include "heaps/contiguous_heap.h"
#include "heaps/kernel_heap.h"
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

// The heap of the model as the host kernel's heap of its name, when the
// kernel has one. The loaders name heaps as the kernel does (DESIGN.md
// section 5, "Heap names are the kernel's": system_heap.c registers
// "system"; cma_heap.c registers the default CMA area under cma_get_name(),
// which for a linux,cma-default node is the node's name, passed by
// kernel/dma/contiguous.c rmem_cma_setup), so a name is a match.
std::shared_ptr<Heap> placeOnKernel(HeapProperties p, const KernelHeapNodes* place, std::vector<std::string>* problems,
                                    const std::function<std::shared_ptr<Heap>(HeapProperties)>& modelled) {
    if (!place)
        return modelled(std::move(p));
    if (std::find(place->names.begin(), place->names.end(), p.name) != place->names.end()) {
        HeapProperties placed = p;
        placed.kernelPlacement = KernelPlacement::Placed;
        placed.kernelHeap = p.name;
        // cma_heap.c and system_heap.c take no address limit: the model
        // checks that the devices reach all of the heap instead.
        placed.honoursAddressLimit = false;
        placed.description = fmt::format("{} (the host kernel's {}/{})", p.description, place->dir, p.name);
        auto heap = KernelHeap::open(p.name, std::move(placed), place->dir);
        if (heap)
            return *heap;
        if (problems)
            problems->push_back(fmt::format("{}: {}", p.name, std::strerror(heap.error().code())));
    }
    p.kernelPlacement = KernelPlacement::NotInKernel;
    return modelled(std::move(p));
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
                                                               std::shared_ptr<PhysicalMemory> memory,
                                                               const KernelHeapNodes* place,
                                                               std::vector<std::string>* problems) {
    assert(memory);
    std::vector<HeapProperties> system = systemHeapProperties(platform);
    // Region names are unique (validatePlatform), but nothing stops a region
    // being called "system"; two heaps of one name could not both be found.
    for (const ReservedRegion& r : platform.regions)
        if (std::any_of(system.begin(), system.end(), [&](const HeapProperties& p) { return p.name == r.name; }))
            return Error(EINVAL, fmt::format("reserved region '{}' has the name of a system heap", r.name));

    std::vector<std::shared_ptr<Heap>> heaps;
    for (HeapProperties& p : system)
        heaps.push_back(placeOnKernel(std::move(p), place, problems,
                                      [&](HeapProperties q) { return createSystemHeap(std::move(q), memory); }));
    for (const ReservedRegion& r : platform.regions)
        if (isHeap(r))
            heaps.push_back(placeOnKernel(contiguousHeapProperties(r, honoursAddressLimit(platform, r)), place,
                                          problems,
                                          [&](HeapProperties q) { return createContiguousHeap(r, std::move(q)); }));
    if (!place)
        return heaps;
    // The kernel's other heaps: usable by name, never chosen.
    for (const std::string& node : place->names) {
        if (std::any_of(heaps.begin(), heaps.end(), [&](const auto& h) { return h->name() == node; }))
            continue;
        HeapProperties p = kernelHeapProperties(node, platform.findKernelHeap(node));
        p.kernelPlacement = KernelPlacement::Unplaced;
        p.kernelHeap = node;
        auto heap = KernelHeap::open(node, std::move(p), place->dir);
        if (!heap) {
            if (problems)
                problems->push_back(fmt::format("{}: {}", node, std::strerror(heap.error().code())));
            continue;
        }
        heaps.push_back(std::move(*heap));
    }
    return heaps;
}

} // namespace cenalloc
