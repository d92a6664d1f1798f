// SPDX-License-Identifier: MIT
// CMA and carveout heaps: each buffer is one contiguous range of a reserved region.
#include "heaps/contiguous_heap.h"

#include <algorithm>
#include <cassert>
#include <mutex>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cenalloc/units.h>

#include "memory/range_allocator.h"

namespace cenalloc {

namespace {

class ContiguousHeap final : public Heap {
public:
    ContiguousHeap(const ReservedRegion& region, HeapProperties properties)
        : Heap(std::move(properties)), ranges_(region.base, region.size, kPageSize) {}

    uint64_t freeBytes() const override {
        std::lock_guard lock(mutex_);
        return ranges_.freeBytes();
    }

protected:
    Result<Backing> allocateBacking(uint64_t length, const StorageLimits& limits) override {
        // Devices may need their buffer aligned beyond a page (a codec's
        // 1 MiB-aligned reference frames); one contiguous range can give them
        // that, so the request's alignment is honoured, never less than a page.
        const uint64_t alignment = std::max(limits.alignment, kPageSize);
        const AddressLimit limit{properties().lowestAddress,
                                 std::min(properties().highestAddress, limits.highestAddress)};
        std::lock_guard lock(mutex_);
        Result<uint64_t> address = ranges_.allocate(length, alignment, limit);
        if (!address)
            return address.error().withContext(fmt::format("heap '{}'", name()));
        return Backing{{{*address, length}}, {}};
    }

    void freeChunks(std::span<const PhysChunk> chunks) override {
        std::lock_guard lock(mutex_);
        for (const PhysChunk& c : chunks)
            ranges_.free(c.address, c.size);
    }

private:
    mutable std::mutex mutex_;
    RangeAllocator ranges_; // guarded by mutex_
};

} // namespace

HeapProperties contiguousHeapProperties(const ReservedRegion& region, bool honoursAddressLimit) {
    HeapProperties p;
    p.name = region.name;
    p.kind = region.kind == RegionKind::Cma ? HeapKind::Cma : HeapKind::Carveout;
    p.description = fmt::format("{}{} region of {} at {}", region.kind == RegionKind::Cma ? "CMA" : "carveout",
                                region.noMap ? " no-map" : "", formatSize(region.size), formatAddress(region.base));
    p.lowestAddress = region.base;
    p.highestAddress = region.size == 0 ? region.base : region.end() - 1;
    p.contiguous = true;
    // A no-map region is outside the kernel's linear map: the CPU can only
    // map it uncached, so the heap promises no cached mappings.
    p.cached = !region.noMap;
    p.maxChunkSize = region.size;
    p.minChunkSize = kPageSize;
    p.chunkAlignment = kPageSize;
    p.accessBits = region.accessBits;
    p.capacity = region.size;
    p.owners = region.owners;
    p.honoursAddressLimit = honoursAddressLimit;
    if (!region.owners.empty())
        p.description += fmt::format(", private to {}", fmt::join(region.owners, ", "));
    return p;
}

std::shared_ptr<Heap> createContiguousHeap(const ReservedRegion& region, bool honoursAddressLimit) {
    return createContiguousHeap(region, contiguousHeapProperties(region, honoursAddressLimit));
}

std::shared_ptr<Heap> createContiguousHeap(const ReservedRegion& region, HeapProperties properties) {
    assert(region.base % kPageSize == 0 && region.size % kPageSize == 0);
    return std::make_shared<ContiguousHeap>(region, std::move(properties));
}

} // namespace cenalloc
