// SPDX-License-Identifier: MIT
// Tests of the lifetime mechanism: Buffer::surrenderFd, the inotify watcher and its overflow recovery.
#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <set>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cenalloc/context.h>
#include <cenalloc/device.h>
#include <cenalloc/memfd.h>
#include <cenalloc/units.h>

#include <cenalloc/session.h>

#include "service/tracker.h"

namespace cenalloc {
namespace {

TEST(SurrenderFd, TheBufferKeepsNoFdAndFdOperationsFailCleanly) {
    auto context = Context::create();
    ASSERT_TRUE(context);
    auto buffer = (*context)->allocate("system-dma32", 64 * KiB);
    ASSERT_TRUE(buffer);
    Buffer& b = **buffer;
    struct stat before {};
    ASSERT_EQ(::fstat(b.fd().get(), &before), 0);
    EXPECT_FALSE(b.fdSurrendered());

    struct stat told {};
    auto fd = b.surrenderFd(&told);
    ASSERT_TRUE(fd) << fd.error().toString();
    EXPECT_TRUE(b.fdSurrendered());
    EXPECT_FALSE(b.fd().valid());
    struct stat st {};
    ASSERT_EQ(::fstat(fd->get(), &st), 0);
    EXPECT_EQ(st.st_ino, before.st_ino);
    EXPECT_EQ(b.info().inode, st.st_ino) << "bufinfo still shows the inode";
    // What it reports of the fd is the fd's own fstat.
    EXPECT_EQ(told.st_ino, st.st_ino);
    EXPECT_EQ(told.st_dev, st.st_dev);
    EXPECT_EQ(told.st_mode, st.st_mode);
    EXPECT_EQ(told.st_size, st.st_size);
    EXPECT_EQ(b.dupFd().error().code(), EBADF);
    EXPECT_EQ(b.mmap().error().code(), EBADF);
    EXPECT_EQ(b.surrenderFd().error().code(), EBADF);

    // Attach, map and CPU access need no fd; device DMA does.
    auto gpu = (*context)->device("gpu");
    ASSERT_TRUE(gpu);
    auto att = b.attach(**gpu);
    ASSERT_TRUE(att);
    auto m = att->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(m);
    EXPECT_TRUE(b.beginCpuAccess(kSyncRead));
    std::byte byte{};
    auto dma = (*gpu)->read(m->segments()[0].dmaAddress, std::span(&byte, 1));
    ASSERT_FALSE(dma);
    EXPECT_EQ(dma.error().code(), EBADF);
}

TEST(InodeWatcher, ReportsAnInodeGoneOnlyWhenItsLastFdAndMappingGo) {
    auto watcher = InodeWatcher::create();
    ASSERT_TRUE(watcher);
    bool overflowed = false;
    auto a = createSealedMemfd("a", 4096);
    auto b = createSealedMemfd("b", 4096);
    ASSERT_TRUE(a && b);
    auto wa = watcher->watch(*a);
    auto wb = watcher->watch(*b);
    ASSERT_TRUE(wa && wb);
    EXPECT_NE(*wa, *wb);
    UniqueFd dup(::fcntl(a->get(), F_DUPFD_CLOEXEC, 0));
    void* map = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, b->get(), 0);
    ASSERT_NE(map, MAP_FAILED);
    a->reset();
    b->reset();
    auto gone = watcher->readGone(overflowed);
    ASSERT_TRUE(gone);
    EXPECT_TRUE(gone->empty()) << "a dup and a mapping still hold them";
    auto live = watcher->liveWatches();
    ASSERT_TRUE(live);
    EXPECT_EQ(*live, (std::set<int>{*wa, *wb}));

    dup.reset();
    ::munmap(map, 4096);
    gone = watcher->readGone(overflowed);
    ASSERT_TRUE(gone);
    EXPECT_FALSE(overflowed);
    EXPECT_EQ(std::set<int>(gone->begin(), gone->end()), (std::set<int>{*wa, *wb}));
    live = watcher->liveWatches();
    ASSERT_TRUE(live);
    EXPECT_TRUE(live->empty()) << "the kernel dropped both watches";
}

TEST(InodeWatcher, InodeOfRefusesWhatCannotBeABuffer) {
    EXPECT_EQ(inodeOf(BorrowedFd(-1)).error().code(), EBADF);
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd r(p[0]), w(p[1]);
    EXPECT_EQ(inodeOf(r).error().code(), EBADF);
    auto memfd = createSealedMemfd("x", 4096);
    ASSERT_TRUE(memfd);
    auto key = inodeOf(*memfd);
    ASSERT_TRUE(key);
    struct stat st {};
    ASSERT_EQ(::fstat(memfd->get(), &st), 0);
    EXPECT_EQ(key->inode, st.st_ino);
    EXPECT_EQ(key->device, st.st_dev);

    // From the fstat surrenderFd() already made: the same key.
    EXPECT_EQ(inodeKeyOf(st), *key);
}

} // namespace
} // namespace cenalloc

namespace cenalloc {
namespace {

TEST(InodeWatcher, AnOverflowedEventQueueLosesNoBuffer) {
    // More deaths than the kernel queues events for (fs.inotify.max_queued_events,
    // two events per inode), all before the session looks: the session must find
    // out from the watches the kernel still holds.
    long maxEvents = 16384;
    if (FILE* f = std::fopen("/proc/sys/fs/inotify/max_queued_events", "r")) {
        if (std::fscanf(f, "%ld", &maxEvents) != 1)
            maxEvents = 16384;
        std::fclose(f);
    }
    const size_t count = static_cast<size_t>(maxEvents / 2 + 64);
    if (count > 40000)
        GTEST_SKIP() << "fs.inotify.max_queued_events is too large to overflow quickly";
    auto session = Session::local();
    ASSERT_TRUE(session);
    auto survivor = (*session)->allocate("system", 4096);
    ASSERT_TRUE(survivor);
    // Mappings hold the buffers (an fd each would exceed RLIMIT_NOFILE).
    std::vector<void*> maps;
    for (size_t i = 0; i < count; ++i) {
        auto fd = (*session)->allocate("system", 4096);
        ASSERT_TRUE(fd) << fd.error().toString();
        void* p = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd->get(), 0);
        ASSERT_NE(p, MAP_FAILED);
        maps.push_back(p);
    }
    for (void* p : maps)
        ::munmap(p, 4096);
    auto stats = (*session)->stats();
    ASSERT_TRUE(stats);
    EXPECT_EQ(stats->liveBuffers, 1u) << "every unmapped buffer was found gone";
    EXPECT_EQ(stats->heaps[0].stats.liveBuffers, 1u);
    auto info = (*session)->bufinfo();
    ASSERT_TRUE(info);
    ASSERT_EQ(info->size(), 1u);
    EXPECT_TRUE((*session)->import(*survivor)) << "the one still held is still known";
}

} // namespace
} // namespace cenalloc
