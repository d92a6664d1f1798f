// SPDX-License-Identifier: MIT
// Socket activation (LISTEN_FDS) and readiness notification (NOTIFY_SOCKET), as libsystemd does them.
#include "service/systemd.h"

#include <cenalloc/daemon.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <system_error>
#include <unistd.h>

#include <fmt/format.h>

namespace cenalloc {

namespace {

// sd_listen_fds(3): passed sockets start at fd 3.
constexpr int kSdListenFdsStart = 3;

} // namespace

Result<UniqueFd> listenFdFromSystemd() {
    const char* pidText = std::getenv("LISTEN_PID");
    const char* countText = std::getenv("LISTEN_FDS");
    if (!pidText || !countText)
        return UniqueFd();
    long pid = 0;
    int count = 0;
    auto [pend, pec] = std::from_chars(pidText, pidText + std::strlen(pidText), pid);
    auto [cend, cec] = std::from_chars(countText, countText + std::strlen(countText), count);
    if (pec != std::errc() || cec != std::errc() || *pend != '\0' || *cend != '\0')
        return Error(EINVAL, fmt::format("LISTEN_PID={} LISTEN_FDS={}: not numbers", pidText, countText));
    if (pid != ::getpid())
        return UniqueFd(); // meant for another process (a parent that exec'd us)
    // As sd_listen_fds(unset_environment=1): children must not inherit them.
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    if (count <= 0)
        return UniqueFd();
    if (count != 1) {
        for (int fd = kSdListenFdsStart; fd < kSdListenFdsStart + count; ++fd)
            ::close(fd);
        return Error(EINVAL, fmt::format("systemd passed {} sockets, cenallocd takes exactly one", count));
    }
    UniqueFd fd(kSdListenFdsStart);
    if (::fcntl(fd.get(), F_SETFD, FD_CLOEXEC) != 0)
        return Error::fromErrno("LISTEN_FDS: fd 3");
    int type = 0, domain = 0, listening = 0;
    socklen_t n = sizeof(int);
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_TYPE, &type, &n) != 0 ||
        ::getsockopt(fd.get(), SOL_SOCKET, SO_DOMAIN, &domain, &n) != 0 ||
        ::getsockopt(fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &n) != 0)
        return Error(EINVAL, fmt::format("LISTEN_FDS: fd 3 is not a socket: {}", std::strerror(errno)));
    if (domain != AF_UNIX || type != SOCK_SEQPACKET || !listening)
        return Error(EINVAL, "LISTEN_FDS: fd 3 is not a listening AF_UNIX SOCK_SEQPACKET socket "
                             "(ListenSequentialPacket= in the .socket unit)");
    return fd;
}

Result<void> notifySystemd(std::string_view state) {
    const char* target = std::getenv("NOTIFY_SOCKET");
    if (!target || !*target)
        return {};
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    size_t length = std::strlen(target);
    if (length >= sizeof addr.sun_path)
        return Error(ENAMETOOLONG, fmt::format("NOTIFY_SOCKET '{}' is too long", target));
    std::memcpy(addr.sun_path, target, length);
    if (addr.sun_path[0] == '@')
        addr.sun_path[0] = '\0'; // abstract namespace
    UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd.valid())
        return Error::fromErrno("socket");
    socklen_t size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);
    if (::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), size) <
        0)
        return Error::fromErrno(fmt::format("notifying '{}'", target));
    return {};
}

} // namespace cenalloc
