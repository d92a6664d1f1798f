// SPDX-License-Identifier: MIT
// Every dtb Debian ships for arm64: each loads or is refused with a reason; none crashes or hangs.
#include <cenalloc/context.h>
#include <cenalloc/platform_sources.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <map>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cenalloc/unique_fd.h>

#include "support/dtb_corpus.h"

#include <gtest/gtest.h>

namespace cenalloc {
namespace {

namespace fs = std::filesystem;

// Generous: a blob loads in milliseconds; this only catches a hang, even
// under a sanitizer on a loaded machine.
constexpr int kTimeoutMs = 120 * 1000;

// "file: no ram: ..." -> "no ram"; the reason without the file name.
std::string reasonKey(const std::string& message, const std::string& path) {
    std::string m = message;
    if (m.rfind(path + ": ", 0) == 0)
        m = m.substr(path.size() + 2);
    return m.substr(0, m.find(':'));
}

// One pass over a blob, in words the parent can count: "ok" or
// "refused <errno> <reason>".
std::string loadOnce(const std::string& path, const Overlay* overlay) {
    std::vector<std::string> warnings;
    Result<Platform> p = loadDeviceTreeFile(path, overlay, &warnings);
    if (!p)
        return fmt::format("refused {} {}", errnoName(p.error().code()), reasonKey(p.error().message(), path));
    if (!validatePlatform(*p))
        return "invalid";
    // The upper layers must take what the loader gives: a context, and an
    // explanation for every device alone and for all of them together.
    Result<std::unique_ptr<Context>> context = Context::create(*p);
    if (!context)
        return "context " + context.error().message();
    std::vector<std::string> all;
    for (const Device& d : p->devices) {
        std::vector<std::string> one{d.name};
        if (!(*context)->explain(one, 1 << 20))
            return "explain failed for " + d.name;
        all.push_back(d.name);
    }
    if (!all.empty() && !(*context)->explain(all, 1 << 20))
        return "explain failed for all";
    return "ok";
}

struct Outcome {
    std::string asShipped;
    std::string withRam;
};

// Runs both passes in a child so that a crash or a hang is reported for the
// file that caused it.
Outcome loadInChild(const std::string& path, const Overlay& ram) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        return {"pipe failed", ""};
    UniqueFd readEnd(fds[0]), writeEnd(fds[1]);
    pid_t pid = ::fork();
    if (pid < 0)
        return {"fork failed", ""};
    if (pid == 0) {
        readEnd.reset();
        std::string first = loadOnce(path, nullptr);
        std::string second =
            first.rfind(fmt::format("refused {} ", errnoName(ENODATA)), 0) == 0 ? loadOnce(path, &ram) : first;
        std::string out = first + "\n" + second + "\n";
        ssize_t ignored = ::write(writeEnd.get(), out.data(), out.size());
        (void)ignored;
        ::_exit(0);
    }
    writeEnd.reset();
    std::string text;
    char buffer[4096];
    bool hung = false;
    for (;;) {
        pollfd p{readEnd.get(), POLLIN, 0};
        int ready = ::poll(&p, 1, kTimeoutMs);
        if (ready == 0) {
            hung = true;
            ::kill(pid, SIGKILL);
            break;
        }
        if (ready < 0 && errno == EINTR)
            continue;
        ssize_t n = ::read(readEnd.get(), buffer, sizeof buffer);
        if (n <= 0)
            break;
        text.append(buffer, static_cast<size_t>(n));
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (hung)
        return {"hung", ""};
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return {fmt::format("crashed (status {:#x})", status), ""};
    size_t nl = text.find('\n');
    if (nl == std::string::npos)
        return {"no answer", ""};
    std::string second = text.substr(nl + 1);
    if (!second.empty() && second.back() == '\n')
        second.pop_back();
    return {text.substr(0, nl), second};
}

TEST(DtbCorpus, EveryDebianArm64DtbLoadsOrIsRefusedWithAReason) {
    if (std::string reason = dtbtest::dtbSkipReason(); !reason.empty())
        GTEST_SKIP() << reason;
    std::vector<std::string> files;
    for (const fs::directory_entry& e : fs::recursive_directory_iterator(dtbtest::dtbDirectory()))
        if (e.is_regular_file() && e.path().extension() == ".dtb")
            files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    if (files.empty())
        GTEST_SKIP() << dtbtest::dtbDirectory().string() << " holds no .dtb file";

    // For trees that leave /memory to the bootloader, a second pass with
    // RAM from a test overlay exercises the rest of the interpretation.
    Result<Overlay> ram = parseOverlayYaml("memory:\n  - {name: test-ram, base: 0x0, size: 64G}\n", "test-ram.yaml");
    ASSERT_TRUE(ram) << ram.error().toString();

    std::map<std::string, int> asShipped, withRam;
    for (const std::string& f : files) {
        SCOPED_TRACE(f);
        Outcome o = loadInChild(f, *ram);
        ++asShipped[o.asShipped];
        ++withRam[o.withRam];
        for (const std::string& result : {o.asShipped, o.withRam}) {
            bool clear = result == "ok" || result.rfind("refused ", 0) == 0;
            EXPECT_TRUE(clear) << result;
        }
    }
    std::printf("%zu device tree blobs from %s\n", files.size(), dtbtest::dtbDirectory().c_str());
    std::printf("as shipped:\n");
    for (const auto& [result, count] : asShipped)
        std::printf("  %4d %s\n", count, result.c_str());
    std::printf("with 64 GiB of test RAM where the tree has none:\n");
    for (const auto& [result, count] : withRam)
        std::printf("  %4d %s\n", count, result.c_str());
    // Debian's dtbs are the kernel's own: given RAM, every one of them loads.
    EXPECT_EQ(withRam["ok"], static_cast<int>(files.size()));
}

} // namespace
} // namespace cenalloc
