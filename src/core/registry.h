// SPDX-License-Identifier: MIT
// The registry of live buffers: bufinfo and lifetime bug reports.
#pragma once

#include <cstdint>
#include <map>
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
    void add(const std::shared_ptr<Buffer>& buffer);
    void remove(uint64_t id);
    /// Live buffers, by id.
    std::vector<std::shared_ptr<Buffer>> buffers() const;
    size_t liveCount() const;

    /// Record a lifetime bug (shown by bufinfo and in statistics).
    void reportBug(std::string message);
    std::vector<std::string> bugs() const;

private:
    mutable std::mutex mutex_;
    std::map<uint64_t, std::weak_ptr<Buffer>> buffers_; // guarded by mutex_
    std::vector<std::string> bugs_;                     // guarded by mutex_
};

} // namespace cenalloc
