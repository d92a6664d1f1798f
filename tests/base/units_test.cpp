// SPDX-License-Identifier: MIT
// Tests of size parsing and formatting, mask widths and checked alignment.
#include <cenalloc/units.h>

#include <cerrno>
#include <string>

#include <gtest/gtest.h>

namespace cenalloc {
namespace {

TEST(ParseSize, AcceptsEveryDocumentedForm) {
    struct Case {
        const char* text;
        uint64_t expected;
    };
    const Case cases[] = {
        {"0", 0},
        {"4096", 4096},
        {"0x1000", 0x1000},
        {"0X1000", 0x1000},
        {"0xABCdef", 0xabcdef},
        {"0xffffffffffffffff", UINT64_MAX},
        {"18446744073709551615", UINT64_MAX},
        {"0x1_0000_0000", 0x100000000},
        {"1_000", 1000},
        {"12B", 12},
        {"12b", 12},
        {"64K", 64 * KiB},
        {"64k", 64 * KiB},
        {"64KB", 64 * KiB},
        {"64KiB", 64 * KiB},
        {"64kib", 64 * KiB},
        {"256M", 256 * MiB},
        {"256MiB", 256 * MiB},
        {"256mb", 256 * MiB},
        {"4G", 4 * GiB},
        {"4GiB", 4 * GiB},
        {"1T", 1024 * GiB},
        {"1TiB", 1024 * GiB},
        {"16777215T", 16777215ull << 40},
        {"  4K  ", 4 * KiB},
        {"\t16M\n", 16 * MiB},
        {"10 K", 10 * KiB},
        {" 0x10 ", 16},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(std::string("'") + c.text + "'");
        Result<uint64_t> r = parseSize(c.text);
        ASSERT_TRUE(r) << r.error().toString();
        EXPECT_EQ(*r, c.expected);
    }
}

TEST(ParseSize, RejectsWhatIsNotASize) {
    struct Case {
        const char* text;
        int code;
    };
    const Case cases[] = {
        {"", EINVAL},
        {"   ", EINVAL},
        {"abc", EINVAL},
        {"K", EINVAL},
        {"12Q", EINVAL},
        {"4 G B", EINVAL},
        {"12KQ", EINVAL},
        {"0x10K", EINVAL},
        {"0x", EINVAL},
        {"-1", EINVAL},
        {"1.5G", EINVAL},
        {"_1", EINVAL},
        {"16777216T", ERANGE},
        {"99999999999999999999", ERANGE},
        {"18446744073709551616", ERANGE},
        {"0x10000000000000000", ERANGE},
        {"17179869184G", ERANGE},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(std::string("'") + c.text + "'");
        Result<uint64_t> r = parseSize(c.text);
        ASSERT_FALSE(r) << "parsed as " << *r;
        EXPECT_EQ(r.error().code(), c.code) << r.error().toString();
        EXPECT_FALSE(r.error().message().empty());
    }
}

TEST(ParseSize, ErrorMessageQuotesTheInput) {
    Result<uint64_t> r = parseSize("12Q");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("'12Q'"), std::string::npos) << r.error().message();
}

TEST(FormatSize, UsesTheLargestWholeBinaryUnit) {
    struct Case {
        uint64_t bytes;
        const char* expected;
    };
    const Case cases[] = {
        {0, "0 B"},
        {1, "1 B"},
        {1023, "1023 B"},
        {1024, "1 KiB"},
        {1536, "1.5 KiB"},
        {4096, "4 KiB"},
        {MiB, "1 MiB"},
        {MiB + MiB / 2, "1.5 MiB"},
        {256 * MiB, "256 MiB"},
        {4 * GiB, "4 GiB"},
        {1024 * GiB, "1 TiB"},
        {uint64_t{1} << 60, "1 EiB"},
        {UINT64_MAX, "16.0 EiB"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.bytes);
        EXPECT_EQ(formatSize(c.bytes), c.expected);
    }
}

TEST(FormatAddress, IsFixedWidthHex) {
    EXPECT_EQ(formatAddress(0), "0x0000000000000000");
    EXPECT_EQ(formatAddress(0x40000000), "0x0000000040000000");
    EXPECT_EQ(formatAddress(UINT64_MAX), "0xffffffffffffffff");
}

TEST(MaskBits, CountsTheAddressBitsAMaskCovers) {
    struct Case {
        uint64_t mask;
        int bits;
    };
    const Case cases[] = {
        {0, 0},
        {1, 1},
        {0xff, 8},
        {0x3fffffff, 30},
        {0xffffffff, 32},
        {0x80000000, 32},
        {0xfffffffff, 36},
        {0xffffffffff, 40},
        {UINT64_MAX, 64},
        {uint64_t{1} << 63, 64},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.mask);
        EXPECT_EQ(maskBits(c.mask), c.bits);
    }
}

TEST(AlignUpChecked, RoundsUpToThePowerOfTwo) {
    static_assert(alignUpChecked(1, 4096) == 4096);
    EXPECT_EQ(alignUpChecked(0, 4096), 0u);
    EXPECT_EQ(alignUpChecked(1, 4096), 4096u);
    EXPECT_EQ(alignUpChecked(4096, 4096), 4096u);
    EXPECT_EQ(alignUpChecked(4097, 4096), 8192u);
    EXPECT_EQ(alignUpChecked(5, 1), 5u);
    EXPECT_EQ(alignUpChecked(3, 2 * MiB), 2 * MiB);
}

TEST(AlignUpChecked, ReportsOverflowInsteadOfWrapping) {
    EXPECT_EQ(alignUpChecked(UINT64_MAX - 4095, 4096), UINT64_MAX - 4095);
    EXPECT_EQ(alignUpChecked(UINT64_MAX - 4094, 4096), std::nullopt);
    EXPECT_EQ(alignUpChecked(UINT64_MAX, 4096), std::nullopt);
    EXPECT_EQ(alignUpChecked(UINT64_MAX, 2), std::nullopt);
    EXPECT_EQ(alignUpChecked(UINT64_MAX, 1), UINT64_MAX);
    static_assert(!alignUpChecked(UINT64_MAX, 4096).has_value());
}

TEST(IsPowerOfTwo, RejectsZeroAndNonPowers) {
    EXPECT_FALSE(isPowerOfTwo(0));
    EXPECT_TRUE(isPowerOfTwo(1));
    EXPECT_TRUE(isPowerOfTwo(4096));
    EXPECT_TRUE(isPowerOfTwo(uint64_t{1} << 63));
    EXPECT_FALSE(isPowerOfTwo(3));
    EXPECT_FALSE(isPowerOfTwo(4097));
    EXPECT_FALSE(isPowerOfTwo(UINT64_MAX));
}

} // namespace
} // namespace cenalloc
