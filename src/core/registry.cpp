// SPDX-License-Identifier: MIT
// BufferRegistry.
#include "core/registry.h"

#include <algorithm>
#include <cassert>

namespace cenalloc {

namespace {
// Enough history to debug a leak without growing without bound.
constexpr size_t kMaxBugs = 256;
// Tombstones tolerated before a compaction, which runs only once they
// outnumber the live slots too: each compaction is paid for by as many
// removals as it walks slots.
constexpr size_t kMinTombstonesToCompact = 64;

constexpr auto kIdBelow = [](const auto& slot, uint64_t id) { return slot.id < id; };
} // namespace

void BufferRegistry::add(const std::shared_ptr<Buffer>& buffer) {
    const uint64_t id = buffer->id();
    std::lock_guard lock(mutex_);
    // Ids are handed out in increasing order, so the new slot almost always
    // goes at the end; concurrent creators may register slightly out of order.
    auto at = slots_.end();
    if (!slots_.empty() && slots_.back().id > id)
        at = std::lower_bound(slots_.begin(), slots_.end(), id, kIdBelow);
    assert(at == slots_.end() || at->id != id);
    slots_.insert(at, Slot{id, false, buffer});
    ++live_;
}

void BufferRegistry::remove(uint64_t id) {
    std::lock_guard lock(mutex_);
    auto it = std::lower_bound(slots_.begin(), slots_.end(), id, kIdBelow);
    if (it == slots_.end() || it->id != id || it->removed)
        return;
    it->removed = true;
    it->buffer.reset();
    --live_;
    trimLocked();
}

void BufferRegistry::trimLocked() {
    while (!slots_.empty() && slots_.back().removed)
        slots_.pop_back();
    const size_t tombstones = slots_.size() - live_;
    if (tombstones >= kMinTombstonesToCompact && tombstones > live_)
        std::erase_if(slots_, [](const Slot& s) { return s.removed; });
}

std::vector<std::shared_ptr<Buffer>> BufferRegistry::buffers() const {
    std::vector<std::shared_ptr<Buffer>> out;
    {
        std::lock_guard lock(mutex_);
        out.reserve(live_);
        for (const Slot& slot : slots_)
            if (!slot.removed)
                if (auto buffer = slot.buffer.lock())
                    out.push_back(std::move(buffer));
    }
    // The caller drops these outside our lock: dropping the last reference
    // runs ~Buffer, which calls remove().
    return out;
}

size_t BufferRegistry::liveCount() const {
    std::lock_guard lock(mutex_);
    return live_;
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
