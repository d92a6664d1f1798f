// SPDX-License-Identifier: MIT
// Tests of Result<T>, Result<void>, Error and errnoName.
#include <cenalloc/result.h>

#include <cerrno>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "base/try.h"

namespace cenalloc {
namespace {

Result<int> half(int v) {
    if (v % 2)
        return Error(EINVAL, "odd value");
    return v / 2;
}

Result<int> quarter(int v) {
    int h = CENALLOC_TRY(half(v));
    return CENALLOC_TRY(half(h));
}

Result<void> checkEven(int v) {
    CENALLOC_CHECK(half(v));
    return {};
}

TEST(Result, TryReturnsTheValueOrTheFirstError) {
    ASSERT_TRUE(quarter(12));
    EXPECT_EQ(*quarter(12), 3);
    Result<int> inner = quarter(6); // 6 -> 3, then 3 is odd
    ASSERT_FALSE(inner);
    EXPECT_EQ(inner.error().code(), EINVAL);
    EXPECT_EQ(inner.error().message(), "odd value");
    EXPECT_FALSE(quarter(5));
    EXPECT_TRUE(checkEven(4));
    ASSERT_FALSE(checkEven(3));
    EXPECT_EQ(checkEven(3).error().code(), EINVAL);
}

TEST(Result, FromErrnoNamesTheCallAndTheSystemMessage) {
    Error e = Error::fromErrno("opening /nonexistent", ENOENT);
    EXPECT_EQ(e.code(), ENOENT);
    EXPECT_EQ(e.message(), "opening /nonexistent: No such file or directory");
    errno = EACCES;
    Error fromGlobal = Error::fromErrno("open");
    EXPECT_EQ(fromGlobal.code(), EACCES);
    EXPECT_EQ(fromGlobal.message(), "open: Permission denied");
}

TEST(Result, HoldsAValue) {
    Result<int> r = half(8);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(static_cast<bool>(r));
    EXPECT_EQ(r.value(), 4);
    EXPECT_EQ(*r, 4);
}

TEST(Result, HoldsAnError) {
    Result<int> r = half(3);
    ASSERT_FALSE(r.has_value());
    EXPECT_FALSE(static_cast<bool>(r));
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_EQ(r.error().message(), "odd value");
}

TEST(Result, ValueCanBeModifiedAndAccessedThroughArrow) {
    Result<std::string> r = std::string("abc");
    r.value() += "d";
    EXPECT_EQ(r->size(), 4u);
    EXPECT_EQ(*r, "abcd");
    const Result<std::string>& cr = r;
    EXPECT_EQ(cr->front(), 'a');
    EXPECT_EQ(*cr, "abcd");
}

TEST(Result, CarriesMoveOnlyValues) {
    Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
    ASSERT_TRUE(r);
    std::unique_ptr<int> p = std::move(r).value();
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(*p, 7);

    Result<std::unique_ptr<int>> r2 = std::make_unique<int>(9);
    std::unique_ptr<int> p2 = *std::move(r2);
    EXPECT_EQ(*p2, 9);
}

TEST(Result, VoidDefaultIsSuccess) {
    Result<void> r;
    EXPECT_TRUE(r.has_value());
    EXPECT_TRUE(static_cast<bool>(r));
}

TEST(Result, VoidCarriesAnError) {
    Result<void> r = Error(ENOMEM, "out of pages");
    ASSERT_FALSE(r.has_value());
    EXPECT_FALSE(static_cast<bool>(r));
    EXPECT_EQ(r.error().code(), ENOMEM);
    EXPECT_EQ(r.error().message(), "out of pages");
}

TEST(Error, ToStringAppendsTheSymbolicErrno) {
    EXPECT_EQ(Error(EINVAL, "bad flags").toString(), "bad flags (EINVAL)");
    EXPECT_EQ(Error(ENOMEM, "heap 'cma' is full").toString(), "heap 'cma' is full (ENOMEM)");
    EXPECT_EQ(Error(4242, "odd").toString(), "odd (errno 4242)");
}

TEST(Error, WithContextPrefixesTheMessageAndKeepsTheCode) {
    Error e = Error(ENOENT, "no such file").withContext("loading 'x.yaml'");
    EXPECT_EQ(e.code(), ENOENT);
    EXPECT_EQ(e.message(), "loading 'x.yaml': no such file");
}

TEST(ErrnoName, NamesEveryErrnoTheLibraryUses) {
    struct Case {
        int code;
        const char* name;
    };
    const Case cases[] = {
        {EINVAL, "EINVAL"},   {ENOMEM, "ENOMEM"}, {EBUSY, "EBUSY"},
        {ENOENT, "ENOENT"},   {EEXIST, "EEXIST"}, {EACCES, "EACCES"},
        {EPERM, "EPERM"},     {EFAULT, "EFAULT"}, {ENODEV, "ENODEV"},
        {ENOSPC, "ENOSPC"},   {EDQUOT, "EDQUOT"}, {EBADF, "EBADF"},
        {EIO, "EIO"},         {ERANGE, "ERANGE"}, {EOVERFLOW, "EOVERFLOW"},
        {ENOTSUP, "ENOTSUP"}, {EPROTO, "EPROTO"}, {ENAMETOOLONG, "ENAMETOOLONG"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(errnoName(c.code), c.name);
    }
}

TEST(ErrnoName, FallsBackToTheNumber) {
    EXPECT_EQ(errnoName(4242), "errno 4242");
    EXPECT_EQ(errnoName(0), "errno 0");
}

} // namespace
} // namespace cenalloc
