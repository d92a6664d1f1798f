// SPDX-License-Identifier: MIT
// Tests of migration: the late restrictive importer against static, dynamic and pinned importers, in-process.
#include <cenalloc/context.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/device.h>
#include <cenalloc/units.h>

#include "support/context.h"

namespace cenalloc {
namespace {

using test::contains;
using test::deviceOf;
using test::makeContext;

constexpr uint64_t kFrame = 8 * MiB;
constexpr uint64_t k4GiB = uint64_t{1} << 32;

// What a dynamic importer keeps of the notifications it was sent.
struct Notified {
    std::vector<MoveNotification> moves;
    MoveCallback callback() {
        return [this](const MoveNotification& n) { moves.push_back(n); };
    }
};

std::vector<std::byte> pattern(size_t size) {
    std::vector<std::byte> bytes(size);
    for (size_t i = 0; i < size; ++i)
        bytes[i] = std::byte(static_cast<uint8_t>(i * 7 + 3));
    return bytes;
}

std::vector<std::pair<std::string, HeapStats>> heapStats(const Context& context) {
    std::vector<std::pair<std::string, HeapStats>> stats;
    for (const auto& heap : context.heaps())
        stats.emplace_back(heap->name(), heap->stats());
    return stats;
}

uint64_t liveBytes(const Context& context, std::string_view heap) {
    return context.findHeap(heap)->stats().liveBytes;
}

bool sameLive(const std::vector<std::pair<std::string, HeapStats>>& a,
              const std::vector<std::pair<std::string, HeapStats>>& b) {
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (a[i].first != b[i].first || a[i].second.liveBuffers != b[i].second.liveBuffers ||
            a[i].second.liveBytes != b[i].second.liveBytes)
            return false;
    return true;
}

// A buffer the GPU (behind its SMMU, 40-bit) maps first: its storage comes
// from the system heap, above 4 GiB, which the display (no IOMMU, 32-bit,
// one contiguous buffer) cannot scan out.
struct GpuFirst {
    std::unique_ptr<Context> context = makeContext();
    const DmaDevice& gpu = deviceOf(*context, "gpu");
    const DmaDevice& display = deviceOf(*context, "display");
    std::shared_ptr<Buffer> buffer;
    Attachment gpuAttachment;
    Attachment::Mapping gpuMapping;

    void start(AttachOptions options) {
        buffer = context->create(kFrame, "frame").value();
        gpuAttachment = buffer->attach(gpu, std::move(options)).value();
        gpuMapping = gpuAttachment.map(DmaDirection::Bidirectional).value();
        ASSERT_EQ(context->findHeap(buffer->heapName())->properties().kind, HeapKind::System);
        for (const PhysChunk& chunk : buffer->chunks())
            ASSERT_GE(chunk.address, k4GiB) << "precondition: storage above 4 GiB";
    }
};

TEST(Migration, AStaticImportersMappingBlocksTheMoveAndIsNamed) {
    GpuFirst f;
    f.start({});
    const std::string heap = f.buffer->heapName();
    const std::vector<PhysChunk> chunks = f.buffer->chunks();
    const auto stats = heapStats(*f.context);

    auto late = f.buffer->attach(f.display, {});
    ASSERT_FALSE(late);
    EXPECT_EQ(late.error().code(), EBUSY);
    EXPECT_TRUE(contains(late.error().message(), "'gpu' holds a static mapping")) << late.error().message();
    EXPECT_TRUE(contains(late.error().message(), "display")) << late.error().message();

    // Nothing changed: heap, placement, the GPU's mapping, the statistics.
    EXPECT_EQ(f.buffer->heapName(), heap);
    EXPECT_EQ(f.buffer->chunks(), chunks);
    EXPECT_TRUE(f.gpuMapping.mapped());
    EXPECT_EQ(f.buffer->moveSequence(), 0u);
    EXPECT_TRUE(sameLive(heapStats(*f.context), stats));
    EXPECT_EQ(f.buffer->info().attachedDevices, std::vector<std::string>{"gpu"});

    // Once the static importer unmaps, nothing holds the storage: it moves.
    f.gpuMapping.unmap();
    auto now = f.buffer->attach(f.display, {});
    ASSERT_TRUE(now) << now.error().toString();
    EXPECT_EQ(f.buffer->heapName(), "linux,cma");
    EXPECT_EQ(f.buffer->moveSequence(), 1u);
}

TEST(Migration, AnUnpinnedDynamicImporterIsMovedAndNotifiedAndItsBytesSurvive) {
    GpuFirst f;
    Notified gpuNotified;
    f.start({.onMove = gpuNotified.callback()});
    ASSERT_TRUE(f.gpuAttachment.dynamic());
    const uint64_t oldAddress = f.gpuMapping.segments().front().dmaAddress;
    EXPECT_EQ(f.gpuMapping.sequence(), 0u);

    // The GPU fills the frame; the CPU maps it before the move.
    const std::vector<std::byte> bytes = pattern(kFrame);
    ASSERT_TRUE(f.gpu.write(oldAddress, bytes));
    auto cpu = f.buffer->mmap();
    ASSERT_TRUE(cpu);
    const uint64_t systemBytes = liveBytes(*f.context, f.buffer->heapName());

    auto displayAttachment = f.buffer->attach(f.display, {});
    ASSERT_TRUE(displayAttachment) << displayAttachment.error().toString();

    // It moved to the default CMA pool, the only heap that serves both.
    EXPECT_EQ(f.buffer->heapName(), "linux,cma");
    ASSERT_EQ(f.buffer->chunks().size(), 1u);
    EXPECT_LT(f.buffer->chunks().front().address, k4GiB);
    EXPECT_EQ(liveBytes(*f.context, "linux,cma"), kFrame);
    EXPECT_EQ(liveBytes(*f.context, "system"), systemBytes - kFrame);

    // The GPU was told once, after the move, with the new sequence.
    ASSERT_EQ(gpuNotified.moves.size(), 1u);
    const MoveNotification& n = gpuNotified.moves.front();
    EXPECT_EQ(n.buffer, f.buffer->id());
    EXPECT_EQ(n.sequence, 1u);
    EXPECT_EQ(n.fromHeap, "system");
    EXPECT_EQ(n.toHeap, "linux,cma");
    EXPECT_TRUE(contains(n.reason, "display")) << n.reason;
    EXPECT_EQ(f.buffer->moveSequence(), 1u);
    EXPECT_TRUE(contains(f.buffer->info().exporterState, "1 move")) << f.buffer->info().exporterState;

    // Its old mapping is gone, and using it faults in the SMMU.
    EXPECT_FALSE(f.gpuMapping.mapped());
    std::vector<std::byte> seen(4096);
    auto stale = f.gpu.read(oldAddress, seen);
    ASSERT_FALSE(stale);
    EXPECT_EQ(stale.error().code(), EFAULT);
    ASSERT_FALSE(f.gpu.recentFaults().empty());
    EXPECT_EQ(f.gpu.recentFaults().back().kind, DmaFaultKind::Translation);
    EXPECT_TRUE(contains(f.gpu.recentFaults().back().message, "moved")) << f.gpu.recentFaults().back().message;

    // Mapped again, the GPU and the display read exactly what was written,
    // and so does the CPU mapping made before the move.
    auto again = f.gpuAttachment.map(DmaDirection::Bidirectional);
    ASSERT_TRUE(again) << again.error().toString();
    EXPECT_EQ(again->sequence(), 1u);
    std::vector<std::byte> gpuView(kFrame);
    ASSERT_TRUE(f.gpu.read(again->segments().front().dmaAddress, gpuView));
    EXPECT_EQ(gpuView, bytes);
    auto scanout = displayAttachment->map(DmaDirection::ToDevice);
    ASSERT_TRUE(scanout) << scanout.error().toString();
    ASSERT_EQ(scanout->segments().size(), 1u);
    std::vector<std::byte> displayView(kFrame);
    ASSERT_TRUE(f.display.read(scanout->segments().front().dmaAddress, displayView));
    EXPECT_EQ(displayView, bytes);
    EXPECT_EQ(std::memcmp(cpu->data(), bytes.data(), kFrame), 0);
}

TEST(Migration, APinnedDynamicImporterBlocksUntilItUnpins) {
    GpuFirst f;
    Notified gpuNotified;
    f.start({.onMove = gpuNotified.callback()});
    ASSERT_TRUE(f.gpuAttachment.pin());
    ASSERT_TRUE(f.gpuAttachment.pin()); // pins nest
    const std::string heap = f.buffer->heapName();

    auto late = f.buffer->attach(f.display, {});
    ASSERT_FALSE(late);
    EXPECT_EQ(late.error().code(), EBUSY);
    EXPECT_TRUE(contains(late.error().message(), "'gpu' pinned it")) << late.error().message();
    EXPECT_EQ(f.buffer->heapName(), heap);
    EXPECT_TRUE(f.gpuMapping.mapped());
    EXPECT_TRUE(gpuNotified.moves.empty());

    ASSERT_TRUE(f.gpuAttachment.unpin());
    EXPECT_EQ(f.buffer->attach(f.display, {}).error().code(), EBUSY) << "one pin is still held";
    ASSERT_TRUE(f.gpuAttachment.unpin());
    auto unpinned = f.gpuAttachment.unpin();
    ASSERT_FALSE(unpinned);
    EXPECT_EQ(unpinned.error().code(), EINVAL);

    ASSERT_TRUE(f.buffer->attach(f.display, {}));
    EXPECT_EQ(f.buffer->heapName(), "linux,cma");
    EXPECT_EQ(gpuNotified.moves.size(), 1u);
}

TEST(Migration, PinningAStaticAttachmentIsRefused) {
    GpuFirst f;
    f.start({});
    auto pinned = f.gpuAttachment.pin();
    ASSERT_FALSE(pinned);
    EXPECT_EQ(pinned.error().code(), EINVAL);
    EXPECT_FALSE(f.gpuAttachment.dynamic());
    f.gpuMapping.unmap();
    f.gpuAttachment.detach();
    EXPECT_EQ(f.gpuAttachment.pin().error().code(), ENODEV);
}

TEST(Migration, NoMemoryForTheNewStorageChangesNothing) {
    GpuFirst f;
    Notified gpuNotified;
    f.start({.onMove = gpuNotified.callback()});
    // Fill the CMA pool, the only heap the display and the GPU could share.
    std::vector<std::shared_ptr<Buffer>> filler;
    while (true) {
        auto b = f.context->allocate("linux,cma", 16 * MiB);
        if (!b)
            break;
        filler.push_back(std::move(*b));
    }
    ASSERT_FALSE(filler.empty());
    const std::string heap = f.buffer->heapName();
    const std::vector<PhysChunk> chunks = f.buffer->chunks();
    const auto stats = heapStats(*f.context);

    auto late = f.buffer->attach(f.display, {});
    ASSERT_FALSE(late);
    EXPECT_EQ(late.error().code(), ENOMEM) << late.error().toString();
    EXPECT_EQ(f.buffer->heapName(), heap);
    EXPECT_EQ(f.buffer->chunks(), chunks);
    EXPECT_TRUE(f.gpuMapping.mapped());
    EXPECT_TRUE(gpuNotified.moves.empty());
    EXPECT_EQ(f.buffer->moveSequence(), 0u);
    EXPECT_TRUE(sameLive(heapStats(*f.context), stats));
    EXPECT_EQ(f.buffer->info().attachedDevices, std::vector<std::string>{"gpu"});
    std::vector<std::byte> one(4096);
    EXPECT_TRUE(f.gpu.read(f.gpuMapping.segments().front().dmaAddress, one));
}

TEST(Migration, ADirectImporterUsingAStaleMappingIsReported) {
    auto context = makeContext();
    const DmaDevice& usb = deviceOf(*context, "usb");
    const DmaDevice& display = deviceOf(*context, "display");
    auto buffer = context->create(kFrame, "frame").value();
    Notified usbNotified;
    auto usbAttachment = buffer->attach(usb, {.onMove = usbNotified.callback()}).value();
    auto mapping = usbAttachment.map(DmaDirection::FromDevice).value();
    ASSERT_FALSE(context->findHeap(buffer->heapName())->properties().contiguous)
        << "precondition: the USB controller alone gets scattered pages";
    const uint64_t oldAddress = mapping.segments().front().dmaAddress;

    ASSERT_TRUE(buffer->attach(display, {}));
    ASSERT_EQ(usbNotified.moves.size(), 1u);
    std::vector<std::byte> frame(4096, std::byte{1});
    auto stale = usb.write(oldAddress, frame);
    ASSERT_FALSE(stale);
    EXPECT_EQ(stale.error().code(), EFAULT);
    EXPECT_EQ(usb.recentFaults().back().kind, DmaFaultKind::AfterUnmap);
    EXPECT_TRUE(contains(usb.recentFaults().back().message, "stale mapping")) << usb.recentFaults().back().message;
    mapping.unmap(); // unmapping an invalidated mapping is harmless
    usbAttachment.detach();
}

TEST(Migration, AttachOrderStillNeverChangesTheFinalHeap) {
    std::vector<std::string> heaps;
    for (bool gpuFirst : {true, false}) {
        auto context = makeContext();
        const DmaDevice& gpu = deviceOf(*context, "gpu");
        const DmaDevice& display = deviceOf(*context, "display");
        auto buffer = context->create(kFrame, "frame").value();
        Notified notified;
        std::vector<Attachment> attachments;
        if (gpuFirst) {
            attachments.push_back(buffer->attach(gpu, {.onMove = notified.callback()}).value());
            auto m = attachments.back().map(DmaDirection::Bidirectional).value();
            m.unmap();
            auto held = attachments.back().map(DmaDirection::Bidirectional).value();
            attachments.push_back(buffer->attach(display, {}).value());
            EXPECT_FALSE(held.mapped());
        } else {
            attachments.push_back(buffer->attach(display, {}).value());
            attachments.push_back(buffer->attach(gpu, {.onMove = notified.callback()}).value());
        }
        auto scanout = attachments.front().map(DmaDirection::ToDevice);
        ASSERT_TRUE(scanout) << scanout.error().toString();
        heaps.push_back(buffer->heapName());
    }
    EXPECT_EQ(heaps[0], heaps[1]);
}

TEST(Migration, ExplicitMigrateMovesChecksAndRefuses) {
    GpuFirst f;
    Notified gpuNotified;
    f.start({.onMove = gpuNotified.callback()});

    EXPECT_EQ(f.buffer->migrate("no-such-heap").error().code(), ENOENT);
    // The secure carveout is the codec's memory: the GPU may not reach it.
    auto refused = f.buffer->migrate("vpu-carveout");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), EINVAL);
    EXPECT_TRUE(gpuNotified.moves.empty());

    ASSERT_TRUE(f.buffer->migrate("linux,cma"));
    EXPECT_EQ(f.buffer->heapName(), "linux,cma");
    ASSERT_EQ(gpuNotified.moves.size(), 1u);
    EXPECT_EQ(gpuNotified.moves[0].reason, "migrate to 'linux,cma'");
    ASSERT_TRUE(f.buffer->migrate("linux,cma")); // already there: nothing happens
    EXPECT_EQ(gpuNotified.moves.size(), 1u);

    // A buffer allocated from a heap by name stays there.
    auto eager = f.context->allocate("system", kFrame).value();
    auto stays = eager->migrate("linux,cma");
    ASSERT_FALSE(stays);
    EXPECT_EQ(stays.error().code(), EBUSY);
}

TEST(Migration, AMappingCallbackMayMapAgainFromInside) {
    GpuFirst f;
    Attachment::Mapping remapped;
    Attachment* attachment = &f.gpuAttachment;
    f.start({.onMove = [&](const MoveNotification&) {
        auto m = attachment->map(DmaDirection::Bidirectional);
        ASSERT_TRUE(m) << m.error().toString();
        remapped = std::move(*m);
    }});
    ASSERT_TRUE(f.buffer->attach(f.display, {}));
    ASSERT_TRUE(remapped.mapped());
    EXPECT_EQ(remapped.sequence(), 1u);
}

TEST(Migration, EverythingReleasedLeavesHeapsAndIovaSpacesAtBaseline) {
    auto context = makeContext();
    const auto heapsBefore = heapStats(*context);
    const auto domainsBefore = context->domainStats();
    {
        const DmaDevice& gpu = deviceOf(*context, "gpu");
        const DmaDevice& display = deviceOf(*context, "display");
        auto buffer = context->create(kFrame, "frame").value();
        Notified notified;
        auto gpuAttachment = buffer->attach(gpu, {.onMove = notified.callback()}).value();
        auto stale = gpuAttachment.map(DmaDirection::Bidirectional).value();
        auto displayAttachment = buffer->attach(display, {}).value();
        auto fresh = gpuAttachment.map(DmaDirection::Bidirectional).value();
        auto scanout = displayAttachment.map(DmaDirection::ToDevice).value();
        ASSERT_EQ(notified.moves.size(), 1u);
        // The old storage went back to its heap at the move.
        EXPECT_EQ(liveBytes(*context, "system"), 0u);
    }
    EXPECT_TRUE(sameLive(heapStats(*context), heapsBefore));
    const auto domainsAfter = context->domainStats();
    ASSERT_EQ(domainsAfter.size(), domainsBefore.size());
    for (size_t i = 0; i < domainsAfter.size(); ++i) {
        SCOPED_TRACE(domainsAfter[i].name);
        EXPECT_EQ(domainsAfter[i].usedIovaBytes, domainsBefore[i].usedIovaBytes);
        EXPECT_EQ(domainsAfter[i].mappedBytes, domainsBefore[i].mappedBytes);
        EXPECT_EQ(domainsAfter[i].mappingCount, domainsBefore[i].mappingCount);
    }
    EXPECT_TRUE(context->lifetimeBugs().empty());
}

TEST(Migration, AForecastSaysFitsWouldMigrateBlockedOrUnsatisfiableAndChangesNothing) {
    using Outcome = AttachForecast::Outcome;
    GpuFirst f;
    Notified gpuNotified;
    f.start({.onMove = gpuNotified.callback()});
    const std::string heap = f.buffer->heapName();

    // Another IOMMU master reaches the storage where it is.
    EXPECT_EQ(f.buffer->forecastAttach(deviceOf(*f.context, "isp")).outcome, Outcome::Fits);

    AttachForecast move = f.buffer->forecastAttach(f.display);
    EXPECT_EQ(move.outcome, Outcome::WouldMigrate) << attachOutcomeName(move.outcome) << ": " << move.reason;
    EXPECT_EQ(move.fromHeap, heap);
    EXPECT_EQ(move.toHeap, "linux,cma");
    EXPECT_EQ(move.notified, std::vector<std::string>{"gpu"});

    ASSERT_TRUE(f.gpuAttachment.pin());
    AttachForecast blocked = f.buffer->forecastAttach(f.display);
    EXPECT_EQ(blocked.outcome, Outcome::Blocked);
    EXPECT_EQ(blocked.reason, "'gpu' pinned it");
    ASSERT_TRUE(f.gpuAttachment.unpin());

    // Nothing moved, nobody was told.
    EXPECT_EQ(f.buffer->heapName(), heap);
    EXPECT_TRUE(f.gpuMapping.mapped());
    EXPECT_TRUE(gpuNotified.moves.empty());

    // The codec reaches the secure carveout only with access bit 0x2, which
    // the display's memory lacks: with the display attached, nothing serves both.
    ASSERT_TRUE(f.buffer->attach(f.display, {}));
    AttachForecast none = f.buffer->forecastAttach(deviceOf(*f.context, "codec"));
    EXPECT_TRUE(none.outcome == Outcome::Unsatisfiable || none.outcome == Outcome::Fits)
        << attachOutcomeName(none.outcome) << ": " << none.reason;
    EXPECT_EQ(std::string(attachOutcomeName(Outcome::WouldMigrate)), "would migrate");

    // A buffer allocated by heap name does not move.
    auto eager = f.context->allocate("system", kFrame).value();
    auto gpuOnEager = eager->attach(f.gpu).value();
    auto mapped = gpuOnEager.map(DmaDirection::Bidirectional).value();
    AttachForecast eagerForecast = eager->forecastAttach(f.display);
    EXPECT_EQ(eagerForecast.outcome, Outcome::Blocked);
    EXPECT_TRUE(contains(eagerForecast.reason, "do not move")) << eagerForecast.reason;
}

} // namespace
} // namespace cenalloc
