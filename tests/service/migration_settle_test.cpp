// SPDX-License-Identifier: MIT
// How a waited-for move settles through cenallocd: unmap and release as acknowledgements, a cancel after some
// acknowledgements, the mover's quota, pins, the per-connection event bound, and attach order.
#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cenalloc/session.h>
#include <cenalloc/units.h>

#include "support/daemon.h"
#include "support/fds.h"
#include "support/service.h"
#include "support/wait.h"

namespace cenalloc {
namespace {

using test::baselineOf;
using test::configOf;

constexpr uint64_t kSize = 1 * MiB;
constexpr int kWaitMs = static_cast<int>(test::kPatience.count());

std::string heapOf(Session& session, BorrowedFd buffer) {
    auto info = session.describe(buffer);
    EXPECT_TRUE(info) << info.error().toString();
    return info ? info->heap : std::string();
}

/// The in-process daemon, an observer's baseline, and an importer session
/// holding a buffer of pattern bytes with a dynamic GPU attachment mapped
/// (storage on the system heap).
struct Scene {
    explicit Scene(const std::string& yaml) : daemon(configOf(yaml)) {
        observer = daemon.connect();
        importer = daemon.connect();
        mover = daemon.connect();
        if (!observer || !importer || !mover)
            return;
        baseline = baselineOf(*observer);
        auto fd = importer->create(kSize, "frame");
        EXPECT_TRUE(fd) << fd.error().toString();
        if (!fd)
            return;
        buffer = std::move(*fd);
        EXPECT_TRUE(test::fillPattern(buffer.get(), kSize));
        auto a = importer->attach(buffer, "gpu", SessionAttachOptions{true});
        EXPECT_TRUE(a) << a.error().toString();
        gpu = a ? *a : 0;
        auto m = importer->map(gpu, DmaDirection::Bidirectional);
        EXPECT_TRUE(m) << m.error().toString();
        mapping = m ? m->id : 0;
        ok = a && m && heapOf(*importer, buffer) == "system";
    }
    /// The mover's migrate to CMA, on its own thread (it waits for the importer).
    void migrateInBackground() {
        moving = std::thread([this] { moved = mover->migrate(buffer, "linux,cma"); });
    }
    Result<void> joinMove() {
        if (moving.joinable())
            moving.join();
        return moved;
    }
    /// The next event of @p session, failing the test when none comes.
    static MoveEvent nextOf(Session& session) {
        auto e = session.waitEvent(kWaitMs);
        EXPECT_TRUE(e && *e) << (e ? "no event" : e.error().toString());
        return e && *e ? **e : MoveEvent{};
    }
    /// Everything released: back to the baseline (heaps, IOVA spaces).
    void finish() {
        if (moving.joinable())
            moving.join();
        importer.reset();
        mover.reset();
        buffer.reset();
        test::expectBackTo(*observer, baseline);
    }
    ~Scene() {
        if (moving.joinable())
            moving.join();
    }

    test::InProcessDaemon daemon;
    std::unique_ptr<Session> observer, importer, mover;
    test::Baseline baseline;
    UniqueFd buffer;
    uint64_t gpu = 0;
    uint64_t mapping = 0;
    bool ok = false;
    std::thread moving;
    Result<void> moved = Error(EINVAL, "not run");
};

TEST(MigrationSettle, UnmappingTheLastMappingAnswersAPendingMoveAndTheImporterIsToldItMoved) {
    Scene scene("move_ack_timeout_ms: 60000\n");
    ASSERT_TRUE(scene.ok);
    scene.migrateInBackground();
    MoveEvent pending = Scene::nextOf(*scene.importer);
    EXPECT_EQ(pending.kind, MoveEvent::Kind::Pending);
    EXPECT_EQ(pending.attachment, scene.gpu);
    EXPECT_EQ(pending.sequence, 1u);
    ASSERT_TRUE(scene.importer->unmap(scene.mapping)); // no ack-move: the unmap is the answer
    auto moved = scene.joinMove();
    ASSERT_TRUE(moved) << moved.error().toString();
    MoveEvent after = Scene::nextOf(*scene.importer);
    EXPECT_EQ(after.kind, MoveEvent::Kind::Moved);
    EXPECT_EQ(after.sequence, 1u);
    EXPECT_EQ(heapOf(*scene.importer, scene.buffer), "linux,cma");
    EXPECT_TRUE(test::holdsPattern(scene.buffer.get(), kSize));
    EXPECT_EQ(scene.importer->acknowledgeMove(scene.gpu, 1).error().code(), ENOENT) << "a late ack answers nothing";
    ASSERT_TRUE(scene.importer->detach(scene.gpu));
    scene.finish();
}

// The per-uid count of unanswered move events (Quota::unackedMoves) is
// given back when the importer's client goes mid-move: its uid, at a bound
// of one, is waited for again by the next move (a count left behind would
// refuse it with "is not waited for").
TEST(MigrationSettle, AnImporterGoneMidMoveGivesItsUidsUnacknowledgedCountBack) {
    Scene scene("move_ack_timeout_ms: 60000\nquota:\n  unacked_moves: 1\n");
    ASSERT_TRUE(scene.ok);
    scene.migrateInBackground();
    EXPECT_EQ(Scene::nextOf(*scene.importer).kind, MoveEvent::Kind::Pending);
    scene.importer.reset(); // gone without an answer: the move goes on
    auto moved = scene.joinMove();
    ASSERT_TRUE(moved) << moved.error().toString();

    // The same uid's next importer, on another buffer, is waited for.
    auto importer = scene.daemon.connect();
    ASSERT_NE(importer, nullptr);
    auto fd = importer->create(kSize, "second");
    ASSERT_TRUE(fd) << fd.error().toString();
    auto gpu = importer->attach(*fd, "gpu", SessionAttachOptions{true});
    ASSERT_TRUE(gpu) << gpu.error().toString();
    auto mapping = importer->map(*gpu, DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping) << mapping.error().toString();
    Result<void> second = Error(EINVAL, "not run");
    std::thread moving([&] { second = scene.mover->migrate(*fd, "linux,cma"); });
    MoveEvent pending = Scene::nextOf(*importer);
    EXPECT_EQ(pending.kind, MoveEvent::Kind::Pending) << "the uid's count was not given back";
    if (pending.kind == MoveEvent::Kind::Pending) {
        EXPECT_TRUE(importer->acknowledgeMove(*gpu, pending.sequence));
    }
    moving.join();
    ASSERT_TRUE(second) << second.error().toString();
    importer.reset();
    fd->reset();
    scene.finish();
}

TEST(MigrationSettle, ReleasingTheBufferAnswersAPendingMoveAndTheReleasedAttachmentIsToldNothingMore) {
    Scene scene("move_ack_timeout_ms: 60000\n");
    ASSERT_TRUE(scene.ok);
    scene.migrateInBackground();
    EXPECT_EQ(Scene::nextOf(*scene.importer).kind, MoveEvent::Kind::Pending);
    ASSERT_TRUE(scene.importer->release(scene.buffer));
    auto moved = scene.joinMove();
    ASSERT_TRUE(moved) << moved.error().toString();
    EXPECT_EQ(heapOf(*scene.mover, scene.buffer), "linux,cma");
    EXPECT_TRUE(test::holdsPattern(scene.buffer.get(), kSize));
    auto none = scene.importer->nextEvent();
    ASSERT_TRUE(none);
    EXPECT_FALSE(*none) << "released: its attachment is gone, " << moveEventKindName((*none)->kind);
    scene.finish();
}

TEST(MigrationSettle, AMoveAbandonedAfterSomeAcknowledgementsSendsCancelledToThoseThatAcknowledged) {
    // A short bound: the second importer never answers and the move gives up.
    Scene scene("move_ack_timeout_ms: 200\n");
    ASSERT_TRUE(scene.ok);
    auto silent = scene.daemon.connect();
    ASSERT_NE(silent, nullptr);
    auto silentGpu = silent->attach(scene.buffer, "gpu", SessionAttachOptions{true});
    ASSERT_TRUE(silentGpu) << silentGpu.error().toString();
    auto silentMapping = silent->map(*silentGpu, DmaDirection::Bidirectional);
    ASSERT_TRUE(silentMapping);
    scene.migrateInBackground();
    MoveEvent pending = Scene::nextOf(*scene.importer);
    ASSERT_EQ(pending.kind, MoveEvent::Kind::Pending);
    ASSERT_TRUE(scene.importer->acknowledgeMove(scene.gpu, pending.sequence));
    auto moved = scene.joinMove();
    ASSERT_FALSE(moved);
    EXPECT_EQ(moved.error().code(), EBUSY);
    EXPECT_NE(moved.error().message().find("did not acknowledge"), std::string::npos) << moved.error().message();
    MoveEvent cancelled = Scene::nextOf(*scene.importer);
    EXPECT_EQ(cancelled.kind, MoveEvent::Kind::Cancelled);
    EXPECT_EQ(cancelled.attachment, scene.gpu);
    EXPECT_EQ(cancelled.sequence, 0u) << "the sequence as it stays";
    // Nothing moved: the importer's mapping is valid still, the bytes where they were.
    EXPECT_EQ(heapOf(*scene.importer, scene.buffer), "system");
    EXPECT_TRUE(test::holdsPattern(scene.buffer.get(), kSize));
    EXPECT_TRUE(scene.importer->unmap(scene.mapping));
    EXPECT_TRUE(scene.importer->detach(scene.gpu));
    EXPECT_TRUE(silent->unmap(silentMapping->id));
    EXPECT_TRUE(silent->detach(*silentGpu));
    silent.reset();
    scene.finish();
}

TEST(MigrationSettle, TheNewStorageIsChargedToTheMoverWhileBothExistAndEdquotChangesNothing) {
    // 2 MiB: the 1 MiB buffer and a 512 KiB one leave no room for a second MiB.
    Scene scene("quota: {bytes: 2M}\nmove_ack_timeout_ms: 60000\n");
    ASSERT_TRUE(scene.ok);
    ASSERT_TRUE(scene.importer->unmap(scene.mapping));
    auto extra = scene.mover->allocate("system", 512 * KiB);
    ASSERT_TRUE(extra) << extra.error().toString();
    const auto before = baselineOf(*scene.observer);
    auto refused = scene.mover->migrate(scene.buffer, "linux,cma");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), EDQUOT) << refused.error().toString();
    EXPECT_EQ(baselineOf(*scene.observer), before) << "nothing allocated, nothing moved";
    EXPECT_EQ(heapOf(*scene.mover, scene.buffer), "system");
    EXPECT_FALSE(scene.importer->nextEvent().value()) << "nobody told of a move that did not happen";
    // With the room back, the same move goes.
    extra->reset();
    auto moved = scene.mover->migrate(scene.buffer, "linux,cma");
    ASSERT_TRUE(moved) << moved.error().toString();
    EXPECT_EQ(heapOf(*scene.mover, scene.buffer), "linux,cma");
    EXPECT_TRUE(test::holdsPattern(scene.buffer.get(), kSize));
    ASSERT_TRUE(scene.importer->detach(scene.gpu));
    scene.finish();
}

TEST(MigrationSettle, ARemotePinBlocksTheMoveAndItsUnpinLetsItGo) {
    Scene scene("move_ack_timeout_ms: 60000\n");
    ASSERT_TRUE(scene.ok);
    ASSERT_TRUE(scene.importer->pin(scene.gpu));
    auto blocked = scene.mover->migrate(scene.buffer, "linux,cma");
    ASSERT_FALSE(blocked);
    EXPECT_EQ(blocked.error().code(), EBUSY);
    EXPECT_NE(blocked.error().message().find("'gpu'"), std::string::npos) << blocked.error().message();
    EXPECT_NE(blocked.error().message().find("pinned it"), std::string::npos) << blocked.error().message();
    auto forecast = scene.mover->forecast(scene.buffer, "display");
    ASSERT_TRUE(forecast);
    EXPECT_EQ(forecast->outcome, AttachForecast::Outcome::Blocked);
    EXPECT_FALSE(scene.importer->nextEvent().value()) << "a refused move tells nobody";
    ASSERT_TRUE(scene.importer->unpin(scene.gpu));
    EXPECT_EQ(scene.importer->unpin(scene.gpu).error().code(), EINVAL) << "no pin left";
    scene.migrateInBackground();
    MoveEvent pending = Scene::nextOf(*scene.importer);
    ASSERT_EQ(pending.kind, MoveEvent::Kind::Pending);
    ASSERT_TRUE(scene.importer->acknowledgeMove(scene.gpu, pending.sequence));
    auto moved = scene.joinMove();
    ASSERT_TRUE(moved) << moved.error().toString();
    EXPECT_EQ(Scene::nextOf(*scene.importer).kind, MoveEvent::Kind::Moved);
    EXPECT_EQ(heapOf(*scene.importer, scene.buffer), "linux,cma");
    EXPECT_TRUE(scene.importer->unmap(scene.mapping));
    ASSERT_TRUE(scene.importer->detach(scene.gpu));
    scene.finish();
}

TEST(MigrationSettle, AConnectionThatNeverTakesItsEventsHoldsOneAnAttachmentHoweverManyMoves) {
    Scene scene("move_ack_timeout_ms: 60000\n");
    ASSERT_TRUE(scene.ok);
    ASSERT_TRUE(scene.importer->unmap(scene.mapping)); // unmapped dynamic importers are told, not waited for
    constexpr int kAttachments = 3;
    constexpr int kMoves = 200;
    auto idle = scene.daemon.connect();
    ASSERT_NE(idle, nullptr);
    std::vector<uint64_t> attachments;
    for (int i = 0; i < kAttachments; ++i) {
        auto a = idle->attach(scene.buffer, "gpu", SessionAttachOptions{true});
        ASSERT_TRUE(a) << a.error().toString();
        attachments.push_back(*a);
    }
    for (int i = 0; i < kMoves; ++i) {
        auto moved = scene.mover->migrate(scene.buffer, i % 2 == 0 ? "linux,cma" : "system");
        ASSERT_TRUE(moved) << i << ": " << moved.error().toString();
    }
    // A round trip: every event sent before its reply is queued by then.
    ASSERT_TRUE(idle->heaps());
    // However many moves, one event waits per attachment: the newest.
    std::vector<MoveEvent> seen;
    for (;;) {
        auto e = idle->nextEvent();
        ASSERT_TRUE(e) << e.error().toString();
        if (!*e)
            break;
        seen.push_back(**e);
    }
    ASSERT_EQ(seen.size(), static_cast<size_t>(kAttachments));
    for (const MoveEvent& e : seen) {
        EXPECT_EQ(e.kind, MoveEvent::Kind::Moved);
        EXPECT_EQ(e.sequence, static_cast<uint64_t>(kMoves));
    }
    EXPECT_TRUE(test::holdsPattern(scene.buffer.get(), kSize));
    for (uint64_t a : attachments)
        EXPECT_TRUE(idle->detach(a));
    idle.reset();
    ASSERT_TRUE(scene.importer->detach(scene.gpu));
    scene.finish();
}

TEST(MigrationSettle, AttachOrderThroughTheDaemonNeverChangesTheFinalHeap) {
    test::InProcessDaemon daemon(configOf("move_ack_timeout_ms: 60000\n"));
    auto observer = daemon.connect();
    ASSERT_NE(observer, nullptr);
    const auto baseline = baselineOf(*observer);
    const std::vector<std::vector<std::string>> orders = {{"gpu", "display"}, {"display", "gpu"}};
    std::vector<std::string> finalHeaps;
    for (const auto& order : orders) {
        SCOPED_TRACE(fmt::format("{}", fmt::join(order, ", ")));
        auto session = daemon.connect();
        ASSERT_NE(session, nullptr);
        auto fd = session->create(kSize, "frame");
        ASSERT_TRUE(fd);
        ASSERT_TRUE(test::fillPattern(fd->get(), kSize));
        std::vector<uint64_t> mappings, attachments;
        for (const std::string& device : order) {
            // Each device maps as it attaches, so the first makes the storage.
            auto a = session->attach(*fd, device, SessionAttachOptions{true});
            ASSERT_TRUE(a) << a.error().toString();
            auto m = session->map(*a, DmaDirection::Bidirectional);
            ASSERT_TRUE(m) << m.error().toString();
            attachments.push_back(*a);
            mappings.push_back(m->id);
        }
        finalHeaps.push_back(heapOf(*session, *fd));
        EXPECT_TRUE(test::holdsPattern(fd->get(), kSize));
        for (uint64_t m : mappings)
            EXPECT_TRUE(session->unmap(m));
        for (uint64_t a : attachments)
            EXPECT_TRUE(session->detach(a));
    }
    ASSERT_EQ(finalHeaps.size(), 2u);
    EXPECT_EQ(finalHeaps[0], "linux,cma");
    EXPECT_EQ(finalHeaps[0], finalHeaps[1]);
    EXPECT_EQ(baselineOf(*observer), baseline);
}

} // namespace
} // namespace cenalloc
