// SPDX-License-Identifier: MIT
// The cenalloc exporter: buffers whose storage waits for their devices.
#pragma once

#include <memory>
#include <vector>

#include <cenalloc/buffer.h>
#include <cenalloc/explain.h>

#include "alloc/allocator_state.h"
#include "core/buffer_internal.h"

namespace cenalloc {

/// Ops of a deferred buffer of @p size bytes: attach checks the device set
/// stays satisfiable (EINVAL otherwise) or, once storage exists, that the
/// storage serves the device (EBUSY otherwise); the first map or CPU access
/// allocates from the best heap for the devices attached then.
std::unique_ptr<BufferOps> makeDeferredExporter(std::shared_ptr<const AllocatorState> state, uint64_t size,
                                                CpuAccess cpuAccess);
/// The same, choosing only among @p heaps (pointers into
/// state->heapProperties): the others are invisible to the buffer.
std::unique_ptr<BufferOps> makeDeferredExporter(std::shared_ptr<const AllocatorState> state, uint64_t size,
                                                CpuAccess cpuAccess, std::vector<const HeapProperties*> heaps);

} // namespace cenalloc
