// SPDX-License-Identifier: MIT
// Heap-driven moves through cenallocd: one client's CMA allocation moves another client's movable buffer, never one
// whose importer must acknowledge moves.
#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/session.h>
#include <cenalloc/units.h>

#include "support/daemon.h"
#include "support/fds.h"
#include "support/service.h"

namespace cenalloc {
namespace {

constexpr uint64_t kSlot = 32 * MiB;
constexpr size_t kSlots = 8; // the built-in platform's 256 MiB CMA pool
constexpr uint64_t kCmaBase = 0xb0000000;

/// The daemon, an observer's baseline, and an owner client whose deferred
/// buffers fill the CMA pool in 32 MiB slots (the display statically
/// attached, unmapped), with slots 1, 3, 5 and 7 released again: 128 MiB
/// free, no run over 32 MiB.
struct Pool {
    Pool() { setUp(); }
    void setUp() {
        observer = daemon.connect();
        owner = daemon.connect();
        if (!observer || !owner)
            return;
        baseline = test::baselineOf(*observer);
        for (size_t i = 0; i < kSlots; ++i) {
            auto fd = owner->create(kSlot, "slot" + std::to_string(i));
            ASSERT_TRUE(fd) << fd.error().toString();
            auto display = owner->attach(*fd, "display");
            ASSERT_TRUE(display) << display.error().toString();
            auto mapping = owner->map(*display, DmaDirection::ToDevice); // allocates
            ASSERT_TRUE(mapping) << mapping.error().toString();
            ASSERT_TRUE(owner->unmap(mapping->id));
            ASSERT_EQ(chunksOf(*fd), (std::vector<PhysChunk>{{kCmaBase + i * kSlot, kSlot}}));
            fds.push_back(std::move(*fd));
            displays.push_back(*display);
        }
        for (size_t i : {1, 3, 5, 7}) {
            ASSERT_TRUE(owner->detach(displays[i]));
            ASSERT_TRUE(owner->release(fds[i]));
            fds[i].reset();
        }
        // Slots 0, 4 and 6 stay: a static mapping, and dynamic importers
        // (which must acknowledge a move before it is made).
        auto held = owner->map(displays[0], DmaDirection::ToDevice);
        ASSERT_TRUE(held);
        heldMapping = held->id;
        for (size_t i : {4, 6}) {
            auto gpu = owner->attach(fds[i], "gpu", SessionAttachOptions{true});
            ASSERT_TRUE(gpu) << gpu.error().toString();
            gpus.push_back(*gpu);
        }
        ok = true;
    }
    std::vector<PhysChunk> chunksOf(BorrowedFd fd) {
        auto info = owner->describe(fd);
        EXPECT_TRUE(info) << info.error().toString();
        return info ? info->chunks : std::vector<PhysChunk>{};
    }
    void finish() {
        owner.reset();
        fds.clear();
        test::expectBackTo(*observer, baseline);
    }

    test::InProcessDaemon daemon;
    std::unique_ptr<Session> observer, owner;
    test::Baseline baseline;
    std::vector<UniqueFd> fds;
    std::vector<uint64_t> displays;
    std::vector<uint64_t> gpus;
    uint64_t heldMapping = 0;
    bool ok = false;
};

TEST(HeapMovesService, AnotherClientsCmaAllocationMovesAStaticallyAttachedUnmappedBuffer) {
    Pool pool;
    ASSERT_TRUE(pool.ok);
    ASSERT_TRUE(test::fillPattern(pool.fds[2].get(), kSlot));
    auto allocator = pool.daemon.connect();
    ASSERT_NE(allocator, nullptr);

    auto big = allocator->allocate("linux,cma", 2 * kSlot);
    ASSERT_TRUE(big) << big.error().toString();
    auto info = allocator->describe(*big);
    ASSERT_TRUE(info) << info.error().toString();
    EXPECT_EQ(info->chunks, (std::vector<PhysChunk>{{kCmaBase + 1 * kSlot, 2 * kSlot}}));
    // Slot 2 went to the first hole outside the window; its bytes are whole.
    EXPECT_EQ(pool.chunksOf(pool.fds[2]), (std::vector<PhysChunk>{{kCmaBase + 3 * kSlot, kSlot}}));
    EXPECT_TRUE(test::holdsPattern(pool.fds[2].get(), kSlot));
    for (size_t i : {0, 4, 6})
        EXPECT_EQ(pool.chunksOf(pool.fds[i]), (std::vector<PhysChunk>{{kCmaBase + i * kSlot, kSlot}})) << i;
    // The owner's static importer maps the new storage.
    auto again = pool.owner->map(pool.displays[2], DmaDirection::ToDevice);
    ASSERT_TRUE(again) << again.error().toString();
    EXPECT_EQ(again->segments.front().dmaAddress, kCmaBase + 3 * kSlot);
    ASSERT_TRUE(pool.owner->unmap(again->id));
    auto event = pool.owner->nextEvent();
    ASSERT_TRUE(event);
    EXPECT_FALSE(*event) << "a static importer is sent no event";

    big->reset();
    allocator.reset();
    pool.finish();
}

TEST(HeapMovesService, ABufferWithADynamicImporterIsNotMovedAndTheAllocationIsEnomemWithNothingChanged) {
    Pool pool;
    ASSERT_TRUE(pool.ok);
    auto gpu = pool.owner->attach(pool.fds[2], "gpu", SessionAttachOptions{true});
    ASSERT_TRUE(gpu) << gpu.error().toString();
    auto allocator = pool.daemon.connect();
    ASSERT_NE(allocator, nullptr);

    auto big = allocator->allocate("linux,cma", 2 * kSlot);
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error().code(), ENOMEM);
    EXPECT_NE(big.error().message().find("must acknowledge a move"), std::string::npos) << big.error().message();
    for (size_t i : {0, 2, 4, 6})
        EXPECT_EQ(pool.chunksOf(pool.fds[i]), (std::vector<PhysChunk>{{kCmaBase + i * kSlot, kSlot}})) << i;
    auto event = pool.owner->nextEvent();
    ASSERT_TRUE(event);
    EXPECT_FALSE(*event) << "nobody is told of a move that was not made";

    allocator.reset();
    pool.finish();
}

} // namespace
} // namespace cenalloc
