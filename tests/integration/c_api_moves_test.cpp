// SPDX-License-Identifier: MIT
// The C API's migration calls through cenallocd: the C11 test program as a dynamic or static importer in one process
// and the restrictive attacher in another.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/session.h>
#include <cenalloc/units.h>

#include "support/daemon.h"
#include "support/fds.h"
#include "support/process.h"
#include "support/service.h"

namespace cenalloc {
namespace {

constexpr uint64_t kSize = 1 * MiB;

/// The daemon, a session that made a deferred buffer of kSize bytes of
/// test::patternByte(i) (no storage until the importer maps it), and the baseline
/// from before it.
struct Scene {
    Scene() {
        session = daemon.connect();
        EXPECT_NE(session, nullptr);
        if (!session)
            return;
        baseline = test::baselineOf(*session);
        auto created = session->create(kSize, "c-frame");
        EXPECT_TRUE(created) << created.error().toString();
        if (!created)
            return;
        buffer = std::move(*created);
        EXPECT_TRUE(test::fillPattern(buffer.get(), kSize));
    }
    /// The C program in @p role, with the buffer as its fd 3.
    std::unique_ptr<test::ChildProcess> run(const char* role) {
        test::ProcessOptions options;
        options.cleanEnv = true;
        options.passFds = {buffer.get()};
        return std::make_unique<test::ChildProcess>(std::vector<std::string>{C_API_CLIENT, role, daemon.path()},
                                                    options);
    }
    std::string heap() {
        auto info = session->describe(buffer);
        EXPECT_TRUE(info) << info.error().toString();
        return info ? info->heap : std::string();
    }
    /// Everything released: back to the baseline.
    void finish() {
        EXPECT_TRUE(session->release(buffer));
        buffer.reset();
        test::expectBackTo(*session, baseline);
    }
    test::DaemonProcess daemon;
    std::unique_ptr<Session> session;
    test::Baseline baseline;
    UniqueFd buffer;
};

TEST(CApiMoves, ADynamicImporterIsToldAcknowledgesAndMapsAgainWhenAnotherProcessAttachesTheDisplay) {
    Scene scene;
    ASSERT_TRUE(scene.buffer.valid());
    auto importer = scene.run("dynamic");
    ASSERT_EQ(importer->readLine(), "mapped") << importer->err();
    EXPECT_EQ(scene.heap(), "system");
    auto attacher = scene.run("attach-moves");
    // The display's attach waits for the importer's acknowledgement, then moves the buffer.
    EXPECT_EQ(attacher->readLine(), "attached") << attacher->err();
    EXPECT_EQ(importer->readLine(), "remapped") << importer->err();
    EXPECT_EQ(importer->wait(), 0) << importer->err();
    EXPECT_EQ(attacher->wait(), 0) << attacher->err();
    EXPECT_EQ(scene.heap(), "linux,cma");
    EXPECT_TRUE(test::holdsPattern(scene.buffer.get(), kSize));
    scene.finish();
}

TEST(CApiMoves, AStaticImporterInOneProcessMakesTheDisplaysAttachInAnotherEbusyAndNothingMoves) {
    Scene scene;
    ASSERT_TRUE(scene.buffer.valid());
    auto importer = scene.run("static");
    ASSERT_EQ(importer->readLine(), "mapped") << importer->err();
    auto attacher = scene.run("attach-busy");
    EXPECT_EQ(attacher->readLine(), "busy") << attacher->err();
    EXPECT_EQ(attacher->wait(), 0) << attacher->err();
    EXPECT_EQ(importer->wait(), 0) << importer->err(); // its stdin closed: it unmaps and ends
    EXPECT_EQ(scene.heap(), "system");
    EXPECT_TRUE(test::holdsPattern(scene.buffer.get(), kSize));
    scene.finish();
}

} // namespace
} // namespace cenalloc
