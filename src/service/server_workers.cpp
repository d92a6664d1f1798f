// SPDX-License-Identifier: MIT
// Server's workers: epoll sets of connections, each served one request per round, polled before sleeping.
#include "service/server.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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
        ev.data.ptr = nullptr; // the stop event; then the wake fd; every other entry is a Connection
        if (::epoll_ctl(worker->epoll.get(), EPOLL_CTL_ADD, stopWorkers_.get(), &ev) != 0)
            return Error::fromErrno("epoll_ctl");
        worker->wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!worker->wake.valid())
            return Error::fromErrno("eventfd");
        ev.data.ptr = &worker->wake;
        if (::epoll_ctl(worker->epoll.get(), EPOLL_CTL_ADD, worker->wake.get(), &ev) != 0)
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
            if (!events[i].data.ptr)
                return; // stopping
            if (events[i].data.ptr == &w.wake)
                continue; // mail: below
            auto* c = static_cast<Connection*>(events[i].data.ptr);
            const bool hungUp = events[i].events & (EPOLLHUP | EPOLLERR);
            if (hungUp && (!c->outbox.empty() || c->parked))
                drop(*c);
        }
        // Mail first: a parked request that may go on, events to send.
        for (int i = 0; i < n; ++i)
            if (events[i].data.ptr == &w.wake) {
                takeMail(w);
                break;
            }
        // Each ready connection once per round: one request, or the
        // replies it was waiting to take.
        for (int i = 0; i < n; ++i) {
            if (events[i].data.ptr == &w.wake)
                continue;
            auto* c = static_cast<Connection*>(events[i].data.ptr);
            if (c->dropped)
                continue; // above, or by its mail: freed below
            if (c->outbox.empty() && c->parked)
                continue; // nothing is read from it while it waits
            bool keep = c->outbox.empty() ? serveRequest(*c) : flush(*c);
            if (!keep)
                drop(*c);
        }
        if (!w.waiting.empty())
            expireSends(w);
        if (!w.parked.empty())
            expireParked(w);
        w.dropped.clear(); // nothing of this round names them any more
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
    int timeout = -1; // or until the first queued reply's or parked request's deadline
    std::optional<Clock::time_point> next;
    for (Connection* c : w.waiting)
        next = next ? std::min(*next, c->sendDeadline) : c->sendDeadline;
    for (Connection* c : w.parked)
        next = next ? std::min(*next, c->parkDeadline) : c->parkDeadline;
    if (next) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now());
        timeout = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    n = ::epoll_wait(w.epoll.get(), events.data(), size, timeout);
    if (n > 0)
        w.poll.missed(Clock::now() - start); // it slept, then work came
    return n;
}

bool Server::serveRequest(Connection& c) {
    // A uid whose fds the closer has not got rid of is given no more to
    // hold: a request that carries fds is not received (up to 253 of them
    // would be the daemon's), its connection goes, and what it queued goes
    // with its socket, to the closer. Its other connections go on.
    if (closer_.pending(c.uid) >= kMaxUnclosedFdsPerUid && nextDatagramCarriesFds(c.socket)) {
        log(LogLevel::Warning, fmt::format("client {}: uid {} has {} fds that are not closed yet and sends more; "
                                           "disconnecting it",
                                           c.clientId, c.uid, closer_.pending(c.uid)));
        return false;
    }
    auto request = receiveDatagram(c.socket, wire::kMaxRequestSize, MSG_DONTWAIT);
    if (!request) {
        if (request.error().code() == EAGAIN)
            return true;
        if (request.error().code() != ECONNRESET)
            log(LogLevel::Debug, fmt::format("client {}: {}", c.clientId, request.error().toString()));
        return false;
    }
    Reply reply = handleRequest(*c.client, *request);
    if (reply.parked)
        return park(c, std::move(*request));
    if (!closeSent(c, request->fds))
        return false;
    if (reply.header.error != 0 && options_.logLevel >= LogLevel::Debug) {
        wire::ReplyPrefix prefix;
        std::memcpy(&prefix, reply.payload.data(), sizeof prefix);
        std::string message(reinterpret_cast<const char*>(reply.payload.data() + sizeof prefix), prefix.messageLength);
        log(LogLevel::Debug, fmt::format("client {}: {}: {} ({})", c.clientId, wire::opName(reply.header.opcode),
                                         message, errnoName(reply.header.error)));
    }
    return sendOrQueue(c, std::move(reply)) && deliverMail(c);
}

bool Server::closeSent(Connection& c, std::vector<UniqueFd>& fds) {
    // What the client sent is closed before it has the reply: here if that
    // cannot block, else by the closer; a uid whose fds the closer cannot
    // get rid of is cut off.
    bool unclosable = false;
    for (UniqueFd& fd : fds) {
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
    return true;
}

// ------------------------------------------------ parked requests and mail

bool Server::park(Connection& c, Datagram request) {
    // The request waits for other clients' acknowledgements: it keeps its
    // fd, and this worker serves everyone else meanwhile.
    const bool wasParked = c.parked.has_value();
    c.parked = std::move(request);
    c.parkDeadline = service_->parkedDeadline(c.clientId).value_or(std::chrono::steady_clock::now());
    if (!wasParked)
        c.worker->parked.push_back(&c);
    log(LogLevel::Debug,
        fmt::format("client {}: {} waits for acknowledgements", c.clientId,
                    wire::opName(c.parked->bytes.size() >= sizeof(wire::MessageHeader)
                                     ? reinterpret_cast<const wire::MessageHeader*>(c.parked->bytes.data())->opcode
                                     : 0)));
    return rearm(c);
}

bool Server::resumeParked(Connection& c) {
    Reply reply = handleRequest(*c.client, *c.parked);
    if (reply.parked)
        return park(c, std::move(*c.parked));
    Datagram request = std::move(*c.parked);
    c.parked.reset();
    std::erase(c.worker->parked, &c);
    if (!closeSent(c, request.fds) || !rearm(c))
        return false;
    return sendOrQueue(c, std::move(reply)) && deliverMail(c);
}

void Server::expireParked(Worker& w) {
    const auto now = std::chrono::steady_clock::now();
    std::vector<Connection*> due;
    for (Connection* c : w.parked)
        if (c->parkDeadline <= now)
            due.push_back(c);
    for (Connection* c : due)
        if (!c->dropped && !resumeParked(*c))
            drop(*c);
}

void Server::post(Connection& c, const MoveEvent* event, bool resume) {
    Worker& w = *c.worker;
    {
        std::lock_guard lock(w.mailMutex);
        if (event) {
            // One per attachment, the newest: the mail stays bounded by the
            // client's attachments, however many moves others make.
            std::erase_if(c.mail, [&](const MoveEvent& e) { return e.attachment == event->attachment; });
            c.mail.push_back(*event);
        }
        c.resume = c.resume || resume;
        if (std::find(w.posted.begin(), w.posted.end(), &c) == w.posted.end())
            w.posted.push_back(&c);
    }
    uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(w.wake.get(), &one, sizeof one);
}

void Server::takeMail(Worker& w) {
    uint64_t value;
    [[maybe_unused]] ssize_t r = ::read(w.wake.get(), &value, sizeof value);
    std::vector<Connection*> posted;
    {
        std::lock_guard lock(w.mailMutex);
        posted.swap(w.posted);
    }
    for (Connection* c : posted) {
        if (c->dropped)
            continue;
        bool resume;
        {
            std::lock_guard lock(w.mailMutex);
            resume = std::exchange(c->resume, false);
        }
        bool keep = deliverMail(*c);
        if (keep && resume && c->parked)
            keep = resumeParked(*c);
        if (!keep)
            drop(*c);
    }
}

bool Server::deliverMail(Connection& c) {
    // Events go out behind what is queued already: while the outbox is not
    // empty they stay in the mail (coalesced), and flush() comes back here.
    while (c.outbox.empty()) {
        std::optional<MoveEvent> event;
        {
            std::lock_guard lock(c.worker->mailMutex);
            if (c.mail.empty())
                return true;
            event = std::move(c.mail.front());
            c.mail.pop_front();
        }
        if (!sendOrQueue(c, eventMessage(*event)))
            return false;
    }
    return true;
}

bool Server::rearm(Connection& c) {
    epoll_event ev{};
    // Replies (or events) to send first; then, unless a request is parked,
    // the next request. HUP and ERR are always reported.
    ev.events = !c.outbox.empty() ? uint32_t{EPOLLOUT} : c.parked ? 0u : uint32_t{EPOLLIN};
    ev.data.ptr = &c;
    return ::epoll_ctl(c.worker->epoll.get(), EPOLL_CTL_MOD, c.socket.get(), &ev) == 0;
}

} // namespace cenalloc
