// SPDX-License-Identifier: MIT
// Heap-driven moves: a CMA heap making room for an allocation by moving movable buffers out of its way.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include <cenalloc/buffer.h>
#include <cenalloc/context.h>
#include <cenalloc/heap.h>
#include <cenalloc/result.h>

namespace cenalloc {

class BufferRegistry;

/// The third trigger of a migration (after an attach the storage does not
/// serve and an explicit migrate): the heap's own need. A CMA heap that has
/// the bytes but no run long enough for an allocation, or a range an
/// operator wants cleared (Context::evacuate), moves the movable buffers in
/// its way to other places that serve their devices, under the rules of
/// every migration: dynamic importers are told, and a pin, a static
/// mapping, an importer that must acknowledge first or an exporter whose
/// buffers stay put keeps a buffer where it is (docs/heap-moves.md).
///
/// Thread safety: all methods may be called concurrently; the moves of one
/// context are made one heap at a time.
class HeapMover {
public:
    explicit HeapMover(std::shared_ptr<BufferRegistry> registry) : registry_(std::move(registry)) {}

    /// Storage of @p length bytes (non-zero, page-aligned) from @p heap
    /// within @p limits. When @p heap is a CMA heap of the model with no
    /// room, the movable buffers of the window that needs the fewest bytes
    /// moved (the lowest such window on a tie) move out of it first; when
    /// no set of moves makes room, nothing moves.
    /// @p self: the buffer the storage is for, when the caller holds its
    /// lock (a deferred buffer's exporter): it is never moved, and the
    /// notifications of the buffers moved are queued on it for its public
    /// method to deliver once unlocked. Without it they are delivered
    /// before this returns, with no lock held.
    /// Errors: the heap's (ENOMEM), saying why no moves make room.
    Result<Storage> allocate(const std::shared_ptr<Heap>& heap, uint64_t length, const StorageLimits& limits,
                             Buffer* self = nullptr);

    /// Context::evacuate for @p heap (a CMA heap of the model) and @p range
    /// (page multiples inside it; checked by the caller).
    Result<Evacuation> evacuate(const std::shared_ptr<Heap>& heap, PhysChunk range);

private:
    std::shared_ptr<BufferRegistry> registry_;
    std::mutex mutex_; // held while a heap of the context moves buffers
};

/// Whether @p heap's buffers may be moved for its own need: a CMA heap of
/// the model (the kernel migrates movable pages out of CMA, not out of a
/// carveout; a placed kernel heap's memory is the kernel's).
bool heapMovesBuffers(const Heap& heap);

} // namespace cenalloc
