// SPDX-License-Identifier: MIT
// Physical chunks and DMA segments: where a buffer's storage lies, and how a device sees it.
#pragma once

#include <cstdint>
#include <vector>

namespace cenalloc {

/// One physically contiguous piece of a buffer's storage, in the simulated
/// physical address space.
struct PhysChunk {
    uint64_t address = 0;
    uint64_t size = 0;
    uint64_t end() const { return address + size; }
    bool operator==(const PhysChunk&) const = default;
};

/// One scatter-gather segment as a device sees it: a DMA address (an IOVA
/// behind an IOMMU, else the physical address) and a length.
struct SgEntry {
    uint64_t dmaAddress = 0;
    uint64_t length = 0;
    uint64_t end() const { return dmaAddress + length; }
    bool operator==(const SgEntry&) const = default;
};
/// A device's segment table: what mapping an attachment gives.
using SgTable = std::vector<SgEntry>;

} // namespace cenalloc
