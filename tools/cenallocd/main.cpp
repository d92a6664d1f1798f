// SPDX-License-Identifier: MIT
// cenallocd: the allocator daemon. Parses arguments, sets up signals and logging, runs the library's Daemon.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cenalloc/daemon.h>
#include <cenalloc/platform.h>
#include <cenalloc/platform_sources.h>
#include <cenalloc/session.h>

namespace {

using cenalloc::LogLevel;

// journald reads a "<N>" prefix as the syslog priority of a line written
// to stderr; JOURNAL_STREAM says stderr is connected to the journal.
bool stderrIsJournal() {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (!stream)
        return false;
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) != 0)
        return false;
    return fmt::format("{}:{}", st.st_dev, st.st_ino) == stream;
}

int syslogPriority(LogLevel level) {
    switch (level) {
    case LogLevel::Error: return 3;
    case LogLevel::Warning: return 4;
    case LogLevel::Info: return 6;
    case LogLevel::Debug: return 7;
    }
    return 6;
}

int fail(const cenalloc::Error& error) {
    std::cerr << "cenallocd: error: " << error.toString() << "\n";
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"cenallocd: the cenalloc allocator service"};
    cenalloc::PlatformSource source;
    std::string socketPath;
    std::string configPath;
    std::string logLevelText = "info";
    app.add_option("--platform", source.yamlPath, "platform description (YAML); default: the built-in one")
        ->check(CLI::ExistingFile);
    app.add_option("--dtb", source.dtbPath, "a flattened device tree (.dtb) instead")->check(CLI::ExistingFile);
    app.add_option("--overlay", source.overlayPath, "board overlay (YAML) for --dtb or --host")
        ->check(CLI::ExistingFile);
    app.add_flag("--host", source.host,
                 "the running host (/sys, /proc, /dev) instead: its heaps placed on the host kernel's "
                 "/dev/dma_heap, whose real dma-bufs alloc-for hands out, and a deferred buffer's storage "
                 "(storage-fd); what systemd/cenallocd.service runs");
    app.add_option("--socket", socketPath,
                   fmt::format("socket to listen on (default {})", cenalloc::Session::defaultSocketPath()));
    app.add_option("--config", configPath, "configuration (YAML): quotas, heap access, client limits");
    app.add_option("--log-level", logLevelText, "error, warning, info or debug")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    auto level = cenalloc::parseLogLevel(logLevelText);
    if (!level)
        return fail(level.error().withContext("--log-level"));

    // Blocked before any thread exists so that every thread inherits the
    // mask and only the signalfd sees SIGTERM/SIGINT.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    if (::sigprocmask(SIG_BLOCK, &signals, nullptr) != 0)
        return fail(cenalloc::Error::fromErrno("sigprocmask"));
    cenalloc::UniqueFd signalFd(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!signalFd.valid())
        return fail(cenalloc::Error::fromErrno("signalfd"));
    std::signal(SIGPIPE, SIG_IGN);

    std::vector<std::string> notes;
    auto platform = source.given() ? cenalloc::loadPlatformSource(source, &notes)
                                   : cenalloc::Result<cenalloc::Platform>(cenalloc::defaultPlatform());
    if (!platform)
        return fail(platform.error());
    cenalloc::DaemonOptions options;
    options.socketPath = socketPath;
    options.configPath = configPath;
    options.logLevel = *level;
    options.stopFd = signalFd.borrow();
    const bool journal = stderrIsJournal();
    options.log = [journal](LogLevel lvl, const std::string& message) {
        std::string line = journal ? fmt::format("<{}>{}\n", syslogPriority(lvl), message)
                                   : fmt::format("cenallocd: {}: {}\n", cenalloc::logLevelName(lvl), message);
        // One write per line so that lines of concurrent threads never interleave.
        [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    };
    // What the platform loader noted (device tree warnings, what --host
    // could and could not learn).
    if (*level >= LogLevel::Info)
        for (const std::string& note : notes)
            options.log(LogLevel::Info, "platform: " + note);

    auto daemon = cenalloc::Daemon::create(*platform, std::move(options));
    if (!daemon)
        return fail(daemon.error());
    // Type=notify units start their dependents once we listen.
    if (auto ok = cenalloc::notifySystemd("READY=1"); !ok)
        std::cerr << "cenallocd: warning: " << ok.error().toString() << "\n";
    auto ran = (*daemon)->run();
    (void)cenalloc::notifySystemd("STOPPING=1");
    if (!ran)
        return fail(ran.error());
    return 0;
}
