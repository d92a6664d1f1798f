// SPDX-License-Identifier: MIT
// Allocate+free from the system heap against the raw memfd baseline, with and without touching pages.
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <cenalloc/context.h>
#include <cenalloc/units.h>

namespace {

using cenalloc::KiB;
using cenalloc::MiB;

void touchPages(void* data, size_t size) {
    auto* p = static_cast<volatile char*>(data);
    for (size_t off = 0; off < size; off += cenalloc::kPageSize)
        p[off] = 1;
}

// Map @p fd shared, touch every page, unmap: false (and the benchmark
// skipped) when the mapping fails.
bool mapTouchUnmap(benchmark::State& state, int fd, size_t size, int extraFlags = 0) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | extraFlags, fd, 0);
    if (p == MAP_FAILED) {
        state.SkipWithError("mmap");
        return false;
    }
    touchPages(p, size);
    munmap(p, size);
    return true;
}

// A sealed memfd of @p size as a buffer's, with nothing else: -1 on failure.
int rawSealedMemfd(size_t size) {
    int fd = memfd_create("raw", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd >= 0 && (ftruncate(fd, static_cast<off_t>(size)) != 0 ||
                    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

// The baseline: what a buffer costs with no allocator at all.
void BM_RawMemfd(benchmark::State& state) {
    const size_t size = static_cast<size_t>(state.range(0));
    const bool touch = state.range(1) != 0;
    for (auto _ : state) {
        int fd = rawSealedMemfd(size);
        if (fd < 0) {
            state.SkipWithError("memfd");
            break;
        }
        const bool mapped = !touch || mapTouchUnmap(state, fd, size);
        close(fd);
        if (!mapped)
            break;
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
}

void BM_CenallocSystem(benchmark::State& state) {
    const size_t size = static_cast<size_t>(state.range(0));
    const bool touch = state.range(1) != 0;
    auto context = cenalloc::Context::create();
    if (!context) {
        state.SkipWithError(context.error().toString().c_str());
        return;
    }
    for (auto _ : state) {
        auto buffer = (*context)->allocate("system", size);
        if (!buffer) {
            state.SkipWithError(buffer.error().toString().c_str());
            break;
        }
        if (touch) {
            auto map = (*buffer)->mmap();
            if (!map) {
                state.SkipWithError(map.error().toString().c_str());
                break;
            }
            touchPages(map->data(), map->size());
        }
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
}

// ---- Ready buffers (issue 17): the whole cycle a user pays for a buffer,
// allocate + map + touch every page + unmap + free, in one run and
// interleaved per size. Each iteration is followed (untimed) by what lets
// the pool's background refill keep up, the steady state of a steady
// allocation rate; the baselines pause the same way.

void pauseForRefill(benchmark::State& state, cenalloc::Context* context) {
    state.PauseTiming();
    if (context)
        context->waitReadyPoolRefilled();
    state.ResumeTiming();
}

// How the pool is set up: off (the cold set), as by default, or serving
// every size (to measure where ReadyPoolOptions::minBytes belongs).
enum class Pool { Off, Default, AllSizes };

std::unique_ptr<cenalloc::Context> readyContext(Pool pool) {
    cenalloc::ContextOptions options;
    options.kernelHeaps = false;
    if (pool == Pool::Off)
        options.readyPool.heapBytes = 0;
    if (pool == Pool::AllSizes)
        options.readyPool.minBytes = 0;
    auto context = cenalloc::Context::create(cenalloc::defaultPlatform(), options);
    return context ? std::move(*context) : nullptr;
}

// One buffer of @p size, used (mapped), orders its class; wait until it is made.
void warmClass(cenalloc::Context& context, size_t size) {
    if (auto warm = context.allocate("system", size))
        (void)(*warm)->mmap();
    context.waitReadyPoolRefilled();
}

void readyCenalloc(benchmark::State& state, Pool pool) {
    const size_t size = static_cast<size_t>(state.range(0));
    auto context = readyContext(pool);
    if (!context) {
        state.SkipWithError("context");
        return;
    }
    warmClass(*context, size);
    const auto before = context->readyPoolStats().back();
    for (auto _ : state) {
        {
            auto buffer = context->allocate("system", size);
            if (!buffer) {
                state.SkipWithError(buffer.error().toString().c_str());
                break;
            }
            auto map = (*buffer)->mmap();
            if (!map) {
                state.SkipWithError(map.error().toString().c_str());
                break;
            }
            touchPages(map->data(), map->size());
        }
        pauseForRefill(state, context.get());
    }
    const auto after = context->readyPoolStats().back();
    const double asked = static_cast<double>((after.hits + after.misses) - (before.hits + before.misses));
    state.counters["hit_rate"] = asked > 0 ? static_cast<double>(after.hits - before.hits) / asked : 0.0;
    state.SetItemsProcessed(state.iterations());
}

void BM_Ready_Cenalloc(benchmark::State& state) {
    readyCenalloc(state, Pool::Default);
}
void BM_Ready_CenallocCold(benchmark::State& state) {
    readyCenalloc(state, Pool::Off);
}
void BM_Ready_CenallocAllSizes(benchmark::State& state) {
    readyCenalloc(state, Pool::AllSizes);
}

void BM_Ready_RawMemfd(benchmark::State& state) {
    const size_t size = static_cast<size_t>(state.range(0));
    for (auto _ : state) {
        int fd = rawSealedMemfd(size);
        if (fd < 0) {
            state.SkipWithError("memfd");
            break;
        }
        const bool mapped = mapTouchUnmap(state, fd, size);
        close(fd);
        if (!mapped)
            break;
        pauseForRefill(state, nullptr);
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_Ready_AnonPopulate(benchmark::State& state) {
    const size_t size = static_cast<size_t>(state.range(0));
    for (auto _ : state) {
        void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (p == MAP_FAILED) {
            state.SkipWithError("mmap");
            break;
        }
        touchPages(p, size);
        munmap(p, size);
        pauseForRefill(state, nullptr);
    }
    state.SetItemsProcessed(state.iterations());
}

// What serving a request from a larger size class costs: cutting a ready
// memfd (pages allocated and zeroed) of size + 1/8 down to the size.
void BM_Ready_ShrinkEighth(benchmark::State& state) {
    const size_t size = static_cast<size_t>(state.range(0));
    const size_t cls = size + size / 8;
    for (auto _ : state) {
        state.PauseTiming();
        int fd = memfd_create("shrink", MFD_CLOEXEC);
        if (fd < 0 || fallocate(fd, 0, 0, static_cast<off_t>(cls)) != 0) {
            state.SkipWithError("fallocate");
            break;
        }
        void* p = mmap(nullptr, cls, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
        if (p != MAP_FAILED)
            munmap(p, cls);
        state.ResumeTiming();
        if (ftruncate(fd, static_cast<off_t>(size)) != 0)
            state.SkipWithError("ftruncate");
        state.PauseTiming();
        close(fd);
        state.ResumeTiming();
    }
}

// How the refill thread prepares a ready memfd, interleaved in one loop so
// both see the same machine: a populated read-only mapping whose faults
// clear the pages (makeReadyMemfd), or a second fallocate over the
// allocated pages, which clears them without a mapping (shmem_get_folio_gfp()
// sends a "fallocated folio" found !uptodate to its clear: label). The
// second costs the refill thread a third to a half of the first and never
// takes the process's mmap lock, but the user's cycle after it is slower
// (this machine: 1.1x at 64 KiB, 1.2x at 1 MiB, 1.5x at 8 MiB), and the
// user's cycle is what the pool is for. Counters: the preparation's time
// and the user's cycle after it (map populated, touch every page, unmap,
// close), per method, in microseconds.
void BM_Ready_Prepared(benchmark::State& state) {
    using Clock = std::chrono::steady_clock;
    const size_t size = static_cast<size_t>(state.range(0));
    Clock::duration prep[2]{}, use[2]{};
    auto prepare = [&](int method) {
        int fd = memfd_create("prepared", MFD_CLOEXEC);
        if (fd < 0 || fallocate(fd, 0, 0, static_cast<off_t>(size)) != 0)
            return -1;
        if (method == 1)
            return fallocate(fd, 0, 0, static_cast<off_t>(size)) == 0 ? fd : -1;
        void* p = mmap(nullptr, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
        if (p == MAP_FAILED)
            return -1;
        munmap(p, size);
        return fd;
    };
    bool firstMethod = false;
    for (auto _ : state) {
        for (int turn = 0; turn < 2; ++turn) {
            const int method = turn ^ static_cast<int>(firstMethod);
            auto start = Clock::now();
            const int fd = prepare(method);
            auto prepared = Clock::now();
            if (fd < 0 || !mapTouchUnmap(state, fd, size, MAP_POPULATE)) {
                state.SkipWithError("preparing");
                return;
            }
            close(fd);
            prep[method] += prepared - start;
            use[method] += Clock::now() - prepared;
        }
        firstMethod = !firstMethod;
    }
    const double n = static_cast<double>(state.iterations());
    auto micros = [n](Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count() / n; };
    state.counters["prep_populate_us"] = micros(prep[0]);
    state.counters["prep_fallocate2_us"] = micros(prep[1]);
    state.counters["use_populate_us"] = micros(use[0]);
    state.counters["use_fallocate2_us"] = micros(use[1]);
}

// ---- Allocate + free of a buffer nobody maps, back to back: what the pool
// must not make worse than a raw memfd. A buffer orders the refill of its
// class only when it is used (mapped, or its fd handed out), so the refill
// thread stays idle here; refills_per_op says so.

void noTouchCenalloc(benchmark::State& state, Pool pool) {
    const size_t size = static_cast<size_t>(state.range(0));
    auto context = readyContext(pool);
    if (!context) {
        state.SkipWithError("context");
        return;
    }
    // The steady state of a mapped workload first: the class is stocked.
    warmClass(*context, size);
    const auto before = context->readyPoolStats().back();
    for (auto _ : state) {
        auto buffer = context->allocate("system", size);
        if (!buffer) {
            state.SkipWithError(buffer.error().toString().c_str());
            break;
        }
    }
    context->waitReadyPoolRefilled();
    const auto after = context->readyPoolStats().back();
    state.counters["refills_per_op"] = benchmark::Counter(static_cast<double>(after.refills - before.refills) /
                                                          static_cast<double>(state.iterations()));
    state.SetItemsProcessed(state.iterations());
}

void BM_NoTouch_Cenalloc(benchmark::State& state) {
    noTouchCenalloc(state, Pool::Default);
}
void BM_NoTouch_CenallocOff(benchmark::State& state) {
    noTouchCenalloc(state, Pool::Off);
}
void BM_NoTouch_RawMemfd(benchmark::State& state) {
    const size_t size = static_cast<size_t>(state.range(0));
    for (auto _ : state) {
        int fd = rawSealedMemfd(size);
        if (fd < 0) {
            state.SkipWithError("memfd");
            break;
        }
        close(fd);
    }
    state.SetItemsProcessed(state.iterations());
}

const int kRegistered = [] {
    for (int64_t size : {4 * KiB, 64 * KiB, MiB, 8 * MiB, 32 * MiB}) {
        for (auto [name, fn] :
             {std::pair{"BM_Ready_Cenalloc", &BM_Ready_Cenalloc}, std::pair{"BM_Ready_RawMemfd", &BM_Ready_RawMemfd},
              std::pair{"BM_Ready_AnonPopulate", &BM_Ready_AnonPopulate},
              std::pair{"BM_Ready_CenallocCold", &BM_Ready_CenallocCold},
              std::pair{"BM_Ready_CenallocAllSizes", &BM_Ready_CenallocAllSizes},
              std::pair{"BM_Ready_ShrinkEighth", &BM_Ready_ShrinkEighth}})
            benchmark::RegisterBenchmark(name, fn)->ArgName("size")->Arg(size)->Unit(benchmark::kMicrosecond);
    }
    for (int64_t size : {64 * KiB, MiB, 8 * MiB, 32 * MiB})
        benchmark::RegisterBenchmark("BM_Ready_Prepared", BM_Ready_Prepared)
            ->ArgName("size")
            ->Arg(size)
            ->Unit(benchmark::kMicrosecond);
    for (int64_t size : {64 * KiB, MiB, 8 * MiB}) {
        for (auto [name, fn] : {std::pair{"BM_NoTouch_Cenalloc", &BM_NoTouch_Cenalloc},
                                std::pair{"BM_NoTouch_CenallocOff", &BM_NoTouch_CenallocOff},
                                std::pair{"BM_NoTouch_RawMemfd", &BM_NoTouch_RawMemfd}})
            benchmark::RegisterBenchmark(name, fn)->ArgName("size")->Arg(size)->Unit(benchmark::kMicrosecond);
    }
    return 0;
}();

void sizes(benchmark::internal::Benchmark* b) {
    for (int touch : {0, 1})
        for (int64_t size : {4 * KiB, 64 * KiB, MiB, 8 * MiB, 32 * MiB})
            b->Args({size, touch});
    b->ArgNames({"size", "touch"});
}

BENCHMARK(BM_RawMemfd)->Apply(sizes);
BENCHMARK(BM_CenallocSystem)->Apply(sizes);

} // namespace

BENCHMARK_MAIN();
