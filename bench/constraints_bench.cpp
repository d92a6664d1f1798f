// SPDX-License-Identifier: MIT
// explain() and the attach check with 1..64 devices against 4 and 32 heaps: cost per device-heap pair.
#include <cstdint>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cenalloc/constraints.h>
#include <cenalloc/explain.h>
#include <cenalloc/units.h>

namespace cenalloc {
namespace {

constexpr uint64_t kBufferSize = 8 * MiB;
constexpr int kMaxDevices = 64;

// 64 devices that can all share a buffer: scatter-gather masters with
// masks from 32 to 48 bits, a quarter of them behind one of four IOMMUs,
// mixed coherency and segment limits.
Platform syntheticPlatform() {
    Platform p;
    p.name = "synthetic";
    p.memory = {{"low", 0x80000000, 2 * GiB}, {"high", 0x880000000, 30 * GiB}};
    for (int i = 0; i < 4; ++i)
        p.iommus.push_back({fmt::format("smmu{}", i), 4096, 0x100000, 0xfff00000});
    for (int i = 0; i < kMaxDevices; ++i) {
        Device d;
        d.name = fmt::format("dev{:02}", i);
        DmaConstraints& c = d.constraints;
        c.dmaMask = c.coherentDmaMask = (uint64_t{1} << (32 + (i * 5) % 17)) - 1;
        c.maxSegmentSize = (i % 3 == 0) ? 0xffffffff : 1 * MiB;
        c.maxSegmentCount = (i % 5 == 0) ? 4096 : 0;
        c.segmentBoundaryMask = (i % 7 == 0) ? 0xffffffff : kNoLimit;
        c.coherent = i % 2 == 0;
        c.accessBits = (i % 6 == 0) ? 0x1 : 0x3;
        if (i % 4 == 0)
            d.iommu = fmt::format("smmu{}", (i / 4) % 4);
        p.devices.push_back(d);
    }
    return p;
}

// @p count heaps: system heaps over several ranges, CMA pools below 4 GiB,
// and carveouts of a memory kind the devices do not reach (refusals, so
// both paths of matching are measured).
std::vector<HeapProperties> syntheticHeaps(int count) {
    std::vector<HeapProperties> heaps;
    for (int i = 0; i < count; ++i) {
        HeapProperties h;
        h.name = fmt::format("heap{:02}", i);
        h.minChunkSize = 4096;
        h.maxChunkSize = 1 * MiB;
        h.chunkAlignment = 4096;
        switch (i % 4) {
        case 0: // system, all memory
        case 1: // system, below 4 GiB
            h.kind = HeapKind::System;
            h.lowestAddress = 0x80000000;
            h.highestAddress = i % 4 == 0 ? 0xffffffffff : 0xffffffff;
            h.cached = (i / 4) % 2 == 0;
            h.capacity = 16 * GiB;
            break;
        case 2: // cma pool
            h.kind = HeapKind::Cma;
            h.lowestAddress = 0x90000000 + uint64_t(i) * 64 * MiB;
            h.highestAddress = h.lowestAddress + 64 * MiB - 1;
            h.contiguous = true;
            h.maxChunkSize = 64 * MiB;
            h.capacity = 64 * MiB;
            break;
        case 3: // secure carveout
            h.kind = HeapKind::Carveout;
            h.lowestAddress = 0xe0000000 + uint64_t(i) * 16 * MiB;
            h.highestAddress = h.lowestAddress + 16 * MiB - 1;
            h.contiguous = true;
            h.cached = false;
            h.accessBits = 0x4;
            h.capacity = 16 * MiB;
            break;
        }
        heaps.push_back(h);
    }
    return heaps;
}

struct Fixture {
    Platform platform = syntheticPlatform();
    std::vector<std::string> names;
    Fixture() {
        for (const Device& d : platform.devices)
            names.push_back(d.name);
    }
};

const Fixture& fixture() {
    static const Fixture f;
    return f;
}

void setPairCounters(benchmark::State& state, int64_t devices, int64_t heaps) {
    state.counters["devices"] = static_cast<double>(devices);
    state.counters["heaps"] = static_cast<double>(heaps);
    // Seconds per device-heap pair, printed with an SI prefix ("25n" = 25 ns).
    state.counters["per_pair"] =
        benchmark::Counter(static_cast<double>(devices * heaps),
                           benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// The whole explanation: every (heap, device) verdict, the merged set, the
// ranking and the allocating device.
void BM_Explain(benchmark::State& state) {
    const Fixture& f = fixture();
    const int devices = static_cast<int>(state.range(0));
    const std::vector<HeapProperties> heaps = syntheticHeaps(static_cast<int>(state.range(1)));
    const std::span<const std::string> names(f.names.data(), static_cast<size_t>(devices));
    {
        Result<Explanation> e = explain(f.platform, heaps, names, kBufferSize, CpuAccess::Rare);
        if (!e || !e->satisfiable) {
            state.SkipWithError("synthetic set is not satisfiable");
            return;
        }
    }
    for (auto _ : state) {
        Result<Explanation> e = explain(f.platform, heaps, names, kBufferSize, CpuAccess::Rare);
        benchmark::DoNotOptimize(e);
    }
    setPairCounters(state, devices, static_cast<int64_t>(heaps.size()));
}

// One attach on top of devices - 1 already attached: the incremental check
// the deferred exporter makes (merge one device, match every heap).
void BM_AttachCheck(benchmark::State& state) {
    const Fixture& f = fixture();
    const int devices = static_cast<int>(state.range(0));
    const std::vector<HeapProperties> heaps = syntheticHeaps(static_cast<int>(state.range(1)));
    ConstraintSet attached;
    for (int i = 0; i + 1 < devices; ++i)
        attached = *attached.merge(f.platform.devices[static_cast<size_t>(i)], f.platform);
    const Device& joining = f.platform.devices[static_cast<size_t>(devices - 1)];
    if (!checkAttach(attached, joining, f.platform, heaps, kBufferSize)) {
        state.SkipWithError("synthetic attach fails");
        return;
    }
    for (auto _ : state) {
        Result<ConstraintSet> next = checkAttach(attached, joining, f.platform, heaps, kBufferSize);
        benchmark::DoNotOptimize(next);
    }
    setPairCounters(state, devices, static_cast<int64_t>(heaps.size()));
    state.counters["per_heap"] = benchmark::Counter(
        static_cast<double>(heaps.size()), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// Baseline for the attach check: re-merge every attached device from
// scratch and choose a heap, as an exporter without incremental sets would.
void BM_AttachRemergeBaseline(benchmark::State& state) {
    const Fixture& f = fixture();
    const int devices = static_cast<int>(state.range(0));
    const std::vector<HeapProperties> heaps = syntheticHeaps(static_cast<int>(state.range(1)));
    for (auto _ : state) {
        ConstraintSet set;
        for (int i = 0; i < devices; ++i)
            set = *set.merge(f.platform.devices[static_cast<size_t>(i)], f.platform);
        Result<const HeapProperties*> h = chooseHeap(set, heaps, kBufferSize, CpuAccess::Rare);
        benchmark::DoNotOptimize(h);
    }
    setPairCounters(state, devices, static_cast<int64_t>(heaps.size()));
}

void pairs(benchmark::internal::Benchmark* b) {
    b->ArgNames({"devices", "heaps"});
    for (int heaps : {4, 32})
        for (int devices : {1, 4, 16, 64})
            b->Args({devices, heaps});
}

BENCHMARK(BM_Explain)->Apply(pairs);
BENCHMARK(BM_AttachCheck)->Apply(pairs);
BENCHMARK(BM_AttachRemergeBaseline)->Apply(pairs);

} // namespace
} // namespace cenalloc

BENCHMARK_MAIN();
