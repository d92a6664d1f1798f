// SPDX-License-Identifier: MIT
// A session's event queue: one event per attachment, oldest first, the eventfd readable exactly while one waits.
#include <poll.h>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "service/event_queue.h"

namespace cenalloc {
namespace {

bool readable(BorrowedFd fd) {
    pollfd p{fd.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

MoveEvent event(uint64_t attachment, uint64_t sequence, MoveEvent::Kind kind = MoveEvent::Kind::Moved) {
    return MoveEvent{kind, 7, attachment, sequence, fmt::format("move {}", sequence)};
}

TEST(EventQueue, EventsOfDifferentAttachmentsComeOutOldestFirstAndTheFdIsReadableExactlyWhileOneWaits) {
    auto queue = EventQueue::create();
    ASSERT_TRUE(queue) << queue.error().toString();
    EXPECT_FALSE(readable(queue->fd()));
    EXPECT_FALSE(queue->take());
    for (uint64_t a = 1; a <= 3; ++a) {
        queue->push(event(a, a));
        EXPECT_TRUE(readable(queue->fd()));
    }
    EXPECT_EQ(queue->size(), 3u);
    for (uint64_t a = 1; a <= 3; ++a) {
        SCOPED_TRACE(a);
        EXPECT_TRUE(readable(queue->fd()));
        auto e = queue->take();
        ASSERT_TRUE(e);
        EXPECT_EQ(*e, event(a, a));
    }
    EXPECT_FALSE(readable(queue->fd()));
    EXPECT_FALSE(queue->take());
}

TEST(EventQueue, ANewerEventOfAnAttachmentReplacesTheOneWaitingAndGoesLast) {
    auto queue = EventQueue::create();
    ASSERT_TRUE(queue);
    queue->push(event(1, 1, MoveEvent::Kind::Pending));
    queue->push(event(2, 1, MoveEvent::Kind::Pending));
    queue->push(event(1, 1, MoveEvent::Kind::Cancelled)); // answers attachment 1's Pending
    EXPECT_EQ(queue->size(), 2u);
    auto first = queue->take();
    auto second = queue->take();
    ASSERT_TRUE(first && second);
    EXPECT_EQ(*first, event(2, 1, MoveEvent::Kind::Pending));
    EXPECT_EQ(*second, event(1, 1, MoveEvent::Kind::Cancelled));
    EXPECT_FALSE(readable(queue->fd()));
}

TEST(EventQueue, HoweverManyMovesOthersMakeWhatWaitsIsBoundedByTheAttachments) {
    auto queue = EventQueue::create();
    ASSERT_TRUE(queue);
    constexpr uint64_t kAttachments = 4;
    constexpr uint64_t kMoves = 10000;
    for (uint64_t move = 1; move <= kMoves; ++move)
        for (uint64_t a = 1; a <= kAttachments; ++a)
            queue->push(event(a, move));
    EXPECT_EQ(queue->size(), kAttachments);
    // Each attachment's newest event, in the order they were last pushed.
    for (uint64_t a = 1; a <= kAttachments; ++a) {
        auto e = queue->take();
        ASSERT_TRUE(e);
        EXPECT_EQ(*e, event(a, kMoves));
    }
    EXPECT_FALSE(readable(queue->fd()));
}

TEST(EventQueue, DispatchHandsEveryWaitingEventToTheCallbackInOrderAndWithoutOneTheyStay) {
    auto queue = EventQueue::create();
    ASSERT_TRUE(queue);
    queue->push(event(1, 1));
    queue->push(event(2, 1));
    EXPECT_EQ(queue->dispatch(), 2u); // no callback: how many wait
    EXPECT_EQ(queue->size(), 2u);
    EXPECT_TRUE(readable(queue->fd()));
    std::vector<MoveEvent> seen;
    queue->setCallback([&](const MoveEvent& e) {
        seen.push_back(e);
        if (seen.size() == 1)
            queue->push(event(3, 1)); // a callback may cause more; they come in the same dispatch
    });
    EXPECT_EQ(queue->dispatch(), 3u);
    ASSERT_EQ(seen.size(), 3u);
    EXPECT_EQ(seen[0].attachment, 1u);
    EXPECT_EQ(seen[1].attachment, 2u);
    EXPECT_EQ(seen[2].attachment, 3u);
    EXPECT_EQ(queue->size(), 0u);
    EXPECT_FALSE(readable(queue->fd()));
    EXPECT_EQ(queue->dispatch(), 0u);
}

TEST(EventQueue, AMovedQueueKeepsItsEventsAndItsFd) {
    auto queue = EventQueue::create();
    ASSERT_TRUE(queue);
    queue->push(event(1, 1));
    const int fd = queue->fd().get();
    EventQueue moved(std::move(*queue));
    EXPECT_EQ(moved.fd().get(), fd);
    EXPECT_TRUE(readable(moved.fd()));
    auto e = moved.take();
    ASSERT_TRUE(e);
    EXPECT_EQ(*e, event(1, 1));
    EXPECT_FALSE(readable(moved.fd()));
}

} // namespace
} // namespace cenalloc
