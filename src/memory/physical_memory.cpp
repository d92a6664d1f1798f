// SPDX-License-Identifier: MIT
// The simulated physical address space: one buddy allocator per RAM bank.
#include "memory/physical_memory.h"

#include <algorithm>
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
        banks_.push_back(Bank{bank.base, bank.end(), PageAllocator(spans)});
    }
    // Highest bank first: like Linux preferring ZONE_NORMAL over ZONE_DMA32,
    // keep low memory for the devices that can reach nothing else.
    std::sort(banks_.begin(), banks_.end(), [](const Bank& a, const Bank& b) { return a.base > b.base; });
}

Result<uint64_t> PhysicalMemory::allocatePages(unsigned order, const AddressLimit& limit) {
    std::lock_guard lock(mutex_);
    for (Bank& bank : banks_) {
        if (bank.end <= limit.lowest || bank.base > limit.highest)
            continue;
        Result<uint64_t> address = bank.pages.allocate(order, limit);
        if (address)
            return address;
    }
    return Error(ENOMEM, fmt::format("no free {} block of pages in [{}, {}]", formatSize(kPageSize << order),
                                     formatAddress(limit.lowest), formatAddress(limit.highest)));
}

void PhysicalMemory::freePages(uint64_t address, unsigned order) {
    std::lock_guard lock(mutex_);
    for (Bank& bank : banks_) {
        if (address >= bank.base && address < bank.end) {
            bank.pages.free(address, order);
            return;
        }
    }
    assert(false && "freePages: address outside every bank");
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
    uint64_t free = 0;
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
    return free;
}

} // namespace cenalloc
