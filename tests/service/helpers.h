// SPDX-License-Identifier: MIT
// Helpers for the service tests: heap statistics by name, fd counts, mmap, memfds, a daemon in a thread or a process.
#pragma once

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <memory>
#include <string>
#include <string_view>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cenalloc/session.h>

#include "service/config.h"
#include "service/server.h"

namespace cenalloc::test {

constexpr uint32_t kRw = O_CLOEXEC | O_RDWR;

inline const HeapInfo* findHeap(const std::vector<HeapInfo>& heaps, std::string_view name) {
    auto it = std::find_if(heaps.begin(), heaps.end(), [&](const HeapInfo& h) { return h.name == name; });
    return it == heaps.end() ? nullptr : &*it;
}

/// Live buffers and bytes of every heap, and the allocator's live count:
/// what "back to baseline" compares.
struct Baseline {
    std::vector<std::pair<uint64_t, uint64_t>> heaps; // (liveBuffers, liveBytes)
    uint64_t liveBuffers = 0;
    std::vector<uint64_t> domainInUse;
    bool operator==(const Baseline&) const = default;
};

inline Baseline baselineOf(Session& session) {
    Baseline b;
    auto stats = session.stats();
    EXPECT_TRUE(stats) << stats.error().toString();
    if (!stats)
        return b;
    for (const HeapInfo& h : stats->heaps)
        b.heaps.emplace_back(h.stats.liveBuffers, h.stats.liveBytes);
    for (const IommuDomainStats& d : stats->domains)
        b.domainInUse.push_back(d.inUseCount);
    b.liveBuffers = stats->liveBuffers;
    return b;
}

inline void PrintTo(const Baseline& b, std::ostream* os) {
    *os << "live " << b.liveBuffers << " heaps";
    for (auto [n, bytes] : b.heaps)
        *os << " " << n << "/" << bytes;
    *os << " domains in use";
    for (uint64_t n : b.domainInUse)
        *os << " " << n;
}

inline HeapStats heapStats(Session& session, std::string_view heap) {
    auto heaps = session.heaps();
    EXPECT_TRUE(heaps) << heaps.error().toString();
    if (!heaps)
        return {};
    const HeapInfo* info = findHeap(*heaps, heap);
    EXPECT_NE(info, nullptr) << heap;
    return info ? info->stats : HeapStats{};
}

/// Open fds of process @p pid (this one by default).
inline size_t openFdCount(pid_t pid = 0) {
    std::string path = pid ? fmt::format("/proc/{}/fd", pid) : std::string("/proc/self/fd");
    DIR* dir = ::opendir(path.c_str());
    if (!dir)
        return 0;
    size_t n = 0;
    while (dirent* e = ::readdir(dir))
        if (e->d_name[0] != '.')
            ++n;
    ::closedir(dir);
    return n - (pid ? 0 : 1); // not counting opendir's own fd
}

/// The open fd count of this process once it settles at @p expected (fds a
/// client sent that are not buffers are closed by the daemon's closer
/// thread, a moment later), or whatever it is after 10 s: a leak never
/// settles.
inline size_t openFdCountSettlingAt(size_t expected) {
    for (int i = 0; i < 1000 && openFdCount() != expected; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return openFdCount();
}

/// A shared read-write mapping of a whole buffer fd; unmapped on destruction.
class Mapped {
public:
    Mapped(int fd, size_t size) : size_(size) {
        data_ = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (data_ == MAP_FAILED)
            data_ = nullptr;
    }
    ~Mapped() { reset(); }
    Mapped(const Mapped&) = delete;
    Mapped& operator=(const Mapped&) = delete;
    void reset() {
        if (data_)
            ::munmap(data_, size_);
        data_ = nullptr;
    }
    bool valid() const { return data_ != nullptr; }
    unsigned char* bytes() const { return static_cast<unsigned char*>(data_); }

private:
    void* data_ = nullptr;
    size_t size_ = 0;
};

inline uint64_t fdSize(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

inline bool hasCloexec(int fd) {
    int flags = ::fcntl(fd, F_GETFD);
    return flags >= 0 && (flags & FD_CLOEXEC);
}

/// A unique socket path for one test.
inline std::string testSocketPath(std::string_view tag) {
    static int counter = 0;
    return fmt::format("/tmp/cenalloc-test-{}-{}-{}.sock", ::getpid(), tag, ++counter);
}

/// A Server running in a thread of this process, stopped and joined on
/// destruction.
class InProcessDaemon {
public:
    explicit InProcessDaemon(ServiceConfig config = {}, const Platform& platform = defaultPlatform())
        : InProcessDaemon(optionsWith(std::move(config)), platform) {}
    explicit InProcessDaemon(ServerOptions options, const Platform& platform = defaultPlatform()) {
        if (options.socketPath.empty())
            options.socketPath = testSocketPath("inproc");
        auto server = Server::create(platform, std::move(options));
        EXPECT_TRUE(server) << server.error().toString();
        if (!server)
            return;
        server_ = std::move(*server);
        thread_ = std::thread([this] { (void)server_->run(); });
    }
    ~InProcessDaemon() {
        if (!server_)
            return;
        server_->stop();
        thread_.join();
    }
    bool ok() const { return server_ != nullptr; }
    const std::string& path() const { return server_->socketPath(); }
    Server& server() { return *server_; }
    std::unique_ptr<Session> connect() {
        auto session = Session::connect(path());
        EXPECT_TRUE(session) << session.error().toString();
        return session ? std::move(*session) : nullptr;
    }

private:
    static ServerOptions optionsWith(ServiceConfig config) {
        ServerOptions options;
        options.config = std::move(config);
        return options;
    }

    std::unique_ptr<Server> server_;
    std::thread thread_;
};

/// cenallocd as a child process (the binary the build made), terminated
/// and reaped on destruction. It is socket-activated: the listening socket
/// is bound here and handed over as fd 3 with LISTEN_FDS/LISTEN_PID, so
/// clients can connect at once (the kernel queues them until the daemon
/// accepts) and nothing needs to wait for the daemon to come up.
class DaemonProcess {
public:
    explicit DaemonProcess(const std::string& configYaml = {}) {
        path_ = testSocketPath("proc");
        std::vector<std::string> args = {CENALLOCD, "--log-level", "warning"};
        if (!configYaml.empty()) {
            configPath_ = path_ + ".yaml";
            FILE* f = std::fopen(configPath_.c_str(), "w");
            std::fputs(configYaml.c_str(), f);
            std::fclose(f);
            args.insert(args.end(), {"--config", configPath_});
        }
        int listener = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
        EXPECT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
        EXPECT_EQ(::chmod(path_.c_str(), 0666), 0); // as SocketMode=0666 does: any uid may connect
        EXPECT_EQ(::listen(listener, 64), 0);

        // Everything the child needs is prepared before fork: after it only
        // async-signal-safe calls.
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        std::string pidVar = "LISTEN_PID=" + std::string(20, '\0');
        std::string fdsVar = "LISTEN_FDS=1";
        std::vector<char*> envp = {pidVar.data(), fdsVar.data(), nullptr};
        pid_ = ::fork();
        if (pid_ == 0) {
            char* digits = pidVar.data() + std::strlen("LISTEN_PID=");
            char reversed[20];
            int n = 0;
            for (pid_t p = ::getpid(); p > 0; p /= 10)
                reversed[n++] = static_cast<char>('0' + p % 10);
            for (int i = 0; i < n; ++i)
                digits[i] = reversed[n - 1 - i];
            digits[n] = '\0';
            // dup2 gives fd 3 without O_CLOEXEC; when the socket already
            // is fd 3, dup2 does nothing and the flag must go by hand.
            if (listener == 3 ? ::fcntl(3, F_SETFD, 0) != 0 : ::dup2(listener, 3) != 3)
                _exit(126);
            ::execve(argv[0], argv.data(), envp.data());
            _exit(127);
        }
        ::close(listener);
    }
    ~DaemonProcess() {
        if (pid_ > 0)
            terminate();
        ::unlink(path_.c_str());
        if (!configPath_.empty())
            ::unlink(configPath_.c_str());
    }
    pid_t pid() const { return pid_; }
    const std::string& path() const { return path_; }
    /// The caller reaped the process itself.
    void forget() { pid_ = -1; }

    std::unique_ptr<Session> connect() {
        auto session = Session::connect(path_);
        EXPECT_TRUE(session) << session.error().toString();
        return session ? std::move(*session) : nullptr;
    }

    /// Signal it with SIGTERM and return its wait status.
    int terminate() {
        ::kill(pid_, SIGTERM);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return status;
    }

private:
    pid_t pid_ = -1;
    std::string path_;
    std::string configPath_;
};

} // namespace cenalloc::test
