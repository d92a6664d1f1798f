// SPDX-License-Identifier: MIT
// Running cenallocd: the service that owns one platform's heaps for every process, behind a Unix socket.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <cenalloc/export.h>
#include <cenalloc/platform.h>
#include <cenalloc/result.h>
#include <cenalloc/unique_fd.h>

namespace cenalloc {

class Server;

/// How much the daemon says, most important first.
enum class LogLevel { Error = 0, Warning = 1, Info = 2, Debug = 3 };
/// "error", "warning", "info", "debug".
CENALLOC_EXPORT const char* logLevelName(LogLevel level);
/// The inverse. Errors: EINVAL naming the accepted words.
CENALLOC_EXPORT Result<LogLevel> parseLogLevel(std::string_view text);
/// Where the daemon's log lines go: the program running it decides
/// (stderr, the journal). Called from any of the daemon's threads.
using LogSink = std::function<void(LogLevel level, const std::string& message)>;

/// How to run the daemon, beyond its platform.
struct DaemonOptions {
    /// Where to listen; Session::defaultSocketPath() when empty. Ignored
    /// when systemd passed a listening socket (socket activation).
    std::string socketPath;
    /// The configuration file (YAML: client limits, quotas, per-heap
    /// access; systemd/cenallocd.yaml is an example); empty: the defaults.
    std::string configPath;
    /// Lines above this level are not logged.
    LogLevel logLevel = LogLevel::Info;
    /// Where lines go; none: nowhere.
    LogSink log;
    /// run() returns when this fd becomes readable (a signalfd for SIGTERM
    /// and SIGINT, say); optional. Borrowed: it must stay open while the
    /// daemon runs.
    BorrowedFd stopFd;
};

/// cenallocd: one platform's heaps, IOMMU domains and buffers served to
/// every process through a Unix socket (the protocol of docs/protocol.md;
/// Session::connect() is a client). What the cenallocd program runs, for
/// a program that wants to be the daemon itself.
///
/// Ownership: owns its socket, its worker threads and every client's
/// connection; destroying it disconnects them and removes the socket file
/// it created. Thread safety: stop() may be called from any thread, the
/// rest from the owner's.
class CENALLOC_EXPORT Daemon {
public:
    /// Load the configuration, adopt the socket systemd passed (LISTEN_PID
    /// and LISTEN_FDS, which are then removed from the environment) or bind
    /// @p options.socketPath, and start serving. Errors: errno and EINVAL of
    /// reading the configuration ("<file>:<line>: ..."); EINVAL for a socket
    /// systemd passed that is not one listening SOCK_SEQPACKET Unix socket;
    /// EADDRINUSE when a daemon already listens on the path; errno of
    /// socket/bind/listen/mkdir/epoll; EAGAIN when a thread cannot start.
    static Result<std::unique_ptr<Daemon>> create(const Platform& platform, DaemonOptions options);
    /// Stops, disconnects every client and removes the socket file it made.
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    /// Serve until stop() or the stop fd. Errors: errno of epoll.
    Result<void> run();
    /// Make run() return soon; safe from any thread.
    void stop();
    /// The path clients connect to (empty for a socket systemd passed).
    const std::string& socketPath() const;

private:
    CENALLOC_NO_EXPORT explicit Daemon(std::unique_ptr<Server> server);
    std::unique_ptr<Server> server_;
};

/// sd_notify(3) without libsystemd: send @p state ("READY=1",
/// "STOPPING=1") to $NOTIFY_SOCKET (a path, or "@name" for an abstract
/// socket) when it is set; nothing otherwise. Errors: errno of socket/sendto.
CENALLOC_EXPORT Result<void> notifySystemd(std::string_view state);

} // namespace cenalloc
