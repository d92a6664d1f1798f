// SPDX-License-Identifier: MIT
// Which session a tool runs in: --socket's daemon, an in-process model of the platform asked for, or the default.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

#include <cenalloc/session.h>
#include <cenalloc/session_choice.h>

#include "support/daemon.h"
#include "support/process.h"

namespace cenalloc {
namespace {

std::string example(const char* name) {
    return std::string(CENALLOC_SOURCE_DIR) + "/examples/platforms/" + name;
}

std::vector<std::string> heapNames(Session& session) {
    std::vector<std::string> names;
    auto heaps = session.heaps();
    EXPECT_TRUE(heaps) << heaps.error().toString();
    if (heaps)
        for (const HeapInfo& h : *heaps)
            names.push_back(h.name);
    return names;
}

TEST(SessionChoice, ASocketGivenIsTheDaemonThereEvenWithAPlatformGiven) {
    test::DaemonProcess daemon;
    ASSERT_TRUE(daemon.running());
    std::vector<std::string> notes;
    SessionChoice choice;
    choice.socketPath = daemon.path();
    choice.platform.yamlPath = example("pc-x86.yaml");
    auto session = openSession(choice, &notes);
    ASSERT_TRUE(session) << session.error().toString();
    EXPECT_EQ((*session)->describe(), "cenallocd at " + daemon.path() + " (protocol 1)");
    // The daemon's platform (the built-in one), not the file's.
    const std::vector<std::string> heaps = heapNames(**session);
    EXPECT_NE(std::find(heaps.begin(), heaps.end(), "linux,cma"), heaps.end());
}

TEST(SessionChoice, ASocketNobodyAnswersOnIsAnErrorNotAFallback) {
    std::vector<std::string> notes;
    SessionChoice choice;
    choice.socketPath = test::testSocketPath("nobody");
    auto session = openSession(choice, &notes);
    ASSERT_FALSE(session);
    EXPECT_EQ(session.error().code(), ENOENT) << session.error().toString();
}

TEST(SessionChoice, APlatformGivenIsModelledInProcess) {
    std::vector<std::string> notes;
    SessionChoice choice;
    choice.platform.yamlPath = example("pc-x86.yaml");
    auto session = openSession(choice, &notes);
    ASSERT_TRUE(session) << session.error().toString();
    EXPECT_EQ((*session)->describe(), "in-process");
    // pc-x86 has no CMA area: its heaps, not the built-in platform's.
    const std::vector<std::string> heaps = heapNames(**session);
    ASSERT_FALSE(heaps.empty());
    EXPECT_EQ(heaps.front(), "system");
    EXPECT_EQ(std::find(heaps.begin(), heaps.end(), "linux,cma"), heaps.end());

    choice.platform.yamlPath = "/nonexistent/platform.yaml";
    auto missing = openSession(choice, &notes);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), ENOENT) << missing.error().toString();
}

// A failed check in a child process: its number is the exit status.
#define CHILD_CHECK(step, cond)                                                                                        \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            return step;                                                                                               \
    } while (0)

/// A directory for $XDG_RUNTIME_DIR, which the default socket is in for a
/// user who is not root; removed on destruction.
class RuntimeDir {
public:
    RuntimeDir() {
        char templ[] = "/tmp/cenalloc-runtime.XXXXXX";
        EXPECT_NE(::mkdtemp(templ), nullptr) << std::strerror(errno);
        path_ = templ;
        EXPECT_EQ(::chmod(templ, 0755), 0); // the uid the child becomes may look inside
    }
    ~RuntimeDir() { std::filesystem::remove_all(path_); }
    const std::string& path() const { return path_; }
    std::string socket() const { return path_ + "/cenalloc.sock"; }

private:
    std::string path_;
};

/// Run @p body in a child whose default socket is in @p runtimeDir: as
/// nobody when this is root (root's default socket is a fixed path), with
/// XDG_RUNTIME_DIR set. Its exit code: 0 when every check held.
template <typename Body> int withDefaultSocketIn(const std::string& runtimeDir, Body body) {
    pid_t pid = test::forkChild([&] {
        if (::getuid() == 0 && !test::becomeUid(65534, {}))
            return 100;
        if (::setenv("XDG_RUNTIME_DIR", runtimeDir.c_str(), 1) != 0)
            return 101;
        return body();
    });
    return test::reap(pid);
}

TEST(SessionChoice, WithoutAChoiceTheDaemonAtTheDefaultSocketServesWhenOneAnswers) {
    RuntimeDir runtime;
    test::DaemonProcess daemon({.socketPath = runtime.socket()});
    ASSERT_TRUE(daemon.running());
    const std::string expected = "cenallocd at " + runtime.socket() + " (protocol 1)";
    EXPECT_EQ(withDefaultSocketIn(runtime.path(),
                                  [&] {
                                      std::vector<std::string> notes;
                                      CHILD_CHECK(1, Session::defaultSocketPath() == daemon.path());
                                      auto session = openSession({}, &notes);
                                      CHILD_CHECK(2, session);
                                      CHILD_CHECK(3, (*session)->describe() == expected);
                                      return 0;
                                  }),
              0);
}

/// A Unix socket of @p type bound at @p path, listening when @p listen.
UniqueFd boundSocket(const std::string& path, int type, bool listen) {
    UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
    if (listen) {
        EXPECT_EQ(::listen(fd.get(), 1), 0);
    }
    EXPECT_EQ(::chmod(path.c_str(), 0666), 0);
    return fd;
}

TEST(SessionChoice, WithoutAChoiceAndNoDaemonItRunsInProcessOnTheBuiltInPlatform) {
    // No daemon is the normal case on a developer machine: no socket
    // (ENOENT), one nobody listens on (ECONNREFUSED), a runtime "directory"
    // that is a file (ENOTDIR), one the user may not enter (EACCES).
    RuntimeDir empty, dead, closed;
    UniqueFd unlistened = boundSocket(dead.socket(), SOCK_SEQPACKET, false);
    const std::string file = empty.path() + "/file";
    std::FILE* f = std::fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
    ASSERT_EQ(::chmod(closed.path().c_str(), 0700), 0);
    std::vector<std::string> dirs = {empty.path(), dead.path(), file};
    if (::getuid() == 0)
        dirs.push_back(closed.path()); // the child is nobody then; root may enter anything
    for (const std::string& dir : dirs) {
        SCOPED_TRACE(dir);
        EXPECT_EQ(withDefaultSocketIn(dir,
                                      [&] {
                                          std::vector<std::string> notes;
                                          auto session = openSession({}, &notes);
                                          CHILD_CHECK(1, session);
                                          CHILD_CHECK(2, (*session)->describe() == "in-process");
                                          auto local = Session::local();
                                          CHILD_CHECK(3, local);
                                          CHILD_CHECK(4, heapNames(**session) == heapNames(**local));
                                          return 0;
                                      }),
                  0);
    }
}

TEST(SessionChoice, WithoutAChoiceADefaultSocketThatAnswersWronglyIsAnError) {
    RuntimeDir runtime;
    // A stream socket where the daemon's should be: connecting to it is
    // EPROTOTYPE, not "no daemon", and the tool says so rather than
    // quietly running in-process.
    UniqueFd stream = boundSocket(runtime.socket(), SOCK_STREAM, true);
    EXPECT_EQ(withDefaultSocketIn(runtime.path(),
                                  [&] {
                                      std::vector<std::string> notes;
                                      auto session = openSession({}, &notes);
                                      CHILD_CHECK(1, !session);
                                      CHILD_CHECK(2, session.error().code() == EPROTOTYPE);
                                      return 0;
                                  }),
              0);
}

} // namespace
} // namespace cenalloc
