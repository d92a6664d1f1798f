// SPDX-License-Identifier: MIT
// Tests of Session's describe and RAII handles, in-process and through cenallocd.
#include <cenalloc/session.h>

#include <cerrno>
#include <fcntl.h>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/memfd.h>
#include <cenalloc/units.h>

#include "support/daemon.h"
#include "support/fds.h"
#include "support/service.h"

namespace cenalloc {
namespace {

using test::kRw;

/// The same tests for Session::local and for a session with a daemon.
class SessionOps : public ::testing::TestWithParam<bool> {
protected:
    void SetUp() override {
        if (GetParam()) {
            daemon_ = std::make_unique<test::InProcessDaemon>();
            ASSERT_TRUE(daemon_->ok());
            session_ = daemon_->connect();
        } else {
            auto local = Session::local();
            ASSERT_TRUE(local) << local.error().toString();
            session_ = std::move(*local);
        }
        ASSERT_TRUE(session_);
    }
    BufferInfo describe(int fd) {
        auto info = session_->describe(BorrowedFd(fd));
        EXPECT_TRUE(info) << info.error().toString();
        return info ? *info : BufferInfo{};
    }
    BufferInfo bufinfoEntry(uint64_t id) {
        auto all = session_->bufinfo();
        EXPECT_TRUE(all) << all.error().toString();
        if (all)
            for (const BufferInfo& b : *all)
                if (b.id == id)
                    return b;
        ADD_FAILURE() << "no buffer " << id << " in bufinfo";
        return {};
    }

    std::unique_ptr<test::InProcessDaemon> daemon_; // outlives the session
    std::unique_ptr<Session> session_;
};

void expectSameEntry(const BufferInfo& a, const BufferInfo& b) {
    EXPECT_EQ(a.id, b.id);
    EXPECT_EQ(a.size, b.size);
    EXPECT_EQ(a.fdFlags, b.fdFlags);
    EXPECT_EQ(a.exporter, b.exporter);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.inode, b.inode);
    EXPECT_EQ(a.references, b.references);
    EXPECT_EQ(a.hasStorage, b.hasStorage);
    EXPECT_EQ(a.heap, b.heap);
    EXPECT_EQ(a.inHostKernel, b.inHostKernel);
    EXPECT_EQ(a.chunks, b.chunks);
    EXPECT_EQ(a.attachedDevices, b.attachedDevices);
    ASSERT_EQ(a.mappings.size(), b.mappings.size());
    for (size_t i = 0; i < a.mappings.size(); ++i) {
        EXPECT_EQ(a.mappings[i].device, b.mappings[i].device);
        EXPECT_EQ(a.mappings[i].direction, b.mappings[i].direction);
        EXPECT_EQ(a.mappings[i].domain, b.mappings[i].domain);
        EXPECT_EQ(a.mappings[i].segments, b.mappings[i].segments);
    }
    EXPECT_EQ(a.cpuAccessDepth, b.cpuAccessDepth);
    EXPECT_EQ(a.cacheMaintenanceOps, b.cacheMaintenanceOps);
    EXPECT_EQ(a.syncViolations, b.syncViolations);
    EXPECT_EQ(a.exporterState, b.exporterState);
}

TEST_P(SessionOps, DescribeIsTheBuffersBufinfoEntry) {
    auto fd = session_->allocate("system", 64 * 1024);
    ASSERT_TRUE(fd) << fd.error().toString();
    ASSERT_TRUE(session_->setName(*fd, "described"));
    auto attachment = session_->attach(*fd, "gpu");
    ASSERT_TRUE(attachment) << attachment.error().toString();
    auto mapping = session_->map(*attachment, DmaDirection::ToDevice);
    ASSERT_TRUE(mapping) << mapping.error().toString();
    ASSERT_TRUE(session_->beginCpuAccess(*fd, kSyncRead));

    const BufferInfo described = describe(fd->get());
    EXPECT_EQ(described.name, "described");
    EXPECT_EQ(described.size, 64u * 1024);
    EXPECT_EQ(described.heap, "system");
    EXPECT_EQ(described.attachedDevices, std::vector<std::string>{"gpu"});
    EXPECT_EQ(described.mappings.size(), 1u);
    EXPECT_EQ(described.cpuAccessDepth, 1u);
    expectSameEntry(described, bufinfoEntry(described.id));

    // Any fd of the buffer names it.
    UniqueFd dup(::fcntl(fd->get(), F_DUPFD_CLOEXEC, 0));
    expectSameEntry(describe(dup.get()), described);

    ASSERT_TRUE(session_->endCpuAccess(*fd, kSyncRead));
    ASSERT_TRUE(session_->unmap(mapping->id));
    ASSERT_TRUE(session_->detach(*attachment));
}

TEST_P(SessionOps, DescribeShowsADeferredBufferWithoutStorageYet) {
    auto fd = session_->create(1 << 20, "later");
    ASSERT_TRUE(fd) << fd.error().toString();
    const BufferInfo described = describe(fd->get());
    EXPECT_FALSE(described.hasStorage);
    EXPECT_EQ(described.heap, "");
    EXPECT_TRUE(described.chunks.empty());
    EXPECT_EQ(described.name, "later");
    expectSameEntry(described, bufinfoEntry(described.id));
}

TEST_P(SessionOps, DescribeOfAnFdThatIsNoCenallocBufferIsEbadfSayingSo) {
    auto foreign = createSealedMemfd("foreign", 4096);
    ASSERT_TRUE(foreign);
    auto info = session_->describe(*foreign);
    ASSERT_FALSE(info);
    EXPECT_EQ(info.error().code(), EBADF);
    EXPECT_NE(info.error().message().find("not a cenalloc buffer"), std::string::npos) << info.error().message();
}

TEST_P(SessionOps, DescribeOfAClosedFdIsEbadf) {
    int closed = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(closed, 0);
    ::close(closed);
    auto info = session_->describe(BorrowedFd(closed));
    ASSERT_FALSE(info);
    EXPECT_EQ(info.error().code(), EBADF);
    EXPECT_EQ(session_->describe(BorrowedFd(-1)).error().code(), EBADF);
}

TEST_P(SessionOps, DescribeLeavesNoFdBehindOnEitherSide) {
    auto fd = session_->allocate("system", 4096);
    ASSERT_TRUE(fd);
    auto foreign = createSealedMemfd("foreign", 4096);
    ASSERT_TRUE(foreign);
    // In-process, or with the daemon in this process: one count sees both
    // sides. A round trip first: the daemon closes its copy of a reply's fd
    // (the allocation's) just after sending it, before it reads the next
    // request.
    ASSERT_TRUE(session_->heaps());
    const size_t before = test::openFdCount();
    for (int i = 0; i < 64; ++i) {
        EXPECT_TRUE(session_->describe(*fd));
        EXPECT_FALSE(session_->describe(*foreign));
    }
    EXPECT_EQ(test::openFdCount(), before);
}

TEST_P(SessionOps, AttachmentAndMappingHandlesUndoThemselvesWhenDestroyed) {
    auto fd = session_->allocate("system", 64 * 1024);
    ASSERT_TRUE(fd);
    const test::Baseline baseline = test::baselineOf(*session_);
    {
        auto attachment = session_->attachHandle(*fd, "gpu");
        ASSERT_TRUE(attachment) << attachment.error().toString();
        EXPECT_TRUE(attachment->valid());
        auto mapping = attachment->map(DmaDirection::Bidirectional);
        ASSERT_TRUE(mapping) << mapping.error().toString();
        EXPECT_FALSE(mapping->segments().empty());
        EXPECT_EQ(mapping->direction(), DmaDirection::Bidirectional);
        const BufferInfo inUse = describe(fd->get());
        EXPECT_EQ(inUse.attachedDevices.size(), 1u);
        EXPECT_EQ(inUse.mappings.size(), 1u);
        EXPECT_NE(test::baselineOf(*session_), baseline) << "the gpu's IOMMU domain has a mapping in use";
        // The mapping goes first (declared last), then the attachment.
    }
    const BufferInfo after = describe(fd->get());
    EXPECT_TRUE(after.attachedDevices.empty());
    EXPECT_TRUE(after.mappings.empty());
    EXPECT_EQ(test::baselineOf(*session_), baseline);
    auto stats = session_->stats();
    ASSERT_TRUE(stats);
    EXPECT_TRUE(stats->lifetimeBugs.empty());
}

TEST_P(SessionOps, AnExplicitDetachReportsWhatTheDestructorCannot) {
    auto fd = session_->allocate("system", 64 * 1024);
    ASSERT_TRUE(fd);
    auto attachment = session_->attachHandle(*fd, "gpu");
    ASSERT_TRUE(attachment);
    auto mapping = attachment->map(DmaDirection::ToDevice);
    ASSERT_TRUE(mapping);
    EXPECT_EQ(attachment->detach().error().code(), EBUSY) << "it still has a mapping";
    EXPECT_TRUE(attachment->valid()) << "a detach that failed leaves the handle holding the attachment";
    EXPECT_TRUE(mapping->unmap());
    EXPECT_FALSE(mapping->valid());
    EXPECT_TRUE(mapping->unmap()) << "unmapping an empty handle does nothing";
    EXPECT_TRUE(attachment->detach());
    EXPECT_FALSE(attachment->valid());
    EXPECT_TRUE(describe(fd->get()).attachedDevices.empty());
}

TEST_P(SessionOps, HandlesMoveAndReleaseGivesBackTheRawId) {
    auto fd = session_->allocate("system", 64 * 1024);
    ASSERT_TRUE(fd);
    auto made = session_->attachHandle(*fd, "gpu");
    ASSERT_TRUE(made);
    Session::Attachment moved = std::move(*made);
    EXPECT_FALSE(made->valid());
    EXPECT_TRUE(moved.valid());
    Session::Attachment assigned;
    assigned = std::move(moved);
    EXPECT_FALSE(moved.valid());
    const uint64_t id = assigned.id();
    auto mapping = assigned.map(DmaDirection::ToDevice);
    ASSERT_TRUE(mapping);
    const SessionMapping raw = mapping->release();
    EXPECT_FALSE(mapping->valid());
    EXPECT_EQ(assigned.release(), id);
    EXPECT_FALSE(assigned.valid());
    // Released: still there, the caller's to undo by id.
    EXPECT_EQ(describe(fd->get()).mappings.size(), 1u);
    EXPECT_TRUE(session_->unmap(raw.id));
    EXPECT_TRUE(session_->detach(id));
    EXPECT_TRUE(describe(fd->get()).attachedDevices.empty());
}

TEST_P(SessionOps, ACpuAccessGuardEndsItsBracketEvenAfterTheCallerClosedItsFd) {
    auto fd = session_->allocate("system", 4096);
    ASSERT_TRUE(fd);
    UniqueFd keep(::fcntl(fd->get(), F_DUPFD_CLOEXEC, 0)); // to look at the buffer with
    EXPECT_EQ(session_->beginCpuAccessGuard(*fd, 0).error().code(), EINVAL);
    EXPECT_EQ(session_->beginCpuAccessGuard(BorrowedFd(-1), kSyncRead).error().code(), EBADF);
    {
        auto guard = session_->beginCpuAccessGuard(*fd, kSyncReadWrite);
        ASSERT_TRUE(guard) << guard.error().toString();
        fd->reset();
        EXPECT_EQ(describe(keep.get()).cpuAccessDepth, 1u);
        Session::CpuAccessGuard moved = std::move(*guard);
        EXPECT_FALSE(guard->valid());
        EXPECT_EQ(describe(keep.get()).cpuAccessDepth, 1u) << "moving a guard ends nothing";
    }
    EXPECT_EQ(describe(keep.get()).cpuAccessDepth, 0u);
    // The bracket is gone for the session too: ending it again finds none.
    EXPECT_EQ(session_->endCpuAccess(keep, kSyncReadWrite).error().code(), EINVAL);
}

INSTANTIATE_TEST_SUITE_P(LocalAndDaemon, SessionOps, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "Daemon" : "Local"; });

TEST(SessionOpsWithADaemon, DescribeClaimsNothing) {
    test::InProcessDaemon daemon;
    ASSERT_TRUE(daemon.ok());
    auto owner = daemon.connect();
    auto other = daemon.connect();
    ASSERT_TRUE(owner && other);
    auto fd = owner->allocate("system", 4096);
    ASSERT_TRUE(fd);
    auto seen = other->describe(*fd);
    ASSERT_TRUE(seen) << seen.error().toString();
    auto own = owner->describe(*fd);
    ASSERT_TRUE(own);
    EXPECT_EQ(seen->id, own->id);
    // The other session saw the buffer through its fd, and holds no claim on it.
    EXPECT_EQ(other->release(*fd).error().code(), ENOENT);
}

// What a session's mappings hold is bounded (LocalSession tests), and so is
// what all the sessions of one uid hold: four sessions' worth, so that 64
// connections do not multiply it by 64.
TEST(SessionOpsWithADaemon, WhatAUidsMappingsHoldIsBoundedOverAllItsSessions) {
    test::InProcessDaemon daemon;
    ASSERT_TRUE(daemon.ok());
    auto owner = daemon.connect();
    ASSERT_NE(owner, nullptr);
    const test::Baseline baseline = test::baselineOf(*owner);
    {
        // 1 GiB of 1 MiB chunks on a device of 64 KiB segments: 16384
        // segments and 1024 chunks a mapping, 3 to a session.
        auto fd = owner->allocate("system-dma32", 1 * GiB);
        ASSERT_TRUE(fd) << fd.error().toString();
        std::vector<std::unique_ptr<Session>> sessions;
        std::vector<size_t> mapped;
        Result<SessionMapping> m = Error(EINVAL, "none yet");
        for (int i = 0; i < 6; ++i) {
            sessions.push_back(daemon.connect());
            ASSERT_NE(sessions.back(), nullptr);
            auto usb = sessions.back()->attach(*fd, "usb");
            ASSERT_TRUE(usb) << usb.error().toString();
            size_t n = 0;
            while (n < 8 && (m = sessions.back()->map(*usb, DmaDirection::ToDevice)))
                ++n;
            ASSERT_FALSE(m);
            EXPECT_EQ(m.error().code(), ENOSPC) << m.error().message();
            mapped.push_back(n);
        }
        EXPECT_EQ(mapped, (std::vector<size_t>{3, 3, 3, 3, 3, 0})) << "262144 segments and chunks for the uid";
        EXPECT_NE(m.error().message().find("uid"), std::string::npos) << m.error().message();
        // A session that goes gives its share back.
        sessions.front().reset();
        ASSERT_TRUE(owner->heaps()); // the daemon sees clients that hung up before it lists heaps
        auto usb = sessions.back()->attach(*fd, "usb");
        ASSERT_TRUE(usb);
        EXPECT_TRUE(sessions.back()->map(*usb, DmaDirection::ToDevice));
    }
    test::expectBackTo(*owner, baseline);
}

// So are the attachments of all the sessions of one uid: four sessions'
// worth. Without it one uid's 64 connections held 262144 of them, each
// costing the daemon memory, and all of them on one buffer were what every
// request on that buffer looked through.
TEST(SessionOpsWithADaemon, AUidsAttachmentsAreBoundedOverAllItsSessions) {
    test::InProcessDaemon daemon;
    ASSERT_TRUE(daemon.ok());
    auto owner = daemon.connect();
    ASSERT_NE(owner, nullptr);
    const test::Baseline baseline = test::baselineOf(*owner);
    {
        auto fd = owner->create(64 * KiB);
        ASSERT_TRUE(fd) << fd.error().toString();
        std::vector<std::unique_ptr<Session>> sessions;
        std::vector<size_t> attached;
        Result<uint64_t> a = Error(EINVAL, "none yet");
        for (int i = 0; i < 5; ++i) {
            sessions.push_back(daemon.connect());
            ASSERT_NE(sessions.back(), nullptr);
            size_t n = 0;
            while (n <= 4096 && (a = sessions.back()->attach(*fd, "gpu")))
                ++n;
            ASSERT_FALSE(a);
            EXPECT_EQ(a.error().code(), ENOSPC) << a.error().message();
            attached.push_back(n);
        }
        EXPECT_EQ(attached, (std::vector<size_t>{4096, 4096, 4096, 4096, 0})) << "16384 attachments for the uid";
        EXPECT_NE(a.error().message().find("uid"), std::string::npos) << a.error().message();
        // A session that goes gives its share back.
        sessions.front().reset();
        ASSERT_TRUE(owner->heaps()); // the daemon sees clients that hung up before it lists heaps
        EXPECT_TRUE(sessions.back()->attach(*fd, "gpu"));
    }
    test::expectBackTo(*owner, baseline);
}

} // namespace
} // namespace cenalloc
