// SPDX-License-Identifier: MIT
// Aligned first-fit range allocator for CMA pools and carveouts.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include <cenalloc/result.h>

#include "memory/phys.h"

namespace cenalloc {

/// Hands out aligned, contiguous ranges of one region [base, base + size).
/// First fit from the lowest address (as the kernel's CMA bitmap search does);
/// frees coalesce with their neighbours.
///
/// Not thread-safe: the owning heap serialises calls.
class RangeAllocator {
public:
    /// @p granule is the smallest unit (a page); base and size are multiples of it.
    RangeAllocator(uint64_t base, uint64_t size, uint64_t granule = 4096);

    /// A range of @p size bytes (rounded up to the granule) whose start is a
    /// multiple of @p alignment (a power of two, at least the granule) and
    /// that lies inside @p limit. Errors: EINVAL for a zero size or a bad
    /// alignment; ENOMEM when no free range fits, with nothing changed.
    Result<uint64_t> allocate(uint64_t size, uint64_t alignment, const AddressLimit& limit = {});

    /// Give back a range from allocate() (same size as requested).
    void free(uint64_t address, uint64_t size);

    /// Take every free byte of [@p address, @p address + @p size) (granule
    /// multiples inside the region) out of the free ranges, as allocate()
    /// would, and return the pieces taken, lowest first: what a contiguous
    /// heap holds of a window it is clearing. Each piece goes back with free().
    std::vector<PhysChunk> takeFree(uint64_t address, uint64_t size);
    /// The free ranges, lowest first.
    std::vector<PhysChunk> freeRanges() const;

    uint64_t base() const { return base_; }
    uint64_t size() const { return size_; }
    uint64_t freeBytes() const { return freeBytes_; }
    uint64_t largestFree() const;
    size_t freeRangeCount() const { return free_.size(); }

private:
    uint64_t base_;
    uint64_t size_;
    uint64_t granule_;
    uint64_t freeBytes_;
    std::map<uint64_t, uint64_t> free_; // start -> length, non-adjacent
};

} // namespace cenalloc
