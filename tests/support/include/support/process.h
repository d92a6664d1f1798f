// SPDX-License-Identifier: MIT
// Child processes for the tests: a program run with chosen argv, environment and fds, its output collected.
#pragma once

#include <chrono>
#include <string>
#include <sys/types.h>
#include <unistd.h>
#include <vector>

#include <cenalloc/unique_fd.h>

#include "support/wait.h"

namespace cenalloc::test {

/// What a child's stdout and stderr become.
enum class Output {
    Separate, ///< two pipes: out() and err()
    Inherit,  ///< this process's stdout and stderr (a daemon's log among the test's)
    Merged,   ///< one pipe, in the order written (a shell's 2>&1): out()
    Stdout,   ///< stdout in out(), stderr discarded (2>/dev/null)
    Stderr,   ///< stderr in out(), stdout discarded (2>&1 >/dev/null)
};

struct ProcessOptions {
    /// NAME=value entries added to the environment, replacing a variable of
    /// the same name.
    std::vector<std::string> env = {};
    /// Start from this process's environment without the variables that
    /// steer cenalloc, the dynamic loader or a supervisor (CENALLOC_*,
    /// LD_PRELOAD, NOTIFY_SOCKET, LISTEN_*): what a test does not set, the
    /// child does not see. Otherwise from this process's whole environment.
    bool cleanEnv = false;
    Output output = Output::Separate;
    /// Placed at fds 3, 4, ... in the child (without O_CLOEXEC).
    std::vector<int> passFds = {};
    /// Socket activation: LISTEN_FDS=<passFds.size()> and LISTEN_PID=<the
    /// child's pid>, as systemd hands sockets over (sd_listen_fds(3)).
    bool listenFds = false;
};

/// The path of program @p name as a shell finds it in $PATH (empty when
/// none); @p name itself when it has a slash.
std::string findProgram(const std::string& name);

/// A child process running a program (argv[0], looked up in $PATH when it
/// has no slash), its stdin a pipe and its output
/// collected as ProcessOptions::output says. Killed (SIGKILL) and reaped
/// on destruction when still running.
///
/// Everything the child needs is prepared before fork(): after it, only
/// async-signal-safe calls, so a test with threads may start one.
class ChildProcess {
public:
    ChildProcess(const std::vector<std::string>& argv, ProcessOptions options = {});
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    /// Whether fork() succeeded (exec failing shows as exit code 127).
    bool started() const { return pid_ > 0; }
    pid_t pid() const { return pid_; }

    /// One line of stdout without its newline, waiting for it (bounded by
    /// kPatience); empty at the end of the output.
    std::string readLine();
    void writeLine(const std::string& line);

    /// Whether the child exits within @p bound (a bound for a hang, not a
    /// measure); one that does not is killed. Then wait().
    bool exitsWithin(std::chrono::milliseconds bound);
    /// Read all output, then reap: the exit code, or 128 + N for death by
    /// signal N. Closes stdin first. Bounded by @p bound (reap()).
    int wait(std::chrono::milliseconds bound = kPatience);
    /// Send @p signal, then wait().
    int stop(int signal, std::chrono::milliseconds bound = kPatience);
    /// The caller reaped the child itself (waitpid on pid()).
    void forget() { pid_ = -1; }

    const std::string& out() const { return out_; }
    const std::string& err() const { return err_; }

private:
    void drainOutput(std::chrono::milliseconds bound);

    pid_t pid_ = -1;
    UniqueFd stdin_, stdout_, stderr_;
    std::string out_, err_;
    std::string pending_; // read from stdout past the last readLine()
};

/// Run @p argv to its end (bounded by @p bound); its exit code and output.
struct ProcessRun {
    int exitCode = -1;
    std::string out;
    std::string err;
};
ProcessRun runProcess(const std::vector<std::string>& argv, ProcessOptions options = {},
                      std::chrono::milliseconds bound = kPatience);

/// fflush(nullptr): before fork(), so that nothing buffered is written twice.
void flushStdio();
/// Flush stdio and _exit(@p code): how a forked child ends.
[[noreturn]] void exitChild(int code);
/// Drop to uid and gid @p id with supplementary groups @p groups (none
/// when empty); false when the process could not.
bool becomeUid(uid_t id, const std::vector<gid_t>& groups);

/// Fork and run @p body in the child, which exits with what it returns
/// (stdio flushed first). gtest assertions do not work there: report a
/// failure through the exit code. The parent gets the pid; reap() it.
template <typename Body> pid_t forkChild(Body body) {
    flushStdio();
    pid_t pid = ::fork();
    if (pid == 0) {
        int code = body();
        exitChild(code);
    }
    return pid;
}

/// Run @p body in a child process as uid and gid @p id, with no
/// supplementary groups (or @p groups); its exit code (reap()): 0 when
/// every check passed, 100 when the child could not become @p id.
template <typename Body> int runAsUid(uid_t id, Body body, const std::vector<gid_t>& groups = {}) {
    pid_t pid = forkChild([&] {
        if (!becomeUid(id, groups))
            return 100;
        return body();
    });
    return reap(pid);
}

} // namespace cenalloc::test
