// SPDX-License-Identifier: MIT
// Tests of the daemon's workers: clients that send nothing or take no replies stall nobody, and are dropped in time.
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <span>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/session.h>
#include <cenalloc/units.h>

#include "service/operations.h"
#include "service/protocol.h"
#include "service/socket_io.h"
#include "support/daemon.h"
#include "support/fds.h"
#include "support/service.h"
#include "support/sockets.h"
#include "support/wait.h"

namespace cenalloc {
namespace {

using namespace std::chrono_literals;

using test::connectRaw;

std::vector<std::byte> request(wire::Op op, uint32_t sequence) {
    wire::MessageHeader h = wire::makeHeader(op, 0, 0, sequence);
    std::vector<std::byte> bytes(sizeof h);
    std::memcpy(bytes.data(), &h, sizeof h);
    return bytes;
}

std::vector<std::byte> allocateRequest(uint32_t sequence) {
    wire::AllocateRequest r{};
    r.length = 4096;
    r.fdFlags = O_CLOEXEC | O_RDWR;
    std::strncpy(r.heap, "system", sizeof r.heap);
    wire::MessageHeader h = wire::makeHeader(wire::Op::Allocate, sizeof r, 0, sequence);
    std::vector<std::byte> bytes(sizeof h + sizeof r);
    std::memcpy(bytes.data(), &h, sizeof h);
    std::memcpy(bytes.data() + sizeof h, &r, sizeof r);
    return bytes;
}

/// A client of the daemon that allocates, maps and frees: the work that
/// must go on whatever another client does.
void useTheDaemon(Session& session) {
    for (int i = 0; i < 50; ++i) {
        auto fd = session.allocate("system", 64 * 1024);
        ASSERT_TRUE(fd) << fd.error().toString();
        test::Mapped map(fd->get(), 64 * 1024);
        ASSERT_TRUE(map.valid());
        map.bytes()[0] = static_cast<unsigned char>(i);
    }
    ASSERT_TRUE(session.heaps());
}

ServerOptions oneWorker(int sendTimeoutMs = 5000) {
    ServerOptions options;
    options.config.workers = 1; // everybody shares it: the harshest case
    options.sendTimeoutMs = sendTimeoutMs;
    return options;
}

TEST(Workers, TheConfigurationSetsHowManyAndTheDefaultIsOnePerCpuUpToFour) {
    test::InProcessDaemon one(oneWorker());
    ASSERT_TRUE(one.ok());
    EXPECT_EQ(one.server().workerCount(), 1u);
    ServerOptions three;
    three.config.workers = 3;
    test::InProcessDaemon daemon(std::move(three));
    ASSERT_TRUE(daemon.ok());
    EXPECT_EQ(daemon.server().workerCount(), 3u);
    test::InProcessDaemon byDefault;
    ASSERT_TRUE(byDefault.ok());
    EXPECT_EQ(byDefault.server().workerCount(), std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4));
}

TEST(Workers, ManyClientsOnOneWorkerAreAllServed) {
    test::InProcessDaemon daemon(oneWorker());
    ASSERT_TRUE(daemon.ok());
    std::vector<std::unique_ptr<Session>> sessions;
    for (int i = 0; i < 6; ++i)
        sessions.push_back(daemon.connect());
    std::vector<std::thread> threads;
    for (auto& s : sessions)
        threads.emplace_back([&s] { useTheDaemon(*s); });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(daemon.server().connectionCount(), 6u);
    sessions.clear();
    // The server sees each hang-up in its own time and logs it: checked at each line it logs.
    EXPECT_TRUE(daemon.waitUntil([&] { return daemon.server().connectionCount() == 0; }));
}

TEST(Workers, ClientsThatSendNothingStallNobody) {
    test::InProcessDaemon daemon(oneWorker());
    ASSERT_TRUE(daemon.ok());
    std::vector<UniqueFd> silent;
    for (int i = 0; i < 8; ++i)
        silent.push_back(connectRaw(daemon.path()));
    auto session = daemon.connect();
    ASSERT_NE(session, nullptr);
    useTheDaemon(*session);
    EXPECT_EQ(daemon.server().connectionCount(), 9u) << "the silent ones are still connected, and harmless";
}

TEST(Workers, AClientThatTakesNoRepliesStallsNobodyAndIsDroppedAfterTheSendTimeout) {
    // The daemon says when it stops reading from a client (its log, at
    // debug): how long our own sends block says nothing, a loaded daemon
    // reads slowly too.
    std::atomic<bool> stalled{false};
    ServerOptions options = oneWorker(2000);
    options.logLevel = LogLevel::Debug;
    options.log = [&stalled](LogLevel, const std::string& message) {
        if (message.find("not taking its replies") != std::string::npos)
            stalled = true;
    };
    test::InProcessDaemon daemon(std::move(options));
    ASSERT_TRUE(daemon.ok());
    auto session = daemon.connect();
    ASSERT_NE(session, nullptr);
    const test::Baseline before = test::baselineOf(*session);

    // Allocations, never a reply read, until the daemon stops reading them
    // because the client's socket holds all the replies it can: the one it
    // could not send, with its buffer's fd, waits in the daemon.
    UniqueFd hostile = connectRaw(daemon.path());
    uint32_t sequence = 0;
    while (!stalled && sequence < 100'000) {
        ++sequence;
        auto bytes = allocateRequest(sequence);
        if (::send(hostile.get(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
            continue;
        ASSERT_EQ(errno, EAGAIN) << std::strerror(errno);
        --sequence;
        // Full: the daemon is slow, or has stopped reading from us.
        pollfd p{hostile.get(), POLLOUT, 0};
        (void)::poll(&p, 1, 200);
    }
    ASSERT_TRUE(stalled) << "the daemon kept reading requests whose replies nobody takes";

    // The worker the hostile client shares serves others meanwhile.
    useTheDaemon(*session);
    EXPECT_EQ(daemon.server().connectionCount(), 2u) << "dropped before its send timeout";

    // Past the timeout it is dropped (and the server logs it); it finds what it was sent, then the end.
    EXPECT_TRUE(daemon.waitUntil([&] { return daemon.server().connectionCount() == 1; }));
    // A daemon that closes with requests of ours unread makes the first
    // read report ECONNRESET; the replies are still there after it.
    bool ended = false;
    int fds = 0;
    while (!ended) {
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
        char buffer[wire::kMaxFragmentSize];
        iovec iov{buffer, sizeof buffer};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ssize_t n = ::recvmsg(hostile.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EAGAIN) {
            if (!test::waitReadable(hostile))
                break; // bounded: a daemon that never hangs up fails the test below
            continue;
        }
        ASSERT_TRUE(n >= 0 || errno == ECONNRESET) << std::strerror(errno);
        ended = n == 0;
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); n > 0 && c; c = CMSG_NXTHDR(&msg, c)) {
            size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < count; ++i) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c) + i * sizeof fd, sizeof fd);
                ::close(fd);
                ++fds;
            }
        }
    }
    EXPECT_TRUE(ended) << "never disconnected";
    EXPECT_GT(fds, 0) << "the replies it was sent before it was dropped";
    hostile.reset();
    EXPECT_EQ(test::baselineOf(*session), before) << "its buffers went with it, the queued one too";
}

using test::LingeringSocket;

/// Send @p op with @p fds attached, and read the reply's errno; -1 when
/// the daemon hung up instead.
int sendWithFds(int socket, wire::Op op, const std::vector<int>& fds, uint32_t sequence) {
    return test::rawRequest(BorrowedFd(socket), op, {}, fds, sequence);
}

TEST(Workers, AnFdWhoseCloseBlocksStallsNoWorkerAndAUidThatSendsManyIsCutOff) {
    test::InProcessDaemon daemon(oneWorker());
    ASSERT_TRUE(daemon.ok());
    auto session = daemon.connect();
    ASSERT_NE(session, nullptr);

    // The hostile client sends the socket and drops its own copy. Only if
    // the daemon's close is the last does it block, so the client sends it
    // as the first thing on a new connection, which the daemon has yet to
    // accept and hand to a worker, and closes its copy on a thread of its
    // own: returning at once, that close was not the last; blocking, it
    // was (the daemon was quicker), and the client tries again.
    UniqueFd hostile;
    std::unique_ptr<LingeringSocket> lingering;
    uint32_t sequence = 1;
    bool daemonHoldsTheLast = false;
    for (int attempt = 0; !daemonHoldsTheLast && attempt < 5; ++attempt, ++sequence) {
        lingering = std::make_unique<LingeringSocket>();
        hostile = connectRaw(daemon.path());
        wire::MessageHeader h = wire::makeHeader(wire::Op::Import, 0, 1, sequence);
        int fd = lingering->socket.get();
        std::atomic<bool> sent{false};
        test::Event closed;
        std::thread close([&] { // started first, so that it closes the moment the fd is on its way
            while (!sent)
                std::this_thread::yield();
            lingering->socket.reset();
            closed.notify();
        });
        bool sentOk = bool(sendDatagram(hostile, std::as_bytes(std::span(&h, 1)), std::span<const int>(&fd, 1)));
        sent = true;
        // A close that is not the last returns at once; the last one never
        // does until drain(). The bound only tells the two apart.
        daemonHoldsTheLast = closed.wait(2s);
        if (!daemonHoldsTheLast)
            lingering->drain(); // let our close finish
        close.join();
        ASSERT_TRUE(sentOk);
        timeval patience{20, 0}; // a worker that waits for the close would never answer: fail, not hang
        ::setsockopt(hostile.get(), SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
        auto reply = receiveDatagram(hostile, wire::kMaxFragmentSize);
        if (!reply)
            lingering->drain(); // let the worker go
        ASSERT_TRUE(reply) << "no answer: " << reply.error().toString();
        std::memcpy(&h, reply->bytes.data(), sizeof h);
        EXPECT_EQ(h.error, EBADF) << "a socket is not a buffer";
    }
    ASSERT_TRUE(daemonHoldsTheLast) << "the daemon was quicker every time";

    // The worker is free: everyone is served.
    test::Event served;
    std::thread user([&] {
        useTheDaemon(*session);
        served.notify();
    });
    const bool free = served.wait();
    if (!free)
        lingering->drain(); // let the worker go
    user.join();
    ASSERT_TRUE(free) << "a worker waited for a client's fd to close";

    // Fds that are not buffers pile up behind the blocked close, charged
    // to the uid; past 64 its connection is cut and new ones refused.
    int pipeFds[2];
    ASSERT_EQ(::pipe2(pipeFds, O_CLOEXEC), 0);
    UniqueFd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
    std::vector<int> eight(8, readEnd.get());
    int error = 0;
    const uint32_t first = sequence;
    for (; sequence < first + 18 && error >= 0; ++sequence) {
        error = sendWithFds(hostile.get(), wire::Op::Import, eight, sequence);
        if (error >= 0) {
            EXPECT_EQ(error, EINVAL) << "Import takes one fd";
        }
    }
    EXPECT_EQ(error, -1) << "never cut off";
    EXPECT_EQ(sequence - first, 8u) << "cut off (no reply) by the request that made 1 + 8 x 8 fds wait to be closed";
    auto refused = Session::connect(daemon.path());
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), EAGAIN) << refused.error().toString();
    useTheDaemon(*session); // a connection of the same uid that behaves goes on

    // Once the close can finish, everything queued behind it is closed and
    // the uid is welcome again. The closer closes a uid's fds in order, the
    // pipe's read end last: once no reader is left (and ours is gone too),
    // the write end reports POLLERR, and at most that one close is not
    // counted as finished yet.
    lingering->drain();
    readEnd.reset();
    EXPECT_TRUE(test::waitForEvents(writeEnd, 0)) << "the daemon never closed the fds queued behind the blocked one";
    EXPECT_TRUE(bool(Session::connect(daemon.path())));
}

/// Allocate @p count buffers of a page, held by mappings (in @p held), not
/// fds: thousands of fds could pass RLIMIT_NOFILE.
void hold(Session& session, size_t count, std::vector<std::unique_ptr<test::Mapped>>& held) {
    for (size_t i = 0; i < count; ++i) {
        auto fd = session.allocate("system", 4096);
        ASSERT_TRUE(fd) << fd.error().toString();
        held.push_back(std::make_unique<test::Mapped>(fd->get(), 4096));
        ASSERT_TRUE(held.back()->valid());
    }
}

/// A new connection that has asked for bufinfo and read nothing yet.
UniqueFd askBufinfo(const std::string& path) {
    UniqueFd reader = connectRaw(path);
    timeval patience{20, 0}; // a reply that never comes fails the test, not hangs it
    ::setsockopt(reader.get(), SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
    auto bytes = request(wire::Op::Bufinfo, 7);
    EXPECT_EQ(::send(reader.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
    return reader;
}

/// Read a reply of any number of fragments: its payload's size, or -1 when
/// the connection ended before its last fragment.
ssize_t replyBytes(BorrowedFd socket) {
    size_t total = 0;
    for (;;) {
        auto reply = receiveDatagram(socket, wire::kMaxFragmentSize);
        wire::MessageHeader h;
        if (!reply || reply->bytes.size() < sizeof h)
            return -1;
        std::memcpy(&h, reply->bytes.data(), sizeof h);
        total += reply->bytes.size() - sizeof h;
        if (!(h.flags & wire::kFlagMore))
            return static_cast<ssize_t>(total);
    }
}

TEST(Workers, RepliesAUidLeavesUntakenAreBoundedInBytesOverAllItsConnections) {
    // One reply per connection waits in the daemon, but a reply can be
    // large (bufinfo) and a uid has many connections: what they all leave
    // untaken is bounded, past which the connection that adds to it goes.
    constexpr size_t kBound = 1 * MiB;
    ServerOptions options = oneWorker(600'000); // not the send timeout: the bound
    options.maxQueuedBytesPerUid = kBound;
    test::InProcessDaemon daemon(std::move(options));
    ASSERT_TRUE(daemon.ok());
    auto session = daemon.connect();
    ASSERT_NE(session, nullptr);
    // Bufinfo of about 3/4 of the bound: more than the socket buffer
    // (wmem_default, some 200 KiB) takes, so most of it waits, and two of
    // them do not fit the bound.
    std::vector<std::unique_ptr<test::Mapped>> held;
    hold(*session, 100, held);
    UniqueFd probe = askBufinfo(daemon.path());
    const ssize_t hundred = replyBytes(probe);
    ASSERT_GT(hundred, 0);
    hold(*session, kBound * 3 / 4 / (static_cast<size_t>(hundred) / 100) - 100, held);

    UniqueFd first = askBufinfo(daemon.path());
    ASSERT_TRUE(session->heaps()); // served after it, on the one worker
    UniqueFd second = askBufinfo(daemon.path());
    // Without reading (the daemon's socket buffer stays full): a hang-up.
    EXPECT_TRUE(test::waitForEvents(second, 0)) << "its reply would have passed the bound";
    EXPECT_EQ(replyBytes(second), -1) << "the end of it, no reply or part of one";
    const ssize_t whole = replyBytes(first);
    EXPECT_GT(whole, static_cast<ssize_t>(kBound / 2));
    EXPECT_LT(whole, static_cast<ssize_t>(kBound));
    // Once taken, the bound is free again.
    UniqueFd third = askBufinfo(daemon.path());
    ASSERT_TRUE(session->heaps());
    EXPECT_EQ(replyBytes(third), whole);
}

TEST(Workers, RepliesLargerThanTheSocketTakesArriveWholeAndInOrder) {
    // A reply of many fragments (bufinfo of many buffers), more than the
    // daemon's socket buffer holds, to a client that reads slowly: the
    // daemon queues what does not fit and sends it as the client reads.
    test::InProcessDaemon daemon(oneWorker());
    ASSERT_TRUE(daemon.ok());
    auto session = daemon.connect();
    ASSERT_NE(session, nullptr);
    constexpr size_t kBuffers = 6000;
    std::vector<std::unique_ptr<test::Mapped>> held;
    hold(*session, kBuffers, held);
    UniqueFd reader = askBufinfo(daemon.path());
    std::vector<std::byte> payload;
    size_t fragments = 0;
    for (;;) {
        // Slowly: one fragment per round trip of another client, which
        // the one worker serves in turn.
        ASSERT_TRUE(session->heaps());
        auto reply = receiveDatagram(reader, wire::kMaxFragmentSize);
        ASSERT_TRUE(reply) << reply.error().toString();
        wire::MessageHeader h;
        ASSERT_GE(reply->bytes.size(), sizeof h);
        std::memcpy(&h, reply->bytes.data(), sizeof h);
        ASSERT_EQ(h.sequence, 7u);
        ASSERT_EQ(h.error, 0);
        ASSERT_EQ(h.payloadSize, reply->bytes.size() - sizeof h);
        payload.insert(payload.end(), reply->bytes.begin() + sizeof h, reply->bytes.end());
        ++fragments;
        if (!(h.flags & wire::kFlagMore))
            break;
    }
    // The daemon could not have sent it in one go: the queue was used.
    FILE* f = std::fopen("/proc/sys/net/core/wmem_default", "r");
    ASSERT_NE(f, nullptr);
    size_t socketBuffer = 0;
    ASSERT_EQ(std::fscanf(f, "%zu", &socketBuffer), 1);
    std::fclose(f);
    EXPECT_GT(payload.size(), 2 * socketBuffer) << "make the reply bigger: it fit the daemon's socket";
    EXPECT_GT(fragments, 4u);
    // Every fragment there once and in order: the whole decodes.
    wire::Reader r(payload);
    auto prefix = r.get<wire::ReplyPrefix>();
    ASSERT_TRUE(prefix);
    ASSERT_TRUE(r.getString(prefix->messageLength));
    auto infos = wire::decode<std::vector<BufferInfo>>(r);
    ASSERT_TRUE(infos) << infos.error().toString();
    EXPECT_EQ(infos->size(), kBuffers);
    EXPECT_EQ(r.remaining(), 0u);
    // And the connection goes on, in order.
    auto bytes = request(wire::Op::ListHeaps, 8);
    ASSERT_EQ(::send(reader.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
    auto reply = receiveDatagram(reader, wire::kMaxFragmentSize);
    ASSERT_TRUE(reply) << reply.error().toString();
    wire::MessageHeader h;
    std::memcpy(&h, reply->bytes.data(), sizeof h);
    EXPECT_EQ(h.sequence, 8u);
    EXPECT_EQ(h.error, 0);
}

} // namespace
} // namespace cenalloc
