// SPDX-License-Identifier: MIT
// Direct (physical) segment tables and storage-versus-device checks.
#include "core/sg_build.h"

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cenalloc/units.h>

#include "base/try.h"
#include "iommu/iommu_domain.h"
#include "iommu/sg_coalesce.h"

namespace cenalloc {

Result<SgTable> splitForDevice(uint64_t address, uint64_t length, const DmaConstraints& c) {
    SgTable table = splitSegments(address, length, c.maxSegmentSize, c.segmentBoundaryMask);
    if (c.maxSegmentCount != 0 && table.size() > c.maxSegmentCount)
        return Error(EINVAL,
                     fmt::format("{} needs {} segments of at most {} but the device takes at most {}",
                                 formatSize(length), table.size(), formatSize(c.maxSegmentSize), c.maxSegmentCount));
    return table;
}

Result<SgTable> buildDirectSgTable(std::span<const PhysChunk> chunks, const DmaConstraints& c) {
    if (chunks.empty())
        return Error(EINVAL, "the buffer has no storage to map");
    // Merge physically adjacent chunks first, as sg_alloc_table_from_pages
    // does: the device sees one segment where memory happens to be contiguous.
    std::vector<PhysChunk> merged;
    merged.reserve(chunks.size());
    for (const PhysChunk& chunk : chunks) {
        if (!merged.empty() && merged.back().end() == chunk.address)
            merged.back().size += chunk.size;
        else
            merged.push_back(chunk);
    }
    for (const PhysChunk& m : merged)
        if (m.end() - 1 > c.dmaMask)
            return Error(ERANGE, fmt::format("memory at {} lies above the device's {}-bit mask",
                                             formatAddress(m.end() - 1), maskBits(c.dmaMask)));
    if (c.needsContiguous() && merged.size() > 1)
        return Error(EINVAL, fmt::format("storage is {} separate pieces but the device needs one contiguous buffer",
                                         merged.size()));
    if (merged.front().address % c.alignment != 0)
        return Error(EINVAL, fmt::format("storage starts at {}, not aligned to the {} the device needs",
                                         formatAddress(merged.front().address), formatSize(c.alignment)));
    SgTable table;
    uint64_t total = 0;
    for (const PhysChunk& m : merged) {
        appendSegments(table, m.address, m.size, c.maxSegmentSize, c.segmentBoundaryMask);
        total += m.size;
    }
    if (c.maxSegmentCount != 0 && table.size() > c.maxSegmentCount)
        return Error(EINVAL, fmt::format("{} in {} pieces needs {} segments but the device takes at most {}",
                                         formatSize(total), merged.size(), table.size(), c.maxSegmentCount));
    return table;
}

DmaConstraints directMappingLimits(const Device& device) {
    DmaConstraints c = device.constraints;
    if (!device.restrictedPool.empty()) {
        c.dmaMask = kNoLimit;
        c.coherentDmaMask = kNoLimit;
    }
    return c;
}

uint64_t iovaLimit(const DmaConstraints& c, uint64_t apertureBase, uint64_t apertureSize) {
    uint64_t apertureLast = apertureBase + (apertureSize - 1);
    return std::min(c.dmaMask, apertureLast);
}

Result<void> checkStorageForDevice(const Storage& storage, const DmaDevice& device) {
    const DmaConstraints& c = device.constraints();
    const HeapProperties& heap = storage.heap()->properties();
    if ((heap.accessBits & c.accessBits) == 0)
        return Error(EINVAL, fmt::format("heap '{}' memory has access bits {:#x}; the device reaches only {:#x}",
                                         heap.name, heap.accessBits, c.accessBits));
    // A private pool (a region its owners name in memory-region) is theirs
    // alone, whoever allocated from it: the same rule matching applies.
    if (!heap.owners.empty() && std::find(heap.owners.begin(), heap.owners.end(), device.name()) == heap.owners.end())
        return Error(EINVAL, fmt::format("heap '{}' is a pool private to {} (their memory-region): '{}' may not use it",
                                         heap.name, fmt::join(heap.owners, ", "), device.name()));
    IommuDomain* domain = device.domain();
    if (!domain) {
        CENALLOC_CHECK(buildDirectSgTable(storage.chunks(), directMappingLimits(device.description())));
        return {};
    }
    uint64_t base = domain->apertureBase();
    uint64_t limit = iovaLimit(c, base, domain->apertureSize());
    if (limit < base || limit - base + 1 < storage.size())
        return Error(EINVAL, fmt::format("the device's IOVA window in '{}' is smaller than {}", domain->name(),
                                         formatSize(storage.size())));
    // The IOVA range is contiguous and at least page-aligned, so the split
    // of a range at the window's base is the worst case for boundaries.
    CENALLOC_CHECK(splitForDevice(base, storage.size(), c));
    return {};
}

} // namespace cenalloc
