// SPDX-License-Identifier: MIT
// Tests of the daemon configuration: the schema, errors with file:line, checks against the platform.
#include "service/config.h"

#include <cerrno>
#include <cstdio>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cenalloc/context.h>
#include <cenalloc/units.h>

namespace cenalloc {
namespace {

TEST(ServiceConfig, AFullConfigurationParses) {
    auto config = parseServiceConfig(R"(# cenallocd
max_clients: 32
max_clients_per_uid: 4
workers: 3
busy_poll_us: 20
quota:
  bytes: 512M
  buffers: 1000
clients:
  - uid: 1000
    quota: {bytes: 1G}
  - gid: 44
    quota: {buffers: unlimited, bytes: 0x1000}
heaps:
  - name: linux,cma
    allow_uids: [0, 1000]
    allow_gids: [44]
  - name: vpu-carveout
)",
                                     "cenallocd.yaml");
    ASSERT_TRUE(config) << config.error().toString();
    EXPECT_EQ(config->maxClients, 32u);
    EXPECT_EQ(config->maxClientsPerUid, 4u);
    EXPECT_EQ(config->workers, 3u);
    EXPECT_EQ(config->busyPollMicros, 20u);
    EXPECT_EQ(config->defaultQuota, (Quota{512 * MiB, 1000}));
    ASSERT_EQ(config->quotas.size(), 2u);
    EXPECT_EQ(config->quotas[0].uid, 1000u);
    EXPECT_FALSE(config->quotas[0].gid);
    EXPECT_EQ(config->quotas[0].quota, (Quota{1 * GiB, kUnlimited}));
    EXPECT_EQ(config->quotas[1].gid, 44u);
    EXPECT_EQ(config->quotas[1].quota, (Quota{4096, kUnlimited}));
    EXPECT_EQ(config->quotas[1].line, 12);
    ASSERT_EQ(config->heaps.size(), 2u);
    EXPECT_EQ(config->heaps[0].heap, "linux,cma");
    EXPECT_EQ(config->heaps[0].uids, (std::vector<uint32_t>{0, 1000}));
    EXPECT_EQ(config->heaps[0].gids, (std::vector<uint32_t>{44}));
    EXPECT_TRUE(config->heaps[1].uids.empty());
    EXPECT_EQ(config->source, "cenallocd.yaml");

    Credentials member{1, 2000, 2000, {44}};
    EXPECT_TRUE(config->allows("linux,cma", member));
    EXPECT_FALSE(config->allows("vpu-carveout", member)) << "listed without anyone allowed";
    EXPECT_TRUE(config->allows("system", member)) << "not listed: open";
    Credentials stranger{1, 2000, 2000, {}};
    EXPECT_FALSE(config->allows("linux,cma", stranger));
}

TEST(ServiceConfig, AnEmptyFileMeansTheDefaults) {
    auto config = parseServiceConfig("# nothing here\n", "empty.yaml");
    ASSERT_TRUE(config) << config.error().toString();
    EXPECT_EQ(config->maxClients, 256u);
    EXPECT_EQ(config->workers, 0u) << "one per CPU";
    EXPECT_EQ(config->busyPollMicros, 50u);
    EXPECT_EQ(config->defaultQuota, (Quota{kUnlimited, kDefaultBufferQuota})) << "a count of buffers, always";
    EXPECT_EQ(config->maxBuffers, 0u) << "as many as the kernel's inotify watches";
    EXPECT_EQ(config->quotaFor(Credentials{1, 1000, 1000, {}}), (Quota{kUnlimited, kDefaultBufferQuota}));
    EXPECT_EQ(config->quotaFor(Credentials{1, 0, 0, {}}), Quota{}) << "root has the reserve instead";
    EXPECT_TRUE(config->heaps.empty());
    EXPECT_TRUE(config->context.kernelHeaps) << "kernel heaps are offered where the host has them";
}

TEST(ServiceConfig, ADefaultQuotaOfBytesKeepsTheDefaultCountOfBuffers) {
    auto config = parseServiceConfig("quota: {bytes: 1G}\nmax_buffers: 1000\n", "bytes.yaml");
    ASSERT_TRUE(config) << config.error().toString();
    EXPECT_EQ(config->defaultQuota, (Quota{1 * GiB, kDefaultBufferQuota}));
    EXPECT_EQ(config->maxBuffers, 1000u);
    auto unlimited = parseServiceConfig("quota: {buffers: unlimited}\n", "unlimited.yaml");
    ASSERT_TRUE(unlimited) << unlimited.error().toString();
    EXPECT_EQ(unlimited->defaultQuota, (Quota{kUnlimited, kUnlimited})) << "said so";
}

TEST(ServiceConfig, KernelHeapsCanBeTurnedOff) {
    for (const char* off : {"false", "no", "off"}) {
        SCOPED_TRACE(off);
        auto config = parseServiceConfig(fmt::format("kernel_heaps: {}\n", off), "k.yaml");
        ASSERT_TRUE(config) << config.error().toString();
        EXPECT_FALSE(config->context.kernelHeaps);
    }
    auto on = parseServiceConfig("kernel_heaps: true\n", "k.yaml");
    ASSERT_TRUE(on);
    EXPECT_TRUE(on->context.kernelHeaps);
}

TEST(ServiceConfig, ReadyMemoryBudgetsAreConfigurable) {
    auto defaults = parseServiceConfig("", "r.yaml");
    ASSERT_TRUE(defaults);
    EXPECT_EQ(defaults->context.readyPool.heapBytes, 64 * MiB);
    EXPECT_EQ(defaults->context.readyPool.totalBytes, 128 * MiB);
    EXPECT_EQ(defaults->context.readyPool.minBytes, 64 * KiB);
    EXPECT_EQ(defaults->context.readyPool.populateBytes, 64 * KiB);
    EXPECT_EQ(defaults->context.readyPool.maxBuffers, 64u);
    EXPECT_EQ(defaults->context.readyPool.classDepth, 4u);
    EXPECT_EQ(defaults->context.readyPool.refillBytesPerSecond, GiB);
    auto config = parseServiceConfig("ready_memory: {heap_bytes: 32M, total_bytes: 1G, min_bytes: 4K, "
                                     "populate_bytes: 1M, max_buffers: 16, class_depth: 2, "
                                     "refill_bytes_per_second: 256M, low_memory_bytes: 2G}\n",
                                     "r.yaml");
    ASSERT_TRUE(config) << config.error().toString();
    const ReadyPoolOptions& r = config->context.readyPool;
    EXPECT_EQ(r.heapBytes, 32 * MiB);
    EXPECT_EQ(r.totalBytes, GiB);
    EXPECT_EQ(r.minBytes, 4 * KiB);
    EXPECT_EQ(r.populateBytes, MiB);
    EXPECT_EQ(r.maxBuffers, 16u);
    EXPECT_EQ(r.classDepth, 2u);
    EXPECT_EQ(r.refillBytesPerSecond, 256 * MiB);
    EXPECT_EQ(r.lowMemoryBytes, 2 * GiB);
    // 0: the refill thread's rate is not bounded.
    auto unbounded = parseServiceConfig("ready_memory: {refill_bytes_per_second: 0}\n", "r.yaml");
    ASSERT_TRUE(unbounded) << unbounded.error().toString();
    EXPECT_EQ(unbounded->context.readyPool.refillBytesPerSecond, 0u);
    auto rate = parseServiceConfig("ready_memory: {refill_bytes_per_second: fast}\n", "r.yaml");
    ASSERT_FALSE(rate);
    EXPECT_EQ(rate.error().code(), EINVAL);
    // The count of memfds held is bounded: each is an fd of the daemon.
    auto many = parseServiceConfig("ready_memory: {max_buffers: 100000}\n", "r.yaml");
    ASSERT_FALSE(many);
    EXPECT_EQ(many.error().code(), EINVAL);
    EXPECT_NE(many.error().message().find("4096"), std::string::npos) << many.error().message();
    // What it does not say keeps its default; zero turns the pool off.
    auto off = parseServiceConfig("ready_memory: {total_bytes: 0}\n", "r.yaml");
    ASSERT_TRUE(off) << off.error().toString();
    EXPECT_EQ(off->context.readyPool.heapBytes, 64 * MiB);
    EXPECT_FALSE(off->context.readyPool.enabled());
}

TEST(ServiceConfig, ErrorsNameTheFileAndLine) {
    struct Case {
        const char* yaml;
        const char* expected;
    };
    const Case cases[] = {
        {"max_clients: 4\nmax_client: 5\n", "c.yaml:2: configuration: unknown key 'max_client'"},
        {"max_clients: 0\n", "c.yaml:1: max_clients: must be at least 1"},
        {"max_clients: lots\n", "c.yaml:1: max_clients: 'lots' is not a number"},
        {"quota:\n  bytes: 12Q\n", "c.yaml:2: quota: bytes:"},
        {"quota:\n  byte: 1M\n", "c.yaml:2: quota: unknown key 'byte'"},
        {"quota: 5\n", "c.yaml:1: quota: expected a mapping"},
        {"clients:\n  - quota: {bytes: 1M}\n", "c.yaml:2: clients[0]: give exactly one of uid and gid"},
        {"clients:\n  - uid: 1\n    gid: 2\n    quota: {}\n", "c.yaml:2: clients[0]: give exactly one of uid and gid"},
        {"clients:\n  - uid: 1\n", "c.yaml:2: clients[0]: missing required key 'quota'"},
        {"clients:\n  - uid: -1\n    quota: {}\n", "c.yaml:2: clients[0]: uid: '-1' is not a number"},
        {"clients:\n  - uid: 4294967295\n    quota: {}\n", "c.yaml:2: clients[0]: uid: 4294967295 is not a valid id"},
        {"clients: {}\n", "c.yaml:1: clients: expected a list"},
        {"heaps:\n  - allow_uids: [1]\n", "c.yaml:2: heaps[0]: missing required key 'name'"},
        {"heaps:\n  - name: a\n  - name: a\n", "c.yaml:3: heaps[1]: heap 'a' is listed twice (first on line 2)"},
        {"heaps:\n  - name: a\n    allow_uids: 5\n", "c.yaml:3: heaps[0]: allow_uids: expected a list of ids"},
        {"heaps:\n  - name: a\n    allow_gids: [x]\n", "c.yaml:3: heaps[0]: allow_gids[0]: 'x' is not a number"},
        {"heaps: [\n", "c.yaml:2:"},
        {"- 1\n- 2\n", "c.yaml:1: configuration: expected a mapping"},
        {"max_clients: 1\nmax_clients: 2\n", "c.yaml:2: configuration: key 'max_clients' is given twice"},
        {"workers: 0\n", "c.yaml:1: workers: must be at least 1"},
        {"workers: 65\n", "c.yaml:1: workers: 65 is more than 64"},
        {"workers: two\n", "c.yaml:1: workers: 'two' is not a number"},
        {"busy_poll_us: 10001\n", "c.yaml:1: busy_poll_us: 10001 is more than 10000"},
        {"busy_poll_us: -1\n", "c.yaml:1: busy_poll_us: '-1' is not a number"},
        {"busy_poll_us: unlimited\n", "c.yaml:1: busy_poll_us: 'unlimited' is not a number"},
        {"workers: unlimited\n", "c.yaml:1: workers: 'unlimited' is not a number"},
        {"kernel_heaps: maybe\n", "c.yaml:1: kernel_heaps: 'maybe' is not true or false"},
        {"kernel_heaps: [true]\n", "c.yaml:1: kernel_heaps: 'a collection' is not true or false"},
        {"ready_memory: 64M\n", "c.yaml:1: ready_memory: expected a mapping"},
        {"ready_memory:\n  heap_byte: 1M\n", "c.yaml:2: ready_memory: unknown key 'heap_byte'"},
        {"ready_memory:\n  heap_bytes: lots\n", "c.yaml:2: ready_memory: heap_bytes:"},
        {"ready_memory:\n  total_bytes: -1\n", "c.yaml:2: ready_memory: total_bytes:"},
        {"ready_memory:\n  total_bytes: 17G\n", "c.yaml:2: ready_memory: total_bytes: 17 GiB is more than 16 GiB"},
        {"ready_memory:\n  heap_bytes: 256M\n",
         "c.yaml:2: ready_memory: heap_bytes: 256 MiB per heap is more than the 128 MiB in all (total_bytes)"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.yaml);
        auto config = parseServiceConfig(c.yaml, "c.yaml");
        ASSERT_FALSE(config);
        EXPECT_EQ(config.error().code(), EINVAL);
        EXPECT_EQ(config.error().message().rfind(c.expected, 0), 0u) << config.error().message();
    }
}

TEST(ServiceConfig, AHeapThePlatformLacksIsAnErrorAtItsLine) {
    auto config = parseServiceConfig("heaps:\n  - name: linux,cma\n  - name: secure\n", "d.yaml");
    ASSERT_TRUE(config);
    auto context = Context::create();
    ASSERT_TRUE(context);
    std::vector<std::string> names;
    for (const auto& heap : (*context)->heaps())
        names.push_back(heap->name());
    auto ok = checkServiceConfig(*config, (*context)->platform(), names);
    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().code(), EINVAL);
    EXPECT_EQ(
        ok.error().message().rfind("d.yaml:3: no heap 'secure' on platform 'cenalloc-reference' (heaps: system,", 0),
        0u)
        << ok.error().message();
}

TEST(ServiceConfig, LoadingAFileReportsMissingFilesAndDirectories) {
    auto missing = loadServiceConfig("/nonexistent/cenallocd.yaml");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), ENOENT);
    auto dir = loadServiceConfig("/tmp");
    ASSERT_FALSE(dir);
    EXPECT_EQ(dir.error().code(), EISDIR);
    std::string path = fmt::format("/tmp/cenalloc-config-test-{}.yaml", ::getpid());
    FILE* f = std::fopen(path.c_str(), "w");
    std::fputs("quota:\n  buffers: 7\n  bogus: 1\n", f);
    std::fclose(f);
    auto bad = loadServiceConfig(path);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message().rfind(path + ":3: quota: unknown key 'bogus'", 0), 0u) << bad.error().message();
    std::remove(path.c_str());
}

} // namespace
} // namespace cenalloc

namespace cenalloc {
namespace {

TEST(ServiceConfig, TheShippedExampleIsValidForTheBuiltInPlatform) {
    auto config = loadServiceConfig(CENALLOC_SOURCE_DIR "/systemd/cenallocd.yaml");
    ASSERT_TRUE(config) << config.error().toString();
    auto context = Context::create();
    ASSERT_TRUE(context);
    std::vector<std::string> names;
    for (const auto& heap : (*context)->heaps())
        names.push_back(heap->name());
    EXPECT_TRUE(checkServiceConfig(*config, (*context)->platform(), names));
    Credentials video{1, 1000, 1000, {44}};
    EXPECT_TRUE(config->allows("vpu-carveout", video));
    Credentials user{1, 1000, 1000, {}};
    EXPECT_FALSE(config->allows("vpu-carveout", user));
}

} // namespace
} // namespace cenalloc
