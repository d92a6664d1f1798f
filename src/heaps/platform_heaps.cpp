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

// The default CMA area's second node. cma_heap.c of Linux 6.12
// (add_default_cma_heap) registers the default area once, under
// cma_get_name(): the linux,cma-default node's name (kernel/dma/contiguous.c
// rmem_cma_setup), or "reserved" for a cma= area. From Linux 6.17 it
// registers it as "default_cma_region" and, with
// CONFIG_DMABUF_HEAPS_CMA_LEGACY (default y), a duplicate node under the
// legacy name that "uses the same underlying allocator"
// (drivers/dma-buf/heaps/Kconfig, Documentation/userspace-api/
// dma-buf-heaps.rst): two nodes, one area, the second an alias.
constexpr std::string_view kDefaultCmaNode = "default_cma_region";

bool hasNode(const KernelHeapNodes& place, std::string_view node) {
    return std::find(place.names.begin(), place.names.end(), node) != place.names.end();
}

// The node the model's heap @p p stands for: its own name (the loaders name
// heaps as the kernel does, DESIGN.md section 5, "Heap names are the
// kernel's": system_heap.c registers "system", cma_heap.c the default CMA
// area under cma_get_name()), and for the default CMA area on a kernel
// without the legacy node, "default_cma_region". Empty: none.
std::string nodeFor(const HeapProperties& p, bool defaultCma, const KernelHeapNodes& place) {
    if (hasNode(place, p.name))
        return p.name;
    if (defaultCma && hasNode(place, kDefaultCmaNode))
        return std::string(kDefaultCmaNode);
    return {};
}

// The heap of the model as the host kernel's heap @p node, when the kernel
// has one.
std::shared_ptr<Heap> placeOnKernel(HeapProperties p, const std::string& node, const KernelHeapNodes* place,
                                    std::vector<std::string>* problems,
                                    const std::function<std::shared_ptr<Heap>(HeapProperties)>& modelled) {
    if (!place)
        return modelled(std::move(p));
    if (!node.empty()) {
        HeapProperties placed = p;
        placed.kernelPlacement = KernelPlacement::Placed;
        placed.kernelHeap = node;
        // cma_heap.c and system_heap.c take no address limit: the model
        // checks that the devices reach all of the heap instead.
        placed.honoursAddressLimit = false;
        placed.description = fmt::format("{} (the host kernel's {}/{})", p.description, place->dir, node);
        auto heap = KernelHeap::open(node, std::move(placed), place->dir);
        if (heap)
            return *heap;
        if (problems)
            problems->push_back(fmt::format("{}: {}", node, std::strerror(heap.error().code())));
    }
    p.kernelPlacement = KernelPlacement::NotInKernel;
    return modelled(std::move(p));
}

// A second node of the memory @p placed stands for: its properties (the same
// pages), never chosen (KernelPlacement::Alias), usable by name.
HeapProperties aliasOf(const HeapProperties& placed, const std::string& node, const KernelHeapNodes& place) {
    HeapProperties p = placed;
    p.name = kernelHeapName(node);
    p.kernelPlacement = KernelPlacement::Alias;
    p.kernelHeap = node;
    p.description = fmt::format("the host kernel's {}/{}: the same CMA area as heap '{}' ({}/{})", place.dir, node,
                                placed.name, place.dir, placed.kernelHeap);
    return p;
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

    // The nodes a heap of the model was placed on, or tried to be (one that
    // cannot be opened is a problem once, not offered again).
    std::vector<std::string> tried;
    auto nodeOf = [&](const HeapProperties& p, bool defaultCma) {
        std::string node = place ? nodeFor(p, defaultCma, *place) : std::string();
        if (!node.empty())
            tried.push_back(node);
        return node;
    };
    std::vector<std::shared_ptr<Heap>> heaps;
    for (HeapProperties& p : system) {
        const std::string n = nodeOf(p, false);
        heaps.push_back(placeOnKernel(std::move(p), n, place, problems,
                                      [&](HeapProperties q) { return createSystemHeap(std::move(q), memory); }));
    }
    std::shared_ptr<Heap> defaultCma; // the heap of the kernel's default CMA area
    for (const ReservedRegion& r : platform.regions) {
        if (!isHeap(r))
            continue;
        HeapProperties p = contiguousHeapProperties(r, honoursAddressLimit(platform, r));
        const bool isDefaultCma = r.isDefault && r.kind == RegionKind::Cma && r.owners.empty();
        const std::string n = nodeOf(p, isDefaultCma);
        heaps.push_back(placeOnKernel(std::move(p), n, place, problems,
                                      [&](HeapProperties q) { return createContiguousHeap(r, std::move(q)); }));
        if (isDefaultCma)
            defaultCma = heaps.back();
    }
    if (!place)
        return heaps;
    // The kernel's other heaps: usable by name, never chosen.
    for (const std::string& node : place->names) {
        if (std::find(tried.begin(), tried.end(), node) != tried.end())
            continue;
        HeapProperties p = kernelHeapProperties(node, platform.findKernelHeap(node));
        p.kernelPlacement = KernelPlacement::Unplaced;
        p.kernelHeap = node;
        if (node == kDefaultCmaNode && defaultCma &&
            defaultCma->properties().kernelPlacement == KernelPlacement::Placed)
            p = aliasOf(defaultCma->properties(), node, *place);
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
