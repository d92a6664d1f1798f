// SPDX-License-Identifier: MIT
// Binding the daemon's listening socket at its path.
#include "service/socket_path.h"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>

namespace cenalloc {

namespace {

constexpr int kListenBacklog = 128;

Result<sockaddr_un> unixAddress(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path)
        return Error(ENAMETOOLONG,
                     fmt::format("socket path '{}' is empty or longer than {} bytes", path, sizeof addr.sun_path - 1));
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}

// The directory of the socket, created (0755) when missing, like
// RuntimeDirectory= would; only the last component.
Result<void> ensureParent(const std::string& path) {
    size_t slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0)
        return {};
    std::string dir = path.substr(0, slash);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
        return Error::fromErrno(fmt::format("creating '{}'", dir));
    return {};
}

// A socket file left by a daemon that died is removed; one a live daemon
// answers on is not.
Result<void> removeStaleSocket(const std::string& path, const sockaddr_un& addr) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0)
        return {};
    if (!S_ISSOCK(st.st_mode))
        return Error(EEXIST, fmt::format("'{}' exists and is not a socket", path));
    UniqueFd probe(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!probe.valid())
        return Error::fromErrno("socket");
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
        return Error(EADDRINUSE, fmt::format("a daemon already listens on '{}'", path));
    if (errno != ECONNREFUSED)
        return Error::fromErrno(fmt::format("probing '{}'", path));
    if (::unlink(path.c_str()) != 0)
        return Error::fromErrno(fmt::format("removing stale socket '{}'", path));
    return {};
}

} // namespace

Result<UniqueFd> listenOn(const std::string& path) {
    auto addr = unixAddress(path);
    if (!addr)
        return addr.error();
    if (auto ok = ensureParent(path); !ok)
        return ok.error();
    if (auto ok = removeStaleSocket(path, *addr); !ok)
        return ok.error();
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!fd.valid())
        return Error::fromErrno("socket");
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0)
        return Error::fromErrno(fmt::format("binding '{}'", path));
    // Anyone may connect: who may do what is the configuration's call
    // (heap access, quotas), decided on SO_PEERCRED.
    if (::chmod(path.c_str(), 0666) != 0) {
        const int code = errno;
        ::unlink(path.c_str());
        return Error::fromErrno(fmt::format("chmod '{}'", path), code);
    }
    if (::listen(fd.get(), kListenBacklog) != 0) {
        const int code = errno;
        ::unlink(path.c_str());
        return Error::fromErrno(fmt::format("listening on '{}'", path), code);
    }
    return fd;
}

} // namespace cenalloc
