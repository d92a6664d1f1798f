// SPDX-License-Identifier: MIT
// Server: its event loop (accepting with SO_PEERCRED, reaping, stopping) and its table of connections.
#include "service/server.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>

#include <cenalloc/session.h>

#include "service/dispatch.h"
#include "service/socket_path.h"

namespace cenalloc {

namespace {

// How long the event loop leaves buffer deaths to the operations before it
// reaps them itself again.
constexpr long kReapPauseNs = 10'000'000;

Result<Credentials> peerCredentials(int fd) {
    ucred cred{};
    socklen_t length = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0)
        return Error::fromErrno("SO_PEERCRED");
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

Result<std::unique_ptr<Server>> Server::create(const Platform& platform, ServerOptions options) {
    auto service = Service::create(platform, options.config);
    if (!service)
        return service.error();
    std::unique_ptr<Server> server(new Server());
    server->options_ = std::move(options);
    server->service_ = std::move(*service);
    if (!server->options_.config.subordinateUids.empty())
        server->subordinateUids_.emplace(server->options_.config.subordinateUids);

    if (server->options_.listenFd.valid()) {
        server->listen_ = std::move(server->options_.listenFd);
    } else {
        std::string path =
            server->options_.socketPath.empty() ? Session::defaultSocketPath() : server->options_.socketPath;
        auto fd = listenOn(path);
        if (!fd)
            return fd.error();
        server->socketPath_ = path;
        server->ownsSocketPath_ = true;
        server->listen_ = std::move(*fd);
    }
    int flags = ::fcntl(server->listen_.get(), F_GETFL);
    if (flags < 0 || ::fcntl(server->listen_.get(), F_SETFL, flags | O_NONBLOCK) != 0)
        return Error::fromErrno("making the listening socket non-blocking");

    server->epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    server->stopEvent_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    server->stopWorkers_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!server->epoll_.valid() || !server->stopEvent_.valid() || !server->stopWorkers_.valid())
        return Error::fromErrno("epoll/eventfd");
    server->reapTimer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!server->reapTimer_.valid())
        return Error::fromErrno("timerfd_create");
    for (int fd : {server->listen_.get(), server->service_->watcherFd().get(), server->stopEvent_.get(),
                   server->reapTimer_.get(), server->options_.stopFd.get()}) {
        if (fd < 0)
            continue;
        epoll_event ev{};
        // The inotify fd is one-shot: see run().
        ev.events = fd == server->service_->watcherFd().get() ? EPOLLIN | EPOLLONESHOT : EPOLLIN;
        ev.data.fd = fd;
        if (::epoll_ctl(server->epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
            return Error::fromErrno("epoll_ctl");
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
            return Error::fromErrno("epoll_wait");
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

void Server::chargeToOwner(Credentials& peer) {
    if (!subordinateUids_)
        return;
    const std::optional<uint32_t> owner = subordinateUids_->ownerOf(peer.uid);
    for (const std::string& problem : subordinateUids_->takeProblems())
        log(LogLevel::Warning, fmt::format("subordinate uids: {}", problem));
    if (!owner)
        return;
    // From here on the client is its owner's for every limit and rule: the
    // owner controls the namespace its subordinate uids live in.
    log(LogLevel::Debug, fmt::format("pid {}: uid {} is subordinate to uid {}", peer.pid, peer.uid, *owner));
    peer.uid = *owner;
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
            hangUp(std::move(socket), kUnknownUid);
            continue;
        }
        chargeToOwner(*peer);
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
            // It may have sent requests already, fds attached.
            hangUp(std::move(socket), peer->uid);
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
        // Told from any thread, with the service's lock held: post() only
        // queues and wakes the worker.
        service_->setHooks(c.clientId, ClientHooks{[this, &c](const MoveEvent& e) { post(c, &e, false); },
                                                   [this, &c] { post(c, nullptr, true); }});
        // From here on the connection is its worker's.
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = &c;
        if (::epoll_ctl(c.worker->epoll.get(), EPOLL_CTL_ADD, c.socket.get(), &ev) != 0) {
            log(LogLevel::Warning, fmt::format("client {}: epoll_ctl: {}", c.clientId, std::strerror(errno)));
            // Not the worker's yet (nothing was read from it, so nothing
            // was posted to it): freed here.
            unlink(c).reset();
        }
    }
}

void Server::drop(Connection& c) {
    if (c.dropped)
        return;
    Worker& w = *c.worker;
    w.dropped.push_back(unlink(c));
}

std::unique_ptr<Server::Connection> Server::unlink(Connection& c) {
    c.dropped = true;
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
        if (c.queuedBytes != 0)
            unqueueLocked(c, c.queuedBytes);
    }
    // Outside mutex_: everything the client held goes now (the service's
    // lock, never taken under mutex_); its queued replies go with the
    // connection, its socket to the closer (what the client queued on it
    // goes with it). Once the client is gone from the service nothing
    // posts to it: its mail can go.
    gone->client.reset();
    hangUp(std::move(gone->socket), gone->uid);
    if (c.parked) // then this is its worker
        std::erase(c.worker->parked, &c);
    {
        std::lock_guard lock(c.worker->mailMutex);
        std::erase(c.worker->posted, &c);
    }
    log(LogLevel::Debug, fmt::format("client {} disconnected", gone->clientId));
    return gone;
}

void Server::hangUp(UniqueFd socket, uint32_t uid) {
    // The client sees the end now. Closing the socket releases whatever it
    // queued there, fds in flight included, and a TCP socket with
    // SO_LINGER among them blocks the thread that lets go of it last: a
    // socket with fds queued is the closer's, charged to its uid. Any
    // other closes here (the closer's threads are few, and a blocked one
    // must not hold up every client's end).
    ::shutdown(socket.get(), SHUT_RDWR);
    if (!discardQueuedWithoutFds(socket))
        closer_.close(std::move(socket), uid);
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
    // Each client's claims, then its socket, as drop() does.
    for (auto& c : all) {
        c->client.reset();
        hangUp(std::move(c->socket), c->uid);
    }
    all.clear();
}

} // namespace cenalloc
