// SPDX-License-Identifier: MIT
// Server: listening, accepting with SO_PEERCRED, epoll workers serving connections, shutdown, socket activation.
#include "service/server.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <system_error>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>

#include <cenalloc/session.h>

#include "service/dispatch.h"
#include "service/socket_io.h"
#include "service/tracker.h"

namespace cenalloc {

namespace {

constexpr int kListenBacklog = 128;
// How long the event loop leaves buffer deaths to the operations before it
// reaps them itself again.
constexpr long kReapPauseNs = 10'000'000;
// sd_listen_fds(3): passed sockets start at fd 3.
constexpr int kSdListenFdsStart = 3;
// Workers when the configuration does not say: one per CPU, up to this.
constexpr size_t kMaxDefaultWorkers = 4;
// Fds that are not buffers a uid may have sent and the closer not closed
// yet (a close that blocks: FdCloser) before its clients are cut off.
constexpr size_t kMaxUnclosedFdsPerUid = 64;

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

// ServiceConfig::workers, or one per CPU up to kMaxDefaultWorkers.
size_t workerCountFor(const ServiceConfig& config) {
    if (config.workers > 0)
        return config.workers;
    return std::clamp<size_t>(std::thread::hardware_concurrency(), 1, kMaxDefaultWorkers);
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
    server->stopWorkers_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!server->epoll_.valid() || !server->stopEvent_.valid() || !server->stopWorkers_.valid())
        return sysError("epoll/eventfd");
    server->reapTimer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!server->reapTimer_.valid())
        return sysError("timerfd_create");
    for (int fd : {server->listen_.get(), server->service_->watcherFd().get(), server->stopEvent_.get(),
                   server->reapTimer_.get(), server->options_.stopFd.get()}) {
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
    if (auto started = server->startWorkers(workerCountFor(server->options_.config)); !started)
        return started.error();
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
    return connections_.size();
}

Result<void> Server::startWorkers(size_t count) {
    for (size_t i = 0; i < count; ++i) {
        auto worker = std::make_unique<Worker>(std::chrono::microseconds(options_.config.busyPollMicros));
        worker->epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
        if (!worker->epoll.valid())
            return sysError("epoll_create1");
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = nullptr; // the stop event; every other entry is a Connection
        if (::epoll_ctl(worker->epoll.get(), EPOLL_CTL_ADD, stopWorkers_.get(), &ev) != 0)
            return sysError("epoll_ctl");
        Worker& w = *worker;
        workers_.push_back(std::move(worker));
        try {
            w.thread = std::thread([this, &w] { work(w); });
        } catch (const std::system_error& e) {
            workers_.pop_back();
            return Error(EAGAIN, fmt::format("starting worker thread {}: {}", i, e.what()));
        }
    }
    return {};
}

void Server::acceptAll() {
    for (;;) {
        UniqueFd socket(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
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
        Result<std::unique_ptr<ServiceClient>> client =
            closer_.pending(peer->uid) >= kMaxUnclosedFdsPerUid
                ? Error(EAGAIN, fmt::format("uid {} has sent {} fds that are not buffers and that the daemon has "
                                            "not managed to close yet",
                                            peer->uid, closer_.pending(peer->uid)))
                : service_->connect(*peer);
        if (!client) {
            // Told why before the hang-up: the client reads it as its
            // handshake reply (a new socket's buffer has room for it).
            log(LogLevel::Warning,
                fmt::format("refusing pid {} uid {}: {}", peer->pid, peer->uid, client.error().toString()));
            (void)sendReply(socket, errorReply(wire::Op::Handshake, 0, client.error()));
            continue;
        }
        log(LogLevel::Debug, fmt::format("client {} connected (pid {}, uid {}, gid {})", (*client)->id(), peer->pid,
                                         peer->uid, peer->gid));
        auto connection = std::make_unique<Connection>();
        connection->socket = std::move(socket);
        connection->clientId = (*client)->id();
        connection->uid = peer->uid;
        connection->client = std::move(*client);
        Connection& c = *connection;
        {
            std::lock_guard lock(mutex_);
            c.worker = std::min_element(workers_.begin(), workers_.end(), [](const auto& a, const auto& b) {
                           return a->connections < b->connections;
                       })->get();
            c.worker->connections += 1;
            connections_.push_back(std::move(connection));
        }
        // From here on the connection is its worker's.
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = &c;
        if (::epoll_ctl(c.worker->epoll.get(), EPOLL_CTL_ADD, c.socket.get(), &ev) != 0) {
            log(LogLevel::Warning, fmt::format("client {}: epoll_ctl: {}", c.clientId, std::strerror(errno)));
            drop(c);
        }
    }
}

void Server::work(Worker& w) {
    epoll_event events[64];
    for (;;) {
        int n = waitForWork(w, events);
        if (n < 0 && errno != EINTR) {
            log(LogLevel::Error, fmt::format("worker: epoll_wait: {}", std::strerror(errno)));
            return;
        }
        // Clients that died with replies still queued go first: what those
        // replies carry (a buffer's fd) must not outlive them while this
        // round serves someone who asks for statistics.
        for (int i = 0; i < n; ++i) {
            auto* c = static_cast<Connection*>(events[i].data.ptr);
            if (!c)
                return; // stopping
            if (!c->outbox.empty() && (events[i].events & (EPOLLHUP | EPOLLERR))) {
                drop(*c);
                events[i].data.ptr = &w; // done with
            }
        }
        // Each ready connection once per round: one request, or the
        // replies it was waiting to take.
        for (int i = 0; i < n; ++i) {
            if (events[i].data.ptr == &w)
                continue;
            auto* c = static_cast<Connection*>(events[i].data.ptr);
            bool keep = c->outbox.empty() ? serveRequest(*c) : flush(*c);
            if (!keep)
                drop(*c);
        }
        if (!w.waiting.empty())
            expireSends(w);
    }
}

int Server::waitForWork(Worker& w, std::span<epoll_event> events) {
    using Clock = std::chrono::steady_clock;
    const int size = static_cast<int>(events.size());
    // Work already waiting is no news for the poll window.
    int n = ::epoll_wait(w.epoll.get(), events.data(), size, 0);
    if (n != 0)
        return n;
    // Poll for as long as w.poll says requests have lately come (PollWindow),
    // yielding, so that whatever else is runnable on this CPU, a client
    // about to send perhaps, runs meanwhile.
    const Clock::time_point start = Clock::now();
    if (w.poll.window() > PollWindow::Duration::zero()) {
        const Clock::time_point until = start + w.poll.window();
        do {
            ::sched_yield();
            n = ::epoll_wait(w.epoll.get(), events.data(), size, 0);
            if (n != 0)
                return n;
        } while (Clock::now() < until);
    }
    int timeout = -1; // or until the first queued reply's deadline
    if (!w.waiting.empty()) {
        auto first = std::min_element(w.waiting.begin(), w.waiting.end(),
                                      [](Connection* a, Connection* b) { return a->sendDeadline < b->sendDeadline; });
        auto left = std::chrono::ceil<std::chrono::milliseconds>((*first)->sendDeadline - Clock::now());
        timeout = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    n = ::epoll_wait(w.epoll.get(), events.data(), size, timeout);
    if (n > 0)
        w.poll.missed(Clock::now() - start); // it slept, then work came
    return n;
}

bool Server::serveRequest(Connection& c) {
    auto request = receiveDatagram(c.socket, wire::kMaxRequestSize, MSG_DONTWAIT);
    if (!request) {
        if (request.error().code() == EAGAIN)
            return true;
        if (request.error().code() != ECONNRESET)
            log(LogLevel::Debug, fmt::format("client {}: {}", c.clientId, request.error().toString()));
        return false;
    }
    Reply reply = handleRequest(*c.client, *request);
    // What the client sent is closed before it has the reply: here if that
    // cannot block, else by the closer; a uid whose fds the closer cannot
    // get rid of is cut off.
    bool unclosable = false;
    for (UniqueFd& fd : request->fds) {
        if (fd.valid() && !closesWithoutBlocking(fd)) {
            closer_.close(std::move(fd), c.uid);
            unclosable = true;
        }
        fd.reset();
    }
    if (unclosable && closer_.pending(c.uid) >= kMaxUnclosedFdsPerUid) {
        log(LogLevel::Warning, fmt::format("client {}: uid {} sent {} fds that are not buffers and are not closed yet; "
                                           "disconnecting it",
                                           c.clientId, c.uid, closer_.pending(c.uid)));
        return false;
    }
    if (reply.header.error != 0 && options_.logLevel >= LogLevel::Debug) {
        wire::ReplyPrefix prefix;
        std::memcpy(&prefix, reply.payload.data(), sizeof prefix);
        std::string message(reinterpret_cast<const char*>(reply.payload.data() + sizeof prefix), prefix.messageLength);
        log(LogLevel::Debug, fmt::format("client {}: {}: {} ({})", c.clientId, wire::opName(reply.header.opcode),
                                         message, errnoName(reply.header.error)));
    }
    return sendOrQueue(c, std::move(reply));
}

bool Server::sendOrQueue(Connection& c, Reply reply) {
    size_t sent = 0;
    auto ok = sendReply(c.socket, reply, &sent);
    // reply.fd closes on return unless queued: the client has its copy,
    // the daemon keeps none.
    if (ok)
        return true;
    if (ok.error().code() != EAGAIN) {
        log(LogLevel::Debug, fmt::format("client {}: dropping: {}", c.clientId, ok.error().toString()));
        return false;
    }
    // The client is not taking its replies: keep the rest, read nothing
    // more from it until it has them, and give it sendTimeoutMs.
    auto datagrams = replyDatagrams(reply);
    for (size_t i = sent; i < datagrams.size(); ++i)
        c.outbox.push_back({std::move(datagrams[i]), i == 0 ? std::move(reply.fd) : UniqueFd()});
    c.sendDeadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.sendTimeoutMs);
    c.worker->waiting.push_back(&c);
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.ptr = &c;
    return ::epoll_ctl(c.worker->epoll.get(), EPOLL_CTL_MOD, c.socket.get(), &ev) == 0;
}

bool Server::flush(Connection& c) {
    while (!c.outbox.empty()) {
        Outgoing& next = c.outbox.front();
        int fd = next.fd.get();
        auto ok =
            sendDatagram(c.socket, next.bytes, next.fd.valid() ? std::span<const int>(&fd, 1) : std::span<const int>());
        if (!ok) {
            if (ok.error().code() == EAGAIN)
                return true; // EPOLLOUT again later
            log(LogLevel::Debug, fmt::format("client {}: dropping: {}", c.clientId, ok.error().toString()));
            return false;
        }
        c.outbox.pop_front();
        // It is taking them: slowly is not never.
        c.sendDeadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.sendTimeoutMs);
    }
    std::erase(c.worker->waiting, &c);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &c;
    return ::epoll_ctl(c.worker->epoll.get(), EPOLL_CTL_MOD, c.socket.get(), &ev) == 0;
}

void Server::expireSends(Worker& w) {
    const auto now = std::chrono::steady_clock::now();
    std::vector<Connection*> late;
    for (Connection* c : w.waiting)
        if (c->sendDeadline <= now)
            late.push_back(c);
    for (Connection* c : late) {
        log(LogLevel::Debug,
            fmt::format("client {}: dropping: it took no reply for {} ms", c->clientId, options_.sendTimeoutMs));
        drop(*c);
    }
}

void Server::drop(Connection& c) {
    if (!c.outbox.empty()) // then it is on the list, and this is its worker
        std::erase(c.worker->waiting, &c);
    ::epoll_ctl(c.worker->epoll.get(), EPOLL_CTL_DEL, c.socket.get(), nullptr);
    std::unique_ptr<Connection> gone;
    {
        std::lock_guard lock(mutex_);
        auto it = std::find_if(connections_.begin(), connections_.end(), [&](const auto& p) { return p.get() == &c; });
        gone = std::move(*it);
        connections_.erase(it);
        c.worker->connections -= 1;
    }
    // Outside mutex_: everything the client held goes now (the service's
    // lock, never taken under mutex_), then its socket and queued replies.
    gone->client.reset();
    log(LogLevel::Debug, fmt::format("client {} disconnected", gone->clientId));
}

void Server::reapHungUp() {
    // A client that died has a socket that hung up, which its worker may
    // not have read yet: dropping it here makes "the client is gone"
    // visible to whoever observes next, at once.
    std::vector<pollfd> fds;
    std::vector<uint64_t> ids;
    {
        std::lock_guard lock(mutex_);
        for (const auto& c : connections_) {
            fds.push_back({c->socket.get(), POLLIN, 0});
            ids.push_back(c->clientId);
        }
        if (::poll(fds.data(), fds.size(), 0) <= 0)
            return;
    }
    for (size_t i = 0; i < fds.size(); ++i)
        if (fds[i].revents & (POLLHUP | POLLERR))
            service_->disconnect(ids[i]);
}

void Server::shutdownConnections() {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(stopWorkers_.get(), &one, sizeof one);
    for (auto& w : workers_)
        if (w->thread.joinable())
            w->thread.join();
    std::vector<std::unique_ptr<Connection>> all;
    {
        std::lock_guard lock(mutex_);
        all.swap(connections_);
    }
    all.clear(); // each client's claims, then its socket
}

} // namespace cenalloc
