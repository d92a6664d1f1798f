// SPDX-License-Identifier: MIT
// The exporter of eagerly allocated heap buffers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <cenalloc/buffer.h>
#include <cenalloc/heap.h>

#include "heaps/heap_request.h" // validateHeapRequest, used with every heap exporter

namespace cenalloc {

/// Ops for a buffer born with storage from @p heapName (the dma-heap way).
/// Attach checks that the existing storage serves the device (EBUSY if not).
std::unique_ptr<BufferOps> makeHeapExporter(std::string heapName);

} // namespace cenalloc
