// SPDX-License-Identifier: MIT
// Tests of the kernel argument rules the shim reproduces: ioctl number shapes, user copies, names, sync flags.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "shim/kernel_abi.h"

namespace cenalloc::shim {
namespace {

TEST(KernelAbi, StructLayoutMatchesTheUapiHeader) {
    EXPECT_EQ(sizeof(dma_heap_allocation_data), kHeapAllocSize);
    EXPECT_EQ(offsetof(dma_heap_allocation_data, len), kHeapAllocLen);
    EXPECT_EQ(offsetof(dma_heap_allocation_data, fd), kHeapAllocFd);
    EXPECT_EQ(offsetof(dma_heap_allocation_data, fd_flags), kHeapAllocFdFlags);
    EXPECT_EQ(offsetof(dma_heap_allocation_data, heap_flags), kHeapAllocHeapFlags);
    EXPECT_EQ(kDmaBufNameLen, size_t{DMA_BUF_NAME_LEN});
    EXPECT_EQ(kSyncValidMask, uint64_t{DMA_BUF_SYNC_VALID_FLAGS_MASK});
}

TEST(KernelAbi, HeapIoctlShapeFollowsTheNumberNotTheType) {
    struct Case {
        const char* name;
        unsigned long request;
        bool known;
        size_t in, out, kernel;
    };
    const Case cases[] = {
        {"alloc", DMA_HEAP_IOCTL_ALLOC, true, 24, 24, 24},
        {"short 16", _IOC(_IOC_READ | _IOC_WRITE, 'H', 0, 16), true, 16, 16, 24},
        {"long 32", _IOC(_IOC_READ | _IOC_WRITE, 'H', 0, 32), true, 32, 32, 32},
        {"largest", _IOC(_IOC_READ | _IOC_WRITE, 'H', 0, 16383), true, 16383, 16383, 16383},
        {"write only", _IOC(_IOC_WRITE, 'H', 0, 24), true, 24, 0, 24},
        {"read only", _IOC(_IOC_READ, 'H', 0, 24), true, 0, 24, 24},
        {"no direction", _IOC(_IOC_NONE, 'H', 0, 24), true, 0, 0, 24},
        {"other type", _IOC(_IOC_READ | _IOC_WRITE, 'X', 0, 24), true, 24, 24, 24},
        {"dma-buf sync", DMA_BUF_IOCTL_SYNC, true, 8, 0, 24},
        {"nr 1", _IOC(_IOC_READ | _IOC_WRITE, 'H', 1, 24), false, 0, 0, 0},
        {"set name", DMA_BUF_SET_NAME_B, false, 0, 0, 0},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        HeapIoctlShape shape = heapIoctlShape(c.request);
        EXPECT_EQ(shape.known, c.known);
        if (!c.known)
            continue;
        EXPECT_EQ(shape.inSize, c.in);
        EXPECT_EQ(shape.outSize, c.out);
        EXPECT_EQ(shape.kernelSize, c.kernel);
    }
}

/// Two pages with the second unmapped: reads that run into it fault.
class GuardedPage : public ::testing::Test {
protected:
    void SetUp() override {
        void* p = ::mmap(nullptr, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ASSERT_NE(p, MAP_FAILED);
        base_ = static_cast<char*>(p);
        ASSERT_EQ(::munmap(base_ + 4096, 4096), 0);
    }
    void TearDown() override { ::munmap(base_, 4096); }
    char* end() { return base_ + 4096; }
    char* base_ = nullptr;
};

TEST_F(GuardedPage, CopiesFaultWhereTheKernelWouldInsteadOfCrashing) {
    char buffer[16] = {};
    EXPECT_TRUE(copyFromUser(buffer, end() - 16, 16));
    EXPECT_FALSE(copyFromUser(buffer, end() - 8, 16));
    EXPECT_FALSE(copyFromUser(buffer, nullptr, 8));
    EXPECT_TRUE(copyFromUser(buffer, nullptr, 0)) << "nothing to copy cannot fault";
    EXPECT_TRUE(copyToUser(end() - 16, buffer, 16));
    EXPECT_FALSE(copyToUser(end() - 8, buffer, 16));
    ASSERT_EQ(::mprotect(base_, 4096, PROT_READ), 0);
    EXPECT_FALSE(copyToUser(base_, buffer, 8)) << "read-only memory";
    EXPECT_TRUE(copyFromUser(buffer, base_, 8));
}

TEST_F(GuardedPage, NamesAreReadAsStrndupUserReadsThem) {
    auto ok = copyNameFromUser("frame-0");
    ASSERT_TRUE(ok);
    EXPECT_EQ(*ok, "frame-0");
    EXPECT_EQ(*copyNameFromUser(""), "");
    std::string longest(31, 'n');
    EXPECT_EQ(*copyNameFromUser(longest.c_str()), longest);
    std::string tooLong(32, 'n');
    EXPECT_EQ(copyNameFromUser(tooLong.c_str()).error().code(), EINVAL);
    EXPECT_EQ(copyNameFromUser(nullptr).error().code(), EFAULT);
    // Unterminated up to a fault: EFAULT; terminated just before it: fine.
    std::memset(end() - 8, 'x', 8);
    EXPECT_EQ(copyNameFromUser(end() - 8).error().code(), EFAULT);
    end()[-1] = '\0';
    EXPECT_EQ(*copyNameFromUser(end() - 8), "xxxxxxx");
    // 32 readable bytes without a terminator are too long, not a fault.
    std::memset(end() - 40, 'y', 40);
    EXPECT_EQ(copyNameFromUser(end() - 40).error().code(), EINVAL);
}

TEST(KernelAbi, SyncFlagsNeedADirectionAndNoOtherBits) {
    const struct {
        uint64_t flags;
        bool valid;
    } cases[] = {
        {DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ, true},
        {DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE, true},
        {DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW, true},
        {DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW, true},
        {DMA_BUF_SYNC_START, false},
        {DMA_BUF_SYNC_END, false},
        {DMA_BUF_SYNC_RW | 8, false},
        {DMA_BUF_SYNC_RW | (uint64_t{1} << 32), false},
        {DMA_BUF_SYNC_RW | (uint64_t{1} << 63), false},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.flags);
        auto result = validateSyncFlags(c.flags);
        EXPECT_EQ(result.has_value(), c.valid);
        if (!c.valid) {
            EXPECT_EQ(result.error().code(), EINVAL);
        }
    }
}

} // namespace
} // namespace cenalloc::shim
