// SPDX-License-Identifier: MIT
// Migration across processes through cenallocd: move events, acknowledgements, the bound, pins, and the per-uid bounds.
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/session.h>
#include <cenalloc/units.h>

#include "service/socket_io.h"
#include "support/daemon.h"
#include "support/fds.h"
#include "support/process.h"
#include "support/service.h"
#include "support/wait.h"

namespace cenalloc {
namespace {

using test::baselineOf;

#define CHILD_CHECK(cond)                                                                                              \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            std::fprintf(stderr, "child %d: %s:%d: %s\n", ::getpid(), __FILE__, __LINE__, #cond);                      \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)

constexpr uint64_t kSize = 1 * MiB;
constexpr int kWaitMs = static_cast<int>(test::kPatience.count());

/// A one-way channel of single bytes between processes.
class Signal {
public:
    Signal() { EXPECT_EQ(::pipe2(fds_, O_CLOEXEC), 0); }
    ~Signal() {
        ::close(fds_[0]);
        ::close(fds_[1]);
    }
    bool send(char c) { return ::write(fds_[1], &c, 1) == 1; }
    char wait() {
        char c = 0;
        ssize_t n;
        do {
            n = ::read(fds_[0], &c, 1);
        } while (n < 0 && errno == EINTR);
        return n == 1 ? c : '\0';
    }

private:
    int fds_[2] = {-1, -1};
};

/// How the importer process behaves.
enum class Importer {
    Dynamic,    ///< acknowledges, maps again after the move, checks the bytes
    Static,     ///< a static attachment, mapped
    Pinned,     ///< dynamic, mapped and pinned
    NeverReads, ///< dynamic, mapped; sees its event arrive and never takes it
    Dies,       ///< dynamic, mapped; waits to be killed once its event came
    Idle,       ///< dynamic, mapped; must be sent no event
};

/// The importer: creates a buffer, fills it, attaches the GPU (behind its
/// IOMMU: the storage comes from the system heap, above what the display
/// reaches), maps it, sends the buffer to the parent and reports 'm'.
int importer(const std::string& path, Importer kind, UniqueFd channel, Signal& status, Signal& go) {
    auto session = Session::connect(path);
    CHILD_CHECK(session);
    Session& s = **session;
    auto fd = s.create(kSize, "frame");
    CHILD_CHECK(fd);
    CHILD_CHECK(test::fillPattern(fd->get(), kSize));
    auto gpu = s.attach(*fd, "gpu", SessionAttachOptions{kind != Importer::Static});
    CHILD_CHECK(gpu);
    if (kind == Importer::Pinned)
        CHILD_CHECK(s.pin(*gpu));
    auto mapping = s.map(*gpu, DmaDirection::Bidirectional);
    CHILD_CHECK(mapping);
    int raw = fd->get();
    CHILD_CHECK(sendDatagram(channel, std::vector<std::byte>{std::byte{'b'}}, std::span<const int>(&raw, 1)));
    status.send('m');
    switch (kind) {
    case Importer::Dynamic: {
        auto pending = s.waitEvent(kWaitMs);
        CHILD_CHECK(pending && *pending);
        CHILD_CHECK((*pending)->kind == MoveEvent::Kind::Pending && (*pending)->attachment == *gpu);
        CHILD_CHECK((*pending)->sequence == 1 && (*pending)->cause == "attach of 'display'");
        // A wrong sequence is nobody's acknowledgement.
        CHILD_CHECK(s.acknowledgeMove(*gpu, 2).error().code() == ENOENT);
        CHILD_CHECK(s.acknowledgeMove(*gpu, 1));
        auto moved = s.waitEvent(kWaitMs);
        CHILD_CHECK(moved && *moved);
        CHILD_CHECK((*moved)->kind == MoveEvent::Kind::Moved && (*moved)->sequence == 1);
        CHILD_CHECK((*moved)->attachment == *gpu);
        // The old mapping is gone: its id still unmaps; a new one maps the new storage.
        CHILD_CHECK(s.unmap(mapping->id));
        auto again = s.map(*gpu, DmaDirection::Bidirectional);
        CHILD_CHECK(again && again->segments.size() == 1 && again->segments[0].length == kSize);
        CHILD_CHECK(test::holdsPattern(fd->get(), kSize));
        CHILD_CHECK(s.unmap(again->id));
        status.send('d');
        break;
    }
    case Importer::NeverReads:
        CHILD_CHECK(test::waitReadable(s.eventFd()));
        status.send('e');
        break;
    case Importer::Dies: {
        auto pending = s.waitEvent(kWaitMs);
        CHILD_CHECK(pending && *pending && (*pending)->kind == MoveEvent::Kind::Pending);
        status.send('p');
        go.wait(); // killed here
        return 1;
    }
    case Importer::Static:
    case Importer::Pinned:
    case Importer::Idle: break;
    }
    CHILD_CHECK(go.wait() == 'x');
    if (kind == Importer::Idle) {
        auto none = s.nextEvent();
        CHILD_CHECK(none && !*none);
    }
    return 0;
}

/// The daemon, an observer and an importer process whose buffer the
/// parent received.
struct Scene {
    explicit Scene(const char* config) : daemon(config) {}
    void start(Importer kind) {
        observer = daemon.connect();
        ASSERT_NE(observer, nullptr);
        baseline = baselineOf(*observer);
        int pair[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
        UniqueFd ours(pair[0]), theirs(pair[1]);
        child = test::forkChild([&] {
            ours.reset();
            return importer(daemon.path(), kind, std::move(theirs), status, go);
        });
        theirs.reset();
        auto dg = receiveDatagram(ours, 16);
        ASSERT_TRUE(dg && dg->fds.size() == 1);
        buffer = std::move(dg->fds[0]);
        ASSERT_EQ(status.wait(), 'm');
        mover = daemon.connect();
        ASSERT_NE(mover, nullptr);
    }
    /// Everything released: the importer gone, the parent's fd closed.
    void finish(int exitCode = 0) {
        go.send('x');
        EXPECT_EQ(test::reap(child), exitCode);
        mover.reset();
        buffer.reset();
        test::expectBackTo(*observer, baseline);
    }
    test::DaemonProcess daemon;
    std::unique_ptr<Session> observer;
    test::Baseline baseline;
    Signal status, go;
    pid_t child = -1;
    UniqueFd buffer;
    std::unique_ptr<Session> mover;
};

TEST(MigrationRemote, ADynamicImporterIsToldAcknowledgesMapsAgainAndTheBytesSurvive) {
    const auto fdsBefore = test::openFdCount();
    {
        Scene scene("move_ack_timeout_ms: 60000\n");
        ASSERT_NO_FATAL_FAILURE(scene.start(Importer::Dynamic));
        Session& mover = *scene.mover;
        auto forecast = mover.forecast(scene.buffer, "display");
        ASSERT_TRUE(forecast) << forecast.error().toString();
        EXPECT_EQ(forecast->outcome, AttachForecast::Outcome::WouldMigrate);
        EXPECT_EQ(forecast->fromHeap, "system");
        EXPECT_EQ(forecast->notified, std::vector<std::string>{"gpu"});
        // The attach waits for the importer's acknowledgement (not for the bound: a minute).
        auto display = mover.attach(scene.buffer, "display");
        ASSERT_TRUE(display) << display.error().toString();
        ASSERT_EQ(scene.status.wait(), 'd') << "the importer saw its events, mapped again and read the bytes";
        auto info = mover.describe(scene.buffer);
        ASSERT_TRUE(info);
        EXPECT_EQ(info->heap, forecast->toHeap);
        auto scanout = mover.map(*display, DmaDirection::ToDevice);
        ASSERT_TRUE(scanout);
        EXPECT_EQ(scanout->segments.size(), 1u) << "contiguous for the display";
        EXPECT_TRUE(test::holdsPattern(scene.buffer.get(), kSize));
        ASSERT_TRUE(mover.unmap(scanout->id));
        ASSERT_TRUE(mover.detach(*display));
        scene.finish();
    }
    EXPECT_EQ(test::openFdCount(), fdsBefore);
}

TEST(MigrationRemote, AStaticImporterBlocksWithEbusyNamingItsDeviceAndProcess) {
    Scene scene("");
    ASSERT_NO_FATAL_FAILURE(scene.start(Importer::Static));
    auto display = scene.mover->attach(scene.buffer, "display");
    ASSERT_FALSE(display);
    EXPECT_EQ(display.error().code(), EBUSY);
    EXPECT_NE(display.error().message().find(fmt::format("'gpu' of pid {}", scene.child)), std::string::npos)
        << display.error().message();
    EXPECT_NE(display.error().message().find("static mapping"), std::string::npos);
    auto info = scene.mover->describe(scene.buffer);
    ASSERT_TRUE(info);
    EXPECT_EQ(info->heap, "system") << "nothing moved";
    scene.finish();
}

TEST(MigrationRemote, APinnedDynamicImporterBlocksWithEbusy) {
    Scene scene("");
    ASSERT_NO_FATAL_FAILURE(scene.start(Importer::Pinned));
    auto moved = scene.mover->migrate(scene.buffer, "linux,cma");
    ASSERT_FALSE(moved);
    EXPECT_EQ(moved.error().code(), EBUSY);
    EXPECT_NE(moved.error().message().find("pinned it"), std::string::npos) << moved.error().message();
    scene.finish();
}

TEST(MigrationRemote, AnImporterKilledWhileTheMigrationWaitsIsReleasedAndTheMoveGoesOn) {
    // A minute's bound: the move goes on because the importer died, not
    // because the bound passed.
    Scene scene("move_ack_timeout_ms: 60000\n");
    ASSERT_NO_FATAL_FAILURE(scene.start(Importer::Dies));
    std::thread killer([&] {
        if (scene.status.wait() == 'p')
            ::kill(scene.child, SIGKILL);
    });
    auto display = scene.mover->attach(scene.buffer, "display");
    killer.join();
    ASSERT_TRUE(display) << display.error().toString();
    auto info = scene.mover->describe(scene.buffer);
    ASSERT_TRUE(info);
    EXPECT_NE(info->heap, "system");
    EXPECT_EQ(info->attachedDevices, std::vector<std::string>{"display"}) << "the dead importer's attachment went";
    EXPECT_TRUE(test::holdsPattern(scene.buffer.get(), kSize));
    ASSERT_TRUE(scene.mover->detach(*display));
    scene.finish(128 + SIGKILL);
}

TEST(MigrationRemote, AnImporterThatNeverReadsIsStaticAfterTheBoundAndOthersAreServedMeanwhile) {
    Scene scene("move_ack_timeout_ms: 10000\n");
    ASSERT_NO_FATAL_FAILURE(scene.start(Importer::NeverReads));
    std::atomic<bool> answered{false};
    Result<uint64_t> display = Error(EINVAL, "not run");
    std::thread attacher([&] {
        display = scene.mover->attach(scene.buffer, "display");
        answered = true;
    });
    ASSERT_EQ(scene.status.wait(), 'e') << "the importer's event arrived: the migration waits";
    // A third client is served while the migration waits.
    auto third = scene.daemon.connect();
    ASSERT_NE(third, nullptr);
    auto other = third->allocate("system", 64 * KiB);
    ASSERT_TRUE(other) << other.error().toString();
    EXPECT_FALSE(answered.load()) << "answered before the importer's bound";
    attacher.join();
    ASSERT_FALSE(display);
    EXPECT_EQ(display.error().code(), EBUSY);
    EXPECT_NE(display.error().message().find(fmt::format("'gpu' of pid {} uid", scene.child)), std::string::npos)
        << display.error().message();
    EXPECT_NE(display.error().message().find("did not acknowledge"), std::string::npos);
    // From now on it is static: refused at once, not waited for.
    auto again = scene.mover->migrate(scene.buffer, "linux,cma");
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code(), EBUSY);
    EXPECT_NE(again.error().message().find("static since it let a move's bound pass"), std::string::npos)
        << again.error().message();
    other->reset();
    third.reset();
    scene.finish();
}

TEST(MigrationRemote, OneMoveOfABufferWaitsAtATimeAndTheImportersEndEndsTheWait) {
    Scene scene("move_ack_timeout_ms: 60000\n");
    ASSERT_NO_FATAL_FAILURE(scene.start(Importer::NeverReads));
    Result<uint64_t> display = Error(EINVAL, "not run");
    std::thread attacher([&] { display = scene.mover->attach(scene.buffer, "display"); });
    ASSERT_EQ(scene.status.wait(), 'e');
    auto second = scene.daemon.connect();
    ASSERT_NE(second, nullptr);
    auto migrated = second->migrate(scene.buffer, "linux,cma");
    ASSERT_FALSE(migrated);
    EXPECT_EQ(migrated.error().code(), EBUSY) << "one move per buffer at a time";
    EXPECT_NE(migrated.error().message().find("is moving already"), std::string::npos);
    // The importer's end ends the wait: the attach goes on.
    ::kill(scene.child, SIGKILL);
    attacher.join();
    ASSERT_TRUE(display) << display.error().toString();
    ASSERT_TRUE(scene.mover->detach(*display));
    second.reset();
    scene.finish(128 + SIGKILL);
}

// The per-uid bounds, at zero: nothing may wait.
TEST(MigrationRemote, AUidWithoutRoomForAWaitingMigrationIsRefusedWithEagain) {
    Scene scene("quota:\n  pending_moves: 0\n");
    ASSERT_NO_FATAL_FAILURE(scene.start(Importer::Idle));
    auto migrated = scene.mover->migrate(scene.buffer, "linux,cma");
    ASSERT_FALSE(migrated);
    EXPECT_EQ(migrated.error().code(), EAGAIN);
    EXPECT_NE(migrated.error().message().find("migration(s) waiting"), std::string::npos);
    scene.finish();
}

TEST(MigrationRemote, AnImporterWhoseUidHasTooManyEventsUnacknowledgedIsNotWaitedFor) {
    Scene scene("quota:\n  unacked_moves: 0\n");
    ASSERT_NO_FATAL_FAILURE(scene.start(Importer::Idle));
    auto migrated = scene.mover->migrate(scene.buffer, "linux,cma");
    ASSERT_FALSE(migrated);
    EXPECT_EQ(migrated.error().code(), EBUSY);
    EXPECT_NE(migrated.error().message().find("is not waited for"), std::string::npos) << migrated.error().message();
    scene.finish(); // the importer checks it was sent nothing
}

} // namespace
} // namespace cenalloc
