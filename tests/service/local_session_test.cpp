// SPDX-License-Identifier: MIT
// Tests of Session::local: buffers named by fd, per-session ids, release, and dma-buf lifetime in one process.
#include <cenalloc/session.h>

#include <cerrno>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cenalloc/context.h>
#include <cenalloc/memfd.h>
#include <cenalloc/units.h>

#include "support/fds.h"
#include "support/service.h"

namespace cenalloc {
namespace {

using test::baselineOf;
using test::heapStats;
using test::kRw;

std::unique_ptr<Session> makeLocal() {
    auto session = Session::local();
    EXPECT_TRUE(session) << session.error().toString();
    return session ? std::move(*session) : nullptr;
}

TEST(LocalSession, AllocateGivesASealedZeroFilledCloexecMemfd) {
    auto session = makeLocal();
    auto fd = session->allocate("system", 10000);
    ASSERT_TRUE(fd) << fd.error().toString();
    EXPECT_EQ(test::fdSize(fd->get()), 3 * 4096u); // page-aligned
    EXPECT_TRUE(isSizeSealed(*fd));
    EXPECT_TRUE(test::hasCloexec(fd->get()));
    test::Mapped m(fd->get(), 3 * 4096);
    ASSERT_TRUE(m.valid());
    for (size_t i = 0; i < 3 * 4096; ++i)
        ASSERT_EQ(m.bytes()[i], 0) << i;
    EXPECT_EQ(session->describe(), "in-process");
}

TEST(LocalSession, FdFlagsWithoutCloexecGiveAnInheritableFd) {
    auto session = makeLocal();
    auto fd = session->allocate("system", 4096, O_RDWR);
    ASSERT_TRUE(fd) << fd.error().toString();
    EXPECT_FALSE(test::hasCloexec(fd->get()));
}

TEST(LocalSession, InvalidRequestsFailLikeContextAndChangeNothing) {
    auto session = makeLocal();
    const auto before = baselineOf(*session);
    const size_t fds = test::openFdCount();
    struct Case {
        const char* what;
        std::string heap;
        uint64_t length;
        uint32_t fdFlags;
        uint64_t heapFlags;
        int code;
    };
    const Case cases[] = {
        {"zero length", "system", 0, kRw, 0, EINVAL},
        {"overflowing length", "system", UINT64_MAX - 10, kRw, 0, EINVAL},
        {"unknown fd flag", "system", 4096, kRw | O_NONBLOCK, 0, EINVAL},
        {"undefined heap flag", "system", 4096, kRw, 1, EINVAL},
        {"unknown heap", "no-such-heap", 4096, kRw, 0, ENOENT},
        {"exhausted heap", "linux,cma", 1 * GiB, kRw, 0, ENOMEM},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        auto fd = session->allocate(c.heap, c.length, c.fdFlags, c.heapFlags);
        ASSERT_FALSE(fd);
        EXPECT_EQ(fd.error().code(), c.code) << fd.error().toString();
    }
    EXPECT_EQ(baselineOf(*session), before);
    EXPECT_EQ(test::openFdCount(), fds);
}

TEST(LocalSession, TheSameBufferThroughAnyFdHasOneId) {
    auto session = makeLocal();
    auto fd = session->allocate("system", 4096);
    ASSERT_TRUE(fd);
    auto id = session->import(*fd);
    ASSERT_TRUE(id) << id.error().toString();
    UniqueFd dup(::fcntl(fd->get(), F_DUPFD_CLOEXEC, 0));
    UniqueFd reopened(::open(fmt::format("/proc/self/fd/{}", fd->get()).c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(reopened.valid());
    for (const UniqueFd* other : {&dup, &reopened}) {
        auto again = session->import(*other);
        ASSERT_TRUE(again) << again.error().toString();
        EXPECT_EQ(*again, *id);
    }
    auto other = session->allocate("system", 4096);
    ASSERT_TRUE(other);
    auto otherId = session->import(*other);
    ASSERT_TRUE(otherId);
    EXPECT_NE(*otherId, *id);
}

TEST(LocalSession, AnFdThatIsNotOneOfOurBuffersIsEbadf) {
    auto session = makeLocal();
    auto memfd = createSealedMemfd("stranger", 4096);
    ASSERT_TRUE(memfd);
    int pipeFds[2];
    ASSERT_EQ(::pipe2(pipeFds, O_CLOEXEC), 0);
    UniqueFd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
    UniqueFd closed(::dup(readEnd.get()));
    int closedNumber = closed.get();
    closed.reset();
    for (int fd : {memfd->get(), readEnd.get(), closedNumber, -1}) {
        SCOPED_TRACE(fd);
        auto id = session->import(BorrowedFd(fd));
        ASSERT_FALSE(id);
        EXPECT_EQ(id.error().code(), EBADF) << id.error().toString();
        auto att = session->attach(BorrowedFd(fd), "gpu");
        ASSERT_FALSE(att);
        EXPECT_EQ(att.error().code(), EBADF);
        EXPECT_EQ(session->beginCpuAccess(BorrowedFd(fd), kSyncRead).error().code(), EBADF);
        EXPECT_EQ(session->setName(BorrowedFd(fd), "x").error().code(), EBADF);
        EXPECT_EQ(session->release(BorrowedFd(fd)).error().code(), EBADF);
    }
    auto bufinfo = session->bufinfo();
    ASSERT_TRUE(bufinfo);
    EXPECT_TRUE(bufinfo->empty());
}

TEST(LocalSession, ABufferLivesUntilItsLastFdAndMappingAreGone) {
    auto session = makeLocal();
    const auto baseline = baselineOf(*session);
    auto fd = session->allocate("system", 64 * KiB);
    ASSERT_TRUE(fd);
    UniqueFd dup(::fcntl(fd->get(), F_DUPFD_CLOEXEC, 0));
    auto mapped = std::make_unique<test::Mapped>(fd->get(), 64 * KiB);
    ASSERT_TRUE(mapped->valid());
    mapped->bytes()[100] = 42;

    fd->reset();
    EXPECT_EQ(heapStats(*session, "system").liveBuffers, 1u) << "a dup still holds it";
    dup.reset();
    EXPECT_EQ(heapStats(*session, "system").liveBytes, 64 * KiB) << "the mapping still holds it";
    EXPECT_EQ(mapped->bytes()[100], 42);
    mapped.reset();
    EXPECT_EQ(baselineOf(*session), baseline) << "the last mapping went";
    auto stats = session->stats();
    ASSERT_TRUE(stats);
    EXPECT_TRUE(stats->lifetimeBugs.empty());
}

TEST(LocalSession, AttachMapUnmapDetachWithIdsOfThisSession) {
    auto session = makeLocal();
    const auto baseline = baselineOf(*session);
    auto fd = session->allocate("system-dma32", 256 * KiB);
    ASSERT_TRUE(fd);
    auto gpu = session->attach(*fd, "gpu");
    ASSERT_TRUE(gpu) << gpu.error().toString();
    EXPECT_EQ(*gpu, 1u) << "ids count from 1 per session";
    auto camera = session->attach(*fd, "camera");
    ASSERT_TRUE(camera) << camera.error().toString();
    EXPECT_EQ(*camera, 2u);

    auto m = session->map(*camera, DmaDirection::FromDevice);
    ASSERT_TRUE(m) << m.error().toString();
    EXPECT_EQ(m->id, 1u);
    EXPECT_EQ(m->direction, DmaDirection::FromDevice);
    uint64_t total = 0;
    for (const SgEntry& e : m->segments) {
        EXPECT_LE(e.length, kDefaultMaxSegmentSize) << "camera takes 64 KiB segments";
        EXPECT_LE(e.dmaAddress + e.length, uint64_t{1} << 32) << "camera has a 32-bit mask";
        total += e.length;
    }
    EXPECT_EQ(total, 256 * KiB);

    auto info = session->bufinfo();
    ASSERT_TRUE(info);
    ASSERT_EQ(info->size(), 1u);
    EXPECT_EQ((*info)[0].attachedDevices, (std::vector<std::string>{"gpu", "camera"}));
    ASSERT_EQ((*info)[0].mappings.size(), 1u);
    EXPECT_EQ((*info)[0].mappings[0].segments, m->segments);

    auto busy = session->detach(*camera);
    ASSERT_FALSE(busy);
    EXPECT_EQ(busy.error().code(), EBUSY) << "a mapped attachment is unmapped first";
    EXPECT_EQ(session->unmap(99).error().code(), ENOENT);
    EXPECT_EQ(session->map(99, DmaDirection::ToDevice).error().code(), ENOENT);
    EXPECT_EQ(session->detach(99).error().code(), ENOENT);
    ASSERT_TRUE(session->unmap(m->id));
    EXPECT_EQ(session->unmap(m->id).error().code(), ENOENT) << "unmapped once";
    ASSERT_TRUE(session->detach(*camera));
    ASSERT_TRUE(session->detach(*gpu));
    EXPECT_EQ(session->detach(*gpu).error().code(), ENOENT);
    info = session->bufinfo();
    ASSERT_TRUE(info);
    EXPECT_TRUE((*info)[0].attachedDevices.empty());
    fd->reset();
    EXPECT_EQ(baselineOf(*session), baseline);
}

TEST(LocalSession, ARefusedAttachLeavesNothingBehind) {
    auto session = makeLocal();
    auto fd = session->allocate("system", 8 * MiB);
    ASSERT_TRUE(fd);
    auto display = session->attach(*fd, "display");
    ASSERT_FALSE(display) << "scattered system memory cannot serve a contiguous-only display";
    EXPECT_EQ(display.error().code(), EBUSY);
    EXPECT_EQ(session->attach(*fd, "no-such-device").error().code(), ENOENT);
    auto info = session->bufinfo();
    ASSERT_TRUE(info);
    ASSERT_EQ(info->size(), 1u);
    EXPECT_TRUE((*info)[0].attachedDevices.empty());
    auto next = session->attach(*fd, "gpu");
    ASSERT_TRUE(next);
    EXPECT_EQ(*next, 1u) << "a refused attach used no id";
}

TEST(LocalSession, ReleaseDropsThisSessionsClaimsNotTheBuffer) {
    auto session = makeLocal();
    const auto baseline = baselineOf(*session);
    auto fd = session->allocate("system", 64 * KiB);
    ASSERT_TRUE(fd);
    auto att = session->attach(*fd, "isp");
    ASSERT_TRUE(att);
    auto m = session->map(*att, DmaDirection::Bidirectional);
    ASSERT_TRUE(m);
    ASSERT_TRUE(session->beginCpuAccess(*fd, kSyncWrite));

    ASSERT_TRUE(session->release(*fd));
    EXPECT_EQ(session->map(*att, DmaDirection::ToDevice).error().code(), ENOENT) << "released with its claim";
    EXPECT_EQ(session->unmap(m->id).error().code(), ENOENT);
    EXPECT_EQ(session->release(*fd).error().code(), ENOENT);
    auto info = session->bufinfo();
    ASSERT_TRUE(info);
    ASSERT_EQ(info->size(), 1u) << "the fd still holds the buffer";
    EXPECT_TRUE((*info)[0].attachedDevices.empty());
    EXPECT_TRUE((*info)[0].mappings.empty());
    EXPECT_EQ((*info)[0].cpuAccessDepth, 0u);
    auto stats = session->stats();
    ASSERT_TRUE(stats);
    EXPECT_TRUE(stats->lifetimeBugs.empty());
    EXPECT_EQ(stats->domains[1].inUseCount, 0u) << "the ISP's IOVA mapping is no longer in use";

    // Acting on the fd again claims it again.
    auto again = session->attach(*fd, "isp");
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, 2u);
    fd->reset();
    EXPECT_EQ(baselineOf(*session), baseline);
}

TEST(LocalSession, ClosingTheLastFdTearsDownAttachmentsAndMappingsWithoutALifetimeBug) {
    auto session = makeLocal();
    const auto baseline = baselineOf(*session);
    auto fd = session->allocate("system", 64 * KiB);
    ASSERT_TRUE(fd);
    auto att = session->attach(*fd, "gpu");
    ASSERT_TRUE(att);
    ASSERT_TRUE(session->map(*att, DmaDirection::ToDevice));
    ASSERT_TRUE(session->beginCpuAccess(*fd, kSyncRead));
    fd->reset();
    EXPECT_EQ(baselineOf(*session), baseline);
    EXPECT_EQ(session->map(*att, DmaDirection::ToDevice).error().code(), ENOENT);
    auto stats = session->stats();
    ASSERT_TRUE(stats);
    EXPECT_TRUE(stats->lifetimeBugs.empty()) << stats->lifetimeBugs.front();
}

TEST(LocalSession, CpuAccessBracketsNestAndEndMustMatchABegin) {
    auto session = makeLocal();
    auto fd = session->allocate("system", 4096);
    ASSERT_TRUE(fd);
    EXPECT_EQ(session->beginCpuAccess(*fd, 0).error().code(), EINVAL);
    EXPECT_EQ(session->beginCpuAccess(*fd, 4).error().code(), EINVAL);
    EXPECT_EQ(session->endCpuAccess(*fd, kSyncRead).error().code(), EINVAL) << "nothing begun";
    ASSERT_TRUE(session->beginCpuAccess(*fd, kSyncRead));
    ASSERT_TRUE(session->beginCpuAccess(*fd, kSyncReadWrite));
    auto depth = [&] {
        auto info = session->bufinfo();
        return info && info->size() == 1 ? (*info)[0].cpuAccessDepth : 99u;
    };
    EXPECT_EQ(depth(), 2u);
    EXPECT_EQ(session->endCpuAccess(*fd, kSyncWrite).error().code(), EINVAL) << "no bracket began with write only";
    ASSERT_TRUE(session->endCpuAccess(*fd, kSyncRead));
    EXPECT_EQ(depth(), 1u);
    ASSERT_TRUE(session->endCpuAccess(*fd, kSyncReadWrite));
    EXPECT_EQ(depth(), 0u);
}

TEST(LocalSession, OpenCpuAccessBracketsAreBounded) {
    auto session = makeLocal();
    auto fd = session->allocate("system", 4096);
    ASSERT_TRUE(fd);
    // A client that only ever begins must hit a limit, not grow the allocator.
    size_t begun = 0;
    Result<void> r;
    while ((r = session->beginCpuAccess(*fd, kSyncRead)) && begun < 100000)
        ++begun;
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EBUSY);
    EXPECT_EQ(begun, 1024u);
    // Ending one makes room for one more.
    ASSERT_TRUE(session->endCpuAccess(*fd, kSyncRead));
    EXPECT_TRUE(session->beginCpuAccess(*fd, kSyncRead));
}

TEST(LocalSession, OpenCpuAccessBracketsAreBoundedPerSessionNotOnlyPerBuffer) {
    auto session = makeLocal();
    // 1024 on one buffer is its bound; a session that spreads its brackets
    // over many buffers (a uid may have 4096, and claim any it has an fd
    // of) must hit a bound of its own too: 4096, as for mappings.
    std::vector<UniqueFd> fds;
    size_t begun = 0;
    Result<void> r;
    for (int buffer = 0; buffer < 8 && r; ++buffer) {
        auto fd = session->allocate("system", 4096);
        ASSERT_TRUE(fd);
        fds.push_back(std::move(*fd));
        for (size_t i = 0; i < 1024 && (r = session->beginCpuAccess(fds.back(), kSyncRead)); ++i)
            ++begun;
    }
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EBUSY) << r.error().message();
    EXPECT_EQ(begun, 4096u);
    // Ending one anywhere makes room for one more anywhere; so does
    // releasing a buffer, with every bracket on it.
    ASSERT_TRUE(session->endCpuAccess(fds.front(), kSyncRead));
    EXPECT_TRUE(session->beginCpuAccess(fds.back(), kSyncRead));
    EXPECT_FALSE(session->beginCpuAccess(fds.back(), kSyncRead));
    ASSERT_TRUE(session->release(fds.front())); // its 1023
    auto another = session->allocate("system", 4096);
    ASSERT_TRUE(another);
    for (size_t i = 0; i < 1023; ++i)
        ASSERT_TRUE(session->beginCpuAccess(*another, kSyncRead)) << i;
    EXPECT_FALSE(session->beginCpuAccess(*another, kSyncRead));
}

TEST(LocalSession, WhatASessionsMappingsHoldIsBoundedNotOnlyTheirCount) {
    auto session = makeLocal();
    const auto baseline = baselineOf(*session);
    // A mapping costs the daemon its segments and the storage's chunks
    // (the device keeps both, for transfers and bufinfo): 1 GiB of 1 MiB
    // chunks on a device of 64 KiB segments and no IOMMU is 16384 of one
    // and 1024 of the other, some 2 MiB of the daemon's memory, for one
    // request over memory no one ever touches. 4096 mappings of it must
    // not be the only bound.
    {
        auto fd = session->allocate("system-dma32", 1 * GiB);
        ASSERT_TRUE(fd) << fd.error().toString();
        auto usb = session->attach(*fd, "usb");
        ASSERT_TRUE(usb) << usb.error().toString();
        std::vector<uint64_t> mapped;
        Result<SessionMapping> m = Error(EINVAL, "none yet");
        while (mapped.size() < 8 && (m = session->map(*usb, DmaDirection::ToDevice))) {
            EXPECT_EQ(m->segments.size(), 16384u);
            mapped.push_back(m->id);
        }
        ASSERT_FALSE(m) << "8 mappings of 16384 segments each";
        EXPECT_EQ(m.error().code(), ENOSPC) << m.error().message();
        EXPECT_EQ(mapped.size(), 65536u / (16384 + 1024)) << "65536 segments and chunks in all";
        // Unmapping makes room; so does releasing the buffer, with every
        // mapping of it.
        ASSERT_TRUE(session->unmap(mapped.back()));
        EXPECT_TRUE(session->map(*usb, DmaDirection::ToDevice));
        ASSERT_TRUE(session->release(*fd));
        auto again = session->attach(*fd, "usb");
        ASSERT_TRUE(again);
        for (size_t i = 0; i < mapped.size(); ++i)
            EXPECT_TRUE(session->map(*again, DmaDirection::ToDevice)) << i;
        ASSERT_TRUE(session->release(*fd));
    }
    expectBackTo(*session, baseline);
}

TEST(LocalSession, SetNameShowsInBufinfoAndIsLimitedLikeDmaBuf) {
    auto session = makeLocal();
    auto fd = session->allocate("system", 4096);
    ASSERT_TRUE(fd);
    ASSERT_TRUE(session->setName(*fd, "frame-0"));
    EXPECT_EQ(session->setName(*fd, std::string(32, 'x')).error().code(), EINVAL);
    auto info = session->bufinfo();
    ASSERT_TRUE(info);
    ASSERT_EQ(info->size(), 1u);
    EXPECT_EQ((*info)[0].name, "frame-0");
    struct stat st {};
    ASSERT_EQ(::fstat(fd->get(), &st), 0);
    EXPECT_EQ((*info)[0].inode, st.st_ino) << "the inode of the fd the session handed out";
}

TEST(LocalSession, DeferredBuffersGetStorageAtFirstMapFromTheHeapTheDevicesNeed) {
    auto session = makeLocal();
    const auto baseline = baselineOf(*session);
    auto fd = session->create(1 * MiB, "scanout");
    ASSERT_TRUE(fd) << fd.error().toString();
    EXPECT_EQ(test::fdSize(fd->get()), 1 * MiB);
    auto display = session->attach(*fd, "display");
    ASSERT_TRUE(display) << display.error().toString();
    auto gpu = session->attach(*fd, "gpu");
    ASSERT_TRUE(gpu);
    EXPECT_EQ(heapStats(*session, "linux,cma").liveBuffers, 0u) << "no storage before the first map";
    auto m = session->map(*display, DmaDirection::ToDevice);
    ASSERT_TRUE(m) << m.error().toString();
    ASSERT_EQ(m->segments.size(), 1u) << "the display takes one contiguous segment";
    EXPECT_EQ(heapStats(*session, "linux,cma").liveBuffers, 1u);
    EXPECT_EQ(session->create(0).error().code(), EINVAL);
    EXPECT_EQ(session->create(4096, std::string(32, 'n')).error().code(), EINVAL);
    ASSERT_TRUE(session->release(*fd));
    fd->reset();
    EXPECT_EQ(baselineOf(*session), baseline);
}

TEST(LocalSession, ExplainIsTheContextsExplain) {
    auto session = makeLocal();
    auto context = Context::create();
    ASSERT_TRUE(context);
    const std::vector<std::string> devices = {"gpu", "display"};
    auto a = session->explain(devices, 8 * MiB, CpuAccess::Rare);
    auto b = (*context)->explain(devices, 8 * MiB, CpuAccess::Rare);
    ASSERT_TRUE(a);
    ASSERT_TRUE(b);
    EXPECT_EQ(a->heap, b->heap);
    EXPECT_EQ(a->ranking, b->ranking);
    EXPECT_EQ(session->explain(std::vector<std::string>{"nope"}, 4096).error().code(), ENOENT);
}

TEST(LocalSession, DestroyingTheSessionLeavesTheFdsAsPlainMemory) {
    auto session = makeLocal();
    auto fd = session->allocate("system", 4096);
    ASSERT_TRUE(fd);
    auto att = session->attach(*fd, "gpu");
    ASSERT_TRUE(att);
    ASSERT_TRUE(session->map(*att, DmaDirection::ToDevice));
    session.reset(); // tears down the attachment, the mapping and the allocator
    test::Mapped m(fd->get(), 4096);
    ASSERT_TRUE(m.valid());
    m.bytes()[0] = 7;
    EXPECT_EQ(m.bytes()[0], 7);
}

TEST(LocalSession, StorageOfADeadBufferIsThereForTheNextAllocationAtOnce) {
    auto session = makeLocal();
    // Most of the CMA pool, freed by closing the fd, then needed again
    // right away: eagerly, and by the first map of a deferred buffer.
    auto big = session->allocate("linux,cma", 200 * MiB);
    ASSERT_TRUE(big);
    big->reset();
    auto again = session->allocate("linux,cma", 200 * MiB);
    ASSERT_TRUE(again) << again.error().toString();
    auto deferred = session->create(200 * MiB);
    ASSERT_TRUE(deferred);
    auto display = session->attach(*deferred, "display");
    ASSERT_TRUE(display);
    again->reset();
    auto m = session->map(*display, DmaDirection::ToDevice);
    ASSERT_TRUE(m) << m.error().toString();
    EXPECT_EQ(test::heapStats(*session, "linux,cma").failedAllocations, 0u);
}

TEST(LocalSession, TwoSessionsDoNotKnowEachOthersBuffers) {
    auto a = makeLocal();
    auto b = makeLocal();
    auto fd = a->allocate("system", 4096);
    ASSERT_TRUE(fd);
    EXPECT_EQ(b->import(*fd).error().code(), EBADF) << "each local session is its own allocator";
}

} // namespace
} // namespace cenalloc
