// SPDX-License-Identifier: MIT
// Tests of fds a client leaves for the kernel to release in the daemon: those queued on a connection the daemon
// drops or refuses, and those beyond what a request may carry. Their last reference drops in whichever thread makes
// the kernel let go of them, and a TCP socket with SO_LINGER then blocks that thread: never a worker, nor the
// thread that accepts.
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <sys/mman.h>
#include <sys/socket.h>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/session.h>

#include "service/protocol.h"
#include "service/server.h"
#include "service/socket_io.h"
#include "support/daemon.h"
#include "support/fds.h"
#include "support/service.h"
#include "support/sockets.h"
#include "support/wait.h"

namespace cenalloc {
namespace {

using namespace std::chrono_literals;
using test::LingeringSocket;

std::vector<std::byte> header(wire::Op op, uint16_t fdCount, uint32_t sequence) {
    wire::MessageHeader h = wire::makeHeader(op, 0, fdCount, sequence);
    std::vector<std::byte> bytes(sizeof h);
    std::memcpy(bytes.data(), &h, sizeof h);
    return bytes;
}

/// A daemon that takes its listening socket ready made, as systemd hands
/// one over: a client can connect and queue datagrams before the daemon
/// runs, so that what the daemon finds when it accepts is certain.
struct Scene {
    std::string path = test::testSocketPath("queued-fds");
    UniqueFd listener = test::listenSeqpacket(path);
    LingeringSocket lingering;
    std::unique_ptr<test::InProcessDaemon> daemon;

    ~Scene() {
        daemon.reset();
        ::unlink(path.c_str());
    }

    /// A connection made now, with @p fds attached to a request header
    /// (@p op) queued on it, after @p before (datagrams without fds). The
    /// lingering socket's last reference is then the one in flight, so
    /// whoever releases it blocks until drain().
    UniqueFd queueLingering(wire::Op op, std::vector<int> fds, const std::vector<wire::Op>& before = {}) {
        UniqueFd hostile = test::connectRaw(path);
        uint32_t sequence = 1;
        for (wire::Op earlier : before)
            EXPECT_TRUE(bool(sendDatagram(hostile, header(earlier, 0, sequence++), {})));
        fds.push_back(lingering.socket.get());
        EXPECT_TRUE(
            bool(sendDatagram(hostile, header(op, static_cast<uint16_t>(fds.size()), sequence), std::span(fds))));
        lingering.socket.reset(); // returns at once: the datagram holds it
        return hostile;
    }

    /// Start the daemon on the listening socket, with one worker.
    bool start(ServiceConfig config = {}, int sendTimeoutMs = 5000) {
        ServerOptions options;
        options.sendTimeoutMs = sendTimeoutMs;
        options.listenFd = std::move(listener);
        options.config = std::move(config);
        options.config.workers = 1; // everybody shares it
        daemon = std::make_unique<test::InProcessDaemon>(std::move(options));
        return daemon->ok();
    }

    /// Whether @p work finished within a bound. When it did not, a thread
    /// of the daemon waits for the lingering socket's close: the socket is
    /// drained, so that the thread (and @p work) can finish.
    bool finishes(const std::function<void()>& work) {
        test::Event done;
        std::thread worker([&] {
            work();
            done.notify();
        });
        const bool finished = done.wait(5s);
        if (!finished)
            lingering.drain();
        worker.join();
        return finished;
    }
};

/// The errno of the next reply on @p socket; -1 when none comes (bounded).
int replyError(BorrowedFd socket) {
    timeval patience{20, 0};
    ::setsockopt(socket.get(), SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
    auto reply = receiveDatagram(socket, wire::kMaxFragmentSize);
    wire::MessageHeader h{};
    if (!reply || reply->bytes.size() < sizeof h)
        return -1;
    std::memcpy(&h, reply->bytes.data(), sizeof h);
    return h.error;
}

void allocateAndMap(Session& session) {
    for (int i = 0; i < 10; ++i) {
        auto fd = session.allocate("system", 64 * 1024);
        ASSERT_TRUE(fd) << fd.error().toString();
        void* p = ::mmap(nullptr, 64 * 1024, PROT_READ | PROT_WRITE, MAP_SHARED, fd->get(), 0);
        ASSERT_NE(p, MAP_FAILED);
        static_cast<unsigned char*>(p)[0] = static_cast<unsigned char>(i);
        ::munmap(p, 64 * 1024);
    }
}

// The client asks for something, hangs up before the reply, and leaves an
// fd queued behind its request: the daemon's reply fails, it drops the
// connection, and closing its socket releases what is queued on it.
TEST(QueuedFds, OnAConnectionAWorkerDropsAreNotReleasedOnTheWorker) {
    Scene scene;
    UniqueFd hostile = scene.queueLingering(wire::Op::Import, {}, {wire::Op::ListHeaps});
    hostile.reset();
    ASSERT_TRUE(scene.start());
    EXPECT_TRUE(scene.finishes([&] {
        auto connected = Session::connect(scene.path);
        ASSERT_TRUE(connected) << connected.error().toString();
        allocateAndMap(**connected);
    })) << "the only worker waits for a close the client controls";
    EXPECT_TRUE(scene.lingering.drain()) << "the daemon never let go of the socket";
}

// A client refused at accept (here: its uid may not connect) may have sent
// requests with fds already: closing its socket releases them.
TEST(QueuedFds, OnAConnectionTheDaemonRefusesAreNotReleasedByTheThreadThatAccepts) {
    Scene scene;
    UniqueFd hostile = scene.queueLingering(wire::Op::Import, {});
    ServiceConfig config;
    config.maxClientsPerUid = 0;
    ASSERT_TRUE(scene.start(config));
    EXPECT_TRUE(scene.finishes([&] {
        auto refused = Session::connect(scene.path);
        ASSERT_FALSE(refused);
        EXPECT_EQ(refused.error().code(), EAGAIN) << refused.error().toString();
    })) << "the thread that accepts waits for a close the client controls";
    hostile.reset();
    EXPECT_TRUE(scene.lingering.drain()) << "the daemon never let go of the socket";
}

// SCM_RIGHTS carries up to 253 fds (SCM_MAX_FD, include/net/scm.h); those
// that do not fit the receiver's control buffer the kernel releases in
// the receiving thread (scm_detach_fds, then __scm_destroy in
// net/core/scm.c), before recvmsg returns to it.
TEST(QueuedFds, BeyondWhatARequestMayCarryAreNotReleasedOnTheWorker) {
    Scene scene;
    UniqueFd memfd(::memfd_create("not-a-buffer", MFD_CLOEXEC));
    ASSERT_TRUE(memfd.valid());
    std::vector<int> fds(16, memfd.get()); // the lingering socket comes 17th
    UniqueFd hostile = scene.queueLingering(wire::Op::Import, fds);
    ASSERT_TRUE(scene.start());
    int refused = 0, next = 0;
    EXPECT_TRUE(scene.finishes([&] {
        refused = replyError(hostile);
        next = test::rawRequest(hostile, wire::Op::ListHeaps, {}, {}, 2);
        auto connected = Session::connect(scene.path);
        ASSERT_TRUE(connected) << connected.error().toString();
        allocateAndMap(**connected);
    })) << "the only worker waits for a close the client controls";
    EXPECT_EQ(refused, EINVAL) << "import takes one fd";
    EXPECT_EQ(next, 0) << "the connection goes on after its bad request";
    EXPECT_TRUE(scene.lingering.drain()) << "the daemon never let go of the socket";
}

// A uid whose fds the closer cannot get rid of (its close blocks) is cut
// off at 64 of them; a request may carry 253, so a connection of that uid
// that sends more is dropped before they are received: none is the
// daemon's to hold. Its connections that send none go on.
TEST(QueuedFds, AUidAtItsBoundOfUnclosedFdsHasNoMoreReceived) {
    Scene scene;
    UniqueFd blocker = scene.queueLingering(wire::Op::Import, {});
    UniqueFd other = test::connectRaw(scene.path);
    UniqueFd sender = test::connectRaw(scene.path);
    UniqueFd behaves = test::connectRaw(scene.path);
    ASSERT_TRUE(scene.start());
    EXPECT_EQ(replyError(blocker), EBADF) << "a socket is not a buffer: its close now blocks the uid's closer";
    for (BorrowedFd c : {other.borrow(), sender.borrow(), behaves.borrow()})
        ASSERT_EQ(test::rawRequest(c, wire::Op::ListHeaps, {}), 0);

    int ends[2];
    ASSERT_EQ(::pipe2(ends, O_CLOEXEC), 0);
    UniqueFd readEnd(ends[0]), writeEnd(ends[1]);
    // 64 more behind the blocked close: this connection is cut off.
    EXPECT_EQ(test::rawRequest(other, wire::Op::Import, {}, std::vector<int>(64, readEnd.get())), -1);

    const size_t connections = scene.daemon->server().connectionCount();
    const size_t fds = test::openFdCount();
    ASSERT_TRUE(bool(sendDatagram(sender, header(wire::Op::Import, 200, 3), std::vector<int>(200, readEnd.get()))));
    EXPECT_TRUE(scene.daemon->waitUntil([&] { return scene.daemon->server().connectionCount() < connections; }))
        << "a connection of a uid at its bound sent fds and goes on";
    EXPECT_LT(test::openFdCount(), fds + 200) << "the daemon received them, to hold behind the blocked close";
    EXPECT_EQ(test::rawRequest(behaves, wire::Op::ListHeaps, {}), 0) << "a connection that sends none goes on";

    EXPECT_TRUE(scene.lingering.drain()) << "the daemon never let go of the socket";
    readEnd.reset();
    EXPECT_TRUE(test::waitForEvents(writeEnd, 0)) << "the daemon never closed what it holds of the pipe";
}

// A client whose reply waits in the daemon (it takes none) has nothing more
// read from it; what it sends meanwhile stays queued on its socket, which
// the daemon closes when it stops.
TEST(QueuedFds, OnAConnectionTheDaemonStillHasWhenItStopsDoNotHoldUpItsStop) {
    Scene scene;
    ASSERT_TRUE(scene.start({}, 600'000)); // the client is not dropped for taking nothing
    auto session = Session::connect(scene.path);
    ASSERT_TRUE(session) << session.error().toString();
    // Enough buffers for a bufinfo reply larger than the daemon's socket
    // buffer (wmem_default, some 200 KiB): held by mappings, not fds.
    std::vector<std::unique_ptr<test::Mapped>> held;
    for (int i = 0; i < 3000; ++i) {
        auto fd = (*session)->allocate("system", 4096);
        ASSERT_TRUE(fd) << fd.error().toString();
        held.push_back(std::make_unique<test::Mapped>(fd->get(), 4096));
    }
    UniqueFd hostile = test::connectRaw(scene.path);
    ASSERT_TRUE(bool(sendDatagram(hostile, header(wire::Op::Bufinfo, 0, 1), {})));
    ASSERT_TRUE((*session)->heaps()); // served after it, on the one worker: its reply waits
    std::vector<int> fds{scene.lingering.socket.get()};
    ASSERT_TRUE(bool(sendDatagram(hostile, header(wire::Op::Import, 1, 2), std::span(fds))));
    scene.lingering.socket.reset(); // returns at once: the datagram holds it
    held.clear();
    session->reset();
    EXPECT_TRUE(scene.finishes([&] { scene.daemon.reset(); })) << "the daemon's stop waits for a close the client "
                                                                  "controls";
    EXPECT_TRUE(scene.lingering.drain()) << "the daemon never let go of the socket";
}

// Only a socket that holds fds is the closer's to close: the closer's
// threads are few (16 for all uids) and a hostile uid's close can block
// one, so a connection that ends with none queued (as every client's
// does) is closed at once, whatever waits in the closer.
TEST(QueuedFds, AConnectionThatEndsWithNoFdsQueuedIsClosedAtOnce) {
    Scene scene;
    UniqueFd blocker = scene.queueLingering(wire::Op::Import, {});
    ASSERT_TRUE(scene.start());
    EXPECT_EQ(replyError(blocker), EBADF) << "a socket is not a buffer: its close now blocks the uid's closer";
    // Not counting the lingering socket: the closer's thread takes it out of
    // the daemon's fd table when it gets to it, before or after the count.
    const size_t fds = test::openFdCountExcept(scene.lingering.target);
    {
        UniqueFd plain = test::connectRaw(scene.path);
        // Datagrams it leaves unread, none with fds, one of them empty.
        ASSERT_EQ(test::rawRequest(plain, wire::Op::ListHeaps, {}), 0);
        ASSERT_TRUE(bool(sendDatagram(plain, header(wire::Op::ListHeaps, 0, 2), {})));
        ASSERT_TRUE(bool(sendDatagram(plain, {}, {})));
        ASSERT_TRUE(bool(sendDatagram(plain, header(wire::Op::ListHeaps, 0, 3), {})));
    }
    // The daemon logs the end of a connection once it closed its socket.
    EXPECT_TRUE(scene.daemon->waitUntil([&] { return test::openFdCountExcept(scene.lingering.target) == fds; }))
        << "its socket waits behind the blocked close";
    EXPECT_TRUE(scene.lingering.drain()) << "the daemon never let go of the socket";
}

} // namespace
} // namespace cenalloc
