// SPDX-License-Identifier: MIT
// An IOMMU page table: IOVA pages to simulated physical pages, with faults.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include <cenalloc/result.h>
#include <cenalloc/storage_types.h>

namespace cenalloc {

/// The translation an IOMMU performs, with the observable behaviour of a page
/// table (whole pages map or fault; a page maps at most once) but stored as
/// *regions*: each map call adds one region of consecutive IOVA pages whose
/// physical side is a sorted list of extents (physically contiguous runs).
/// Mappings are built from storage chunks, so this costs O(chunks) memory and
/// one allocation per map instead of one entry per page: mapping 256 scattered
/// pages is one region of 256 extents.
///
/// Complexity (R regions, E extents in a region): map O(log R + E), translate
/// O(log R + log E), unmap O(log R + E) per region touched.
///
/// Not thread-safe: the owning IommuDomain serialises calls.
class IoPageTable {
public:
    /// @p pageSize is the IOMMU page size, a power of two.
    explicit IoPageTable(uint64_t pageSize);

    /// Map [@p iova, + @p size) to [@p phys, + @p size). Errors: EINVAL when
    /// an argument is not page-aligned, the size is zero or a range wraps;
    /// EEXIST when any page of the range is already mapped. On error nothing
    /// changes.
    Result<void> map(uint64_t iova, uint64_t phys, uint64_t size);

    /// Map @p chunks back to back from @p iova: chunk k starts where chunk
    /// k-1 ended in IOVA space (the scatter-gather "map_sg" case). Errors as
    /// for map(), plus EINVAL for an empty list; on error nothing changes.
    Result<void> mapScatter(uint64_t iova, std::span<const PhysChunk> chunks);

    /// Remove every mapped page of [@p iova, + @p size) (page-aligned), split
    /// regions that straddle its ends, and return the number of bytes that
    /// were mapped (so a caller can check it unmapped what it mapped).
    uint64_t unmap(uint64_t iova, uint64_t size);

    /// The physical address of @p iova. Errors: EFAULT "iova 0x... is not
    /// mapped".
    Result<uint64_t> translate(uint64_t iova) const;

    /// The physical address of @p iova and how many bytes from there stay
    /// physically contiguous and mapped (to the end of the extent), so a DMA
    /// engine can copy run by run. Errors as for translate().
    Result<PhysChunk> translateRun(uint64_t iova) const;

    uint64_t pageSize() const { return pageSize_; }
    uint64_t mappedBytes() const { return mappedBytes_; }
    /// Number of regions (one per map call, more after partial unmaps).
    size_t regionCount() const { return regions_.size(); }

private:
    struct Extent {
        uint64_t offset; // from the region start; the extent runs to the next one's offset
        uint64_t phys;
    };
    struct Region {
        uint64_t size = 0;
        std::vector<Extent> extents; // sorted by offset, the first at 0
    };
    using RegionMap = std::map<uint64_t, Region>; // IOVA start -> region

    Result<void> checkRange(uint64_t iova, uint64_t size) const;
    bool overlaps(uint64_t iova, uint64_t size) const;
    /// The region containing @p iova, or end().
    RegionMap::const_iterator find(uint64_t iova) const;
    /// Bytes [@p from, @p to) of a region (offsets inside it) as a new region.
    static Region slice(const Region& r, uint64_t from, uint64_t to);

    uint64_t pageSize_;
    uint64_t mappedBytes_ = 0;
    RegionMap regions_;
};

} // namespace cenalloc
