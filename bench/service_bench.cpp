// SPDX-License-Identifier: MIT
// Allocate+free through cenallocd vs in-process (Session::local) vs a raw sealed memfd; daemon latency and throughput.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <pthread.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vector>

#include <benchmark/benchmark.h>

#include <cenalloc/memfd.h>
#include <cenalloc/session.h>
#include <cenalloc/units.h>

#include "service/server.h"

namespace {

using namespace cenalloc;

// The daemon runs in its own process, as in deployment: forked before any
// benchmark thread exists, handed a listening socket (as systemd would), so
// clients can connect at once.
std::string gSocketPath;
pid_t gDaemon = -1;

// The daemon's configuration; service_bench --workers=N --busy-poll-us=N
// --ready-pool-bytes=N (0: no pool of ready memory) change it from the
// defaults.
ServiceConfig gConfig;

bool startDaemon() {
    gSocketPath = "/tmp/cenalloc-bench-" + std::to_string(::getpid()) + ".sock";
    ::unlink(gSocketPath.c_str());
    UniqueFd listener(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, gSocketPath.c_str(), gSocketPath.size() + 1);
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener.get(), 64) != 0)
        return false;
    gDaemon = ::fork();
    if (gDaemon == 0) {
        ServerOptions options;
        options.listenFd = std::move(listener);
        options.config = gConfig;
        auto server = Server::create(defaultPlatform(), std::move(options));
        if (!server)
            _exit(1);
        _exit((*server)->run() ? 0 : 1);
    }
    return gDaemon > 0;
}

void stopDaemon() {
    if (gDaemon > 0) {
        ::kill(gDaemon, SIGTERM);
        ::waitpid(gDaemon, nullptr, 0);
    }
    ::unlink(gSocketPath.c_str());
}

constexpr const char* kHeap = "system";

// CPU time the daemon process has used (all its threads), in microseconds:
// a figure the noise of other machines' work on the host disturbs far less
// than wall-clock time.
double daemonCpuMicros() {
    clockid_t clock;
    timespec ts{};
    if (::clock_getcpuclockid(gDaemon, &clock) != 0 || ::clock_gettime(clock, &ts) != 0)
        return 0;
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

// Reports the daemon's CPU time per allocate+free over the benchmark run
// (measured by thread 0 around all threads' loops).
class DaemonCpu {
public:
    explicit DaemonCpu(const benchmark::State& state) : state_(state) {
        if (state_.thread_index() == 0)
            start_ = daemonCpuMicros();
    }
    void report(benchmark::State& state) const {
        if (state_.thread_index() != 0 || state.iterations() == 0)
            return;
        const double ops = static_cast<double>(state.iterations()) * state.threads();
        state.counters["daemon_cpu_us"] = (daemonCpuMicros() - start_) / ops;
    }

private:
    const benchmark::State& state_;
    double start_ = 0;
};

void BM_RawMemfd(benchmark::State& state) {
    const uint64_t size = static_cast<uint64_t>(state.range(0));
    for (auto _ : state) {
        auto fd = createSealedMemfd("bench", size);
        if (!fd) {
            state.SkipWithError(fd.error().toString().c_str());
            return;
        }
        benchmark::DoNotOptimize(fd->get());
    }
    state.SetItemsProcessed(state.iterations());
}

// The kernel's part of a buffer whose end is observed, with no cenalloc
// code: a raw sealed memfd, the inotify watch on /proc/self/fd/N that
// Session::local adds for it (InodeWatcher::watch), its close (which then
// queues IN_DELETE_SELF and IN_IGNORED and tears the watch down:
// fsnotify_inoderemove() from dentry_unlink_inode(), fs/dcache.c) and the
// events read every 32 buffers, as the service reaps. What Session::local
// costs beyond this is cenalloc's own; the ratio of this to BM_RawMemfd is
// the least any in-process session that learns of a buffer's end from the
// kernel can reach on the host.
void BM_LifetimeFloor(benchmark::State& state) {
    const uint64_t size = static_cast<uint64_t>(state.range(0));
    UniqueFd watcher(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (watcher.get() < 0) {
        state.SkipWithError("inotify_init1");
        return;
    }
    alignas(inotify_event) char events[16 * 1024];
    uint64_t made = 0;
    for (auto _ : state) {
        auto fd = createSealedMemfd("bench", size);
        struct stat st {};
        char path[40];
        if (!fd || ::fstat(fd->get(), &st) != 0) {
            state.SkipWithError("memfd");
            return;
        }
        std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd->get());
        if (::inotify_add_watch(watcher.get(), path, IN_DELETE_SELF) < 0) {
            state.SkipWithError("inotify_add_watch");
            return;
        }
        fd->reset();
        if (++made % 32 == 0)
            while (::read(watcher.get(), events, sizeof events) > 0) {
            }
    }
    state.SetItemsProcessed(state.iterations());
}

// CPU time of this whole process (every thread: the ready pool's refill
// thread too), in microseconds.
double processCpuMicros() {
    timespec ts{};
    if (::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
        return 0;
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

// Session::local without its pool of ready memory (pool:0: each buffer's
// memfd made and watched on the request path), with it as configured by
// default (pool:1: from 64 KiB), or serving every size (pool:2, min_bytes 0:
// small buffers too come from memfds made and watched ahead on the refill
// thread). Reports the process's CPU per allocate+free, the refill thread's
// included, and the share of allocations the pool served.
void BM_InProcess(benchmark::State& state) {
    const uint64_t size = static_cast<uint64_t>(state.range(0));
    ContextOptions options;
    if (state.range(1) == 0)
        options.readyPool.heapBytes = 0;
    if (state.range(1) == 2)
        options.readyPool.minBytes = 0;
    auto session = Session::local(defaultPlatform(), options);
    if (!session) {
        state.SkipWithError(session.error().toString().c_str());
        return;
    }
    auto served = [&] {
        auto stats = (*session)->stats();
        std::pair<uint64_t, uint64_t> hm{0, 0};
        if (stats)
            for (const ReadyPoolStats& p : stats->readyPools)
                if (p.heap.empty())
                    hm = {p.hits, p.misses};
        return hm;
    };
    const auto [hits0, misses0] = served();
    const double cpu0 = processCpuMicros();
    for (auto _ : state) {
        // Freed when the fd closes; the session notices at its next call.
        auto fd = (*session)->allocate(kHeap, size);
        if (!fd) {
            state.SkipWithError(fd.error().toString().c_str());
            return;
        }
    }
    const double ops = static_cast<double>(state.iterations());
    state.counters["process_cpu_us"] = (processCpuMicros() - cpu0) / ops;
    const auto [hits, misses] = served();
    if (hits + misses > hits0 + misses0)
        state.counters["hit_rate"] =
            static_cast<double>(hits - hits0) / static_cast<double>(hits + misses - hits0 - misses0);
    state.SetItemsProcessed(state.iterations());
}

void BM_Daemon(benchmark::State& state) {
    const uint64_t size = static_cast<uint64_t>(state.range(0));
    auto session = Session::connect(gSocketPath);
    if (!session) {
        state.SkipWithError(session.error().toString().c_str());
        return;
    }
    std::vector<double> micros;
    micros.reserve(1 << 16);
    DaemonCpu daemonCpu(state);
    for (auto _ : state) {
        auto start = std::chrono::steady_clock::now();
        auto fd = (*session)->allocate(kHeap, size);
        if (!fd) {
            state.SkipWithError(fd.error().toString().c_str());
            return;
        }
        fd->reset(); // the free: the daemon learns it from inotify
        auto end = std::chrono::steady_clock::now();
        if (micros.size() < micros.capacity())
            micros.push_back(std::chrono::duration<double, std::micro>(end - start).count());
    }
    state.SetItemsProcessed(state.iterations());
    daemonCpu.report(state);
    if (!micros.empty()) {
        std::sort(micros.begin(), micros.end());
        state.counters["p50_us"] = micros[micros.size() / 2];
        state.counters["p99_us"] = micros[micros.size() * 99 / 100];
    }
}

// The kernel's share of one daemon allocate+free, without cenalloc: a
// server thread answers each request on a SOCK_SEQPACKET socketpair with a
// new sealed memfd and the syscalls the daemon makes for it (fstat, an
// inotify watch on /proc/self/fd/N, sendmsg with SCM_RIGHTS, close; the
// watch's events read every 32 answers, as the daemon reaps); the client
// sends, receives the fd and closes it. poll:0, both sides sleep in
// recv; poll:1, both spin on non-blocking receives (sched_yield between),
// as the daemon and its clients poll. Its p50 and the server's CPU per
// operation are the reference, in the same run, that tells a slower host
// from slower code.
void BM_KernelFloor(benchmark::State& state) {
    const uint64_t size = static_cast<uint64_t>(state.range(0));
    const int wait = state.range(1) != 0 ? MSG_DONTWAIT : 0;
    // recv/recvmsg, retried while a polling side finds nothing yet.
    auto receive = [wait](auto call) {
        for (;;) {
            ssize_t n = call(wait);
            if (n >= 0 || errno != EAGAIN)
                return n;
            ::sched_yield();
        }
    };
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
        state.SkipWithError("socketpair");
        return;
    }
    UniqueFd client(pair[0]);
    UniqueFd serverEnd(pair[1]);
    UniqueFd watcher(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    double serverCpuMicros = 0;
    std::thread server([&] {
        clockid_t clock;
        ::pthread_getcpuclockid(::pthread_self(), &clock);
        alignas(inotify_event) char events[16 * 1024];
        char request[64];
        for (uint64_t served = 0;; ++served) {
            if (receive([&](int flags) { return ::recv(serverEnd.get(), request, sizeof request, flags); }) <= 0)
                break;
            auto fd = createSealedMemfd("bench", size);
            struct stat st {};
            char path[40];
            if (!fd || ::fstat(fd->get(), &st) != 0)
                break;
            std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd->get());
            if (::inotify_add_watch(watcher.get(), path, IN_DELETE_SELF) < 0)
                break;
            char control[CMSG_SPACE(sizeof(int))] = {};
            iovec iov{request, 1};
            msghdr msg{};
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control;
            msg.msg_controllen = sizeof control;
            cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
            cmsg->cmsg_level = SOL_SOCKET;
            cmsg->cmsg_type = SCM_RIGHTS;
            cmsg->cmsg_len = CMSG_LEN(sizeof(int));
            const int sent = fd->get();
            std::memcpy(CMSG_DATA(cmsg), &sent, sizeof sent);
            if (::sendmsg(serverEnd.get(), &msg, MSG_NOSIGNAL) < 0)
                break;
            fd->reset();
            if (served % 32 == 31)
                while (::read(watcher.get(), events, sizeof events) > 0) {
                }
        }
        timespec ts{};
        ::clock_gettime(clock, &ts);
        serverCpuMicros = static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
    });
    std::vector<double> micros;
    micros.reserve(1 << 16);
    bool failed = false;
    for (auto _ : state) {
        auto start = std::chrono::steady_clock::now();
        char byte = 1;
        char control[CMSG_SPACE(sizeof(int))] = {};
        iovec iov{&byte, 1};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        if (::send(client.get(), &byte, 1, MSG_NOSIGNAL) != 1 ||
            receive([&](int flags) { return ::recvmsg(client.get(), &msg, MSG_CMSG_CLOEXEC | flags); }) != 1 ||
            !CMSG_FIRSTHDR(&msg)) {
            failed = true;
            break;
        }
        int fd;
        std::memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof fd);
        ::close(fd);
        auto end = std::chrono::steady_clock::now();
        if (micros.size() < micros.capacity())
            micros.push_back(std::chrono::duration<double, std::micro>(end - start).count());
    }
    ::shutdown(client.get(), SHUT_RDWR);
    server.join();
    if (failed) {
        state.SkipWithError("the kernel floor's server stopped");
        return;
    }
    state.SetItemsProcessed(state.iterations());
    state.counters["server_cpu_us"] = serverCpuMicros / static_cast<double>(state.iterations());
    std::sort(micros.begin(), micros.end());
    if (!micros.empty())
        state.counters["p50_us"] = micros[micros.size() / 2];
}

// Throughput with N clients, each its own connection (and, in the daemon,
// its own thread); items_per_second is the total over all clients.
void BM_DaemonClients(benchmark::State& state) {
    const uint64_t size = static_cast<uint64_t>(state.range(0));
    auto session = Session::connect(gSocketPath);
    if (!session) {
        state.SkipWithError(session.error().toString().c_str());
        return;
    }
    DaemonCpu daemonCpu(state);
    for (auto _ : state) {
        auto fd = (*session)->allocate(kHeap, size);
        if (!fd) {
            state.SkipWithError(fd.error().toString().c_str());
            return;
        }
    }
    state.SetItemsProcessed(state.iterations());
    daemonCpu.report(state);
}

// Real time throughout: the daemon's share of the work is not this process's CPU time.
BENCHMARK(BM_RawMemfd)->Arg(4 * KiB)->Arg(1 * MiB)->UseRealTime();
BENCHMARK(BM_LifetimeFloor)->Arg(4 * KiB)->UseRealTime();
BENCHMARK(BM_InProcess)->ArgsProduct({{4 * KiB, 1 * MiB}, {1, 0, 2}})->ArgNames({"", "pool"})->UseRealTime();
BENCHMARK(BM_Daemon)->Arg(4 * KiB)->Arg(1 * MiB)->UseRealTime();
BENCHMARK(BM_KernelFloor)->ArgsProduct({{4 * KiB}, {0, 1}})->ArgNames({"", "poll"})->UseRealTime();
BENCHMARK(BM_DaemonClients)->Arg(4 * KiB)->Threads(1)->Threads(4)->Threads(8)->UseRealTime();

} // namespace

// Takes the daemon's flags out of argv.
void parseDaemonFlags(int& argc, char** argv) {
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        auto value = [&](std::string_view flag, auto& out) {
            if (!arg.starts_with(flag))
                return false;
            out = static_cast<std::remove_reference_t<decltype(out)>>(std::stoul(std::string(arg.substr(flag.size()))));
            return true;
        };
        if (!value("--workers=", gConfig.workers) && !value("--busy-poll-us=", gConfig.busyPollMicros) &&
            !value("--ready-pool-bytes=", gConfig.context.readyPool.heapBytes))
            argv[kept++] = argv[i];
    }
    argc = kept;
}

int main(int argc, char** argv) {
    parseDaemonFlags(argc, argv);
    if (!startDaemon()) {
        std::fprintf(stderr, "service_bench: cannot start the daemon: %s\n", std::strerror(errno));
        return 1;
    }
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    stopDaemon();
    return 0;
}
