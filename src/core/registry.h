// SPDX-License-Identifier: MIT
// The registry of live buffers: bufinfo and lifetime bug reports.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <cenalloc/buffer.h>

namespace cenalloc {

/// Every live buffer of a context, for bufinfo-style listings, and the
/// lifetime bugs seen (a buffer released while devices were still attached).
///
/// Thread safety: all methods may be called concurrently.
class BufferRegistry {
public:
    /// Register @p buffer under its id. An id is registered at most once.
    void add(const std::shared_ptr<Buffer>& buffer);
    /// Forget buffer @p id (called by ~Buffer); unknown ids are ignored.
    void remove(uint64_t id);
    /// Live buffers, by id.
    std::vector<std::shared_ptr<Buffer>> buffers() const;
    size_t liveCount() const;

    /// Record a lifetime bug (shown by bufinfo and in statistics).
    void reportBug(std::string message);
    std::vector<std::string> bugs() const;

private:
    /// One registered buffer. A removed one stays as a tombstone (its id
    /// kept, so the slots stay sorted) until the tail is trimmed or the
    /// tombstones are compacted away.
    struct Slot {
        uint64_t id = 0;
        bool removed = false;
        std::weak_ptr<Buffer> buffer;
    };
    void trimLocked();

    mutable std::mutex mutex_;
    // Sorted by id. A flat vector rather than a map: registering and
    // forgetting a buffer then allocates nothing in the steady state (ids
    // grow, so a new buffer is appended and the newest dies at the tail).
    std::vector<Slot> slots_;       // guarded by mutex_
    size_t live_ = 0;               // guarded by mutex_; slots not removed
    std::vector<std::string> bugs_; // guarded by mutex_
};

} // namespace cenalloc
