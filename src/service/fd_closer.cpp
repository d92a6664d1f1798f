// SPDX-License-Identifier: MIT
// FdCloser: a queue of fds and one thread that closes them.
#include "service/fd_closer.h"

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
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

} // namespace cenalloc
