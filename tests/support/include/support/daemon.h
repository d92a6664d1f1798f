// SPDX-License-Identifier: MIT
// The one daemon launcher of the tests: cenallocd as a child process, or its Server in a thread of this one.
#pragma once

#include <chrono>
#include <csignal>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <cenalloc/session.h>
#include <cenalloc/unique_fd.h>

#include "service/config.h"
#include "service/server.h"
#include "support/process.h"
#include "support/wait.h"

namespace cenalloc::test {

/// A unique socket path for one test (the path of a config file, with a
/// suffix).
std::string testSocketPath(std::string_view tag);

/// How a DaemonProcess gets its listening socket.
enum class DaemonStart {
    /// Socket activation: the socket is bound and listening here and handed
    /// over as fd 3 with LISTEN_FDS/LISTEN_PID, so clients can connect at
    /// once (the kernel queues them until the daemon accepts) and nothing
    /// waits for the daemon to come up.
    Activated,
    /// The daemon binds --socket itself; the constructor waits for its
    /// readiness notification (READY=1 on NOTIFY_SOCKET, as systemd's
    /// Type=notify does), bounded by kPatience.
    Notified,
};

struct DaemonOptions {
    DaemonStart start = DaemonStart::Activated;
    /// Written to a file passed as --config, when not empty.
    std::string configYaml = {};
    std::string logLevel = "warning";
    /// More arguments (--platform FILE, ...).
    std::vector<std::string> args = {};
    /// Where it listens; a testSocketPath() when empty.
    std::string socketPath = {};
    /// Its stdout and stderr: the test's own by default.
    Output output = Output::Inherit;
};

/// cenallocd as a child process (the binary the build made), stopped with
/// SIGTERM and reaped on destruction; its socket and config file removed.
/// Its environment is this process's without what would steer it
/// (ProcessOptions::cleanEnv).
class DaemonProcess {
public:
    /// Socket-activated, with @p configYaml as its configuration.
    explicit DaemonProcess(const char* configYaml = "");
    explicit DaemonProcess(DaemonOptions options);
    ~DaemonProcess();
    DaemonProcess(const DaemonProcess&) = delete;
    DaemonProcess& operator=(const DaemonProcess&) = delete;

    /// Started (and, DaemonStart::Notified, said READY=1).
    bool running() const { return child_ && child_->started() && readiness_ == "READY=1"; }
    pid_t pid() const { return child_ ? child_->pid() : -1; }
    const std::string& path() const { return path_; }
    /// DaemonStart::Notified: the first notification it sent ("READY=1"
    /// once it listens), "(nothing)" when none came. Activated: "READY=1".
    const std::string& readiness() const { return readiness_; }
    /// DaemonStart::Notified: the next notification ("STOPPING=1"), bounded
    /// by kPatience; "(nothing)" when none came.
    std::string nextNotification();

    std::unique_ptr<Session> connect();

    /// Send @p signal and reap it (bounded: reap()): its exit code, or
    /// 128 + N for death by signal N.
    int stop(int signal = SIGTERM);
    /// Reap it once it exits on its own or by a signal the test sent
    /// (bounded: reap()); its exit code, or 128 + N.
    int wait();
    /// The caller reaped the process itself.
    void forget();

private:
    std::string path_;
    std::string configPath_;
    std::string notifyPath_;
    UniqueFd notify_;
    std::string readiness_ = "(nothing)";
    std::unique_ptr<ChildProcess> child_;
};

/// Run cenallocd with @p args to its end (bounded: runProcess()), with
/// this process's environment without what would steer it: its exit code
/// and output. For a daemon that must refuse to start.
ProcessRun runDaemon(const std::vector<std::string>& args, ProcessOptions options = {});

/// A Server running in a thread of this process, stopped and joined on
/// destruction.
class InProcessDaemon {
public:
    explicit InProcessDaemon(ServiceConfig config = {}, const Platform& platform = defaultPlatform());
    explicit InProcessDaemon(ServerOptions options, const Platform& platform = defaultPlatform());
    ~InProcessDaemon();
    InProcessDaemon(const InProcessDaemon&) = delete;
    InProcessDaemon& operator=(const InProcessDaemon&) = delete;

    bool ok() const { return server_ != nullptr; }
    const std::string& path() const { return server_->socketPath(); }
    Server& server() { return *server_; }
    std::unique_ptr<Session> connect();

    /// Wait until @p done holds, and false if it did not within @p bound.
    /// For server state that has no event of its own (how many connections
    /// it has): the server logs every change of it ("client N connected",
    /// "client N disconnected", "client N: dropping: ..."), so @p done is
    /// checked again at each line it logs, and at nothing else.
    template <typename Done> bool waitUntil(Done done, std::chrono::milliseconds bound = kPatience) {
        const auto deadline = std::chrono::steady_clock::now() + bound;
        for (;;) {
            const uint64_t seen = log_->lines();
            if (done())
                return true;
            if (!log_->waitPast(seen, deadline))
                return done();
        }
    }

private:
    /// Counts the server's log lines and wakes waiters at each.
    class LogEvents {
    public:
        void add();
        uint64_t lines() const;
        /// Wait until more than @p seen lines were logged; false at @p deadline.
        bool waitPast(uint64_t seen, std::chrono::steady_clock::time_point deadline) const;

    private:
        mutable std::mutex mutex_;
        mutable std::condition_variable changed_;
        uint64_t lines_ = 0; // guarded by mutex_
    };
    static ServerOptions optionsWith(ServiceConfig config);

    std::shared_ptr<LogEvents> log_ = std::make_shared<LogEvents>();
    std::unique_ptr<Server> server_;
    std::thread thread_;
};

} // namespace cenalloc::test
