// SPDX-License-Identifier: MIT
// Buddy page allocator over the free spans of one memory bank.
#pragma once

#include <array>
#include <cstdint>
#include <set>
#include <span>

#include <cenalloc/result.h>
#include <cenalloc/storage_types.h>

#include "memory/phys.h"

namespace cenalloc {

/// A binary buddy allocator in the manner of Linux's page allocator: blocks
/// of 2^order pages, naturally aligned in the physical address space, split on
/// allocation and merged with their buddy on free, so fragmentation is real.
///
/// Not thread-safe: the owner (PhysicalMemory) serialises calls.
class PageAllocator {
public:
    static constexpr unsigned kMaxOrder = 10; ///< 4 MiB blocks with 4 KiB pages, as Linux's MAX_ORDER

    /// An allocator whose free memory is exactly @p freeSpans (page-aligned,
    /// non-overlapping). Spans are cut into the largest aligned blocks.
    explicit PageAllocator(std::span<const PhysChunk> freeSpans);

    /// Allocate one block of 2^@p order pages entirely inside @p limit.
    /// Prefers the highest suitable address, so scarce low memory (what
    /// 32-bit and 30-bit devices need, Linux's ZONE_DMA/DMA32) is used last.
    /// Errors: ENOMEM when no block fits; the allocator is unchanged.
    Result<uint64_t> allocate(unsigned order, const AddressLimit& limit = {});

    /// Return a block obtained from allocate() with the same order. Merges
    /// with free buddies.
    void free(uint64_t address, unsigned order);

    uint64_t totalBytes() const { return totalBytes_; }
    uint64_t freeBytes() const { return freeBytes_; }
    /// Free bytes inside @p limit. Costs O(log n) per order plus the number of
    /// free blocks inside the limit, so prefer freeBytes() when the limit
    /// covers everything.
    uint64_t freeBytesIn(const AddressLimit& limit) const;
    /// Number of free blocks of each order (like /proc/buddyinfo).
    std::array<uint64_t, kMaxOrder + 1> freeBlocks() const;

private:
    void insertFree(uint64_t address, unsigned order);
    // True when any byte of the block overlaps free memory (a double free).
    bool overlapsFree(uint64_t address, unsigned order) const;

    // free_[k] holds the base addresses of the free blocks of order k.
    std::array<std::set<uint64_t>, kMaxOrder + 1> free_;
    uint64_t totalBytes_ = 0;
    uint64_t freeBytes_ = 0;
};

} // namespace cenalloc
