// SPDX-License-Identifier: MIT
// The simulated physical address space: RAM banks minus reserved regions.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <cenalloc/platform.h>
#include <cenalloc/result.h>

#include "memory/page_allocator.h"

namespace cenalloc {

/// The general-purpose memory of @p platform: every bank minus the reserved
/// regions inside it, sorted by address, touching spans not joined.
std::vector<PhysChunk> generalMemorySpans(const Platform& platform);

/// General-purpose page memory of a platform: one buddy allocator per bank,
/// covering the bank except its reserved regions (those belong to CMA and
/// carveout heaps).
///
/// Thread safety: every method is safe to call concurrently.
class PhysicalMemory {
public:
    explicit PhysicalMemory(const Platform& platform);

    /// One block of 2^@p order pages inside @p limit, from the bank with the
    /// highest suitable addresses first. Errors: ENOMEM.
    Result<uint64_t> allocatePages(unsigned order, const AddressLimit& limit = {});
    void freePages(uint64_t address, unsigned order);

    uint64_t totalBytes() const;
    uint64_t freeBytes() const;
    /// Free bytes inside @p limit (the part of each free block that lies in
    /// it). Cheap for banks wholly inside or outside the limit; a bank the
    /// limit cuts costs a walk over its free blocks inside the limit.
    uint64_t freeBytes(const AddressLimit& limit) const;
    /// Lowest and highest+1 address of general-purpose memory.
    uint64_t lowestAddress() const { return lowest_; }
    uint64_t endAddress() const { return end_; }

private:
    struct Bank {
        uint64_t base;
        uint64_t end;
        PageAllocator pages;
    };
    mutable std::mutex mutex_;
    std::vector<Bank> banks_; // guarded by mutex_; sorted by descending base
    uint64_t lowest_ = 0;
    uint64_t end_ = 0;
};

} // namespace cenalloc
