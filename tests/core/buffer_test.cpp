// SPDX-License-Identifier: MIT
// Tests of Buffer: its sealed memfd, fds, names, lifetime, the registry and request validation.
#include <cenalloc/buffer.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cenalloc/memfd.h>

#include "support/core_board.h"

namespace cenalloc {
namespace {

using test::CoreBoard;

HeapStats statsOf(const CoreBoard& board, std::string_view heap) {
    return board.heap(heap)->stats();
}

TEST(Buffer, SizeIsFixedByASealedMemfd) {
    CoreBoard board;
    auto buffer = board.allocate("system", 64 * KiB);
    ASSERT_TRUE(buffer) << buffer.error().toString();
    const Buffer& b = **buffer;
    EXPECT_EQ(b.size(), 64 * KiB);
    EXPECT_EQ(b.size() % kPageSize, 0u);

    struct stat st {};
    ASSERT_EQ(::fstat(b.fd().get(), &st), 0);
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), 64 * KiB);
    int seals = ::fcntl(b.fd().get(), F_GET_SEALS);
    ASSERT_GE(seals, 0) << std::strerror(errno);
    EXPECT_TRUE(seals & F_SEAL_SHRINK);
    EXPECT_TRUE(seals & F_SEAL_GROW);
    EXPECT_TRUE(isSizeSealed(b.fd()));

    // No holder of any fd of the buffer can change its size.
    auto dup = b.dupFd();
    ASSERT_TRUE(dup);
    EXPECT_NE(::ftruncate(dup->get(), 128 * KiB), 0);
    EXPECT_EQ(errno, EPERM);
    EXPECT_NE(::ftruncate(dup->get(), 4 * KiB), 0);
    EXPECT_EQ(errno, EPERM);
    ASSERT_EQ(::fstat(b.fd().get(), &st), 0);
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), 64 * KiB);
    EXPECT_EQ(b.size(), 64 * KiB);
}

TEST(Buffer, DupFdReachesTheSameInodeWithCloexecByDefault) {
    CoreBoard board;
    auto buffer = board.allocate("system", 16 * KiB);
    ASSERT_TRUE(buffer);
    Buffer& b = **buffer;

    auto fd = b.dupFd();
    ASSERT_TRUE(fd) << fd.error().toString();
    EXPECT_NE(fd->get(), b.fd().get());
    struct stat st {};
    ASSERT_EQ(::fstat(fd->get(), &st), 0);
    EXPECT_EQ(static_cast<uint64_t>(st.st_ino), b.info().inode);
    EXPECT_NE(b.info().inode, 0u);
    EXPECT_TRUE(::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC);

    auto inheritable = b.dupFd(0);
    ASSERT_TRUE(inheritable);
    EXPECT_FALSE(::fcntl(inheritable->get(), F_GETFD) & FD_CLOEXEC);

    // Bytes written through the duplicate are the buffer's bytes.
    const char text[] = "through another fd";
    ASSERT_EQ(::pwrite(fd->get(), text, sizeof text, 100), static_cast<ssize_t>(sizeof text));
    auto mapping = b.mmap();
    ASSERT_TRUE(mapping);
    EXPECT_EQ(std::memcmp(mapping->bytes() + 100, text, sizeof text), 0);
}

TEST(Buffer, DupFdRejectsFlagsOtherThanCloexecWithoutLeaking) {
    CoreBoard board;
    auto buffer = board.allocate("system", 4 * KiB);
    ASSERT_TRUE(buffer);
    const size_t fds = test::openFdCount();
    for (int flags : {O_NONBLOCK, O_RDWR, O_CLOEXEC | O_APPEND}) {
        SCOPED_TRACE(flags);
        auto fd = (*buffer)->dupFd(flags);
        ASSERT_FALSE(fd);
        EXPECT_EQ(fd.error().code(), EINVAL);
    }
    EXPECT_EQ(test::openFdCount(), fds);
}

TEST(Buffer, NameTakesAtMost31Bytes) {
    CoreBoard board;
    auto buffer = board.allocate("system", 4 * KiB, "first");
    ASSERT_TRUE(buffer);
    Buffer& b = **buffer;
    EXPECT_EQ(b.name(), "first");

    const std::string longest(kBufferNameMax, 'n');
    ASSERT_EQ(longest.size(), 31u);
    ASSERT_TRUE(b.setName(longest));
    EXPECT_EQ(b.name(), longest);
    EXPECT_EQ(b.info().name, longest);

    auto tooLong = b.setName(std::string(32, 'x'));
    ASSERT_FALSE(tooLong);
    EXPECT_EQ(tooLong.error().code(), EINVAL);
    EXPECT_EQ(b.name(), longest);

    ASSERT_TRUE(b.setName(""));
    EXPECT_EQ(b.name(), "");
}

TEST(Buffer, CreateWithATooLongNameFailsAndReturnsTheStorage) {
    CoreBoard board;
    const HeapStats before = statsOf(board, "system");
    const uint64_t freeBefore = board.heap("system")->freeBytes();
    const size_t fds = test::openFdCount();

    auto buffer = board.allocate("system", 64 * KiB, std::string(32, 'x'));
    ASSERT_FALSE(buffer);
    EXPECT_EQ(buffer.error().code(), EINVAL);

    const HeapStats after = statsOf(board, "system");
    EXPECT_EQ(after.liveBuffers, before.liveBuffers);
    EXPECT_EQ(after.liveBytes, before.liveBytes);
    EXPECT_EQ(board.heap("system")->freeBytes(), freeBefore);
    EXPECT_EQ(board.registry()->liveCount(), 0u);
    EXPECT_EQ(test::openFdCount(), fds);
}

TEST(Buffer, InfoDescribesAnEagerBuffer) {
    CoreBoard board;
    auto buffer = board.allocate("system-dma32", 128 * KiB, "frame");
    ASSERT_TRUE(buffer);
    const BufferInfo info = (*buffer)->info();
    EXPECT_EQ(info.id, (*buffer)->id());
    EXPECT_EQ(info.size, 128 * KiB);
    EXPECT_EQ(info.fdFlags, static_cast<uint32_t>(O_CLOEXEC | O_RDWR));
    EXPECT_EQ(info.exporter, "system-dma32");
    EXPECT_STREQ((*buffer)->exporterName(), "system-dma32");
    EXPECT_EQ(info.name, "frame");
    EXPECT_TRUE(info.hasStorage);
    EXPECT_EQ(info.heap, "system-dma32");
    EXPECT_EQ(info.chunks, (*buffer)->chunks());
    uint64_t total = 0;
    for (const PhysChunk& c : info.chunks) {
        total += c.size;
        EXPECT_LE(c.end() - 1, 0xffffffffu);
    }
    EXPECT_EQ(total, 128 * KiB);
    EXPECT_TRUE(info.attachedDevices.empty());
    EXPECT_TRUE(info.mappings.empty());
    EXPECT_EQ(info.cpuAccessDepth, 0u);
}

TEST(Buffer, IdsAreUniqueAndTheRegistryListsLiveBuffers) {
    CoreBoard board;
    auto a = board.allocate("system", 4 * KiB);
    auto b = board.allocate("linux,cma", 4 * KiB);
    ASSERT_TRUE(a && b);
    EXPECT_NE((*a)->id(), (*b)->id());
    auto listed = board.registry()->buffers();
    ASSERT_EQ(listed.size(), 2u);
    EXPECT_EQ(listed[0], *a);
    EXPECT_EQ(listed[1], *b);
    listed.clear();

    a->reset();
    EXPECT_EQ(board.registry()->liveCount(), 1u);
    listed = board.registry()->buffers();
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0], *b);
}

TEST(Buffer, ReleaseReturnsStorageToTheHeap) {
    CoreBoard board;
    for (const char* heap : {"system", "system-uncached-dma32", "linux,cma", "vpu-carveout"}) {
        SCOPED_TRACE(heap);
        const HeapStats before = statsOf(board, heap);
        const uint64_t freeBefore = board.heap(heap)->freeBytes();
        auto buffer = board.allocate(heap, 256 * KiB);
        ASSERT_TRUE(buffer) << buffer.error().toString();
        EXPECT_EQ(statsOf(board, heap).liveBuffers, before.liveBuffers + 1);
        EXPECT_EQ(statsOf(board, heap).liveBytes, before.liveBytes + 256 * KiB);
        EXPECT_EQ(board.heap(heap)->freeBytes(), freeBefore - 256 * KiB);
        buffer->reset();
        EXPECT_EQ(statsOf(board, heap).liveBuffers, before.liveBuffers);
        EXPECT_EQ(statsOf(board, heap).liveBytes, before.liveBytes);
        EXPECT_EQ(board.heap(heap)->freeBytes(), freeBefore);
    }
    EXPECT_EQ(board.registry()->liveCount(), 0u);
}

TEST(Buffer, ACpuMappingKeepsTheBufferAlive) {
    CoreBoard board;
    const HeapStats baseline = statsOf(board, "system");
    auto buffer = board.allocate("system", 64 * KiB);
    ASSERT_TRUE(buffer);
    std::weak_ptr<Buffer> weak = *buffer;
    auto mapping = (*buffer)->mmap();
    ASSERT_TRUE(mapping) << mapping.error().toString();
    buffer->reset();

    ASSERT_FALSE(weak.expired());
    EXPECT_EQ(board.registry()->liveCount(), 1u);
    EXPECT_EQ(statsOf(board, "system").liveBuffers, baseline.liveBuffers + 1);
    EXPECT_EQ(statsOf(board, "system").liveBytes, baseline.liveBytes + 64 * KiB);
    // The memory is still usable through the mapping.
    std::memset(mapping->data(), 0x5a, mapping->size());
    EXPECT_TRUE(test::allBytesAre(*mapping, std::byte{0x5a}));

    // Moving the mapping moves the reference.
    BufferMapping moved = std::move(*mapping);
    EXPECT_EQ(mapping->data(), nullptr);
    EXPECT_FALSE(weak.expired());

    moved = BufferMapping();
    EXPECT_TRUE(weak.expired());
    EXPECT_EQ(board.registry()->liveCount(), 0u);
    EXPECT_EQ(statsOf(board, "system").liveBuffers, baseline.liveBuffers);
    EXPECT_EQ(statsOf(board, "system").liveBytes, baseline.liveBytes);
}

TEST(Buffer, ACpuAccessGuardKeepsTheBufferAlive) {
    CoreBoard board;
    const HeapStats baseline = statsOf(board, "linux,cma");
    auto buffer = board.allocate("linux,cma", 1 * MiB);
    ASSERT_TRUE(buffer);
    std::weak_ptr<Buffer> weak = *buffer;
    auto guard = (*buffer)->beginCpuAccess(kSyncWrite);
    ASSERT_TRUE(guard) << guard.error().toString();
    buffer->reset();

    ASSERT_FALSE(weak.expired());
    EXPECT_EQ(weak.lock()->info().cpuAccessDepth, 1u);
    EXPECT_EQ(statsOf(board, "linux,cma").liveBuffers, baseline.liveBuffers + 1);
    EXPECT_EQ(statsOf(board, "linux,cma").liveBytes, baseline.liveBytes + 1 * MiB);

    guard->end();
    EXPECT_TRUE(weak.expired());
    EXPECT_EQ(statsOf(board, "linux,cma").liveBuffers, baseline.liveBuffers);
    EXPECT_EQ(statsOf(board, "linux,cma").liveBytes, baseline.liveBytes);
    EXPECT_EQ(board.registry()->liveCount(), 0u);
    guard->end(); // idempotent, and the buffer is gone
}

TEST(Buffer, TheLastOfMappingAndGuardReleasesIt) {
    CoreBoard board;
    auto buffer = board.allocate("system-dma32", 8 * KiB);
    ASSERT_TRUE(buffer);
    std::weak_ptr<Buffer> weak = *buffer;
    auto mapping = (*buffer)->mmap();
    auto guard = (*buffer)->beginCpuAccess(kSyncRead);
    ASSERT_TRUE(mapping && guard);
    buffer->reset();
    *mapping = BufferMapping();
    EXPECT_FALSE(weak.expired());
    EXPECT_EQ(statsOf(board, "system-dma32").liveBuffers, 1u);
    *guard = CpuAccessGuard();
    EXPECT_TRUE(weak.expired());
    EXPECT_EQ(statsOf(board, "system-dma32").liveBuffers, 0u);
    EXPECT_EQ(statsOf(board, "system-dma32").liveBytes, 0u);
}

// --------------------------------------------------- request validation

struct RequestCase {
    const char* what;
    uint64_t length;
    uint32_t fdFlags;
    uint64_t heapFlags;
    int error; // 0: valid
    uint64_t aligned;
};

TEST(ValidateHeapRequest, FollowsTheKernelDmaHeapRules) {
    HeapProperties heap;
    heap.name = "test";
    const uint32_t rw = O_CLOEXEC | O_RDWR;
    const RequestCase cases[] = {
        {"one byte rounds up to a page", 1, rw, 0, 0, kPageSize},
        {"a page stays a page", kPageSize, rw, 0, 0, kPageSize},
        {"a page and a byte", kPageSize + 1, rw, 0, 0, 2 * kPageSize},
        {"the largest length that aligns", UINT64_MAX - (kPageSize - 1), rw, 0, 0, UINT64_MAX - (kPageSize - 1)},
        {"read-only", kPageSize, O_RDONLY, 0, 0, kPageSize},
        {"write-only without cloexec", kPageSize, O_WRONLY, 0, 0, kPageSize},
        {"all of O_ACCMODE", kPageSize, O_ACCMODE | O_CLOEXEC, 0, 0, kPageSize},
        {"zero length", 0, rw, 0, EINVAL, 0},
        {"UINT64_MAX overflows", UINT64_MAX, rw, 0, EINVAL, 0},
        {"one byte past the largest aligned length", UINT64_MAX - (kPageSize - 2), rw, 0, EINVAL, 0},
        {"O_NONBLOCK", kPageSize, rw | O_NONBLOCK, 0, EINVAL, 0},
        {"O_APPEND", kPageSize, rw | O_APPEND, 0, EINVAL, 0},
        {"O_TRUNC", kPageSize, rw | O_TRUNC, 0, EINVAL, 0},
        {"heap flag bit 0", kPageSize, rw, 1, EINVAL, 0},
        {"heap flag bit 63", kPageSize, rw, uint64_t{1} << 63, EINVAL, 0},
    };
    for (const RequestCase& c : cases) {
        SCOPED_TRACE(c.what);
        // Made where the request enters, then checked against its heap.
        auto request = AllocRequest::make(heap.name, c.length, c.fdFlags, c.heapFlags);
        Result<uint64_t> r = request ? Result<uint64_t>(request->alignedLength()) : Result<uint64_t>(request.error());
        if (request)
            if (auto checked = request->checkHeap(heap); !checked)
                r = checked.error();
        if (c.error == 0) {
            ASSERT_TRUE(r) << r.error().toString();
            EXPECT_EQ(*r, c.aligned);
        } else {
            ASSERT_FALSE(r);
            EXPECT_EQ(r.error().code(), c.error);
            EXPECT_FALSE(r.error().message().empty());
        }
    }
}

TEST(ValidateHeapRequest, AcceptsOnlyTheFlagsAHeapDefines) {
    HeapProperties heap;
    heap.name = "flagged";
    heap.validHeapFlags = 0x1;
    EXPECT_TRUE(AllocRequest::make(heap.name, kPageSize, O_RDWR, 0x1)->checkHeap(heap));
    EXPECT_TRUE(AllocRequest::make(heap.name, kPageSize, O_RDWR, 0)->checkHeap(heap));
    auto r = AllocRequest::make(heap.name, kPageSize, O_RDWR, 0x2)->checkHeap(heap);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_NE(r.error().message().find("flagged"), std::string::npos) << r.error().message();
}

} // namespace
} // namespace cenalloc
