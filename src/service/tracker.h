// SPDX-License-Identifier: MIT
// InodeWatcher: learns from the kernel when the last fd or mapping of a memfd anywhere is gone.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

#include <cenalloc/result.h>
#include <cenalloc/unique_fd.h>

#include "base/memfd_pool.h"

struct stat;

namespace cenalloc {

/// Which file a buffer fd names: what fstat() says, the key by which the
/// service recognises its buffers in any fd a client sends.
struct InodeKey {
    uint64_t device = 0;
    uint64_t inode = 0;
    auto operator<=>(const InodeKey&) const = default;
};

/// The (st_dev, st_ino) of @p fd. Errors: EBADF for a closed fd, EBADF for
/// an fd that is neither a regular file nor a dma-buf (no buffer is
/// anything else). Asks nothing of the filesystem the fd is on
/// (statx with AT_STATX_DONT_SYNC), so a client serving it (FUSE) cannot
/// make this wait.
Result<InodeKey> inodeOf(BorrowedFd fd);

/// Is closing @p fd sure not to block: a memfd, or a dma-buf? Asks nothing
/// of the filesystem the fd is on either.
bool closesWithoutBlocking(BorrowedFd fd);

/// What holds a buffer's bytes: how its end is seen.
enum class BufferFile {
    Memfd,  ///< a sealed memfd (the modelled heaps)
    DmaBuf, ///< a host kernel heap's dma-buf: see watch()
};

/// The key of a buffer the service made itself, from the fstat() its
/// Buffer::surrenderFd() made (a memfd or a host kernel dma-buf: no check).
InodeKey inodeKeyOf(const struct ::stat& st);

/// Watches memfd inodes with inotify. A memfd's inode has no name, so the
/// kernel reports IN_DELETE_SELF (then IN_IGNORED) for it exactly when its
/// last reference anywhere is gone: the last fd in any process, the last
/// memory mapping, an fd in flight in a socket. The watcher holds no
/// reference of its own, so it observes the buffer's life without
/// prolonging it. Events are queued by the kernel in the context of the
/// task dropping the last reference, before that close(), munmap() or exit
/// completes: reading them afterwards is race-free. A host kernel dma-buf
/// is seen to end by the close of its file instead (see watch()), which a
/// kernel may not report for such pseudo files: kernelReportsDmaBufCloses()
/// asks it.
///
/// Thread safety: watch() may be called concurrently with anything (one
/// syscall); the owner serialises readGone() and liveWatches().
class InodeWatcher {
public:
    /// Errors: errno of inotify_init1 (EMFILE when the per-user instance
    /// limit is reached).
    static Result<InodeWatcher> create();

    /// The inotify fd (non-blocking): readable when an inode went away.
    BorrowedFd fd() const { return fd_.borrow(); }

    /// Start watching the inode @p fd (an fd of this process, a buffer of
    /// @p kind) names. Returns the watch descriptor, which names it in
    /// readGone(). Errors: ENOSPC when fs.inotify.max_user_watches is
    /// reached, errno of inotify_add_watch otherwise.
    Result<int> watch(BorrowedFd fd, BufferFile kind = BufferFile::Memfd) const;

    /// Watch descriptors whose inode is gone, from the events queued now
    /// (never blocks). When the kernel's queue overflowed, events were lost:
    /// @p overflowed is set and the caller must ask liveWatches() which of
    /// its watches remain. Errors: errno of read().
    Result<std::vector<int>> readGone(bool& overflowed);

    /// The watch descriptors the kernel still holds, read from
    /// /proc/self/fdinfo: the recovery after an overflow.
    Result<std::set<int>> liveWatches() const;

    /// Whether this kernel reports the end of the dma-buf @p probe (which it
    /// closes) to a watch: the service offers kernel heaps only then.
    static bool kernelReportsDmaBufCloses(UniqueFd probe);

    /// Another watcher on the same inotify instance (a dup of its fd):
    /// watches either adds are read from either. Errors: errno of dup.
    Result<InodeWatcher> share() const;

private:
    explicit InodeWatcher(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

/// Watches added ahead, by the ready pool's refill thread, on the memfds it
/// makes (MemfdPreparer): a buffer served from the pool comes with its
/// watch, so the request adds none (the watch, a path walk through
/// /proc/self/fd, costs more than a raw memfd on its own). Keyed by inode:
/// the service finds a buffer's watch by the key its fstat gives.
///
/// Every memfd the service's context takes from the pool becomes a buffer
/// that the service adopts, claiming its watch; one the pool closes unused
/// is discarded before its fd closes. So a key here always names a live
/// memfd, save one taken and lost before adopt() (no path does this today),
/// which forget() clears when its death is read.
///
/// Thread safety: every method may be called concurrently (a leaf lock).
class PreparedWatches final : public MemfdPreparer {
public:
    /// Watches through @p watcher's inotify instance (a dup of its fd, so
    /// that this may outlive it).
    static Result<std::shared_ptr<PreparedWatches>> create(const InodeWatcher& watcher);

    /// Watch @p fd's inode (on the refill thread). Errors: those of
    /// InodeWatcher::watch and inodeOf.
    Result<void> prepare(BorrowedFd fd) override;
    /// Forget @p fd's watch: the pool closes it unused (its event, for a
    /// watch nobody knows, is then ignored).
    void discard(BorrowedFd fd) override;

    /// The watch made ahead for the memfd @p key names, now the caller's;
    /// nothing when none was.
    std::optional<int> claim(const InodeKey& key);
    /// Watch @p wd's inode is gone: forget it, if it is here.
    void forget(int wd);
    /// Forget every watch not in @p live (after the event queue overflowed).
    void forgetAllBut(const std::set<int>& live);
    /// Watches made ahead and not claimed.
    size_t size() const;

private:
    explicit PreparedWatches(InodeWatcher watcher) : watcher_(std::move(watcher)) {}
    const InodeWatcher watcher_;
    mutable std::mutex mutex_;
    std::map<InodeKey, int> byKey_;   // guarded by mutex_
    std::map<int, InodeKey> byWatch_; // guarded by mutex_
};

} // namespace cenalloc
