// SPDX-License-Identifier: MIT
// Tests of BufferRegistry: complete and ordered listings whatever the order buffers are registered and die in.
#include "core/registry.h"

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "core/buffer_internal.h"
#include "support/core_board.h"

namespace cenalloc {
namespace {

using test::CoreBoard;

std::vector<uint64_t> idsOf(const std::vector<std::shared_ptr<Buffer>>& buffers) {
    std::vector<uint64_t> ids;
    for (const auto& b : buffers)
        ids.push_back(b->id());
    return ids;
}

std::vector<uint64_t> idsOf(const std::vector<std::shared_ptr<Buffer>>& buffers, const std::vector<bool>& alive) {
    std::vector<uint64_t> ids;
    for (size_t i = 0; i < buffers.size(); ++i)
        if (alive[i])
            ids.push_back(buffers[i]->id());
    return ids;
}

// Ops for a buffer with no storage that nothing attaches to.
class BareOps final : public BufferOps {
public:
    const char* name() const override { return "test"; }
    Result<void> attach(Buffer& buffer, const DmaDevice& device) override {
        (void)buffer, (void)device;
        return Error(EOPNOTSUPP, "a bare test buffer");
    }
    Result<void> ensureStorage(Buffer& buffer) override {
        (void)buffer;
        return {};
    }
};

// A buffer that no registry knows, for registering by hand.
std::shared_ptr<Buffer> unregisteredBuffer() {
    BufferParams params;
    params.size = 4 * KiB;
    params.ops = std::make_unique<BareOps>();
    auto buffer = BufferAccess::create(std::move(params));
    EXPECT_TRUE(buffer) << buffer.error().toString();
    return buffer ? *buffer : nullptr;
}

TEST(BufferRegistry, ListsEveryLiveBufferInIdOrderWhateverOrderTheyDieIn) {
    // Enough buffers that the tombstones of the dead ones get compacted
    // away several times over, freed from the front, the back and at random.
    constexpr size_t kCount = 600;
    for (const char* order : {"oldest first", "newest first", "random"}) {
        SCOPED_TRACE(order);
        CoreBoard board;
        std::vector<std::shared_ptr<Buffer>> buffers;
        for (size_t i = 0; i < kCount; ++i) {
            auto b = board.allocate("system", 4 * KiB);
            ASSERT_TRUE(b) << b.error().toString();
            buffers.push_back(std::move(*b));
        }
        std::vector<uint64_t> ids = idsOf(buffers);
        ASSERT_TRUE(std::is_sorted(ids.begin(), ids.end()));
        EXPECT_EQ(idsOf(board.registry()->buffers()), ids);

        std::vector<size_t> deaths(kCount);
        for (size_t i = 0; i < kCount; ++i)
            deaths[i] = std::string_view(order) == "newest first" ? kCount - 1 - i : i;
        if (std::string_view(order) == "random")
            std::shuffle(deaths.begin(), deaths.end(), std::mt19937(42));

        std::vector<bool> alive(kCount, true);
        for (size_t n = 0; n < kCount; ++n) {
            const size_t victim = deaths[n];
            buffers[victim].reset();
            alive[victim] = false;
            EXPECT_EQ(board.registry()->liveCount(), kCount - n - 1);
            if (n % 37 == 0 || n + 1 == kCount) {
                SCOPED_TRACE(n);
                std::vector<uint64_t> expected;
                for (size_t i = 0; i < kCount; ++i)
                    if (alive[i])
                        expected.push_back(ids[i]);
                EXPECT_EQ(idsOf(board.registry()->buffers()), expected);
            }
            // A buffer is forgotten once: a second remove changes nothing.
            board.registry()->remove(ids[victim]);
            EXPECT_EQ(board.registry()->liveCount(), kCount - n - 1);
        }
        EXPECT_TRUE(board.registry()->buffers().empty());
    }
}

TEST(BufferRegistry, NewBuffersAfterChurnAreListedWithTheSurvivors) {
    CoreBoard board;
    auto first = board.allocate("system", 4 * KiB);
    ASSERT_TRUE(first);
    // Alloc/free churn behind a long-lived buffer, as a streaming user does.
    for (int i = 0; i < 1000; ++i) {
        auto b = board.allocate("system", 4 * KiB);
        ASSERT_TRUE(b);
    }
    auto last = board.allocate("system", 4 * KiB);
    ASSERT_TRUE(last);
    auto listed = board.registry()->buffers();
    ASSERT_EQ(listed.size(), 2u);
    EXPECT_EQ(listed[0], *first);
    EXPECT_EQ(listed[1], *last);
    EXPECT_EQ(board.registry()->liveCount(), 2u);
}

TEST(BufferRegistry, OutOfOrderRegistrationIsListedInIdOrder) {
    // Concurrent creators may register a newer id before an older one.
    std::vector<std::shared_ptr<Buffer>> buffers;
    for (int i = 0; i < 5; ++i)
        buffers.push_back(unregisteredBuffer());
    ASSERT_TRUE(std::all_of(buffers.begin(), buffers.end(), [](const auto& b) { return b != nullptr; }));
    BufferRegistry registry;
    for (size_t i : {4, 1, 3, 0, 2})
        registry.add(buffers[i]);
    EXPECT_EQ(registry.liveCount(), 5u);
    EXPECT_EQ(idsOf(registry.buffers()), idsOf(buffers));

    registry.remove(buffers[3]->id());
    registry.remove(buffers[0]->id());
    EXPECT_EQ(registry.liveCount(), 3u);
    EXPECT_EQ(idsOf(registry.buffers()), idsOf(buffers, {false, true, true, false, true}));

    // Ids it never saw are ignored.
    registry.remove(0);
    registry.remove(buffers[4]->id() + 1000);
    EXPECT_EQ(registry.liveCount(), 3u);
}

TEST(BufferRegistry, ConcurrentAllocationFreeAndListingKeepItExact) {
    CoreBoard board;
    std::atomic<bool> failed{false};
    auto churn = [&] {
        std::vector<std::shared_ptr<Buffer>> held;
        for (int i = 0; i < 400; ++i) {
            auto b = board.allocate("system", 4 * KiB);
            if (!b) {
                failed = true;
                return;
            }
            held.push_back(std::move(*b));
            if (i % 3 == 0)
                held.erase(held.begin());
            if (i % 7 == 0 && !held.empty())
                held.pop_back();
        }
    };
    std::atomic<bool> done{false};
    std::thread lister([&] {
        while (!done) {
            auto ids = idsOf(board.registry()->buffers());
            if (!std::is_sorted(ids.begin(), ids.end()) || std::adjacent_find(ids.begin(), ids.end()) != ids.end())
                failed = true;
        }
    });
    std::thread a(churn);
    std::thread b(churn);
    a.join();
    b.join();
    done = true;
    lister.join();
    EXPECT_FALSE(failed);
    EXPECT_EQ(board.registry()->liveCount(), 0u);
    EXPECT_TRUE(board.registry()->buffers().empty());
}

} // namespace
} // namespace cenalloc
