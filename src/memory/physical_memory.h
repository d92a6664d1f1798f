// SPDX-License-Identifier: MIT
// The simulated physical address space: RAM banks minus reserved regions.
#pragma once

#include <cstdint>
#include <array>
#include <memory>
#include <mutex>
#include <span>
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

    /// Up to @p count blocks of 2^@p order pages inside @p limit, appended
    /// to @p out as chunks, under one lock. Returns how many were appended:
    /// fewer than @p count means that order is exhausted within the limit.
    size_t allocatePagesBulk(unsigned order, size_t count, const AddressLimit& limit, std::vector<PhysChunk>& out);
    /// Free blocks obtained from this allocator; each chunk's size is a
    /// power-of-two number of pages (its order), under one lock.
    void freePagesBulk(std::span<const PhysChunk> chunks);

    uint64_t totalBytes() const;
    uint64_t freeBytes() const;
    /// Free bytes inside @p limit (the part of each free block that lies in
    /// it). Cheap for banks wholly inside or outside the limit; a bank the
    /// limit cuts costs a walk over its free blocks inside the limit.
    uint64_t freeBytes(const AddressLimit& limit) const;
    /// Lowest and highest+1 address of general-purpose memory.
    uint64_t lowestAddress() const { return lowest_; }
    uint64_t endAddress() const { return end_; }

    /// Bytes of freed blocks held in the recycling cache (counted as free).
    uint64_t cachedBytes() const;
    /// Give every cached block back to the buddy allocators (merging them).
    void drainCache();

    /// Blocks of orders up to this are recycled through the cache.
    static constexpr unsigned kMaxCachedOrder = 8;
    /// Most bytes the cache holds before frees go straight to the buddies.
    static constexpr uint64_t kMaxCachedBytes = 64ull << 20;

private:
    Result<uint64_t> allocateLocked(unsigned order, const AddressLimit& limit);
    void freeLocked(uint64_t address, unsigned order);
    Result<uint64_t> allocateFromBanksLocked(unsigned order, const AddressLimit& limit, bool useCache);
    void drainCacheLocked();

    struct Bank {
        uint64_t base;
        uint64_t end;
        PageAllocator pages;
        // Recently freed blocks per order, not yet merged back: like Linux's
        // per-cpu page lists, a buffer freed and allocated again does not
        // pay for splitting and merging buddies every time. Per bank, so the
        // cache never hands out low memory while a higher bank has room.
        std::array<std::vector<uint64_t>, kMaxCachedOrder + 1> cache;
    };
    /// The bank holding @p address, which must lie in one (null if not).
    Bank* bankOfLocked(uint64_t address);
    /// Into @p bank's cache when it has room, else to its buddies.
    void freeToBankLocked(Bank& bank, uint64_t address, unsigned order);

    mutable std::mutex mutex_;
    std::vector<Bank> banks_;  // guarded by mutex_; sorted by descending base
    uint64_t cachedBytes_ = 0; // guarded by mutex_: the sum over the banks' caches
    uint64_t lowest_ = 0;
    uint64_t end_ = 0;
};

} // namespace cenalloc
