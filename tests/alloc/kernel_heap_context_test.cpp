// SPDX-License-Identifier: MIT
// Tests of the host kernel's heaps in a Context: registration, properties, refusals, no leaks; real allocation where
// the host has /dev/dma_heap/system (scripts/kernel-conformance runs the same checks in a qemu guest).
#include <cenalloc/context.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <string>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "support/core_board.h"
#include "support/dmabuf_fdinfo.h"
#include "support/fake_kernel_heaps.h"

namespace cenalloc {
namespace {

using test::FakeKernelHeapDir;

std::unique_ptr<Context> contextWith(const std::string& kernelHeapDir, const Platform& platform = defaultPlatform()) {
    auto context =
        Context::create(platform, ContextOptions{.kernelHeaps = true, .kernelHeapDir = kernelHeapDir, .readyPool = {}});
    EXPECT_TRUE(context) << context.error().toString();
    return context ? std::move(*context) : nullptr;
}

std::vector<std::string> heapNames(const Context& context) {
    std::vector<std::string> names;
    for (const auto& heap : context.heaps())
        names.push_back(heap->name());
    return names;
}

TEST(KernelHeapsInAContext, FollowTheModelsHeapsSortedAndPrefixed) {
    FakeKernelHeapDir dir;
    dir.addHeap("system");
    dir.addHeap("linux,cma");
    auto context = contextWith(dir.path());
    ASSERT_TRUE(context);
    auto plain = Context::create(
        defaultPlatform(), ContextOptions{.kernelHeaps = false, .kernelHeapDir = "/dev/dma_heap", .readyPool = {}});
    ASSERT_TRUE(plain);
    std::vector<std::string> expected = heapNames(**plain);
    expected.push_back("kernel:linux,cma");
    expected.push_back("kernel:system");
    EXPECT_EQ(heapNames(*context), expected);

    auto system = context->findHeap("kernel:system");
    ASSERT_NE(system, nullptr);
    EXPECT_EQ(system->properties().kind, HeapKind::Kernel);
    EXPECT_FALSE(system->properties().contiguous);
    EXPECT_TRUE(context->findHeap("kernel:linux,cma")->properties().contiguous);
    ASSERT_EQ(context->heapProperties().size(), context->heaps().size());
    EXPECT_EQ(context->heapProperties().back().name, "kernel:system");
    EXPECT_TRUE(context->kernelHeapProblems().empty());
}

TEST(KernelHeapsInAContext, AreLeftOutWhenAskedOrAbsent) {
    FakeKernelHeapDir dir;
    dir.addHeap("system");
    auto off = Context::create(defaultPlatform(),
                               ContextOptions{.kernelHeaps = false, .kernelHeapDir = dir.path(), .readyPool = {}});
    ASSERT_TRUE(off);
    EXPECT_EQ((*off)->findHeap("kernel:system"), nullptr);

    auto none = contextWith("/nonexistent/dma_heap");
    ASSERT_TRUE(none);
    EXPECT_EQ(none->findHeap("kernel:system"), nullptr);
    EXPECT_TRUE(none->kernelHeapProblems().empty()) << "a kernel without heaps is not a problem";
}

TEST(KernelHeapsInAContext, OneThatCannotBeOpenedIsListedAsAProblemAndHidesNoOther) {
    FakeKernelHeapDir dir;
    dir.addHeap("system");
    dir.addDanglingHeap("broken");
    auto context = contextWith(dir.path());
    ASSERT_TRUE(context);
    EXPECT_NE(context->findHeap("kernel:system"), nullptr);
    EXPECT_EQ(context->findHeap("kernel:broken"), nullptr);
    ASSERT_EQ(context->kernelHeapProblems().size(), 1u);
    EXPECT_EQ(context->kernelHeapProblems()[0], "broken: No such file or directory");

    // A heap directory that is not a directory hides the kernel's heaps, never the model's.
    const std::string file = dir.path() + "/system";
    auto odd = contextWith(file);
    ASSERT_TRUE(odd);
    EXPECT_NE(odd->findHeap("system"), nullptr);
    ASSERT_EQ(odd->kernelHeapProblems().size(), 1u);
    EXPECT_NE(odd->kernelHeapProblems()[0].find("Not a directory"), std::string::npos) << odd->kernelHeapProblems()[0];
}

TEST(KernelHeapsInAContext, TakeTheirPropertiesFromThePlatformDescription) {
    auto platform = parsePlatformYaml(R"(
name: board
memory: [{name: ram, base: 0x80000000, size: 1G}]
kernel_heaps:
  - name: reserved
    description: display carveout, write-combined
    contiguous: true
    cached: false
    size: 64M
)",
                                      "board.yaml");
    ASSERT_TRUE(platform) << platform.error().toString();
    FakeKernelHeapDir dir;
    dir.addHeap("reserved");
    dir.addHeap("system");
    auto context = contextWith(dir.path(), *platform);
    ASSERT_TRUE(context);
    const HeapProperties& described = context->findHeap("kernel:reserved")->properties();
    EXPECT_EQ(described.description, "display carveout, write-combined");
    EXPECT_TRUE(described.contiguous);
    EXPECT_FALSE(described.cached);
    EXPECT_EQ(described.capacity, 64 * MiB);
    const HeapProperties& undescribed = context->findHeap("kernel:system")->properties();
    EXPECT_TRUE(undescribed.cached);
    EXPECT_EQ(undescribed.capacity, 0u);
}

TEST(KernelHeapsInAContext, AKernelRefusalCountsAsAFailureAndLeavesNothingBehind) {
    FakeKernelHeapDir dir;
    dir.addHeap("system");
    auto context = contextWith(dir.path());
    ASSERT_TRUE(context);
    auto heap = context->findHeap("kernel:system");
    ASSERT_NE(heap, nullptr);
    const size_t fds = test::openFdCount();

    // The boundary validates first, like every heap's: the kernel never sees these.
    EXPECT_EQ(context->allocate("kernel:system", 0).error().code(), EINVAL);
    EXPECT_EQ(context->allocate("kernel:system", 4096, O_RDWR | O_NONBLOCK).error().code(), EINVAL);
    EXPECT_EQ(context->allocate("kernel:system", 4096, O_RDWR, 1).error().code(), EINVAL);
    EXPECT_EQ(heap->stats().failedAllocations, 0u);

    // A regular file is no dma-heap: the kernel's answer (ENOTTY) comes back.
    auto refused = context->allocate("kernel:system", 4096);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), ENOTTY);
    EXPECT_NE(refused.error().message().find("kernel:system"), std::string::npos) << refused.error().toString();
    HeapStats stats = heap->stats();
    EXPECT_EQ(stats.failedAllocations, 1u);
    EXPECT_EQ(stats.liveBuffers, 0u);
    EXPECT_EQ(stats.liveBytes, 0u);
    EXPECT_EQ(stats.totalAllocations, 0u);
    EXPECT_EQ(test::openFdCount(), fds);
    EXPECT_EQ(context->liveBuffers(), 0u);
}

TEST(KernelHeapsInAContext, AreNeverChosenForDevicesAndSayWhy) {
    FakeKernelHeapDir dir;
    dir.addHeap("system");
    auto context = contextWith(dir.path());
    ASSERT_TRUE(context);
    ASSERT_FALSE(context->devices().empty());
    const std::string device = context->devices().front()->name();
    auto why = context->explain(std::vector<std::string>{device}, 1 * MiB);
    ASSERT_TRUE(why) << why.error().toString();
    ASSERT_TRUE(why->heap);
    EXPECT_NE(*why->heap, "kernel:system");
    EXPECT_EQ(std::count(why->ranking.begin(), why->ranking.end(), "kernel:system"), 0);
    bool seen = false;
    for (const auto& heap : why->heaps) {
        if (heap.name != "kernel:system")
            continue;
        seen = true;
        EXPECT_FALSE(heap.accepted);
        EXPECT_EQ(heap.combined.refusal(), Refusal::HostKernel);
        ASSERT_EQ(heap.devices.size(), 1u);
        EXPECT_EQ(heap.devices[0].refusal(), Refusal::HostKernel);
    }
    EXPECT_TRUE(seen) << "explain lists the kernel heap with its refusal";

    // A deferred buffer takes its storage from a modelled heap, never the kernel's.
    auto buffer = context->create(1 * MiB);
    ASSERT_TRUE(buffer);
    auto attachment = (*buffer)->attach(*context->devices().front());
    ASSERT_TRUE(attachment) << attachment.error().toString();
    auto mapping = attachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping) << mapping.error().toString();
    EXPECT_NE((*buffer)->heapName(), "kernel:system");
    EXPECT_FALSE((*buffer)->inHostKernel());
}

// ---------------------------------------------------------------- real kernel heaps, where the host has them

using test::dmaBufFdinfo;

class RealKernelHeap : public ::testing::Test {
protected:
    void SetUp() override {
        if (::access("/dev/dma_heap/system", R_OK) != 0)
            GTEST_SKIP() << "this host has no /dev/dma_heap/system; scripts/kernel-conformance runs these checks in a "
                            "qemu guest";
        auto context = Context::create();
        ASSERT_TRUE(context) << context.error().toString();
        context_ = std::move(*context);
        heap_ = context_->findHeap("kernel:system");
        ASSERT_NE(heap_, nullptr);
    }
    std::unique_ptr<Context> context_;
    std::shared_ptr<Heap> heap_;
};

TEST_F(RealKernelHeap, HandsOutARealDmaBufCountedInTheHeapsStatistics) {
    const size_t fds = test::openFdCount();
    {
        auto buffer = context_->allocate("kernel:system", 5000);
        ASSERT_TRUE(buffer) << buffer.error().toString();
        EXPECT_EQ((*buffer)->size(), 2 * kPageSize);
        EXPECT_TRUE((*buffer)->inHostKernel());
        EXPECT_EQ(dmaBufFdinfo((*buffer)->fd().get(), "exp_name"), "system") << "the kernel exported it";
        EXPECT_EQ(heap_->stats().liveBuffers, 1u);
        EXPECT_EQ(heap_->stats().liveBytes, 2 * kPageSize);

        auto map = (*buffer)->mmap();
        ASSERT_TRUE(map) << map.error().toString();
        const auto* bytes = static_cast<const unsigned char*>(map->data());
        EXPECT_TRUE(std::all_of(bytes, bytes + map->size(), [](unsigned char b) { return b == 0; }));
        {
            auto access = (*buffer)->beginCpuAccess(kSyncWrite);
            ASSERT_TRUE(access) << access.error().toString();
            std::memset(map->data(), 0x5a, map->size());
        }
        EXPECT_TRUE((*buffer)->setName("ctx-kernel"));
        EXPECT_EQ(dmaBufFdinfo((*buffer)->fd().get(), "name"), "ctx-kernel") << "named in the kernel too";
        EXPECT_EQ((*buffer)->setName(std::string(32, 'x')).error().code(), EINVAL);
        EXPECT_EQ((*buffer)->name(), "ctx-kernel");

        auto attach = (*buffer)->attach(*context_->devices().front());
        ASSERT_FALSE(attach);
        EXPECT_EQ(attach.error().code(), EOPNOTSUPP);

        BufferInfo info = (*buffer)->info();
        EXPECT_TRUE(info.inHostKernel);
        EXPECT_TRUE(info.chunks.empty());
        EXPECT_EQ(info.heap, "kernel:system");
    }
    EXPECT_EQ(heap_->stats().liveBuffers, 0u);
    EXPECT_EQ(heap_->stats().liveBytes, 0u);
    EXPECT_EQ(test::openFdCount(), fds);
}

} // namespace
} // namespace cenalloc
