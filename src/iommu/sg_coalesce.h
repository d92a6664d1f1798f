// SPDX-License-Identifier: MIT
// Cutting DMA-contiguous ranges into segments a device accepts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <cenalloc/storage_types.h>

namespace cenalloc {

/// Cut the DMA-contiguous range [@p address, + @p length) into the fewest
/// segments that each are at most @p maxSegmentSize bytes and never cross a
/// segment boundary: a segment [a, b] crosses when (a & ~mask) != (b & ~mask)
/// for @p segmentBoundaryMask (Linux's dma_get_seg_boundary()). Cuts are made
/// greedily from the start, which is optimal for these two limits.
///
/// Preconditions (asserted; constraints are validated where they enter):
/// maxSegmentSize != 0; the range does not wrap. A mask that is not of the
/// form 2^n - 1 acts as its low run of one bits. A zero length gives no
/// segments.
SgTable splitSegments(uint64_t address, uint64_t length, uint64_t maxSegmentSize, uint64_t segmentBoundaryMask);

/// The same, appending to @p out (lets callers build one table from many ranges).
void appendSegments(SgTable& out, uint64_t address, uint64_t length, uint64_t maxSegmentSize,
                    uint64_t segmentBoundaryMask);

/// How many segments splitSegments() would return, without building them, so
/// a caller can check a device's max_segment_count first. O(segments).
size_t countSegments(uint64_t address, uint64_t length, uint64_t maxSegmentSize, uint64_t segmentBoundaryMask);

/// Merge chunks that are address-contiguous (each starting where the previous
/// one ended) into runs and split every run with splitSegments(): the segment
/// list of a device that DMAs to the chunks directly (no IOMMU). The result
/// has at most as many segments as needed and never more than the limits
/// allow; chunk order is kept.
SgTable coalesceChunks(std::span<const PhysChunk> chunks, uint64_t maxSegmentSize, uint64_t segmentBoundaryMask);

} // namespace cenalloc
