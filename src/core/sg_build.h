// SPDX-License-Identifier: MIT
// Building DMA segment tables from storage, and checking storage against a device.
#pragma once

#include <span>

#include <cenalloc/buffer.h>
#include <cenalloc/device.h>
#include <cenalloc/heap.h>
#include <cenalloc/platform.h>
#include <cenalloc/result.h>

namespace cenalloc {

/// The segment table a device without an IOMMU gets for @p chunks: DMA
/// address = physical address; physically adjacent chunks merge, then
/// segments split at maxSegmentSize and at segment boundaries. Refuses
/// (never returns) a table the device cannot use: ERANGE when memory lies
/// above the device's mask, EINVAL for contiguity, alignment or segment
/// count, with the limit named.
Result<SgTable> buildDirectSgTable(std::span<const PhysChunk> chunks, const DmaConstraints& constraints);

/// The limits a direct (no IOMMU) mapping for @p device is built under: its
/// own, except that a device with a restricted-dma-pool reaches the buffer
/// only through swiotlb's bounce copies into that pool, so its address mask
/// limits the pool, not the buffer. (The model hands such a device the
/// buffer's own addresses: it does not model the copy.)
DmaConstraints directMappingLimits(const Device& device);

/// Cut one DMA-contiguous range into segments that respect @p constraints'
/// max segment size and boundary, and check their count. EINVAL when the
/// count exceeds maxSegmentCount.
Result<SgTable> splitForDevice(uint64_t address, uint64_t length, const DmaConstraints& constraints);

/// Whether storage that already exists can serve @p device: access bits,
/// and either the direct table (no IOMMU) or the IOVA window and segment
/// limits (behind an IOMMU). The error says why not.
Result<void> checkStorageForDevice(const Storage& storage, const DmaDevice& device);

/// The highest IOVA a device behind @p iommu can use: its mask within the aperture.
uint64_t iovaLimit(const DmaConstraints& constraints, uint64_t apertureBase, uint64_t apertureSize);

} // namespace cenalloc
