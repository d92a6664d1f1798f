// SPDX-License-Identifier: MIT
// `cenalloc demo`: an in-process tour that allocates, shares, maps, moves data and checks it.
#include "tools/cenalloc/demo.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <sys/mman.h>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cenalloc/context.h>
#include <cenalloc/units.h>

#include "tools/cenalloc/demo_late_importer.h"
#include "tools/cenalloc/demo_narrator.h"

namespace cenalloc::cli {

namespace {

using nlohmann::json;

uint8_t patternByte(uint64_t offset, uint64_t seed) {
    return static_cast<uint8_t>((offset * 131 + seed * 17) >> 3);
}

void fillPattern(const BufferMapping& m, uint64_t seed) {
    auto* p = static_cast<uint8_t*>(m.data());
    for (size_t i = 0; i < m.size(); ++i)
        p[i] = patternByte(i, seed);
}

bool hasPattern(const BufferMapping& m, uint64_t seed) {
    const auto* p = static_cast<const uint8_t*>(m.data());
    for (size_t i = 0; i < m.size(); ++i)
        if (p[i] != patternByte(i, seed))
            return false;
    return true;
}

/// A copy engine: @p reader fetches @p size bytes through its segments and
/// @p writer stores them through its own, the way a 2D blitter or a codec
/// moves a frame between buffers. Every byte goes through the device model.
Result<void> dmaCopy(const DmaDevice& reader, const SgTable& from, const DmaDevice& writer, const SgTable& to,
                     uint64_t size) {
    std::vector<std::byte> staging;
    size_t fi = 0, ti = 0;
    uint64_t fo = 0, to_ = 0, done = 0;
    while (done < size) {
        if (fi >= from.size() || ti >= to.size())
            return Error(EINVAL, "segment tables shorter than the buffer");
        uint64_t step = std::min({from[fi].length - fo, to[ti].length - to_, size - done, uint64_t{256} * KiB});
        staging.resize(step);
        if (auto r = reader.read(from[fi].dmaAddress + fo, staging); !r)
            return r.error();
        if (auto w = writer.write(to[ti].dmaAddress + to_, staging); !w)
            return w.error();
        done += step;
        fo += step;
        to_ += step;
        if (fo == from[fi].length) {
            ++fi;
            fo = 0;
        }
        if (to_ == to[ti].length) {
            ++ti;
            to_ = 0;
        }
    }
    return {};
}

/// The heaps of @p ctx as a session lists them.
std::vector<HeapInfo> heapInfos(const Context& ctx) {
    std::vector<HeapInfo> out;
    for (const auto& heap : ctx.heaps())
        out.push_back({heap->name(), heap->properties(), heap->stats(), heap->freeBytes()});
    return out;
}

/// A JSON report's object.
json jsonReport(const std::string& text) {
    return json::parse(text);
}

} // namespace

Result<DemoReport> runDemo(const Platform& platform, const ReportOptions& options) {
    auto created = Context::create(platform);
    if (!created)
        return created.error();
    Context& ctx = **created;
    Narrator n;
    Live live;

    n.raw(fmt::format("cenalloc demo on platform '{}': {} of memory, {} heaps, {} devices, {} iommus\n", platform.name,
                      formatSize(platform.totalMemory()), ctx.heaps().size(), ctx.devices().size(),
                      platform.iommus.size()));

    std::vector<HeapStats> baseline;
    for (const auto& heap : ctx.heaps())
        baseline.push_back(heap->stats());
    std::vector<IommuDomainStats> domainBaseline = ctx.domainStats();

    // 1. Every heap hands out zero-filled memory the CPU can fill.
    n.section("1. eager allocation from every heap (the dma-heap way)");
    std::vector<std::shared_ptr<Buffer>> sources;
    std::vector<uint64_t> seeds; // the pattern each source was filled with
    for (size_t i = 0; i < ctx.heaps().size(); ++i) {
        const auto& heap = ctx.heaps()[i];
        uint64_t size = std::max(kPageSize, std::min(MiB, heap->properties().capacity / 4 / kPageSize * kPageSize));
        auto buffer = ctx.allocate(heap->name(), size);
        if (!buffer) {
            n.say(fmt::format("{}: {}", heap->name(), buffer.error().toString()));
            continue;
        }
        (void)(*buffer)->setName(fmt::format("src:{}", heap->name()).substr(0, kBufferNameMax));
        auto map = (*buffer)->mmap();
        if (!map) {
            n.check(false, fmt::format("mmap of buffer from '{}': {}", heap->name(), map.error().toString()));
            continue;
        }
        bool zero =
            std::all_of(map->bytes(), map->bytes() + map->size(), [](std::byte b) { return b == std::byte{0}; });
        fillPattern(*map, i);
        n.check(zero, fmt::format("{:<22} {} in {} chunk(s) at {}, zero-filled, then filled by the cpu", heap->name(),
                                  formatSize(size), (*buffer)->chunks().size(),
                                  formatAddress((*buffer)->chunks().front().address)));
        sources.push_back(*buffer);
        seeds.push_back(i);
    }

    // 2. Devices move the data: one reads each source through its mapping,
    // another writes a deferred destination through its own.
    n.section("2. device-to-device copies through the DMA model");
    for (size_t i = 0; i < sources.size(); ++i) {
        const auto& src = sources[i];
        const DmaDevice* reader = nullptr;
        Attachment readerAtt;
        for (const auto& d : ctx.devices()) {
            auto att = src->attach(*d);
            if (att) {
                reader = d.get();
                readerAtt = std::move(*att);
                break;
            }
        }
        if (!reader) {
            n.say(fmt::format("{}: no device of this platform can use it", src->heapName()));
            continue;
        }
        auto dst = ctx.create(src->size(), fmt::format("dst:{}", src->heapName()).substr(0, kBufferNameMax));
        if (!dst) {
            n.check(false, fmt::format("create destination: {}", dst.error().toString()));
            continue;
        }
        const DmaDevice* writer = nullptr;
        Attachment writerAtt;
        for (const auto& d : ctx.devices()) {
            if (d.get() == reader && ctx.devices().size() > 1)
                continue;
            auto att = (*dst)->attach(*d);
            if (att) {
                writer = d.get();
                writerAtt = std::move(*att);
                break;
            }
        }
        if (!writer) {
            n.check(false, "no device can write the destination");
            continue;
        }
        auto from = readerAtt.map(DmaDirection::ToDevice);
        auto to = writerAtt.map(DmaDirection::FromDevice);
        if (!from || !to) {
            n.check(false, fmt::format("map: {}", !from ? from.error().toString() : to.error().toString()));
            continue;
        }
        auto copied = dmaCopy(*reader, from->segments(), *writer, to->segments(), src->size());
        auto check = (*dst)->mmap(PROT_READ);
        bool same = copied && check && hasPattern(*check, seeds[i]);
        n.check(same,
                fmt::format("{} reads '{}' ({} segment{}{}), {} writes it to '{}' ({} segment{}{})", reader->name(),
                            src->name(), from->segments().size(), from->segments().size() == 1 ? "" : "s",
                            reader->description().iommu ? ", via iommu" : "", writer->name(), (*dst)->heapName(),
                            to->segments().size(), to->segments().size() == 1 ? "" : "s",
                            writer->description().iommu ? ", via iommu" : ""));
        if (!copied)
            n.say(copied.error().toString());
        live.mappings.push_back(std::move(*from));
        live.mappings.push_back(std::move(*to));
        live.attachments.push_back(std::move(readerAtt));
        live.attachments.push_back(std::move(writerAtt));
        live.buffers.push_back(*dst);
    }

    // 3. The question cenalloc exists for: which heap, and who allocates?
    n.section("3. deferred allocation: the first device's preference would fail");
    std::optional<std::pair<std::string, std::string>> pair;
    std::string aloneHeap, togetherHeap;
    const uint64_t sharedSize = 4 * MiB;
    // Prefer a pair where the first device's heap cannot serve the second
    // at all; else one where it serves it only worse than the joint choice.
    for (bool strict : {true, false}) {
        for (const auto& a : ctx.devices()) {
            for (const auto& b : ctx.devices()) {
                if (a == b || pair)
                    continue;
                std::vector<std::string> one{a->name()}, two{a->name(), b->name()};
                auto alone = ctx.explain(one, sharedSize);
                auto together = ctx.explain(two, sharedSize);
                if (!alone || !together || !alone->heap || !together->heap || *alone->heap == *together->heap)
                    continue;
                auto it = std::find_if(together->heaps.begin(), together->heaps.end(),
                                       [&](const HeapExplanation& h) { return h.name == *alone->heap; });
                if (strict && (it == together->heaps.end() || it->accepted))
                    continue;
                pair = {a->name(), b->name()};
                aloneHeap = *alone->heap;
                togetherHeap = *together->heap;
            }
        }
        if (pair)
            break;
    }
    if (!pair) {
        n.say("no two devices of this platform disagree about the heap; nothing to show");
    } else {
        const auto& [first, second] = *pair;
        const DmaDevice* a = *ctx.device(first);
        const DmaDevice* b = *ctx.device(second);
        n.say(fmt::format("alone, '{}' would allocate from '{}'; shared with '{}' the buffer belongs in '{}'", first,
                          aloneHeap, second, togetherHeap));
        std::vector<std::string> names{first, second};
        auto e = ctx.explain(names, sharedSize);
        n.say(fmt::format("explain: heap '{}', allocating device: {}", togetherHeap,
                          e && e->allocatingDevice ? *e->allocatingDevice : "none (cenalloc allocates)"));

        // The dma-heap way: the first device picks its heap and allocates now.
        auto eager = ctx.allocate(aloneHeap, sharedSize);
        if (eager) {
            // A dma-heap allocation knows nothing of the devices: its pages
            // land wherever the heap likes, so the second device (and on some
            // boards the first one too) cannot use them.
            auto att = (*eager)->attach(*a);
            auto late = (*eager)->attach(*b);
            n.check(!late && late.error().code() == EBUSY,
                    fmt::format("eager from '{}': '{}' {}, '{}' is refused: {}", aloneHeap, first,
                                att ? "attaches" : "is refused too", second,
                                late ? "accepted?!" : late.error().toString()));
        }
        // The cenalloc way: both attach first, storage comes at first map.
        for (bool reversed : {false, true}) {
            auto buffer = ctx.create(sharedSize, reversed ? "shared:reversed" : "shared");
            if (!buffer) {
                n.check(false, buffer.error().toString());
                continue;
            }
            const DmaDevice* x = reversed ? b : a;
            const DmaDevice* y = reversed ? a : b;
            auto ax = (*buffer)->attach(*x);
            auto ay = (*buffer)->attach(*y);
            if (!ax || !ay) {
                n.check(false, (!ax ? ax.error() : ay.error()).toString());
                continue;
            }
            bool before = (*buffer)->hasStorage();
            auto mx = ax->map(DmaDirection::Bidirectional);
            auto my = ay->map(DmaDirection::Bidirectional);
            n.check(!before && mx && my && (*buffer)->heapName() == togetherHeap,
                    fmt::format("deferred, attach order {} then {}: no storage until the first map, then '{}', "
                                "mapped by both ({} and {} segments)",
                                x->name(), y->name(), (*buffer)->heapName(), mx ? mx->segments().size() : 0,
                                my ? my->segments().size() : 0));
            if (mx)
                live.mappings.push_back(std::move(*mx));
            if (my)
                live.mappings.push_back(std::move(*my));
            live.attachments.push_back(std::move(*ax));
            live.attachments.push_back(std::move(*ay));
            live.buffers.push_back(*buffer);
        }
    }

    // 4. Bad DMA faults where hardware would, and changes nothing.
    n.section("4. a device writing through a read-only mapping faults");
    if (!sources.empty()) {
        const auto& src = sources.front();
        for (const auto& d : ctx.devices()) {
            auto att = src->attach(*d);
            if (!att)
                continue;
            auto m = att->map(DmaDirection::ToDevice);
            if (!m)
                continue;
            std::vector<std::byte> junk(64, std::byte{0xee});
            auto w = d->write(m->segments().front().dmaAddress, junk);
            auto view = src->mmap(PROT_READ);
            n.check(!w && w.error().code() == EPERM && view && hasPattern(*view, seeds.front()),
                    fmt::format("{}", w ? "write succeeded?!" : w.error().message()));
            n.check(d->faultCount() >= 1, fmt::format("fault recorded against '{}'", d->name()));
            break;
        }
    }

    // 5. The objection that stopped constraint-aware dma-buf in the kernel:
    // a restrictive importer attaching after a relaxed one mapped the buffer.
    n.section("5. the late restrictive importer: static blocks, dynamic moves");
    json forecasts = showLateImporter(ctx, n, live);

    // 6. What a user debugging this would look at.
    n.section("6. bufinfo, heap statistics and iommu domains");
    // The library's own reports, as `cenalloc bufinfo` and `heaps` show them.
    const ReportOptions asJson{ReportFormat::Json, {}};
    const std::vector<BufferInfo> info = ctx.bufinfo();
    const std::vector<HeapInfo> heapList = heapInfos(ctx);
    const std::vector<IommuDomainStats> domainList = ctx.domainStats();
    const std::string source = "platform " + platform.name;
    n.raw(reportBuffers(info));
    n.raw("\n");
    n.raw(reportHeaps(source, heapList));
    if (!domainList.empty()) {
        n.raw("\n");
        n.raw(reportDomains(domainList));
    }
    json bufinfo = jsonReport(reportBuffers(info, asJson));
    json heaps = jsonReport(reportHeaps(source, heapList, asJson));
    json domains = jsonReport(reportDomains(domainList, asJson));

    // 7. Dropping the last references releases everything.
    n.section("7. release");
    live.clear();
    sources.clear();
    bool statsBack = true;
    for (size_t i = 0; i < ctx.heaps().size(); ++i) {
        HeapStats s = ctx.heaps()[i]->stats();
        statsBack = statsBack && s.liveBuffers == baseline[i].liveBuffers && s.liveBytes == baseline[i].liveBytes;
    }
    n.check(statsBack && ctx.liveBuffers() == 0, "every heap back to its baseline, no live buffers");
    bool iovaBack = true;
    auto after = ctx.domainStats();
    for (size_t i = 0; i < after.size(); ++i)
        iovaBack = iovaBack && after[i].usedIovaBytes == domainBaseline[i].usedIovaBytes;
    n.check(iovaBack, "every iommu domain's IOVA space back to its baseline");
    n.check(ctx.lifetimeBugs().empty(), "no lifetime bugs recorded");

    n.raw(fmt::format("\n{}\n", n.ok() ? "demo ok" : "demo FAILED"));
    DemoReport report;
    report.ok = n.ok();
    if (options.format == ReportFormat::Text) {
        report.output = std::move(n.text());
        return report;
    }
    json j = {{"platform", platform.name},
              {"steps", n.steps()},
              {"bufinfo", bufinfo["buffers"]},
              {"heaps", heaps["heaps"]},
              {"domains", domains["domains"]},
              {"forecasts", forecasts},
              {"ok", report.ok}};
    if (!options.notes.empty())
        j["notes"] = options.notes;
    // As the library's JSON reports are written (cenalloc/report.h).
    report.output = j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
    return report;
}

} // namespace cenalloc::cli
