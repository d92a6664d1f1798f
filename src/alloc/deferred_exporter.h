// SPDX-License-Identifier: MIT
// The cenalloc exporter: buffers whose storage waits for their devices.
#pragma once

#include <memory>

#include <cenalloc/buffer.h>
#include <cenalloc/explain.h>

#include "alloc/allocator_state.h"

namespace cenalloc {

/// Ops of a deferred buffer of @p size bytes: attach checks the device set
/// stays satisfiable (EINVAL otherwise) or, once storage exists, that the
/// storage serves the device (EBUSY otherwise); the first map or CPU access
/// allocates from the best heap for the devices attached then.
std::unique_ptr<BufferOps> makeDeferredExporter(std::shared_ptr<const AllocatorState> state, uint64_t size,
                                                CpuAccess cpuAccess);

} // namespace cenalloc
