// SPDX-License-Identifier: MIT
// CMA and carveout heaps: each buffer is one contiguous range of a reserved region.
#include "heaps/contiguous_heap.h"

#include <algorithm>
#include <cerrno>
#include <cassert>
#include <mutex>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cenalloc/units.h>

namespace cenalloc {

ContiguousHeap::ContiguousHeap(const ReservedRegion& region, HeapProperties properties)
    : Heap(std::move(properties)), ranges_(region.base, region.size, kPageSize) {}

uint64_t ContiguousHeap::freeBytes() const {
    std::lock_guard lock(mutex_);
    return ranges_.freeBytes();
}

std::vector<PhysChunk> ContiguousHeap::freeRanges() const {
    std::lock_guard lock(mutex_);
    return ranges_.freeRanges();
}

Result<ContiguousHeap::Backing> ContiguousHeap::allocateBacking(uint64_t length, const StorageLimits& limits) {
    // Devices may need their buffer aligned beyond a page (a codec's
    // 1 MiB-aligned reference frames); one contiguous range can give them
    // that, so the request's alignment is honoured, never less than a page.
    const uint64_t alignment = std::max(limits.alignment, kPageSize);
    const AddressLimit limit{properties().lowestAddress, std::min(properties().highestAddress, limits.highestAddress)};
    std::lock_guard lock(mutex_);
    Result<uint64_t> address = ranges_.allocate(length, alignment, limit);
    if (!address)
        return address.error().withContext(fmt::format("heap '{}'", name()));
    return Backing{{{*address, length}}, {}};
}

void ContiguousHeap::freeChunks(std::span<const PhysChunk> chunks) {
    std::lock_guard lock(mutex_);
    for (const PhysChunk& c : chunks) {
        if (!window_ || c.end() <= window_->address || c.address >= window_->end()) {
            ranges_.free(c.address, c.size);
            continue;
        }
        // The part inside the held window stays held; the rest is free.
        const uint64_t from = std::max(c.address, window_->address);
        const uint64_t to = std::min(c.end(), window_->end());
        if (c.address < from)
            ranges_.free(c.address, from - c.address);
        if (to < c.end())
            ranges_.free(to, c.end() - to);
        held_.push_back({from, to - from});
    }
}

Result<void> ContiguousHeap::holdWindow(PhysChunk window) {
    assert(window.size != 0 && window.address % kPageSize == 0 && window.size % kPageSize == 0);
    assert(window.address >= properties().lowestAddress && window.end() - 1 <= properties().highestAddress);
    std::lock_guard lock(mutex_);
    if (window_)
        return Error(EBUSY, fmt::format("heap '{}' holds a window already", name()));
    window_ = window;
    held_ = ranges_.takeFree(window.address, window.size);
    return {};
}

uint64_t ContiguousHeap::heldBytes() const {
    std::lock_guard lock(mutex_);
    uint64_t bytes = 0;
    for (const PhysChunk& piece : held_)
        bytes += piece.size;
    return bytes;
}

Result<Storage> ContiguousHeap::takeWindow() {
    PhysChunk window;
    {
        std::lock_guard lock(mutex_);
        if (!window_)
            return Error(EINVAL, fmt::format("heap '{}' holds no window", name()));
        uint64_t bytes = 0;
        for (const PhysChunk& piece : held_)
            bytes += piece.size;
        if (bytes != window_->size) {
            const PhysChunk missed = *window_;
            releaseWindowLocked();
            return Error(ENOMEM, fmt::format("heap '{}': {} of the window at {} is still in use", name(),
                                             formatSize(missed.size - bytes), formatAddress(missed.address)));
        }
        window = *window_;
        window_.reset();
        held_.clear();
    }
    return adoptChunks({window}, window.size);
}

void ContiguousHeap::releaseWindow() {
    std::lock_guard lock(mutex_);
    releaseWindowLocked();
}

void ContiguousHeap::releaseWindowLocked() {
    for (const PhysChunk& piece : held_)
        ranges_.free(piece.address, piece.size);
    held_.clear();
    window_.reset();
}

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
