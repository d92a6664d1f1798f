// SPDX-License-Identifier: MIT
// The abuse suite (scripts/abuse): attacks by unprivileged uids on a running cenallocd, what each held, and root's
// fate.
//
//   abuse ATTACK SOCKET       ATTACK: hold | watches | close | kill
//
// Run as root (it forks clients and gives them other uids). Each attack is
// bounded and prints one line per uid (what it held, how it was stopped)
// and whether root could still allocate; exit status 1 when root could not
// or the daemon died.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
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

#include <cenalloc/session.h>
#include <cenalloc/units.h>

#include "service/operations.h"
#include "service/socket_io.h"

namespace {

using namespace cenalloc;

std::string gSocket;

bool becomeUid(uint32_t uid) {
    return ::setgroups(0, nullptr) == 0 && ::setresgid(uid, uid, uid) == 0 && ::setresuid(uid, uid, uid) == 0;
}

/// Run @p body as @p uid in a child; returns the child's pid.
template <typename Body> pid_t spawnAs(uint32_t uid, Body body) {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        if (!becomeUid(uid))
            ::_exit(100);
        int code = body();
        std::fflush(nullptr);
        ::_exit(code);
    }
    return pid;
}

int waitFor(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string errorName(const Error& e) {
    return fmt::format("{} ({})", e.message(), std::strerror(e.code()));
}

/// What the caller's uid holds, by the daemon's stats.
std::string held(Session& session) {
    auto stats = session.stats();
    if (!stats)
        return "stats failed: " + errorName(stats.error());
    const ServiceLimits& l = stats->limits;
    return fmt::format("holds {} buffer(s), {} (quota {} buffers, {}); daemon tracks {} of {} ({} kept for root)",
                       l.heldBuffers, formatSize(l.heldBytes),
                       l.quotaBuffers == UINT64_MAX ? std::string("no") : std::to_string(l.quotaBuffers),
                       l.quotaBytes == UINT64_MAX ? std::string("any bytes") : formatSize(l.quotaBytes),
                       l.trackedBuffers, l.maxBuffers, l.rootReserve);
}

/// Can root allocate now? Prints the answer; false when not.
bool rootCanAllocate(uint64_t bytes, int count) {
    auto session = Session::connect(gSocket);
    if (!session) {
        std::printf("  root: cannot connect: %s\n", errorName(session.error()).c_str());
        return false;
    }
    std::vector<UniqueFd> fds;
    for (int i = 0; i < count; ++i) {
        auto fd = (*session)->allocate("system", bytes);
        if (!fd) {
            std::printf("  root: allocation %d of %d x %s FAILED: %s\n", i + 1, count, formatSize(bytes).c_str(),
                        errorName(fd.error()).c_str());
            return false;
        }
        fds.push_back(std::move(*fd));
    }
    std::printf("  root: allocated %d x %s: ok; %s\n", count, formatSize(bytes).c_str(), held(**session).c_str());
    return true;
}

// ---------------------------------------------------------------- hold

/// Connect, allocate until refused, disconnect keeping the fds; again.
int holdAttack() {
    std::printf("== reconnect-and-hold: uid 65534 reconnects 20 times, allocating 2 MiB buffers until refused, "
                "keeping every fd\n");
    int ready[2], done[2];
    if (::pipe(ready) != 0 || ::pipe(done) != 0)
        return 1;
    pid_t child = spawnAs(65534, [&] {
        ::close(ready[0]);
        ::close(done[1]);
        std::vector<UniqueFd> fds;
        std::string last = "never refused";
        for (int round = 0; round < 20; ++round) {
            auto session = Session::connect(gSocket);
            if (!session) {
                last = errorName(session.error());
                continue;
            }
            for (int i = 0; i < 64; ++i) {
                auto fd = (*session)->allocate("system", 2 * MiB);
                if (!fd) {
                    last = errorName(fd.error());
                    break;
                }
                fds.push_back(std::move(*fd));
            }
        }
        auto session = Session::connect(gSocket);
        std::printf("  uid 65534: kept %zu fds over 20 connections; last refusal: %s\n", fds.size(), last.c_str());
        if (session)
            std::printf("  uid 65534: %s\n", held(**session).c_str());
        std::fflush(nullptr);
        char byte = 0;
        (void)!::write(ready[1], &byte, 1);
        (void)!::read(done[0], &byte, 1); // holds them until root has tried
        return 0;
    });
    ::close(ready[1]);
    ::close(done[0]);
    char byte;
    (void)!::read(ready[0], &byte, 1);
    bool ok = rootCanAllocate(64 * MiB, 4);
    ::close(done[1]);
    waitFor(child);
    return ok ? 0 : 1;
}

// ------------------------------------------------------------- watches

/// Three uids keep as many small buffers as they can alive by mmap alone.
int watchAttack() {
    std::printf("== watch exhaustion: uids 65534, 65533, 65532 each keep 4 KiB buffers alive by mmap (fd closed) "
                "until refused, at most 100000\n");
    int ready[2], done[2];
    if (::pipe(ready) != 0 || ::pipe(done) != 0)
        return 1;
    std::vector<pid_t> children;
    for (uint32_t uid : {65534u, 65533u, 65532u}) {
        children.push_back(spawnAs(uid, [&, uid] {
            ::close(ready[0]);
            ::close(done[1]);
            auto session = Session::connect(gSocket);
            if (!session)
                return 1;
            size_t kept = 0;
            std::string last = "never refused";
            for (; kept < 100000; ++kept) {
                auto fd = (*session)->allocate("system", 4096);
                if (!fd) {
                    last = errorName(fd.error());
                    break;
                }
                if (::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd->get(), 0) == MAP_FAILED)
                    break;
            }
            std::printf("  uid %u: kept %zu buffers alive by mmap; refused with: %s\n  uid %u: %s\n", uid, kept,
                        last.c_str(), uid, held(**session).c_str());
            std::fflush(nullptr);
            char byte = 0;
            (void)!::write(ready[1], &byte, 1);
            (void)!::read(done[0], &byte, 1);
            return 0;
        }));
    }
    ::close(ready[1]);
    ::close(done[0]);
    char byte;
    for (size_t i = 0; i < children.size(); ++i)
        (void)!::read(ready[0], &byte, 1);
    bool ok = rootCanAllocate(4096, 256);
    ::close(done[1]);
    for (pid_t child : children)
        waitFor(child);
    return ok ? 0 : 1;
}

// --------------------------------------------------------------- close

struct LingeringSocket {
    UniqueFd listener, socket, peer;
    LingeringSocket() {
        listener.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        int small = 4096;
        ::setsockopt(listener.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof addr;
        (void)::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        (void)::listen(listener.get(), 1);
        (void)::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &length);
        socket.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        ::setsockopt(socket.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
        (void)::connect(socket.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        peer.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        char data[4096] = {};
        while (::send(socket.get(), data, sizeof data, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
        }
        linger l{1, 600};
        ::setsockopt(socket.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
};

UniqueFd connectRaw() {
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, gSocket.c_str(), gSocket.size() + 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        fd.reset();
    return fd;
}

/// Send @p op with @p fds; the reply's errno, -1 when cut off.
int sendFds(BorrowedFd conn, const std::vector<int>& fds, uint32_t sequence) {
    wire::MessageHeader h = wire::makeHeader(wire::Op::Import, 0, static_cast<uint16_t>(fds.size()), sequence);
    if (!sendDatagram(conn, std::as_bytes(std::span(&h, 1)), fds))
        return -1;
    auto reply = receiveDatagram(conn, wire::kMaxFragmentSize);
    if (!reply || reply->bytes.size() < sizeof h)
        return -1;
    std::memcpy(&h, reply->bytes.data(), sizeof h);
    return h.error;
}

/// uid 65534 sends sockets whose close blocks; uid 65533 sends plain fds.
int closeAttack() {
    std::printf("== blocking close: uid 65534 sends 8 loopback TCP sockets with SO_LINGER and unsent data, "
                "uid 65533 then sends 400 pipe fds\n");
    std::vector<std::unique_ptr<LingeringSocket>> sockets;
    for (int i = 0; i < 8; ++i)
        sockets.push_back(std::make_unique<LingeringSocket>());
    int sent[2];
    if (::pipe(sent) != 0)
        return 1;
    pid_t attacker = spawnAs(65534, [&] {
        ::close(sent[0]);
        int replies = 0;
        for (auto& s : sockets) {
            s->peer.reset();
            s->listener.reset();
        }
        for (auto& s : sockets) {
            UniqueFd conn = connectRaw();
            int fd = s->socket.get();
            wire::MessageHeader h = wire::makeHeader(wire::Op::Import, 0, 1, 1);
            if (!conn.valid() || !sendDatagram(conn, std::as_bytes(std::span(&h, 1)), std::span<const int>(&fd, 1)))
                continue;
            s->socket.reset(); // in flight: not the last, so the daemon's close will be
            auto reply = receiveDatagram(conn, wire::kMaxFragmentSize);
            if (reply && reply->bytes.size() >= sizeof h) {
                std::memcpy(&h, reply->bytes.data(), sizeof h);
                replies += h.error == EBADF;
            }
        }
        std::printf("  uid 65534: sent 8 lingering sockets, %d answered EBADF\n", replies);
        std::fflush(nullptr);
        char byte = 0;
        (void)!::write(sent[1], &byte, 1);
        return 0;
    });
    ::close(sent[1]);
    for (auto& s : sockets)
        s->socket.reset(); // the attacker's copies and then the daemon's are the only ones
    pollfd p{sent[0], POLLIN, 0};
    if (::poll(&p, 1, 20'000) != 1)
        std::printf("  uid 65534: did not finish sending in 20 s\n");
    pid_t victim = spawnAs(65533, [&] {
        UniqueFd conn = connectRaw();
        size_t closed = 0;
        int cutOff = 0;
        for (uint32_t batch = 0; batch < 50; ++batch) {
            int fds[2];
            if (::pipe2(fds, O_CLOEXEC) != 0)
                return 1;
            UniqueFd readEnd(fds[0]), writeEnd(fds[1]);
            if (sendFds(conn, std::vector<int>(8, readEnd.get()), batch + 1) < 0) {
                cutOff = 1;
                break;
            }
            readEnd.reset();
            pollfd pipeEnd{writeEnd.get(), 0, 0};
            if (::poll(&pipeEnd, 1, 10'000) == 1 && (pipeEnd.revents & POLLERR))
                closed += 8;
            else
                break;
        }
        std::printf("  uid 65533: sent 400 pipe fds in 50 requests: %zu closed by the daemon, %s\n", closed,
                    cutOff ? "CUT OFF" : "never cut off");
        auto session = Session::connect(gSocket);
        std::printf("  uid 65533: a new connection: %s\n", session ? "accepted" : errorName(session.error()).c_str());
        // And the attacker's uid is cut off (64 unclosed fds) only if it sent that many.
        std::fflush(nullptr);
        return closed == 400 ? 0 : 1;
    });
    int victimCode = waitFor(victim);
    bool ok = rootCanAllocate(1 * MiB, 4);
    for (auto& s : sockets)
        s->peer.reset(); // a reset: the blocked closes finish
    waitFor(attacker);
    return ok && victimCode == 0 ? 0 : 1;
}

// ---------------------------------------------------------------- kill

/// 200 clients of four uids busy with the daemon, killed with SIGKILL.
int killAttack() {
    std::printf("== kill -9: 200 clients of uids 65531-65534 allocate, map, attach and free in a loop; all are "
                "killed with SIGKILL mid-operation\n");
    auto root = Session::connect(gSocket);
    if (!root)
        return 1;
    auto before = (*root)->stats();
    int ready[2];
    if (::pipe(ready) != 0)
        return 1;
    std::vector<pid_t> children;
    for (int i = 0; i < 200; ++i) {
        children.push_back(spawnAs(65531 + i % 4, [&] {
            ::close(ready[0]);
            auto session = Session::connect(gSocket);
            if (!session)
                return 1;
            char byte = 0;
            (void)!::write(ready[1], &byte, 1);
            std::vector<UniqueFd> fds;
            for (uint64_t n = 0;; ++n) {
                auto fd = (*session)->allocate(n % 3 ? "system" : "linux,cma", 64 * KiB);
                if (fd) {
                    if (auto att = (*session)->attach(*fd, "gpu"))
                        (void)(*session)->map(*att, DmaDirection::Bidirectional);
                    void* p = ::mmap(nullptr, 64 * KiB, PROT_READ | PROT_WRITE, MAP_SHARED, fd->get(), 0);
                    if (p != MAP_FAILED)
                        static_cast<char*>(p)[0] = 1;
                    fds.push_back(std::move(*fd));
                }
                if (fds.size() > 8)
                    fds.erase(fds.begin());
            }
        }));
    }
    ::close(ready[1]);
    char byte;
    size_t up = 0;
    while (up < children.size() && ::read(ready[0], &byte, 1) == 1)
        ++up;
    for (pid_t child : children)
        ::kill(child, SIGKILL);
    size_t killed = 0;
    for (pid_t child : children)
        killed += waitFor(child) == 128 + SIGKILL;
    // A buffer whose last fd was in flight to a client that died goes when
    // the kernel releases that socket's queue, which it may do a moment
    // after the process is reaped (a deferred fput): allow it a second.
    auto after = (*root)->stats();
    int waited = 0;
    for (; after && before && after->liveBuffers != before->liveBuffers && waited < 1000; waited += 10) {
        ::usleep(10'000);
        after = (*root)->stats();
    }
    if (!before || !after)
        return 1;
    std::printf("  %zu clients connected, %zu killed by SIGKILL\n", up, killed);
    std::printf("  live buffers before %llu, after %llu (settled %d ms after the last was reaped); lifetime bugs %zu\n",
                static_cast<unsigned long long>(before->liveBuffers),
                static_cast<unsigned long long>(after->liveBuffers), waited, after->lifetimeBugs.size());
    for (const HeapInfo& h : after->heaps)
        std::printf("  heap %-24s live %llu buffers, %s\n", h.name.c_str(),
                    static_cast<unsigned long long>(h.stats.liveBuffers), formatSize(h.stats.liveBytes).c_str());
    bool ok = rootCanAllocate(1 * MiB, 4);
    return ok && after->liveBuffers == before->liveBuffers && after->lifetimeBugs.empty() ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s hold|watches|close|kill SOCKET\n", argv[0]);
        return 2;
    }
    if (::geteuid() != 0) {
        std::fprintf(stderr, "abuse: needs root (it runs clients as other uids)\n");
        return 2;
    }
    std::signal(SIGPIPE, SIG_IGN);
    gSocket = argv[2];
    const std::string attack = argv[1];
    if (attack == "hold")
        return holdAttack();
    if (attack == "watches")
        return watchAttack();
    if (attack == "close")
        return closeAttack();
    if (attack == "kill")
        return killAttack();
    std::fprintf(stderr, "abuse: unknown attack '%s'\n", argv[1]);
    return 2;
}
