// SPDX-License-Identifier: MIT
// Tests of the model placed on the host kernel's heaps (placed, not-in-kernel, unplaced) and of allocating for
// devices (Context::allocateFor): against a stand-in /dev/dma_heap, and for real where the host has
// /dev/dma_heap/system (scripts/kernel-conformance runs the CLI's checks in a qemu guest).
#include <cenalloc/context.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "support/dmabuf_fdinfo.h"
#include "support/fake_kernel_heaps.h"
#include "support/fds.h"

namespace cenalloc {
namespace {

using test::FakeKernelHeapDir;

std::unique_ptr<Context> placedContext(const FakeKernelHeapDir& dir, std::optional<bool> place = true,
                                       const Platform& platform = defaultPlatform()) {
    auto context = Context::create(
        platform,
        ContextOptions{.kernelHeaps = true, .kernelHeapDir = dir.path(), .placeKernelHeaps = place, .readyPool = {}});
    EXPECT_TRUE(context) << context.error().toString();
    return context ? std::move(*context) : nullptr;
}

void addNodes(const FakeKernelHeapDir& dir, std::initializer_list<const char*> names) {
    for (const char* name : names)
        dir.addHeap(name);
}

const HeapProperties& propertiesOf(const Context& context, std::string_view heap) {
    auto it = std::find_if(context.heapProperties().begin(), context.heapProperties().end(),
                           [&](const HeapProperties& p) { return p.name == heap; });
    EXPECT_NE(it, context.heapProperties().end()) << "no heap " << heap;
    return *it;
}

const HeapExplanation* heapIn(const Explanation& e, std::string_view heap) {
    for (const HeapExplanation& h : e.heaps)
        if (h.name == heap)
            return &h;
    return nullptr;
}

// The reference platform's heaps: system, system-uncached, system-dma32,
// system-uncached-dma32, linux,cma and vpu-carveout.
TEST(KernelPlacement, ModelledHeapsWithANodeArePlacedTheOthersAreNotInTheKernel) {
    FakeKernelHeapDir dir;
    addNodes(dir, {"system", "linux,cma", "vendor,secure"});
    auto context = placedContext(dir);
    ASSERT_TRUE(context);
    auto plain = Context::create(defaultPlatform(), ContextOptions{.kernelHeaps = false, .readyPool = {}});
    ASSERT_TRUE(plain);

    std::vector<std::string> names;
    for (const auto& heap : context->heaps())
        names.push_back(heap->name());
    std::vector<std::string> expected;
    for (const auto& heap : (*plain)->heaps())
        expected.push_back(heap->name());
    expected.push_back("kernel:vendor,secure");
    EXPECT_EQ(names, expected) << "the model's heaps keep their names and order; unmatched nodes follow";

    const HeapProperties& system = propertiesOf(*context, "system");
    EXPECT_EQ(system.kernelPlacement, KernelPlacement::Placed);
    EXPECT_EQ(system.kernelHeap, "system");
    EXPECT_EQ(system.kind, HeapKind::System) << "the model's properties are kept";
    EXPECT_FALSE(system.honoursAddressLimit) << "the kernel's system heap takes no address limit";
    EXPECT_TRUE(system.inHostKernel());
    EXPECT_NE(system.description.find(dir.path() + "/system"), std::string::npos) << system.description;

    const HeapProperties& modelSystem = (*plain)->findHeap("system")->properties();
    EXPECT_EQ(system.lowestAddress, modelSystem.lowestAddress);
    EXPECT_EQ(system.highestAddress, modelSystem.highestAddress);
    EXPECT_EQ(system.capacity, modelSystem.capacity);

    const HeapProperties& cma = propertiesOf(*context, "linux,cma");
    EXPECT_EQ(cma.kernelPlacement, KernelPlacement::Placed);
    EXPECT_EQ(cma.kind, HeapKind::Cma);
    EXPECT_TRUE(cma.contiguous);

    for (const char* absent : {"system-uncached", "system-dma32", "vpu-carveout"}) {
        const HeapProperties& p = propertiesOf(*context, absent);
        EXPECT_EQ(p.kernelPlacement, KernelPlacement::NotInKernel) << absent;
        EXPECT_TRUE(p.kernelHeap.empty()) << absent;
        EXPECT_FALSE(p.inHostKernel()) << absent;
    }

    const HeapProperties& vendor = propertiesOf(*context, "kernel:vendor,secure");
    EXPECT_EQ(vendor.kernelPlacement, KernelPlacement::Unplaced);
    EXPECT_EQ(vendor.kernelHeap, "vendor,secure");
    EXPECT_EQ(vendor.kind, HeapKind::Kernel);
    EXPECT_TRUE(context->kernelHeapProblems().empty());

    EXPECT_STREQ(kernelPlacementName(KernelPlacement::Placed), "placed");
    EXPECT_STREQ(kernelPlacementName(KernelPlacement::NotInKernel), "not-in-kernel");
    EXPECT_STREQ(kernelPlacementName(KernelPlacement::Unplaced), "unplaced");
}

TEST(KernelPlacement, IsOnByDefaultOnlyForTheHostsPlatformWithNodes) {
    FakeKernelHeapDir dir;
    dir.addHeap("system");
    auto builtin = placedContext(dir, std::nullopt);
    ASSERT_TRUE(builtin);
    EXPECT_EQ(propertiesOf(*builtin, "system").kernelPlacement, KernelPlacement::Modelled);
    EXPECT_NE(builtin->findHeap("kernel:system"), nullptr) << "offered beside the model, as before";

    Platform host = defaultPlatform();
    host.source = "host";
    auto onHost = placedContext(dir, std::nullopt, host);
    ASSERT_TRUE(onHost);
    EXPECT_EQ(propertiesOf(*onHost, "system").kernelPlacement, KernelPlacement::Placed);
    EXPECT_EQ(onHost->findHeap("kernel:system"), nullptr) << "the node is the placed heap, not a second one";

    FakeKernelHeapDir empty;
    auto noNodes = placedContext(empty, std::nullopt, host);
    ASSERT_TRUE(noNodes);
    EXPECT_EQ(propertiesOf(*noNodes, "system").kernelPlacement, KernelPlacement::Modelled)
        << "a host without kernel heaps keeps the model's";

    auto off = placedContext(dir, false, host);
    ASSERT_TRUE(off);
    EXPECT_EQ(propertiesOf(*off, "system").kernelPlacement, KernelPlacement::Modelled);
}

TEST(KernelPlacement, ANodeThatCannotBeOpenedLeavesItsHeapOutOfTheKernelAndIsAProblem) {
    FakeKernelHeapDir dir;
    dir.addHeap("system");
    dir.addDanglingHeap("linux,cma");
    auto context = placedContext(dir);
    ASSERT_TRUE(context);
    EXPECT_EQ(propertiesOf(*context, "linux,cma").kernelPlacement, KernelPlacement::NotInKernel);
    EXPECT_EQ(propertiesOf(*context, "system").kernelPlacement, KernelPlacement::Placed);
    ASSERT_EQ(context->kernelHeapProblems().size(), 1u);
    EXPECT_EQ(context->kernelHeapProblems()[0].rfind("linux,cma: ", 0), 0u) << context->kernelHeapProblems()[0];
}

TEST(KernelPlacement, ExplainChoosesOnlyPlacedHeapsAndSaysWhyTheOthersCannotServe) {
    FakeKernelHeapDir dir;
    addNodes(dir, {"system", "linux,cma", "vendor,secure"});
    auto context = placedContext(dir);
    ASSERT_TRUE(context);

    // The display needs one contiguous buffer below 4 GiB: the CMA area.
    auto display = context->explain(std::vector<std::string>{"display"}, 4 * MiB);
    ASSERT_TRUE(display) << display.error().toString();
    ASSERT_TRUE(display->heap);
    EXPECT_EQ(*display->heap, "linux,cma");

    // The GPU takes any pages: the system heap, although the model has
    // system-dma32 and others the kernel lacks.
    auto gpu = context->explain(std::vector<std::string>{"gpu"}, 4 * MiB);
    ASSERT_TRUE(gpu) << gpu.error().toString();
    ASSERT_TRUE(gpu->heap);
    EXPECT_EQ(*gpu->heap, "system");
    for (const std::string& ranked : gpu->ranking)
        EXPECT_TRUE(propertiesOf(*context, ranked).kernelPlacement == KernelPlacement::Placed) << ranked;

    const HeapExplanation* uncached = heapIn(*gpu, "system-uncached");
    ASSERT_NE(uncached, nullptr);
    EXPECT_FALSE(uncached->accepted);
    EXPECT_EQ(uncached->combined.refusal(), Refusal::NotInHostKernel);
    EXPECT_EQ(uncached->combined.reason(),
              "the host kernel has no heap 'system-uncached' (/dev/dma_heap/system-uncached "
              "does not exist): nothing on this host hands out its memory as a dma-buf");
    EXPECT_STREQ(refusalName(Refusal::NotInHostKernel), "not-in-host-kernel");

    const HeapExplanation* vendor = heapIn(*gpu, "kernel:vendor,secure");
    ASSERT_NE(vendor, nullptr);
    EXPECT_EQ(vendor->combined.refusal(), Refusal::HostKernel);
    EXPECT_EQ(vendor->combined.reason().rfind("placement unknown: no reserved-memory region or vendor heap of the "
                                              "platform matches /dev/dma_heap/vendor,secure",
                                              0),
              0u)
        << vendor->combined.reason();
}

// ---------------------------------------------------------------- the default CMA area's two names

// From Linux 6.17 cma_heap.c registers the default CMA area as
// "default_cma_region" and, with CONFIG_DMABUF_HEAPS_CMA_LEGACY, under its
// legacy name (here the reference platform's "linux,cma") too.
TEST(KernelPlacement, TheDefaultCmaAreasSecondNodeIsAnAliasOfItsPlacedHeapNeverChosen) {
    FakeKernelHeapDir dir;
    addNodes(dir, {"system", "linux,cma", "default_cma_region"});
    auto context = placedContext(dir);
    ASSERT_TRUE(context);

    const HeapProperties& cma = propertiesOf(*context, "linux,cma");
    EXPECT_EQ(cma.kernelPlacement, KernelPlacement::Placed);
    EXPECT_EQ(cma.kernelHeap, "linux,cma") << "the node of its own name first";

    const HeapProperties& alias = propertiesOf(*context, "kernel:default_cma_region");
    EXPECT_EQ(alias.kernelPlacement, KernelPlacement::Alias);
    EXPECT_EQ(alias.kernelHeap, "default_cma_region");
    EXPECT_TRUE(alias.inHostKernel());
    // The same memory: the placed heap's properties.
    EXPECT_EQ(alias.kind, cma.kind);
    EXPECT_TRUE(alias.contiguous);
    EXPECT_EQ(alias.lowestAddress, cma.lowestAddress);
    EXPECT_EQ(alias.highestAddress, cma.highestAddress);
    EXPECT_EQ(alias.capacity, cma.capacity);
    EXPECT_NE(alias.description.find("the same CMA area as heap 'linux,cma'"), std::string::npos) << alias.description;
    EXPECT_STREQ(kernelPlacementName(KernelPlacement::Alias), "alias");

    // The display needs the CMA area: the placed heap serves, its alias never.
    auto display = context->explain(std::vector<std::string>{"display"}, 4 * MiB);
    ASSERT_TRUE(display) << display.error().toString();
    ASSERT_TRUE(display->heap);
    EXPECT_EQ(*display->heap, "linux,cma");
    EXPECT_EQ(std::count(display->ranking.begin(), display->ranking.end(), "kernel:default_cma_region"), 0);
    const HeapExplanation* second = heapIn(*display, "kernel:default_cma_region");
    ASSERT_NE(second, nullptr);
    EXPECT_EQ(second->combined.refusal(), Refusal::KernelAlias);
    EXPECT_NE(second->combined.reason().find("/dev/dma_heap/default_cma_region is a second node"), std::string::npos)
        << second->combined.reason();
    EXPECT_STREQ(refusalName(Refusal::KernelAlias), "kernel-alias");
}

TEST(KernelPlacement, WithoutTheLegacyNodeTheDefaultCmaAreaIsPlacedOnDefaultCmaRegion) {
    FakeKernelHeapDir dir;
    addNodes(dir, {"system", "default_cma_region"});
    auto context = placedContext(dir);
    ASSERT_TRUE(context);
    const HeapProperties& cma = propertiesOf(*context, "linux,cma");
    EXPECT_EQ(cma.kernelPlacement, KernelPlacement::Placed);
    EXPECT_EQ(cma.kernelHeap, "default_cma_region");
    EXPECT_EQ(context->findHeap("kernel:default_cma_region"), nullptr) << "the node is the placed heap's, not another";
    auto display = context->explain(std::vector<std::string>{"display"}, 4 * MiB);
    ASSERT_TRUE(display && display->heap);
    EXPECT_EQ(*display->heap, "linux,cma");
    EXPECT_EQ(display->kernelHeap, std::optional<std::string>("default_cma_region"));
}

TEST(KernelPlacement, DefaultCmaRegionIsNoAliasOfAnythingButTheDefaultCmaArea) {
    // Linux 6.12: one node per default area, named after it; a node called
    // default_cma_region beside a model without a default CMA area is unplaced.
    Platform noDefault = defaultPlatform();
    for (ReservedRegion& r : noDefault.regions)
        r.isDefault = false;
    FakeKernelHeapDir dir;
    addNodes(dir, {"system", "default_cma_region"});
    auto context = placedContext(dir, true, noDefault);
    ASSERT_TRUE(context);
    EXPECT_EQ(propertiesOf(*context, "linux,cma").kernelPlacement, KernelPlacement::NotInKernel);
    EXPECT_EQ(propertiesOf(*context, "kernel:default_cma_region").kernelPlacement, KernelPlacement::Unplaced);
}

// ---------------------------------------------------------------- private pools on the host

TEST(KernelPlacement, ExplainSaysAPrivatePoolOffTheHostKernelIsItsDriversAlone) {
    Platform platform = defaultPlatform();
    for (ReservedRegion& r : platform.regions)
        if (r.name == "vpu-carveout")
            r.owners = {"codec"}; // the codec's memory-region
    FakeKernelHeapDir dir;
    addNodes(dir, {"system", "linux,cma"});
    auto context = placedContext(dir, true, platform);
    ASSERT_TRUE(context);
    EXPECT_EQ(propertiesOf(*context, "vpu-carveout").kernelPlacement, KernelPlacement::NotInKernel);
    const std::string expected = "'vpu-carveout' is the private pool of 'codec' (memory-region): on this host the "
                                 "driver of 'codec' allocates from it itself (dma_alloc_*), and no /dev/dma_heap "
                                 "node exists for it, so it is not a heap to allocate from here";
    auto codec = context->explain(std::vector<std::string>{"codec", "gpu"}, 4 * MiB);
    ASSERT_TRUE(codec) << codec.error().toString();
    EXPECT_EQ(std::count(codec->notes.begin(), codec->notes.end(), expected), 1)
        << fmt::format("{}", fmt::join(codec->notes, "\n"));
    // Not for devices the pool is not theirs, nor off the host.
    auto gpu = context->explain(std::vector<std::string>{"gpu"}, 4 * MiB);
    ASSERT_TRUE(gpu);
    EXPECT_EQ(std::count(gpu->notes.begin(), gpu->notes.end(), expected), 0);
    auto modelled = Context::create(platform, ContextOptions{.kernelHeaps = false, .readyPool = {}});
    ASSERT_TRUE(modelled);
    auto offHost = (*modelled)->explain(std::vector<std::string>{"codec"}, 4 * MiB);
    ASSERT_TRUE(offHost);
    EXPECT_EQ(std::count(offHost->notes.begin(), offHost->notes.end(), expected), 0);
}

// ---------------------------------------------------------------- allocating for devices

TEST(AllocForRequest, IsValidatedWhereItIsMade) {
    auto ok = AllocForRequest::make({"gpu", "display"}, 5000, "frame", CpuAccess::None);
    ASSERT_TRUE(ok) << ok.error().toString();
    EXPECT_EQ(ok->alignedSize(), 2 * kPageSize);
    EXPECT_EQ(ok->size(), 5000u);
    EXPECT_EQ(ok->name().str(), "frame");
    EXPECT_EQ(ok->cpuAccess(), CpuAccess::None);
    EXPECT_EQ(ok->fdFlags(), kDefaultFdFlags);

    auto code = [](Result<AllocForRequest> r) { return r ? 0 : r.error().code(); };
    EXPECT_EQ(code(AllocForRequest::make({}, 4096)), EINVAL) << "no device";
    EXPECT_EQ(code(AllocForRequest::make(std::vector<std::string>(17, "x"), 4096)), EINVAL) << "too many";
    std::vector<std::string> sixteen;
    for (int i = 0; i < 16; ++i)
        sixteen.push_back("d" + std::to_string(i));
    EXPECT_EQ(code(AllocForRequest::make(sixteen, 4096)), 0) << "sixteen distinct devices are fine";
    EXPECT_EQ(code(AllocForRequest::make({"gpu", ""}, 4096)), EINVAL) << "empty name";
    EXPECT_EQ(code(AllocForRequest::make({std::string(64, 'd')}, 4096)), EINVAL) << "name over 63 bytes";
    EXPECT_EQ(code(AllocForRequest::make({std::string(63, 'd')}, 4096)), 0);
    EXPECT_EQ(code(AllocForRequest::make({"gpu", "display", "gpu"}, 4096)), EINVAL) << "listed twice";
    EXPECT_EQ(code(AllocForRequest::make({"gpu"}, 0)), EINVAL) << "zero size";
    EXPECT_EQ(code(AllocForRequest::make({"gpu"}, UINT64_MAX)), EINVAL) << "overflows when page-aligned";
    EXPECT_EQ(code(AllocForRequest::make({"gpu"}, 4096, {}, CpuAccess::Rare, O_RDWR | O_NONBLOCK)), EINVAL);
    EXPECT_EQ(code(AllocForRequest::make({"gpu"}, 4096, std::string(32, 'n'))), EINVAL) << "name over 31 bytes";
}

TEST(AllocateFor, TakesTheModelsStorageFromExplainsChoiceOffTheHost) {
    auto created = Context::create(defaultPlatform(), ContextOptions{.kernelHeaps = false, .readyPool = {}});
    ASSERT_TRUE(created);
    Context& context = **created;
    const size_t fds = test::openFdCount();
    {
        auto request = AllocForRequest::make({"display", "gpu"}, 3 * MiB, "scanout");
        ASSERT_TRUE(request);
        auto allocated = context.allocateFor(*request);
        ASSERT_TRUE(allocated) << allocated.error().toString();
        const AllocForChoice& choice = allocated->choice;
        EXPECT_EQ(choice.heap, "linux,cma");
        ASSERT_TRUE(choice.explanation.heap);
        EXPECT_EQ(choice.heap, *choice.explanation.heap);
        EXPECT_TRUE(choice.kernelHeap.empty()) << "the model's storage";
        EXPECT_NE(choice.reason.find("display and gpu"), std::string::npos) << choice.reason;
        ASSERT_EQ(choice.devices.size(), 2u);
        EXPECT_EQ(choice.devices[0].name, "display");
        EXPECT_EQ(choice.devices[1].name, "gpu");
        EXPECT_TRUE(choice.devices[0].sysfsPath.empty()) << "no running host behind the built-in platform";

        const Buffer& buffer = *allocated->buffer;
        EXPECT_TRUE(buffer.hasStorage());
        EXPECT_EQ(buffer.heapName(), "linux,cma");
        EXPECT_EQ(buffer.size(), 3 * MiB);
        EXPECT_EQ(buffer.name(), "scanout");
        EXPECT_FALSE(buffer.inHostKernel());
        EXPECT_EQ(context.findHeap("linux,cma")->stats().liveBuffers, 1u);

        // The storage serves both devices: they attach and map.
        auto display = allocated->buffer->attach(**context.device("display"));
        ASSERT_TRUE(display) << display.error().toString();
        auto mapping = display->map(DmaDirection::Bidirectional);
        ASSERT_TRUE(mapping) << mapping.error().toString();
    }
    EXPECT_EQ(context.findHeap("linux,cma")->stats().liveBuffers, 0u);
    EXPECT_EQ(context.liveBuffers(), 0u);
    EXPECT_EQ(test::openFdCount(), fds);
}

TEST(AllocateFor, RefusesUnknownDevicesAndUnservableSetsChangingNothing) {
    auto created = Context::create(defaultPlatform(), ContextOptions{.kernelHeaps = false, .readyPool = {}});
    ASSERT_TRUE(created);
    Context& context = **created;
    const size_t fds = test::openFdCount();

    auto unknown = context.allocateFor(*AllocForRequest::make({"gpu", "toaster"}, 4096));
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().code(), ENODEV);
    EXPECT_NE(unknown.error().message().find("'toaster'"), std::string::npos) << unknown.error().message();

    // Larger than any heap the display can use.
    auto huge = context.allocateFor(*AllocForRequest::make({"display"}, 8 * GiB));
    ASSERT_FALSE(huge);
    EXPECT_EQ(huge.error().code(), EINVAL);
    EXPECT_NE(huge.error().message().find("no heap serves"), std::string::npos) << huge.error().message();
    EXPECT_NE(huge.error().message().find("heap 'linux,cma'"), std::string::npos) << huge.error().message();

    for (const auto& heap : context.heaps()) {
        EXPECT_EQ(heap->stats().liveBuffers, 0u) << heap->name();
        EXPECT_EQ(heap->stats().totalAllocations, 0u) << heap->name();
    }
    EXPECT_EQ(context.liveBuffers(), 0u);
    EXPECT_EQ(test::openFdCount(), fds);
}

TEST(AllocateFor, AKernelRefusalOfEveryPlacedHeapFailsAndLeavesNothingBehind) {
    FakeKernelHeapDir dir; // its nodes are regular files: DMA_HEAP_IOCTL_ALLOC fails with ENOTTY
    dir.addHeap("system");
    dir.addHeap("linux,cma");
    auto context = placedContext(dir);
    ASSERT_TRUE(context);
    const size_t fds = test::openFdCount();

    auto allocated = context->allocateFor(*AllocForRequest::make({"gpu"}, 1 * MiB));
    ASSERT_FALSE(allocated);
    EXPECT_EQ(allocated.error().code(), ENOTTY);
    EXPECT_NE(allocated.error().message().find("heap 'system'"), std::string::npos) << allocated.error().message();
    EXPECT_EQ(context->findHeap("system")->stats().failedAllocations, 1u);
    EXPECT_EQ(context->findHeap("linux,cma")->stats().failedAllocations, 1u) << "the next heap that serves was tried";
    EXPECT_EQ(context->findHeap("system-dma32")->stats().totalAllocations, 0u) << "not in the kernel: never tried";
    EXPECT_EQ(context->liveBuffers(), 0u);
    EXPECT_EQ(test::openFdCount(), fds);
}

// A deferred buffer on a host whose kernel heaps are placed keeps its bytes
// apart: its fd is a handle of 0 bytes that nobody can grow or write, so no
// mapping of it holds bytes the kernel's dma-buf (made at the first use)
// would not see.
TEST(DeferredOnKernelHeaps, TheHandleIsEmptyAndSealedSoNoMappingOfItHoldsBytes) {
    FakeKernelHeapDir dir;
    dir.addHeap("system");
    auto context = placedContext(dir);
    ASSERT_TRUE(context);
    auto buffer = context->create(1 * MiB, "frame");
    ASSERT_TRUE(buffer) << buffer.error().toString();
    EXPECT_TRUE((*buffer)->bytesApart());
    const int handle = (*buffer)->fd().get();
    struct stat st {};
    ASSERT_EQ(::fstat(handle, &st), 0);
    EXPECT_EQ(st.st_size, 0) << "the handle holds no bytes";
    const int seals = ::fcntl(handle, F_GET_SEALS);
    EXPECT_EQ(seals & (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_WRITE | F_SEAL_SEAL),
              F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_WRITE | F_SEAL_SEAL);
    EXPECT_NE(::ftruncate(handle, 1 * MiB), 0) << "nobody can grow it to write bytes into it";
    EXPECT_EQ(::mmap(nullptr, 1 * MiB, PROT_READ | PROT_WRITE, MAP_SHARED, handle, 0), MAP_FAILED)
        << "no writable mapping of the handle";
    EXPECT_EQ(errno, EPERM);
    void* readable = ::mmap(nullptr, 1 * MiB, PROT_READ, MAP_SHARED, handle, 0);
    ASSERT_NE(readable, MAP_FAILED);
    // A reader of the handle learns at once that it holds nothing: no stale
    // zeros read silently while the storage has the bytes. The page lies past
    // the file's end: a touch raises SIGBUS, and the kernel copying from it
    // (write() here, which no sanitizer's signal handler intercepts) meets
    // the same fault as EFAULT.
    int ends[2];
    ASSERT_EQ(::pipe2(ends, O_CLOEXEC), 0);
    UniqueFd readEnd(ends[0]), writeEnd(ends[1]);
    EXPECT_EQ(::write(writeEnd.get(), readable, 1), -1) << "the handle's mapping has no byte to read";
    EXPECT_EQ(errno, EFAULT);
    ::munmap(readable, 1 * MiB);

    auto plain = Context::create(defaultPlatform(), ContextOptions{.kernelHeaps = false, .readyPool = {}});
    ASSERT_TRUE(plain);
    auto modelled = (*plain)->create(1 * MiB);
    ASSERT_TRUE(modelled);
    EXPECT_FALSE((*modelled)->bytesApart()) << "without a placed heap the bytes stay in the buffer's fd";
}

TEST(DeferredOnKernelHeaps, TheFirstMapAllocatesFromThePlacedHeapAndAKernelRefusalLeavesNothing) {
    FakeKernelHeapDir dir; // its nodes are regular files: DMA_HEAP_IOCTL_ALLOC fails with ENOTTY
    dir.addHeap("system");
    auto context = placedContext(dir);
    ASSERT_TRUE(context);
    const size_t fds = test::openFdCount();
    {
        auto buffer = context->create(1 * MiB);
        ASSERT_TRUE(buffer);
        auto attachment = (*buffer)->attach(**context->device("gpu"));
        ASSERT_TRUE(attachment) << attachment.error().toString();
        auto mapping = attachment->map(DmaDirection::Bidirectional);
        ASSERT_FALSE(mapping);
        EXPECT_EQ(mapping.error().code(), ENOTTY) << "the kernel's heap was asked: " << mapping.error().message();
        EXPECT_NE(mapping.error().message().find("heap 'system'"), std::string::npos) << mapping.error().message();
        EXPECT_FALSE((*buffer)->hasStorage());
        EXPECT_EQ(context->findHeap("system")->stats().failedAllocations, 1u);

        for (int cloexec : {O_CLOEXEC, 0}) {
            auto fd = (*buffer)->dupStorageFd(cloexec);
            ASSERT_FALSE(fd);
            EXPECT_EQ(fd.error().code(), ENOTTY);
        }
        auto cpu = (*buffer)->mmap();
        ASSERT_FALSE(cpu);
        EXPECT_EQ(cpu.error().code(), ENOTTY);
        auto flags = (*buffer)->dupStorageFd(O_NONBLOCK);
        ASSERT_FALSE(flags);
        EXPECT_EQ(flags.error().code(), EINVAL);
        EXPECT_EQ(context->findHeap("system")->stats().failedAllocations, 4u) << "the bad flags asked nothing";
        EXPECT_EQ(context->findHeap("system")->stats().liveBuffers, 0u);
    }
    EXPECT_EQ(context->liveBuffers(), 0u);
    EXPECT_EQ(test::openFdCount(), fds);
}

// ---------------------------------------------------------------- real kernel heaps, where the host has them

TEST(AllocateForOnARealKernel, HandsOutTheKernelsDmaBufFromThePlacedSystemHeap) {
    if (::access("/dev/dma_heap/system", R_OK) != 0)
        GTEST_SKIP() << "this host has no /dev/dma_heap/system; scripts/kernel-conformance runs alloc --for in a qemu "
                        "guest";
    auto created = Context::create(defaultPlatform(), ContextOptions{.placeKernelHeaps = true, .readyPool = {}});
    ASSERT_TRUE(created) << created.error().toString();
    Context& context = **created;
    ASSERT_EQ(propertiesOf(context, "system").kernelPlacement, KernelPlacement::Placed);
    const size_t fds = test::openFdCount();
    {
        auto allocated = context.allocateFor(*AllocForRequest::make({"gpu"}, 5000, "for-gpu"));
        ASSERT_TRUE(allocated) << allocated.error().toString();
        EXPECT_EQ(allocated->choice.heap, "system");
        EXPECT_EQ(allocated->choice.kernelHeap, "system");
        const Buffer& buffer = *allocated->buffer;
        EXPECT_TRUE(buffer.inHostKernel());
        EXPECT_EQ(buffer.size(), 2 * kPageSize);
        EXPECT_EQ(test::dmaBufFdinfo(buffer.fd().get(), "exp_name"), "system") << "the kernel exported it";
        EXPECT_EQ(test::dmaBufFdinfo(buffer.fd().get(), "name"), "for-gpu");
        EXPECT_EQ(context.findHeap("system")->stats().liveBuffers, 1u);

        auto attach = allocated->buffer->attach(**context.device("gpu"));
        ASSERT_FALSE(attach);
        EXPECT_EQ(attach.error().code(), EOPNOTSUPP) << "no model placement for a kernel-made buffer";
        EXPECT_NE(attach.error().message().find("/dev/dma_heap/system"), std::string::npos) << attach.error().message();
    }
    EXPECT_EQ(context.findHeap("system")->stats().liveBuffers, 0u);
    EXPECT_EQ(test::openFdCount(), fds);
}

TEST(DeferredOnARealKernel, TheFirstMapMakesTheKernelsDmaBufAndEveryCpuMappingSeesItsBytes) {
    if (::access("/dev/dma_heap/system", R_OK) != 0)
        GTEST_SKIP() << "this host has no /dev/dma_heap/system; scripts/kernel-conformance runs a deferred buffer for "
                        "a host device in a qemu guest";
    auto created = Context::create(defaultPlatform(), ContextOptions{.placeKernelHeaps = true, .readyPool = {}});
    ASSERT_TRUE(created) << created.error().toString();
    Context& context = **created;
    const size_t fds = test::openFdCount();
    {
        auto buffer = context.create(5000, "deferred");
        ASSERT_TRUE(buffer) << buffer.error().toString();
        ASSERT_TRUE((*buffer)->bytesApart());
        auto attachment = (*buffer)->attach(**context.device("gpu"));
        ASSERT_TRUE(attachment) << attachment.error().toString();
        auto first = (*buffer)->mmap();
        ASSERT_TRUE(first) << first.error().toString();
        EXPECT_TRUE((*buffer)->inHostKernel());
        EXPECT_EQ((*buffer)->heapName(), "system");
        std::memset(first->data(), 0x5a, first->size());
        auto storage = (*buffer)->dupStorageFd();
        ASSERT_TRUE(storage) << storage.error().toString();
        EXPECT_EQ(test::dmaBufFdinfo(storage->get(), "exp_name"), "system");
        EXPECT_EQ(test::dmaBufFdinfo(storage->get(), "name"), "deferred");
        void* second = ::mmap(nullptr, 2 * kPageSize, PROT_READ, MAP_SHARED, storage->get(), 0);
        ASSERT_NE(second, MAP_FAILED);
        EXPECT_EQ(static_cast<const unsigned char*>(second)[4999], 0x5a) << "the driver's fd holds the bytes";
        ::munmap(second, 2 * kPageSize);
        auto sync = (*buffer)->beginCpuAccess(kSyncRead);
        EXPECT_TRUE(sync) << sync.error().toString();
        auto mapping = attachment->map(DmaDirection::Bidirectional);
        ASSERT_FALSE(mapping);
        EXPECT_EQ(mapping.error().code(), EOPNOTSUPP) << "its driver maps the storage fd itself";
        auto display = (*buffer)->attach(**context.device("display"));
        ASSERT_FALSE(display) << "a display without an IOMMU needs contiguous memory; the kernel's storage stays";
        EXPECT_EQ(display.error().code(), EBUSY) << display.error().message();
        EXPECT_EQ(context.findHeap("system")->stats().liveBuffers, 1u);
    }
    EXPECT_EQ(context.findHeap("system")->stats().liveBuffers, 0u);
    EXPECT_EQ(test::openFdCount(), fds);
}

} // namespace
} // namespace cenalloc
