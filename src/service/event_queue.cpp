// SPDX-License-Identifier: MIT
// A session's queue of move events, coalesced per attachment, with an eventfd for event loops.
#include "service/event_queue.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <sys/eventfd.h>
#include <unistd.h>

namespace cenalloc {

Result<EventQueue> EventQueue::create() {
    UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fd.valid())
        return Error::fromErrno("eventfd");
    return EventQueue(std::move(fd));
}

EventQueue::EventQueue(EventQueue&& other) noexcept : fd_(std::move(other.fd_)) {
    std::lock_guard lock(other.mutex_);
    events_ = std::move(other.events_);
    callback_ = std::move(other.callback_);
}

void EventQueue::settleFdLocked() {
    // Readable exactly while an event waits: set on the first, drained on
    // the last.
    uint64_t value = 0;
    if (events_.empty()) {
        [[maybe_unused]] ssize_t r = ::read(fd_.get(), &value, sizeof value);
    } else {
        value = 1;
        [[maybe_unused]] ssize_t r = ::write(fd_.get(), &value, sizeof value);
    }
}

void EventQueue::push(const MoveEvent& event) {
    std::lock_guard lock(mutex_);
    auto same = std::find_if(events_.begin(), events_.end(),
                             [&](const MoveEvent& e) { return e.attachment == event.attachment; });
    if (same != events_.end())
        events_.erase(same);
    events_.push_back(event);
    if (events_.size() == 1)
        settleFdLocked();
}

std::optional<MoveEvent> EventQueue::take() {
    std::lock_guard lock(mutex_);
    if (events_.empty())
        return std::nullopt;
    MoveEvent event = std::move(events_.front());
    events_.pop_front();
    if (events_.empty())
        settleFdLocked();
    return event;
}

size_t EventQueue::dispatch() {
    std::lock_guard order(dispatchMutex_);
    MoveEventCallback callback;
    {
        std::lock_guard lock(mutex_);
        if (!callback_)
            return events_.size();
        callback = callback_;
    }
    size_t count = 0;
    while (std::optional<MoveEvent> event = take()) {
        callback(*event);
        ++count;
    }
    return count;
}

void EventQueue::setCallback(MoveEventCallback callback) {
    std::lock_guard lock(mutex_);
    callback_ = std::move(callback);
}

size_t EventQueue::size() const {
    std::lock_guard lock(mutex_);
    return events_.size();
}

} // namespace cenalloc
