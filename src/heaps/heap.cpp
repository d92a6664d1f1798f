// SPDX-License-Identifier: MIT
// The Heap base: allocation bookkeeping and statistics shared by every backend, and Storage.
#include <cenalloc/heap.h>

#include <algorithm>
#include <cassert>
#include <utility>

#include <cenalloc/units.h>

namespace cenalloc {

const char* heapKindName(HeapKind kind) {
    switch (kind) {
    case HeapKind::System: return "system";
    case HeapKind::Cma: return "cma";
    case HeapKind::Carveout: return "carveout";
    case HeapKind::Kernel: return "kernel";
    }
    return "unknown";
}

const char* kernelPlacementName(KernelPlacement placement) {
    switch (placement) {
    case KernelPlacement::Modelled: return "modelled";
    case KernelPlacement::Placed: return "placed";
    case KernelPlacement::NotInKernel: return "not-in-kernel";
    case KernelPlacement::Unplaced: return "unplaced";
    case KernelPlacement::Alias: return "alias";
    }
    return "unknown";
}

Storage::Storage(std::shared_ptr<Heap> heap, std::vector<PhysChunk> chunks, uint64_t size, UniqueFd dmaBuf)
    : heap_(std::move(heap)), chunks_(std::move(chunks)), size_(size), dmaBuf_(std::move(dmaBuf)) {}

Storage::Storage(Storage&& other) noexcept
    : heap_(std::move(other.heap_)), chunks_(std::exchange(other.chunks_, {})), size_(std::exchange(other.size_, 0)),
      dmaBuf_(std::move(other.dmaBuf_)) {}

Storage& Storage::operator=(Storage&& other) noexcept {
    if (this != &other) {
        reset();
        heap_ = std::move(other.heap_);
        chunks_ = std::exchange(other.chunks_, {});
        size_ = std::exchange(other.size_, 0);
        dmaBuf_ = std::move(other.dmaBuf_);
    }
    return *this;
}

bool Storage::inHostKernel() const {
    return heap_ && heap_->properties().inHostKernel();
}

void Storage::reset() {
    if (!heap_)
        return;
    // Keep the heap alive until its release() has returned.
    std::shared_ptr<Heap> heap = std::move(heap_);
    heap->release(chunks_, size_);
    chunks_.clear();
    size_ = 0;
    dmaBuf_.reset();
}

Result<Storage> Heap::allocate(uint64_t length, const StorageLimits& limits) {
    assert(length != 0 && length % kPageSize == 0);
    Result<Backing> backing = allocateBacking(length, limits);
    if (!backing) {
        std::lock_guard lock(statsMutex_);
        ++stats_.failedAllocations;
        return backing.error();
    }
    uint64_t size = length;
#ifndef NDEBUG
    if (!properties_.inHostKernel()) {
        uint64_t sum = 0;
        for (const PhysChunk& c : backing->chunks)
            sum += c.size;
        assert(sum == length);
    } else {
        assert(backing->chunks.empty() && backing->dmaBuf.valid());
    }
#endif

    return countAllocation(std::move(backing->chunks), size, std::move(backing->dmaBuf));
}

Storage Heap::adoptChunks(std::vector<PhysChunk> chunks, uint64_t size) {
    return countAllocation(std::move(chunks), size, {});
}

Storage Heap::countAllocation(std::vector<PhysChunk> chunks, uint64_t size, UniqueFd dmaBuf) {
    // Storage keeps the heap alive, so a heap must be owned by a shared_ptr;
    // weak_from_this() (unlike shared_from_this()) never throws.
    std::shared_ptr<Heap> self = weak_from_this().lock();
    assert(self && "a heap must be owned by a std::shared_ptr");
    {
        std::lock_guard lock(statsMutex_);
        ++stats_.liveBuffers;
        stats_.liveBytes += size;
        stats_.watermarkBytes = std::max(stats_.watermarkBytes, stats_.liveBytes);
        ++stats_.totalAllocations;
    }
    return Storage(std::move(self), std::move(chunks), size, std::move(dmaBuf));
}

void Heap::release(std::span<const PhysChunk> chunks, uint64_t size) {
    freeChunks(chunks);
    std::lock_guard lock(statsMutex_);
    assert(stats_.liveBuffers > 0 && stats_.liveBytes >= size);
    --stats_.liveBuffers;
    stats_.liveBytes -= size;
}

HeapStats Heap::stats() const {
    std::lock_guard lock(statsMutex_);
    return stats_;
}

void Heap::resetWatermark() {
    std::lock_guard lock(statsMutex_);
    stats_.watermarkBytes = stats_.liveBytes;
}

} // namespace cenalloc
