// SPDX-License-Identifier: MIT
// Tests of quotas, per-heap access control, client limits, visibility, and that a client touches only what it holds.
#include <cerrno>
#include <fcntl.h>
#include <grp.h>
#include <memory>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/memfd.h>
#include <cenalloc/session.h>
#include <cenalloc/units.h>

#include "service/config.h"
#include "service/service.h"
#include "support/daemon.h"
#include "support/process.h"
#include "support/service.h"

namespace cenalloc {
namespace {

using test::baselineOf;
using test::configOf;

TEST(Quota, BytesOverTheQuotaAreEdquotAndChangeNothing) {
    test::InProcessDaemon daemon(configOf("quota: {bytes: 1M, buffers: 100}\n"));
    auto session = daemon.connect();
    ASSERT_NE(session, nullptr);
    auto a = session->allocate("system", 512 * KiB);
    ASSERT_TRUE(a);
    auto b = session->create(508 * KiB);
    ASSERT_TRUE(b) << "deferred buffers count too";
    const auto before = baselineOf(*session);
    auto over = session->allocate("system", 8 * KiB);
    ASSERT_FALSE(over);
    EXPECT_EQ(over.error().code(), EDQUOT) << over.error().toString();
    EXPECT_EQ(session->create(8 * KiB).error().code(), EDQUOT);
    EXPECT_EQ(session->allocate("system", 2 * MiB).error().code(), EDQUOT);
    EXPECT_EQ(baselineOf(*session), before);
    EXPECT_EQ(test::heapStats(*session, "system").failedAllocations, 0u) << "refused before the heap was asked";
    EXPECT_TRUE(session->allocate("system", 4 * KiB)) << "what is left of the quota";
    // The charge goes with the buffer.
    a->reset();
    EXPECT_TRUE(session->allocate("system", 256 * KiB));
}

TEST(Quota, TheBufferCountIsLimitedToo) {
    test::InProcessDaemon daemon(configOf("quota:\n  buffers: 3\n"));
    auto session = daemon.connect();
    std::vector<UniqueFd> fds;
    for (int i = 0; i < 3; ++i) {
        auto fd = session->allocate("system", 4096);
        ASSERT_TRUE(fd);
        fds.push_back(std::move(*fd));
    }
    EXPECT_EQ(session->allocate("system", 4096).error().code(), EDQUOT);
    EXPECT_EQ(session->create(4096).error().code(), EDQUOT);
    fds.pop_back();
    EXPECT_TRUE(session->allocate("system", 4096));
}

TEST(Quota, IsSharedByEveryClientOfAUidAndLastsAsLongAsTheBufferNotTheClient) {
    test::InProcessDaemon daemon(configOf("quota: {buffers: 2}\n"));
    auto first = daemon.connect();
    auto second = daemon.connect();
    auto a = first->allocate("system", 4096);
    auto b = second->allocate("system", 4096);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(first->allocate("system", 4096).error().code(), EDQUOT) << "one uid, one quota";
    EXPECT_EQ(second->allocate("system", 4096).error().code(), EDQUOT);
    // The first client goes; its buffer lives on (we hold its fd), and so
    // does its charge: the uid still holds it.
    first.reset();
    ASSERT_TRUE(second->heaps()); // observing notices the hang-up at once
    EXPECT_EQ(second->allocate("system", 4096).error().code(), EDQUOT) << "a reconnect buys nothing";
    // The buffer goes: so does the charge.
    a->reset();
    auto c = second->allocate("system", 4096);
    EXPECT_TRUE(c) << c.error().toString();
    auto info = second->bufinfo();
    ASSERT_TRUE(info);
    EXPECT_EQ(info->size(), 2u) << "root sees both buffers alive";
}

TEST(Quota, RulesMatchByUidOrGroupFirstMatchWins) {
    ServiceConfig config = configOf(R"(quota: {bytes: 1M}
clients:
  - uid: 1000
    quota: {bytes: 4M, buffers: 10}
  - gid: 44
    quota: {bytes: unlimited}
  - uid: 0
    quota: {buffers: 1}
)");
    Credentials user{1, 1000, 1000, {44}};
    EXPECT_EQ(config.quotaFor(user), (Quota{4 * MiB, 10})) << "the uid rule comes first";
    Credentials video{1, 1001, 1001, {44}};
    EXPECT_EQ(config.quotaFor(video), (Quota{kUnlimited, kUnlimited}));
    Credentials root{1, 0, 0, {}};
    EXPECT_EQ(config.quotaFor(root), (Quota{kUnlimited, 1}));
    Credentials nobody{1, 65534, 65534, {}};
    EXPECT_EQ(config.quotaFor(nobody), (Quota{1 * MiB, kDefaultBufferQuota})) << "the default count of buffers stays";
}

TEST(HeapAccess, ADeniedHeapIsEaccesAndAnAllowedOneWorks) {
    struct Case {
        const char* yaml;
        bool allowed;
    };
    const Case cases[] = {
        {"heaps:\n  - name: linux,cma\n    allow_uids: [12345]\n", false},
        {"heaps:\n  - name: linux,cma\n    allow_gids: [54321]\n", false},
        {"heaps:\n  - name: linux,cma\n", false}, // listed with nobody allowed
        {"heaps:\n  - name: linux,cma\n    allow_uids: [12345, 0]\n", true},
        {"heaps:\n  - name: linux,cma\n    allow_gids: [0]\n", true},
        {"heaps:\n  - name: vpu-carveout\n    allow_uids: [12345]\n", true}, // another heap's rule
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.yaml);
        test::InProcessDaemon daemon(configOf(c.yaml));
        auto session = daemon.connect();
        ASSERT_NE(session, nullptr);
        const auto before = baselineOf(*session);
        auto fd = session->allocate("linux,cma", 64 * KiB);
        EXPECT_EQ(fd.has_value(), c.allowed);
        if (!c.allowed) {
            EXPECT_EQ(fd.error().code(), EACCES) << fd.error().toString();
            EXPECT_EQ(baselineOf(*session), before);
            EXPECT_EQ(test::heapStats(*session, "linux,cma").failedAllocations, 0u);
        }
        EXPECT_TRUE(session->allocate("system", 4096)) << "other heaps stay open";
    }
}

TEST(HeapAccess, DeferredBuffersOnlyUseHeapsTheCreatorMayUse) {
    // The display needs contiguous memory below 4 GiB: only the CMA pool serves it.
    test::InProcessDaemon denied(configOf("heaps:\n  - name: linux,cma\n    allow_uids: [12345]\n"));
    auto session = denied.connect();
    auto fd = session->create(1 * MiB);
    ASSERT_TRUE(fd);
    auto display = session->attach(*fd, "display");
    ASSERT_FALSE(display) << "no heap this client may use serves the display";
    EXPECT_EQ(display.error().code(), EINVAL);
    EXPECT_EQ(display.error().message().find("linux,cma"), std::string::npos)
        << "the refused heap is not even named: " << display.error().message();
    auto gpu = session->attach(*fd, "gpu");
    ASSERT_TRUE(gpu);
    auto m = session->map(*gpu, DmaDirection::ToDevice);
    ASSERT_TRUE(m);
    EXPECT_EQ(test::heapStats(*session, "linux,cma").liveBuffers, 0u);

    test::InProcessDaemon allowed(configOf("heaps:\n  - name: linux,cma\n    allow_uids: [0]\n"));
    auto other = allowed.connect();
    auto fd2 = other->create(1 * MiB);
    ASSERT_TRUE(fd2);
    auto att = other->attach(*fd2, "display");
    ASSERT_TRUE(att) << att.error().toString();
    ASSERT_TRUE(other->map(*att, DmaDirection::ToDevice));
    EXPECT_EQ(test::heapStats(*other, "linux,cma").liveBuffers, 1u);
}

TEST(ClientLimits, TooManyClientsAreRefusedWithAReason) {
    test::InProcessDaemon perUid(configOf("max_clients_per_uid: 2\n"));
    auto a = perUid.connect();
    auto b = perUid.connect();
    auto c = Session::connect(perUid.path());
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().code(), EAGAIN) << c.error().toString();
    b.reset();
    // The slot comes back as soon as the daemon notices the hang-up, which
    // any observation does at once.
    ASSERT_TRUE(a->heaps());
    EXPECT_TRUE(Session::connect(perUid.path()));

    test::InProcessDaemon global(configOf("max_clients: 1\n"));
    auto only = global.connect();
    auto refused = Session::connect(global.path());
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), EUSERS);
}

TEST(ClientLimits, TheLastSixteenthOfTheClientsIsKeptForRootAndRefusalsLeaveNoUidBehind) {
    ServiceConfig config;
    config.maxClients = 32; // two kept for uid 0
    config.maxClientsPerUid = 64;
    config.context.kernelHeaps = false;
    auto service = Service::create(defaultPlatform(), config);
    ASSERT_TRUE(service) << service.error().toString();
    std::vector<std::unique_ptr<ServiceClient>> clients;
    // Thirty uids other than root, one client each, fill all but the reserve.
    for (uint32_t uid = 1000; uid < 1030; ++uid) {
        auto client = (*service)->connect(Credentials{1, uid, uid, {}});
        ASSERT_TRUE(client) << client.error().toString();
        clients.push_back(std::move(*client));
    }
    auto refused = (*service)->connect(Credentials{1, 5000, 5000, {}});
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), EUSERS);
    EXPECT_NE(refused.error().toString().find("the last 2 of its 32 are kept for uid 0"), std::string::npos)
        << refused.error().toString();
    EXPECT_EQ((*service)->uidsCounted(), 30u) << "a refused uid leaves no entry";
    for (int i = 0; i < 2; ++i) {
        auto root = (*service)->connect(Credentials{1, 0, 0, {}});
        ASSERT_TRUE(root) << root.error().toString();
        clients.push_back(std::move(*root));
    }
    auto full = (*service)->connect(Credentials{1, 0, 0, {}});
    ASSERT_FALSE(full);
    EXPECT_EQ(full.error().code(), EUSERS);
    EXPECT_NE(full.error().toString().find("its maximum of 32 clients"), std::string::npos) << full.error().toString();
    // Uid 0's clients count too: with 31 connected, one place is free and
    // it is the reserve's.
    clients.erase(clients.begin());
    EXPECT_EQ((*service)->connect(Credentials{1, 5000, 5000, {}}).error().code(), EUSERS);
    clients.pop_back();
    clients.pop_back();
    EXPECT_TRUE((*service)->connect(Credentials{1, 5000, 5000, {}})) << "29 connected: three free, two kept";
}

TEST(Isolation, AClientCannotTouchAttachmentsOrMappingsOfAnother) {
    test::InProcessDaemon daemon;
    auto alice = daemon.connect();
    auto mallory = daemon.connect();
    auto fd = alice->allocate("system-dma32", 64 * KiB);
    ASSERT_TRUE(fd);
    auto att = alice->attach(*fd, "gpu");
    ASSERT_TRUE(att);
    auto m = alice->map(*att, DmaDirection::ToDevice);
    ASSERT_TRUE(m);
    // Ids are per session: Mallory's guesses name nothing of hers.
    for (uint64_t id : {*att, m->id, uint64_t{0}, uint64_t{2}, UINT64_MAX}) {
        SCOPED_TRACE(id);
        EXPECT_EQ(mallory->map(id, DmaDirection::ToDevice).error().code(), ENOENT);
        EXPECT_EQ(mallory->detach(id).error().code(), ENOENT);
        EXPECT_EQ(mallory->unmap(id).error().code(), ENOENT);
    }
    // Without the fd she cannot name the buffer at all; a look-alike memfd is refused.
    auto fake = createSealedMemfd("fake", 64 * KiB);
    ASSERT_TRUE(fake);
    EXPECT_EQ(mallory->import(*fake).error().code(), EBADF);
    EXPECT_EQ(mallory->attach(*fake, "gpu").error().code(), EBADF);
    EXPECT_EQ(mallory->release(*fake).error().code(), EBADF);
    // Alice's state is untouched.
    auto info = alice->bufinfo();
    ASSERT_TRUE(info);
    ASSERT_EQ(info->size(), 1u);
    EXPECT_EQ((*info)[0].mappings.size(), 1u);
    EXPECT_TRUE(alice->unmap(m->id));
    EXPECT_TRUE(alice->detach(*att));
    // Given the fd (as another process would pass it), Mallory may use the buffer.
    auto imported = mallory->import(*fd);
    ASSERT_TRUE(imported);
    auto hers = mallory->attach(*fd, "isp");
    ASSERT_TRUE(hers);
    EXPECT_EQ(*hers, 1u) << "her own first attachment id";
}

// ---------------------------------------------------------- as another uid

#define CHILD_CHECK(cond)                                                                                              \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            std::fprintf(stderr, "child %d: %s:%d: %s\n", ::getpid(), __FILE__, __LINE__, #cond);                      \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)

using test::runAsUid;

TEST(AsAnotherUid, HeapAccessQuotaVisibilityAndWatermarkFollowThePeersUid) {
    if (::getuid() != 0)
        GTEST_SKIP() << "needs root to act as other uids";
    test::DaemonProcess daemon(R"(clients:
  - uid: 12345
    quota: {buffers: 2}
heaps:
  - name: linux,cma
    allow_uids: [12345]
)");
    auto root = daemon.connect();
    ASSERT_NE(root, nullptr);
    auto rootsBuffer = root->allocate("system", 4096);
    ASSERT_TRUE(rootsBuffer);
    EXPECT_EQ(root->allocate("linux,cma", 4096).error().code(), EACCES) << "root is not uid 12345";

    int rc = runAsUid(12345, [&] {
        auto session = Session::connect(daemon.path());
        CHILD_CHECK(session);
        Session& s = **session;
        auto cma = s.allocate("linux,cma", 64 * KiB);
        CHILD_CHECK(cma);
        auto sys = s.allocate("system", 4096);
        CHILD_CHECK(sys);
        CHILD_CHECK(s.allocate("system", 4096).error().code() == EDQUOT);
        // It sees its own two buffers, not root's.
        auto info = s.bufinfo();
        CHILD_CHECK(info && info->size() == 2);
        // Statistics are for everyone, resetting them is not.
        CHILD_CHECK(s.stats());
        CHILD_CHECK(s.stats(true).error().code() == EPERM);
        return 0;
    });
    EXPECT_EQ(rc, 0);
    auto info = root->bufinfo();
    ASSERT_TRUE(info);
    EXPECT_EQ(info->size(), 1u) << "the child's buffers went with it";
    EXPECT_TRUE(root->stats(true)) << "root may reset the watermarks";
}

TEST(AsAnotherUid, GroupRulesUseTheSupplementaryGroups) {
    if (::getuid() != 0)
        GTEST_SKIP() << "needs root to act as other uids";
    test::DaemonProcess daemon("heaps:\n  - name: linux,cma\n    allow_gids: [4242]\n");
    int rc = runAsUid(23456, [&] {
        auto session = Session::connect(daemon.path());
        CHILD_CHECK(session);
        CHILD_CHECK((*session)->allocate("linux,cma", 4096).error().code() == EACCES);
        return 0;
    });
    EXPECT_EQ(rc, 0);
    const int status = runAsUid(23456,
                                [&] {
                                    auto session = Session::connect(daemon.path());
                                    return session && (*session)->allocate("linux,cma", 4096) ? 0 : 1;
                                },
                                {4242});
    EXPECT_EQ(status, 0);
}

// subuid(5): a user's subordinate uids (its user namespaces') are the user
// for every limit, so one user does not get a budget per subordinate uid.
TEST(AsAnotherUid, SubordinateUidsShareTheirOwnersQuota) {
    if (::getuid() != 0)
        GTEST_SKIP() << "needs root to act as other uids";
    char subuid[] = "/tmp/cenalloc-subuid-XXXXXX";
    const int fd = ::mkstemp(subuid);
    ASSERT_GE(fd, 0);
    const std::string ranges = "# owner:first:count\n4242:300000:1000\n";
    ASSERT_EQ(::write(fd, ranges.data(), ranges.size()), static_cast<ssize_t>(ranges.size()));
    ::close(fd);
    const std::string config =
        std::string("subordinate_uids: ") + subuid + "\nclients:\n  - uid: 4242\n    quota: {buffers: 1}\n";
    test::DaemonProcess daemon(config.c_str());

    // One subordinate uid holds the owner's only buffer...
    int holding[2], release[2];
    ASSERT_EQ(::pipe2(holding, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(release, O_CLOEXEC), 0);
    const pid_t holder = test::forkChild([&] {
        if (!test::becomeUid(300001, {}))
            return 100;
        auto session = Session::connect(daemon.path());
        CHILD_CHECK(session);
        auto buffer = (*session)->allocate("system", 4096);
        CHILD_CHECK(buffer);
        char byte = 1;
        CHILD_CHECK(::write(holding[1], &byte, 1) == 1);
        CHILD_CHECK(::read(release[0], &byte, 1) == 1);
        return 0;
    });
    ::close(holding[1]);
    ::close(release[0]);
    char byte = 0;
    ASSERT_EQ(::read(holding[0], &byte, 1), 1) << "the holder failed: " << test::reap(holder);
    // ...so another of its subordinate uids, and the owner, have none left.
    auto quotaIsUsed = [&] {
        auto session = Session::connect(daemon.path());
        CHILD_CHECK(session);
        auto buffer = (*session)->allocate("system", 4096);
        CHILD_CHECK(!buffer && buffer.error().code() == EDQUOT);
        return 0;
    };
    EXPECT_EQ(runAsUid(300999, quotaIsUsed), 0) << "the range's last uid";
    EXPECT_EQ(runAsUid(4242, quotaIsUsed), 0) << "the owner";
    // A uid past the range is its own (the default quota).
    EXPECT_EQ(runAsUid(301000,
                       [&] {
                           auto session = Session::connect(daemon.path());
                           CHILD_CHECK(session);
                           CHILD_CHECK((*session)->allocate("system", 4096));
                           return 0;
                       }),
              0);
    ASSERT_EQ(::write(release[1], &byte, 1), 1);
    ::close(release[1]);
    ::close(holding[0]);
    EXPECT_EQ(test::reap(holder), 0);
    ::unlink(subuid);
}

// bufinfo shows a user its own buffers and claims only, and it must cost
// no more than those: it runs under the service's lock, and walking every
// buffer of the daemon (up to max_buffers) on each call made one user's
// listings every other client's wait.
TEST(AsAnotherUid, BufinfoLooksAtTheCallersBuffersOnlyNotEveryBufferOfTheDaemon) {
    if (::getuid() != 0)
        GTEST_SKIP() << "needs root to act as other uids";
    test::InProcessDaemon daemon;
    ASSERT_TRUE(daemon.ok());
    auto root = daemon.connect();
    ASSERT_NE(root, nullptr);
    std::vector<UniqueFd> others;
    for (int i = 0; i < 1000; ++i) {
        auto fd = root->allocate("system", 4096);
        ASSERT_TRUE(fd) << fd.error().toString();
        others.push_back(std::move(*fd));
    }
    // A buffer of root's the user is given (and claims) it may list too.
    auto given = root->allocate("system", 4096);
    ASSERT_TRUE(given);
    const uint64_t before = daemon.server().service().bufinfoVisits();
    constexpr int kListings = 10;
    const int rc = runAsUid(12345, [&] {
        auto session = Session::connect(daemon.path());
        CHILD_CHECK(session);
        Session& s = **session;
        auto a = s.allocate("system", 4096);
        auto b = s.create(4096);
        CHILD_CHECK(a && b);
        CHILD_CHECK(s.import(*given));
        for (int i = 0; i < kListings; ++i) {
            auto info = s.bufinfo();
            CHILD_CHECK(info && info->size() == 3);
        }
        return 0;
    });
    EXPECT_EQ(rc, 0);
    const uint64_t visits = daemon.server().service().bufinfoVisits() - before;
    EXPECT_EQ(visits, 3u * kListings) << "its three buffers, for each listing";
    // Root still sees every buffer: its own (the user's went with it).
    auto all = root->bufinfo();
    ASSERT_TRUE(all);
    EXPECT_EQ(all->size(), 1001u);
}

} // namespace
} // namespace cenalloc
