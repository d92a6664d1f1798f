// SPDX-License-Identifier: MIT
// Allocate+free from the system heap against the raw memfd baseline, with and without touching pages.
#include <cstring>
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

// The baseline: what a buffer costs with no allocator at all.
void BM_RawMemfd(benchmark::State& state) {
    const size_t size = static_cast<size_t>(state.range(0));
    const bool touch = state.range(1) != 0;
    for (auto _ : state) {
        int fd = memfd_create("raw", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0 || ftruncate(fd, static_cast<off_t>(size)) != 0 ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
            state.SkipWithError("memfd");
            break;
        }
        if (touch) {
            void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED) {
                state.SkipWithError("mmap");
                break;
            }
            touchPages(p, size);
            munmap(p, size);
        }
        close(fd);
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
