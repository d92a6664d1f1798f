// SPDX-License-Identifier: MIT
// The daemon launcher: cenallocd socket-activated or notifying its readiness, and an in-process Server.
#include "support/daemon.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "support/sockets.h"

namespace cenalloc::test {

std::string testSocketPath(std::string_view tag) {
    static std::atomic<int> counter = 0;
    return "/tmp/cenalloc-test-" + std::to_string(::getpid()) + "-" + std::string(tag) + "-" +
           std::to_string(++counter) + ".sock";
}

namespace {

// A datagram socket bound at @p path for NOTIFY_SOCKET.
UniqueFd notifySocket(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    ::unlink(path.c_str());
    if (!fd.valid() || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ADD_FAILURE() << "binding " << path << ": " << std::strerror(errno);
        return {};
    }
    return fd;
}

} // namespace

DaemonProcess::DaemonProcess(const char* configYaml) : DaemonProcess(DaemonOptions{.configYaml = configYaml}) {}

DaemonProcess::DaemonProcess(DaemonOptions options) {
    path_ = options.socketPath.empty() ? testSocketPath("proc") : options.socketPath;
    std::vector<std::string> argv = {CENALLOCD, "--log-level", options.logLevel};
    argv.insert(argv.end(), options.args.begin(), options.args.end());
    if (!options.configYaml.empty()) {
        configPath_ = path_ + ".yaml";
        FILE* f = std::fopen(configPath_.c_str(), "w");
        EXPECT_NE(f, nullptr) << configPath_ << ": " << std::strerror(errno);
        if (f) {
            std::fputs(options.configYaml.c_str(), f);
            std::fclose(f);
        }
        argv.insert(argv.end(), {"--config", configPath_});
    }
    ProcessOptions process;
    process.cleanEnv = true;
    process.output = options.output;
    UniqueFd listener;
    if (options.start == DaemonStart::Activated) {
        ::unlink(path_.c_str());
        listener = listenSeqpacket(path_);
        EXPECT_EQ(::chmod(path_.c_str(), 0666), 0); // as SocketMode=0666 does: any uid may connect
        process.passFds = {listener.get()};
        process.listenFds = true;
        readiness_ = "READY=1"; // listening before the daemon even started
    } else {
        argv.insert(argv.end(), {"--socket", path_});
        notifyPath_ = path_ + ".notify";
        notify_ = notifySocket(notifyPath_);
        process.env = {"NOTIFY_SOCKET=" + notifyPath_};
    }
    child_ = std::make_unique<ChildProcess>(argv, std::move(process));
    if (notify_.valid())
        readiness_ = nextNotification();
}

DaemonProcess::~DaemonProcess() {
    if (child_ && child_->pid() > 0)
        stop(SIGTERM);
    ::unlink(path_.c_str());
    if (!configPath_.empty())
        ::unlink(configPath_.c_str());
    if (!notifyPath_.empty())
        ::unlink(notifyPath_.c_str());
}

std::string DaemonProcess::nextNotification() {
    // Bounded: a daemon that never says it is ready fails the test instead of hanging it.
    if (!notify_.valid() || !waitReadable(notify_))
        return "(nothing)";
    char buffer[256] = {};
    ssize_t n = ::recv(notify_.get(), buffer, sizeof buffer - 1, 0);
    return std::string(buffer, n > 0 ? static_cast<size_t>(n) : 0);
}

std::unique_ptr<Session> DaemonProcess::connect() {
    auto session = Session::connect(path_);
    EXPECT_TRUE(session) << session.error().toString();
    return session ? std::move(*session) : nullptr;
}

int DaemonProcess::stop(int signal) {
    if (!child_ || child_->pid() <= 0)
        return -1;
    return child_->stop(signal);
}

int DaemonProcess::wait() {
    if (!child_ || child_->pid() <= 0)
        return -1;
    return child_->wait();
}

void DaemonProcess::forget() {
    if (child_)
        child_->forget();
}

ProcessRun runDaemon(const std::vector<std::string>& args, ProcessOptions options) {
    std::vector<std::string> argv = {CENALLOCD};
    argv.insert(argv.end(), args.begin(), args.end());
    options.cleanEnv = true;
    return runProcess(argv, std::move(options));
}

// ------------------------------------------------------------- in-process

void InProcessDaemon::LogEvents::add() {
    {
        std::lock_guard lock(mutex_);
        ++lines_;
    }
    changed_.notify_all();
}

uint64_t InProcessDaemon::LogEvents::lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
}

bool InProcessDaemon::LogEvents::waitPast(uint64_t seen, std::chrono::steady_clock::time_point deadline) const {
    std::unique_lock lock(mutex_);
    return changed_.wait_until(lock, deadline, [&] { return lines_ != seen; });
}

ServerOptions InProcessDaemon::optionsWith(ServiceConfig config) {
    ServerOptions options;
    options.config = std::move(config);
    return options;
}

InProcessDaemon::InProcessDaemon(ServiceConfig config, const Platform& platform)
    : InProcessDaemon(optionsWith(std::move(config)), platform) {}

InProcessDaemon::InProcessDaemon(ServerOptions options, const Platform& platform) {
    if (options.socketPath.empty() && !options.listenFd.valid())
        options.socketPath = testSocketPath("inproc");
    // Every line, for waitUntil(); the test's own sink, if any, still gets
    // the lines of the level it asked for.
    options.log = [log = log_, sink = std::move(options.log), level = options.logLevel](LogLevel l,
                                                                                        const std::string& message) {
        if (sink && l <= level)
            sink(l, message);
        log->add();
    };
    options.logLevel = LogLevel::Debug;
    auto server = Server::create(platform, std::move(options));
    EXPECT_TRUE(server) << server.error().toString();
    if (!server)
        return;
    server_ = std::move(*server);
    thread_ = std::thread([this] { (void)server_->run(); });
}

InProcessDaemon::~InProcessDaemon() {
    if (!server_)
        return;
    server_->stop();
    thread_.join();
}

std::unique_ptr<Session> InProcessDaemon::connect() {
    auto session = Session::connect(path());
    EXPECT_TRUE(session) << session.error().toString();
    return session ? std::move(*session) : nullptr;
}

} // namespace cenalloc::test
