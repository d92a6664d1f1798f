// SPDX-License-Identifier: MIT
// Allocation+free through the dma-heap shim against the Session API it serves, in-process and via cenallocd.
//
// Pairs to compare in the same run (the shim's overhead is the ratio;
// Overhead/<mode> measures it interleaved, which a busy host needs):
//   Direct/<mode>    Session::allocate() + close: what a cenalloc client pays
//   Shim/<mode>      DMA_HEAP_IOCTL_ALLOC through DmaHeapEmulator + close:
//                    what an unmodified dma-heap program pays under the shim
//   Preloaded/local  the same through libcenalloc-dmaheap.so's exported
//                    ioctl() (dlopen), i.e. including the interposition
// with <mode> in-process or cenallocd (started by this program on a private
// socket). Baselines: a raw sealed memfd, and the kernel's system heap when
// the host has /dev/dma_heap/system.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/dma-heap.h>
#include <memory>
#include <poll.h>
#include <string>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <cenalloc/context.h>
#include <cenalloc/session.h>
#include <cenalloc/units.h>

#include "shim/emulator.h"

namespace {

using cenalloc::KiB;
using cenalloc::MiB;
using cenalloc::Session;
using cenalloc::shim::DmaHeapEmulator;
using cenalloc::shim::ShimOptions;

/// cenallocd on a private socket for the whole run, started on first use.
class Daemon {
public:
    static Daemon& instance() {
        static Daemon daemon;
        return daemon;
    }
    bool ready() const { return ready_; }
    const std::string& socket() const { return socket_; }
    const std::string& why() const { return why_; }

    ~Daemon() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
        }
        ::unlink(notify_.c_str());
    }

private:
    Daemon() {
        const std::string base = "/tmp/cenalloc-compat-bench-" + std::to_string(::getpid());
        socket_ = base + ".sock";
        notify_ = base + ".notify";
        int notify = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, notify_.c_str(), sizeof addr.sun_path - 1);
        if (notify < 0 || ::bind(notify, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            why_ = std::string("notify socket: ") + std::strerror(errno);
            return;
        }
        std::string notifyVar = "NOTIFY_SOCKET=" + notify_;
        pid_ = ::fork();
        if (pid_ == 0) {
            ::putenv(notifyVar.data());
            ::execl(CENALLOCD, CENALLOCD, "--socket", socket_.c_str(), "--log-level", "error", nullptr);
            _exit(127);
        }
        pollfd p{notify, POLLIN, 0};
        char buffer[64] = {};
        if (::poll(&p, 1, 30000) == 1 && ::recv(notify, buffer, sizeof buffer - 1, 0) > 0 &&
            std::string(buffer) == "READY=1")
            ready_ = true;
        else
            why_ = "cenallocd did not get ready";
        ::close(notify);
    }

    std::string socket_;
    std::string notify_;
    std::string why_;
    pid_t pid_ = -1;
    bool ready_ = false;
};

/// A session of the benchmark's mode: 0 in-process, 1 cenallocd.
std::shared_ptr<Session> makeSession(benchmark::State& state, int mode) {
    if (mode == 0) {
        auto local = Session::local();
        if (!local) {
            state.SkipWithError(local.error().toString().c_str());
            return nullptr;
        }
        return std::shared_ptr<Session>(std::move(*local));
    }
    Daemon& daemon = Daemon::instance();
    if (!daemon.ready()) {
        state.SkipWithError(daemon.why().c_str());
        return nullptr;
    }
    auto remote = Session::connect(daemon.socket());
    if (!remote) {
        state.SkipWithError(remote.error().toString().c_str());
        return nullptr;
    }
    return std::shared_ptr<Session>(std::move(*remote));
}

/// The shim's emulator over @p session with its system heap open (the
/// host's kernel heaps hidden, so that "system" is always cenalloc's); null,
/// the benchmark skipped saying why, on failure.
struct EmulatedHeap {
    std::unique_ptr<DmaHeapEmulator> emulator;
    int heap = -1;
    ~EmulatedHeap() {
        if (heap >= 0)
            ::close(heap);
    }
};

std::unique_ptr<EmulatedHeap> openEmulatedHeap(benchmark::State& state, std::shared_ptr<Session> session) {
    ShimOptions options;
    options.kernelHeapDir = "/nonexistent/dma_heap";
    auto emulator = DmaHeapEmulator::create(std::move(session), options, cenalloc::shim::nextLibc());
    if (!emulator) {
        state.SkipWithError(emulator.error().toString().c_str());
        return nullptr;
    }
    auto shim = std::make_unique<EmulatedHeap>();
    shim->emulator = std::move(*emulator);
    auto heap = shim->emulator->open(AT_FDCWD, "/dev/dma_heap/system", O_RDWR | O_CLOEXEC, 0);
    if (!heap || *heap < 0) {
        state.SkipWithError("opening /dev/dma_heap/system");
        return nullptr;
    }
    shim->heap = *heap;
    return shim;
}

void setCounters(benchmark::State& state, size_t size) {
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
}

void BM_Direct(benchmark::State& state) {
    const size_t size = static_cast<size_t>(state.range(0));
    auto session = makeSession(state, static_cast<int>(state.range(1)));
    if (!session)
        return;
    for (auto _ : state) {
        auto fd = session->allocate("system", size);
        if (!fd) {
            state.SkipWithError(fd.error().toString().c_str());
            break;
        }
        benchmark::DoNotOptimize(fd->get());
    }
    setCounters(state, size);
}

void BM_Shim(benchmark::State& state) {
    const size_t size = static_cast<size_t>(state.range(0));
    auto session = makeSession(state, static_cast<int>(state.range(1)));
    if (!session)
        return;
    auto shim = openEmulatedHeap(state, session);
    if (!shim)
        return;
    for (auto _ : state) {
        dma_heap_allocation_data data{size, 0, O_RDWR | O_CLOEXEC, 0};
        auto ret = shim->emulator->ioctl(shim->heap, DMA_HEAP_IOCTL_ALLOC, &data);
        if (!ret || *ret != 0) {
            state.SkipWithError(std::strerror(errno));
            break;
        }
        ::close(static_cast<int>(data.fd));
    }
    setCounters(state, size);
}

/// Direct and shim allocations interleaved in one loop over one session,
/// alternating which goes first, so that both see the same machine (a loaded
/// CI host makes separate runs differ by more than the overhead). Counters:
/// direct_ns and shim_ns per allocation+free, overhead_pct of the shim.
void BM_Overhead(benchmark::State& state) {
    const size_t size = static_cast<size_t>(state.range(0));
    // One session for both, so that the only difference is the shim's path
    // (two daemon connections are served by threads the scheduler places
    // differently, which on a busy host varies by more than 2x).
    auto direct = makeSession(state, static_cast<int>(state.range(1)));
    if (!direct)
        return;
    auto shim = openEmulatedHeap(state, direct);
    if (!shim)
        return;
    using Clock = std::chrono::steady_clock;
    Clock::duration directTime{}, shimTime{};
    bool shimFirst = false;
    auto viaSession = [&] {
        auto start = Clock::now();
        bool ok;
        {
            auto fd = direct->allocate("system", size);
            ok = fd.has_value();
        } // the buffer's fd closes here, inside the timed region
        directTime += Clock::now() - start;
        return ok;
    };
    auto viaShim = [&] {
        auto start = Clock::now();
        dma_heap_allocation_data data{size, 0, O_RDWR | O_CLOEXEC, 0};
        auto ret = shim->emulator->ioctl(shim->heap, DMA_HEAP_IOCTL_ALLOC, &data);
        bool ok = ret && *ret == 0;
        if (ok)
            ::close(static_cast<int>(data.fd));
        shimTime += Clock::now() - start;
        return ok;
    };
    // Blocks of each kind rather than single calls: one call warms the
    // caches for the next, which single interleaved calls would charge
    // unevenly.
    constexpr int kBlock = 16;
    auto block = [&](const auto& one) {
        for (int i = 0; i < kBlock; ++i)
            if (!one())
                return false;
        return true;
    };
    for (auto _ : state) {
        bool ok = shimFirst ? (block(viaShim) && block(viaSession)) : (block(viaSession) && block(viaShim));
        if (!ok) {
            state.SkipWithError("allocation failed");
            break;
        }
        shimFirst = !shimFirst;
    }
    const double n = static_cast<double>(state.iterations()) * kBlock;
    const double directNs = std::chrono::duration<double, std::nano>(directTime).count() / n;
    const double shimNs = std::chrono::duration<double, std::nano>(shimTime).count() / n;
    state.counters["direct_ns"] = directNs;
    state.counters["shim_ns"] = shimNs;
    state.counters["overhead_pct"] = 100.0 * (shimNs - directNs) / directNs;
}

/// The exported entry points of libcenalloc-dmaheap.so, loaded once.
struct Preloaded {
    int (*open)(const char*, int, ...) = nullptr;
    int (*ioctl)(int, unsigned long, ...) = nullptr;
    std::string why;
    static const Preloaded& instance() {
        static const Preloaded loaded = [] {
            Preloaded p;
            ::setenv("CENALLOC_SHIM_MODE", "local", 1);
            void* handle = ::dlopen(CENALLOC_SHIM_LIBRARY, RTLD_NOW | RTLD_LOCAL);
            if (!handle) {
                p.why = ::dlerror();
                return p;
            }
            p.open = reinterpret_cast<int (*)(const char*, int, ...)>(::dlsym(handle, "open"));
            p.ioctl = reinterpret_cast<int (*)(int, unsigned long, ...)>(::dlsym(handle, "ioctl"));
            if (!p.open || !p.ioctl)
                p.why = "the shim exports no open/ioctl";
            return p;
        }();
        return loaded;
    }
};

void BM_Preloaded(benchmark::State& state) {
    const size_t size = static_cast<size_t>(state.range(0));
    const Preloaded& shim = Preloaded::instance();
    if (!shim.why.empty()) {
        state.SkipWithError(shim.why.c_str());
        return;
    }
    int heap = shim.open("/dev/dma_heap/system", O_RDWR | O_CLOEXEC);
    if (heap < 0) {
        state.SkipWithError("the shim cannot open /dev/dma_heap/system");
        return;
    }
    for (auto _ : state) {
        dma_heap_allocation_data data{size, 0, O_RDWR | O_CLOEXEC, 0};
        if (shim.ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &data) != 0) {
            state.SkipWithError(std::strerror(errno));
            break;
        }
        ::close(static_cast<int>(data.fd));
    }
    ::close(heap);
    setCounters(state, size);
}

void BM_Lseek(benchmark::State& state) {
    const bool onBuffer = state.range(0) != 0;
    auto session = makeSession(state, static_cast<int>(state.range(1)));
    if (!session)
        return;
    auto shim = openEmulatedHeap(state, session);
    if (!shim)
        return;
    dma_heap_allocation_data data{64 * KiB, 0, O_RDWR | O_CLOEXEC, 0};
    auto allocated = shim->emulator->ioctl(shim->heap, DMA_HEAP_IOCTL_ALLOC, &data);
    if (!allocated || *allocated != 0) {
        state.SkipWithError("allocation failed");
        return;
    }
    FILE* file = std::tmpfile();
    const int fd = onBuffer ? static_cast<int>(data.fd) : ::fileno(file);
    for (auto _ : state) {
        // SEEK_CUR: a buffer refuses it (EINVAL) only after the shim knows
        // the fd is one; on the tmpfile it is the file's own answer.
        auto r = shim->emulator->lseek(fd, 0, SEEK_CUR);
        off_t at = r ? *r : ::lseek(fd, 0, SEEK_CUR);
        benchmark::DoNotOptimize(at);
    }
    std::fclose(file);
    ::close(static_cast<int>(data.fd));
    state.SetItemsProcessed(state.iterations());
}

void BM_LseekRaw(benchmark::State& state) {
    FILE* file = std::tmpfile();
    for (auto _ : state)
        benchmark::DoNotOptimize(::lseek(::fileno(file), 0, SEEK_CUR));
    std::fclose(file);
    state.SetItemsProcessed(state.iterations());
}

// The baseline: what a buffer costs with no allocator at all.
void BM_RawMemfd(benchmark::State& state) {
    const size_t size = static_cast<size_t>(state.range(0));
    for (auto _ : state) {
        int fd = ::memfd_create("raw", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(size)) != 0 ||
            ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
            state.SkipWithError("memfd");
            break;
        }
        ::close(fd);
    }
    setCounters(state, size);
}

// The kernel's system heap, where the host has one.
void BM_KernelHeap(benchmark::State& state) {
    const size_t size = static_cast<size_t>(state.range(0));
    int heap = ::open("/dev/dma_heap/system", O_RDWR | O_CLOEXEC);
    if (heap < 0) {
        state.SkipWithError("no /dev/dma_heap/system on this host");
        return;
    }
    for (auto _ : state) {
        dma_heap_allocation_data data{size, 0, O_RDWR | O_CLOEXEC, 0};
        if (::ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &data) != 0) {
            state.SkipWithError(std::strerror(errno));
            break;
        }
        ::close(static_cast<int>(data.fd));
    }
    ::close(heap);
    setCounters(state, size);
}

// ---- Ready buffers (issue 17): the whole cycle an unmodified dma-heap
// program pays under the shim, in-process (no pool there) or through
// cenallocd (the daemon's pool) (DMA_HEAP_IOCTL_ALLOC, mmap through
// the shim, which populates the mapping as the kernel's system heap does,
// touch every page, munmap, close) against the same cycle through the
// library (alloc_bench's BM_Ready_Cenalloc), in one run, each followed
// (untimed) by what lets the pool's refill keep up. The preloaded library
// adds only its interposition to the emulator's path (BM_Preloaded against
// BM_Shim).

void touchPages(void* data, size_t size) {
    auto* p = static_cast<volatile char*>(data);
    for (size_t off = 0; off < size; off += cenalloc::kPageSize)
        p[off] = 1;
}

// Wait until the session's pool has made @p refills memfds in all, or a
// second passed (a refill given up under memory pressure never comes).
void waitForRefills(Session& session, uint64_t refills) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (std::chrono::steady_clock::now() < until) {
        auto stats = session.stats(false);
        if (!stats || stats->readyPools.empty() || stats->readyPools.back().refills >= refills)
            break;
        std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
}

// Until the daemon's refill thread has made nothing for a while (1.5 times
// its mean time per memfd, at least 200 us): a take orders a refill that is
// made only when its class runs low (ReadyPoolOptions::classDepth), so a
// given take may be followed by none, and a wait for one more refill would
// last its whole bound. Bounded by a second.
void waitForQuietPool(Session& session) {
    using Clock = std::chrono::steady_clock;
    const auto until = Clock::now() + std::chrono::seconds(1);
    uint64_t seen = UINT64_MAX;
    auto changed = Clock::now();
    while (Clock::now() < until) {
        auto stats = session.stats(false);
        if (!stats || stats->readyPools.empty())
            return;
        const auto& all = stats->readyPools.back();
        const auto mean = std::chrono::nanoseconds(all.refills ? all.refillNanos / all.refills : 0);
        const auto quiet = std::max<Clock::duration>(std::chrono::microseconds(200), mean * 3 / 2);
        if (all.refills != seen) {
            seen = all.refills;
            changed = Clock::now();
        } else if (Clock::now() - changed >= quiet) {
            return;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
}

uint64_t refillsSoFar(Session& session) {
    auto stats = session.stats(false);
    return stats && !stats->readyPools.empty() ? stats->readyPools.back().refills : 0;
}

void BM_Ready_Shim(benchmark::State& state) {
    const size_t size = static_cast<size_t>(state.range(0));
    // As the shim runs: in-process without a pool of ready memory
    // (inProcessContextOptions), or through cenallocd, whose pool serves it.
    std::shared_ptr<Session> session;
    if (state.range(1) == 0) {
        auto local = Session::local(cenalloc::defaultPlatform(), cenalloc::shim::inProcessContextOptions());
        if (!local) {
            state.SkipWithError(local.error().toString().c_str());
            return;
        }
        session = std::move(*local);
    } else {
        session = makeSession(state, 1);
    }
    if (!session)
        return;
    auto shim = openEmulatedHeap(state, session);
    if (!shim)
        return;
    auto cycle = [&] {
        dma_heap_allocation_data data{size, 0, O_RDWR | O_CLOEXEC, 0};
        auto ret = shim->emulator->ioctl(shim->heap, DMA_HEAP_IOCTL_ALLOC, &data);
        if (!ret || *ret != 0)
            return false;
        const int fd = static_cast<int>(data.fd);
        // What the preloaded mmap() does: the emulator adjusts the flags,
        // libc maps.
        int flags = MAP_SHARED;
        void* p = MAP_FAILED;
        if (auto refused = shim->emulator->mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, fd, 0, &flags))
            p = *refused;
        else
            p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, fd, 0);
        if (p == MAP_FAILED) {
            ::close(fd);
            return false;
        }
        touchPages(p, size);
        ::munmap(p, size);
        ::close(fd);
        return true;
    };
    // Warm: one buffer of the size orders its class (unless the pool does
    // not serve the size: then nothing is waited for).
    uint64_t refills = refillsSoFar(*session);
    if (!cycle()) {
        state.SkipWithError("allocation failed");
        return;
    }
    waitForRefills(*session, refills + 1);
    const bool pooled = refillsSoFar(*session) > refills;
    for (auto _ : state) {
        if (!cycle()) {
            state.SkipWithError("allocation or mmap failed");
            break;
        }
        if (pooled) {
            state.PauseTiming();
            waitForQuietPool(*session);
            state.ResumeTiming();
        }
    }
    if (auto stats = session->stats(false); stats && !stats->readyPools.empty()) {
        const auto& all = stats->readyPools.back();
        state.counters["hits"] = static_cast<double>(all.hits);
        state.counters["misses"] = static_cast<double>(all.misses);
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_Ready_Cenalloc(benchmark::State& state) {
    const size_t size = static_cast<size_t>(state.range(0));
    cenalloc::ContextOptions options;
    options.kernelHeaps = false;
    auto context = cenalloc::Context::create(cenalloc::defaultPlatform(), options);
    if (!context) {
        state.SkipWithError(context.error().toString().c_str());
        return;
    }
    auto cycle = [&] {
        auto buffer = (*context)->allocate("system", size);
        if (!buffer)
            return false;
        auto map = (*buffer)->mmap();
        if (!map)
            return false;
        touchPages(map->data(), map->size());
        return true;
    };
    if (!cycle()) {
        state.SkipWithError("allocation failed");
        return;
    }
    (*context)->waitReadyPoolRefilled();
    for (auto _ : state) {
        if (!cycle()) {
            state.SkipWithError("allocation or mmap failed");
            break;
        }
        state.PauseTiming();
        (*context)->waitReadyPoolRefilled();
        state.ResumeTiming();
    }
    state.SetItemsProcessed(state.iterations());
}

const int kReadyRegistered = [] {
    for (int64_t size : {4 * KiB, 64 * KiB, MiB, 8 * MiB, 32 * MiB}) {
        for (int64_t daemon : {0, 1})
            benchmark::RegisterBenchmark("BM_Ready_Shim", &BM_Ready_Shim)
                ->ArgNames({"size", "daemon"})
                ->Args({size, daemon})
                ->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark("BM_Ready_Cenalloc", &BM_Ready_Cenalloc)
            ->ArgName("size")
            ->Arg(size)
            ->Unit(benchmark::kMicrosecond);
    }
    return 0;
}();

void modes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"size", "daemon"});
    for (int64_t mode : {0, 1})
        for (int64_t size : {int64_t{4 * KiB}, int64_t{1 * MiB}})
            b->Args({size, mode});
}

void sizes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"size"});
    b->Arg(4 * KiB)->Arg(1 * MiB);
}

BENCHMARK(BM_Direct)->Apply(modes);
BENCHMARK(BM_Shim)->Apply(modes);
BENCHMARK(BM_Overhead)->Apply(modes);
BENCHMARK(BM_Preloaded)->Apply(sizes);
BENCHMARK(BM_RawMemfd)->Apply(sizes);
BENCHMARK(BM_KernelHeap)->Apply(sizes);
BENCHMARK(BM_Lseek)->ArgNames({"buffer", "daemon"})->ArgsProduct({{0, 1}, {0, 1}});
BENCHMARK(BM_LseekRaw);

} // namespace

BENCHMARK_MAIN();
