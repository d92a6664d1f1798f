// SPDX-License-Identifier: MIT
// Buddy page allocator: naturally aligned blocks, split on allocation, merged on free.
#include "memory/page_allocator.h"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <vector>

#include <fmt/format.h>

#include <cenalloc/units.h>

namespace cenalloc {

namespace {

constexpr uint64_t blockSize(unsigned order) {
    return kPageSize << order;
}

} // namespace

PageAllocator::PageAllocator(std::span<const PhysChunk> freeSpans) {
    // Join touching spans first: cutting them separately would leave two
    // buddies that the greedy cut below could have kept as one larger block.
    std::vector<PhysChunk> spans(freeSpans.begin(), freeSpans.end());
    std::sort(spans.begin(), spans.end(), [](const PhysChunk& a, const PhysChunk& b) { return a.address < b.address; });
    std::vector<PhysChunk> joined;
    for (const PhysChunk& s : spans) {
        assert(s.address % kPageSize == 0 && s.size % kPageSize == 0);
        if (s.size == 0)
            continue;
        if (!joined.empty() && joined.back().end() == s.address) {
            joined.back().size += s.size;
            continue;
        }
        assert(joined.empty() || joined.back().end() < s.address);
        joined.push_back(s);
    }

    for (const PhysChunk& s : joined) {
        uint64_t address = s.address;
        uint64_t end = s.end();
        // The largest block that is aligned at `address` and fits before
        // `end`: blocks are aligned in absolute addresses, as the kernel's
        // are, so a 1 MiB block always starts on a 1 MiB boundary.
        while (address < end) {
            unsigned order = kMaxOrder;
            while (address % blockSize(order) != 0 || end - address < blockSize(order))
                --order;
            insertFree(address, order);
            address += blockSize(order);
        }
        totalBytes_ += s.size;
    }
    freeBytes_ = totalBytes_;
}

void PageAllocator::insertFree(uint64_t address, unsigned order) {
    free_[order].insert(address);
}

Result<uint64_t> PageAllocator::allocate(unsigned order, const AddressLimit& limit) {
    if (order > kMaxOrder)
        return Error(ENOMEM, fmt::format("no block of order {} exists (the largest order is {})", order, kMaxOrder));
    const uint64_t size = blockSize(order);
    if (limit.highest < size - 1 || limit.lowest > limit.highest)
        return Error(ENOMEM, fmt::format("no {} block fits in [{}, {}]", formatSize(size), formatAddress(limit.lowest),
                                         formatAddress(limit.highest)));
    // Highest start a block of `size` may have and still end inside the limit.
    const uint64_t lastStart = (limit.highest - (size - 1)) & ~(size - 1);

    // For each order, the free block with the greatest base <= lastStart is
    // the only candidate worth looking at: its highest sub-block inside the
    // limit is above every sub-block of the lower blocks (blocks of one order
    // are disjoint). A free block may straddle the limit; the candidate is
    // then the highest sub-block below it. The best candidate over all
    // orders is the highest address (free blocks of any orders are disjoint).
    bool found = false;
    unsigned bestOrder = 0;
    uint64_t bestBlock = 0;
    uint64_t bestAddress = 0;
    for (unsigned k = order; k <= kMaxOrder; ++k) {
        const std::set<uint64_t>& list = free_[k];
        auto it = list.upper_bound(lastStart);
        if (it == list.begin())
            continue;
        --it;
        const uint64_t block = *it;
        const uint64_t candidate = std::min(block + blockSize(k) - size, lastStart);
        if (candidate < limit.lowest)
            continue;
        if (!found || candidate > bestAddress) {
            found = true;
            bestOrder = k;
            bestBlock = block;
            bestAddress = candidate;
        }
    }
    if (!found)
        return Error(ENOMEM, fmt::format("no free {} block in [{}, {}]", formatSize(size), formatAddress(limit.lowest),
                                         formatAddress(limit.highest)));

    // Split down to the requested order, keeping the half that holds the
    // chosen address and freeing the other half.
    free_[bestOrder].erase(bestBlock);
    uint64_t block = bestBlock;
    for (unsigned k = bestOrder; k > order; --k) {
        const uint64_t half = blockSize(k - 1);
        if (bestAddress >= block + half) {
            insertFree(block, k - 1);
            block += half;
        } else {
            insertFree(block + half, k - 1);
        }
    }
    assert(block == bestAddress);
    freeBytes_ -= size;
    return bestAddress;
}

bool PageAllocator::overlapsFree(uint64_t address, unsigned order) const {
    const uint64_t end = address + blockSize(order);
    // A free block of this order or smaller inside the range...
    for (unsigned k = 0; k <= order; ++k) {
        auto it = free_[k].lower_bound(address);
        if (it != free_[k].end() && *it < end)
            return true;
    }
    // ...or a larger free block containing it.
    for (unsigned k = order + 1; k <= kMaxOrder; ++k)
        if (free_[k].count(address & ~(blockSize(k) - 1)))
            return true;
    return false;
}

void PageAllocator::free(uint64_t address, unsigned order) {
    assert(order <= kMaxOrder);
    assert(address % blockSize(order) == 0);
    assert(!overlapsFree(address, order) && "double free of a page block");
    freeBytes_ += blockSize(order);
    // Merge with the buddy while it is free. Both halves being free means the
    // merged block lies wholly in managed memory, so no bounds check is needed.
    while (order < kMaxOrder) {
        const uint64_t buddy = address ^ blockSize(order);
        if (free_[order].erase(buddy) == 0)
            break;
        address = std::min(address, buddy);
        ++order;
    }
    insertFree(address, order);
}

uint64_t PageAllocator::freeBytesIn(const AddressLimit& limit) const {
    if (limit.lowest > limit.highest)
        return 0;
    uint64_t bytes = 0;
    for (unsigned k = 0; k <= kMaxOrder; ++k) {
        const uint64_t size = blockSize(k);
        // Start at the block that may contain limit.lowest.
        auto it = free_[k].upper_bound(limit.lowest);
        if (it != free_[k].begin())
            --it;
        for (; it != free_[k].end() && *it <= limit.highest; ++it) {
            const uint64_t first = std::max(*it, limit.lowest);
            const uint64_t last = std::min(*it + (size - 1), limit.highest);
            if (first <= last)
                bytes += last - first + 1;
        }
    }
    return bytes;
}

std::array<uint64_t, PageAllocator::kMaxOrder + 1> PageAllocator::freeBlocks() const {
    std::array<uint64_t, kMaxOrder + 1> counts{};
    for (unsigned k = 0; k <= kMaxOrder; ++k)
        counts[k] = free_[k].size();
    return counts;
}

} // namespace cenalloc
