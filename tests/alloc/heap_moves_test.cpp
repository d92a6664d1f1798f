// SPDX-License-Identifier: MIT
// Tests of heap-driven moves: a fragmented CMA heap making room by moving movable buffers, and Context::evacuate.
#include <cenalloc/context.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <latch>

#include <gtest/gtest.h>

#include <cenalloc/device.h>
#include <cenalloc/units.h>

#include "support/context.h"

namespace cenalloc {
namespace {

using test::contains;
using test::deviceOf;
using test::makeContext;

constexpr uint64_t kSlot = 32 * MiB;
constexpr uint64_t kSlots = 8; // the built-in platform's 256 MiB CMA pool
constexpr uint64_t kCmaBase = 0xb0000000;
constexpr const char* kCma = "linux,cma";

struct Notified {
    std::vector<MoveNotification> moves;
    MoveCallback callback() {
        return [this](const MoveNotification& n) { moves.push_back(n); };
    }
};

std::vector<std::byte> pattern(size_t size, uint8_t seed) {
    std::vector<std::byte> bytes(size);
    for (size_t i = 0; i < size; ++i)
        bytes[i] = std::byte(static_cast<uint8_t>(i * 13 + seed));
    return bytes;
}

// What must not change when a heap-driven move fails: every heap's live
// statistics, every IOMMU domain's mappings, and every buffer's placement
// and move sequence.
struct Snapshot {
    std::vector<std::tuple<std::string, uint64_t, uint64_t>> heaps;
    std::vector<std::tuple<std::string, uint64_t, uint64_t, uint64_t>> domains;
    std::vector<std::tuple<uint64_t, std::string, std::vector<PhysChunk>, size_t>> buffers;

    static Snapshot of(const Context& context) {
        Snapshot s;
        for (const auto& heap : context.heaps())
            s.heaps.emplace_back(heap->name(), heap->stats().liveBuffers, heap->stats().liveBytes);
        for (const IommuDomainStats& d : context.domainStats())
            s.domains.emplace_back(d.name, d.usedIovaBytes, d.mappingCount, d.inUseCount);
        for (const BufferInfo& info : context.bufinfo())
            s.buffers.emplace_back(info.id, info.heap, info.chunks, info.mappings.size());
        return s;
    }
    bool operator==(const Snapshot&) const = default;
};

// The built-in platform with its CMA pool cut into eight 32 MiB slots, each
// a deferred buffer the display (contiguous, no IOMMU) is attached to, so
// that the pool is the only heap that serves it: slot i's storage is at
// kCmaBase + i * 32 MiB (first fit from the lowest address).
struct Fragmented {
    std::unique_ptr<Context> context = makeContext();
    const DmaDevice& display = deviceOf(*context, "display");
    const DmaDevice& gpu = deviceOf(*context, "gpu");
    std::vector<std::shared_ptr<Buffer>> buffers;
    std::vector<Attachment> displays;
    std::vector<Notified> notified = std::vector<Notified>(kSlots);
    Snapshot baseline = Snapshot::of(*context);

    // Fill every slot; @p dynamic slots attach the display as a dynamic importer.
    void fill(std::vector<size_t> dynamic = {}) {
        for (size_t i = 0; i < kSlots; ++i) {
            auto buffer = context->create(kSlot, "slot" + std::to_string(i));
            ASSERT_TRUE(buffer) << buffer.error().toString();
            AttachOptions options;
            if (std::find(dynamic.begin(), dynamic.end(), i) != dynamic.end())
                options.onMove = notified[i].callback();
            auto attachment = (*buffer)->attach(display, std::move(options));
            ASSERT_TRUE(attachment) << attachment.error().toString();
            ASSERT_TRUE((*buffer)->mmap()); // allocates: the CPU's first access
            ASSERT_EQ((*buffer)->heapName(), kCma);
            ASSERT_EQ((*buffer)->chunks(), (std::vector<PhysChunk>{{kCmaBase + i * kSlot, kSlot}}));
            buffers.push_back(std::move(*buffer));
            displays.push_back(std::move(*attachment));
        }
    }
    // Release slot @p i: its 32 MiB are a hole.
    void release(size_t i) {
        displays[i].detach();
        buffers[i].reset();
    }
    // Everything released: heaps and IOVA spaces back to where they started.
    void finish() {
        displays.clear();
        buffers.clear();
        EXPECT_EQ(context->liveBuffers(), 0u);
        EXPECT_TRUE(Snapshot::of(*context) == baseline);
        EXPECT_TRUE(context->lifetimeBugs().empty());
    }
};

TEST(HeapMoves, AFragmentedCmaHeapMakesRoomByMovingAMovableBufferWhoseImporterIsToldAndWhoseBytesSurvive) {
    Fragmented f;
    f.fill({0, 2});
    // In the way of every 64 MiB window: a pin (slot 0), a static mapping
    // (slot 4), a buffer allocated from the heap by name (slot 6).
    ASSERT_TRUE(f.displays[0].pin());
    auto staticMapping = f.displays[4].map(DmaDirection::ToDevice);
    ASSERT_TRUE(staticMapping) << staticMapping.error().toString();
    f.release(6);
    auto byName = f.context->allocate(kCma, kSlot);
    ASSERT_TRUE(byName) << byName.error().toString();
    ASSERT_EQ((*byName)->chunks().front().address, kCmaBase + 6 * kSlot);
    // Holes at slots 1, 3, 5 and 7: 128 MiB free, no run over 32 MiB.
    for (size_t i : {1, 3, 5, 7})
        f.release(i);

    // Slot 2 is the movable one: the display maps it, as a dynamic importer.
    Buffer& movable = *f.buffers[2];
    const std::vector<std::byte> bytes = pattern(kSlot, 5);
    auto cpu = movable.mmap();
    ASSERT_TRUE(cpu);
    std::memcpy(cpu->data(), bytes.data(), kSlot);
    auto scanout = f.displays[2].map(DmaDirection::ToDevice);
    ASSERT_TRUE(scanout);
    const uint64_t oldAddress = scanout->segments().front().dmaAddress;
    ASSERT_EQ(oldAddress, kCmaBase + 2 * kSlot);

    auto big = f.context->allocate(kCma, 2 * kSlot);
    ASSERT_TRUE(big) << big.error().toString();
    // The cheapest window is [slot 1, slot 3): one 32 MiB buffer moved (the
    // window [slot 2, slot 4) costs the same and lies higher). The buffer
    // went to the first hole outside it, slot 3.
    EXPECT_EQ((*big)->chunks(), (std::vector<PhysChunk>{{kCmaBase + 1 * kSlot, 2 * kSlot}}));
    EXPECT_EQ(movable.chunks(), (std::vector<PhysChunk>{{kCmaBase + 3 * kSlot, kSlot}}));
    EXPECT_EQ(movable.heapName(), kCma);
    EXPECT_EQ(movable.moveSequence(), 1u);

    // Its dynamic importer was told once, with the new sequence and why.
    ASSERT_EQ(f.notified[2].moves.size(), 1u);
    EXPECT_EQ(f.notified[2].moves.front().sequence, 1u);
    EXPECT_EQ(f.notified[2].moves.front().fromHeap, kCma);
    EXPECT_EQ(f.notified[2].moves.front().toHeap, kCma);
    EXPECT_TRUE(contains(f.notified[2].moves.front().reason, "making room for 64 MiB"))
        << f.notified[2].moves.front().reason;
    // Its old mapping is gone and using it is a stale-mapping fault.
    EXPECT_FALSE(scanout->mapped());
    std::vector<std::byte> seen(4096);
    EXPECT_FALSE(f.display.read(oldAddress, seen));
    // Mapped again, the display reads exactly the bytes, as the CPU does.
    auto again = f.displays[2].map(DmaDirection::ToDevice);
    ASSERT_TRUE(again) << again.error().toString();
    EXPECT_EQ(again->sequence(), 1u);
    std::vector<std::byte> view(kSlot);
    ASSERT_TRUE(f.display.read(again->segments().front().dmaAddress, view));
    EXPECT_EQ(view, bytes);
    EXPECT_EQ(std::memcmp(cpu->data(), bytes.data(), kSlot), 0);

    // Nothing that was held in place moved.
    EXPECT_EQ(f.buffers[0]->moveSequence(), 0u);
    EXPECT_EQ(f.buffers[4]->moveSequence(), 0u);
    EXPECT_EQ(f.buffers[0]->chunks().front().address, kCmaBase);
    EXPECT_EQ(f.buffers[4]->chunks().front().address, kCmaBase + 4 * kSlot);

    again->unmap();
    staticMapping->unmap();
    ASSERT_TRUE(f.displays[0].unpin());
    cpu = BufferMapping();
    big->reset();
    byName->reset();
    f.finish();
}

TEST(HeapMoves, BuffersHeldInPlaceEverywhereMakeTheAllocationEnomemWithNothingChanged) {
    Fragmented f;
    f.fill({0});
    for (size_t i : {1, 3, 5, 7})
        f.release(i);
    // Every buffer is held: a pin, static mappings (one with the GPU's IOVA
    // mapping too), a dynamic attachment that must acknowledge moves first.
    ASSERT_TRUE(f.displays[0].pin());
    auto gpu = f.buffers[2]->attach(f.gpu);
    ASSERT_TRUE(gpu) << gpu.error().toString();
    auto gpuMapping = gpu->map(DmaDirection::Bidirectional);
    ASSERT_TRUE(gpuMapping) << gpuMapping.error().toString();
    auto staticMapping = f.displays[4].map(DmaDirection::ToDevice);
    ASSERT_TRUE(staticMapping);
    Notified remote;
    auto acknowledging = f.buffers[6]->attach(f.gpu, {.onMove = remote.callback(), .acknowledgesMoves = true});
    ASSERT_TRUE(acknowledging) << acknowledging.error().toString();
    const Snapshot before = Snapshot::of(*f.context);

    auto big = f.context->allocate(kCma, 2 * kSlot);
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error().code(), ENOMEM);
    EXPECT_TRUE(contains(big.error().message(), "buffers that can move")) << big.error().message();
    EXPECT_TRUE(contains(big.error().message(), "'display' pinned it")) << big.error().message();

    // Nothing changed: statistics, IOVA spaces, placements, sequences.
    EXPECT_TRUE(Snapshot::of(*f.context) == before);
    EXPECT_TRUE(gpuMapping->mapped());
    EXPECT_TRUE(staticMapping->mapped());
    EXPECT_TRUE(f.notified[0].moves.empty());
    EXPECT_TRUE(remote.moves.empty());
    for (size_t i : {0, 2, 4, 6})
        EXPECT_EQ(f.buffers[i]->moveSequence(), 0u) << "slot " << i;

    gpuMapping->unmap();
    staticMapping->unmap();
    ASSERT_TRUE(f.displays[0].unpin());
    gpu->detach();
    acknowledging->detach();
    f.finish();
}

TEST(HeapMoves, AWindowWhoseBuffersHaveNowhereElseToGoMovesNothing) {
    Fragmented f;
    f.fill({2});
    f.release(1); // the only hole: slot 2 could move, but only to the pool it is in
    // Every other slot must stay: its importer must acknowledge moves.
    std::vector<Attachment> held;
    for (size_t i : {0, 3, 4, 5, 6, 7})
        held.push_back(
            f.buffers[i]->attach(f.gpu, {.onMove = [](const MoveNotification&) {}, .acknowledgesMoves = true}).value());
    const Snapshot before = Snapshot::of(*f.context);

    auto big = f.context->allocate(kCma, 2 * kSlot);
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error().code(), ENOMEM);
    EXPECT_TRUE(contains(big.error().message(), "makes no room")) << big.error().message();
    EXPECT_TRUE(contains(big.error().message(), "buffer " + std::to_string(f.buffers[2]->id())))
        << big.error().message();
    EXPECT_TRUE(Snapshot::of(*f.context) == before);
    EXPECT_TRUE(f.notified[2].moves.empty());
    EXPECT_EQ(f.buffers[2]->moveSequence(), 0u);
    held.clear();
    f.finish();
}

TEST(HeapMoves, ADeferredBuffersFirstMapMakesRoomAndTheMovedImporterIsToldWithNoLockHeld) {
    Fragmented f;
    f.fill();
    for (size_t i : {1, 3, 5, 7})
        f.release(i);
    // Slots 0, 4 and 6 stay: each has an importer that must acknowledge moves.
    std::vector<Attachment> held;
    for (size_t i : {0, 4, 6})
        held.push_back(
            f.buffers[i]->attach(f.gpu, {.onMove = [](const MoveNotification&) {}, .acknowledgesMoves = true}).value());

    auto frame = f.context->create(2 * kSlot, "frame");
    ASSERT_TRUE(frame);
    std::shared_ptr<Buffer> frameBuffer = *frame;
    auto attachment = frameBuffer->attach(f.display);
    ASSERT_TRUE(attachment);
    // Slot 2's importer, told of its move from inside the frame's first map,
    // uses the frame: the frame's lock is no longer held when it is told.
    std::vector<MoveNotification> told;
    bool frameHadStorage = false;
    f.displays[2].detach();
    f.displays[2] = f.buffers[2]
                        ->attach(f.display, {.onMove =
                                                 [&](const MoveNotification& n) {
                                                     told.push_back(n);
                                                     frameHadStorage = frameBuffer->hasStorage();
                                                 }})
                        .value();

    auto scanout = attachment->map(DmaDirection::ToDevice);
    ASSERT_TRUE(scanout) << scanout.error().toString();
    EXPECT_EQ(frameBuffer->chunks(), (std::vector<PhysChunk>{{kCmaBase + 1 * kSlot, 2 * kSlot}}));
    EXPECT_EQ(f.buffers[2]->chunks(), (std::vector<PhysChunk>{{kCmaBase + 3 * kSlot, kSlot}}));
    ASSERT_EQ(told.size(), 1u);
    EXPECT_EQ(told.front().buffer, f.buffers[2]->id());
    EXPECT_TRUE(frameHadStorage);

    scanout->unmap();
    attachment->detach();
    held.clear();
    frame->reset();
    frameBuffer.reset();
    f.finish();
}

TEST(HeapMoves, EvacuateMovesEveryMovableBufferOutOfARangeAndReportsThem) {
    Fragmented f;
    f.fill({0});
    f.release(3);
    f.release(5);
    // Slot 1 holds no device: its best heap is general memory, where it goes.
    f.release(1);
    auto loose = f.context->create(kSlot, "loose");
    ASSERT_TRUE(loose);
    ASSERT_TRUE((*loose)->migrate(kCma));
    ASSERT_EQ((*loose)->chunks().front().address, kCmaBase + 1 * kSlot);
    const std::vector<std::byte> bytes = pattern(kSlot, 9);
    {
        auto cpu = (*loose)->mmap();
        ASSERT_TRUE(cpu);
        std::memcpy(cpu->data(), bytes.data(), kSlot);
    }
    auto staticMapping = f.displays[2].map(DmaDirection::ToDevice);
    ASSERT_TRUE(staticMapping);
    const Snapshot before = Snapshot::of(*f.context);

    // Slots 0 to 2: slot 2's static mapping keeps the range from clearing.
    auto blocked = f.context->evacuate(kCma, kCmaBase, 3 * kSlot);
    ASSERT_FALSE(blocked);
    EXPECT_EQ(blocked.error().code(), EBUSY);
    EXPECT_TRUE(contains(blocked.error().message(), "buffer " + std::to_string(f.buffers[2]->id()) + " ('slot2')"))
        << blocked.error().message();
    EXPECT_TRUE(contains(blocked.error().message(), "'display' holds a static mapping")) << blocked.error().message();
    EXPECT_TRUE(Snapshot::of(*f.context) == before) << "nothing moved";
    EXPECT_TRUE(f.notified[0].moves.empty());

    staticMapping->unmap();
    auto cleared = f.context->evacuate(kCma, kCmaBase, 3 * kSlot);
    ASSERT_TRUE(cleared) << cleared.error().toString();
    EXPECT_EQ(cleared->heap, kCma);
    EXPECT_EQ(cleared->range, (PhysChunk{kCmaBase, 3 * kSlot}));
    ASSERT_EQ(cleared->moved.size(), 3u);
    // By id: slot 0 and slot 2 go to the holes above the range, the loose
    // buffer to the system heap.
    EXPECT_EQ(cleared->moved[0].name, "slot0");
    EXPECT_EQ(cleared->moved[0].from, (std::vector<PhysChunk>{{kCmaBase, kSlot}}));
    EXPECT_EQ(cleared->moved[0].toHeap, kCma);
    EXPECT_EQ(cleared->moved[0].to, (std::vector<PhysChunk>{{kCmaBase + 3 * kSlot, kSlot}}));
    EXPECT_EQ(cleared->moved[0].notified, std::vector<std::string>{"display"});
    EXPECT_EQ(cleared->moved[1].name, "slot2");
    EXPECT_EQ(cleared->moved[1].to, (std::vector<PhysChunk>{{kCmaBase + 5 * kSlot, kSlot}}));
    EXPECT_TRUE(cleared->moved[1].notified.empty()) << "a static importer is not told";
    EXPECT_EQ(cleared->moved[2].name, "loose");
    EXPECT_EQ(cleared->moved[2].toHeap, "system");
    EXPECT_EQ((*loose)->heapName(), "system");
    ASSERT_EQ(f.notified[0].moves.size(), 1u);
    EXPECT_TRUE(contains(f.notified[0].moves.front().reason, "evacuation")) << f.notified[0].moves.front().reason;
    {
        auto cpu = (*loose)->mmap();
        ASSERT_TRUE(cpu);
        EXPECT_EQ(std::memcmp(cpu->data(), bytes.data(), kSlot), 0);
    }

    // The range is free: 96 MiB fit there now.
    auto big = f.context->allocate(kCma, 3 * kSlot);
    ASSERT_TRUE(big) << big.error().toString();
    EXPECT_EQ((*big)->chunks().front().address, kCmaBase);
    big->reset();
    loose->reset();
    f.finish();
}

TEST(HeapMoves, EvacuateNamesImportersThatMustAcknowledgeAndBuffersAllocatedByName) {
    Fragmented f;
    f.fill();
    f.release(1);
    auto byName = f.context->allocate(kCma, kSlot);
    ASSERT_TRUE(byName);
    auto acknowledging =
        f.buffers[0]->attach(f.gpu, {.onMove = [](const MoveNotification&) {}, .acknowledgesMoves = true});
    ASSERT_TRUE(acknowledging);
    const Snapshot before = Snapshot::of(*f.context);

    auto blocked = f.context->evacuate(kCma, kCmaBase, 2 * kSlot);
    ASSERT_FALSE(blocked);
    EXPECT_EQ(blocked.error().code(), EBUSY);
    EXPECT_TRUE(contains(blocked.error().message(), "'gpu' must acknowledge a move")) << blocked.error().message();
    EXPECT_TRUE(contains(blocked.error().message(), "exporter 'linux,cma' stay where they were allocated"))
        << blocked.error().message();
    EXPECT_TRUE(Snapshot::of(*f.context) == before);
    acknowledging->detach();
    byName->reset();
    f.finish();
}

TEST(HeapMoves, EvacuateRefusesBadRangesAndHeapsThatMoveNothing) {
    Fragmented f;
    const Snapshot before = Snapshot::of(*f.context);
    struct Case {
        const char* heap;
        uint64_t address;
        uint64_t size;
        int code;
    };
    for (const Case& c :
         {Case{"nope", kCmaBase, kSlot, ENOENT}, Case{"system", 0x40000000, kSlot, EINVAL},
          Case{"vpu-carveout", 0xa8000000, kSlot, EINVAL}, Case{kCma, kCmaBase, 0, EINVAL},
          Case{kCma, kCmaBase + 1, kSlot, EINVAL}, Case{kCma, kCmaBase, kSlot + 1, EINVAL},
          Case{kCma, kCmaBase - 4096, kSlot, EINVAL}, Case{kCma, kCmaBase, kSlots * kSlot + 4096, EINVAL},
          Case{kCma, UINT64_MAX - 4095, 4096, EINVAL}}) {
        SCOPED_TRACE(testing::Message() << c.heap << " " << std::hex << c.address << " " << c.size);
        auto result = f.context->evacuate(c.heap, c.address, c.size);
        ASSERT_FALSE(result);
        EXPECT_EQ(result.error().code(), c.code) << result.error().toString();
    }
    EXPECT_TRUE(Snapshot::of(*f.context) == before);
    // An empty pool's range clears with nothing to move.
    auto empty = f.context->evacuate(kCma, kCmaBase, kSlots * kSlot);
    ASSERT_TRUE(empty) << empty.error().toString();
    EXPECT_TRUE(empty->moved.empty());
    f.finish();
}

// Buffers moving for their heap while their own threads map them and other
// threads allocate from the same pool: every allocation either gets its
// room or ENOMEM, nothing deadlocks (a heap never waits for a buffer's lock
// while it holds another's), and everything is back at the baseline after.
TEST(HeapMoves, ConcurrentAllocationsMapsAndMovesNeverDeadlockAndLeaveNothingBehind) {
    Fragmented f;
    constexpr int kThreads = 4;
    constexpr int kRounds = 200;
    std::latch start(kThreads);
    std::vector<std::thread> threads;
    std::atomic<int> made{0};
    std::atomic<int> movesTold{0};
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            // Each thread keeps its last few buffers: the pool fragments.
            struct Live {
                std::shared_ptr<Buffer> buffer;
                Attachment display;
                Attachment::Mapping mapping;
            };
            std::vector<std::unique_ptr<Live>> live;
            start.arrive_and_wait();
            for (int round = 0; round < kRounds; ++round) {
                if (live.size() >= 3)
                    live.erase(live.begin());
                if (t % 2 == 0) {
                    // A deferred buffer the GPU (behind its SMMU) maps,
                    // placed in the pool by hand: its own best heap is
                    // general memory, where a move for the pool takes it.
                    // Every third one is pinned (it cannot move).
                    auto frame = f.context->create((8 + 16 * ((round + t) % 4)) * MiB, "frame");
                    ASSERT_TRUE(frame);
                    auto l = std::make_unique<Live>();
                    l->buffer = std::move(*frame);
                    // Told from whichever thread's allocation moved it, maybe
                    // after it detached: the callback uses the test's state.
                    auto gpu = l->buffer->attach(
                        f.gpu, {.onMove = [&movesTold](const MoveNotification&) { movesTold.fetch_add(1); }});
                    ASSERT_TRUE(gpu);
                    l->display = std::move(*gpu);
                    if (!l->buffer->migrate(kCma))
                        continue;
                    auto mapping = l->display.map(DmaDirection::Bidirectional);
                    if (!mapping)
                        continue;
                    made.fetch_add(1);
                    l->mapping = std::move(*mapping);
                    if (round % 3 == 0) {
                        ASSERT_TRUE(l->display.pin());
                    }
                    live.push_back(std::move(l));
                } else {
                    // Buffers allocated from the pool by name, 48 or 96 MiB.
                    auto byName = f.context->allocate(kCma, (round % 2 ? 48 : 96) * MiB);
                    if (!byName)
                        continue;
                    made.fetch_add(1);
                    auto l = std::make_unique<Live>();
                    l->buffer = std::move(*byName);
                    live.push_back(std::move(l));
                }
            }
            // Mappings and attachments go before their buffers.
            for (auto& l : live) {
                l->mapping.unmap();
                while (l->display.attached() && l->display.unpin())
                    ;
                l->display.detach();
            }
        });
    }
    for (std::thread& thread : threads)
        thread.join();
    EXPECT_GT(made.load(), 0);
    std::printf("%d allocations, %d move notifications\n", made.load(), movesTold.load());
    f.finish();
}

TEST(HeapMoves, AHeapOfTooManySmallBuffersIsNotPlannedAndNothingMoves) {
    // Planning weighs every window against every buffer, with them locked:
    // a client that fills the pool with small buffers and asks for a large
    // one gets ENOMEM at once, and the daemon did bounded work.
    auto context = makeContext();
    const DmaDevice& display = deviceOf(*context, "display");
    const Snapshot baseline = Snapshot::of(*context);
    constexpr uint64_t kSmall = 64 * KiB;
    std::vector<std::shared_ptr<Buffer>> buffers;
    std::vector<Attachment> attachments;
    for (uint64_t i = 0; i < kSlots * kSlot / kSmall; ++i) {
        auto buffer = context->create(kSmall, "small");
        ASSERT_TRUE(buffer) << buffer.error().toString();
        auto attachment = (*buffer)->attach(display);
        ASSERT_TRUE(attachment) << attachment.error().toString();
        ASSERT_TRUE((*buffer)->mmap()); // its storage: the next 64 KiB of the pool
        buffers.push_back(std::move(*buffer));
        attachments.push_back(std::move(*attachment));
    }
    ASSERT_EQ(buffers.back()->heapName(), kCma) << "the pool is full";
    // Every other one released: 128 MiB free in 64 KiB holes, each buffer
    // movable (one display attachment, not mapped).
    for (size_t i = 0; i < buffers.size(); i += 2) {
        attachments[i].detach();
        buffers[i].reset();
    }
    const Snapshot fragmented = Snapshot::of(*context);
    auto big = context->allocate(kCma, 1 * MiB);
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error().code(), ENOMEM);
    EXPECT_TRUE(contains(big.error().message(), "too many to plan moves among")) << big.error().message();
    EXPECT_TRUE(Snapshot::of(*context) == fragmented) << "nothing moved";
    attachments.clear();
    buffers.clear();
    EXPECT_TRUE(Snapshot::of(*context) == baseline);
}

} // namespace
} // namespace cenalloc
