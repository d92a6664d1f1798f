// SPDX-License-Identifier: MIT
// Server: listening, accepting with SO_PEERCRED, a thread per connection, shutdown, socket activation.
#include "service/server.h"

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>

#include <cenalloc/session.h>

#include "service/dispatch.h"
#include "service/socket_io.h"

namespace cenalloc {

namespace {

constexpr int kListenBacklog = 128;
// How long the event loop leaves buffer deaths to the operations before it
// reaps them itself again.
constexpr long kReapPauseNs = 10'000'000;
// sd_listen_fds(3): passed sockets start at fd 3.
constexpr int kSdListenFdsStart = 3;

Error sysError(std::string_view what) {
    return Error(errno, fmt::format("{}: {}", what, std::strerror(errno)));
}

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
        return sysError(fmt::format("creating '{}'", dir));
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
        return sysError("socket");
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
        return Error(EADDRINUSE, fmt::format("a daemon already listens on '{}'", path));
    if (errno != ECONNREFUSED)
        return sysError(fmt::format("probing '{}'", path));
    if (::unlink(path.c_str()) != 0)
        return sysError(fmt::format("removing stale socket '{}'", path));
    return {};
}

Result<Credentials> peerCredentials(int fd) {
    ucred cred{};
    socklen_t length = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0)
        return sysError("SO_PEERCRED");
    Credentials peer;
    peer.pid = cred.pid;
    peer.uid = cred.uid;
    peer.gid = cred.gid;
    // Supplementary groups matter for per-heap access by group (a display
    // service's group); SO_PEERGROUPS reports them as of connect().
    std::vector<gid_t> groups(64);
    for (int attempt = 0; attempt < 2; ++attempt) {
        socklen_t bytes = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &bytes) == 0) {
            groups.resize(bytes / sizeof(gid_t));
            peer.groups.assign(groups.begin(), groups.end());
            break;
        }
        if (errno != ERANGE)
            break; // an old kernel: primary group only
        groups.resize(bytes / sizeof(gid_t));
    }
    return peer;
}

} // namespace

const char* logLevelName(LogLevel level) {
    switch (level) {
    case LogLevel::Error: return "error";
    case LogLevel::Warning: return "warning";
    case LogLevel::Info: return "info";
    case LogLevel::Debug: return "debug";
    }
    return "?";
}

Result<LogLevel> parseLogLevel(std::string_view text) {
    for (LogLevel level : {LogLevel::Error, LogLevel::Warning, LogLevel::Info, LogLevel::Debug})
        if (text == logLevelName(level))
            return level;
    return Error(EINVAL, fmt::format("log level '{}': expected error, warning, info or debug", text));
}

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
        return sysError("LISTEN_FDS: fd 3");
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
        return sysError("socket");
    socklen_t size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);
    if (::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), size) <
        0)
        return sysError(fmt::format("notifying '{}'", target));
    return {};
}

Result<std::unique_ptr<Server>> Server::create(const Platform& platform, ServerOptions options) {
    auto service = Service::create(platform, options.config);
    if (!service)
        return service.error();
    std::unique_ptr<Server> server(new Server());
    server->options_ = std::move(options);
    server->service_ = std::move(*service);

    if (server->options_.listenFd.valid()) {
        server->listen_ = std::move(server->options_.listenFd);
    } else {
        std::string path =
            server->options_.socketPath.empty() ? Session::defaultSocketPath() : server->options_.socketPath;
        auto addr = unixAddress(path);
        if (!addr)
            return addr.error();
        if (auto ok = ensureParent(path); !ok)
            return ok.error();
        if (auto ok = removeStaleSocket(path, *addr); !ok)
            return ok.error();
        UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        if (!fd.valid())
            return sysError("socket");
        if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0)
            return sysError(fmt::format("binding '{}'", path));
        server->socketPath_ = path;
        server->ownsSocketPath_ = true;
        // Anyone may connect: who may do what is the configuration's call
        // (heap access, quotas), decided on SO_PEERCRED.
        if (::chmod(path.c_str(), 0666) != 0)
            return sysError(fmt::format("chmod '{}'", path));
        if (::listen(fd.get(), kListenBacklog) != 0)
            return sysError(fmt::format("listening on '{}'", path));
        server->listen_ = std::move(fd);
    }
    int flags = ::fcntl(server->listen_.get(), F_GETFL);
    if (flags < 0 || ::fcntl(server->listen_.get(), F_SETFL, flags | O_NONBLOCK) != 0)
        return sysError("making the listening socket non-blocking");

    server->epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    server->stopEvent_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    server->finishedEvent_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!server->epoll_.valid() || !server->stopEvent_.valid() || !server->finishedEvent_.valid())
        return sysError("epoll/eventfd");
    server->reapTimer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!server->reapTimer_.valid())
        return sysError("timerfd_create");
    for (int fd : {server->listen_.get(), server->service_->watcherFd().get(), server->stopEvent_.get(),
                   server->finishedEvent_.get(), server->reapTimer_.get(), server->options_.stopFd.get()}) {
        if (fd < 0)
            continue;
        epoll_event ev{};
        // The inotify fd is one-shot: see run().
        ev.events = fd == server->service_->watcherFd().get() ? EPOLLIN | EPOLLONESHOT : EPOLLIN;
        ev.data.fd = fd;
        if (::epoll_ctl(server->epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
            return sysError("epoll_ctl");
    }
    Server* self = server.get();
    server->service_->setObserveHook([self] { self->reapHungUp(); });
    return server;
}

Server::~Server() {
    shutdownConnections();
    service_->setObserveHook({});
    if (ownsSocketPath_)
        ::unlink(socketPath_.c_str());
}

void Server::log(LogLevel level, const std::string& message) const {
    if (options_.log && level <= options_.logLevel)
        options_.log(level, message);
}

Result<void> Server::run() {
    log(LogLevel::Info, fmt::format("serving platform '{}' on {}", service_->context().platform().name,
                                    socketPath_.empty() ? std::string("an inherited socket") : socketPath_));
    for (const std::string& note : service_->notes())
        log(LogLevel::Warning, note);
    for (;;) {
        epoll_event events[8];
        int n = ::epoll_wait(epoll_.get(), events, 8, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return sysError("epoll_wait");
        bool stopping = false;
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (fd == listen_.get()) {
                acceptAll();
            } else if (fd == service_->watcherFd().get()) {
                // Buffers died while nobody asked: give their storage back
                // now, then look again only after a pause. Under load every
                // free is an event; waking for each would cost a context
                // switch per free, and every operation that observes or
                // charges state reaps first anyway.
                service_->reap();
                itimerspec pause{};
                pause.it_value.tv_nsec = kReapPauseNs;
                ::timerfd_settime(reapTimer_.get(), 0, &pause, nullptr);
            } else if (fd == reapTimer_.get()) {
                uint64_t expirations;
                [[maybe_unused]] ssize_t r = ::read(fd, &expirations, sizeof expirations);
                epoll_event ev{};
                ev.events = EPOLLIN | EPOLLONESHOT;
                ev.data.fd = service_->watcherFd().get();
                ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, ev.data.fd, &ev);
            } else if (fd == finishedEvent_.get()) {
                uint64_t count;
                [[maybe_unused]] ssize_t r = ::read(fd, &count, sizeof count);
                joinFinished();
            } else {
                stopping = true; // stopEvent_ or options_.stopFd
            }
        }
        if (stopping) {
            log(LogLevel::Info, "stopping");
            return {};
        }
    }
}

void Server::stop() {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(stopEvent_.get(), &one, sizeof one);
}

size_t Server::connectionCount() const {
    std::lock_guard lock(mutex_);
    size_t n = 0;
    for (const Connection& c : connections_)
        n += !c.finished.load();
    return n;
}

void Server::acceptAll() {
    for (;;) {
        UniqueFd socket(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!socket.valid()) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN)
                log(LogLevel::Warning, fmt::format("accept: {}", std::strerror(errno)));
            return;
        }
        auto peer = peerCredentials(socket.get());
        if (!peer) {
            log(LogLevel::Warning, fmt::format("refusing a client: {}", peer.error().toString()));
            continue;
        }
        auto client = service_->connect(*peer);
        if (!client) {
            // Told why before the hang-up: the client reads it as its
            // handshake reply.
            log(LogLevel::Warning,
                fmt::format("refusing pid {} uid {}: {}", peer->pid, peer->uid, client.error().toString()));
            (void)sendReply(socket, errorReply(wire::Op::Handshake, 0, client.error()));
            continue;
        }
        timeval timeout{options_.sendTimeoutMs / 1000, (options_.sendTimeoutMs % 1000) * 1000};
        ::setsockopt(socket.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        log(LogLevel::Debug, fmt::format("client {} connected (pid {}, uid {}, gid {})", (*client)->id(), peer->pid,
                                         peer->uid, peer->gid));
        std::lock_guard lock(mutex_);
        Connection& c = connections_.emplace_back();
        c.socket = std::move(socket);
        c.clientId = (*client)->id();
        c.client = std::move(*client);
        c.peer = *peer;
        c.thread = std::thread([this, &c] { serve(c); });
    }
}

void Server::serve(Connection& c) {
    for (;;) {
        auto request = receiveDatagram(c.socket, wire::kMaxRequestSize);
        if (!request) {
            if (request.error().code() != ECONNRESET)
                log(LogLevel::Debug, fmt::format("client {}: {}", c.clientId, request.error().toString()));
            break;
        }
        Reply reply = handleRequest(*c.client, std::move(*request));
        if (reply.header.error != 0 && options_.logLevel >= LogLevel::Debug) {
            wire::ReplyPrefix prefix;
            std::memcpy(&prefix, reply.payload.data(), sizeof prefix);
            std::string message(reinterpret_cast<const char*>(reply.payload.data() + sizeof prefix),
                                prefix.messageLength);
            log(LogLevel::Debug, fmt::format("client {}: {}: {} ({})", c.clientId, wire::opName(reply.header.opcode),
                                             message, errnoName(reply.header.error)));
        }
        auto sent = sendReply(c.socket, reply);
        // reply.fd closes here: the client has its copy, the daemon keeps none.
        if (!sent) {
            log(LogLevel::Debug, fmt::format("client {}: dropping: {}", c.clientId, sent.error().toString()));
            break;
        }
    }
    c.client.reset(); // everything the client held goes now
    log(LogLevel::Debug, fmt::format("client {} disconnected", c.clientId));
    c.finished = true;
    uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(finishedEvent_.get(), &one, sizeof one);
}

void Server::joinFinished() {
    std::list<Connection> done;
    {
        std::lock_guard lock(mutex_);
        for (auto it = connections_.begin(); it != connections_.end();) {
            auto next = std::next(it);
            if (it->finished)
                done.splice(done.end(), connections_, it);
            it = next;
        }
    }
    for (Connection& c : done)
        c.thread.join();
}

void Server::reapHungUp() {
    // A client that died has a socket that hung up, which its thread may
    // not have read yet: dropping it here makes "the client is gone"
    // visible to whoever observes next, at once.
    std::vector<pollfd> fds;
    std::vector<uint64_t> ids;
    {
        std::lock_guard lock(mutex_);
        for (const Connection& c : connections_) {
            if (c.finished)
                continue;
            fds.push_back({c.socket.get(), POLLIN, 0});
            ids.push_back(c.clientId);
        }
        if (::poll(fds.data(), fds.size(), 0) <= 0)
            return;
    }
    for (size_t i = 0; i < fds.size(); ++i)
        if (fds[i].revents & (POLLHUP | POLLERR))
            service_->disconnect(ids[i]);
}

void Server::shutdownConnections() {
    std::list<Connection> all;
    {
        std::lock_guard lock(mutex_);
        for (Connection& c : connections_)
            ::shutdown(c.socket.get(), SHUT_RDWR);
        all.splice(all.end(), connections_);
    }
    for (Connection& c : all)
        c.thread.join();
}

} // namespace cenalloc
