// SPDX-License-Identifier: MIT
// Unmodified C programs under LD_PRELOAD=libcenalloc-dmaheap.so, in-process and against a cenallocd.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <vector>

#include <cenalloc/session.h>
#include <cenalloc/unique_fd.h>

#include "support/daemon.h"
#include "support/process.h"

namespace cenalloc {
namespace {

/// LD_PRELOAD for the shim: a sanitizer runtime the shim was built with
/// must come first when the program itself is not instrumented.
std::string preloadValue() {
    std::string runtime = SANITIZER_RUNTIME;
    return runtime.empty() ? std::string(CENALLOC_SHIM_LIBRARY) : runtime + " " + CENALLOC_SHIM_LIBRARY;
}

/// A program under test gets the environment of this process without
/// anything that steers the shim or the dynamic loader, plus @p extra.
test::ProcessOptions environment(const std::vector<std::string>& extra) {
    test::ProcessOptions options;
    options.cleanEnv = true;
    // Leaks of the uninstrumented program are not the shim's to report, and
    // a sanitizer runtime preloaded into it must not insist on link order.
    options.env = {"ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0"};
    options.env.insert(options.env.end(), extra.begin(), extra.end());
    return options;
}

/// A child process with its stdin and stdout/stderr on pipes.
using Child = test::ChildProcess;

/// cenallocd on a private socket, ready when constructed (it says READY=1
/// on NOTIFY_SOCKET), stopped when destroyed.
class Daemon : public test::DaemonProcess {
public:
    Daemon() : DaemonProcess({.start = test::DaemonStart::Notified, .logLevel = "error"}) {}
    bool ready() const { return running(); }
    const std::string& socket() const { return path(); }
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
    ASSERT_TRUE(child.exitsWithin(std::chrono::seconds(60))) << "hung: the shim is reading one of the program's fds";
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
    ASSERT_TRUE(child.exitsWithin(std::chrono::seconds(60))) << "hung: the shim is reading one of the program's fds";
    EXPECT_EQ(child.wait(), 0) << child.err();
    EXPECT_EQ(child.out(), kClosefromExpected);
}

TEST(Preload, InProcessTheShimMakesNoFdOrThreadTheKernelWouldNot) {
    // The kernel's heaps keep their ready pages in page pools, not in the
    // program's fd table; a pool of ready memfds in the program would show
    // in its fd count (as the conformance program's fds-delta once did),
    // be closed under the pool by closefrom() and eat RLIMIT_NOFILE.
    Child child({SHIM_SCENARIOS, "fd-steady"},
                environment({"LD_PRELOAD=" + preloadValue(), "CENALLOC_SHIM_MODE=local"}));
    ASSERT_TRUE(child.exitsWithin(std::chrono::seconds(60)));
    EXPECT_EQ(child.wait(), 0) << child.err() << child.out();
    EXPECT_EQ(child.out(), "fds: +0\nthreads: +0\n");
}

TEST(Preload, ForkWhileOtherThreadsAllocateLeavesNoChildDeadlockedInProcess) {
    // Four threads allocate and free without pause while 300 children are
    // forked one by one, each allocating once from the session it inherited.
    Child child({SHIM_SCENARIOS, "fork-stress", "300", "4"},
                environment({"LD_PRELOAD=" + preloadValue(), "CENALLOC_SHIM_MODE=local"}));
    // The program bounds each child (20 s, then it counts it hung); this
    // bounds the program.
    ASSERT_TRUE(child.exitsWithin(std::chrono::seconds(500))) << "the program itself hung";
    EXPECT_EQ(child.wait(), 0) << child.out() << child.err();
    EXPECT_NE(child.out().find("children: 300 exited, 0 hung, 0 failed\n"), std::string::npos) << child.out();
    EXPECT_NE(child.out().find("worker allocations: some\n"), std::string::npos) << child.out();
}

} // namespace
} // namespace cenalloc
