// SPDX-License-Identifier: MIT
// Cutting DMA-contiguous ranges into segments a device accepts.
#include "iommu/sg_coalesce.h"

#include <algorithm>
#include <cassert>

namespace cenalloc {

namespace {

// Only the low run of ones of a mask describes contiguous boundary windows:
// with 0b101 an address increment carries into bit 1, which already changes
// (a & ~mask). For 2^n - 1 and for all-ones this is the mask itself.
uint64_t effectiveMask(uint64_t mask) {
    return mask ^ (mask & (mask + 1));
}

// Bytes from @p address to the next boundary, UINT64_MAX when there is none.
uint64_t roomToBoundary(uint64_t address, uint64_t mask) {
    if (mask == UINT64_MAX)
        return UINT64_MAX;
    return (address | mask) - address + 1;
}

template <typename Sink>
void forEachSegment(uint64_t address, uint64_t length, uint64_t maxSegmentSize, uint64_t segmentBoundaryMask,
                    Sink&& sink) {
    assert(maxSegmentSize != 0);
    assert(length == 0 || length - 1 <= UINT64_MAX - address);
    uint64_t mask = effectiveMask(segmentBoundaryMask);
    while (length != 0) {
        uint64_t seg = std::min({length, maxSegmentSize, roomToBoundary(address, mask)});
        sink(address, seg);
        address += seg;
        length -= seg;
    }
}

} // namespace

void appendSegments(SgTable& out, uint64_t address, uint64_t length, uint64_t maxSegmentSize,
                    uint64_t segmentBoundaryMask) {
    forEachSegment(address, length, maxSegmentSize, segmentBoundaryMask, [&](uint64_t a, uint64_t l) {
        out.push_back(SgEntry{a, l});
    });
}

SgTable splitSegments(uint64_t address, uint64_t length, uint64_t maxSegmentSize, uint64_t segmentBoundaryMask) {
    SgTable out;
    appendSegments(out, address, length, maxSegmentSize, segmentBoundaryMask);
    return out;
}

size_t countSegments(uint64_t address, uint64_t length, uint64_t maxSegmentSize, uint64_t segmentBoundaryMask) {
    size_t n = 0;
    forEachSegment(address, length, maxSegmentSize, segmentBoundaryMask, [&](uint64_t, uint64_t) { ++n; });
    return n;
}

SgTable coalesceChunks(std::span<const PhysChunk> chunks, uint64_t maxSegmentSize, uint64_t segmentBoundaryMask) {
    SgTable out;
    size_t i = 0;
    while (i < chunks.size()) {
        uint64_t start = chunks[i].address;
        uint64_t length = chunks[i].size;
        // Extend the run while the next chunk starts where this one ends.
        for (++i; i < chunks.size() && chunks[i].address == start + length && chunks[i].size != 0; ++i)
            length += chunks[i].size;
        appendSegments(out, start, length, maxSegmentSize, segmentBoundaryMask);
    }
    return out;
}

} // namespace cenalloc
