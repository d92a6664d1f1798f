// SPDX-License-Identifier: MIT
// Multi-process tests against the cenallocd binary: fd passing, lifetime across processes, kill -9, signals.
#include <cerrno>
#include <csignal>
#include <cstring>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/session.h>
#include <cenalloc/units.h>

#include "service/socket_io.h"
#include "support/daemon.h"
#include "support/fds.h"
#include "support/process.h"
#include "support/service.h"

namespace cenalloc {
namespace {

using test::baselineOf;

// In a child: report the failed condition and exit non-zero (gtest's
// assertions do not work across fork).
#define CHILD_CHECK(cond)                                                                                              \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            std::fprintf(stderr, "child %d: %s:%d: %s\n", ::getpid(), __FILE__, __LINE__, #cond);                      \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)

template <typename F> pid_t spawn(F body) {
    return test::forkChild(body);
}

/// 0..255 for an exit, 128+N for death by signal N (bounded: test::reap()).
int waitFor(pid_t pid) {
    return test::reap(pid);
}

/// A one-way channel of single bytes between processes.
class Signal {
public:
    Signal() { EXPECT_EQ(::pipe2(fds_, O_CLOEXEC), 0); }
    ~Signal() {
        ::close(fds_[0]);
        ::close(fds_[1]);
    }
    bool send(char c) { return ::write(fds_[1], &c, 1) == 1; }
    /// Blocks until a byte arrives; '\0' when every writer is gone.
    char wait() {
        char c = 0;
        ssize_t n;
        do {
            n = ::read(fds_[0], &c, 1);
        } while (n < 0 && errno == EINTR);
        return n == 1 ? c : '\0';
    }

private:
    int fds_[2] = {-1, -1};
};

unsigned char pattern(size_t i) {
    return static_cast<unsigned char>((i * 7 + 13) & 0xff);
}

TEST(MultiProcess, AConsumerReadsWhatAProducerWroteAndTheBufferOutlivesTheProducer) {
    test::DaemonProcess daemon;
    auto observer = daemon.connect();
    ASSERT_NE(observer, nullptr);
    const auto baseline = baselineOf(*observer);
    constexpr uint64_t kSize = 1 * MiB;

    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    UniqueFd producerEnd(pair[0]), consumerEnd(pair[1]);
    Signal go, status;

    pid_t producer = spawn([&] {
        consumerEnd.reset();
        auto session = Session::connect(daemon.path());
        CHILD_CHECK(session);
        auto fd = (*session)->allocate("system-dma32", kSize);
        CHILD_CHECK(fd);
        CHILD_CHECK((*session)->setName(*fd, "frame"));
        test::Mapped m(fd->get(), kSize);
        CHILD_CHECK(m.valid());
        for (size_t i = 0; i < kSize; ++i)
            m.bytes()[i] = pattern(i);
        int raw = fd->get();
        CHILD_CHECK(sendDatagram(producerEnd, std::vector<std::byte>{std::byte{'b'}}, std::span<const int>(&raw, 1)));
        return 0; // exits: its session, fd and mapping go
    });
    pid_t consumer = spawn([&] {
        producerEnd.reset();
        auto dg = receiveDatagram(consumerEnd, 16);
        CHILD_CHECK(dg && dg->fds.size() == 1);
        UniqueFd fd = std::move(dg->fds[0]);
        CHILD_CHECK(go.wait() == 'g');
        auto session = Session::connect(daemon.path());
        CHILD_CHECK(session);
        Session& s = **session;
        CHILD_CHECK(s.import(fd));
        auto camera = s.attach(fd, "camera");
        CHILD_CHECK(camera);
        auto gpu = s.attach(fd, "gpu");
        CHILD_CHECK(gpu);
        auto cm = s.map(*camera, DmaDirection::ToDevice);
        CHILD_CHECK(cm);
        auto gm = s.map(*gpu, DmaDirection::ToDevice);
        CHILD_CHECK(gm);
        // The camera's table obeys its limits: 32-bit addresses, 64 KiB
        // segments, at most 64 of them, covering the buffer.
        uint64_t total = 0;
        for (const SgEntry& e : cm->segments) {
            CHILD_CHECK(e.length > 0 && e.length <= 64 * KiB);
            CHILD_CHECK(e.dmaAddress + e.length <= (uint64_t{1} << 32));
            total += e.length;
        }
        CHILD_CHECK(total == kSize && cm->segments.size() <= 64);
        // Behind its IOMMU the GPU sees one I/O virtual range.
        CHILD_CHECK(gm->segments.size() == 1 && gm->segments[0].length == kSize);
        auto info = s.bufinfo();
        CHILD_CHECK(info && info->size() == 1);
        CHILD_CHECK((*info)[0].mappings.size() == 2 && (*info)[0].mappings[0].segments == cm->segments);
        CHILD_CHECK((*info)[0].name == "frame");
        test::Mapped m(fd.get(), kSize);
        CHILD_CHECK(m.valid());
        for (size_t i = 0; i < kSize; ++i)
            CHILD_CHECK(m.bytes()[i] == pattern(i));
        m.reset();
        status.send('r'); // read and verified
        CHILD_CHECK(go.wait() == 'c');
        fd.reset(); // the last reference anywhere, while the session still holds its attachments
        status.send('c');
        CHILD_CHECK(go.wait() == 'x');
        // Its attachments went with the buffer.
        CHILD_CHECK(s.map(*camera, DmaDirection::ToDevice).error().code() == ENOENT);
        return 0;
    });
    producerEnd.reset();
    consumerEnd.reset();

    ASSERT_EQ(waitFor(producer), 0);
    auto live = test::heapStats(*observer, "system-dma32");
    EXPECT_EQ(live.liveBuffers, baseline.heaps[2].first + 1) << "the producer is gone, its buffer is not";
    EXPECT_EQ(live.liveBytes, baseline.heaps[2].second + kSize);

    go.send('g');
    ASSERT_EQ(status.wait(), 'r');
    auto info = observer->bufinfo(); // root sees every buffer
    ASSERT_TRUE(info);
    ASSERT_EQ(info->size(), 1u);
    EXPECT_EQ((*info)[0].attachedDevices, (std::vector<std::string>{"camera", "gpu"}));

    go.send('c');
    ASSERT_EQ(status.wait(), 'c');
    EXPECT_EQ(baselineOf(*observer), baseline) << "the consumer closed the last fd";
    auto stats = observer->stats();
    ASSERT_TRUE(stats);
    EXPECT_TRUE(stats->lifetimeBugs.empty());
    go.send('x');
    EXPECT_EQ(waitFor(consumer), 0);
}

TEST(MultiProcess, KillingAClientReleasesEverythingItAloneHeldAtOnce) {
    test::DaemonProcess daemon;
    auto observer = daemon.connect();
    ASSERT_NE(observer, nullptr);
    const auto baseline = baselineOf(*observer);

    // Another client's buffers, attached and mapped, must not notice.
    auto other = daemon.connect();
    ASSERT_NE(other, nullptr);
    std::vector<UniqueFd> mine;
    std::vector<uint64_t> myAttachments;
    for (int i = 0; i < 5; ++i) {
        auto fd = other->allocate("system-dma32", 64 * KiB);
        ASSERT_TRUE(fd);
        auto att = other->attach(*fd, "gpu");
        ASSERT_TRUE(att);
        ASSERT_TRUE(other->map(*att, DmaDirection::Bidirectional));
        mine.push_back(std::move(*fd));
        myAttachments.push_back(*att);
    }
    const auto withMine = baselineOf(*observer);

    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    UniqueFd victimEnd(pair[0]), parentEnd(pair[1]);
    Signal ready, never;
    pid_t victim = spawn([&] {
        parentEnd.reset();
        auto session = Session::connect(daemon.path());
        CHILD_CHECK(session);
        Session& s = **session;
        std::vector<UniqueFd> fds;
        for (int i = 0; i < 100; ++i) {
            auto fd = s.allocate("system-dma32", 64 * KiB);
            CHILD_CHECK(fd);
            fds.push_back(std::move(*fd));
        }
        for (int i = 0; i < 40; ++i) {
            auto att = s.attach(fds[i], i % 2 ? "gpu" : "camera");
            CHILD_CHECK(att);
            if (i < 25)
                CHILD_CHECK(s.map(*att, DmaDirection::ToDevice));
        }
        for (int i = 0; i < 10; ++i)
            CHILD_CHECK(s.beginCpuAccess(fds[i], kSyncReadWrite));
        // Buffer 0 (attached and mapped here) is shared with the parent.
        int raw = fds[0].get();
        CHILD_CHECK(sendDatagram(victimEnd, std::vector<std::byte>{std::byte{'s'}}, std::span<const int>(&raw, 1)));
        ready.send('r');
        never.wait(); // until killed
        return 0;
    });
    victimEnd.reset();
    auto dg = receiveDatagram(parentEnd, 16);
    ASSERT_TRUE(dg);
    ASSERT_EQ(dg->fds.size(), 1u);
    UniqueFd shared = std::move(dg->fds[0]);
    ASSERT_EQ(ready.wait(), 'r');
    auto busy = baselineOf(*observer);
    EXPECT_EQ(busy.heaps[2].first, withMine.heaps[2].first + 100);
    EXPECT_GT(busy.domainInUse[0], withMine.domainInUse[0]);

    ::kill(victim, SIGKILL);
    EXPECT_EQ(waitFor(victim), 128 + SIGKILL);

    // At once: the next observation already sees it.
    auto after = baselineOf(*observer);
    EXPECT_EQ(after.heaps[2].first, withMine.heaps[2].first + 1) << "only the shared buffer lives on";
    EXPECT_EQ(after.heaps[2].second, withMine.heaps[2].second + 64 * KiB);
    EXPECT_EQ(after.domainInUse, withMine.domainInUse) << "the victim's mappings are gone, ours are not";
    auto info = observer->bufinfo();
    ASSERT_TRUE(info);
    ASSERT_EQ(info->size(), 6u);
    size_t attachedToMine = 0, bare = 0;
    for (const BufferInfo& b : *info) {
        if (b.attachedDevices == std::vector<std::string>{"gpu"} && b.mappings.size() == 1)
            ++attachedToMine;
        if (b.attachedDevices.empty() && b.mappings.empty() && b.cpuAccessDepth == 0)
            ++bare;
    }
    EXPECT_EQ(attachedToMine, 5u);
    EXPECT_EQ(bare, 1u) << "the shared buffer lost the victim's attachment, mapping and CPU access";
    // Our client is untouched and still works.
    for (uint64_t att : myAttachments) {
        auto m = other->map(att, DmaDirection::ToDevice);
        ASSERT_TRUE(m) << m.error().toString();
        ASSERT_TRUE(other->unmap(m->id));
    }
    auto stats = observer->stats();
    ASSERT_TRUE(stats);
    EXPECT_TRUE(stats->lifetimeBugs.empty()) << stats->lifetimeBugs.front();

    shared.reset();
    EXPECT_EQ(baselineOf(*observer), withMine);
    other.reset();
    mine.clear();
    EXPECT_EQ(baselineOf(*observer), baseline);
}

TEST(MultiProcess, ADaemonStopsCleanlyOnSigtermAndSigint) {
    for (int sig : {SIGTERM, SIGINT}) {
        SCOPED_TRACE(sig);
        test::DaemonProcess daemon;
        auto session = daemon.connect();
        ASSERT_NE(session, nullptr);
        auto fd = session->allocate("system", 4096);
        ASSERT_TRUE(fd);
        const int status = daemon.stop(sig);
        EXPECT_EQ(status, 0);
        auto after = session->heaps();
        ASSERT_FALSE(after);
        EXPECT_EQ(after.error().code(), ECONNRESET);
        // The buffer is still memory this process holds.
        test::Mapped m(fd->get(), 4096);
        EXPECT_TRUE(m.valid());
    }
}

TEST(MultiProcess, ADaemonBindsItsSocketNotifiesReadinessAndRemovesTheSocketWhenStopped) {
    std::string path = test::testSocketPath("bound");
    // It binds --socket itself and says READY=1 on NOTIFY_SOCKET (the launcher waits for that, bounded).
    test::DaemonProcess daemon({.start = test::DaemonStart::Notified, .logLevel = "error", .socketPath = path});
    ASSERT_EQ(daemon.readiness(), "READY=1");
    auto session = Session::connect(path);
    ASSERT_TRUE(session) << session.error().toString();
    EXPECT_TRUE((*session)->allocate("system", 4096));

    // A second daemon on the same socket refuses to start.
    EXPECT_EQ(test::runDaemon({"--socket", path, "--log-level", "error"}).exitCode, 1);

    ::kill(daemon.pid(), SIGTERM);
    EXPECT_EQ(daemon.nextNotification(), "STOPPING=1");
    EXPECT_EQ(daemon.wait(), 0);
    EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the socket file is removed";
}

} // namespace
} // namespace cenalloc

namespace cenalloc {
namespace {

/// Exit status of cenallocd started with @p fds as fds 3, 4, ... and
/// LISTEN_FDS/LISTEN_PID saying so.
int runActivated(std::vector<int> fds, const std::string& socketPath) {
    test::ProcessOptions options;
    options.passFds = std::move(fds);
    options.listenFds = true;
    options.output = test::Output::Inherit;
    return test::runDaemon({"--log-level", "error", "--socket", socketPath}, std::move(options)).exitCode;
}

TEST(SocketActivation, AnythingButOneListeningSeqpacketSocketIsRefused) {
    std::string path = test::testSocketPath("unused");
    auto listening = [](int type) {
        int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX; // autobind to an abstract address
        ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(sa_family_t));
        ::listen(fd, 1);
        return UniqueFd(fd);
    };
    UniqueFd stream = listening(SOCK_STREAM);
    UniqueFd a = listening(SOCK_SEQPACKET);
    UniqueFd b = listening(SOCK_SEQPACKET);
    UniqueFd unlistened(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd readEnd(p[0]), writeEnd(p[1]);
    EXPECT_EQ(runActivated({stream.get()}, path), 1) << "a stream socket";
    EXPECT_EQ(runActivated({unlistened.get()}, path), 1) << "not listening";
    EXPECT_EQ(runActivated({readEnd.get()}, path), 1) << "not a socket";
    EXPECT_EQ(runActivated({a.get(), b.get()}, path), 1) << "two sockets";
    EXPECT_NE(::access(path.c_str(), F_OK), 0) << "it never fell back to binding --socket";
}

} // namespace
} // namespace cenalloc

namespace cenalloc {
namespace {

TEST(DaemonStartup, ABadConfigurationIsRefusedNamingFileAndLine) {
    std::string config = test::testSocketPath("config") + ".yaml";
    FILE* f = std::fopen(config.c_str(), "w");
    std::fputs("quota:\n  bytes: 1M\nheaps:\n  - name: no-such-heap\n", f);
    std::fclose(f);
    std::string socket = test::testSocketPath("never");
    test::ProcessRun run = test::runDaemon({"--config", config, "--socket", socket});
    const std::string& output = run.err;
    EXPECT_EQ(run.exitCode, 1);
    EXPECT_NE(output.find(config + ":4: no heap 'no-such-heap' on platform 'cenalloc-reference'"), std::string::npos)
        << output;
    EXPECT_NE(::access(socket.c_str(), F_OK), 0);
    ::unlink(config.c_str());
}

} // namespace
} // namespace cenalloc
