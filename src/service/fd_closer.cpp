// SPDX-License-Identifier: MIT
// FdCloser: a queue of fds per uid, each served by a thread of its own (a bounded number of them).
#include "service/fd_closer.h"

#include <deque>
#include <map>
#include <mutex>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <utility>

namespace cenalloc {

namespace {

// Threads closing at once, for all uids together: as many uids can have a
// close blocked before a further uid's fds wait for one of them.
constexpr size_t kMaxCloserThreads = 16;

} // namespace

struct FdCloser::State {
    struct Queue {
        std::deque<int> fds;
        size_t pending = 0;  // queued or being closed
        bool served = false; // a thread is working through it
    };
    mutable std::mutex mutex;
    std::map<uint32_t, Queue> queues; // by uid; guarded by mutex
    size_t threads = 0;               // guarded by mutex
};

void FdCloser::closeAll(const std::shared_ptr<State>& state, uint32_t uid) {
    std::unique_lock lock(state->mutex);
    for (;;) {
        State::Queue* queue = &state->queues[uid];
        while (!queue->fds.empty()) {
            int fd = queue->fds.front();
            queue->fds.pop_front();
            lock.unlock();
            ::close(fd); // may block, for this uid only: that is why it is here
            lock.lock();
            queue = &state->queues[uid]; // the map may have changed meanwhile
            queue->pending -= 1;
        }
        queue->served = false;
        if (queue->pending == 0)
            state->queues.erase(uid);
        // A uid whose fds wait because every thread was busy comes next.
        auto next = state->queues.begin();
        while (next != state->queues.end() && (next->second.served || next->second.fds.empty()))
            ++next;
        if (next == state->queues.end()) {
            state->threads -= 1;
            return;
        }
        next->second.served = true;
        uid = next->first;
    }
}

FdCloser::FdCloser() : state_(std::make_shared<State>()) {}

// Threads are detached: a close that blocks for an hour must not hold up
// the daemon's stop. Each keeps the state alive, and leaves when it has
// nothing more to close.
FdCloser::~FdCloser() = default;

void FdCloser::close(UniqueFd fd, uint32_t uid) {
    if (!fd.valid())
        return;
    std::lock_guard lock(state_->mutex);
    State::Queue& queue = state_->queues[uid];
    queue.fds.push_back(fd.release());
    queue.pending += 1;
    if (queue.served || state_->threads >= kMaxCloserThreads)
        return; // its thread, or the next that is free, closes it
    queue.served = true;
    state_->threads += 1;
    try {
        std::thread([state = state_, uid] { closeAll(state, uid); }).detach();
    } catch (const std::system_error&) {
        // No thread now: the next close() or a thread that finishes
        // serves the queue.
        queue.served = false;
        state_->threads -= 1;
    }
}

size_t FdCloser::pending(uint32_t uid) const {
    std::lock_guard lock(state_->mutex);
    auto it = state_->queues.find(uid);
    return it == state_->queues.end() ? 0 : it->second.pending;
}

} // namespace cenalloc
