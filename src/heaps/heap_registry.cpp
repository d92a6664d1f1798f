// SPDX-License-Identifier: MIT
// The registry of heaps by name.
#include "heaps/heap_registry.h"

#include <cerrno>

#include <fmt/format.h>

namespace cenalloc {

Result<void> HeapRegistry::add(std::shared_ptr<Heap> heap) {
    if (!heap)
        return Error(EINVAL, "cannot register a null heap");
    if (heap->name().empty())
        return Error(EINVAL, "cannot register a heap without a name");
    if (find(heap->name()))
        return Error(EEXIST, fmt::format("a heap called '{}' is registered already", heap->name()));
    heaps_.push_back(std::move(heap));
    return {};
}

std::shared_ptr<Heap> HeapRegistry::find(std::string_view name) const {
    for (const auto& heap : heaps_)
        if (std::string_view(heap->name()) == name)
            return heap;
    return nullptr;
}

} // namespace cenalloc
