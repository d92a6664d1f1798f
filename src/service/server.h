// SPDX-License-Identifier: MIT
// Server: cenallocd's socket, its connections (one thread each), logging and socket activation.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <cenalloc/platform.h>
#include <cenalloc/result.h>
#include <cenalloc/unique_fd.h>

#include "service/config.h"
#include "service/service.h"

namespace cenalloc {

enum class LogLevel { Error = 0, Warning = 1, Info = 2, Debug = 3 };
/// "error", "warning", "info", "debug".
const char* logLevelName(LogLevel level);
/// The inverse. Errors: EINVAL naming the accepted words.
Result<LogLevel> parseLogLevel(std::string_view text);
/// Where the server's log lines go (the tool decides: stderr, the journal).
using LogSink = std::function<void(LogLevel level, const std::string& message)>;

/// The listening socket systemd passed (LISTEN_PID/LISTEN_FDS, as
/// sd_listen_fds(3) reads them; the variables are removed), or an invalid
/// fd when the process was not socket-activated. Errors: EINVAL when more
/// than one socket was passed or it is not a listening SOCK_SEQPACKET Unix
/// socket.
Result<UniqueFd> listenFdFromSystemd();

/// sd_notify(3) without libsystemd: send @p state ("READY=1",
/// "STOPPING=1") to $NOTIFY_SOCKET (a path, or "@name" for an abstract
/// socket) when it is set; nothing otherwise. Errors: errno of socket/sendto.
Result<void> notifySystemd(std::string_view state);

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
};

/// cenallocd: a Service behind a SOCK_SEQPACKET Unix socket.
///
/// Concurrency model: one thread per connection (at most
/// config.maxClients, config.maxClientsPerUid per uid), each blocking only
/// on its own socket, plus the thread calling run(), which accepts, reaps
/// buffers whose inode is gone and joins finished connection threads. The
/// service's lock is never held across socket I/O, so a slow or hostile
/// client stalls nobody but itself (docs/protocol.md says why this rather
/// than one epoll loop).
///
/// Thread safety: stop() may be called from any thread; the rest from the
/// owner's.
class Server {
public:
    /// Listen (bind, or adopt options.listenFd) and set up the service.
    /// Errors: those of Service::create; EADDRINUSE when a daemon already
    /// listens on the path; errno of socket/bind/listen/mkdir.
    static Result<std::unique_ptr<Server>> create(const Platform& platform, ServerOptions options);
    /// Stops (if running), disconnects every client, joins their threads,
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

private:
    struct Connection {
        UniqueFd socket;
        std::unique_ptr<ServiceClient> client;
        uint64_t clientId = 0;
        Credentials peer;
        std::thread thread;
        std::atomic<bool> finished{false};
    };

    Server() = default;
    void log(LogLevel level, const std::string& message) const;
    void acceptAll();
    void serve(Connection& connection);
    void joinFinished();
    void reapHungUp();
    void shutdownConnections();

    ServerOptions options_;
    std::shared_ptr<Service> service_;
    UniqueFd listen_;
    UniqueFd epoll_;
    UniqueFd stopEvent_;     // written by stop()
    UniqueFd finishedEvent_; // written by a connection thread as it ends
    UniqueFd reapTimer_;     // re-arms the inotify fd after a pause
    std::string socketPath_;
    bool ownsSocketPath_ = false;

    mutable std::mutex mutex_;
    std::list<Connection> connections_; // guarded by mutex_ (list: stable addresses for the threads)
};

} // namespace cenalloc
