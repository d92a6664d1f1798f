// SPDX-License-Identifier: MIT
// Tests of the daemon's workers: clients that send nothing or take no replies stall nobody, and are dropped in time.
#include <cerrno>
#include <chrono>
#include <cstring>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/session.h>

#include "service/helpers.h"
#include "service/protocol.h"
#include "service/socket_io.h"

namespace cenalloc {
namespace {

using namespace std::chrono_literals;

UniqueFd connectRaw(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
    return fd;
}

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

/// Wait (up to 20 s) until @p done holds; false if it never did.
template <typename Done> bool eventually(Done done) {
    for (auto until = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < until;) {
        if (done())
            return true;
        std::this_thread::sleep_for(5ms);
    }
    return done();
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
    EXPECT_TRUE(eventually([&] { return daemon.server().connectionCount() == 0; }));
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
    test::InProcessDaemon daemon(oneWorker(1000));
    ASSERT_TRUE(daemon.ok());
    auto session = daemon.connect();
    ASSERT_NE(session, nullptr);
    const test::Baseline before = test::baselineOf(*session);

    // Requests, never a reply read: a few allocations (their replies carry
    // fds) and then listings, until the daemon stops reading them because
    // the client's socket holds all the replies it can.
    UniqueFd hostile = connectRaw(daemon.path());
    uint32_t sequence = 0;
    bool stalled = false;
    while (!stalled && sequence < 100'000) {
        ++sequence;
        auto bytes = sequence <= 4 ? allocateRequest(sequence) : request(wire::Op::ListHeaps, sequence);
        if (::send(hostile.get(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
            continue;
        ASSERT_EQ(errno, EAGAIN) << std::strerror(errno);
        // Full: the daemon is slow, or has stopped reading from us. Only
        // the second keeps us from writing for a while.
        pollfd p{hostile.get(), POLLOUT, 0};
        stalled = ::poll(&p, 1, 200) == 0;
        --sequence;
    }
    ASSERT_TRUE(stalled) << "the daemon kept reading requests whose replies nobody takes";

    // The worker the hostile client shares serves others meanwhile.
    useTheDaemon(*session);
    EXPECT_EQ(daemon.server().connectionCount(), 2u) << "dropped before its send timeout";

    // Past the timeout it is dropped; it finds what it was sent, then the end.
    EXPECT_TRUE(eventually([&] { return daemon.server().connectionCount() == 1; }));
    // A daemon that closes with requests of ours unread makes the first
    // read report ECONNRESET; the replies are still there after it.
    bool ended = false;
    int fds = 0;
    auto until = std::chrono::steady_clock::now() + 20s;
    while (!ended && std::chrono::steady_clock::now() < until) {
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
            pollfd p{hostile.get(), POLLIN, 0};
            ::poll(&p, 1, 100);
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
    EXPECT_EQ(fds, 4) << "every allocation it asked for arrived, the rest were listings";
    hostile.reset();
    EXPECT_EQ(test::baselineOf(*session), before) << "its buffers went with it";
}

TEST(Workers, RepliesLargerThanTheSocketTakesArriveWhole) {
    // A reply of several fragments (bufinfo of many buffers) to a client
    // that reads slowly: the daemon queues what does not fit and sends it
    // as the client reads, in order.
    test::InProcessDaemon daemon(oneWorker());
    ASSERT_TRUE(daemon.ok());
    auto session = daemon.connect();
    ASSERT_NE(session, nullptr);
    // Held by mappings, not fds: thousands of fds could pass RLIMIT_NOFILE.
    std::vector<std::unique_ptr<test::Mapped>> held;
    for (int i = 0; i < 6000; ++i) {
        auto fd = session->allocate("system", 4096);
        ASSERT_TRUE(fd) << fd.error().toString();
        held.push_back(std::make_unique<test::Mapped>(fd->get(), 4096));
        ASSERT_TRUE(held.back()->valid());
    }
    UniqueFd reader = connectRaw(daemon.path());
    int small = 4096; // the daemon's send buffer towards this client (SO_RCVBUF is ignored for Unix sockets)
    ::setsockopt(reader.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    auto bytes = request(wire::Op::Bufinfo, 7);
    ASSERT_EQ(::send(reader.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
    size_t fragments = 0;
    for (;;) {
        std::this_thread::sleep_for(1ms); // slowly
        auto reply = receiveDatagram(reader, wire::kMaxFragmentSize);
        ASSERT_TRUE(reply) << reply.error().toString();
        wire::MessageHeader h;
        ASSERT_GE(reply->bytes.size(), sizeof h);
        std::memcpy(&h, reply->bytes.data(), sizeof h);
        EXPECT_EQ(h.sequence, 7u);
        EXPECT_EQ(h.error, 0);
        ++fragments;
        if (!(h.flags & wire::kFlagMore))
            break;
    }
    EXPECT_GT(fragments, 4u) << "more than the daemon's socket buffer holds at once";
    // And the connection still works, in order.
    bytes = request(wire::Op::ListHeaps, 8);
    ASSERT_EQ(::send(reader.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
    auto reply = receiveDatagram(reader, wire::kMaxFragmentSize);
    ASSERT_TRUE(reply);
    wire::MessageHeader h;
    std::memcpy(&h, reply->bytes.data(), sizeof h);
    EXPECT_EQ(h.sequence, 8u);
}

} // namespace
} // namespace cenalloc
