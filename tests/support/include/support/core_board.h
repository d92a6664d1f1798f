// SPDX-License-Identifier: MIT
// A platform assembled from the layers below core (memory, heaps, IOMMU domains, devices) for core tests.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <fcntl.h>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/buffer.h>
#include <cenalloc/device.h>
#include <cenalloc/heap.h>
#include <cenalloc/platform.h>
#include <cenalloc/units.h>

#include "core/buffer_internal.h"
#include "core/heap_exporter.h"
#include "core/registry.h"
#include "heaps/platform_heaps.h"
#include "iommu/iommu_domain.h"
#include "memory/physical_memory.h"
#include "support/fds.h"

namespace cenalloc::test {

/// What Context builds, without the alloc layer: the platform's physical
/// memory and heaps, one IOMMU domain per IOMMU (devices naming the same
/// IOMMU share it) and one DmaDevice per device. Buffers made here must be
/// destroyed before the board (declare them after it).
class CoreBoard {
public:
    explicit CoreBoard(const Platform& platform = defaultPlatform()) : platform_(platform) {
        memory_ = std::make_shared<PhysicalMemory>(platform_);
        auto heaps = createPlatformHeaps(platform_, memory_);
        EXPECT_TRUE(heaps) << heaps.error().toString();
        if (heaps)
            heaps_ = std::move(*heaps);
        for (const Iommu& iommu : platform_.iommus)
            domains_[iommu.name] = std::make_shared<IommuDomain>(iommu);
        for (const Device& d : platform_.devices)
            devices_[d.name] = std::make_unique<DmaDevice>(d, d.iommu ? domains_.at(*d.iommu) : nullptr);
    }

    const Platform& platform() const { return platform_; }
    const std::shared_ptr<BufferRegistry>& registry() const { return registry_; }

    /// The heap called @p name; fails the test when there is none.
    std::shared_ptr<Heap> heap(std::string_view name) const {
        auto it = std::find_if(heaps_.begin(), heaps_.end(), [&](const auto& h) { return h->name() == name; });
        EXPECT_NE(it, heaps_.end()) << "no heap " << name;
        return it == heaps_.end() ? nullptr : *it;
    }
    const std::vector<std::shared_ptr<Heap>>& heaps() const { return heaps_; }

    /// The device called @p name; it must exist.
    const DmaDevice& device(const std::string& name) const { return *devices_.at(name); }
    IommuDomain& domain(const std::string& iommu) const { return *domains_.at(iommu); }

    /// An eager buffer of @p size (page-aligned) bytes from @p heapName, the
    /// way Context::allocate builds one.
    Result<std::shared_ptr<Buffer>> allocate(std::string_view heapName, uint64_t size, std::string name = {}) const {
        std::shared_ptr<Heap> h = heap(heapName);
        if (!h)
            return Error(ENOENT, "no such heap");
        auto bufferName = BufferName::make(name);
        if (!bufferName)
            return bufferName.error();
        auto storage = h->allocate(size);
        if (!storage)
            return storage.error();
        BufferParams params;
        params.size = size;
        params.fdFlags = O_CLOEXEC | O_RDWR;
        params.name = std::move(*bufferName);
        params.ops = makeHeapExporter(*h);
        params.storage = std::move(*storage);
        params.registry = registry_;
        return BufferAccess::create(std::move(params));
    }

private:
    Platform platform_;
    std::shared_ptr<PhysicalMemory> memory_;
    std::vector<std::shared_ptr<Heap>> heaps_;
    std::map<std::string, std::shared_ptr<IommuDomain>> domains_;
    std::map<std::string, std::unique_ptr<DmaDevice>> devices_;
    std::shared_ptr<BufferRegistry> registry_ = std::make_shared<BufferRegistry>();
};

/// @p chunks with physically adjacent neighbours merged: the ranges a
/// direct (no IOMMU) DMA table must cover, in order.
inline std::vector<PhysChunk> mergedChunks(const std::vector<PhysChunk>& chunks) {
    std::vector<PhysChunk> merged;
    for (const PhysChunk& c : chunks) {
        if (!merged.empty() && merged.back().end() == c.address)
            merged.back().size += c.size;
        else
            merged.push_back(c);
    }
    return merged;
}

/// @p table with DMA-adjacent segments merged.
inline std::vector<PhysChunk> mergedSegments(const SgTable& table) {
    std::vector<PhysChunk> ranges;
    for (const SgEntry& s : table)
        ranges.push_back({s.dmaAddress, s.length});
    return mergedChunks(ranges);
}

/// Whether a segment crosses a boundary of @p mask (Linux's dma_get_seg_boundary()).
inline bool crossesBoundary(const SgEntry& s, uint64_t mask) {
    return (s.dmaAddress & ~mask) != ((s.dmaAddress + s.length - 1) & ~mask);
}

/// Every byte of @p mapping equals @p value.
inline bool allBytesAre(const BufferMapping& mapping, std::byte value) {
    return std::all_of(mapping.bytes(), mapping.bytes() + mapping.size(), [&](std::byte b) { return b == value; });
}

} // namespace cenalloc::test
