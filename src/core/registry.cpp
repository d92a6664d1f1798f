// SPDX-License-Identifier: MIT
// BufferRegistry.
#include "core/registry.h"

namespace cenalloc {

namespace {
// Enough history to debug a leak without growing without bound.
constexpr size_t kMaxBugs = 256;
} // namespace

void BufferRegistry::add(const std::shared_ptr<Buffer>& buffer) {
    std::lock_guard lock(mutex_);
    buffers_[buffer->id()] = buffer;
}

void BufferRegistry::remove(uint64_t id) {
    std::lock_guard lock(mutex_);
    buffers_.erase(id);
}

std::vector<std::shared_ptr<Buffer>> BufferRegistry::buffers() const {
    std::vector<std::shared_ptr<Buffer>> out;
    {
        std::lock_guard lock(mutex_);
        out.reserve(buffers_.size());
        for (const auto& [id, weak] : buffers_)
            if (auto buffer = weak.lock())
                out.push_back(std::move(buffer));
    }
    // The caller drops these outside our lock: dropping the last reference
    // runs ~Buffer, which calls remove().
    return out;
}

size_t BufferRegistry::liveCount() const {
    std::lock_guard lock(mutex_);
    return buffers_.size();
}

void BufferRegistry::reportBug(std::string message) {
    std::lock_guard lock(mutex_);
    if (bugs_.size() == kMaxBugs)
        bugs_.erase(bugs_.begin());
    bugs_.push_back(std::move(message));
}

std::vector<std::string> BufferRegistry::bugs() const {
    std::lock_guard lock(mutex_);
    return bugs_;
}

} // namespace cenalloc
