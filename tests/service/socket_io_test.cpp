// SPDX-License-Identifier: MIT
// Tests of what a hang-up finds queued on a connection: datagrams without fds are discarded, whatever the peer did.
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "service/socket_io.h"
#include "support/wait.h"

namespace cenalloc {
namespace {

struct Pair {
    UniqueFd client, daemon;
};

Pair seqpacketPair() {
    int fds[2] = {-1, -1};
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0) << std::strerror(errno);
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

const std::vector<std::byte> kRequest(16, std::byte{0x5a});

// The daemon side after the hang-up: is anything left to receive?
bool drained(const UniqueFd& daemon) {
    std::array<std::byte, 64> byte{};
    return ::recv(daemon.get(), byte.data(), byte.size(), MSG_DONTWAIT) == 0;
}

TEST(DiscardQueued, DatagramsOfAPeerThatClosedWithRepliesUnreadAreDiscarded) {
    // The client sent requests, left the reply to the first unread and
    // closed: the kernel reports ECONNRESET to the next receive here, once.
    Pair p = seqpacketPair();
    ASSERT_TRUE(bool(sendDatagram(p.client, kRequest)));
    ASSERT_TRUE(bool(sendDatagram(p.client, {})));
    ASSERT_TRUE(bool(sendDatagram(p.client, kRequest)));
    ASSERT_TRUE(bool(sendDatagram(p.daemon, kRequest))) << "a reply it never reads";
    p.client.reset();
    ASSERT_EQ(::shutdown(p.daemon.get(), SHUT_RDWR), 0);
    EXPECT_TRUE(discardQueuedWithoutFds(p.daemon)) << "nothing queued carries fds: the socket closes at once";
    EXPECT_TRUE(drained(p.daemon));
}

TEST(DiscardQueued, AResetWithNothingQueuedLeavesNothingToClose) {
    // The reset alone, the client's requests all received already.
    Pair p = seqpacketPair();
    ASSERT_TRUE(bool(sendDatagram(p.daemon, kRequest)));
    p.client.reset();
    ASSERT_EQ(::shutdown(p.daemon.get(), SHUT_RDWR), 0);
    EXPECT_TRUE(discardQueuedWithoutFds(p.daemon));
}

TEST(DiscardQueued, FdsQueuedBehindTheResetStayForTheCloser) {
    // The same reset, and a datagram with an fd behind one without: the
    // first goes, the one with the fd stays queued (its close is not this
    // thread's to make), and the pipe is still held by it.
    int pipeFds[2] = {-1, -1};
    ASSERT_EQ(::pipe2(pipeFds, O_CLOEXEC), 0);
    UniqueFd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
    Pair p = seqpacketPair();
    ASSERT_TRUE(bool(sendDatagram(p.client, kRequest)));
    const std::vector<int> sent{readEnd.get()};
    ASSERT_TRUE(bool(sendDatagram(p.client, kRequest, sent)));
    ASSERT_TRUE(bool(sendDatagram(p.daemon, kRequest)));
    p.client.reset();
    readEnd.reset();
    ASSERT_EQ(::shutdown(p.daemon.get(), SHUT_RDWR), 0);
    EXPECT_FALSE(discardQueuedWithoutFds(p.daemon));
    EXPECT_TRUE(nextDatagramCarriesFds(p.daemon)) << "the datagram with the fd is still queued";
    EXPECT_FALSE(test::waitForEvents(writeEnd, 0, std::chrono::milliseconds(0))) << "its read end is still open";
    p.daemon.reset();
    EXPECT_TRUE(test::waitForEvents(writeEnd, 0)) << "closing the socket released it";
}

} // namespace
} // namespace cenalloc
