// SPDX-License-Identifier: MIT
// FdCloser: a queue of fds and one thread that closes them; which fds close without blocking.
#include "service/fd_closer.h"

#include <condition_variable>
#include <deque>
#include <fcntl.h>
#include <linux/magic.h>
#include <map>
#include <mutex>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <thread>
#include <unistd.h>
#include <utility>

namespace cenalloc {

struct FdCloser::State {
    mutable std::mutex mutex;
    std::condition_variable wake;
    std::deque<std::pair<int, uint32_t>> queue; // (fd, uid)
    std::map<uint32_t, size_t> pending;         // by uid, queued or being closed
    bool stopping = false;
};

void FdCloser::closeAll(const std::shared_ptr<State>& state) {
    std::unique_lock lock(state->mutex);
    for (;;) {
        state->wake.wait(lock, [&] { return state->stopping || !state->queue.empty(); });
        if (state->queue.empty())
            return; // stopping, and nothing left
        auto [fd, uid] = state->queue.front();
        state->queue.pop_front();
        lock.unlock();
        ::close(fd); // may block: that is why it is here
        lock.lock();
        if (--state->pending[uid] == 0)
            state->pending.erase(uid);
    }
}

FdCloser::FdCloser() : state_(std::make_shared<State>()) {
    // Detached: a close that blocks for an hour must not hold up the
    // daemon's stop. The thread keeps the state alive.
    std::thread([state = state_] { closeAll(state); }).detach();
}

FdCloser::~FdCloser() {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
    state_->wake.notify_all();
}

void FdCloser::close(UniqueFd fd, uint32_t uid) {
    if (!fd.valid())
        return;
    std::lock_guard lock(state_->mutex);
    state_->queue.emplace_back(fd.release(), uid);
    state_->pending[uid] += 1;
    state_->wake.notify_one();
}

size_t FdCloser::pending(uint32_t uid) const {
    std::lock_guard lock(state_->mutex);
    auto it = state_->pending.find(uid);
    return it == state_->pending.end() ? 0 : it->second;
}

bool closesWithoutBlocking(BorrowedFd fd) {
    // Seals exist only on shmem (memfd) and hugetlbfs files; asking is a
    // lookup in the file, not a call into a filesystem.
    if (::fcntl(fd.get(), F_GET_SEALS) >= 0)
        return true;
    // A dma-buf's inode has no file type. Every file a FUSE server can make
    // has one, so only pseudo-filesystems, whose statfs answers at once,
    // get the fstatfs.
    struct statx st {};
    if (::statx(fd.get(), "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE, &st) != 0 || (st.stx_mode & S_IFMT) != 0)
        return false;
    struct statfs fs {};
    return ::fstatfs(fd.get(), &fs) == 0 && fs.f_type == DMA_BUF_MAGIC;
}

} // namespace cenalloc
