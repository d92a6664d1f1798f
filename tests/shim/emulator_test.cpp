// SPDX-License-Identifier: MIT
// Tests of DmaHeapEmulator in-process: heap fds, allocation rules, buffer ioctls, mmap/lseek, stat and listing.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <memory>
#include <set>
#include <string>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <cenalloc/session.h>

#include "shim/emulator.h"

namespace cenalloc::shim {
namespace {

/// Open fds of this process.
size_t openFds() {
    size_t count = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
        (void)entry, ++count;
    return count;
}

class Emulator : public ::testing::Test {
protected:
    void SetUp() override {
        auto session = Session::local();
        ASSERT_TRUE(session) << session.error().toString();
        session_ = std::move(*session);
        // A kernel heap directory that does not exist: the host has none.
        options_.kernelHeapDir = "/nonexistent/dma_heap";
        auto emulator = DmaHeapEmulator::create(session_, options_, nextLibc());
        ASSERT_TRUE(emulator) << emulator.error().toString();
        emulator_ = std::move(*emulator);
    }

    int openHeap(const char* name = "system", int flags = O_RDWR | O_CLOEXEC) {
        std::string path = std::string("/dev/dma_heap/") + name;
        auto fd = emulator_->open(AT_FDCWD, path.c_str(), flags, 0);
        EXPECT_TRUE(fd.has_value()) << path;
        return fd.value_or(-1);
    }

    /// DMA_HEAP_IOCTL_ALLOC through the emulator: the fd, or -errno.
    int allocate(int heap, uint64_t len, uint32_t fdFlags = O_RDWR | O_CLOEXEC, uint64_t heapFlags = 0,
                 uint32_t fdIn = 0) {
        dma_heap_allocation_data data{len, fdIn, fdFlags, heapFlags};
        auto ret = emulator_->ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &data);
        EXPECT_TRUE(ret.has_value());
        if (!ret || *ret != 0)
            return -errno;
        return static_cast<int>(data.fd);
    }

    size_t liveBuffers() {
        auto info = session_->bufinfo();
        EXPECT_TRUE(info);
        return info ? info->size() : 0;
    }

    const BufferInfo* infoOf(int fd, std::vector<BufferInfo>& all) {
        struct stat st {};
        if (::fstat(fd, &st) != 0)
            return nullptr;
        auto info = session_->bufinfo();
        if (!info)
            return nullptr;
        all = std::move(*info);
        for (const auto& b : all)
            if (b.inode == st.st_ino)
                return &b;
        return nullptr;
    }

    ShimOptions options_;
    std::shared_ptr<Session> session_;
    std::unique_ptr<DmaHeapEmulator> emulator_;
};

TEST_F(Emulator, EveryHeapOfTheSessionIsServed) {
    auto heaps = session_->heaps();
    ASSERT_TRUE(heaps);
    std::vector<std::string> expected;
    for (const auto& h : *heaps)
        expected.push_back(h.name);
    EXPECT_EQ(emulator_->heapNames(), expected);
    EXPECT_NE(std::find(expected.begin(), expected.end(), "system"), expected.end());
}

TEST_F(Emulator, OtherPathsAndFdsAreNotItsBusiness) {
    EXPECT_FALSE(emulator_->open(AT_FDCWD, "/dev/null", O_RDONLY, 0));
    EXPECT_FALSE(emulator_->open(AT_FDCWD, "/dev/dma_heap/no-such-heap", O_RDONLY, 0))
        << "an unknown heap is libc's ENOENT";
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    int value = 0;
    EXPECT_FALSE(emulator_->ioctl(fd, FIONREAD, &value));
    EXPECT_FALSE(emulator_->lseek(fd, 0, SEEK_CUR));
    ::close(fd);
}

TEST_F(Emulator, AHeapFdIsRecognisedByItsInodeThroughDupAndAfterClosingTheFirst) {
    int heap = openHeap();
    ASSERT_GE(heap, 0);
    int copy = ::dup(heap);
    ::close(heap);
    int buffer = allocate(copy, 4096);
    ASSERT_GE(buffer, 0);
    EXPECT_EQ(::lseek(buffer, 0, SEEK_END), 4096);
    ::close(buffer);
    ::close(copy);
    // The fd number now free is nothing of ours.
    EXPECT_FALSE(emulator_->ioctl(copy, DMA_HEAP_IOCTL_ALLOC, nullptr));
}

TEST_F(Emulator, InvalidRequestsFailWithTheKernelsErrnoAndLeaveNothingBehind) {
    int heap = openHeap();
    ASSERT_GE(heap, 0);
    const struct {
        const char* name;
        uint64_t len;
        uint32_t fdFlags;
        uint64_t heapFlags;
        uint32_t fdIn;
        int error;
    } cases[] = {
        {"fd set on input", 4096, O_RDWR, 0, 3, EINVAL},
        {"O_NONBLOCK", 4096, O_RDWR | O_NONBLOCK, 0, 0, EINVAL},
        {"O_APPEND", 4096, O_RDWR | O_APPEND, 0, 0, EINVAL},
        {"heap flag", 4096, O_RDWR, 1, 0, EINVAL},
        {"top heap flag", 4096, O_RDWR, uint64_t{1} << 63, 0, EINVAL},
        {"zero length", 0, O_RDWR, 0, 0, EINVAL},
        {"length wraps when page-aligned", UINT64_MAX - 100, O_RDWR, 0, 0, EINVAL},
    };
    const size_t fdsBefore = openFds();
    const size_t buffersBefore = liveBuffers();
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(allocate(heap, c.len, c.fdFlags, c.heapFlags, c.fdIn), -c.error);
    }
    EXPECT_EQ(openFds(), fdsBefore);
    EXPECT_EQ(liveBuffers(), buffersBefore);
    ::close(heap);
}

TEST_F(Emulator, ExhaustionIsEnomemAndLeavesNothingBehind) {
    int heap = openHeap("vpu-carveout");
    ASSERT_GE(heap, 0);
    const size_t fdsBefore = openFds();
    const size_t buffersBefore = liveBuffers();
    EXPECT_EQ(allocate(heap, uint64_t{1} << 40), -ENOMEM);
    EXPECT_EQ(openFds(), fdsBefore);
    EXPECT_EQ(liveBuffers(), buffersBefore);
    ::close(heap);
}

TEST_F(Emulator, ShortStructsAreZeroExtendedAndLongOnesKeepTheirTail) {
    int heap = openHeap();
    ASSERT_GE(heap, 0);
    // 16 bytes: no heap_flags field, so the request is the kernel's with 0.
    unsigned char shortArg[16] = {};
    uint64_t len = 8192;
    uint32_t flags = O_RDWR | O_CLOEXEC;
    std::memcpy(shortArg, &len, 8);
    std::memcpy(shortArg + 12, &flags, 4);
    auto ret = emulator_->ioctl(heap, _IOC(_IOC_READ | _IOC_WRITE, 'H', 0, sizeof shortArg), shortArg);
    ASSERT_TRUE(ret);
    ASSERT_EQ(*ret, 0);
    uint32_t fd = 0;
    std::memcpy(&fd, shortArg + 8, 4);
    EXPECT_EQ(::lseek(static_cast<int>(fd), 0, SEEK_END), 8192);
    ::close(static_cast<int>(fd));
    // 40 bytes with a tail the kernel ignores and copies back unchanged.
    unsigned char longArg[40];
    std::memset(longArg, 0x5a, sizeof longArg);
    dma_heap_allocation_data data{4096, 0, O_RDWR | O_CLOEXEC, 0};
    std::memcpy(longArg, &data, sizeof data);
    ret = emulator_->ioctl(heap, _IOC(_IOC_READ | _IOC_WRITE, 'H', 0, sizeof longArg), longArg);
    ASSERT_TRUE(ret);
    ASSERT_EQ(*ret, 0);
    for (size_t i = sizeof data; i < sizeof longArg; ++i)
        EXPECT_EQ(longArg[i], 0x5a) << i;
    std::memcpy(&fd, longArg + 8, 4);
    ::close(static_cast<int>(fd));
    // Other numbers than 0 are not heap ioctls at all.
    errno = 0;
    ret = emulator_->ioctl(heap, _IOC(_IOC_READ | _IOC_WRITE, 'H', 1, 24), &data);
    ASSERT_TRUE(ret);
    EXPECT_EQ(*ret, -1);
    EXPECT_EQ(errno, EINVAL);
    ::close(heap);
}

TEST_F(Emulator, BufferFdsTakeTheAccessModeOfTheirFdFlags) {
    int heap = openHeap();
    ASSERT_GE(heap, 0);
    const struct {
        uint32_t flags;
        int accmode;
        bool cloexec;
    } cases[] = {
        {O_RDWR | O_CLOEXEC, O_RDWR, true},
        {O_RDONLY, O_RDONLY, false},
        {O_WRONLY | O_CLOEXEC, O_WRONLY, true},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.flags);
        int fd = allocate(heap, 4096, c.flags);
        ASSERT_GE(fd, 0);
        EXPECT_EQ(::fcntl(fd, F_GETFL) & O_ACCMODE, c.accmode);
        EXPECT_EQ((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, c.cloexec);
        std::vector<BufferInfo> all;
        EXPECT_NE(infoOf(fd, all), nullptr) << "still the session's buffer";
        ::close(fd);
    }
    ::close(heap);
}

TEST_F(Emulator, SyncAndSetNameReachTheAllocator) {
    int heap = openHeap();
    int fd = allocate(heap, 3 * 4096);
    ASSERT_GE(fd, 0);
    dma_buf_sync sync{DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW};
    EXPECT_EQ(emulator_->ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync), 0);
    std::vector<BufferInfo> all;
    const BufferInfo* info = infoOf(fd, all);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->cpuAccessDepth, 1u);
    EXPECT_EQ(info->size, 3u * 4096);
    sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW;
    EXPECT_EQ(emulator_->ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync), 0);
    EXPECT_EQ(emulator_->ioctl(fd, DMA_BUF_SET_NAME_A, const_cast<char*>("camera-frame")), 0);
    info = infoOf(fd, all);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->cpuAccessDepth, 0u);
    EXPECT_EQ(info->name, "camera-frame");
    // A refused name leaves the old one.
    std::string tooLong(32, 'x');
    errno = 0;
    EXPECT_EQ(emulator_->ioctl(fd, DMA_BUF_SET_NAME_B, tooLong.data()), -1);
    EXPECT_EQ(errno, EINVAL);
    info = infoOf(fd, all);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->name, "camera-frame");
    ::close(fd);
    ::close(heap);
}

TEST_F(Emulator, AnEndThatMatchesNoStartSucceedsAndClosesWhatSingleStartsLeftOpen) {
    int heap = openHeap();
    int fd = allocate(heap, 4096);
    ASSERT_GE(fd, 0);
    dma_buf_sync sync{DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE};
    EXPECT_EQ(emulator_->ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync), 0) << "the kernel keeps no brackets";
    sync.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ;
    EXPECT_EQ(emulator_->ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync), 0);
    sync.flags = DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE;
    EXPECT_EQ(emulator_->ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync), 0);
    sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW;
    EXPECT_EQ(emulator_->ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync), 0);
    std::vector<BufferInfo> all;
    const BufferInfo* info = infoOf(fd, all);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->cpuAccessDepth, 0u);
    ::close(fd);
    ::close(heap);
}

TEST_F(Emulator, DmaBufIoctlsOnFilesThatAreNotBuffersAreLibcs) {
    int memfd = ::memfd_create("not-a-buffer", MFD_CLOEXEC);
    ASSERT_GE(memfd, 0);
    dma_buf_sync sync{DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW};
    EXPECT_FALSE(emulator_->ioctl(memfd, DMA_BUF_IOCTL_SYNC, &sync));
    sync.flags = 0xff; // invalid flags: still not ours to refuse
    EXPECT_FALSE(emulator_->ioctl(memfd, DMA_BUF_IOCTL_SYNC, &sync));
    EXPECT_FALSE(emulator_->ioctl(memfd, DMA_BUF_SET_NAME_B, const_cast<char*>("x")));
    EXPECT_FALSE(emulator_->lseek(memfd, 0, SEEK_CUR));
    ::close(memfd);
}

/// A session that counts the calls that name a buffer by fd (what the
/// daemon would be asked), serving them through another session.
class CountingSession final : public Session {
public:
    explicit CountingSession(std::shared_ptr<Session> inner) : inner_(std::move(inner)) {}
    std::atomic<int> fdCalls{0};

    std::string describe() const override { return inner_->describe(); }
    Result<std::vector<HeapInfo>> heaps() override { return inner_->heaps(); }
    Result<UniqueFd> allocate(const AllocRequest& request) override { return inner_->allocate(request); }
    Result<UniqueFd> create(const CreateRequest& request) override { return inner_->create(request); }
    Result<SessionAllocatedFor> allocateFor(const AllocForRequest& request) override {
        return inner_->allocateFor(request);
    }
    Result<uint64_t> import(BorrowedFd buffer) override {
        ++fdCalls;
        return inner_->import(buffer);
    }
    Result<void> release(BorrowedFd buffer) override {
        ++fdCalls;
        return inner_->release(buffer);
    }
    Result<uint64_t> attach(BorrowedFd buffer, std::string_view device) override {
        ++fdCalls;
        return inner_->attach(buffer, device);
    }
    Result<void> detach(uint64_t attachment) override { return inner_->detach(attachment); }
    Result<uint64_t> attach(BorrowedFd b, std::string_view d, SessionAttachOptions o) override {
        return inner_->attach(b, d, o);
    }
    Result<void> pin(uint64_t a) override { return inner_->pin(a); }
    Result<void> unpin(uint64_t a) override { return inner_->unpin(a); }
    Result<void> migrate(BorrowedFd b, std::string_view h) override { return inner_->migrate(b, h); }
    Result<AttachForecast> forecast(BorrowedFd b, std::string_view d) override { return inner_->forecast(b, d); }
    Result<void> acknowledgeMove(uint64_t a, uint64_t q) override { return inner_->acknowledgeMove(a, q); }
    BorrowedFd eventFd() override { return inner_->eventFd(); }
    void setMoveCallback(MoveEventCallback c) override { inner_->setMoveCallback(std::move(c)); }
    Result<size_t> dispatchEvents() override { return inner_->dispatchEvents(); }
    Result<std::optional<MoveEvent>> nextEvent() override { return inner_->nextEvent(); }
    Result<SessionMapping> map(uint64_t attachment, DmaDirection direction) override {
        return inner_->map(attachment, direction);
    }
    Result<void> unmap(uint64_t mapping) override { return inner_->unmap(mapping); }
    Result<void> beginCpuAccess(BorrowedFd buffer, SyncFlags flags) override {
        ++fdCalls;
        return inner_->beginCpuAccess(buffer, flags);
    }
    Result<void> endCpuAccess(BorrowedFd buffer, SyncFlags flags) override {
        ++fdCalls;
        return inner_->endCpuAccess(buffer, flags);
    }
    Result<void> setName(BorrowedFd buffer, const BufferName& name) override {
        ++fdCalls;
        return inner_->setName(buffer, name);
    }
    Result<std::vector<BufferInfo>> bufinfo() override { return inner_->bufinfo(); }
    Result<BufferInfo> describe(BorrowedFd buffer) override {
        ++fdCalls;
        return inner_->describe(buffer);
    }
    Result<UniqueFd> storageFd(BorrowedFd buffer) override {
        ++fdCalls;
        return inner_->storageFd(buffer);
    }
    Result<AllocatorStats> stats(bool resetWatermark) override { return inner_->stats(resetWatermark); }
    Result<Explanation> explain(std::span<const std::string> devices, uint64_t size, CpuAccess cpuAccess) override {
        return inner_->explain(devices, size, cpuAccess);
    }

private:
    std::shared_ptr<Session> inner_;
};

TEST_F(Emulator, ProgramsOwnUnlinkedFilesNeverReachTheSessionAndBuffersStillDo) {
    auto counting = std::make_shared<CountingSession>(session_);
    auto made = DmaHeapEmulator::create(counting, options_, nextLibc());
    ASSERT_TRUE(made) << made.error().toString();
    DmaHeapEmulator& e = **made;
    auto heap = e.open(AT_FDCWD, "/dev/dma_heap/system", O_RDWR | O_CLOEXEC, 0);
    ASSERT_TRUE(heap && *heap >= 0);
    dma_heap_allocation_data data{4 * 4096, 0, O_RDWR | O_CLOEXEC, 0};
    ASSERT_EQ(e.ioctl(*heap, DMA_HEAP_IOCTL_ALLOC, &data), 0);
    const int buffer = static_cast<int>(data.fd);

    // A tmpfile() and a memfd of the program's own: unlinked regular files
    // like a buffer, which lseek and mmap used to ask the session about (a
    // daemon round trip per lseek, and the fd sent to the daemon).
    FILE* file = std::tmpfile();
    ASSERT_NE(file, nullptr);
    const int tmp = ::fileno(file);
    ASSERT_EQ(::ftruncate(tmp, 4 * 4096), 0);
    const int memfd = ::memfd_create("programs-own", MFD_CLOEXEC);
    ASSERT_GE(memfd, 0);
    ASSERT_EQ(::ftruncate(memfd, 4 * 4096), 0);
    const int before = counting->fdCalls.load();
    for (int fd : {tmp, memfd}) {
        SCOPED_TRACE(fd == tmp ? "tmpfile" : "memfd");
        EXPECT_FALSE(e.lseek(fd, 0, SEEK_CUR));
        EXPECT_FALSE(e.lseek(fd, 4096, SEEK_SET));
        EXPECT_FALSE(e.lseek(fd, 0, SEEK_END));
        EXPECT_FALSE(e.mmap(nullptr, 2 * 4096, PROT_READ, MAP_PRIVATE, fd, 0));
        EXPECT_FALSE(e.mmap(nullptr, 8 * 4096, PROT_READ, MAP_SHARED, fd, 0));
    }
    EXPECT_EQ(counting->fdCalls.load(), before) << "a program's own file reached the session";

    // A buffer still gets the dma-buf's answers.
    errno = 0;
    EXPECT_EQ(e.lseek(buffer, 0, SEEK_CUR), -1);
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_EQ(e.mmap(nullptr, 8 * 4096, PROT_READ, MAP_SHARED, buffer, 0), MAP_FAILED);
    EXPECT_EQ(errno, EINVAL);
    EXPECT_GT(counting->fdCalls.load(), before);

    // A buffer received from elsewhere (here: allocated past the shim) is
    // known once a dma-buf ioctl has named it.
    auto received = session_->allocate("system", 4096);
    ASSERT_TRUE(received);
    EXPECT_FALSE(e.lseek(received->get(), 0, SEEK_CUR)) << "not known yet: the memfd's answer";
    dma_buf_sync sync{DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ};
    EXPECT_EQ(e.ioctl(received->get(), DMA_BUF_IOCTL_SYNC, &sync), 0);
    sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ;
    EXPECT_EQ(e.ioctl(received->get(), DMA_BUF_IOCTL_SYNC, &sync), 0);
    errno = 0;
    EXPECT_EQ(e.lseek(received->get(), 0, SEEK_CUR), -1);
    EXPECT_EQ(errno, EINVAL);

    std::fclose(file);
    ::close(memfd);
    ::close(buffer);
    ::close(*heap);
}

TEST_F(Emulator, TheSetOfKnownBuffersIsPrunedAsBuffersDie) {
    int heap = openHeap();
    // Far more buffers than the set keeps before pruning, each dead before
    // the next: what is known stays bounded by what is alive.
    for (int i = 0; i < 2500; ++i) {
        int fd = allocate(heap, 4096);
        ASSERT_GE(fd, 0) << i;
        ::close(fd);
    }
    EXPECT_LE(emulator_->knownBufferCount(), 1024u);
    // Live buffers are never forgotten.
    std::vector<int> live;
    for (int i = 0; i < 1100; ++i) {
        live.push_back(allocate(heap, 4096));
        ASSERT_GE(live.back(), 0);
    }
    EXPECT_GE(emulator_->knownBufferCount(), 1100u);
    for (int fd : live) {
        errno = 0;
        EXPECT_EQ(emulator_->lseek(fd, 0, SEEK_CUR), -1);
        EXPECT_EQ(errno, EINVAL);
        ::close(fd);
    }
    ::close(heap);
}

TEST_F(Emulator, SharedMappingsOfItsBuffersArePopulatedKeepingTheCallersFlags) {
    int heap = openHeap();
    int fd = allocate(heap, 4 * 4096);
    ASSERT_GE(fd, 0);
    int flags = MAP_SHARED | MAP_NORESERVE;
    EXPECT_FALSE(emulator_->mmap(nullptr, 4 * 4096, PROT_READ, flags, fd, 0, &flags));
    EXPECT_EQ(flags, MAP_SHARED | MAP_NORESERVE | MAP_POPULATE);
    // A private page is copy-on-write: left as asked.
    flags = MAP_PRIVATE;
    EXPECT_FALSE(emulator_->mmap(nullptr, 4096, PROT_READ, flags, fd, 0, &flags));
    EXPECT_EQ(flags, MAP_PRIVATE);
    // A memfd that is not one of its buffers is none of its business.
    int other = ::memfd_create("other", MFD_CLOEXEC);
    ASSERT_GE(other, 0);
    ASSERT_EQ(::ftruncate(other, 4096), 0);
    flags = MAP_SHARED;
    EXPECT_FALSE(emulator_->mmap(nullptr, 4096, PROT_READ, flags, other, 0, &flags));
    EXPECT_EQ(flags, MAP_SHARED);
    ::close(other);
    ::close(fd);
    ::close(heap);
}

TEST_F(Emulator, MappingsBeyondTheBufferOrPrivateOnesOfSeveralPagesAreRefused) {
    int heap = openHeap();
    int fd = allocate(heap, 4 * 4096);
    ASSERT_GE(fd, 0);
    const struct {
        const char* name;
        size_t length;
        off_t offset;
        int flags;
        int error; // 0: libc's business (a memfd maps it as a dma-buf would)
    } cases[] = {
        {"whole", 4 * 4096, 0, MAP_SHARED, 0},
        {"last page", 4096, 3 * 4096, MAP_SHARED, 0},
        {"one page too many", 5 * 4096, 0, MAP_SHARED, EINVAL},
        {"offset at the end", 4096, 4 * 4096, MAP_SHARED, EINVAL},
        {"private page", 4096, 0, MAP_PRIVATE, 0},
        {"private pages", 2 * 4096, 0, MAP_PRIVATE, EINVAL},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto result = emulator_->mmap(nullptr, c.length, PROT_READ, c.flags, fd, c.offset);
        if (c.error == 0) {
            EXPECT_FALSE(result.has_value());
        } else {
            ASSERT_TRUE(result.has_value());
            EXPECT_EQ(*result, MAP_FAILED);
            EXPECT_EQ(errno, c.error);
        }
    }
    auto onHeap = emulator_->mmap(nullptr, 4096, PROT_READ, MAP_SHARED, heap, 0);
    ASSERT_TRUE(onHeap);
    EXPECT_EQ(*onHeap, MAP_FAILED);
    EXPECT_EQ(errno, ENODEV);
    auto seek = emulator_->lseek(fd, 0, SEEK_CUR);
    ASSERT_TRUE(seek);
    EXPECT_EQ(*seek, -1);
    EXPECT_EQ(errno, EINVAL);
    EXPECT_FALSE(emulator_->lseek(fd, 0, SEEK_END)) << "the memfd answers the size";
    seek = emulator_->lseek(heap, 0, SEEK_SET);
    ASSERT_TRUE(seek);
    EXPECT_EQ(errno, ESPIPE);
    ::close(fd);
    ::close(heap);
}

TEST_F(Emulator, HeapsStatAsCharacterDevicesInADirectory) {
    struct stat st {};
    ASSERT_EQ(emulator_->stat(AT_FDCWD, "/dev/dma_heap/system", &st, 0), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    ASSERT_EQ(emulator_->stat(AT_FDCWD, "/dev/dma_heap", &st, 0), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(emulator_->stat(AT_FDCWD, "/dev/dma_heap/system/", &st, 0), -1);
    EXPECT_EQ(errno, ENOTDIR);
    EXPECT_FALSE(emulator_->stat(AT_FDCWD, "/dev/dma_heap/no-such-heap", &st, 0));
    EXPECT_EQ(emulator_->access(AT_FDCWD, "/dev/dma_heap/system", R_OK | W_OK, 0), 0);
    EXPECT_EQ(emulator_->access(AT_FDCWD, "/dev/dma_heap/system", X_OK, 0), -1);
    // An fd of the heap says what its path says.
    struct stat viaPath {};
    ASSERT_EQ(emulator_->stat(AT_FDCWD, "/dev/dma_heap/system", &viaPath, 0), 0);
    int heap = openHeap();
    struct stat viaFd {};
    ASSERT_EQ(::fstat(heap, &viaFd), 0);
    EXPECT_TRUE(S_ISREG(viaFd.st_mode)) << "what the kernel says of the anchor";
    emulator_->fixFstat(heap, &viaFd);
    EXPECT_TRUE(S_ISCHR(viaFd.st_mode));
    EXPECT_EQ(viaFd.st_rdev, viaPath.st_rdev);
    EXPECT_EQ(viaFd.st_ino, viaPath.st_ino);
    ::close(heap);
}

TEST_F(Emulator, TheDirectoryListsEveryHeapAsACharacterDevice) {
    auto dir = emulator_->opendir("/dev/dma_heap");
    ASSERT_TRUE(dir);
    ASSERT_NE(*dir, nullptr);
    EXPECT_TRUE(emulator_->hasStreams());
    std::set<std::string> names;
    for (;;) {
        auto entry = emulator_->readdir(*dir);
        ASSERT_TRUE(entry);
        if (!*entry)
            break;
        names.insert((*entry)->d_name);
        if (std::strcmp((*entry)->d_name, ".") != 0 && std::strcmp((*entry)->d_name, "..") != 0) {
            EXPECT_EQ((*entry)->d_type, DT_CHR);
        }
    }
    std::set<std::string> expected = {".", ".."};
    for (const auto& n : emulator_->heapNames())
        expected.insert(n);
    EXPECT_EQ(names, expected);
    // Relative opens through the stream's fd name heaps.
    auto viaDirfd = emulator_->open(::dirfd(*dir), "system", O_RDWR | O_CLOEXEC, 0);
    ASSERT_TRUE(viaDirfd);
    EXPECT_GE(*viaDirfd, 0);
    ::close(*viaDirfd);
    emulator_->forgetStream(*dir);
    EXPECT_FALSE(emulator_->hasStreams());
    ::closedir(*dir);
}

TEST_F(Emulator, AHeapWhoseAnchorAProgramClosedIsNeverAnotherFile) {
    // What closefrom(3) in the program would do to the anchor of "system".
    int anchor = -1;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        std::error_code error;
        auto target = std::filesystem::read_symlink(entry.path(), error);
        if (!error && target.string().find("cenalloc-dma-heap:system ") != std::string::npos)
            anchor = std::stoi(entry.path().filename().string());
    }
    ASSERT_GE(anchor, 0);
    int other = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(other, 0);
    ASSERT_EQ(::dup2(other, anchor), anchor) << "another file now has the anchor's number";
    ::close(other);
    errno = 0;
    EXPECT_EQ(emulator_->open(AT_FDCWD, "/dev/dma_heap/system", O_RDWR | O_CLOEXEC, 0), -1);
    EXPECT_EQ(errno, ENODEV);
    ::close(anchor);
}

TEST_F(Emulator, ConcurrentProgramThreadsEachGetTheirOwnBuffers) {
    int heap = openHeap();
    ASSERT_GE(heap, 0);
    constexpr int kThreads = 4;
    constexpr int kRounds = 40;
    std::vector<int> failures(kThreads, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kRounds; ++i) {
                dma_heap_allocation_data data{4096u * static_cast<unsigned>(1 + i % 3), 0, O_RDWR | O_CLOEXEC, 0};
                auto ret = emulator_->ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &data);
                if (!ret || *ret != 0) {
                    ++failures[t];
                    continue;
                }
                int fd = static_cast<int>(data.fd);
                dma_buf_sync sync{DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE};
                failures[t] += emulator_->ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync) != std::optional<int>(0);
                sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE;
                failures[t] += emulator_->ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync) != std::optional<int>(0);
                if (auto dir = emulator_->opendir("/dev/dma_heap"); dir && *dir) {
                    while (auto entry = emulator_->readdir(*dir))
                        if (!*entry)
                            break;
                    emulator_->forgetStream(*dir);
                    ::closedir(*dir);
                } else {
                    ++failures[t];
                }
                ::close(fd);
            }
        });
    }
    for (auto& thread : threads)
        thread.join();
    for (int t = 0; t < kThreads; ++t)
        EXPECT_EQ(failures[t], 0) << "thread " << t;
    EXPECT_FALSE(emulator_->hasStreams());
    ::close(heap);
}

/// A host with kernel heaps: a directory standing in for /dev/dma_heap.
class EmulatorOnAKernelHost : public ::testing::Test {
protected:
    void SetUp() override {
        char templ[] = "/tmp/cenalloc-kernel-heaps.XXXXXX";
        ASSERT_NE(::mkdtemp(templ), nullptr);
        dir_ = templ;
        for (const char* name : {"system", "linux,cma-kernel"}) {
            std::FILE* f = std::fopen((dir_ + "/" + name).c_str(), "w");
            ASSERT_NE(f, nullptr);
            std::fclose(f);
        }
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::unique_ptr<DmaHeapEmulator> make(bool overrideKernel) {
        auto session = Session::local();
        EXPECT_TRUE(session);
        ShimOptions options;
        options.kernelHeapDir = dir_;
        options.overrideKernel = overrideKernel;
        auto emulator = DmaHeapEmulator::create(std::shared_ptr<Session>(std::move(*session)), options, nextLibc());
        EXPECT_TRUE(emulator);
        return std::move(*emulator);
    }

    std::string dir_;
};

TEST_F(EmulatorOnAKernelHost, AKernelHeapIsNotHiddenUnlessOverridden) {
    auto plain = make(false);
    auto names = plain->heapNames();
    EXPECT_EQ(std::count(names.begin(), names.end(), "system"), 0);
    EXPECT_FALSE(plain->open(AT_FDCWD, "/dev/dma_heap/system", O_RDWR, 0)) << "the kernel's node is opened";
    auto other = plain->open(AT_FDCWD, "/dev/dma_heap/system-uncached", O_RDWR | O_CLOEXEC, 0);
    ASSERT_TRUE(other) << "cenalloc's other heaps are still there";
    ::close(*other);

    auto overriding = make(true);
    names = overriding->heapNames();
    EXPECT_EQ(std::count(names.begin(), names.end(), "system"), 1);
    auto fd = overriding->open(AT_FDCWD, "/dev/dma_heap/system", O_RDWR | O_CLOEXEC, 0);
    ASSERT_TRUE(fd);
    ::close(*fd);
}

TEST_F(EmulatorOnAKernelHost, TheListingMergesKernelAndCenallocHeapsOnce) {
    for (bool overrideKernel : {false, true}) {
        SCOPED_TRACE(overrideKernel);
        auto emulator = make(overrideKernel);
        auto dir = emulator->opendir("/dev/dma_heap");
        ASSERT_TRUE(dir);
        ASSERT_NE(*dir, nullptr);
        std::multiset<std::string> names;
        for (;;) {
            auto entry = emulator->readdir(*dir);
            ASSERT_TRUE(entry);
            if (!*entry)
                break;
            names.insert((*entry)->d_name);
        }
        emulator->forgetStream(*dir);
        ::closedir(*dir);
        EXPECT_EQ(names.count("system"), 1u);
        EXPECT_EQ(names.count("linux,cma-kernel"), 1u);
        EXPECT_EQ(names.count("system-uncached"), 1u);
        EXPECT_EQ(names.count("."), 1u);
    }
}

/// A local session that also lists a host kernel heap, as a session on a
/// kernel with /dev/dma_heap does: everything else goes to the real one.
class SessionWithAKernelHeap final : public Session {
public:
    explicit SessionWithAKernelHeap(std::unique_ptr<Session> inner) : inner_(std::move(inner)) {}
    std::string describe() const override { return inner_->describe(); }
    Result<std::vector<HeapInfo>> heaps() override {
        auto heaps = inner_->heaps();
        if (heaps) {
            HeapInfo kernel;
            kernel.name = "kernel:system";
            kernel.properties.name = kernel.name;
            kernel.properties.kind = HeapKind::Kernel;
            heaps->push_back(kernel);
        }
        return heaps;
    }
    Result<UniqueFd> allocate(const AllocRequest& request) override { return inner_->allocate(request); }
    Result<UniqueFd> create(const CreateRequest& request) override { return inner_->create(request); }
    Result<SessionAllocatedFor> allocateFor(const AllocForRequest& request) override {
        return inner_->allocateFor(request);
    }
    Result<uint64_t> import(BorrowedFd buffer) override { return inner_->import(buffer); }
    Result<void> release(BorrowedFd buffer) override { return inner_->release(buffer); }
    Result<uint64_t> attach(BorrowedFd buffer, std::string_view device) override {
        return inner_->attach(buffer, device);
    }
    Result<void> detach(uint64_t attachment) override { return inner_->detach(attachment); }
    Result<uint64_t> attach(BorrowedFd b, std::string_view d, SessionAttachOptions o) override {
        return inner_->attach(b, d, o);
    }
    Result<void> pin(uint64_t a) override { return inner_->pin(a); }
    Result<void> unpin(uint64_t a) override { return inner_->unpin(a); }
    Result<void> migrate(BorrowedFd b, std::string_view h) override { return inner_->migrate(b, h); }
    Result<AttachForecast> forecast(BorrowedFd b, std::string_view d) override { return inner_->forecast(b, d); }
    Result<void> acknowledgeMove(uint64_t a, uint64_t q) override { return inner_->acknowledgeMove(a, q); }
    BorrowedFd eventFd() override { return inner_->eventFd(); }
    void setMoveCallback(MoveEventCallback c) override { inner_->setMoveCallback(std::move(c)); }
    Result<size_t> dispatchEvents() override { return inner_->dispatchEvents(); }
    Result<std::optional<MoveEvent>> nextEvent() override { return inner_->nextEvent(); }
    Result<SessionMapping> map(uint64_t attachment, DmaDirection direction) override {
        return inner_->map(attachment, direction);
    }
    Result<void> unmap(uint64_t mapping) override { return inner_->unmap(mapping); }
    Result<void> beginCpuAccess(BorrowedFd buffer, SyncFlags flags) override {
        return inner_->beginCpuAccess(buffer, flags);
    }
    Result<void> endCpuAccess(BorrowedFd buffer, SyncFlags flags) override {
        return inner_->endCpuAccess(buffer, flags);
    }
    Result<void> setName(BorrowedFd buffer, const BufferName& name) override { return inner_->setName(buffer, name); }
    Result<std::vector<BufferInfo>> bufinfo() override { return inner_->bufinfo(); }
    Result<BufferInfo> describe(BorrowedFd buffer) override { return inner_->describe(buffer); }
    Result<UniqueFd> storageFd(BorrowedFd buffer) override { return inner_->storageFd(buffer); }
    Result<AllocatorStats> stats(bool resetWatermark) override { return inner_->stats(resetWatermark); }
    Result<Explanation> explain(std::span<const std::string> devices, uint64_t size, CpuAccess cpuAccess) override {
        return inner_->explain(devices, size, cpuAccess);
    }

private:
    std::unique_ptr<Session> inner_;
};

TEST(EmulatorWithKernelHeaps, NeverServesCenallocsCopyOfAHostKernelHeap) {
    auto local = Session::local();
    ASSERT_TRUE(local);
    auto session = std::make_shared<SessionWithAKernelHeap>(std::move(*local));
    auto listed = session->heaps();
    ASSERT_TRUE(listed);
    ASSERT_EQ(listed->back().name, "kernel:system") << "the session lists it";
    ShimOptions options;
    options.kernelHeapDir = "/nonexistent/dma_heap";
    auto emulator = DmaHeapEmulator::create(session, options, nextLibc());
    ASSERT_TRUE(emulator) << emulator.error().toString();
    auto names = (*emulator)->heapNames();
    EXPECT_EQ(std::count(names.begin(), names.end(), "kernel:system"), 0);
    EXPECT_EQ(std::count(names.begin(), names.end(), "system"), 1) << "cenalloc's own heaps are served";
    EXPECT_FALSE((*emulator)->open(AT_FDCWD, "/dev/dma_heap/kernel:system", O_RDWR | O_CLOEXEC, 0))
        << "not ours to open: the call goes to libc";
}

TEST(ShimOptions, TheEnvironmentChoosesTheSessionAndRefusesNonsense) {
    ::setenv("CENALLOC_SHIM_MODE", "daemon", 1);
    ::setenv("CENALLOC_SOCKET", "/run/x.sock", 1);
    ::setenv("CENALLOC_SHIM_OVERRIDE", "1", 1);
    auto options = ShimOptions::fromEnvironment();
    ASSERT_TRUE(options);
    EXPECT_EQ(options->mode, ShimOptions::Mode::Daemon);
    EXPECT_EQ(options->socketPath, "/run/x.sock");
    EXPECT_TRUE(options->overrideKernel);
    ::setenv("CENALLOC_SHIM_MODE", "sometimes", 1);
    auto bad = ShimOptions::fromEnvironment();
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), EINVAL);
    EXPECT_NE(bad.error().message().find("CENALLOC_SHIM_MODE"), std::string::npos);
    ::setenv("CENALLOC_SHIM_MODE", "local", 1);
    ::setenv("CENALLOC_SHIM_OVERRIDE", "yes", 1);
    EXPECT_FALSE(ShimOptions::fromEnvironment());
    ::unsetenv("CENALLOC_SHIM_MODE");
    ::unsetenv("CENALLOC_SOCKET");
    ::unsetenv("CENALLOC_SHIM_OVERRIDE");
}

TEST(ShimOptions, DaemonModeWithoutADaemonFailsAndAutoModeFallsBack) {
    ShimOptions options;
    options.socketPath = "/nonexistent/cenalloc.sock";
    options.mode = ShimOptions::Mode::Daemon;
    auto none = DmaHeapEmulator::create(options, nextLibc());
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code(), ENOENT);
    options.mode = ShimOptions::Mode::Auto;
    auto local = DmaHeapEmulator::create(options, nextLibc());
    ASSERT_TRUE(local) << local.error().toString();
    EXPECT_EQ((*local)->describe(), "in-process");
}

} // namespace
} // namespace cenalloc::shim
