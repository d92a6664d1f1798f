// SPDX-License-Identifier: MIT
// recvmsg/sendmsg with SCM_RIGHTS: every received fd owned at once, O_CLOEXEC, never leaked.
#include "service/socket_io.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <poll.h>
#include <sys/socket.h>

#include <fmt/format.h>

namespace cenalloc {

namespace {

// Room for every fd one message can carry: SCM_MAX_FD (253,
// include/net/scm.h; scm_fp_copy() in net/core/scm.c refuses more, in one
// control message or several). Fds that do not fit the receiver's buffer
// the kernel releases itself, in the receiving thread (scm_detach_fds(),
// then __scm_destroy(), net/core/scm.c): when that is a file's last
// reference, the file's release runs in that thread as recvmsg returns,
// and a TCP socket with SO_LINGER blocks it there. So every fd is received
// and owned here, and its owner decides where it is closed (FdCloser).
constexpr size_t kMessageFds = 253;

// recvmsg(2), again when a signal interrupted it.
ssize_t receiveMessage(BorrowedFd socket, msghdr& msg, int flags) {
    ssize_t n;
    do {
        n = ::recvmsg(socket.get(), &msg, flags);
    } while (n < 0 && errno == EINTR);
    return n;
}

// Has the peer of a connected socket shut down its sending side (or gone)?
bool peerHungUp(BorrowedFd socket) {
    pollfd p{socket.get(), POLLRDHUP, 0};
    if (::poll(&p, 1, 0) < 0)
        return true;
    return p.revents & (POLLRDHUP | POLLHUP | POLLERR);
}

} // namespace

Result<Datagram> receiveDatagram(BorrowedFd socket, size_t maxSize, int flags) {
    Datagram dg;
    // Received into a per-thread buffer that is never cleared, then copied
    // at its real length: zero-filling maxSize bytes (64 KiB for a reply)
    // per message would cost more than the message.
    thread_local std::unique_ptr<std::byte[]> scratch;
    thread_local size_t scratchSize = 0;
    if (scratchSize < maxSize) {
        scratch.reset(new std::byte[maxSize]);
        scratchSize = maxSize;
    }
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMessageFds)];
    iovec iov{scratch.get(), maxSize};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    // MSG_TRUNC: return the datagram's real length even when it was cut.
    ssize_t n = receiveMessage(socket, msg, MSG_CMSG_CLOEXEC | MSG_TRUNC | flags);
    if (n < 0)
        return Error(errno, fmt::format("receiving: {}", std::strerror(errno)));
    // Take ownership of every fd before looking at anything else.
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < count; ++i) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                dg.fds.emplace_back(fd);
            }
        } else {
            dg.foreignControl = true;
        }
    }
    dg.controlTruncated = msg.msg_flags & MSG_CTRUNC;
    // recvmsg() returns 0 both for the end of the connection and for a
    // datagram of 0 bytes, which is a request like any other malformed one
    // (EINVAL, and the connection goes on): only a peer that has shut down
    // its side is gone. A peer that sent an empty datagram and then hung up
    // is gone too, and nothing is lost by not answering it.
    if (n == 0 && dg.fds.empty() && !dg.controlTruncated && peerHungUp(socket))
        return Error(ECONNRESET, "the peer closed the connection");
    dg.wireSize = static_cast<size_t>(n);
    dg.bytes.assign(scratch.get(), scratch.get() + std::min(dg.wireSize, maxSize));
    return dg;
}

bool nextDatagramCarriesFds(BorrowedFd socket) {
    // Peeked without room for control data: the kernel says MSG_CTRUNC
    // when the datagram has fds, and drops the references it took for the
    // peek (scm_recv() in include/net/scm.h), never the datagram's own.
    msghdr msg{};
    ssize_t n = receiveMessage(socket, msg, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
    return n >= 0 && (msg.msg_flags & MSG_CTRUNC);
}

bool discardQueuedWithoutFds(BorrowedFd socket) {
    // Every datagram carries its sender's credentials, which the kernel
    // hands over with SO_PASSCRED (scm_recv() in include/net/scm.h): a
    // peek that returns none found the queue empty, where the length alone
    // cannot tell an empty queue of a shut-down socket from an empty
    // datagram. Room for the credentials only: fds set MSG_CTRUNC.
    int on = 1;
    if (::setsockopt(socket.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0)
        return false;
    // The peer's send buffer (wmem_max at most) holds a few hundred datagrams.
    for (int i = 0; i < 4096; ++i) {
        alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
        msghdr msg{};
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ssize_t n = receiveMessage(socket, msg, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
        // A peer that closed with datagrams of ours unread left ECONNRESET
        // pending on this socket (unix_release_sock() in net/unix/af_unix.c
        // sets sk_err); the next receive reports it instead of a datagram
        // and clears it (sock_error() in include/net/sock.h), and what the
        // peer queued is still there: look again.
        if (n < 0 && errno == ECONNRESET)
            continue;
        if (n < 0 || (msg.msg_flags & MSG_CTRUNC))
            return false;
        if (msg.msg_controllen == 0)
            return true;
        // No fds: receiving it releases nothing.
        char byte;
        if (::recv(socket.get(), &byte, 1, MSG_DONTWAIT | MSG_TRUNC) < 0 && errno != EINTR)
            return false;
    }
    return false;
}

Result<void> sendDatagram(BorrowedFd socket, std::span<const std::byte> bytes, std::span<const int> fds) {
    return sendDatagram(socket, bytes, {}, fds);
}

Result<void> sendDatagram(BorrowedFd socket, std::span<const std::byte> head, std::span<const std::byte> body,
                          std::span<const int> fds) {
    iovec iov[2] = {{const_cast<std::byte*>(head.data()), head.size()},
                    {const_cast<std::byte*>(body.data()), body.size()}};
    const size_t size = head.size() + body.size();
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = body.empty() ? 1 : 2;
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMessageFds)];
    if (!fds.empty()) {
        if (fds.size() > kMessageFds)
            return Error(EINVAL, fmt::format("{} fds in one message, at most {}", fds.size(), kMessageFds));
        // Zeroed: the kernel copies the whole control message, padding
        // after the fds included, and those bytes must not be whatever the
        // stack held.
        std::memset(control, 0, CMSG_SPACE(sizeof(int) * fds.size()));
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n;
    do {
        n = ::sendmsg(socket.get(), &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return Error(errno, fmt::format("sending: {}", std::strerror(errno)));
    if (static_cast<size_t>(n) != size)
        return Error(EIO, fmt::format("sent {} of {} bytes", n, size));
    return {};
}

Result<UniqueFd> applyFdFlags(UniqueFd fd, uint32_t fdFlags) {
    if (fdFlags & O_CLOEXEC)
        return fd;
    if (::fcntl(fd.get(), F_SETFD, 0) != 0)
        return Error(errno, fmt::format("clearing FD_CLOEXEC: {}", std::strerror(errno)));
    return fd;
}

} // namespace cenalloc
