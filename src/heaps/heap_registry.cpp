// SPDX-License-Identifier: MIT
// The registry of heaps by name.
#include <cenalloc/heap_registry.h>

#include <cerrno>

#include <fmt/format.h>

namespace cenalloc {

Result<void> HeapRegistry::add(std::shared_ptr<Heap> heap) {
    if (!heap)
        return Error(EINVAL, "cannot register a null heap");
    if (heap->name().empty())
        return Error(EINVAL, "cannot register a heap without a name");
    if (byName_.count(heap->name()))
        return Error(EEXIST, fmt::format("a heap called '{}' is registered already", heap->name()));
    byName_.emplace(heap->name(), heaps_.size());
    heaps_.push_back(std::move(heap));
    return {};
}

std::shared_ptr<Heap> HeapRegistry::find(std::string_view name) const {
    auto it = byName_.find(name);
    return it == byName_.end() ? nullptr : heaps_[it->second];
}

} // namespace cenalloc
