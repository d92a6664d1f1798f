// SPDX-License-Identifier: MIT
// CMA and carveout heaps: one physically contiguous chunk per buffer from a reserved region.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <cenalloc/heap.h>
#include <cenalloc/platform.h>

#include "memory/range_allocator.h"

namespace cenalloc {

/// Properties of the heap serving @p region: named after the region, kind
/// Cma or Carveout, contiguous, cached unless the region is no-map, range and
/// capacity of the region, the region's access bits. chunkAlignment is the
/// 4 KiB guaranteed to every buffer; a bigger alignment asked for through
/// StorageLimits::alignment is honoured too.
HeapProperties contiguousHeapProperties(const ReservedRegion& region, bool honoursAddressLimit = true);

/// The heap serving @p region: each buffer is one contiguous range of it,
/// first fit from the lowest address.
///
/// Beyond the Heap ops, a window of the region can be held while the
/// buffers in it move out (what cma_alloc() does to the range it isolates
/// before alloc_contig_range() migrates the pages in it; see
/// alloc/heap_moves.cpp): holdWindow() takes the window's free bytes, and
/// every byte freed inside it afterwards stays held instead of going back
/// to the free ranges, so nothing else is placed there meanwhile.
/// Thread safety: all methods may be called concurrently.
class ContiguousHeap final : public Heap {
public:
    ContiguousHeap(const ReservedRegion& region, HeapProperties properties);

    uint64_t freeBytes() const override;
    /// The free ranges now, lowest first.
    std::vector<PhysChunk> freeRanges() const;

    /// Hold @p window (page multiples inside the region). One window at a
    /// time: EBUSY when one is held already.
    Result<void> holdWindow(PhysChunk window);
    /// Bytes of the held window that are held now (its size once every
    /// buffer in it has gone); 0 when none is held.
    uint64_t heldBytes() const;
    /// The held window, whole, as the storage of one buffer (counted in the
    /// statistics as an allocation); the window is no longer held. Errors:
    /// ENOMEM when some of it is still in use (the window is released then),
    /// EINVAL when no window is held.
    Result<Storage> takeWindow();
    /// Give the held bytes back to the free ranges; a no-op when none is held.
    void releaseWindow();

protected:
    Result<Backing> allocateBacking(uint64_t length, const StorageLimits& limits) override;
    void freeChunks(std::span<const PhysChunk> chunks) override;

private:
    void releaseWindowLocked();

    mutable std::mutex mutex_;
    RangeAllocator ranges_;           // guarded by mutex_
    std::optional<PhysChunk> window_; // guarded by mutex_
    std::vector<PhysChunk> held_;     // guarded by mutex_; pieces of window_ taken from ranges_
};

/// The heap serving @p region (page-aligned, as validatePlatform() checks).
std::shared_ptr<Heap> createContiguousHeap(const ReservedRegion& region, bool honoursAddressLimit = true);
/// The same with @p properties made from contiguousHeapProperties() (a
/// KernelPlacement set on them, say).
std::shared_ptr<Heap> createContiguousHeap(const ReservedRegion& region, HeapProperties properties);

} // namespace cenalloc
