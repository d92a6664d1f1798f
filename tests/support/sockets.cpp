// SPDX-License-Identifier: MIT
// Blocking Unix socket connections and a lingering TCP socket for the tests.
#include "support/sockets.h"

#include <cerrno>
#include <cstring>
#include <string>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace cenalloc::test {

namespace {

bool addressOf(const std::string& path, sockaddr_un& addr) {
    addr = {};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        errno = ENAMETOOLONG;
        return false;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return true;
}

} // namespace

UniqueFd connectSeqpacket(const std::string& path) {
    sockaddr_un addr;
    if (!addressOf(path, addr))
        return {};
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!fd.valid() || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        int saved = errno;
        fd.reset();
        errno = saved;
    }
    return fd;
}

UniqueFd connectRaw(const std::string& path) {
    UniqueFd fd = connectSeqpacket(path);
    EXPECT_TRUE(fd.valid()) << "connect to " << path << ": " << std::strerror(errno);
    return fd;
}

UniqueFd listenSeqpacket(const std::string& path, int backlog) {
    sockaddr_un addr;
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    bool ok = fd.valid() && addressOf(path, addr) &&
              ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
              ::listen(fd.get(), backlog) == 0;
    EXPECT_TRUE(ok) << "listening at " << path << ": " << std::strerror(errno);
    return ok ? std::move(fd) : UniqueFd();
}

LingeringSocket::LingeringSocket() {
    listener.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int small = 4096;
    ::setsockopt(listener.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof addr;
    EXPECT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listener.get(), 1), 0);
    EXPECT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &length), 0);
    socket.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct stat st {};
    EXPECT_EQ(::fstat(socket.get(), &st), 0);
    target = "socket:[" + std::to_string(st.st_ino) + "]";
    ::setsockopt(socket.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    EXPECT_EQ(::connect(socket.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    peer.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    char data[4096] = {};
    while (::send(socket.get(), data, sizeof data, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
    }
    linger l{1, 600};
    EXPECT_EQ(::setsockopt(socket.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
}

bool LingeringSocket::drain(std::chrono::milliseconds bound) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    char data[65536];
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (!waitReadable(peer, std::max(left, std::chrono::milliseconds(0))))
            return false;
        ssize_t n = ::recv(peer.get(), data, sizeof data, 0);
        if (n == 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

} // namespace cenalloc::test
