// SPDX-License-Identifier: MIT
// Physical chunks: the simulated placement of a buffer's storage.
#pragma once

#include <cstdint>

namespace cenalloc {

/// One physically contiguous piece of a buffer's storage, in the simulated
/// physical address space.
struct PhysChunk {
    uint64_t address = 0;
    uint64_t size = 0;
    uint64_t end() const { return address + size; }
    bool operator==(const PhysChunk&) const = default;
};

} // namespace cenalloc
