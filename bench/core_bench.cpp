// SPDX-License-Identifier: MIT
// Core benchmarks: a device's unmap and DMA transfer while it holds many other mappings.
//
// A device shared by every client (the daemon serves them all on one
// platform) holds the segments of everyone's mappings: one client's unmap
// or transfer must not cost time in what the others hold. The others here
// are system-dma32 buffers of 15 pages mapped on the USB controller (direct,
// so one segment per page: the heap hands pages out top-down, which no
// segment merge joins), for 1, 1000 and 100000 segments in all.
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <cenalloc/buffer.h>
#include <cenalloc/context.h>
#include <cenalloc/device.h>
#include <cenalloc/units.h>

namespace cenalloc {
namespace {

struct Held {
    std::shared_ptr<Buffer> buffer;
    std::unique_ptr<Attachment> attachment;
    Attachment::Mapping mapping;
};

/// A context whose USB controller holds at least @p segments segments of
/// other mappings, and one buffer of its own attached to it.
struct Crowd {
    std::unique_ptr<Context> context;
    const DmaDevice* usb = nullptr;
    std::vector<Held> others;
    size_t segments = 0;
    Held mine;

    bool make(benchmark::State& state, size_t wanted) {
        auto created = Context::create();
        if (!created) {
            state.SkipWithError(created.error().toString().c_str());
            return false;
        }
        context = std::move(*created);
        auto device = context->device("usb");
        if (!device) {
            state.SkipWithError(device.error().toString().c_str());
            return false;
        }
        usb = *device;
        while (segments < wanted) {
            const uint64_t pages = wanted - segments < 15 ? wanted - segments : 15;
            auto held = attach(state, pages * kPageSize);
            if (!held)
                return false;
            auto mapping = held->attachment->map(DmaDirection::Bidirectional);
            if (!mapping) {
                state.SkipWithError(mapping.error().toString().c_str());
                return false;
            }
            segments += mapping->segments().size();
            held->mapping = std::move(*mapping);
            others.push_back(std::move(*held));
        }
        auto own = attach(state, 64 * KiB);
        if (!own)
            return false;
        mine = std::move(*own);
        state.counters["segments"] = static_cast<double>(segments);
        return true;
    }

    std::unique_ptr<Held> attach(benchmark::State& state, uint64_t size) {
        auto held = std::make_unique<Held>();
        auto buffer = context->allocate("system-dma32", size);
        if (!buffer) {
            state.SkipWithError(buffer.error().toString().c_str());
            return nullptr;
        }
        held->buffer = std::move(*buffer);
        auto attachment = held->buffer->attach(*usb);
        if (!attachment) {
            state.SkipWithError(attachment.error().toString().c_str());
            return nullptr;
        }
        held->attachment = std::make_unique<Attachment>(std::move(*attachment));
        return held;
    }
};

// One unmap of a mapping of 64 KiB, timed alone (the map before it is not).
void BM_DeviceUnmap(benchmark::State& state) {
    Crowd crowd;
    if (!crowd.make(state, static_cast<size_t>(state.range(0))))
        return;
    for (auto _ : state) {
        auto mapping = crowd.mine.attachment->map(DmaDirection::Bidirectional);
        if (!mapping) {
            state.SkipWithError(mapping.error().toString().c_str());
            break;
        }
        const auto start = std::chrono::steady_clock::now();
        mapping->unmap();
        state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
}
BENCHMARK(BM_DeviceUnmap)->Arg(1)->Arg(1000)->Arg(100000)->UseManualTime()->Unit(benchmark::kMicrosecond);

// One device read of 64 bytes through the newest mapping: finding its
// segment, and the copy.
void BM_DeviceTransfer(benchmark::State& state) {
    Crowd crowd;
    if (!crowd.make(state, static_cast<size_t>(state.range(0))))
        return;
    auto mapping = crowd.mine.attachment->map(DmaDirection::Bidirectional);
    if (!mapping) {
        state.SkipWithError(mapping.error().toString().c_str());
        return;
    }
    const uint64_t address = mapping->segments().back().dmaAddress + 128;
    std::vector<std::byte> out(64);
    for (auto _ : state) {
        auto read = crowd.usb->read(address, out);
        if (!read) {
            state.SkipWithError(read.error().toString().c_str());
            break;
        }
        benchmark::DoNotOptimize(out.data());
    }
}
BENCHMARK(BM_DeviceTransfer)->Arg(1)->Arg(1000)->Arg(100000)->Unit(benchmark::kMicrosecond);

} // namespace
} // namespace cenalloc

BENCHMARK_MAIN();
