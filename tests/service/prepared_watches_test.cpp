// SPDX-License-Identifier: MIT
// Tests of the watches the service makes ahead on the ready pool's memfds: claimed by the buffer served, its death
// seen, none left behind.
#include <atomic>
#include <memory>
#include <vector>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "service/service.h"

namespace cenalloc {
namespace {

struct Fixture {
    std::shared_ptr<Service> service;
    std::unique_ptr<ServiceClient> client;
    std::shared_ptr<std::atomic<uint64_t>> available = std::make_shared<std::atomic<uint64_t>>(64 * GiB);

    Fixture() {
        ServiceConfig config;
        config.context.kernelHeaps = false;
        config.context.readyPool.memAvailable = [a = available] { return std::optional<uint64_t>(a->load()); };
        config.context.readyPool.classDepth = 1; // one memfd per use: exact counts
        config.context.readyPool.minBytes = 0;   // 4 KiB buffers served too
        auto made = Service::create(defaultPlatform(), config);
        EXPECT_TRUE(made) << made.error().toString();
        if (!made)
            return;
        service = *made;
        auto connected = service->connect(Credentials{::getpid(), ::getuid(), ::getgid(), {}}, true);
        EXPECT_TRUE(connected) << connected.error().toString();
        if (connected)
            client = std::move(*connected);
    }
    bool ok() const { return service && client; }

    Result<ServiceBuffer> allocate(uint64_t size) {
        auto request = AllocRequest::make("system", size);
        if (!request)
            return request.error();
        return service->allocate(client->id(), *request);
    }
    ReadyPoolStats pool() const {
        for (const ReadyPoolStats& s : service->context().readyPoolStats())
            if (s.heap == "system")
                return s;
        return ReadyPoolStats{"system"};
    }
    uint64_t liveInHeap() const { return service->context().findHeap("system")->stats().liveBuffers; }
};

TEST(PreparedWatches, APooledBufferTakesTheWatchMadeAheadAndItsDeathIsSeen) {
    Fixture f;
    ASSERT_TRUE(f.ok());
    // The first allocation misses; its fd, handed out, orders its class.
    auto first = f.allocate(4 * KiB);
    ASSERT_TRUE(first) << first.error().toString();
    f.service->context().waitReadyPoolRefilled();
    ASSERT_EQ(f.pool().readyBuffers, 1u);
    EXPECT_EQ(f.service->preparedWatches(), 1u) << "the refill thread watched the memfd it made";

    auto pooled = f.allocate(4 * KiB);
    ASSERT_TRUE(pooled) << pooled.error().toString();
    ASSERT_EQ(f.pool().hits, 1u);
    f.service->context().waitReadyPoolRefilled();
    // Its watch was claimed, and the refill its use ordered watched one more.
    EXPECT_EQ(f.service->preparedWatches(), 1u);
    EXPECT_EQ(f.service->trackedBuffers(), 2u);
    EXPECT_EQ(f.liveInHeap(), 2u);

    // Its end comes through the claimed watch, as any buffer's does.
    pooled->fd.reset();
    f.service->reap();
    EXPECT_EQ(f.service->trackedBuffers(), 1u);
    EXPECT_EQ(f.liveInHeap(), 1u);
    first->fd.reset();
    f.service->reap();
    EXPECT_EQ(f.service->trackedBuffers(), 0u);
    EXPECT_EQ(f.liveInHeap(), 0u);
}

TEST(PreparedWatches, MemfdsThePoolGivesBackLeaveNoWatchBehind) {
    Fixture f;
    ASSERT_TRUE(f.ok());
    std::vector<ServiceBuffer> held;
    for (uint64_t size : {4 * KiB, 64 * KiB, MiB}) {
        auto buffer = f.allocate(size);
        ASSERT_TRUE(buffer) << buffer.error().toString();
        held.push_back(std::move(*buffer));
    }
    f.service->context().waitReadyPoolRefilled();
    ASSERT_EQ(f.pool().readyBuffers, 3u);
    ASSERT_EQ(f.service->preparedWatches(), 3u);
    // Memory pressure: the pool closes its memfds and forgets their watches
    // first, so no inode number the kernel gives again can find one.
    f.available->store(0);
    f.service->context().checkReadyPoolMemory();
    EXPECT_EQ(f.pool().readyBuffers, 0u);
    EXPECT_EQ(f.service->preparedWatches(), 0u);
    // The events of those watches name nothing; later buffers live and die
    // as before.
    f.service->reap();
    auto later = f.allocate(4 * KiB);
    ASSERT_TRUE(later) << later.error().toString();
    EXPECT_EQ(f.service->trackedBuffers(), 4u);
    later->fd.reset();
    f.service->reap();
    EXPECT_EQ(f.service->trackedBuffers(), 3u);
}

TEST(PreparedWatches, AreBoundedByThePoolsCountOfMemfds) {
    ServiceConfig config;
    config.context.kernelHeaps = false;
    config.context.readyPool.maxBuffers = 3;
    config.context.readyPool.classDepth = 1;
    config.context.readyPool.minBytes = 0;
    auto service = Service::create(defaultPlatform(), config);
    ASSERT_TRUE(service) << service.error().toString();
    auto client = (*service)->connect(Credentials{::getpid(), ::getuid(), ::getgid(), {}}, true);
    ASSERT_TRUE(client);
    // Every size its own class, each handed out: each orders one memfd.
    std::vector<ServiceBuffer> held;
    for (uint64_t pages = 1; pages <= 8; ++pages) {
        auto request = AllocRequest::make("system", pages * 4 * KiB);
        ASSERT_TRUE(request);
        auto buffer = (*service)->allocate((*client)->id(), *request);
        ASSERT_TRUE(buffer) << buffer.error().toString();
        held.push_back(std::move(*buffer));
        (*service)->context().waitReadyPoolRefilled();
        EXPECT_LE((*service)->preparedWatches(), 3u);
    }
    EXPECT_EQ((*service)->preparedWatches(), 3u);
}

} // namespace
} // namespace cenalloc
