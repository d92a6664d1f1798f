// SPDX-License-Identifier: MIT
// Server's send queues: a reply a client does not take waits, fds and all, until it does or times out.
#include "service/server.h"

#include <algorithm>
#include <cerrno>
#include <sys/epoll.h>

#include <fmt/format.h>

#include "service/dispatch.h"
#include "service/socket_io.h"

namespace cenalloc {

bool Server::queue(Connection& c, Reply& reply, size_t from) {
    auto datagrams = replyDatagrams(reply);
    size_t bytes = 0;
    for (size_t i = from; i < datagrams.size(); ++i)
        bytes += datagrams[i].size();
    bool fits;
    size_t queued; // the uid's, before this
    {
        std::lock_guard lock(mutex_);
        size_t& uid = queuedBytes_[c.uid];
        queued = uid;
        fits = bytes <= options_.maxQueuedBytesPerUid - uid;
        if (fits) {
            uid += bytes;
            c.queuedBytes += bytes;
        } else if (uid == 0) {
            queuedBytes_.erase(c.uid);
        }
    }
    if (!fits) {
        log(LogLevel::Warning,
            fmt::format("client {}: dropping: uid {} has {} bytes of replies not taken, {} more would pass the most "
                        "it may leave ({})",
                        c.clientId, c.uid, queued, bytes, options_.maxQueuedBytesPerUid));
        return false;
    }
    for (size_t i = from; i < datagrams.size(); ++i)
        c.outbox.push_back({std::move(datagrams[i]), i == 0 ? std::move(reply.fd) : UniqueFd()});
    return true;
}

void Server::unqueueLocked(Connection& c, size_t bytes) {
    auto queued = queuedBytes_.find(c.uid);
    queued->second -= bytes;
    if (queued->second == 0)
        queuedBytes_.erase(queued);
    c.queuedBytes -= bytes;
}

bool Server::sendOrQueue(Connection& c, Reply reply) {
    if (!c.outbox.empty()) {
        // Behind what waits already, in order (a parked request's reply
        // after the events queued before it).
        return queue(c, reply, 0);
    }
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
    if (!queue(c, reply, sent))
        return false;
    c.sendDeadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.sendTimeoutMs);
    c.worker->waiting.push_back(&c);
    log(LogLevel::Debug, fmt::format("client {}: not taking its replies: nothing more is read from it until it "
                                     "takes them, for up to {} ms",
                                     c.clientId, options_.sendTimeoutMs));
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
        {
            std::lock_guard lock(mutex_);
            unqueueLocked(c, next.bytes.size());
        }
        c.outbox.pop_front();
        // It is taking them: slowly is not never.
        c.sendDeadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.sendTimeoutMs);
    }
    std::erase(c.worker->waiting, &c);
    return rearm(c) && deliverMail(c);
}

void Server::expireSends(Worker& w) {
    const auto now = std::chrono::steady_clock::now();
    std::vector<Connection*> late;
    for (Connection* c : w.waiting)
        if (c->sendDeadline <= now)
            late.push_back(c);
    for (Connection* c : late) {
        if (c->dropped)
            continue;
        log(LogLevel::Debug,
            fmt::format("client {}: dropping: it took no reply for {} ms", c->clientId, options_.sendTimeoutMs));
        drop(*c);
    }
}

} // namespace cenalloc
