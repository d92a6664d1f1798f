// SPDX-License-Identifier: MIT
// The report layer's text and JSON views of heaps, bufinfo, statistics, explanations and platforms, for a small board.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <cenalloc/context.h>
#include <cenalloc/units.h>

#include "report/report.h"
#include "report/table.h"
#include "support/boards.h"
#include "support/context.h"

namespace cenalloc {
namespace {

using nlohmann::json;
using test::contains;
using test::makeDevice;

constexpr uint64_t kDram = 0x40000000;
constexpr uint64_t kCma = 0x7c000000; // the top 64 MiB of DRAM

/// 1 GiB of DRAM at 1 GiB with a 64 MiB CMA area at its top; a GPU behind
/// an SMMU, a display that takes one contiguous buffer below 4 GiB, and a
/// camera whose 30-bit mask reaches no memory at all.
Platform smallBoard() {
    Platform p;
    p.name = "small";
    p.memory = {{"dram", kDram, 1 * GiB}};
    ReservedRegion cma;
    cma.name = "linux,cma";
    cma.kind = RegionKind::Cma;
    cma.base = kCma;
    cma.size = 64 * MiB;
    cma.isDefault = true;
    p.regions = {cma};
    p.iommus = {{"gpu-smmu", 4096, 0x100000, 0xfff00000}};
    p.devices = {
        makeDevice({.name = "gpu", .maskBits = 40, .iommu = "gpu-smmu"}),
        makeDevice({.name = "display",
                    .maskBits = 32,
                    .maxSegmentSize = 0xffffffff,
                    .maxSegmentCount = 1,
                    .contiguous = true,
                    .coherent = false}),
        makeDevice({.name = "camera", .maskBits = 30, .coherent = false}),
    };
    return p;
}

std::vector<std::string> linesOf(const std::string& text) {
    std::vector<std::string> lines;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos)
            end = text.size();
        lines.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return lines;
}

/// The line of @p text that starts (after its indent) with @p first.
std::string rowOf(const std::string& text, std::string_view first) {
    for (const std::string& line : linesOf(text)) {
        size_t start = line.find_first_not_of(' ');
        if (start != std::string::npos && std::string_view(line).substr(start).starts_with(first))
            return line;
    }
    return {};
}

/// Where column @p header starts in the header line of a table in @p text.
size_t columnOf(const std::string& headerLine, std::string_view header) {
    return headerLine.find(std::string(header));
}

// ---------------------------------------------------------------- tables

TEST(TextTable, PadsEveryColumnToItsWidestCellAndIndentsWithoutTrailingSpaces) {
    TextTable t({"a", "bb", "c"});
    t.addRow({"ccc", "d", ""});
    EXPECT_EQ(t.render(), "  a    bb  c\n"
                          "  ---  --  -\n"
                          "  ccc  d\n");
    EXPECT_EQ(t.render(0), "a    bb  c\n"
                           "---  --  -\n"
                           "ccc  d\n");
}

TEST(TextTable, AHostileCellIsEscapedAndMeasuredEscaped) {
    TextTable t({"name", "size"});
    t.addRow({"\x1b[2J\nx", "4 KiB"});
    t.addRow({"ok", "8 KiB"});
    const std::vector<std::string> lines = linesOf(t.render());
    ASSERT_EQ(lines.size(), 4u) << t.render();
    EXPECT_EQ(lines[2], "  \\x1b[2J\\x0ax  4 KiB");
    // The escaped cell set the width: every row's second column starts where the header's does.
    const size_t size = columnOf(lines[0], "size");
    EXPECT_EQ(lines[2].find("4 KiB"), size);
    EXPECT_EQ(lines[3].find("8 KiB"), size);
}

// ----------------------------------------------------------------- heaps

TEST(RenderHeaps, TextListsEveryHeapWithItsKindRangeAndStatistics) {
    auto context = test::makeContext(smallBoard());
    ASSERT_NE(context, nullptr);
    auto held = context->allocate("linux,cma", 2 * MiB);
    ASSERT_TRUE(held) << held.error().toString();
    ASSERT_TRUE(context->allocate("linux,cma", 1 * MiB)) << "freed at once: the watermark remembers it";

    const std::string text = renderHeaps(*context);
    const std::vector<std::string> lines = linesOf(text);
    ASSERT_GE(lines.size(), 5u) << text;
    EXPECT_EQ(lines[0], "heaps of platform small:");
    const std::string& header = lines[1];
    const char* const columns[] = {"heap", "kind", "range",      "contig",    "cached", "capacity",
                                   "free", "live", "live bytes", "watermark", "failed"};
    size_t previous = 0;
    for (const char* column : columns) {
        SCOPED_TRACE(column);
        size_t at = header.find(column, previous);
        ASSERT_NE(at, std::string::npos) << header;
        previous = at + 1;
    }
    EXPECT_EQ(lines[2].find_first_not_of(" -"), std::string::npos) << "a rule under the header: " << lines[2];
    EXPECT_EQ(lines.size(), 3u + context->heaps().size()) << text;

    const std::string cma = rowOf(text, "linux,cma");
    ASSERT_FALSE(cma.empty()) << text;
    EXPECT_EQ(cma.find("cma", columnOf(header, "kind")), columnOf(header, "kind")) << cma;
    EXPECT_TRUE(contains(cma, "0x7c000000..0x7fffffff")) << cma;
    EXPECT_EQ(cma.find("yes", columnOf(header, "contig")), columnOf(header, "contig")) << cma;
    EXPECT_EQ(cma.find("64 MiB", columnOf(header, "capacity")), columnOf(header, "capacity")) << cma;
    EXPECT_EQ(cma.find("62 MiB", columnOf(header, "free")), columnOf(header, "free")) << cma;
    EXPECT_EQ(cma.find("1 ", columnOf(header, "live")), columnOf(header, "live")) << cma;
    EXPECT_EQ(cma.find("2 MiB", columnOf(header, "live bytes")), columnOf(header, "live bytes")) << cma;
    EXPECT_EQ(cma.find("3 MiB", columnOf(header, "watermark")), columnOf(header, "watermark")) << cma;

    const std::string system = rowOf(text, "system ");
    ASSERT_FALSE(system.empty()) << text;
    EXPECT_EQ(system.find("no", columnOf(header, "contig")), columnOf(header, "contig")) << system;
    EXPECT_EQ(system.find("0 B", columnOf(header, "live bytes")), columnOf(header, "live bytes")) << system;
}

TEST(RenderHeaps, JsonHasEveryHeapsPropertiesAndStatistics) {
    auto context = test::makeContext(smallBoard());
    ASSERT_NE(context, nullptr);
    auto held = context->allocate("linux,cma", 2 * MiB);
    ASSERT_TRUE(held) << held.error().toString();
    ASSERT_TRUE(context->allocate("linux,cma", 1 * MiB)) << "freed at once: the watermark remembers it";

    const json j = heapsJson(*context);
    EXPECT_EQ(j["source"], "small");
    ASSERT_EQ(j["heaps"].size(), context->heaps().size());
    std::vector<std::string> names;
    for (const json& h : j["heaps"])
        names.push_back(h["name"]);
    EXPECT_EQ(names.front(), "system");
    const auto cma =
        std::find_if(j["heaps"].begin(), j["heaps"].end(), [](const json& h) { return h["name"] == "linux,cma"; });
    ASSERT_NE(cma, j["heaps"].end()) << j.dump(2);
    const json& p = (*cma)["properties"];
    EXPECT_EQ(p["kind"], "cma");
    EXPECT_EQ(p["contiguous"], true);
    EXPECT_EQ(p["lowest_address"], kCma);
    EXPECT_EQ(p["highest_address"], kCma + 64 * MiB - 1);
    EXPECT_EQ(p["capacity"], 64 * MiB);
    const json& s = (*cma)["stats"];
    EXPECT_EQ(s["live_buffers"], 1);
    EXPECT_EQ(s["live_bytes"], 2 * MiB);
    EXPECT_EQ(s["watermark_bytes"], 3 * MiB);
    EXPECT_EQ(s["total_allocations"], 2);
    EXPECT_EQ(s["failed_allocations"], 0);
    EXPECT_EQ(s["free_bytes"], 62 * MiB);
    EXPECT_EQ(j["heaps"][0]["properties"]["contiguous"], false);
}

// --------------------------------------------------------------- bufinfo

std::vector<BufferInfo> someBuffers() {
    BufferInfo frame;
    frame.id = 1;
    frame.size = 3 * MiB;
    frame.fdFlags = 02000002; // O_CLOEXEC | O_RDWR
    frame.exporter = "cma";
    frame.name = "frame";
    frame.inode = 1234;
    frame.references = 2;
    frame.hasStorage = true;
    frame.heap = "linux,cma";
    frame.chunks = {{kCma, 3 * MiB}};
    frame.attachedDevices = {"display", "gpu"};
    MappingInfo display;
    display.device = "display";
    display.direction = DmaDirection::ToDevice;
    display.segments = {{kCma, 3 * MiB}};
    MappingInfo gpu;
    gpu.device = "gpu";
    gpu.direction = DmaDirection::Bidirectional;
    gpu.domain = "gpu-smmu";
    gpu.segments = {{0x100000, 1 * MiB}, {0x300000, 2 * MiB}};
    frame.mappings = {display, gpu};
    frame.cpuAccessDepth = 1;

    BufferInfo deferred;
    deferred.id = 2;
    deferred.size = 1 * MiB;
    deferred.fdFlags = 02;
    deferred.exporter = "cenalloc";

    BufferInfo kernel;
    kernel.id = 3;
    kernel.size = 4 * MiB;
    kernel.fdFlags = 02000002;
    kernel.exporter = "system";
    kernel.hasStorage = true;
    kernel.inHostKernel = true;
    kernel.heap = "kernel:system";
    return {frame, deferred, kernel};
}

TEST(RenderBufinfo, TextHasATotalARowPerBufferAndTheMappings) {
    const std::string text = renderBufinfo(someBuffers());
    const std::vector<std::string> lines = linesOf(text);
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines[0], "dma-buf objects: 3 buffers, 8 MiB");
    const std::string& header = lines[1];
    const std::string frame = rowOf(text, "1 ");
    ASSERT_FALSE(frame.empty()) << text;
    EXPECT_EQ(frame.find("3 MiB", columnOf(header, "size")), columnOf(header, "size")) << frame;
    EXPECT_EQ(frame.find("02000002", columnOf(header, "flags")), columnOf(header, "flags")) << "flags in octal";
    EXPECT_EQ(frame.find("frame", columnOf(header, "name")), columnOf(header, "name")) << frame;
    EXPECT_EQ(frame.find("1234", columnOf(header, "ino")), columnOf(header, "ino")) << frame;
    EXPECT_EQ(frame.find("linux,cma (1 chunk)", columnOf(header, "storage")), columnOf(header, "storage")) << frame;
    EXPECT_EQ(frame.find("display,gpu", columnOf(header, "attached")), columnOf(header, "attached")) << frame;

    const std::string deferred = rowOf(text, "2 ");
    EXPECT_EQ(deferred.find("00000002", columnOf(header, "flags")), columnOf(header, "flags")) << deferred;
    EXPECT_EQ(deferred.find("- ", columnOf(header, "name")), columnOf(header, "name")) << "no name: " << deferred;
    EXPECT_EQ(deferred.find("deferred", columnOf(header, "storage")), columnOf(header, "storage")) << deferred;
    EXPECT_TRUE(deferred.ends_with("-")) << "attached to nothing: " << deferred;
    EXPECT_TRUE(contains(rowOf(text, "3 "), "kernel:system (host kernel)")) << text;

    // The mappings: one row each, direct or through the IOMMU's domain, with the first segment.
    auto mappings = std::find(lines.begin(), lines.end(), "mappings:");
    ASSERT_NE(mappings, lines.end()) << text;
    ASSERT_GE(lines.end() - mappings, 5) << text;
    const std::string& mapHeader = *(mappings + 1);
    const std::string& direct = *(mappings + 3);
    const std::string& iommu = *(mappings + 4);
    EXPECT_EQ(direct.find("display", columnOf(mapHeader, "device")), columnOf(mapHeader, "device")) << direct;
    EXPECT_EQ(direct.find("to-device", columnOf(mapHeader, "direction")), columnOf(mapHeader, "direction"));
    EXPECT_EQ(direct.find("direct", columnOf(mapHeader, "via")), columnOf(mapHeader, "via")) << direct;
    const size_t segments = columnOf(mapHeader, "segments");
    const size_t first = columnOf(mapHeader, "first segment");
    EXPECT_EQ(direct.find("1 ", segments), segments) << direct;
    EXPECT_EQ(direct.substr(first), "0x000000007c000000 + 3 MiB") << direct;
    EXPECT_EQ(iommu.find("iommu gpu-smmu", columnOf(mapHeader, "via")), columnOf(mapHeader, "via")) << iommu;
    EXPECT_EQ(iommu.find("2 ", segments), segments) << iommu;
    EXPECT_EQ(iommu.substr(first), "0x0000000000100000 + 1 MiB") << iommu;
    EXPECT_EQ(iommu.find("bidirectional", columnOf(mapHeader, "direction")), columnOf(mapHeader, "direction"));
}

TEST(RenderBufinfo, TextWithoutMappingsHasNoMappingsTable) {
    std::vector<BufferInfo> buffers = someBuffers();
    buffers.erase(buffers.begin());
    const std::string text = renderBufinfo(buffers);
    EXPECT_FALSE(contains(text, "mappings:")) << text;
    EXPECT_EQ(linesOf(text).front(), "dma-buf objects: 2 buffers, 5 MiB");
    EXPECT_EQ(renderBufinfo({}), "dma-buf objects: 0 buffers, 0 B\n"
                                 "  id  size  flags  exporter  name  ino  refs  storage  attached\n"
                                 "  --  ----  -----  --------  ----  ---  ----  -------  --------\n");
}

TEST(RenderBufinfo, JsonHasEveryFieldOfEveryBuffer) {
    const json j = bufinfoJson(someBuffers());
    ASSERT_EQ(j["buffers"].size(), 3u);
    const json& frame = j["buffers"][0];
    EXPECT_EQ(frame["id"], 1);
    EXPECT_EQ(frame["size"], 3 * MiB);
    EXPECT_EQ(frame["flags"], 02000002);
    EXPECT_EQ(frame["exporter"], "cma");
    EXPECT_EQ(frame["name"], "frame");
    EXPECT_EQ(frame["name_hex"], "6672616d65");
    EXPECT_EQ(frame["inode"], 1234);
    EXPECT_EQ(frame["references"], 2);
    EXPECT_EQ(frame["has_storage"], true);
    EXPECT_EQ(frame["in_host_kernel"], false);
    EXPECT_EQ(frame["heap"], "linux,cma");
    EXPECT_EQ(frame["chunk_count"], 1);
    EXPECT_EQ(frame["chunks"], json::parse(R"([{"address": 2080374784, "size": 3145728}])"));
    EXPECT_EQ(frame["attached_devices"], json::array({"display", "gpu"}));
    EXPECT_EQ(frame["cpu_access_depth"], 1);
    ASSERT_EQ(frame["mappings"].size(), 2u);
    EXPECT_EQ(frame["mappings"][0]["device"], "display");
    EXPECT_EQ(frame["mappings"][0]["direction"], "to-device");
    EXPECT_TRUE(frame["mappings"][0]["domain"].is_null()) << "a direct mapping has no domain";
    EXPECT_EQ(frame["mappings"][1]["domain"], "gpu-smmu");
    EXPECT_EQ(frame["mappings"][1]["segment_count"], 2);
    EXPECT_EQ(frame["mappings"][1]["segments"][1], json::parse(R"({"dma_address": 3145728, "length": 2097152})"));

    const json& deferred = j["buffers"][1];
    EXPECT_EQ(deferred["has_storage"], false);
    EXPECT_TRUE(deferred["heap"].is_null()) << "no heap before storage";
    EXPECT_EQ(deferred["chunk_count"], 0);
    EXPECT_EQ(deferred["name"], "");
    EXPECT_EQ(deferred["name_hex"], "");
    EXPECT_EQ(j["buffers"][2]["in_host_kernel"], true);
}

// ----------------------------------------------------------------- stats

AllocatorStats someStats() {
    AllocatorStats stats;
    HeapInfo system;
    system.name = "system";
    system.properties.name = "system";
    system.stats.liveBuffers = 1;
    system.stats.liveBytes = 4 * KiB;
    system.stats.watermarkBytes = 8 * KiB;
    system.stats.failedAllocations = 3;
    system.stats.totalAllocations = 5;
    system.freeBytes = 1 * GiB;
    stats.heaps = {system};
    stats.liveBuffers = 1;
    return stats;
}

TEST(RenderStats, TextCountsLiveBuffersAndShowsDomainsAndBugsOnlyWhenThereAreAny) {
    AllocatorStats stats = someStats();
    std::string text = renderStats("in-process", stats);
    std::vector<std::string> lines = linesOf(text);
    EXPECT_EQ(lines[0], "cenalloc statistics (in-process): 1 live buffer");
    const std::string row = rowOf(text, "system");
    const std::string& header = lines[2];
    EXPECT_EQ(row.find("4 KiB", columnOf(header, "live bytes")), columnOf(header, "live bytes")) << row;
    EXPECT_EQ(row.find("8 KiB", columnOf(header, "watermark")), columnOf(header, "watermark")) << row;
    EXPECT_EQ(row.find("3", columnOf(header, "failed")), columnOf(header, "failed")) << row;
    EXPECT_EQ(row.find("5", columnOf(header, "allocations")), columnOf(header, "allocations")) << row;
    EXPECT_TRUE(row.ends_with("1 GiB")) << row;
    EXPECT_FALSE(contains(text, "iommu domains:")) << text;
    EXPECT_FALSE(contains(text, "lifetime bugs:")) << text;

    stats.liveBuffers = 2;
    IommuDomainStats domain;
    domain.name = "gpu-smmu";
    domain.hits = 7;
    domain.misses = 2;
    domain.mappingCount = 2;
    domain.inUseCount = 1;
    domain.usedIovaBytes = 3 * MiB;
    stats.domains = {domain};
    stats.lifetimeBugs = {"buffer 4 released with 1 attachment"};
    text = renderStats("cenallocd at /run/x.sock", stats);
    EXPECT_EQ(linesOf(text)[0], "cenalloc statistics (cenallocd at /run/x.sock): 2 live buffers");
    EXPECT_TRUE(contains(text, "\niommu domains:\n")) << text;
    const std::string gpu = rowOf(text, "gpu-smmu");
    EXPECT_TRUE(gpu.ends_with("3 MiB")) << gpu;
    EXPECT_TRUE(contains(text, "\nlifetime bugs:\n  buffer 4 released with 1 attachment\n")) << text;
}

TEST(RenderStats, JsonHasHeapsDomainsLiveBuffersAndBugs) {
    AllocatorStats stats = someStats();
    IommuDomainStats domain;
    domain.name = "gpu-smmu";
    domain.pageSize = 4096;
    domain.hits = 7;
    domain.inUseCount = 1;
    stats.domains = {domain};
    stats.lifetimeBugs = {"bug"};
    const json j = statsJson(stats);
    EXPECT_EQ(j["live_buffers"], 1);
    ASSERT_EQ(j["heaps"].size(), 1u);
    EXPECT_EQ(j["heaps"][0]["name"], "system");
    EXPECT_EQ(j["heaps"][0]["stats"]["failed_allocations"], 3);
    EXPECT_EQ(j["heaps"][0]["stats"]["free_bytes"], 1 * GiB);
    EXPECT_FALSE(j["heaps"][0].contains("properties")) << "statistics, not properties";
    ASSERT_EQ(j["domains"].size(), 1u);
    EXPECT_EQ(j["domains"][0]["name"], "gpu-smmu");
    EXPECT_EQ(j["domains"][0]["page_size"], 4096);
    EXPECT_EQ(j["domains"][0]["hits"], 7);
    EXPECT_EQ(j["domains"][0]["in_use_count"], 1);
    EXPECT_EQ(j["lifetime_bugs"], json::array({"bug"}));
}

TEST(RenderStats, TheReadyMemoryPoolIsShownPerHeapAndInAllOnceAnyWasAskedFor) {
    AllocatorStats stats = someStats();
    stats.readyPools = {ReadyPoolStats{"", 0, 0, 0, 0, 0, 0}};
    EXPECT_FALSE(contains(renderStats("in-process", stats), "ready memory:"));
    stats.readyPools = {ReadyPoolStats{"system", 8 * MiB, 2, 10, 3, 12, 4'500'000},
                        ReadyPoolStats{"", 8 * MiB, 2, 10, 3, 12, 4'500'000}};
    const std::string text = renderStats("in-process", stats);
    EXPECT_TRUE(contains(text, "\nready memory:\n")) << text;
    const std::string all = rowOf(text, "(all)");
    EXPECT_TRUE(contains(all, "8 MiB")) << all;
    EXPECT_TRUE(all.ends_with("4.5 ms")) << all;
    const json j = statsJson(stats);
    ASSERT_EQ(j["ready_memory"].size(), 2u);
    EXPECT_EQ(j["ready_memory"][0]["heap"], "system");
    EXPECT_EQ(j["ready_memory"][0]["ready_bytes"], 8 * MiB);
    EXPECT_EQ(j["ready_memory"][0]["hits"], 10);
    EXPECT_EQ(j["ready_memory"][0]["misses"], 3);
    EXPECT_EQ(j["ready_memory"][0]["refill_ns"], 4'500'000);
    EXPECT_TRUE(j["ready_memory"][1]["heap"].is_null());
}

// --------------------------------------------------------------- explain

TEST(RenderExplain, ASatisfiableSetNamesTheHeapWhyOthersRefusedAndWhoAllocates) {
    auto context = test::makeContext(smallBoard());
    ASSERT_NE(context, nullptr);
    const std::vector<std::string> devices = {"display", "gpu"};
    auto e = context->explain(devices, 8 * MiB);
    ASSERT_TRUE(e) << e.error().toString();
    ASSERT_TRUE(e->satisfiable);
    ASSERT_EQ(e->heap, "linux,cma");

    const std::string text = renderExplanation(*e);
    EXPECT_EQ(linesOf(text)[0], "buffer of 8 MiB shared by display, gpu (cpu access: rare)");
    EXPECT_TRUE(contains(text, "\nplacement (intersected) and each device's mapping:\n")) << text;
    EXPECT_TRUE(contains(text, "\nchosen heap:       linux,cma\n")) << text;
    EXPECT_TRUE(contains(text, "\n  linux,cma                accepted\n")) << text;
    // system gives chunks; the display takes one contiguous buffer: refused for it, and only for it.
    const std::string system = rowOf(text, "system ");
    EXPECT_TRUE(system.starts_with("  system                   refused for display: ")) << system;
    EXPECT_TRUE(contains(system, "contiguous")) << system;
    EXPECT_FALSE(contains(text, "refused for gpu")) << text;
    EXPECT_TRUE(contains(text, "\ncache policy:      ")) << text;
    EXPECT_TRUE(contains(text, "\nallocating device: ")) << text;
    EXPECT_FALSE(contains(text, "unsatisfiable")) << text;

    const json j = explanationJson(*e);
    EXPECT_EQ(j["devices"], json::array({"display", "gpu"}));
    EXPECT_EQ(j["size"], 8 * MiB);
    EXPECT_EQ(j["cpu_access"], "rare");
    EXPECT_EQ(j["satisfiable"], true);
    EXPECT_EQ(j["heap"], "linux,cma");
    EXPECT_EQ(j["ranking"].front(), "linux,cma");
    EXPECT_TRUE(j["conflict"].is_null());
    EXPECT_EQ(j["allocating_device"].is_null(), !e->allocatingDevice.has_value());
    EXPECT_EQ(j["allocating_reason"], e->allocatingReason);
    const json& c = j["constraints"];
    EXPECT_EQ(c["contiguous"], true) << "the display's need, intersected";
    EXPECT_LE(c["address_limit"].get<uint64_t>(), 0xffffffffu) << "the display's 32-bit mask";
    ASSERT_EQ(c["mappings"].size(), 2u) << "each device's own mapping limits, never merged";
    for (const json& m : c["mappings"]) {
        if (m["device"] == "display") {
            EXPECT_TRUE(m["domain"].is_null());
            EXPECT_EQ(m["max_segment_count"], 1);
        } else {
            EXPECT_EQ(m["device"], "gpu");
            EXPECT_EQ(m["domain"], "gpu-smmu");
        }
    }
    for (const json& h : j["heaps"]) {
        SCOPED_TRACE(h.dump());
        EXPECT_EQ(h["accepted"], h["name"] == "linux,cma");
        if (h["name"] == "system") {
            EXPECT_TRUE(h["reasons"].contains("display"));
            EXPECT_FALSE(h["reasons"].contains("gpu")) << "the GPU takes chunks";
        }
    }
}

TEST(RenderExplain, AnUnsatisfiableSetSaysSoAndNamesTheConflict) {
    auto context = test::makeContext(smallBoard());
    ASSERT_NE(context, nullptr);
    const std::vector<std::string> devices = {"camera", "gpu"};
    auto e = context->explain(devices, 1 * MiB);
    ASSERT_TRUE(e) << e.error().toString();
    ASSERT_FALSE(e->satisfiable);

    const std::string text = renderExplanation(*e);
    EXPECT_TRUE(contains(text, "\nunsatisfiable: no heap serves every device\n")) << text;
    EXPECT_TRUE(contains(text, "\nconflict:          ")) << text;
    EXPECT_FALSE(contains(text, "chosen heap:")) << text;
    for (const HeapExplanation& h : e->heaps)
        EXPECT_TRUE(contains(rowOf(text, h.name + " "), "refused for camera: ")) << text;

    const json j = explanationJson(*e);
    EXPECT_EQ(j["satisfiable"], false);
    EXPECT_TRUE(j["heap"].is_null());
    ASSERT_TRUE(j["conflict"].is_object()) << j.dump(2);
    EXPECT_EQ(j["conflict"]["devices"], json::array({"camera"}));
    EXPECT_EQ(j["conflict"]["heaps"].size(), e->heaps.size());
    for (const json& h : j["heaps"]) {
        EXPECT_EQ(h["accepted"], false);
        EXPECT_TRUE(h["reasons"].contains("camera")) << h.dump();
    }
}

TEST(RenderExplain, PeerStringsInTheHeaderFactsAndNotesAreEscaped) {
    auto context = test::makeContext(smallBoard());
    ASSERT_NE(context, nullptr);
    const std::vector<std::string> devices = {"gpu"};
    auto e = context->explain(devices, 1 * MiB);
    ASSERT_TRUE(e) << e.error().toString();
    e->devices = {"gpu\x1b[2J"};
    e->notes = {"note\nwith\xff"};
    DeviceFacts facts;
    facts.device = "gpu\x1b]0;x\x07";
    facts.source = "table \xfe";
    e->facts = {facts};
    const std::string text = renderExplanation(*e);
    EXPECT_TRUE(contains(text, "shared by gpu\\x1b[2J (cpu")) << text;
    EXPECT_TRUE(contains(text, "\n  gpu\\x1b]0;x\\x07: table \\xfe\n")) << text;
    EXPECT_TRUE(contains(text, "\n  note: note\\x0awith\\xff\n")) << text;
    EXPECT_FALSE(contains(text, "\x1b")) << text;

    json j = explanationJson(*e);
    std::string dumped;
    ASSERT_NO_THROW(dumped = j.dump());
    EXPECT_EQ(j["notes"][0], "note\nwith\xef\xbf\xbd");
    EXPECT_EQ(j["facts"][0]["source"], "table \xef\xbf\xbd");
}

// -------------------------------------------------------------- platform

TEST(RenderPlatform, TextAndJsonShowBanksRegionsIommusAndDevices) {
    const Platform p = smallBoard();
    const std::string text = renderPlatform(p);
    EXPECT_TRUE(text.starts_with("platform small  (")) << text;
    EXPECT_TRUE(contains(text, "\nmemory: 1 GiB in 1 bank(s)\n")) << text;
    EXPECT_TRUE(contains(rowOf(text, "dram"), "0x0000000040000000")) << text;
    const std::string cma = rowOf(text, "linux,cma");
    EXPECT_TRUE(contains(cma, "cma") && contains(cma, "64 MiB") && contains(cma, "default")) << cma;
    EXPECT_TRUE(contains(rowOf(text, "gpu-smmu"), "0x0000000000100000 + ")) << text;
    const std::string display = rowOf(text, "display");
    EXPECT_TRUE(contains(display, " yes ")) << "contiguous: " << display;
    EXPECT_TRUE(display.ends_with("no")) << "not coherent: " << display;
    EXPECT_TRUE(contains(rowOf(text, "gpu "), "gpu-smmu")) << text;

    const json j = platformJson(p);
    EXPECT_EQ(j["name"], "small");
    EXPECT_EQ(j["memory"], json::parse(R"([{"name": "dram", "base": 1073741824, "size": 1073741824}])"));
    ASSERT_EQ(j["regions"].size(), 1u);
    EXPECT_EQ(j["regions"][0]["kind"], "cma");
    EXPECT_EQ(j["regions"][0]["default"], true);
    EXPECT_EQ(j["iommus"][0]["aperture_base"], 0x100000);
    ASSERT_EQ(j["devices"].size(), 3u);
    EXPECT_EQ(j["devices"][0]["iommu"], "gpu-smmu");
    EXPECT_TRUE(j["devices"][1]["iommu"].is_null());
    EXPECT_TRUE(j["devices"][1]["constraints"].is_object());
    EXPECT_TRUE(j["devices"][0]["sysfs_path"].is_null());
    EXPECT_TRUE(j["devices"][0]["driver"].is_null());
    EXPECT_FALSE(contains(text, "host devices")) << "only a platform read from the host has them";
}

TEST(RenderPlatform, HostDevicesShowTheirSysfsPathAndDriver) {
    Platform p = smallBoard();
    p.devices[1].sysfsPath = "/sys/devices/platform/ff900000.display";
    p.devices[1].driver = "rockchip-vop";
    p.devices[0].sysfsPath = "/sys/devices/platform/ff9a0000.gpu";
    const std::string text = renderPlatform(p);
    ASSERT_TRUE(contains(text, "\nhost devices:\n")) << text;
    std::string section = text.substr(text.find("\nhost devices:\n"));
    std::string display = rowOf(section, p.devices[1].name);
    EXPECT_TRUE(contains(display, "/sys/devices/platform/ff900000.display") &&
                contains(display, "driver: rockchip-vop"))
        << section;
    EXPECT_TRUE(contains(rowOf(section, p.devices[0].name), "no driver bound")) << section;
    const json j = platformJson(p);
    EXPECT_EQ(j["devices"][1]["sysfs_path"], "/sys/devices/platform/ff900000.display");
    EXPECT_EQ(j["devices"][1]["driver"], "rockchip-vop");
    EXPECT_TRUE(j["devices"][0]["driver"].is_null());
}

} // namespace
} // namespace cenalloc
