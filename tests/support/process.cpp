// SPDX-License-Identifier: MIT
// ChildProcess: fork and exec with prepared argv, environment and fds; output collected with poll(2).
#include "support/process.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <string_view>

#include <gtest/gtest.h>

extern char** environ;

namespace cenalloc::test {

namespace {

bool steersTheChild(std::string_view var) {
    for (std::string_view prefix :
         {"CENALLOC_", "LD_PRELOAD=", "NOTIFY_SOCKET=", "LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES="})
        if (var.starts_with(prefix))
            return true;
    return false;
}

std::string_view nameOf(std::string_view var) {
    return var.substr(0, var.find('='));
}

std::vector<std::string> environmentFor(const ProcessOptions& options) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e)
        if (!options.cleanEnv || !steersTheChild(*e))
            env.emplace_back(*e);
    std::vector<std::string> added = options.env;
    if (options.listenFds) {
        added.push_back("LISTEN_FDS=" + std::to_string(options.passFds.size()));
        added.push_back("LISTEN_PID="); // the child writes its pid in
    }
    for (const std::string& var : added) {
        std::erase_if(env, [&](const std::string& e) { return nameOf(e) == nameOf(var); });
        env.push_back(var);
    }
    return env;
}

// The decimal digits of @p value and a NUL into @p out (async-signal-safe).
void writeDecimal(char* out, long value) {
    char reversed[24];
    int n = 0;
    do {
        reversed[n++] = static_cast<char>('0' + value % 10);
        value /= 10;
    } while (value > 0);
    for (int i = 0; i < n; ++i)
        out[i] = reversed[n - 1 - i];
    out[n] = '\0';
}

bool readSome(UniqueFd& fd, std::string& into) {
    char buffer[4096];
    ssize_t n;
    do {
        n = ::read(fd.get(), buffer, sizeof buffer);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        fd.reset();
        return false;
    }
    into.append(buffer, static_cast<size_t>(n));
    return true;
}

} // namespace

std::string findProgram(const std::string& name) {
    if (name.find('/') != std::string::npos)
        return name;
    const char* path = std::getenv("PATH");
    std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
    while (!dirs.empty()) {
        size_t end = dirs.find(':');
        std::string dir(dirs.substr(0, end));
        dirs = end == std::string_view::npos ? std::string_view() : dirs.substr(end + 1);
        std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0)
            return candidate;
    }
    return {};
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, ProcessOptions options) {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
        ADD_FAILURE() << "pipe2: " << std::strerror(errno);
        return;
    }
    UniqueFd inRead(in[0]), inWrite(in[1]), outRead(out[0]), outWrite(out[1]), errRead(err[0]), errWrite(err[1]);
    UniqueFd devNull(::open("/dev/null", O_WRONLY | O_CLOEXEC));

    // Everything the child needs, prepared before fork: after it only
    // async-signal-safe calls.
    std::vector<std::string> args = argv;
    if (!args.empty())
        if (std::string found = findProgram(args[0]); !found.empty())
            args[0] = found;
    std::vector<char*> argp;
    for (std::string& a : args)
        argp.push_back(a.data());
    argp.push_back(nullptr);
    std::vector<std::string> env = environmentFor(options);
    char* listenPid = nullptr;
    for (std::string& e : env)
        if (options.listenFds && e == "LISTEN_PID=") {
            e.resize(e.size() + 24, '\0');
            listenPid = e.data() + std::strlen("LISTEN_PID=");
        }
    std::vector<char*> envp;
    for (std::string& e : env)
        envp.push_back(e.data());
    envp.push_back(nullptr);
    int stdio[3] = {inRead.get(), outWrite.get(), errWrite.get()};
    switch (options.output) {
    case Output::Separate: break;
    case Output::Inherit:
        stdio[1] = STDOUT_FILENO;
        stdio[2] = STDERR_FILENO;
        break;
    case Output::Merged: stdio[2] = outWrite.get(); break;
    case Output::Stdout: stdio[2] = devNull.get(); break;
    case Output::Stderr:
        stdio[1] = devNull.get();
        stdio[2] = outWrite.get();
        break;
    }
    constexpr size_t kMaxPassed = 16;
    EXPECT_LE(options.passFds.size(), kMaxPassed);
    const size_t passed = std::min(options.passFds.size(), kMaxPassed);
    const int* pass = options.passFds.data();

    flushStdio();
    pid_ = ::fork();
    if (pid_ < 0) {
        ADD_FAILURE() << "fork: " << std::strerror(errno);
        return;
    }
    if (pid_ == 0) {
        if (listenPid)
            writeDecimal(listenPid, ::getpid());
        // Everything out of the way of 0, 1, 2 and 3.. first, then into
        // place: dup2 leaves the copies without O_CLOEXEC.
        constexpr int kHigh = 100;
        int high[3 + kMaxPassed];
        for (int i = 0; i < 3; ++i)
            high[i] = ::fcntl(stdio[i], F_DUPFD_CLOEXEC, kHigh);
        for (size_t i = 0; i < passed; ++i)
            high[3 + i] = ::fcntl(pass[i], F_DUPFD_CLOEXEC, kHigh);
        for (size_t i = 0; i < 3 + passed; ++i)
            if (high[i] < 0 || ::dup2(high[i], static_cast<int>(i)) < 0)
                _exit(126);
        ::execve(argp[0], argp.data(), envp.data());
        _exit(127);
    }
    stdin_ = std::move(inWrite);
    if (options.output != Output::Inherit)
        stdout_ = std::move(outRead);
    if (options.output == Output::Separate)
        stderr_ = std::move(errRead);
}

ChildProcess::~ChildProcess() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        reap(pid_);
    }
}

std::string ChildProcess::readLine() {
    for (;;) {
        if (size_t end = pending_.find('\n'); end != std::string::npos) {
            std::string line = pending_.substr(0, end);
            pending_.erase(0, end + 1);
            out_ += line + "\n";
            return line;
        }
        if (stdout_.valid() && !waitReadable(stdout_)) {
            ADD_FAILURE() << "no line from process " << pid_ << " in " << kPatience.count() << " ms";
            stdout_.reset();
        }
        if (!stdout_.valid() || !readSome(stdout_, pending_)) {
            std::string rest = std::move(pending_);
            pending_.clear();
            out_ += rest;
            return rest;
        }
    }
}

void ChildProcess::writeLine(const std::string& line) {
    std::string text = line + "\n";
    ASSERT_EQ(::write(stdin_.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
}

void ChildProcess::drainOutput(std::chrono::milliseconds bound) {
    out_ += pending_;
    pending_.clear();
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (stdout_.valid() || stderr_.valid()) {
        pollfd fds[2] = {{stdout_.get(), POLLIN, 0}, {stderr_.get(), POLLIN, 0}};
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        int n = ::poll(fds, 2, static_cast<int>(std::max<int64_t>(left.count(), 0)));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ADD_FAILURE() << "process " << pid_ << " kept its output open for " << bound.count() << " ms: killed";
            ::kill(pid_, SIGKILL);
            stdout_.reset();
            stderr_.reset();
            break;
        }
        if (fds[0].revents)
            readSome(stdout_, out_);
        if (fds[1].revents)
            readSome(stderr_, err_);
    }
}

bool ChildProcess::exitsWithin(std::chrono::milliseconds bound) {
    if (waitForExit(pid_, bound))
        return true;
    ::kill(pid_, SIGKILL);
    return false;
}

int ChildProcess::wait(std::chrono::milliseconds bound) {
    stdin_.reset();
    if (pid_ <= 0)
        return -1;
    drainOutput(bound);
    int code = reap(pid_, bound);
    pid_ = -1;
    return code;
}

int ChildProcess::stop(int signal, std::chrono::milliseconds bound) {
    ::kill(pid_, signal);
    return wait(bound);
}

ProcessRun runProcess(const std::vector<std::string>& argv, ProcessOptions options, std::chrono::milliseconds bound) {
    ChildProcess child(argv, std::move(options));
    ProcessRun run;
    if (!child.started())
        return run;
    run.exitCode = child.wait(bound);
    run.out = child.out();
    run.err = child.err();
    return run;
}

void flushStdio() {
    std::fflush(nullptr);
}

void exitChild(int code) {
    std::fflush(nullptr);
    _exit(code);
}

bool becomeUid(uid_t id, const std::vector<gid_t>& groups) {
    return ::setgroups(groups.size(), groups.empty() ? nullptr : groups.data()) == 0 && ::setresgid(id, id, id) == 0 &&
           ::setresuid(id, id, id) == 0;
}

} // namespace cenalloc::test
