// SPDX-License-Identifier: MIT
// Unmodified C programs under LD_PRELOAD=libcenalloc-dmaheap.so, in-process and against a cenallocd.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <cenalloc/session.h>
#include <cenalloc/unique_fd.h>

extern char** environ;

namespace cenalloc {
namespace {

/// LD_PRELOAD for the shim: a sanitizer runtime the shim was built with
/// must come first when the program itself is not instrumented.
std::string preloadValue() {
    std::string runtime = SANITIZER_RUNTIME;
    return runtime.empty() ? std::string(CENALLOC_SHIM_LIBRARY) : runtime + " " + CENALLOC_SHIM_LIBRARY;
}

/// The environment of this process without anything that steers the shim
/// or the dynamic loader, plus @p extra.
std::vector<std::string> environment(const std::vector<std::string>& extra) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        std::string_view var(*e);
        if (var.starts_with("CENALLOC_") || var.starts_with("LD_PRELOAD=") || var.starts_with("NOTIFY_SOCKET="))
            continue;
        env.emplace_back(var);
    }
    // Leaks of the uninstrumented program are not the shim's to report, and
    // a sanitizer runtime preloaded into it must not insist on link order.
    env.emplace_back("ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0");
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
}

/// A child process with its stdin and stdout/stderr on pipes.
class Child {
public:
    Child(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
        int in[2], out[2], err[2];
        if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
            return;
        std::vector<char*> args, envp;
        for (const auto& a : argv)
            args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        for (const auto& e : env)
            envp.push_back(const_cast<char*>(e.c_str()));
        envp.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(in[0], STDIN_FILENO);
            ::dup2(out[1], STDOUT_FILENO);
            ::dup2(err[1], STDERR_FILENO);
            ::execve(args[0], args.data(), envp.data());
            _exit(127);
        }
        ::close(in[0]);
        ::close(out[1]);
        ::close(err[1]);
        stdin_.reset(in[1]);
        stdout_.reset(out[0]);
        stderr_.reset(err[0]);
    }
    ~Child() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    /// One line of stdout (without the newline); empty at the end.
    std::string readLine() {
        std::string line;
        char c;
        while (::read(stdout_.get(), &c, 1) == 1 && c != '\n')
            line += c;
        out_ += line + "\n";
        return line;
    }
    void writeLine(const std::string& line) {
        std::string text = line + "\n";
        ASSERT_EQ(::write(stdin_.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
    }
    /// Exit status after reading everything left; stdout and stderr in out()/err().
    int wait() {
        stdin_.reset();
        out_ += drain(stdout_);
        err_ += drain(stderr_);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    /// Whether the child exits within @p seconds (a bound for a hang, not
    /// a measure); a child that does not is killed. Then wait().
    bool exitsWithin(int seconds) {
        UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
        if (!pidfd.valid())
            return true; // no pidfd: wait() is the bound
        pollfd p{pidfd.get(), POLLIN, 0};
        if (::poll(&p, 1, seconds * 1000) == 1)
            return true;
        ::kill(pid_, SIGKILL);
        return false;
    }
    /// Send @p signal and wait for the exit.
    int stop(int signal) {
        ::kill(pid_, signal);
        return wait();
    }
    const std::string& out() const { return out_; }
    const std::string& err() const { return err_; }

private:
    static std::string drain(const UniqueFd& fd) {
        std::string text;
        char buffer[4096];
        ssize_t n;
        while ((n = ::read(fd.get(), buffer, sizeof buffer)) > 0)
            text.append(buffer, static_cast<size_t>(n));
        return text;
    }
    pid_t pid_ = -1;
    UniqueFd stdin_, stdout_, stderr_;
    std::string out_, err_;
};

std::string uniquePath(const char* what) {
    return "/tmp/cenalloc-shim-test-" + std::to_string(::getpid()) + "-" + what;
}

/// cenallocd on a private socket, ready when constructed (it says READY=1
/// on NOTIFY_SOCKET), stopped when destroyed.
class Daemon {
public:
    Daemon() : socket_(uniquePath("daemon.sock")), notifyPath_(uniquePath("notify.sock")) {
        UniqueFd notify(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, notifyPath_.c_str(), sizeof addr.sun_path - 1);
        ::unlink(notifyPath_.c_str());
        if (::bind(notify.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            return;
        child_ =
            std::make_unique<Child>(std::vector<std::string>{CENALLOCD, "--socket", socket_, "--log-level", "error"},
                                    environment({"NOTIFY_SOCKET=" + notifyPath_}));
        // Bounded: a daemon that never gets ready fails the test, not hangs it.
        pollfd p{notify.get(), POLLIN, 0};
        char buffer[64] = {};
        if (::poll(&p, 1, 30000) == 1 && ::recv(notify.get(), buffer, sizeof buffer - 1, 0) > 0)
            ready_ = std::string(buffer) == "READY=1";
    }
    ~Daemon() {
        // SIGTERM: the daemon removes its socket on the way out.
        if (child_)
            child_->stop(SIGTERM);
        ::unlink(notifyPath_.c_str());
    }
    bool ready() const { return ready_; }
    const std::string& socket() const { return socket_; }

private:
    std::string socket_;
    std::string notifyPath_;
    std::unique_ptr<Child> child_;
    bool ready_ = false;
};

std::string readFile(const char* path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

/// Lines where @p got differs from @p want, for a readable failure.
std::string lineDiff(const std::string& want, const std::string& got) {
    std::istringstream a(want), b(got);
    std::string la, lb, diff;
    int line = 0;
    while (true) {
        bool moreA = static_cast<bool>(std::getline(a, la));
        bool moreB = static_cast<bool>(std::getline(b, lb));
        if (!moreA && !moreB)
            break;
        ++line;
        if (!moreA)
            la = "(missing)";
        if (!moreB)
            lb = "(missing)";
        if (la != lb)
            diff += "line " + std::to_string(line) + ": kernel '" + la + "', shim '" + lb + "'\n";
    }
    return diff;
}

bool hostHasKernelHeaps() {
    struct stat st {};
    return ::stat("/dev/dma_heap", &st) == 0;
}

TEST(Preload, WithoutTheShimTheProgramFindsNoHeaps) {
    if (hostHasKernelHeaps())
        GTEST_SKIP() << "this host has /dev/dma_heap: the baseline without the shim is not a failure here";
    Child child({SHIM_HEAP_USER}, environment({}));
    EXPECT_EQ(child.wait(), 1);
    EXPECT_NE(child.out().find("error: opendir /dev/dma_heap"), std::string::npos) << child.out();
}

TEST(Preload, AnUnmodifiedProgramEnumeratesAllocatesMapsSyncsNamesAndFreesInProcess) {
    // The program lists what an in-process session of the default platform has.
    auto session = Session::local();
    ASSERT_TRUE(session);
    auto heaps = (*session)->heaps();
    ASSERT_TRUE(heaps);
    std::vector<std::string> names;
    for (const auto& h : *heaps)
        names.push_back(h.name);
    std::sort(names.begin(), names.end());
    std::string listed = "heaps:";
    for (const auto& n : names)
        listed += " " + n;

    Child child({SHIM_HEAP_USER}, environment({"LD_PRELOAD=" + preloadValue(), "CENALLOC_SHIM_MODE=local"}));
    EXPECT_EQ(child.wait(), 0) << child.out() << child.err();
    EXPECT_EQ(child.out(), listed + "\nok\n");
    EXPECT_EQ(child.err(), "");
}

TEST(Preload, AnUnmodifiedProgramWorksAgainstCenallocdWhichSeesItsBuffer) {
    Daemon daemon;
    ASSERT_TRUE(daemon.ready());
    // Auto mode (no CENALLOC_SHIM_MODE): the daemon answers, so it serves.
    Child child({SHIM_HEAP_USER, "--hold", "system", "2097152"},
                environment({"LD_PRELOAD=" + preloadValue(), "CENALLOC_SOCKET=" + daemon.socket()}));
    EXPECT_TRUE(child.readLine().starts_with("heaps: "));
    ASSERT_EQ(child.readLine(), "holding") << child.out();

    // The program's buffer is the daemon's, with what the program did to it.
    auto session = Session::connect(daemon.socket());
    ASSERT_TRUE(session) << session.error().toString();
    auto info = (*session)->bufinfo();
    ASSERT_TRUE(info);
    const BufferInfo* held = nullptr;
    for (const auto& b : *info)
        if (b.name == "heap-user")
            held = &b;
    ASSERT_NE(held, nullptr) << "no buffer named heap-user among " << info->size();
    EXPECT_EQ(held->size, 2u * 1024 * 1024);
    EXPECT_EQ(held->heap, "system");
    EXPECT_EQ(held->cpuAccessDepth, 0u) << "every START had its END";

    child.writeLine("go");
    EXPECT_EQ(child.wait(), 0) << child.out() << child.err();
    // Its process gone, the buffer is gone.
    auto after = (*session)->bufinfo();
    ASSERT_TRUE(after);
    for (const auto& b : *after)
        EXPECT_NE(b.name, "heap-user");
}

TEST(Preload, AutoModeFallsBackToInProcessWithoutADaemon) {
    Child local({SHIM_HEAP_USER},
                environment({"LD_PRELOAD=" + preloadValue(), "CENALLOC_SOCKET=/nonexistent/cenalloc.sock"}));
    EXPECT_EQ(local.wait(), 0) << local.out() << local.err();
}

TEST(Preload, AConfigurationErrorIsSaidOnceAndTheProgramSeesNoHeaps) {
    if (hostHasKernelHeaps())
        GTEST_SKIP() << "this host has /dev/dma_heap: the program would find the kernel's";
    const std::vector<std::string> envs[] = {
        {"CENALLOC_SHIM_MODE=sometimes"},
        {"CENALLOC_SHIM_MODE=daemon", "CENALLOC_SOCKET=/nonexistent/cenalloc.sock"},
        {"CENALLOC_SHIM_MODE=local", "CENALLOC_PLATFORM=/nonexistent/platform.yaml"},
    };
    for (const auto& extra : envs) {
        SCOPED_TRACE(extra.front());
        std::vector<std::string> env = extra;
        env.push_back("LD_PRELOAD=" + preloadValue());
        Child child({SHIM_HEAP_USER}, environment(env));
        EXPECT_EQ(child.wait(), 1);
        EXPECT_NE(child.out().find("error: opendir /dev/dma_heap: No such file or directory"), std::string::npos)
            << child.out();
        EXPECT_NE(child.err().find("libcenalloc-dmaheap: "), std::string::npos) << child.err();
        EXPECT_NE(child.err().find("/dev/dma_heap is not emulated"), std::string::npos) << child.err();
    }
}

TEST(Preload, APlatformFileChoosesTheHeaps) {
    Child child(
        {SHIM_HEAP_USER, "system", "4096"},
        environment({"LD_PRELOAD=" + preloadValue(), "CENALLOC_SHIM_MODE=local",
                     std::string("CENALLOC_PLATFORM=") + CENALLOC_SOURCE_DIR + "/examples/platforms/pc-x86.yaml"}));
    EXPECT_EQ(child.wait(), 0) << child.out() << child.err();
    EXPECT_EQ(child.out().find("vpu-carveout"), std::string::npos) << "the reference platform's heaps are gone";
}

/// The conformance program under the shim must print exactly what the real
/// kernel printed (tests/conformance/expected.txt, produced by
/// scripts/kernel-conformance in qemu).
void expectConformance(const std::vector<std::string>& extraEnv) {
    std::string expected = readFile(CONFORMANCE_EXPECTED);
    ASSERT_FALSE(expected.empty()) << CONFORMANCE_EXPECTED;
    std::vector<std::string> env = extraEnv;
    env.push_back("LD_PRELOAD=" + preloadValue());
    Child child({DMAHEAP_CONFORMANCE}, environment(env));
    EXPECT_EQ(child.wait(), 0) << child.err();
    EXPECT_EQ(child.err(), "");
    EXPECT_EQ(child.out(), expected) << lineDiff(expected, child.out());
}

TEST(Preload, TheConformanceProgramSeesWhatTheKernelShowedInProcess) {
    expectConformance({"CENALLOC_SHIM_MODE=local"});
}

TEST(Preload, TheConformanceProgramSeesWhatTheKernelShowedThroughCenallocd) {
    Daemon daemon;
    ASSERT_TRUE(daemon.ready());
    expectConformance({"CENALLOC_SHIM_MODE=daemon", "CENALLOC_SOCKET=" + daemon.socket()});
}

// What the closefrom scenario prints when the shim left the program's fds
// alone: the kernel's answers for a plain memfd and a host without heaps
// (the shim's anchors went with closefrom: opening a heap is ENODEV).
const char* const kClosefromExpected = "sync on a plain memfd: ENOTTY\n"
                                       "opendir /dev/dma_heap: ENOENT\n"
                                       "open /dev/dma_heap/system: ENODEV\n"
                                       "the program's messages: intact\n"
                                       "written into the program's socket: nothing\n";

TEST(Preload, AfterClosefromTheShimNeverTouchesTheProgramsFdsInProcess) {
    if (hostHasKernelHeaps())
        GTEST_SKIP() << "this host has /dev/dma_heap: the kernel's answers differ";
    Child child({SHIM_SCENARIOS, "closefrom"},
                environment({"LD_PRELOAD=" + preloadValue(), "CENALLOC_SHIM_MODE=local"}));
    // Before: SYNC on the memfd blocked reading the program's socket.
    ASSERT_TRUE(child.exitsWithin(60)) << "hung: the shim is reading one of the program's fds";
    EXPECT_EQ(child.wait(), 0) << child.err();
    EXPECT_EQ(child.out(), kClosefromExpected);
}

TEST(Preload, AfterClosefromTheShimNeverTouchesTheProgramsFdsThroughCenallocd) {
    if (hostHasKernelHeaps())
        GTEST_SKIP() << "this host has /dev/dma_heap: the kernel's answers differ";
    Daemon daemon;
    ASSERT_TRUE(daemon.ready());
    Child child({SHIM_SCENARIOS, "closefrom"}, environment({"LD_PRELOAD=" + preloadValue(), "CENALLOC_SHIM_MODE=daemon",
                                                            "CENALLOC_SOCKET=" + daemon.socket()}));
    // Before: the request went into the program's socket and the program's
    // own message was read as the reply (EPROTO).
    ASSERT_TRUE(child.exitsWithin(60)) << "hung: the shim is reading one of the program's fds";
    EXPECT_EQ(child.wait(), 0) << child.err();
    EXPECT_EQ(child.out(), kClosefromExpected);
}

TEST(Preload, ForkWhileOtherThreadsAllocateLeavesNoChildDeadlockedInProcess) {
    // Four threads allocate and free without pause while 300 children are
    // forked one by one, each allocating once from the session it inherited.
    Child child({SHIM_SCENARIOS, "fork-stress", "300", "4"},
                environment({"LD_PRELOAD=" + preloadValue(), "CENALLOC_SHIM_MODE=local"}));
    // The program bounds each child (20 s, then it counts it hung); this
    // bounds the program.
    ASSERT_TRUE(child.exitsWithin(500)) << "the program itself hung";
    EXPECT_EQ(child.wait(), 0) << child.out() << child.err();
    EXPECT_NE(child.out().find("children: 300 exited, 0 hung, 0 failed\n"), std::string::npos) << child.out();
    EXPECT_NE(child.out().find("worker allocations: some\n"), std::string::npos) << child.out();
}

} // namespace
} // namespace cenalloc
