// SPDX-License-Identifier: MIT
// FdCloser: closes fds a client sent that are not buffers, on a thread of its own, because such a close can block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include <cenalloc/unique_fd.h>

namespace cenalloc {

/// Closing an fd can block for as long as whoever made it likes: a TCP
/// socket with SO_LINGER and unsent data, a file on a FUSE mount its
/// client serves (FUSE_FLUSH), a network filesystem. A worker must never
/// do that for a client, so every fd a client sends that is not a buffer
/// (a memfd or a dma-buf, whose close never waits: closesWithoutBlocking())
/// is closed here, and counted against the client's uid until it is.
///
/// Each uid has its own queue, closed in order by a thread of its own, so
/// a close that blocks holds up only the fds of the uid that sent it: the
/// other uids' are closed meanwhile and their counts go down. The threads
/// are bounded (16 for all uids); when they are all blocked, further uids'
/// fds wait for one of them (the uid's count grows, and cuts it off,
/// as for a blocked uid).
///
/// Thread safety: all methods may be called concurrently. The destructor
/// does not wait for a close that blocks: the threads finish on their own.
class FdCloser {
public:
    FdCloser();
    ~FdCloser();
    FdCloser(const FdCloser&) = delete;
    FdCloser& operator=(const FdCloser&) = delete;

    /// Close @p fd soon, charged to @p uid until it is closed.
    void close(UniqueFd fd, uint32_t uid);
    /// Fds of @p uid handed over and not closed yet.
    size_t pending(uint32_t uid) const;

private:
    struct State;
    static void closeAll(const std::shared_ptr<State>& state, uint32_t uid);
    std::shared_ptr<State> state_;
};

} // namespace cenalloc
