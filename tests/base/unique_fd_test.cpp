// SPDX-License-Identifier: MIT
// Tests of UniqueFd ownership and BorrowedFd.
#include <cenalloc/unique_fd.h>

#include <cerrno>
#include <fcntl.h>
#include <type_traits>
#include <unistd.h>

#include <gtest/gtest.h>

namespace cenalloc {
namespace {

static_assert(!std::is_copy_constructible_v<UniqueFd>);
static_assert(!std::is_copy_assignable_v<UniqueFd>);
static_assert(std::is_nothrow_move_constructible_v<UniqueFd>);
static_assert(std::is_nothrow_move_assignable_v<UniqueFd>);
static_assert(!std::is_convertible_v<UniqueFd, int>);
static_assert(!std::is_convertible_v<UniqueFd, bool>);
static_assert(!std::is_convertible_v<int, UniqueFd>);
static_assert(!std::is_convertible_v<BorrowedFd, UniqueFd>);
static_assert(!std::is_convertible_v<BorrowedFd, int>);

bool isOpen(int fd) {
    return ::fcntl(fd, F_GETFD) != -1;
}

// True when @p fd is closed, judged by fcntl failing with EBADF.
bool isClosed(int fd) {
    errno = 0;
    return ::fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

// A fresh open descriptor the test owns (closed by the test or a UniqueFd).
int openFd() {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    return fd;
}

TEST(UniqueFd, DefaultConstructedOwnsNothing) {
    UniqueFd fd;
    EXPECT_FALSE(fd.valid());
    EXPECT_EQ(fd.get(), -1);
    EXPECT_FALSE(fd.borrow().valid());
}

TEST(UniqueFd, ClosesOnDestruction) {
    int raw = openFd();
    {
        UniqueFd fd(raw);
        EXPECT_TRUE(fd.valid());
        EXPECT_EQ(fd.get(), raw);
        EXPECT_TRUE(isOpen(raw));
    }
    EXPECT_TRUE(isClosed(raw));
}

TEST(UniqueFd, MoveConstructionTransfersOwnership) {
    int raw = openFd();
    UniqueFd a(raw);
    {
        UniqueFd b(std::move(a));
        EXPECT_FALSE(a.valid()); // NOLINT(bugprone-use-after-move): checking the moved-from state
        EXPECT_EQ(b.get(), raw);
        EXPECT_TRUE(isOpen(raw));
    }
    EXPECT_TRUE(isClosed(raw));
}

TEST(UniqueFd, MoveAssignmentClosesThePreviousFd) {
    int first = openFd();
    int second = openFd();
    UniqueFd a(first);
    {
        UniqueFd b(second);
        a = std::move(b);
        EXPECT_FALSE(b.valid()); // NOLINT(bugprone-use-after-move)
    }
    EXPECT_TRUE(isClosed(first));
    EXPECT_TRUE(isOpen(second));
    EXPECT_EQ(a.get(), second);
    a.reset();
    EXPECT_TRUE(isClosed(second));
}

TEST(UniqueFd, SelfMoveAssignmentKeepsTheFd) {
    int raw = openFd();
    UniqueFd a(raw);
    UniqueFd& alias = a;
    a = std::move(alias);
    EXPECT_EQ(a.get(), raw);
    EXPECT_TRUE(isOpen(raw));
}

TEST(UniqueFd, ReleaseGivesUpOwnershipWithoutClosing) {
    int raw = openFd();
    int released = -1;
    {
        UniqueFd fd(raw);
        released = fd.release();
        EXPECT_FALSE(fd.valid());
        EXPECT_EQ(fd.get(), -1);
    }
    EXPECT_EQ(released, raw);
    EXPECT_TRUE(isOpen(raw));
    ::close(raw);
}

TEST(UniqueFd, ResetClosesTheOldFdAndAdoptsTheNewOne) {
    int first = openFd();
    int second = openFd();
    UniqueFd fd(first);
    fd.reset(second);
    EXPECT_TRUE(isClosed(first));
    EXPECT_EQ(fd.get(), second);
    EXPECT_TRUE(isOpen(second));
    fd.reset();
    EXPECT_TRUE(isClosed(second));
    EXPECT_FALSE(fd.valid());
}

TEST(UniqueFd, ResetToTheOwnedFdDoesNotCloseIt) {
    int raw = openFd();
    UniqueFd fd(raw);
    fd.reset(raw);
    EXPECT_TRUE(isOpen(raw));
    EXPECT_EQ(fd.get(), raw);
}

TEST(BorrowedFd, NamesTheOwnersFdAndNeverClosesIt) {
    int raw = openFd();
    UniqueFd owner(raw);
    {
        BorrowedFd fromOwner = owner;
        BorrowedFd fromBorrow = owner.borrow();
        BorrowedFd fromInt(raw);
        EXPECT_EQ(fromOwner.get(), raw);
        EXPECT_EQ(fromBorrow.get(), raw);
        EXPECT_EQ(fromInt.get(), raw);
        EXPECT_TRUE(fromOwner.valid());
    }
    EXPECT_TRUE(isOpen(raw));
    EXPECT_EQ(owner.get(), raw);
}

TEST(BorrowedFd, DefaultConstructedIsInvalid) {
    BorrowedFd fd;
    EXPECT_FALSE(fd.valid());
    EXPECT_EQ(fd.get(), -1);
}

} // namespace
} // namespace cenalloc
