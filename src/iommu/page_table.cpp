// SPDX-License-Identifier: MIT
// An IOMMU page table: IOVA pages to simulated physical pages, with faults.
#include "iommu/page_table.h"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <utility>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "base/try.h"

namespace cenalloc {

namespace {

// The extent holding @p offset: the last one starting at or before it.
template <typename Extents> auto extentAt(const Extents& extents, uint64_t offset) {
    auto it = std::upper_bound(extents.begin(), extents.end(), offset,
                               [](uint64_t off, const auto& e) { return off < e.offset; });
    assert(it != extents.begin());
    return it - 1;
}

Error notMapped(uint64_t iova) {
    return Error(EFAULT, fmt::format("iova {:#x} is not mapped", iova));
}

} // namespace

IoPageTable::IoPageTable(uint64_t pageSize) : pageSize_(pageSize) {
    assert(isPowerOfTwo(pageSize));
}

Result<void> IoPageTable::checkRange(uint64_t iova, uint64_t size) const {
    if (size == 0)
        return Error(EINVAL, fmt::format("zero-length mapping at iova {:#x}", iova));
    if (((iova | size) & (pageSize_ - 1)) != 0)
        return Error(EINVAL, fmt::format("iova {:#x} size {:#x} is not aligned to the iommu page size {:#x}", iova,
                                         size, pageSize_));
    if (size - 1 > UINT64_MAX - iova)
        return Error(EINVAL, fmt::format("iova range {:#x} + {:#x} wraps around", iova, size));
    return {};
}

bool IoPageTable::overlaps(uint64_t iova, uint64_t size) const {
    uint64_t last = iova + size - 1;
    auto it = regions_.upper_bound(last);
    if (it == regions_.begin())
        return false;
    --it;
    return it->first + (it->second.size - 1) >= iova;
}

Result<void> IoPageTable::map(uint64_t iova, uint64_t phys, uint64_t size) {
    PhysChunk chunk{phys, size};
    return mapScatter(iova, std::span<const PhysChunk>(&chunk, 1));
}

Result<void> IoPageTable::mapScatter(uint64_t iova, std::span<const PhysChunk> chunks) {
    if (chunks.empty())
        return Error(EINVAL, fmt::format("no pages to map at iova {:#x}", iova));
    uint64_t total = 0;
    for (size_t i = 0; i < chunks.size(); ++i) {
        const PhysChunk& c = chunks[i];
        if (c.size == 0 || ((c.address | c.size) & (pageSize_ - 1)) != 0 || c.size - 1 > UINT64_MAX - c.address)
            return Error(EINVAL, fmt::format("chunk {} ({:#x} + {:#x}) is empty, wraps, or is not aligned to the "
                                             "iommu page size {:#x}",
                                             i, c.address, c.size, pageSize_));
        if (c.size > UINT64_MAX - total)
            return Error(EINVAL, "total mapping size overflows");
        total += c.size;
    }
    CENALLOC_CHECK(checkRange(iova, total));
    if (overlaps(iova, total))
        return Error(EEXIST, fmt::format("iova range [{:#x}, {:#x}] overlaps a mapped page", iova, iova + total - 1));

    Region region;
    region.size = total;
    region.extents.reserve(chunks.size());
    uint64_t offset = 0;
    uint64_t physEnd = 0;
    for (const PhysChunk& c : chunks) {
        // Physically adjacent chunks continue the previous extent.
        if (region.extents.empty() || c.address != physEnd)
            region.extents.push_back(Extent{offset, c.address});
        offset += c.size;
        physEnd = c.address + c.size;
    }
    regions_.emplace(iova, std::move(region));
    mappedBytes_ += total;
    return {};
}

IoPageTable::Region IoPageTable::slice(const Region& r, uint64_t from, uint64_t to) {
    Region out;
    out.size = to - from;
    auto first = extentAt(r.extents, from);
    out.extents.push_back(Extent{0, first->phys + (from - first->offset)});
    for (auto it = first + 1; it != r.extents.end() && it->offset < to; ++it)
        out.extents.push_back(Extent{it->offset - from, it->phys});
    return out;
}

uint64_t IoPageTable::unmap(uint64_t iova, uint64_t size) {
    assert(((iova | size) & (pageSize_ - 1)) == 0);
    if (size == 0)
        return 0;
    assert(size - 1 <= UINT64_MAX - iova);
    uint64_t last = iova + size - 1;

    auto it = regions_.upper_bound(iova);
    if (it != regions_.begin()) {
        auto prev = std::prev(it);
        if (prev->first + (prev->second.size - 1) >= iova)
            it = prev;
    }
    uint64_t removed = 0;
    while (it != regions_.end() && it->first <= last) {
        uint64_t start = it->first;
        Region r = std::move(it->second);
        uint64_t regionLast = start + (r.size - 1);
        it = regions_.erase(it);
        uint64_t from = std::max(start, iova);
        uint64_t to = std::min(regionLast, last);
        removed += to - from + 1;
        // Keep the parts of the region outside the unmapped range.
        if (from > start)
            regions_.emplace(start, slice(r, 0, from - start));
        if (to < regionLast)
            regions_.emplace(to + 1, slice(r, to + 1 - start, r.size));
    }
    mappedBytes_ -= removed;
    return removed;
}

IoPageTable::RegionMap::const_iterator IoPageTable::find(uint64_t iova) const {
    auto it = regions_.upper_bound(iova);
    if (it == regions_.begin())
        return regions_.end();
    --it;
    if (iova - it->first >= it->second.size)
        return regions_.end();
    return it;
}

Result<uint64_t> IoPageTable::translate(uint64_t iova) const {
    auto it = find(iova);
    if (it == regions_.end())
        return notMapped(iova);
    uint64_t offset = iova - it->first;
    auto e = extentAt(it->second.extents, offset);
    return e->phys + (offset - e->offset);
}

Result<PhysChunk> IoPageTable::translateRun(uint64_t iova) const {
    auto it = find(iova);
    if (it == regions_.end())
        return notMapped(iova);
    const Region& r = it->second;
    uint64_t offset = iova - it->first;
    auto e = extentAt(r.extents, offset);
    uint64_t extentEnd = (e + 1 == r.extents.end()) ? r.size : (e + 1)->offset;
    return PhysChunk{e->phys + (offset - e->offset), extentEnd - offset};
}

} // namespace cenalloc
