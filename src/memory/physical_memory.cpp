// SPDX-License-Identifier: MIT
// The simulated physical address space: one buddy allocator per RAM bank.
#include "memory/physical_memory.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cerrno>

#include <fmt/format.h>

#include <cenalloc/units.h>

namespace cenalloc {

namespace {

// The parts of @p bank not covered by any region in @p regions (sorted by base).
std::vector<PhysChunk> bankSpans(const MemoryBank& bank, const std::vector<const ReservedRegion*>& regions) {
    std::vector<PhysChunk> spans;
    uint64_t cursor = bank.base;
    for (const ReservedRegion* r : regions) {
        if (r->end() <= cursor || r->base >= bank.end())
            continue;
        if (r->base > cursor)
            spans.push_back({cursor, r->base - cursor});
        cursor = std::max(cursor, r->end());
    }
    if (cursor < bank.end())
        spans.push_back({cursor, bank.end() - cursor});
    return spans;
}

std::vector<const ReservedRegion*> regionsByBase(const Platform& platform) {
    std::vector<const ReservedRegion*> regions;
    for (const ReservedRegion& r : platform.regions)
        regions.push_back(&r);
    std::sort(regions.begin(), regions.end(),
              [](const ReservedRegion* a, const ReservedRegion* b) { return a->base < b->base; });
    return regions;
}

} // namespace

std::vector<PhysChunk> generalMemorySpans(const Platform& platform) {
    std::vector<const ReservedRegion*> regions = regionsByBase(platform);
    std::vector<PhysChunk> spans;
    for (const MemoryBank& bank : platform.memory)
        for (const PhysChunk& s : bankSpans(bank, regions))
            spans.push_back(s);
    std::sort(spans.begin(), spans.end(), [](const PhysChunk& a, const PhysChunk& b) { return a.address < b.address; });
    return spans;
}

PhysicalMemory::PhysicalMemory(const Platform& platform) {
    std::vector<const ReservedRegion*> regions = regionsByBase(platform);
    bool any = false;
    for (const MemoryBank& bank : platform.memory) {
        // Reserved regions are served by the CMA and carveout heaps, so the
        // page allocator never sees them.
        std::vector<PhysChunk> spans = bankSpans(bank, regions);
        for (const PhysChunk& s : spans) {
            lowest_ = any ? std::min(lowest_, s.address) : s.address;
            end_ = std::max(end_, s.end());
            any = true;
        }
        banks_.push_back(Bank{bank.base, bank.end(), PageAllocator(spans), {}});
    }
    // Highest bank first: like Linux preferring ZONE_NORMAL over ZONE_DMA32,
    // keep low memory for the devices that can reach nothing else.
    std::sort(banks_.begin(), banks_.end(), [](const Bank& a, const Bank& b) { return a.base > b.base; });
}

Result<uint64_t> PhysicalMemory::allocatePages(unsigned order, const AddressLimit& limit) {
    std::lock_guard lock(mutex_);
    return allocateLocked(order, limit);
}

size_t PhysicalMemory::allocatePagesBulk(unsigned order, size_t count, const AddressLimit& limit,
                                         std::vector<PhysChunk>& out) {
    std::lock_guard lock(mutex_);
    size_t done = 0;
    const uint64_t blockSize = kPageSize << order;
    if (order <= kMaxCachedOrder) {
        // Fast path: recycled blocks of the preferred (highest) bank, taken
        // straight off its cache while they meet the limit.
        for (Bank& bank : banks_) {
            if (bank.end <= limit.lowest || bank.base > limit.highest)
                continue;
            // The newest blocks first, for as long as they meet the limit;
            // counted first, then copied in one go (a large buffer takes
            // dozens of blocks on every allocation).
            std::vector<uint64_t>& cached = bank.cache[order];
            const size_t available = cached.size();
            size_t take = 0;
            if (limit.lowest <= bank.base && bank.end - 1 <= limit.highest) {
                // The limit spans the bank (no limit at all, usually): every
                // block cached here meets it.
                take = std::min(count, available);
            } else {
                while (take < count && take < available && limit.admits(cached[available - 1 - take], blockSize))
                    ++take;
            }
            const size_t at = out.size();
            out.resize(at + take);
            for (size_t i = 0; i < take; ++i)
                out[at + i] = PhysChunk{cached[available - 1 - i], blockSize};
            cached.resize(available - take);
            cachedBytes_ -= take * blockSize;
            done = take;
            break; // lower banks only after the buddies of this one: the slow path below
        }
    }
    for (; done < count; ++done) {
        Result<uint64_t> address = allocateLocked(order, limit);
        if (!address)
            break;
        out.push_back({*address, kPageSize << order});
    }
    return done;
}

void PhysicalMemory::freePagesBulk(std::span<const PhysChunk> chunks) {
    std::lock_guard lock(mutex_);
    // A buffer's chunks nearly always lie in one bank and come in runs of
    // one size: a run goes into the cache in one step, as far as it has
    // room, the bank looked up again only when a chunk falls outside it.
    Bank* bank = nullptr;
    for (size_t i = 0; i < chunks.size();) {
        const PhysChunk& c = chunks[i];
        unsigned order = static_cast<unsigned>(std::countr_zero(c.size / kPageSize));
        assert(c.size == kPageSize << order);
        if (!bank || c.address < bank->base || c.address >= bank->end)
            bank = bankOfLocked(c.address);
        if (!bank) {
            ++i;
            continue;
        }
        size_t run = 0;
        if (order <= kMaxCachedOrder) {
            const size_t room = (kMaxCachedBytes - cachedBytes_) / c.size;
            while (i + run < chunks.size() && run < room && chunks[i + run].size == c.size &&
                   chunks[i + run].address >= bank->base && chunks[i + run].address < bank->end)
                ++run;
        }
        if (run == 0) {
            bank->pages.free(c.address, order);
            ++i;
            continue;
        }
        std::vector<uint64_t>& cache = bank->cache[order];
        const size_t at = cache.size();
        cache.resize(at + run);
        for (size_t k = 0; k < run; ++k)
            cache[at + k] = chunks[i + k].address;
        cachedBytes_ += run * c.size;
        i += run;
    }
}

PhysicalMemory::Bank* PhysicalMemory::bankOfLocked(uint64_t address) {
    for (Bank& bank : banks_)
        if (address >= bank.base && address < bank.end)
            return &bank;
    assert(false && "freePages: address outside every bank");
    return nullptr; // an invariant broken: the block is lost rather than misfiled
}

void PhysicalMemory::freeToBankLocked(Bank& bank, uint64_t address, unsigned order) {
    const uint64_t blockSize = kPageSize << order;
    if (order <= kMaxCachedOrder && cachedBytes_ + blockSize <= kMaxCachedBytes) {
        bank.cache[order].push_back(address);
        cachedBytes_ += blockSize;
    } else {
        bank.pages.free(address, order);
    }
}

Result<uint64_t> PhysicalMemory::allocateLocked(unsigned order, const AddressLimit& limit) {
    // A block larger than any cached one is exactly what unmerged cached
    // pages break up: merge them back before looking.
    if (order > kMaxCachedOrder && cachedBytes_ != 0)
        drainCacheLocked();
    Result<uint64_t> address = allocateFromBanksLocked(order, limit, true);
    if (address || cachedBytes_ == 0)
        return address;
    // Cached blocks may be what is missing (unmerged buddies, or blocks
    // inside the limit): merge them back and try once more.
    drainCacheLocked();
    return allocateFromBanksLocked(order, limit, false);
}

Result<uint64_t> PhysicalMemory::allocateFromBanksLocked(unsigned order, const AddressLimit& limit, bool useCache) {
    const uint64_t blockSize = kPageSize << order;
    for (Bank& bank : banks_) {
        if (bank.end <= limit.lowest || bank.base > limit.highest)
            continue;
        if (useCache && order <= kMaxCachedOrder) {
            // Only the most recent block is tried: scanning for one inside
            // the limit would make the fast path slow; the buddies find any other.
            std::vector<uint64_t>& cached = bank.cache[order];
            if (!cached.empty() && limit.admits(cached.back(), blockSize)) {
                uint64_t address = cached.back();
                cached.pop_back();
                cachedBytes_ -= blockSize;
                return address;
            }
        }
        Result<uint64_t> address = bank.pages.allocate(order, limit);
        if (address)
            return address;
    }
    return Error(ENOMEM, fmt::format("no free {} block of pages in [{}, {}]", formatSize(blockSize),
                                     formatAddress(limit.lowest), formatAddress(limit.highest)));
}

void PhysicalMemory::freePages(uint64_t address, unsigned order) {
    std::lock_guard lock(mutex_);
    freeLocked(address, order);
}

void PhysicalMemory::freeLocked(uint64_t address, unsigned order) {
    if (Bank* bank = bankOfLocked(address))
        freeToBankLocked(*bank, address, order);
}

void PhysicalMemory::drainCacheLocked() {
    for (Bank& bank : banks_)
        for (unsigned order = 0; order <= kMaxCachedOrder; ++order) {
            for (uint64_t address : bank.cache[order])
                bank.pages.free(address, order);
            bank.cache[order].clear();
        }
    cachedBytes_ = 0;
}

void PhysicalMemory::drainCache() {
    std::lock_guard lock(mutex_);
    drainCacheLocked();
}

uint64_t PhysicalMemory::cachedBytes() const {
    std::lock_guard lock(mutex_);
    return cachedBytes_;
}

uint64_t PhysicalMemory::totalBytes() const {
    std::lock_guard lock(mutex_);
    uint64_t total = 0;
    for (const Bank& bank : banks_)
        total += bank.pages.totalBytes();
    return total;
}

uint64_t PhysicalMemory::freeBytes() const {
    std::lock_guard lock(mutex_);
    uint64_t free = cachedBytes_;
    for (const Bank& bank : banks_)
        free += bank.pages.freeBytes();
    return free;
}

uint64_t PhysicalMemory::freeBytes(const AddressLimit& limit) const {
    std::lock_guard lock(mutex_);
    uint64_t free = 0;
    for (const Bank& bank : banks_) {
        if (bank.end <= limit.lowest || bank.base > limit.highest)
            continue;
        if (bank.base >= limit.lowest && bank.end - 1 <= limit.highest)
            free += bank.pages.freeBytes();
        else
            free += bank.pages.freeBytesIn(limit);
    }
    for (const Bank& bank : banks_)
        for (unsigned order = 0; order <= kMaxCachedOrder; ++order)
            for (uint64_t address : bank.cache[order])
                if (limit.admits(address, kPageSize << order))
                    free += kPageSize << order;
    return free;
}

} // namespace cenalloc
