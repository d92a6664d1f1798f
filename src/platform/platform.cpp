// SPDX-License-Identifier: MIT
// Platform lookups and invariant checks shared by every loader.
#include <cenalloc/platform.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include <fmt/format.h>

#include <cenalloc/units.h>

namespace cenalloc {

const Device* Platform::findDevice(std::string_view n) const {
    auto it = std::find_if(devices.begin(), devices.end(), [&](const Device& d) { return d.name == n; });
    return it == devices.end() ? nullptr : &*it;
}

const Iommu* Platform::findIommu(std::string_view n) const {
    auto it = std::find_if(iommus.begin(), iommus.end(), [&](const Iommu& i) { return i.name == n; });
    return it == iommus.end() ? nullptr : &*it;
}

std::string iommuDomainName(const Device& device) {
    if (!device.iommu)
        return {};
    if (device.iommuGroup.empty())
        return *device.iommu;
    return *device.iommu + ":" + device.iommuGroup;
}

const ReservedRegion* Platform::findRegion(std::string_view n) const {
    auto it = std::find_if(regions.begin(), regions.end(), [&](const ReservedRegion& r) { return r.name == n; });
    return it == regions.end() ? nullptr : &*it;
}

const KernelHeapDescription* Platform::findKernelHeap(std::string_view n) const {
    auto it = std::find_if(kernelHeaps.begin(), kernelHeaps.end(),
                           [&](const KernelHeapDescription& k) { return k.name == n; });
    return it == kernelHeaps.end() ? nullptr : &*it;
}

uint64_t Platform::totalMemory() const {
    uint64_t total = 0;
    for (const MemoryBank& b : memory)
        total += b.size;
    return total;
}

uint64_t Platform::memoryEnd() const {
    uint64_t end = 0;
    for (const MemoryBank& b : memory)
        end = std::max(end, b.end());
    return end;
}

namespace {

Error invalid(std::string message) {
    return Error(EINVAL, std::move(message));
}

bool overlaps(uint64_t aBase, uint64_t aSize, uint64_t bBase, uint64_t bSize) {
    return aBase < bBase + bSize && bBase < aBase + aSize;
}

} // namespace

Result<void> validatePlatform(const Platform& p) {
    if (p.memory.empty())
        return invalid("the platform has no memory banks");

    std::set<std::string> names;
    for (const MemoryBank& b : p.memory) {
        if (b.name.empty())
            return invalid("a memory bank has no name");
        if (!names.insert("bank:" + b.name).second)
            return invalid(fmt::format("memory bank '{}' is defined twice", b.name));
        if (b.size == 0)
            return invalid(fmt::format("memory bank '{}' has size 0", b.name));
        if (b.base % kPageSize || b.size % kPageSize)
            return invalid(fmt::format("memory bank '{}' is not page-aligned", b.name));
        if (b.base > UINT64_MAX - b.size)
            return invalid(fmt::format("memory bank '{}' wraps around the address space", b.name));
    }
    for (size_t i = 0; i < p.memory.size(); ++i)
        for (size_t j = i + 1; j < p.memory.size(); ++j)
            if (overlaps(p.memory[i].base, p.memory[i].size, p.memory[j].base, p.memory[j].size))
                return invalid(fmt::format("memory banks '{}' and '{}' overlap", p.memory[i].name, p.memory[j].name));

    for (const ReservedRegion& r : p.regions) {
        if (r.name.empty())
            return invalid("a reserved region has no name");
        if (!names.insert("region:" + r.name).second)
            return invalid(fmt::format("reserved region '{}' is defined twice", r.name));
        if (r.size == 0)
            return invalid(fmt::format("reserved region '{}' has size 0", r.name));
        if (r.base % kPageSize || r.size % kPageSize)
            return invalid(fmt::format("reserved region '{}' is not page-aligned", r.name));
        if (r.base > UINT64_MAX - r.size)
            return invalid(fmt::format("reserved region '{}' wraps around the address space", r.name));
        if (r.accessBits == 0)
            return invalid(fmt::format("reserved region '{}' has access bits 0: no device could use it", r.name));
        // Linux refuses "reusable" together with "no-map": CMA pages go back
        // to the page allocator, so they must be in the linear map.
        if (r.kind == RegionKind::Cma && r.noMap)
            return invalid(fmt::format("reserved region '{}': a cma pool cannot be no_map", r.name));
        if (r.kind != RegionKind::Cma && r.isDefault)
            return invalid(fmt::format("reserved region '{}': only a cma pool can be the default", r.name));
        bool inside = std::any_of(p.memory.begin(), p.memory.end(),
                                  [&](const MemoryBank& b) { return r.base >= b.base && r.end() <= b.end(); });
        if (!inside)
            return invalid(fmt::format("reserved region '{}' ({}..{}) is not inside any memory bank", r.name,
                                       formatAddress(r.base), formatAddress(r.end())));
    }
    for (size_t i = 0; i < p.regions.size(); ++i)
        for (size_t j = i + 1; j < p.regions.size(); ++j)
            if (overlaps(p.regions[i].base, p.regions[i].size, p.regions[j].base, p.regions[j].size))
                return invalid(
                    fmt::format("reserved regions '{}' and '{}' overlap", p.regions[i].name, p.regions[j].name));
    if (std::count_if(p.regions.begin(), p.regions.end(), [](const ReservedRegion& r) { return r.isDefault; }) > 1)
        return invalid("more than one reserved region is marked default");

    for (const Iommu& m : p.iommus) {
        if (m.name.empty())
            return invalid("an iommu has no name");
        if (!names.insert("iommu:" + m.name).second)
            return invalid(fmt::format("iommu '{}' is defined twice", m.name));
        if (!isPowerOfTwo(m.pageSize) || m.pageSize < 4096)
            return invalid(
                fmt::format("iommu '{}': page size {} is not a power of two of at least 4096", m.name, m.pageSize));
        if (m.apertureSize == 0 || m.apertureBase % m.pageSize || m.apertureSize % m.pageSize)
            return invalid(fmt::format("iommu '{}': aperture must be non-empty and page-aligned", m.name));
        if (m.apertureBase > UINT64_MAX - m.apertureSize + 1)
            return invalid(fmt::format("iommu '{}': aperture wraps around the address space", m.name));
    }

    for (const Device& d : p.devices) {
        if (d.name.empty())
            return invalid("a device has no name");
        if (!names.insert("device:" + d.name).second)
            return invalid(fmt::format("device '{}' is defined twice", d.name));
        const DmaConstraints& c = d.constraints;
        if (c.dmaMask == 0)
            return invalid(fmt::format("device '{}': dma_mask of 0 lets it reach no memory", d.name));
        if (c.coherentDmaMask == 0)
            return invalid(fmt::format("device '{}': coherent_dma_mask of 0 lets it reach no memory", d.name));
        // A mask is an inclusive address limit: DMA_BIT_MASK(n), or a bus
        // window's end that is no power of two (a 3 GiB PCIe inbound
        // window). It must at least cover a page.
        if (!isAddressLimit(c.dmaMask))
            return invalid(
                fmt::format("device '{}': dma_mask {:#x} is neither 2^n-1 nor the end of a page", d.name, c.dmaMask));
        if (!isAddressLimit(c.coherentDmaMask))
            return invalid(fmt::format("device '{}': coherent_dma_mask {:#x} is neither 2^n-1 nor the end of a page",
                                       d.name, c.coherentDmaMask));
        if (c.maxSegmentSize < kPageSize)
            return invalid(
                fmt::format("device '{}': max_segment_size {} is below the page size", d.name, c.maxSegmentSize));
        if (c.segmentBoundaryMask < kPageSize - 1)
            return invalid(fmt::format("device '{}': segment_boundary_mask {:#x} is smaller than a page", d.name,
                                       c.segmentBoundaryMask));
        if (!isPowerOfTwo(c.segmentBoundaryMask + 1) && c.segmentBoundaryMask != kNoLimit)
            return invalid(fmt::format("device '{}': segment_boundary_mask {:#x} is not of the form 2^n-1", d.name,
                                       c.segmentBoundaryMask));
        if (!isPowerOfTwo(c.alignment))
            return invalid(fmt::format("device '{}': alignment {} is not a power of two", d.name, c.alignment));
        if (c.accessBits == 0)
            return invalid(fmt::format("device '{}': access bits 0 let it reach no memory", d.name));
        if (d.iommu && !p.findIommu(*d.iommu))
            return invalid(fmt::format("device '{}' names unknown iommu '{}'", d.name, *d.iommu));
        if (!d.iommu && !d.iommuGroup.empty())
            return invalid(fmt::format("device '{}' has iommu group '{}' but no iommu", d.name, d.iommuGroup));
        if (!d.restrictedPool.empty()) {
            const ReservedRegion* pool = p.findRegion(d.restrictedPool);
            if (!pool || !pool->restricted)
                return invalid(fmt::format("device '{}' bounces through '{}', which is no restricted-dma-pool region",
                                           d.name, d.restrictedPool));
        }
    }
    for (const ReservedRegion& r : p.regions)
        for (const std::string& owner : r.owners)
            if (!p.findDevice(owner))
                return invalid(fmt::format("reserved region '{}' belongs to unknown device '{}'", r.name, owner));
    if (p.vendorHeaps) {
        for (const std::string& h : *p.vendorHeaps)
            if (h != "system-uncached" && h != "system-dma32" && h != "system-uncached-dma32")
                return invalid(fmt::format("kernel heap '{}' is not a vendor system heap cenalloc models "
                                           "(system-uncached, system-dma32, system-uncached-dma32)",
                                           h));
    }

    for (const KernelHeapDescription& k : p.kernelHeaps) {
        // The name is a file name in /dev/dma_heap.
        if (k.name.empty() || k.name == "." || k.name == ".." || k.name.find('/') != std::string::npos ||
            k.name.find('\0') != std::string::npos)
            return invalid(fmt::format("kernel heap name '{}' is not a file name in /dev/dma_heap", k.name));
        if (!names.insert("kernel-heap:" + k.name).second)
            return invalid(fmt::format("kernel heap '{}' is described twice", k.name));
        if (k.size % kPageSize)
            return invalid(fmt::format("kernel heap '{}': size {} is not page-aligned", k.name, k.size));
    }
    return {};
}

} // namespace cenalloc
