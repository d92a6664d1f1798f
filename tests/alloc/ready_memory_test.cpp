// SPDX-License-Identifier: MIT
// Tests of the Context's pool of ready memory: hits and misses, zero fill, pressure, lifetime, fork.
#include <cenalloc/context.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <dirent.h>

#include <cenalloc/memfd.h>
#include <cenalloc/units.h>

#include "alloc/context_access.h"
#include "alloc/ready_memory.h"
#include "support/wait.h"

namespace cenalloc {
namespace {

ReadyPoolOptions budgets(uint64_t heapBytes, uint64_t totalBytes) {
    ReadyPoolOptions options;
    options.heapBytes = heapBytes;
    options.totalBytes = totalBytes;
    return options;
}

// Every use orders exactly one memfd (classDepth 1), so that the counts the
// tests expect are exact, unless @p depth says otherwise.
std::unique_ptr<Context> makeContext(ReadyPoolOptions pool = {}, uint64_t depth = 1) {
    ContextOptions options;
    options.kernelHeaps = false;
    pool.classDepth = depth;
    options.readyPool = std::move(pool);
    auto context = Context::create(defaultPlatform(), options);
    EXPECT_TRUE(context) << context.error().message();
    return context ? std::move(*context) : nullptr;
}

ReadyPoolStats statsOf(const Context& context, const std::string& heap) {
    for (const ReadyPoolStats& s : context.readyPoolStats())
        if (s.heap == heap)
            return s;
    return ReadyPoolStats{heap};
}

bool allZero(Buffer& buffer) {
    auto map = buffer.mmap(PROT_READ);
    if (!map)
        return false;
    const auto* bytes = static_cast<const unsigned char*>(map->data());
    for (size_t i = 0; i < map->size(); ++i)
        if (bytes[i] != 0)
            return false;
    return true;
}

// The threads of this process, from /proc/self/task.
int threadCount() {
    DIR* dir = ::opendir("/proc/self/task");
    if (!dir)
        return -1;
    int n = 0;
    while (const dirent* entry = ::readdir(dir))
        n += entry->d_name[0] != '.';
    ::closedir(dir);
    return n;
}

// The memfds this process has open (buffers' and the pool's alike), from
// /proc/self/fd: other fds come and go on other threads (the pool's thread
// reads /proc/meminfo now and then).
int memfdCount() {
    DIR* dir = ::opendir("/proc/self/fd");
    if (!dir)
        return -1;
    int n = 0;
    while (const dirent* entry = ::readdir(dir)) {
        char link[64] = {};
        const std::string path = fmt::format("/proc/self/fd/{}", entry->d_name);
        n += ::readlink(path.c_str(), link, sizeof link - 1) > 0 && std::strncmp(link, "/memfd:", 7) == 0;
    }
    ::closedir(dir);
    return n;
}

// Allocate a buffer of @p size from system and map it (its first use orders
// its class again), then wait for the refill: the steady state in which the
// next allocation of the size hits.
std::shared_ptr<Buffer> warm(Context& context, uint64_t size) {
    auto buffer = context.allocate("system", size);
    EXPECT_TRUE(buffer) << buffer.error().message();
    if (!buffer)
        return nullptr;
    EXPECT_TRUE((*buffer)->mmap());
    context.waitReadyPoolRefilled();
    return *buffer;
}

TEST(ReadyMemory, CountsHitsAndMissesPerHeapAndInAll) {
    ReadyPoolOptions options;
    options.minBytes = 64 * KiB;
    auto context = makeContext(options);
    ASSERT_TRUE(context);
    warm(*context, MiB);
    EXPECT_EQ(statsOf(*context, "system").misses, 1u);
    EXPECT_EQ(statsOf(*context, "system").hits, 0u);
    EXPECT_EQ(statsOf(*context, "system").readyBytes, MiB);
    EXPECT_EQ(statsOf(*context, "system").readyBuffers, 1u);
    EXPECT_EQ(statsOf(*context, "system").refills, 1u);
    EXPECT_GT(statsOf(*context, "system").refillNanos, 0u);
    auto hit = context->allocate("system", MiB);
    ASSERT_TRUE(hit);
    EXPECT_EQ(statsOf(*context, "system").hits, 1u);
    EXPECT_EQ(statsOf(*context, "system").misses, 1u);
    EXPECT_EQ(statsOf(*context, "").hits, 1u); // the whole pool's
    // Below the minimum the pool is not asked at all.
    auto small = context->allocate("system", 4 * KiB);
    ASSERT_TRUE(small);
    EXPECT_EQ(statsOf(*context, "").hits + statsOf(*context, "").misses, 2u);
}

TEST(ReadyMemory, APooledBufferIsZeroEvenWhenItsClassMateWasDirtied) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    {
        auto first = warm(*context, 2 * MiB);
        auto dirty = context->allocate("system", 2 * MiB); // from the pool
        ASSERT_TRUE(dirty);
        ASSERT_EQ(statsOf(*context, "system").hits, 1u);
        auto map = (*dirty)->mmap();
        ASSERT_TRUE(map);
        std::memset(map->data(), 0x5a, map->size());
    }
    context->waitReadyPoolRefilled();
    auto clean = context->allocate("system", 2 * MiB);
    ASSERT_TRUE(clean);
    EXPECT_EQ(statsOf(*context, "system").hits, 2u);
    EXPECT_TRUE(allZero(**clean));
}

TEST(ReadyMemory, APooledBufferBehavesLikeAnyOther) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    auto fresh = context->allocate("system", 3 * MiB - 4096, O_RDWR | O_CLOEXEC); // a miss: made as before
    ASSERT_TRUE(fresh);
    ASSERT_TRUE((*fresh)->mmap()); // used: orders its class
    context->waitReadyPoolRefilled();
    auto pooled = context->allocate("system", 3 * MiB - 4096, O_RDWR | O_CLOEXEC);
    ASSERT_TRUE(pooled);
    ASSERT_EQ(statsOf(*context, "system").hits, 1u);
    for (const auto& buffer : {*fresh, *pooled}) {
        SCOPED_TRACE(buffer->id());
        struct stat st {};
        ASSERT_EQ(::fstat(buffer->fd().get(), &st), 0);
        EXPECT_EQ(static_cast<uint64_t>(st.st_size), 3 * MiB - 4096);
        EXPECT_EQ(buffer->size(), 3 * MiB - 4096);
        EXPECT_EQ(::fcntl(buffer->fd().get(), F_GET_SEALS), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
        EXPECT_NE(::ftruncate(buffer->fd().get(), MiB), 0);
        EXPECT_EQ(buffer->heapName(), "system");
        EXPECT_TRUE(allZero(*buffer));
    }
    // Attributed to its heap like the other, and released with it.
    EXPECT_EQ(context->findHeap("system")->stats().liveBuffers, 2u);
    EXPECT_EQ(context->liveBuffers(), 2u);
    fresh->reset();
    pooled->reset();
    EXPECT_EQ(context->findHeap("system")->stats().liveBuffers, 0u);
    EXPECT_EQ(context->liveBuffers(), 0u);
}

TEST(ReadyMemory, AReadOnlyPooledBufferIsSealedAgainstWrites) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    warm(*context, MiB);
    auto buffer = context->allocate("system", MiB, O_RDONLY | O_CLOEXEC);
    ASSERT_TRUE(buffer);
    ASSERT_EQ(statsOf(*context, "system").hits, 1u);
    EXPECT_TRUE(::fcntl((*buffer)->fd().get(), F_GET_SEALS) & F_SEAL_FUTURE_WRITE);
    EXPECT_FALSE((*buffer)->mmap(PROT_READ | PROT_WRITE));
}

TEST(ReadyMemory, AZeroBudgetTurnsThePoolOff) {
    for (ReadyPoolOptions options : {budgets(0, 128 * MiB), budgets(64 * MiB, 0)}) {
        auto context = makeContext(options);
        ASSERT_TRUE(context);
        warm(*context, MiB);
        auto again = context->allocate("system", MiB);
        ASSERT_TRUE(again);
        EXPECT_TRUE(allZero(**again));
        const ReadyPoolStats all = statsOf(*context, "");
        EXPECT_EQ(all.hits + all.misses + all.refills + all.readyBytes, 0u);
    }
}

TEST(ReadyMemory, NeverExceedsItsBudgets) {
    auto context = makeContext(budgets(4 * MiB, 6 * MiB));
    ASSERT_TRUE(context);
    std::vector<std::shared_ptr<Buffer>> held;
    for (uint64_t size : {MiB, 3 * MiB, 2 * MiB, MiB, 4 * MiB, 512 * KiB, 3 * MiB})
        for (const char* heap : {"system", "system-uncached"}) {
            SCOPED_TRACE(fmt::format("{} {}", heap, size));
            auto buffer = context->allocate(heap, size);
            ASSERT_TRUE(buffer);
            ASSERT_TRUE((*buffer)->mmap());
            held.push_back(*buffer);
            context->waitReadyPoolRefilled();
            EXPECT_LE(statsOf(*context, heap).readyBytes, 4 * MiB);
            EXPECT_LE(statsOf(*context, "").readyBytes, 6 * MiB);
        }
    EXPECT_GT(statsOf(*context, "").readyBytes, 0u);
}

TEST(ReadyMemory, SmallClassesAreMadeAheadWithoutTheirPages) {
    ReadyPoolOptions options;
    options.minBytes = 0; // every size served
    auto context = makeContext(options);
    ASSERT_TRUE(context);
    for (uint64_t size : {4 * KiB, 60 * KiB, 64 * KiB, MiB}) {
        SCOPED_TRACE(size);
        warm(*context, size);
        auto pooled = context->allocate("system", size);
        ASSERT_TRUE(pooled);
        struct stat st {};
        ASSERT_EQ(::fstat((*pooled)->fd().get(), &st), 0);
        EXPECT_EQ(static_cast<uint64_t>(st.st_size), size);
        EXPECT_EQ(::fcntl((*pooled)->fd().get(), F_GET_SEALS), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
        // Below ReadyPoolOptions::populateBytes (64 KiB) the memfd holds no
        // page yet; from it, every page.
        if (size < 64 * KiB)
            EXPECT_EQ(st.st_blocks, 0);
        else
            EXPECT_EQ(static_cast<uint64_t>(st.st_blocks) * 512, size);
        EXPECT_TRUE(allZero(**pooled));
    }
    EXPECT_EQ(statsOf(*context, "system").hits, 4u);
}

TEST(ReadyMemory, KeepsItsClassDepthReadyOrOrdered) {
    ReadyPoolOptions options;
    options.minBytes = 0;
    auto context = makeContext(options, 3);
    ASSERT_TRUE(context);
    // The first use orders three: one for itself and two for the depth.
    warm(*context, 8 * KiB);
    EXPECT_EQ(statsOf(*context, "system").readyBuffers, 3u);
    EXPECT_EQ(statsOf(*context, "system").refills, 3u);
    // Each later use orders one: the class stays three deep.
    for (int i = 0; i < 5; ++i) {
        auto buffer = context->allocate("system", 8 * KiB);
        ASSERT_TRUE(buffer && (*buffer)->mmap());
        context->waitReadyPoolRefilled();
        EXPECT_EQ(statsOf(*context, "system").readyBuffers, 3u);
    }
    EXPECT_EQ(statsOf(*context, "system").hits, 5u);
    EXPECT_EQ(statsOf(*context, "system").refills, 8u);
    // Within the budgets: a class of which only two fit gets two.
    ReadyPoolOptions tight;
    tight.heapBytes = 2 * MiB;
    tight.totalBytes = 2 * MiB;
    auto small = makeContext(tight, 3);
    ASSERT_TRUE(small);
    warm(*small, MiB);
    EXPECT_EQ(statsOf(*small, "system").readyBuffers, 2u);
}

// A client that allocates large buffers and drops them untouched must not
// keep the refill thread zeroing memory (ReadyPoolOptions::
// refillBytesPerSecond): beyond the budget a populated refill is not made.
// One byte per second: the first refill is made (the budget was not spent),
// and then none for twelve days.
TEST(ReadyMemory, TheRefillThreadZeroesNoMoreThanItsBudgetAllows) {
    // Allocate and map @p times buffers of @p size, each (a hit or a miss) a
    // zero-filled buffer like any other, and wait for the refills each
    // orders: a refill not made is not pending, so the wait returns.
    auto use = [](Context& context, uint64_t size, int times) {
        for (int i = 0; i < times; ++i) {
            auto buffer = context.allocate("system", size);
            ASSERT_TRUE(buffer && (*buffer)->mmap());
            EXPECT_TRUE(allZero(**buffer));
            context.waitReadyPoolRefilled();
        }
    };
    ReadyPoolOptions options;
    options.minBytes = 0;
    options.refillBytesPerSecond = 1;
    auto context = makeContext(options);
    ASSERT_TRUE(context);
    warm(*context, MiB);
    EXPECT_EQ(statsOf(*context, "system").refills, 1u);
    use(*context, MiB, 5);
    EXPECT_EQ(statsOf(*context, "system").refills, 1u);
    EXPECT_EQ(statsOf(*context, "system").hits, 1u);
    EXPECT_EQ(statsOf(*context, "system").misses, 5u);
    EXPECT_EQ(statsOf(*context, "system").readyBuffers, 0u);
    // Classes made without their pages cost no zeroing and are not bounded.
    warm(*context, 8 * KiB);
    use(*context, 8 * KiB, 3);
    EXPECT_EQ(statsOf(*context, "system").refills, 5u);
    // 0: no bound.
    options.refillBytesPerSecond = 0;
    auto unbounded = makeContext(options);
    ASSERT_TRUE(unbounded);
    warm(*unbounded, MiB);
    use(*unbounded, MiB, 3);
    EXPECT_EQ(statsOf(*unbounded, "system").refills, 4u);
    EXPECT_EQ(statsOf(*unbounded, "system").hits, 3u);
}

TEST(ReadyMemory, HoldsNoMoreMemfdsThanItsCount) {
    ReadyPoolOptions options;
    options.minBytes = 0;
    options.maxBuffers = 2;
    auto context = makeContext(options);
    ASSERT_TRUE(context);
    std::vector<std::shared_ptr<Buffer>> held;
    auto first = context->allocate("system", 4 * KiB); // the thread starts with the first refill
    ASSERT_TRUE(first && (*first)->mmap());
    context->waitReadyPoolRefilled();
    const int fds = memfdCount();
    // Each size its own class, each used: each orders a memfd of its own.
    for (uint64_t pages = 2; pages <= 9; ++pages) {
        SCOPED_TRACE(pages);
        auto buffer = context->allocate("system", pages * 4 * KiB);
        ASSERT_TRUE(buffer);
        ASSERT_TRUE((*buffer)->mmap());
        held.push_back(*buffer);
        context->waitReadyPoolRefilled();
        EXPECT_LE(statsOf(*context, "").readyBuffers, 2u);
    }
    // The stock follows the newest classes; the process holds the buffers'
    // fds and at most one more memfd than before (the first's class went).
    EXPECT_EQ(statsOf(*context, "").readyBuffers, 2u);
    EXPECT_LE(memfdCount(), fds + static_cast<int>(held.size()) + 1);
    auto newest = context->allocate("system", 9 * 4 * KiB);
    ASSERT_TRUE(newest);
    EXPECT_EQ(statsOf(*context, "system").hits, 1u);
}

// Records what the pool asks of its preparer: the inode of each memfd
// prepared and of each discarded (fstat inside discard(): the fd must still
// be open then).
struct RecordingPreparer final : MemfdPreparer {
    Result<void> prepare(BorrowedFd fd) override {
        std::lock_guard lock(mutex);
        if (fail)
            return Error(EIO, "refused");
        prepared.insert(inodeOf(fd));
        return {};
    }
    void discard(BorrowedFd fd) override {
        std::lock_guard lock(mutex);
        discarded.insert(inodeOf(fd));
    }
    static ino_t inodeOf(BorrowedFd fd) {
        struct stat st {};
        return ::fstat(fd.get(), &st) == 0 ? st.st_ino : 0;
    }
    std::mutex mutex;
    bool fail = false;
    std::set<ino_t> prepared;
    std::set<ino_t> discarded;
};

TEST(ReadyMemory, APreparerSeesEachMemfdMadeAndEachClosedUnused) {
    auto available = std::make_shared<std::atomic<uint64_t>>(4 * GiB);
    ReadyPoolOptions options;
    options.minBytes = 0;
    options.memAvailable = [available]() -> std::optional<uint64_t> { return available->load(); };
    auto context = makeContext(options);
    ASSERT_TRUE(context);
    auto preparer = std::make_shared<RecordingPreparer>();
    ContextAccess::readyMemory(*context).setPreparer(preparer);
    warm(*context, 4 * KiB);
    warm(*context, MiB);
    ASSERT_EQ(preparer->prepared.size(), 2u);
    EXPECT_FALSE(preparer->prepared.contains(0)) << "prepared before it was stocked, its fd open";

    // A memfd taken is the buffer's: never discarded.
    auto pooled = context->allocate("system", 4 * KiB);
    ASSERT_TRUE(pooled);
    const ino_t taken = RecordingPreparer::inodeOf((*pooled)->fd());
    EXPECT_TRUE(preparer->prepared.contains(taken));
    // A drain closes the other, discarded first.
    available->store(0);
    context->checkReadyPoolMemory();
    ASSERT_EQ(preparer->discarded.size(), 1u);
    EXPECT_FALSE(preparer->discarded.contains(0)) << "discarded while its fd was open";
    EXPECT_FALSE(preparer->discarded.contains(taken));
    EXPECT_TRUE(preparer->prepared.contains(*preparer->discarded.begin()));

    // A memfd its preparer refuses is never stocked.
    available->store(4 * GiB);
    context->checkReadyPoolMemory();
    preparer->fail = true;
    warm(*context, MiB);
    EXPECT_EQ(statsOf(*context, "").readyBuffers, 0u);
    auto miss = context->allocate("system", MiB);
    ASSERT_TRUE(miss);
    EXPECT_EQ(statsOf(*context, "system").hits, 1u);
}

TEST(ReadyMemory, DrainsUnderMemoryPressureAndRefillsOnceItPasses) {
    auto available = std::make_shared<std::atomic<uint64_t>>(4 * GiB);
    ReadyPoolOptions options;
    options.lowMemoryBytes = 512 * MiB;
    options.memAvailable = [available]() -> std::optional<uint64_t> { return available->load(); };
    auto context = makeContext(options);
    ASSERT_TRUE(context);
    warm(*context, 2 * MiB);
    ASSERT_EQ(statsOf(*context, "system").readyBytes, 2 * MiB);

    available->store(100 * MiB);
    context->checkReadyPoolMemory();
    EXPECT_EQ(statsOf(*context, "").readyBytes, 0u);
    auto miss = context->allocate("system", 2 * MiB);
    ASSERT_TRUE(miss);
    EXPECT_TRUE(allZero(**miss)); // its map orders a refill
    context->waitReadyPoolRefilled();
    EXPECT_EQ(statsOf(*context, "").readyBytes, 0u); // nothing made while short

    available->store(4 * GiB);
    context->checkReadyPoolMemory();
    warm(*context, 2 * MiB);
    EXPECT_EQ(statsOf(*context, "system").readyBytes, 2 * MiB);
}

TEST(ReadyMemory, AnUnknownMemAvailableIsNoPressure) {
    ReadyPoolOptions options;
    options.memAvailable = []() -> std::optional<uint64_t> { return std::nullopt; };
    auto context = makeContext(options);
    ASSERT_TRUE(context);
    warm(*context, MiB);
    context->checkReadyPoolMemory();
    EXPECT_EQ(statsOf(*context, "system").readyBytes, MiB);
}

TEST(ReadyMemory, ReadsMemAvailableFromProcMeminfo) {
    const std::optional<uint64_t> available = readMemAvailable();
    ASSERT_TRUE(available);
    EXPECT_GT(*available, 0u);
    EXPECT_EQ(*available % 1024, 0u); // meminfo counts in kB
}

TEST(ReadyMemory, ContextDestructionWhileTheRefillThreadWorks) {
    // The reader blocks the refill thread inside its round until released,
    // so the context is destroyed while the thread is at work.
    auto entered = std::make_shared<std::promise<void>>();
    auto release = std::make_shared<std::promise<void>>();
    std::shared_future<void> go = release->get_future().share();
    auto once = std::make_shared<std::atomic<bool>>(false);
    ReadyPoolOptions options;
    options.memAvailable = [entered, go, once]() -> std::optional<uint64_t> {
        if (!once->exchange(true)) {
            entered->set_value();
            go.wait();
        }
        return 4 * GiB;
    };
    auto context = makeContext(options);
    ASSERT_TRUE(context);
    auto buffer = context->allocate("system", 32 * MiB);
    ASSERT_TRUE(buffer);
    ASSERT_TRUE((*buffer)->mmap()); // orders a refill: the thread starts
    entered->get_future().wait();
    std::thread destroyer([&] { context.reset(); });
    release->set_value();
    destroyer.join();
    EXPECT_FALSE(context);
    // The buffer outlives its context, as every buffer may.
    EXPECT_TRUE(allZero(**buffer));
}

TEST(ReadyMemory, ABufferFreedUntouchedOrdersNoRefill) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    warm(*context, MiB);
    ASSERT_EQ(statsOf(*context, "system").refills, 1u);
    ASSERT_EQ(statsOf(*context, "system").readyBuffers, 1u);
    for (int i = 0; i < 3; ++i) {
        // A hit, then misses: allocated and freed, never mapped nor handed out.
        SCOPED_TRACE(i);
        auto buffer = context->allocate("system", MiB);
        ASSERT_TRUE(buffer);
        buffer->reset();
        context->waitReadyPoolRefilled();
        EXPECT_EQ(statsOf(*context, "system").refills, 1u);
        EXPECT_EQ(statsOf(*context, "system").readyBuffers, 0u);
    }
    EXPECT_EQ(statsOf(*context, "system").hits, 1u);
    EXPECT_EQ(statsOf(*context, "system").misses, 3u); // warm's and two here
    // The first use of a buffer, miss or hit, orders its class once.
    auto used = context->allocate("system", MiB);
    ASSERT_TRUE(used);
    ASSERT_TRUE((*used)->mmap());
    ASSERT_TRUE((*used)->mmap());
    context->waitReadyPoolRefilled();
    EXPECT_EQ(statsOf(*context, "system").refills, 2u);
    EXPECT_EQ(statsOf(*context, "system").readyBuffers, 1u);
}

TEST(ReadyMemory, AnFdHandedOutCountsAsAUse) {
    // Whoever gets the fd may map it unseen: dupFd and surrenderFd order the
    // refill as a map does.
    auto context = makeContext();
    ASSERT_TRUE(context);
    auto duped = context->allocate("system", MiB);
    ASSERT_TRUE(duped);
    ASSERT_TRUE((*duped)->dupFd());
    context->waitReadyPoolRefilled();
    EXPECT_EQ(statsOf(*context, "system").refills, 1u);
    auto surrendered = context->allocate("system", 2 * MiB);
    ASSERT_TRUE(surrendered);
    ASSERT_TRUE((*surrendered)->surrenderFd());
    context->waitReadyPoolRefilled();
    EXPECT_EQ(statsOf(*context, "system").refills, 2u);
    EXPECT_EQ(statsOf(*context, "system").readyBytes, 3 * MiB);
}

TEST(ReadyMemory, ABufferOutlivingItsContextOrdersNothingWhenUsed) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    auto buffer = context->allocate("system", MiB);
    ASSERT_TRUE(buffer);
    context.reset();
    // The pool is gone with the context: the first map finds no pool to order from.
    EXPECT_TRUE(allZero(**buffer));
}

TEST(ReadyMemory, AForkedChildNeverUsesTheParentsPool) {
    auto context = makeContext();
    ASSERT_TRUE(context);
    warm(*context, MiB);
    const ReadyPoolStats before = statsOf(*context, "system");
    ASSERT_EQ(before.readyBuffers, 1u);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // No gtest assertions here: exit codes say what went wrong.
        auto buffer = context->allocate("system", MiB);
        if (!buffer)
            ::_exit(2);
        const ReadyPoolStats after = statsOf(*context, "system");
        if (after.hits != before.hits || after.misses != before.misses || after.readyBuffers != 1)
            ::_exit(3);
        if (!allZero(**buffer))
            ::_exit(4);
        buffer->reset();
        context.reset(); // must not wait for a thread the child does not have
        ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    // The parent's memfd is still its own, and still ready.
    EXPECT_EQ(statsOf(*context, "system").readyBuffers, 1u);
    auto hit = context->allocate("system", MiB);
    ASSERT_TRUE(hit);
    EXPECT_EQ(statsOf(*context, "system").hits, before.hits + 1);
    EXPECT_TRUE(allZero(**hit));
}

TEST(ReadyMemory, ExitStopsTheRefillThreadOfAContextNeverDestroyed) {
    // A preloaded shim's context lives until exit(): the atexit handler
    // (stopAllThreads) must join its refill thread before exit destroys the
    // statics that thread uses. Run in a child, which starts with the thread
    // that forked (and a sanitizer's own, if any).
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // No gtest assertions here: exit codes say what went wrong.
        const int alone = threadCount();
        if (alone < 1)
            ::_exit(2);
        auto* context = makeContext().release(); // never destroyed, as the shim's
        if (!context)
            ::_exit(3);
        auto first = context->allocate("system", MiB);
        if (!first || !(*first)->mmap()) // the map orders a refill
            ::_exit(3);
        const int running = threadCount();
        if (running <= alone)
            ::_exit(4); // the refill thread was started (TSan may start its own with it)
        ReadyMemory::stopAllThreads();
        // Joined; the kernel lists a thread in /proc/self/task until it has
        // finished exiting, a moment after the join returns: do_exit()
        // (kernel/exit.c) wakes the joiner from exit_mm() (mm_release(),
        // kernel/fork.c: clear_child_tid), before exit_notify() releases
        // the thread.
        const auto deadline = std::chrono::steady_clock::now() + test::kPatience;
        int stopped = threadCount();
        while (stopped != running - 1 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
            stopped = threadCount();
        }
        if (stopped != running - 1)
            ::_exit(5);
        // After it, allocation still works and starts no thread.
        auto buffer = context->allocate("system", 2 * MiB);
        if (!buffer || !allZero(**buffer) || threadCount() != stopped)
            ::_exit(6);
        ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

} // namespace
} // namespace cenalloc
