// SPDX-License-Identifier: MIT
// A session's queue of move events: one per attachment, an eventfd readable while any waits, and the callback.
#pragma once

#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>

#include <cenalloc/result.h>
#include <cenalloc/session.h>
#include <cenalloc/unique_fd.h>

namespace cenalloc {

/// Move events a session has received and not handed out yet.
///
/// At most one per attachment: a newer event for an attachment replaces the
/// one waiting (Moved and Cancelled answer a Pending; a later move
/// supersedes an earlier one), so the queue is bounded by the attachments
/// a session holds, however many moves others make. Its fd() (an eventfd)
/// is readable while an event waits.
///
/// Thread safety: every method may be called from any thread; the
/// callback runs on the thread that calls dispatch(), with no lock held.
class EventQueue {
public:
    /// Errors: errno of eventfd().
    static Result<EventQueue> create();
    EventQueue(EventQueue&& other) noexcept;

    void push(const MoveEvent& event);
    /// The oldest event, nullopt when none waits.
    std::optional<MoveEvent> take();
    /// Every waiting event handed to the callback, oldest first: how many.
    /// Without a callback they stay, and the answer is how many wait.
    size_t dispatch();
    void setCallback(MoveEventCallback callback);
    BorrowedFd fd() const { return fd_.borrow(); }
    size_t size() const;

private:
    explicit EventQueue(UniqueFd fd) : fd_(std::move(fd)) {}
    void settleFdLocked();

    UniqueFd fd_;
    mutable std::mutex mutex_;
    std::deque<MoveEvent> events_; // guarded by mutex_
    MoveEventCallback callback_;   // guarded by mutex_
    std::mutex dispatchMutex_;     // one dispatch at a time, in order
};

} // namespace cenalloc
