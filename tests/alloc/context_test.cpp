// SPDX-License-Identifier: MIT
// Tests of Context: request validation without leaks, zero-filled memory, bufinfo, and devices and domains.
#include <cenalloc/context.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/memfd.h>
#include <cenalloc/units.h>

#include "support/context.h"
#include "support/core_board.h"

namespace cenalloc {
namespace {

using test::contains;
using test::deviceOf;
using test::makeContext;

constexpr uint32_t kRw = O_CLOEXEC | O_RDWR;

const IommuDomainStats& domainOf(const std::vector<IommuDomainStats>& stats, std::string_view name) {
    auto it = std::find_if(stats.begin(), stats.end(), [&](const auto& s) { return s.name == name; });
    EXPECT_NE(it, stats.end()) << name;
    return *it;
}

/// Everything a failed request must leave as it was.
struct Snapshot {
    std::vector<HeapStats> stats;
    std::vector<uint64_t> freeBytes;
    size_t fds = 0;
    size_t liveBuffers = 0;
    size_t bufinfo = 0;

    static Snapshot take(const Context& context) {
        // The ready pool's thread makes memfds in the background after
        // earlier allocations: let it finish, so its fds are not counted
        // as a request's leak.
        context.waitReadyPoolRefilled();
        Snapshot s;
        for (const auto& heap : context.heaps()) {
            s.stats.push_back(heap->stats());
            s.freeBytes.push_back(heap->freeBytes());
        }
        s.fds = test::openFdCount();
        s.liveBuffers = context.liveBuffers();
        s.bufinfo = context.bufinfo().size();
        return s;
    }
};

// @p failedHeap, if any, is the heap whose failedAllocations must have risen by one.
void expectUnchanged(const Context& context, const Snapshot& before, std::string_view failedHeap) {
    const Snapshot after = Snapshot::take(context);
    EXPECT_EQ(after.fds, before.fds) << "fd leaked";
    EXPECT_EQ(after.liveBuffers, before.liveBuffers);
    EXPECT_EQ(after.bufinfo, before.bufinfo);
    for (size_t i = 0; i < context.heaps().size(); ++i) {
        const std::string& name = context.heaps()[i]->name();
        SCOPED_TRACE(name);
        EXPECT_EQ(after.stats[i].liveBuffers, before.stats[i].liveBuffers);
        EXPECT_EQ(after.stats[i].liveBytes, before.stats[i].liveBytes);
        EXPECT_EQ(after.stats[i].watermarkBytes, before.stats[i].watermarkBytes);
        EXPECT_EQ(after.stats[i].totalAllocations, before.stats[i].totalAllocations);
        EXPECT_EQ(after.stats[i].failedAllocations, before.stats[i].failedAllocations + (name == failedHeap ? 1 : 0));
        EXPECT_EQ(after.freeBytes[i], before.freeBytes[i]) << "physical memory leaked";
    }
}

struct BadRequest {
    const char* what;
    const char* heap;
    uint64_t length;
    uint32_t fdFlags;
    uint64_t heapFlags;
    int code;
};

TEST(ContextAllocate, BadRequestsFailWithTheirErrnoAndLeaveNothingBehind) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    // Something live, so "unchanged" is not just "empty".
    auto keep = context->allocate("system", 1 * MiB);
    auto keepCma = context->allocate("linux,cma", 1 * MiB);
    ASSERT_TRUE(keep && keepCma);

    const BadRequest cases[] = {
        {"zero length", "system", 0, kRw, 0, EINVAL},
        {"UINT64_MAX overflows when page-aligned", "system", UINT64_MAX, kRw, 0, EINVAL},
        {"a page short of overflow still overflows", "linux,cma", UINT64_MAX - kPageSize + 2, kRw, 0, EINVAL},
        {"O_NONBLOCK", "system", 4 * KiB, kRw | O_NONBLOCK, 0, EINVAL},
        {"O_APPEND", "linux,cma", 4 * KiB, kRw | O_APPEND, 0, EINVAL},
        {"O_CREAT", "system-dma32", 4 * KiB, kRw | O_CREAT, 0, EINVAL},
        {"heap flag bit 0", "system", 4 * KiB, kRw, 1, EINVAL},
        {"heap flag bit 63", "vpu-carveout", 4 * KiB, kRw, uint64_t{1} << 63, EINVAL},
        {"unknown heap", "no-such-heap", 4 * KiB, kRw, 0, ENOENT},
        {"heap names are case-sensitive", "System", 4 * KiB, kRw, 0, ENOENT},
        {"empty heap name", "", 4 * KiB, kRw, 0, ENOENT},
        {"more than the cma pool", "linux,cma", 256 * MiB, kRw, 0, ENOMEM},
        {"more than the carveout", "vpu-carveout", 128 * MiB + 4 * KiB, kRw, 0, ENOMEM},
        {"more than all memory below 4 GiB", "system-dma32", 2 * GiB, kRw, 0, ENOMEM},
        {"more than all memory", "system", 5 * GiB, kRw, 0, ENOMEM},
    };
    for (const BadRequest& c : cases) {
        SCOPED_TRACE(c.what);
        const Snapshot before = Snapshot::take(*context);
        auto buffer = context->allocate(c.heap, c.length, c.fdFlags, c.heapFlags);
        ASSERT_FALSE(buffer);
        EXPECT_EQ(buffer.error().code(), c.code) << buffer.error().toString();
        EXPECT_FALSE(buffer.error().message().empty());
        expectUnchanged(*context, before, c.code == ENOMEM ? c.heap : "");
    }
}

TEST(ContextAllocate, AnExhaustedPoolIsEnomemUntilMemoryIsFreed) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    auto whole = context->allocate("linux,cma", 256 * MiB);
    ASSERT_TRUE(whole) << whole.error().toString();
    EXPECT_EQ(context->findHeap("linux,cma")->freeBytes(), 0u);

    const Snapshot before = Snapshot::take(*context);
    auto more = context->allocate("linux,cma", 4 * KiB);
    ASSERT_FALSE(more);
    EXPECT_EQ(more.error().code(), ENOMEM);
    EXPECT_TRUE(contains(more.error().message(), "linux,cma")) << more.error().message();
    expectUnchanged(*context, before, "linux,cma");

    whole->reset();
    auto again = context->allocate("linux,cma", 4 * KiB);
    EXPECT_TRUE(again) << again.error().toString();
}

TEST(ContextAllocate, LengthsArePageAlignedAndTheBufferIsASealedMemfd) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    auto buffer = context->allocate("system", 5000);
    ASSERT_TRUE(buffer) << buffer.error().toString();
    const Buffer& b = **buffer;
    EXPECT_EQ(b.size(), 8 * KiB);
    EXPECT_TRUE(isSizeSealed(b.fd()));
    EXPECT_EQ(b.fdFlags(), kRw);
    EXPECT_EQ(b.heapName(), "system");
    EXPECT_STREQ(b.exporterName(), "system");
    EXPECT_TRUE(b.hasStorage());
    struct stat st {};
    ASSERT_EQ(::fstat(b.fd().get(), &st), 0);
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), 8 * KiB);
    EXPECT_EQ(static_cast<uint64_t>(st.st_ino), b.info().inode);

    auto readOnly = context->allocate("system", 4 * KiB, O_RDONLY);
    ASSERT_TRUE(readOnly) << readOnly.error().toString();
    EXPECT_EQ((*readOnly)->fdFlags(), static_cast<uint32_t>(O_RDONLY));
    EXPECT_EQ(context->liveBuffers(), 2u);
}

// ---------------------------------------------------------- zeroing

struct ZeroCase {
    const char* heap;
    uint64_t size;
};

TEST(ContextAllocate, MemoryIsZeroFilledEvenWhenRecycled) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    // Every heap of the default platform; 32 x 64 KiB fits the smallest pool
    // (the 128 MiB carveout) many times over.
    const ZeroCase cases[] = {
        {"system", 64 * KiB},       {"system-uncached", 64 * KiB},
        {"system-dma32", 64 * KiB}, {"system-uncached-dma32", 64 * KiB},
        {"linux,cma", 64 * KiB},    {"vpu-carveout", 64 * KiB},
    };
    ASSERT_EQ(std::size(cases), context->heaps().size());
    constexpr int kBuffers = 32;
    for (const ZeroCase& c : cases) {
        SCOPED_TRACE(c.heap);
        std::set<uint64_t> firstRound;
        {
            std::vector<std::shared_ptr<Buffer>> buffers;
            for (int i = 0; i < kBuffers; ++i) {
                auto buffer = context->allocate(c.heap, c.size);
                ASSERT_TRUE(buffer) << buffer.error().toString();
                auto cpu = (*buffer)->mmap();
                ASSERT_TRUE(cpu) << cpu.error().toString();
                ASSERT_TRUE(test::allBytesAre(*cpu, std::byte{0}));
                std::memset(cpu->data(), 0xff, cpu->size());
                ASSERT_TRUE(test::allBytesAre(*cpu, std::byte{0xff}));
                for (const PhysChunk& chunk : (*buffer)->chunks())
                    firstRound.insert(chunk.address);
                buffers.push_back(std::move(*buffer));
            }
        }
        EXPECT_EQ(context->findHeap(c.heap)->stats().liveBuffers, 0u);

        std::vector<std::shared_ptr<Buffer>> again;
        size_t recycled = 0;
        for (int i = 0; i < kBuffers; ++i) {
            SCOPED_TRACE(i);
            auto buffer = context->allocate(c.heap, c.size);
            ASSERT_TRUE(buffer) << buffer.error().toString();
            for (const PhysChunk& chunk : (*buffer)->chunks())
                recycled += firstRound.count(chunk.address);
            auto cpu = (*buffer)->mmap();
            ASSERT_TRUE(cpu);
            EXPECT_TRUE(test::allBytesAre(*cpu, std::byte{0}));
            again.push_back(std::move(*buffer));
        }
        // The second round really did get the first round's memory back.
        EXPECT_GT(recycled, 0u);
    }
}

TEST(ContextAllocate, MemoryADeviceWroteIsZeroWhenRecycled) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    const DmaDevice& display = deviceOf(*context, "display");
    uint64_t address = 0;
    {
        auto buffer = context->allocate("linux,cma", 64 * KiB);
        ASSERT_TRUE(buffer);
        auto attachment = (*buffer)->attach(display);
        ASSERT_TRUE(attachment);
        auto mapping = attachment->map(DmaDirection::Bidirectional);
        ASSERT_TRUE(mapping);
        address = (*buffer)->chunks().front().address;
        const std::vector<std::byte> data(64 * KiB, std::byte{0xa5});
        ASSERT_TRUE(display.write(mapping->segments().front().dmaAddress, data));
    }
    auto buffer = context->allocate("linux,cma", 64 * KiB);
    ASSERT_TRUE(buffer);
    ASSERT_EQ((*buffer)->chunks().front().address, address) << "precondition: the pool is first fit";
    auto attachment = (*buffer)->attach(display);
    ASSERT_TRUE(attachment);
    auto mapping = attachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(mapping);
    std::vector<std::byte> out(64 * KiB, std::byte{1});
    ASSERT_TRUE(display.read(mapping->segments().front().dmaAddress, out));
    EXPECT_EQ(out, std::vector<std::byte>(64 * KiB, std::byte{0}));
}

// ------------------------------------------------------------ bufinfo

TEST(ContextBufinfo, ListsSizeExporterNameDevicesAndMappings) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    const DmaDevice& usb = deviceOf(*context, "usb");
    const DmaDevice& camera = deviceOf(*context, "camera");
    const DmaDevice& gpu = deviceOf(*context, "gpu");

    auto eager = context->allocate("system-dma32", 192 * KiB);
    ASSERT_TRUE(eager);
    ASSERT_TRUE((*eager)->setName("preview"));
    auto usbAttachment = (*eager)->attach(usb);
    auto cameraAttachment = (*eager)->attach(camera);
    ASSERT_TRUE(usbAttachment && cameraAttachment);
    auto cameraMapping = cameraAttachment->map(DmaDirection::FromDevice);
    ASSERT_TRUE(cameraMapping);

    auto deferred = context->create(1 * MiB, "render-target");
    ASSERT_TRUE(deferred);
    auto gpuAttachment = (*deferred)->attach(gpu);
    ASSERT_TRUE(gpuAttachment);

    std::vector<BufferInfo> infos = context->bufinfo();
    ASSERT_EQ(infos.size(), 2u);
    const BufferInfo& e = infos[0];
    EXPECT_EQ(e.id, (*eager)->id());
    EXPECT_EQ(e.size, 192 * KiB);
    EXPECT_EQ(e.fdFlags, kRw);
    EXPECT_EQ(e.exporter, "system-dma32");
    EXPECT_EQ(e.name, "preview");
    EXPECT_EQ(e.inode, (*eager)->info().inode);
    EXPECT_GE(e.references, 1);
    EXPECT_TRUE(e.hasStorage);
    EXPECT_EQ(e.heap, "system-dma32");
    EXPECT_EQ(e.chunks, (*eager)->chunks());
    EXPECT_EQ(e.attachedDevices, (std::vector<std::string>{"usb", "camera"}));
    ASSERT_EQ(e.mappings.size(), 1u);
    EXPECT_EQ(e.mappings[0].device, "camera");
    EXPECT_EQ(e.mappings[0].direction, DmaDirection::FromDevice);
    EXPECT_EQ(e.mappings[0].domain, "");
    EXPECT_EQ(e.mappings[0].segments, cameraMapping->segments());

    const BufferInfo& d = infos[1];
    EXPECT_EQ(d.id, (*deferred)->id());
    EXPECT_EQ(d.exporter, "cenalloc");
    EXPECT_EQ(d.name, "render-target");
    EXPECT_FALSE(d.hasStorage);
    EXPECT_EQ(d.heap, "");
    EXPECT_TRUE(d.chunks.empty());
    EXPECT_EQ(d.attachedDevices, std::vector<std::string>{"gpu"});
    EXPECT_TRUE(d.mappings.empty());
    EXPECT_FALSE(d.exporterState.empty());

    auto gpuMapping = gpuAttachment->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(gpuMapping) << gpuMapping.error().toString();
    infos = context->bufinfo();
    ASSERT_EQ(infos.size(), 2u);
    EXPECT_TRUE(infos[1].hasStorage);
    EXPECT_EQ(infos[1].heap, (*deferred)->heapName());
    EXPECT_FALSE(infos[1].heap.empty());
    ASSERT_EQ(infos[1].mappings.size(), 1u);
    EXPECT_EQ(infos[1].mappings[0].device, "gpu");
    EXPECT_EQ(infos[1].mappings[0].domain, "gpu-smmu");
    EXPECT_EQ(infos[1].mappings[0].segments, gpuMapping->segments());
    EXPECT_TRUE(contains(infos[1].exporterState, infos[1].heap)) << infos[1].exporterState;

    // A buffer leaves the listing with its last reference.
    gpuMapping->unmap();
    gpuAttachment->detach();
    deferred->reset();
    infos = context->bufinfo();
    ASSERT_EQ(infos.size(), 1u);
    EXPECT_EQ(infos[0].id, (*eager)->id());
}

// ---------------------------------------------------- devices, domains

TEST(Context, NamesItsDevicesAndRefusesUnknownOnes) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    EXPECT_EQ(context->devices().size(), defaultPlatform().devices.size());
    EXPECT_EQ(deviceOf(*context, "gpu").domain()->name(), "gpu-smmu");
    EXPECT_EQ(deviceOf(*context, "isp").domain(), deviceOf(*context, "codec").domain());
    EXPECT_EQ(deviceOf(*context, "display").domain(), nullptr);
    auto unknown = context->device("npu");
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().code(), ENOENT);
    EXPECT_TRUE(contains(unknown.error().message(), "npu"));
    EXPECT_TRUE(contains(unknown.error().message(), "display")) << unknown.error().message();
}

TEST(Context, RefusesAnInvalidPlatform) {
    Platform bad = defaultPlatform();
    bad.devices[0].iommu = "no-such-iommu";
    auto context = Context::create(bad);
    ASSERT_FALSE(context);
    EXPECT_EQ(context.error().code(), EINVAL);
}

TEST(Context, ReleaseWithALiveAttachmentIsReportedAndTheAttachmentGoesInert) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    auto buffer = context->allocate("linux,cma", 64 * KiB);
    ASSERT_TRUE(buffer);
    auto attachment = (*buffer)->attach(deviceOf(*context, "display"));
    ASSERT_TRUE(attachment);
    EXPECT_TRUE(context->lifetimeBugs().empty());

    buffer->reset();
    EXPECT_EQ(context->liveBuffers(), 0u);
    ASSERT_EQ(context->lifetimeBugs().size(), 1u);
    EXPECT_TRUE(contains(context->lifetimeBugs()[0], "attached")) << context->lifetimeBugs()[0];
    EXPECT_EQ(context->findHeap("linux,cma")->stats().liveBuffers, 0u);
    auto map = attachment->map(DmaDirection::ToDevice);
    ASSERT_FALSE(map);
    EXPECT_EQ(map.error().code(), ENODEV);
}

TEST(ContextDomains, CountHitsFaultsAndReturnIovaOnRelease) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    const DmaDevice& gpu = deviceOf(*context, "gpu");
    const IommuDomainStats before = domainOf(context->domainStats(), "gpu-smmu");
    {
        auto buffer = context->allocate("system", 1 * MiB);
        ASSERT_TRUE(buffer);
        auto attachment = (*buffer)->attach(gpu);
        ASSERT_TRUE(attachment);
        auto first = attachment->map(DmaDirection::ToDevice);
        ASSERT_TRUE(first);
        ASSERT_EQ(first->segments().size(), 1u);
        auto second = attachment->map(DmaDirection::ToDevice);
        ASSERT_TRUE(second);
        IommuDomainStats now = domainOf(context->domainStats(), "gpu-smmu");
        EXPECT_EQ(now.misses, before.misses + 1);
        EXPECT_EQ(now.hits, before.hits + 1);
        EXPECT_GE(now.usedIovaBytes, before.usedIovaBytes + 1 * MiB);
        ASSERT_EQ(context->domainMappings("gpu-smmu").size(), 1u);
        EXPECT_EQ(context->domainMappings("gpu-smmu")[0].bufferId, (*buffer)->id());
        EXPECT_EQ(context->domainMappings("gpu-smmu")[0].iova, first->segments()[0].dmaAddress);

        // A write through the to-device mapping faults against the domain.
        const std::vector<std::byte> data(16, std::byte{1});
        auto r = gpu.write(first->segments()[0].dmaAddress, data);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code(), EPERM);
        EXPECT_EQ(domainOf(context->domainStats(), "gpu-smmu").faults, before.faults + 1);
        EXPECT_EQ(domainOf(context->domainStats(), "media-smmu").faults, 0u);
    }
    const IommuDomainStats after = domainOf(context->domainStats(), "gpu-smmu");
    EXPECT_EQ(after.usedIovaBytes, before.usedIovaBytes);
    EXPECT_EQ(after.mappingCount, before.mappingCount);
    EXPECT_TRUE(context->domainMappings("gpu-smmu").empty());
    EXPECT_TRUE(context->domainMappings("no-such-iommu").empty());
}

TEST(ContextDomains, IspAndCodecShareOneIovaMapping) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    auto buffer = context->allocate("system", 2 * MiB);
    ASSERT_TRUE(buffer);
    auto isp = (*buffer)->attach(deviceOf(*context, "isp"));
    auto codec = (*buffer)->attach(deviceOf(*context, "codec"));
    ASSERT_TRUE(isp && codec);
    auto ispMapping = isp->map(DmaDirection::FromDevice);
    ASSERT_TRUE(ispMapping);
    const IommuDomainStats mid = domainOf(context->domainStats(), "media-smmu");
    auto codecMapping = codec->map(DmaDirection::ToDevice);
    ASSERT_TRUE(codecMapping);
    const IommuDomainStats end = domainOf(context->domainStats(), "media-smmu");
    EXPECT_EQ(end.hits, mid.hits + 1);
    EXPECT_EQ(end.usedIovaBytes, mid.usedIovaBytes);
    EXPECT_EQ(codecMapping->segments().front().dmaAddress, ispMapping->segments().front().dmaAddress);
    EXPECT_LT(ispMapping->segments().back().dmaAddress + ispMapping->segments().back().length - 1, uint64_t{1} << 32);

    // What the isp writes, the codec reads through the shared IOVA mapping.
    const std::vector<std::byte> data(64 * KiB, std::byte{0x3c});
    const uint64_t iova = ispMapping->segments().front().dmaAddress;
    ASSERT_TRUE(deviceOf(*context, "isp").write(iova, data));
    std::vector<std::byte> out(64 * KiB);
    ASSERT_TRUE(deviceOf(*context, "codec").read(iova, out));
    EXPECT_EQ(out, data);
}

TEST(Context, ConcurrentUsersLeaveEverythingAtBaseline) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    const Snapshot before = Snapshot::take(*context);
    const std::vector<IommuDomainStats> domainsBefore = context->domainStats();
    constexpr int kThreads = 4;
    constexpr int kRounds = 25;
    std::vector<int> failures(kThreads, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            // Each thread pairs an IOMMU device with one that is not, and
            // moves data between them; every thread shares the heaps and the
            // media-smmu domain with the others.
            const char* pairs[][2] = {{"gpu", "display"}, {"isp", "display"}, {"codec", "usb"}, {"isp", "camera"}};
            const std::vector<std::byte> data(4 * KiB, std::byte(static_cast<unsigned char>(t + 1)));
            for (int round = 0; round < kRounds; ++round) {
                auto buffer = context->create(256 * KiB);
                if (!buffer) {
                    ++failures[t];
                    continue;
                }
                auto a = (*buffer)->attach(deviceOf(*context, pairs[t][0]));
                auto b = (*buffer)->attach(deviceOf(*context, pairs[t][1]));
                if (!a || !b) {
                    ++failures[t];
                    continue;
                }
                auto ma = a->map(DmaDirection::FromDevice);
                auto mb = b->map(DmaDirection::ToDevice);
                std::vector<std::byte> out(4 * KiB);
                if (!ma || !mb || !a->device().write(ma->segments().front().dmaAddress, data) ||
                    !b->device().read(mb->segments().front().dmaAddress, out) || out != data)
                    ++failures[t];
            }
        });
    }
    for (std::thread& thread : threads)
        thread.join();
    EXPECT_EQ(failures, std::vector<int>(kThreads, 0));
    const Snapshot after = Snapshot::take(*context);
    EXPECT_EQ(after.liveBuffers, 0u);
    for (size_t i = 0; i < context->heaps().size(); ++i) {
        SCOPED_TRACE(context->heaps()[i]->name());
        EXPECT_EQ(after.stats[i].liveBuffers, before.stats[i].liveBuffers);
        EXPECT_EQ(after.stats[i].liveBytes, before.stats[i].liveBytes);
        EXPECT_EQ(after.freeBytes[i], before.freeBytes[i]);
    }
    const std::vector<IommuDomainStats> domainsAfter = context->domainStats();
    for (size_t i = 0; i < domainsAfter.size(); ++i) {
        SCOPED_TRACE(domainsAfter[i].name);
        EXPECT_EQ(domainsAfter[i].usedIovaBytes, domainsBefore[i].usedIovaBytes);
        EXPECT_EQ(domainsAfter[i].mappingCount, 0u);
        EXPECT_EQ(domainsAfter[i].faults, 0u);
    }
    EXPECT_TRUE(context->lifetimeBugs().empty());
}

} // namespace
} // namespace cenalloc
