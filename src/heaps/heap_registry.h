// SPDX-License-Identifier: MIT
// HeapRegistry: the named, enumerable set of heaps (what /dev/dma_heap/ lists).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/heap.h>
#include <cenalloc/result.h>

namespace cenalloc {

/// The heaps of one system, by name and in registration order.
///
/// Ownership: shares ownership of every heap added.
///
/// Thread safety: the registry is filled during setup and read-only after
/// that, like dma_heap_add() at boot. add() must not run concurrently with
/// any other call; once the last add() happens-before the readers start
/// (e.g. by starting their threads afterwards), find() and heaps() are safe to
/// call concurrently. No lock is taken, so heaps() can hand out a reference.
class HeapRegistry {
public:
    /// Register @p heap under its name. Errors: EINVAL for a null heap or an
    /// empty name, EEXIST when a heap of that name is registered already;
    /// the registry is unchanged on error.
    Result<void> add(std::shared_ptr<Heap> heap);

    /// The heap called @p name, or nullptr.
    std::shared_ptr<Heap> find(std::string_view name) const;

    /// Every heap in registration order.
    const std::vector<std::shared_ptr<Heap>>& heaps() const { return heaps_; }

private:
    // Looked up by a scan: a platform has a handful of heaps, and comparing
    // their lengths first beats a tree of string compares on every allocation.
    std::vector<std::shared_ptr<Heap>> heaps_;
};

} // namespace cenalloc
