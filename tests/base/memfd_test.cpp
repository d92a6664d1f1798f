// SPDX-License-Identifier: MIT
// Tests of sealed memfd creation.
#include <cenalloc/memfd.h>

#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

namespace cenalloc {
namespace {

// The lowest free descriptor number: equal before and after an operation
// when the operation leaked no fd.
int nextFreeFd() {
    int fd = ::dup(0);
    if (fd >= 0)
        ::close(fd);
    return fd;
}

TEST(CreateSealedMemfd, RejectsSizeZeroWithoutLeakingAnFd) {
    int before = nextFreeFd();
    Result<UniqueFd> fd = createSealedMemfd("zero", 0);
    ASSERT_FALSE(fd);
    EXPECT_EQ(fd.error().code(), EINVAL);
    EXPECT_EQ(nextFreeFd(), before);
}

TEST(CreateSealedMemfd, RejectsSizesBeyondOffT) {
    Result<UniqueFd> fd = createSealedMemfd("huge", uint64_t{1} << 63);
    ASSERT_FALSE(fd);
    EXPECT_EQ(fd.error().code(), EINVAL);
}

TEST(CreateSealedMemfd, HasTheRequestedSizeAndCloexec) {
    Result<UniqueFd> fd = createSealedMemfd("sized", 12345);
    ASSERT_TRUE(fd) << fd.error().toString();
    struct stat st {};
    ASSERT_EQ(::fstat(fd->get(), &st), 0);
    EXPECT_EQ(st.st_size, 12345);
    int flags = ::fcntl(fd->get(), F_GETFD);
    ASSERT_NE(flags, -1);
    EXPECT_TRUE(flags & FD_CLOEXEC);
}

TEST(CreateSealedMemfd, IsSealedAgainstResizingAndUnsealing) {
    Result<UniqueFd> fd = createSealedMemfd("sealed", 8192);
    ASSERT_TRUE(fd) << fd.error().toString();
    int seals = ::fcntl(fd->get(), F_GET_SEALS);
    ASSERT_NE(seals, -1);
    EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    EXPECT_FALSE(seals & F_SEAL_WRITE) << "buffers must stay writable";

    for (off_t size : {off_t{4096}, off_t{16384}, off_t{0}}) {
        SCOPED_TRACE(size);
        errno = 0;
        EXPECT_EQ(::ftruncate(fd->get(), size), -1);
        EXPECT_EQ(errno, EPERM);
    }
    // F_SEAL_SEAL: no further seal can be added either.
    errno = 0;
    EXPECT_EQ(::fcntl(fd->get(), F_ADD_SEALS, F_SEAL_WRITE), -1);
    EXPECT_EQ(errno, EPERM);

    struct stat st {};
    ASSERT_EQ(::fstat(fd->get(), &st), 0);
    EXPECT_EQ(st.st_size, 8192);
}

TEST(CreateSealedMemfd, ContentsAreZeroAndWritable) {
    constexpr size_t kSize = 3 * 4096 + 100;
    Result<UniqueFd> fd = createSealedMemfd("zeroed", kSize);
    ASSERT_TRUE(fd) << fd.error().toString();

    void* map = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd->get(), 0);
    ASSERT_NE(map, MAP_FAILED);
    const auto* bytes = static_cast<const unsigned char*>(map);
    size_t nonZero = 0;
    for (size_t i = 0; i < kSize; ++i)
        nonZero += bytes[i] != 0;
    EXPECT_EQ(nonZero, 0u);

    // Writes through the mapping are visible through the fd: the memfd is
    // the buffer's real storage.
    static_cast<unsigned char*>(map)[5000] = 0xa5;
    ASSERT_EQ(::munmap(map, kSize), 0);
    unsigned char byte = 0;
    ASSERT_EQ(::pread(fd->get(), &byte, 1, 5000), 1);
    EXPECT_EQ(byte, 0xa5);
}

TEST(IsSizeSealed, TrueOnlyForASizeSealedMemfd) {
    Result<UniqueFd> sealed = createSealedMemfd("sealed", 4096);
    ASSERT_TRUE(sealed) << sealed.error().toString();
    EXPECT_TRUE(isSizeSealed(*sealed));

    UniqueFd plain(::memfd_create("plain", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    ASSERT_TRUE(plain.valid());
    EXPECT_FALSE(isSizeSealed(plain));
    // One of the two seals is not enough.
    ASSERT_EQ(::fcntl(plain.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
    EXPECT_FALSE(isSizeSealed(plain));
    ASSERT_EQ(::fcntl(plain.get(), F_ADD_SEALS, F_SEAL_GROW), 0);
    EXPECT_TRUE(isSizeSealed(plain));

    int pipeFds[2];
    ASSERT_EQ(::pipe2(pipeFds, O_CLOEXEC), 0);
    UniqueFd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
    EXPECT_FALSE(isSizeSealed(readEnd));
    EXPECT_FALSE(isSizeSealed(BorrowedFd()));
}

} // namespace
} // namespace cenalloc
