// SPDX-License-Identifier: MIT
// Server: cenallocd's socket and its connections, served by a few epoll workers (server.cpp, server_workers.cpp,
// send_queue.cpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <cenalloc/daemon.h>
#include <cenalloc/platform.h>
#include <cenalloc/result.h>
#include <cenalloc/unique_fd.h>

#include "service/config.h"
#include "service/fd_closer.h"
#include "service/poll_window.h"
#include "service/subordinate_ids.h"
#include "service/service.h"
#include "service/socket_io.h"
#include "service/systemd.h"

struct epoll_event;

namespace cenalloc {

struct Reply;

struct ServerOptions {
    /// Where to listen (Session::defaultSocketPath() when empty); ignored
    /// when listenFd is given.
    std::string socketPath;
    /// A listening socket handed over (socket activation).
    UniqueFd listenFd;
    ServiceConfig config;
    LogSink log;
    LogLevel logLevel = LogLevel::Info;
    /// run() returns when this fd becomes readable (e.g. a signalfd for
    /// SIGTERM and SIGINT); optional.
    BorrowedFd stopFd;
    /// A client that does not take a reply for this long is disconnected.
    int sendTimeoutMs = 5000;
    /// What the replies a uid's connections have not taken may add up to;
    /// the connection whose reply would pass it is disconnected.
    size_t maxQueuedBytesPerUid = 64 * 1024 * 1024;
};

/// cenallocd: a Service behind a SOCK_SEQPACKET Unix socket.
///
/// Concurrency model: a few worker threads (config.workers, by default one
/// per CPU up to 4), each with its own epoll set of connections, serve every
/// socket that is ready per wake-up: one request from each in turn, its
/// reply sent without blocking. A client that does not take its replies has
/// them queued and its requests left unread until it does; past
/// options.sendTimeoutMs it is disconnected. Fds a client sends that are
/// not buffers are closed by an FdCloser, since such a close can block. An
/// idle worker polls a while before it sleeps (PollWindow). The thread
/// calling run() accepts (at most config.maxClients,
/// config.maxClientsPerUid per uid, each new connection to the least
/// loaded worker), reaps buffers whose inode is gone, and stops. The
/// service's lock is never held across socket I/O and no socket operation
/// blocks, so a slow or hostile client stalls nobody (docs/protocol.md says
/// more).
///
/// Thread safety: stop() may be called from any thread; the rest from the
/// owner's.
class Server {
public:
    /// Listen (bind, or adopt options.listenFd), set up the service and
    /// start the workers. Errors: those of Service::create; EADDRINUSE when
    /// a daemon already listens on the path; errno of
    /// socket/bind/listen/mkdir/epoll; EAGAIN when a thread cannot start.
    static Result<std::unique_ptr<Server>> create(const Platform& platform, ServerOptions options);
    /// Stops (if running), stops the workers, disconnects every client,
    /// removes the socket file it created.
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Serve until stop() or the stop fd. Errors: errno of epoll.
    Result<void> run();
    /// Make run() return soon; safe from any thread.
    void stop();

    /// The path clients connect to (empty for an inherited socket).
    const std::string& socketPath() const { return socketPath_; }
    Service& service() { return *service_; }
    /// Connections open now.
    size_t connectionCount() const;
    /// Threads serving connections.
    size_t workerCount() const { return workers_.size(); }

private:
    /// A datagram a client has not taken yet.
    struct Outgoing {
        std::vector<std::byte> bytes;
        UniqueFd fd; ///< attached to this datagram
    };
    // A peer whose uid is in a subuid(5) range: made its range's owner.
    void chargeToOwner(Credentials& peer);
    struct Worker;
    struct Connection {
        UniqueFd socket; // non-blocking
        std::unique_ptr<ServiceClient> client;
        uint64_t clientId = 0;
        uint32_t uid = 0;
        Worker* worker = nullptr;
        // Touched only by the connection's worker: replies not taken yet,
        // in order, and when the client must have taken them.
        std::deque<Outgoing> outbox;
        size_t queuedBytes = 0; // the outbox's, in Server::queuedBytes_ (under mutex_)
        std::chrono::steady_clock::time_point sendDeadline;
        // The worker's own: a request the service parked (Reply::parked),
        // run again when woken or at parkDeadline; nothing more is read
        // from the client meanwhile.
        std::optional<Datagram> parked;
        std::chrono::steady_clock::time_point parkDeadline;
        // Posted by any thread, under worker->mailMutex: move events not
        // sent yet (one per attachment, as EventQueue keeps them: bounded
        // by the client's attachments) and the wake of its parked request.
        std::deque<MoveEvent> mail;
        bool resume = false;
        // Set by drop(): its worker may still hold events or mail naming it
        // this round; Worker::dropped keeps it alive until the round ends.
        bool dropped = false;
    };
    struct Worker {
        explicit Worker(PollWindow::Duration pollLimit) : poll(pollLimit) {}
        UniqueFd epoll;
        PollWindow poll; // the worker's own
        std::thread thread;
        size_t connections = 0; // guarded by mutex_
        // Its connections with a non-empty outbox (the worker's own).
        std::vector<Connection*> waiting;
        // Its connections with a parked request (the worker's own).
        std::vector<Connection*> parked;
        // Written when a connection of its has mail; in its epoll set.
        UniqueFd wake;
        std::mutex mailMutex;
        std::vector<Connection*> posted; // guarded by mailMutex
        // Connections dropped this round (the worker's own), freed when the
        // round is over: an epoll event or a mail of the same round may name
        // one, and finds it marked dropped instead of freed.
        std::vector<std::unique_ptr<Connection>> dropped;
    };

    // Fds that are not buffers a uid may have sent and the closer not closed
    // yet (a close that blocks: FdCloser) before its clients are cut off.
    static constexpr size_t kMaxUnclosedFdsPerUid = 64;
    // The closer's uid for a socket whose peer is unknown ((uid_t)-1 names
    // no user: setresuid(2) takes it as "unchanged").
    static constexpr uint32_t kUnknownUid = UINT32_MAX;
    /// ServiceConfig::workers, or one per CPU up to a few.
    static size_t workerCountFor(const ServiceConfig& config);

    Server() = default;
    void log(LogLevel level, const std::string& message) const;
    Result<void> startWorkers(size_t count);
    void acceptAll();
    void work(Worker& worker);
    /// epoll_wait on the worker's set, after polling it for a while.
    int waitForWork(Worker& worker, std::span<epoll_event> events);
    // Each returns false when the connection is to be dropped.
    bool serveRequest(Connection& connection);
    bool sendOrQueue(Connection& connection, Reply reply);
    /// Put @p reply's datagrams from @p from on in the outbox; false (and
    /// nothing queued) when they would pass the uid's bound.
    bool queue(Connection& connection, Reply& reply, size_t from);
    void unqueueLocked(Connection& connection, size_t bytes);
    bool flush(Connection& connection);
    /// From any thread: @p event (when not null) for the connection, and
    /// (@p resume) its parked request may go on; its worker is woken.
    void post(Connection& connection, const MoveEvent* event, bool resume);
    /// The worker's side of post(): for each connection with mail, send
    /// its events (while nothing is queued before them) and run its parked
    /// request again when woken.
    void takeMail(Worker& worker);
    bool deliverMail(Connection& connection);
    bool park(Connection& connection, Datagram request);
    bool resumeParked(Connection& connection);
    void expireParked(Worker& worker);
    /// Close what a client sent with a request; false when its uid has sent
    /// too many fds the closer cannot get rid of.
    bool closeSent(Connection& connection, std::vector<UniqueFd>& fds);
    /// The epoll events the connection waits for now.
    bool rearm(Connection& connection);
    /// On the connection's worker: the client's claims released, the
    /// connection marked dropped and freed at the end of the round.
    void drop(Connection& connection);
    /// What drop() does, for any thread: the connection is out of every
    /// list and the caller owns it.
    std::unique_ptr<Connection> unlink(Connection& connection);
    /// End a client's connection (or one refused): shut down at once,
    /// closed by the closer.
    void hangUp(UniqueFd socket, uint32_t uid);
    void expireSends(Worker& worker);
    void reapHungUp();
    void shutdownConnections();

    ServerOptions options_;
    std::shared_ptr<Service> service_;
    UniqueFd listen_;
    UniqueFd epoll_;
    UniqueFd stopEvent_;   // written by stop()
    UniqueFd stopWorkers_; // written once, by the destructor; never read
    UniqueFd reapTimer_;   // re-arms the inotify fd after a pause
    std::string socketPath_;
    bool ownsSocketPath_ = false;
    std::vector<std::unique_ptr<Worker>> workers_;
    FdCloser closer_;
    // Whose subordinate uids are whose (config.subordinateUids): the
    // accepting thread's own.
    std::optional<SubordinateIdsFile> subordinateUids_;

    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<Connection>> connections_; // guarded by mutex_
    std::map<uint32_t, size_t> queuedBytes_;               // guarded by mutex_; by uid: their outboxes
};

} // namespace cenalloc
