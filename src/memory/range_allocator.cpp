// SPDX-License-Identifier: MIT
// Aligned first-fit allocation of contiguous ranges with coalescing frees.
#include "memory/range_allocator.h"

#include <algorithm>
#include <cassert>
#include <cerrno>

#include <fmt/format.h>

#include <cenalloc/units.h>

namespace cenalloc {

RangeAllocator::RangeAllocator(uint64_t base, uint64_t size, uint64_t granule)
    : base_(base), size_(size), granule_(granule), freeBytes_(size) {
    assert(isPowerOfTwo(granule));
    assert(base % granule == 0 && size % granule == 0);
    assert(size == 0 || base <= UINT64_MAX - (size - 1));
    if (size != 0)
        free_.emplace(base, size);
}

Result<uint64_t> RangeAllocator::allocate(uint64_t size, uint64_t alignment, const AddressLimit& limit) {
    if (size == 0)
        return Error(EINVAL, "cannot allocate an empty range");
    if (!isPowerOfTwo(alignment) || alignment < granule_)
        return Error(EINVAL, fmt::format("alignment {:#x} is not a power of two of at least {}", alignment,
                                         formatSize(granule_)));
    std::optional<uint64_t> rounded = alignUpChecked(size, granule_);
    if (!rounded)
        return Error(EINVAL, fmt::format("size {:#x} overflows when rounded up to {}", size, formatSize(granule_)));
    size = *rounded;

    // First fit from the lowest address, as the kernel's CMA bitmap search
    // does: low-address packing leaves the top of the pool in one piece for
    // large requests. Start at the free range that may contain limit.lowest.
    auto it = free_.upper_bound(limit.lowest);
    if (it != free_.begin())
        --it;
    for (; it != free_.end() && it->first <= limit.highest; ++it) {
        const uint64_t rangeStart = it->first;
        const uint64_t rangeEnd = it->first + it->second;
        std::optional<uint64_t> start = alignUpChecked(std::max(rangeStart, limit.lowest), alignment);
        if (!start || *start >= rangeEnd || rangeEnd - *start < size)
            continue;
        if (!limit.admits(*start, size))
            // Every later range starts higher still, so none is admitted either.
            break;
        free_.erase(it);
        if (*start > rangeStart)
            free_.emplace(rangeStart, *start - rangeStart);
        if (*start + size < rangeEnd)
            free_.emplace(*start + size, rangeEnd - (*start + size));
        freeBytes_ -= size;
        return *start;
    }
    return Error(ENOMEM, fmt::format("no free {} range aligned to {} in [{}, {}] ({} free, largest free range {})",
                                     formatSize(size), formatSize(alignment), formatAddress(limit.lowest),
                                     formatAddress(limit.highest), formatSize(freeBytes_), formatSize(largestFree())));
}

void RangeAllocator::free(uint64_t address, uint64_t size) {
    size = (size + granule_ - 1) & ~(granule_ - 1);
    assert(size != 0 && address >= base_ && address - base_ <= size_ && size <= size_ - (address - base_));
    auto next = free_.lower_bound(address);
    assert((next == free_.end() || next->first >= address + size) && "double free of a range");
    uint64_t start = address;
    uint64_t length = size;
    if (next != free_.end() && next->first == address + size) {
        length += next->second;
        next = free_.erase(next);
    }
    if (next != free_.begin()) {
        auto prev = std::prev(next);
        assert(prev->first + prev->second <= address && "double free of a range");
        if (prev->first + prev->second == address) {
            start = prev->first;
            length += prev->second;
            free_.erase(prev);
        }
    }
    free_.emplace(start, length);
    freeBytes_ += size;
}

std::vector<PhysChunk> RangeAllocator::takeFree(uint64_t address, uint64_t size) {
    assert(address % granule_ == 0 && size % granule_ == 0 && address >= base_ && address - base_ <= size_ &&
           size <= size_ - (address - base_));
    const uint64_t end = address + size;
    std::vector<PhysChunk> taken;
    auto it = free_.upper_bound(address);
    if (it != free_.begin() && std::prev(it)->first + std::prev(it)->second > address)
        --it;
    while (it != free_.end() && it->first < end) {
        const uint64_t rangeStart = it->first;
        const uint64_t rangeEnd = it->first + it->second;
        const uint64_t from = std::max(rangeStart, address);
        const uint64_t to = std::min(rangeEnd, end);
        it = free_.erase(it);
        if (rangeStart < from)
            free_.emplace(rangeStart, from - rangeStart);
        if (to < rangeEnd)
            it = free_.emplace(to, rangeEnd - to).first;
        taken.push_back({from, to - from});
        freeBytes_ -= to - from;
    }
    return taken;
}

std::vector<PhysChunk> RangeAllocator::freeRanges() const {
    std::vector<PhysChunk> ranges;
    ranges.reserve(free_.size());
    for (const auto& [start, length] : free_)
        ranges.push_back({start, length});
    return ranges;
}

uint64_t RangeAllocator::largestFree() const {
    uint64_t largest = 0;
    for (const auto& [start, length] : free_)
        largest = std::max(largest, length);
    return largest;
}

} // namespace cenalloc
