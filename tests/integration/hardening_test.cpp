// SPDX-License-Identifier: MIT
// What a hostile local user cannot do to cenallocd and to others (issue 13): real daemon, real uids, fds and sockets.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <linux/falloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cenalloc/c/cenalloc.h>
#include <cenalloc/session.h>
#include <cenalloc/units.h>

#include "service/operations.h"
#include "service/protocol.h"
#include "service/socket_io.h"
#include "support/cli.h"
#include "support/daemon.h"
#include "support/process.h"
#include "support/service.h"
#include "support/sockets.h"

namespace cenalloc {
namespace {

// Unprivileged uids the tests run clients as (nobody and its neighbour).
constexpr uint32_t kUserA = 65534;
constexpr uint32_t kUserB = 65533;
// A failed check in a child process: its number is the exit status.
#define CHILD_CHECK(step, cond)                                                                                        \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            std::fprintf(stderr, "child uid %u: step %d failed: %s (errno %s)\n", ::getuid(), step, #cond,             \
                         std::strerror(errno));                                                                        \
            return step;                                                                                               \
        }                                                                                                              \
    } while (0)

/// Run @p body in a child process as @p uid (and gid); its exit status: 0
/// when every check passed, else the number of the one that failed.
template <typename Body> int asUid(uint32_t uid, Body body) {
    return test::runAsUid(uid, body);
}

#define REQUIRE_ROOT()                                                                                                 \
    if (::geteuid() != 0)                                                                                              \
    GTEST_SKIP() << "runs clients as other uids (setresuid in a forked child): needs root"

bool daemonAlive(test::DaemonProcess& daemon) {
    int status = 0;
    return ::waitpid(daemon.pid(), &status, WNOHANG) == 0;
}

// ------------------------------------------------------- defect 1

TEST(Hardening, AnAllocationLargerThanAnyHeapIsEnomemThroughEveryEntryPointAndTheDaemonLives) {
    test::DaemonProcess daemon;
    auto session = daemon.connect();
    ASSERT_NE(session, nullptr);
    const auto before = test::baselineOf(*session);
    const uint64_t huge[] = {uint64_t{1} << 52, uint64_t{1} << 60, UINT64_MAX & ~uint64_t{0xfffff}};

    // The protocol.
    for (uint64_t length : huge) {
        for (const char* heap : {"system", "system-uncached", "linux,cma"}) {
            SCOPED_TRACE(fmt::format("{:#x} from {}", length, heap));
            wire::AllocateRequest r{};
            r.length = length;
            r.fdFlags = O_CLOEXEC | O_RDWR;
            std::strncpy(r.heap, heap, sizeof r.heap - 1);
            EXPECT_EQ(test::rawRequest(daemon.path(), wire::Op::Allocate, std::as_bytes(std::span(&r, 1))), ENOMEM);
            ASSERT_TRUE(daemonAlive(daemon));
        }
    }
    // The C++ API, a deferred buffer too (its storage would come from such a heap).
    for (uint64_t length : huge) {
        auto fd = session->allocate("system", length);
        ASSERT_FALSE(fd);
        EXPECT_EQ(fd.error().code(), ENOMEM) << fd.error().toString();
        auto deferred = session->create(length);
        ASSERT_FALSE(deferred);
        EXPECT_EQ(deferred.error().code(), ENOMEM) << deferred.error().toString();
        ASSERT_TRUE(daemonAlive(daemon));
    }
    // The C API.
    cenalloc_session* c = nullptr;
    ASSERT_EQ(cenalloc_session_connect(daemon.path().c_str(), &c), 0) << cenalloc_last_error();
    int out = -1;
    EXPECT_EQ(cenalloc_alloc(c, "system", uint64_t{1} << 60, O_CLOEXEC | O_RDWR, 0, &out), -ENOMEM)
        << cenalloc_last_error();
    cenalloc_session_close(c);
    // The CLI.
    test::CliRun run = test::cli("alloc --heap system --size 0x1000000000000000 --socket " + daemon.path());
    const std::string& output = run.out;
    EXPECT_TRUE(run.exitCode > 0 && run.exitCode < 128) << output; // exited, not killed, and not 0
    EXPECT_NE(output.find("ENOMEM"), std::string::npos) << output;

    ASSERT_TRUE(daemonAlive(daemon));
    EXPECT_EQ(test::baselineOf(*session), before) << "nothing was left behind";
    EXPECT_TRUE(session->allocate("system", 4096)) << "and it still serves";
}

// ------------------------------------------------------- defect 2

TEST(Hardening, AQuotaChargeLastsAsLongAsTheBufferNotTheConnection) {
    REQUIRE_ROOT();
    test::DaemonProcess daemon("quota: {bytes: 16M, buffers: 8}\n");
    const std::string path = daemon.path();
    int code = asUid(kUserA, [&] {
        std::vector<UniqueFd> held;
        // Connect, allocate, disconnect keeping the fds: three times four
        // buffers of 1 MiB, under a quota of eight.
        for (int round = 0; round < 3; ++round) {
            auto session = Session::connect(path);
            CHILD_CHECK(1, session);
            for (int i = 0; i < 4; ++i) {
                auto fd = (*session)->allocate("system", 1 * MiB);
                if (round < 2) {
                    CHILD_CHECK(2, fd);
                    held.push_back(std::move(*fd));
                } else {
                    CHILD_CHECK(3, !fd && fd.error().code() == EDQUOT);
                }
            }
            if (round == 2) {
                auto stats = (*session)->stats();
                CHILD_CHECK(4, stats && stats->limits.heldBuffers == 8 && stats->limits.heldBytes == 8 * MiB);
                CHILD_CHECK(5, stats->limits.quotaBuffers == 8);
            }
        }
        // A buffer the uid gave up ends its charge, whoever holds the
        // connection: close half, and a new connection may have four more.
        held.resize(4);
        auto session = Session::connect(path);
        CHILD_CHECK(6, session);
        for (int i = 0; i < 4; ++i) {
            auto fd = (*session)->allocate("system", 1 * MiB);
            CHILD_CHECK(7, fd);
            held.push_back(std::move(*fd));
        }
        auto over = (*session)->allocate("system", 1 * MiB);
        CHILD_CHECK(8, !over && over.error().code() == EDQUOT);
        return 0;
    });
    EXPECT_EQ(code, 0);
    // Root is not held back by what the uid did.
    auto root = daemon.connect();
    ASSERT_NE(root, nullptr);
    EXPECT_TRUE(root->allocate("system", 16 * MiB));
}

// ------------------------------------------------------- defect 3

TEST(Hardening, EveryUidHasABoundedShareOfTheDaemonsWatchesAndRootKeepsAReserve) {
    REQUIRE_ROOT();
    // 128 buffers in all: 64 kept for root (a sixteenth, at least 64, at most half).
    test::DaemonProcess daemon("max_buffers: 128\n");
    const std::string path = daemon.path();
    int fromA[2];
    ASSERT_EQ(::pipe2(fromA, O_CLOEXEC), 0);
    UniqueFd readyRead(fromA[0]), readyWrite(fromA[1]);
    int release[2];
    ASSERT_EQ(::pipe2(release, O_CLOEXEC), 0);
    UniqueFd releaseRead(release[0]), releaseWrite(release[1]);

    // uid A fills what users share and holds it until told.
    pid_t holder = test::forkChild([&] {
        readyRead.reset();
        releaseWrite.reset();
        int code = [&] {
            if (!test::becomeUid(kUserA, {}))
                return 100;
            auto session = Session::connect(path);
            CHILD_CHECK(1, session);
            std::vector<UniqueFd> held;
            // Bounded, so that a daemon that never refuses fails quickly.
            while (held.size() <= 1000) {
                auto fd = (*session)->allocate("system", 4096);
                if (!fd) {
                    CHILD_CHECK(2, fd.error().code() == ENOSPC);
                    CHILD_CHECK(3, fd.error().message().find("kept for root") != std::string::npos);
                    break;
                }
                held.push_back(std::move(*fd));
            }
            CHILD_CHECK(4, held.size() == 64);
            auto stats = (*session)->stats();
            CHILD_CHECK(5, stats && stats->limits.maxBuffers == 128 && stats->limits.rootReserve == 64 &&
                               stats->limits.trackedBuffers == 64 && stats->limits.heldBuffers == 64);
            CHILD_CHECK(6, stats->limits.quotaBuffers == kDefaultBufferQuota);
            char byte = 0;
            CHILD_CHECK(7, ::write(readyWrite.get(), &byte, 1) == 1);
            CHILD_CHECK(8, ::read(releaseRead.get(), &byte, 1) == 0); // until the parent closes its end
            return 0;
        }();
        return code;
    });
    readyWrite.reset();
    releaseRead.reset();
    char byte = 0;
    ASSERT_EQ(::read(readyRead.get(), &byte, 1), 1) << "uid A did not fill its share";

    // Another uid gets the reason, not the kernel's ENOSPC from nowhere.
    EXPECT_EQ(asUid(kUserB,
                    [&] {
                        auto session = Session::connect(path);
                        CHILD_CHECK(1, session);
                        auto fd = (*session)->allocate("system", 4096);
                        CHILD_CHECK(2, !fd && fd.error().code() == ENOSPC);
                        return 0;
                    }),
              0);
    // Root still can: the reserve.
    auto root = daemon.connect();
    ASSERT_NE(root, nullptr);
    std::vector<UniqueFd> rootHeld;
    for (int i = 0; i < 64; ++i) {
        auto fd = root->allocate("system", 4096);
        ASSERT_TRUE(fd) << i << ": " << fd.error().toString();
        rootHeld.push_back(std::move(*fd));
    }
    rootHeld.clear();
    releaseWrite.reset();
    const int status = test::reap(holder);
    EXPECT_EQ(status, 0);
    // Once uid A is gone, so are its buffers and the share is free again.
    EXPECT_EQ(asUid(kUserB,
                    [&] {
                        auto session = Session::connect(path);
                        CHILD_CHECK(1, session);
                        CHILD_CHECK(2, (*session)->allocate("system", 4096));
                        return 0;
                    }),
              0);
}

TEST(Hardening, WithoutAConfigurationEveryUidStillHasABufferQuota) {
    REQUIRE_ROOT();
    test::DaemonProcess daemon;
    const std::string path = daemon.path();
    EXPECT_EQ(asUid(kUserA,
                    [&] {
                        auto session = Session::connect(path);
                        CHILD_CHECK(1, session);
                        auto stats = (*session)->stats();
                        CHILD_CHECK(2, stats && stats->limits.quotaBuffers == kDefaultBufferQuota);
                        CHILD_CHECK(3, stats->limits.maxBuffers > 0 && stats->limits.rootReserve > 0);
                        return 0;
                    }),
              0);
}

// ------------------------------------------------------- defect 4

using test::LingeringSocket;

TEST(Hardening, ACloseThatBlocksCostsOnlyTheUidThatSentIt) {
    REQUIRE_ROOT();
    test::DaemonProcess daemon;
    const std::string path = daemon.path();
    LingeringSocket lingering;

    // uid A sends the socket, and the daemon's copy must be the last: the
    // daemon is stopped while A sends it and both A and this process close
    // theirs, so that its close after the reply is the one that blocks.
    ASSERT_EQ(::kill(daemon.pid(), SIGSTOP), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(daemon.pid(), &status, WUNTRACED), daemon.pid());
    int sent[2];
    ASSERT_EQ(::pipe2(sent, O_CLOEXEC), 0);
    UniqueFd sentRead(sent[0]), sentWrite(sent[1]);
    pid_t a = test::forkChild([&] {
        sentRead.reset();
        int code = [&] {
            if (!test::becomeUid(kUserA, {}))
                return 100;
            UniqueFd conn = test::connectSeqpacket(path);
            CHILD_CHECK(1, conn.valid());
            wire::MessageHeader h = wire::makeHeader(wire::Op::Import, 0, 1, 1);
            int fd = lingering.socket.get();
            CHILD_CHECK(2, sendDatagram(conn, std::as_bytes(std::span(&h, 1)), std::span<const int>(&fd, 1)));
            lingering.socket.reset(); // in flight, so not the last
            sentWrite.reset();        // tells the parent
            auto reply = receiveDatagram(conn, wire::kMaxFragmentSize);
            CHILD_CHECK(3, reply && reply->bytes.size() >= sizeof h);
            std::memcpy(&h, reply->bytes.data(), sizeof h);
            CHILD_CHECK(4, h.error == EBADF);
            return 0;
        }();
        return code;
    });
    sentWrite.reset();
    char byte;
    EXPECT_EQ(::read(sentRead.get(), &byte, 1), 0);
    lingering.socket.reset();
    ASSERT_EQ(::kill(daemon.pid(), SIGCONT), 0);
    status = test::reap(a);
    EXPECT_EQ(status, 0);
    // The daemon handed the socket to its closer before it replied: that
    // close is blocked now (the peer reads nothing).

    // uid B sends 80 fds that are not buffers (more than the 64 that cut a
    // uid off), eight at a time, and sees each batch closed by the daemon
    // before it sends the next: none waits behind A's close.
    int code = asUid(kUserB, [&] {
        UniqueFd conn = test::connectSeqpacket(path);
        CHILD_CHECK(1, conn.valid());
        for (uint32_t batch = 0; batch < 10; ++batch) {
            int fds[2];
            CHILD_CHECK(2, ::pipe2(fds, O_CLOEXEC) == 0);
            UniqueFd readEnd(fds[0]), writeEnd(fds[1]);
            std::vector<int> eight(8, readEnd.get());
            wire::MessageHeader h = wire::makeHeader(wire::Op::Import, 0, 8, batch + 1);
            CHILD_CHECK(3, sendDatagram(conn, std::as_bytes(std::span(&h, 1)), eight));
            auto reply = receiveDatagram(conn, wire::kMaxFragmentSize);
            CHILD_CHECK(4, reply && reply->bytes.size() >= sizeof h); // not cut off
            std::memcpy(&h, reply->bytes.data(), sizeof h);
            CHILD_CHECK(5, h.error == EINVAL); // Import takes one fd
            readEnd.reset();
            // The last read end gone: the write end reports an error. A
            // generous bound, so that a closer stuck behind A fails the
            // test rather than hanging it.
            CHILD_CHECK(6, test::waitForEvents(writeEnd, 0)); // no events asked: POLLERR alone
        }
        auto session = Session::connect(path);
        CHILD_CHECK(7, session);
        CHILD_CHECK(8, (*session)->allocate("system", 4096));
        return 0;
    });
    EXPECT_EQ(code, 0);
    // Let A's close finish.
    lingering.drain();
}

// ------------------------------------------------------- defect 5

TEST(Hardening, ReadOnlyIsReadOnlyForItsHolderAndNoReopenWidensIt) {
    REQUIRE_ROOT();
    test::DaemonProcess daemon;
    const std::string path = daemon.path();
    int code = asUid(kUserA, [&] {
        auto session = Session::connect(path);
        CHILD_CHECK(1, session);
        auto fd = (*session)->allocate("system", 64 * KiB, O_RDONLY | O_CLOEXEC);
        CHILD_CHECK(2, fd);
        CHILD_CHECK(3, (::fcntl(fd->get(), F_GETFL) & O_ACCMODE) == O_RDONLY);
        void* rw = ::mmap(nullptr, 64 * KiB, PROT_READ | PROT_WRITE, MAP_SHARED, fd->get(), 0);
        CHILD_CHECK(4, rw == MAP_FAILED);
        CHILD_CHECK(5, ::fallocate(fd->get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) != 0);
        CHILD_CHECK(6, ::write(fd->get(), "x", 1) < 0);
        const std::string self = fmt::format("/proc/self/fd/{}", fd->get());
        CHILD_CHECK(7, ::open(self.c_str(), O_RDWR | O_CLOEXEC) < 0 && errno == EACCES);
        CHILD_CHECK(8, ::open(self.c_str(), O_WRONLY | O_CLOEXEC) < 0 && errno == EACCES);
        CHILD_CHECK(9, ::fchmod(fd->get(), 0666) != 0); // not the inode's owner
        UniqueFd reader(::open(self.c_str(), O_RDONLY | O_CLOEXEC));
        CHILD_CHECK(10, reader.valid()); // reading is what it may do
        void* ro = ::mmap(nullptr, 64 * KiB, PROT_READ, MAP_SHARED, fd->get(), 0);
        CHILD_CHECK(11, ro != MAP_FAILED && static_cast<unsigned char*>(ro)[100] == 0);
        // A read-write buffer of the same uid is read-write.
        auto writable = (*session)->allocate("system", 4096);
        CHILD_CHECK(12, writable && (::fcntl(writable->get(), F_GETFL) & O_ACCMODE) == O_RDWR);
        return 0;
    });
    EXPECT_EQ(code, 0);

    // Root may reopen it (DAC does not bind root), but the seal holds for
    // everyone: no write, no writable shared mapping, no hole.
    auto session = daemon.connect();
    ASSERT_NE(session, nullptr);
    auto fd = session->allocate("system", 4096, O_RDONLY | O_CLOEXEC);
    ASSERT_TRUE(fd) << fd.error().toString();
    UniqueFd widened(::open(fmt::format("/proc/self/fd/{}", fd->get()).c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(widened.valid()) << std::strerror(errno);
    EXPECT_LT(::write(widened.get(), "x", 1), 0);
    EXPECT_EQ(errno, EPERM);
    EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, widened.get(), 0), MAP_FAILED);
    EXPECT_NE(::fallocate(widened.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), 0);
    const int seals = ::fcntl(widened.get(), F_GET_SEALS);
    EXPECT_EQ(seals & (F_SEAL_FUTURE_WRITE | F_SEAL_SEAL), F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) << "sealed for good";
}

} // namespace
} // namespace cenalloc

namespace cenalloc {
namespace {

// ------------------------------------------------------- defect 10

// GCC says a sanitizer build by these macros, clang by __has_feature.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CENALLOC_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CENALLOC_TEST_SANITIZED 1
#endif
#endif

TEST(Hardening, TheClientLibraryRunsCleanUnderValgrindMemcheck) {
#ifdef CENALLOC_TEST_SANITIZED
    GTEST_SKIP() << "a sanitizer build cannot run under Valgrind";
#endif
    if (test::findProgram("valgrind").empty())
        GTEST_SKIP() << "valgrind is not installed";
    test::DaemonProcess daemon;
    // Every error memcheck finds (uninitialised bytes passed to sendmsg
    // among them) makes it exit 99; leaks of the client library too.
    test::ProcessOptions options;
    options.output = test::Output::Merged;
    test::ProcessRun run =
        test::runProcess({"valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
                          "--errors-for-leak-kinds=definite", "--track-fds=no", VALGRIND_CLIENT, daemon.path()},
                         std::move(options), std::chrono::minutes(5));
    const std::string& output = run.out;
    EXPECT_EQ(run.exitCode, 0) << output;
    EXPECT_EQ(output.find("uninitialised"), std::string::npos) << output;
}

} // namespace
} // namespace cenalloc
