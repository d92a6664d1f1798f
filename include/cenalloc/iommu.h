// SPDX-License-Identifier: MIT
// What an IOMMU domain reports: cache counters, IOVA usage and its mappings.
#pragma once

#include <cstdint>
#include <string>

namespace cenalloc {

/// Counters and usage of one IOMMU domain (one per platform IOMMU).
struct IommuDomainStats {
    std::string name;             ///< the domain: the IOMMU's name, ":group" for an IOMMU group of its own
    uint64_t pageSize = 0;        ///< IOMMU page size in bytes
    uint64_t apertureBase = 0;    ///< first IOVA of the domain
    uint64_t apertureSize = 0;    ///< bytes of IOVA space
    uint64_t hits = 0;            ///< map requests served by a cached mapping
    uint64_t misses = 0;          ///< map requests that built a new mapping
    uint64_t evictions = 0;       ///< unused cached mappings destroyed under IOVA pressure
    uint64_t faults = 0;          ///< DMA faults reported against the domain
    uint64_t usedIovaBytes = 0;   ///< IOVA reserved by live mappings, in use or cached
    uint64_t cachedIovaBytes = 0; ///< freed IOVA waiting in the allocator's size-class caches (free)
    uint64_t mappedBytes = 0;     ///< bytes mapped in the page table
    uint64_t mappingCount = 0;    ///< live mappings, in use or cached
    uint64_t inUseCount = 0;      ///< live mappings held by at least one user
};

/// One live mapping of a domain, for listings.
struct IommuMappingInfo {
    uint64_t bufferId = 0;
    uint64_t iova = 0;     ///< first IOVA
    uint64_t size = 0;     ///< bytes mapped
    uint64_t iovaSize = 0; ///< IOVA bytes reserved (the size rounded as the allocator does)
    uint32_t useCount = 0; ///< 0 = cached, evictable
    bool orphaned = false; ///< its buffer was released while it was in use
};

} // namespace cenalloc
