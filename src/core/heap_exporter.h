// SPDX-License-Identifier: MIT
// The exporter of eagerly allocated heap buffers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <cenalloc/heap.h>

#include "core/buffer_internal.h"

namespace cenalloc {

/// Ops for a buffer born with storage from @p heap (the dma-heap way).
/// Attach checks that the existing storage serves the device (EBUSY if
/// not). A host kernel heap's buffer (HeapKind::Kernel) refuses every
/// modelled device (EOPNOTSUPP) and has the kernel sync it for CPU access.
std::unique_ptr<BufferOps> makeHeapExporter(const Heap& heap);

} // namespace cenalloc
