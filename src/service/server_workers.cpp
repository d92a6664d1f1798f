// SPDX-License-Identifier: MIT
// Server's workers: epoll sets of connections, each served one request per round, polled before sleeping.
#include "service/server.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "service/dispatch.h"
#include "service/socket_io.h"

namespace cenalloc {

namespace {

// Workers when the configuration does not say: one per CPU, up to this.
constexpr size_t kMaxDefaultWorkers = 4;

} // namespace

size_t Server::workerCountFor(const ServiceConfig& config) {
    if (config.workers > 0)
        return config.workers;
    return std::clamp<size_t>(std::thread::hardware_concurrency(), 1, kMaxDefaultWorkers);
}

Result<void> Server::startWorkers(size_t count) {
    for (size_t i = 0; i < count; ++i) {
        auto worker = std::make_unique<Worker>(std::chrono::microseconds(options_.config.busyPollMicros));
        worker->epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
        if (!worker->epoll.valid())
            return Error::fromErrno("epoll_create1");
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = nullptr; // the stop event; every other entry is a Connection
        if (::epoll_ctl(worker->epoll.get(), EPOLL_CTL_ADD, stopWorkers_.get(), &ev) != 0)
            return Error::fromErrno("epoll_ctl");
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

} // namespace cenalloc
