// SPDX-License-Identifier: MIT
// The forecast report: what attaching a device to an existing buffer would do, as text and JSON, for each outcome.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <cenalloc/context.h>
#include <cenalloc/report.h>
#include <cenalloc/units.h>

#include "support/boards.h"
#include "support/context.h"

namespace cenalloc {
namespace {

using nlohmann::json;
using test::contains;
using test::deviceOf;
using test::makeDevice;

constexpr uint64_t kFrame = 4 * MiB;

/// 1 GiB of DRAM with a 64 MiB CMA area at its top; a GPU and an NPU behind
/// one SMMU, a display that takes one contiguous buffer, and a camera whose
/// 30-bit mask reaches no memory at all.
Platform board() {
    Platform p;
    p.name = "forecast";
    p.memory = {{"dram", 0x40000000, 1 * GiB}};
    ReservedRegion cma;
    cma.name = "linux,cma";
    cma.kind = RegionKind::Cma;
    cma.base = 0x7c000000;
    cma.size = 64 * MiB;
    cma.isDefault = true;
    p.regions = {cma};
    p.iommus = {{"smmu", 4096, 0x100000, 0xfff00000}};
    p.devices = {
        makeDevice({.name = "gpu", .maskBits = 40, .iommu = "smmu"}),
        makeDevice({.name = "npu", .maskBits = 40, .iommu = "smmu"}),
        makeDevice({.name = "display",
                    .maskBits = 32,
                    .maxSegmentSize = 0xffffffff,
                    .maxSegmentCount = 1,
                    .contiguous = true}),
        makeDevice({.name = "camera", .maskBits = 30}),
    };
    return p;
}

/// A deferred buffer the GPU attached to (and mapped, unless told not to):
/// its storage comes from the system heap in scattered pages.
struct GpuBuffer {
    std::unique_ptr<Context> context = test::makeContext(board());
    std::shared_ptr<Buffer> buffer = context->create(kFrame, "frame").value();
    Attachment gpu;
    Attachment::Mapping mapping;

    GpuBuffer(AttachOptions options, bool map) {
        gpu = buffer->attach(deviceOf(*context, "gpu"), std::move(options)).value();
        if (map)
            mapping = gpu.map(DmaDirection::Bidirectional).value();
    }
    std::vector<DeviceForecast> forecast(const std::vector<std::string>& devices) const {
        std::vector<DeviceForecast> out;
        for (const std::string& d : devices)
            out.push_back({d, buffer->forecastAttach(deviceOf(*context, d))});
        return out;
    }
    std::string text(const std::vector<std::string>& devices) const {
        return reportAttachForecasts(buffer->info(), forecast(devices));
    }
    json object(const std::vector<std::string>& devices) const {
        return json::parse(reportAttachForecasts(buffer->info(), forecast(devices), {ReportFormat::Json, {}}));
    }
};

AttachOptions dynamicImporter() {
    return {.onMove = [](const MoveNotification&) {}};
}

TEST(ForecastReport, FitsWithoutStorageSaysTheFirstMapAllocates) {
    GpuBuffer b({}, false);
    const std::string text = b.text({"display"});
    EXPECT_TRUE(contains(text, "attaching to buffer " + std::to_string(b.buffer->id()) +
                                   " 'frame' (4 MiB, no storage yet; attached: 'gpu'):\n"))
        << text;
    EXPECT_TRUE(contains(text, "  'display': fits: no storage yet, the first map allocates")) << text;
    const json j = b.object({"display"});
    ASSERT_EQ(j["forecasts"].size(), 1u);
    EXPECT_EQ(j["forecasts"][0]["device"], "display");
    EXPECT_EQ(j["forecasts"][0]["outcome"], "fits");
    EXPECT_TRUE(j["forecasts"][0]["from_heap"].is_null());
    EXPECT_TRUE(j["forecasts"][0]["to_heap"].is_null());
    EXPECT_FALSE(j["buffer"]["has_storage"].get<bool>());
}

TEST(ForecastReport, FitsOnStorageNamesTheHeapThatServesIt) {
    GpuBuffer b({}, true);
    const std::string text = b.text({"npu"});
    EXPECT_TRUE(contains(text, "(4 MiB, storage from 'system'; attached: 'gpu'):")) << text;
    EXPECT_TRUE(contains(text, "  'npu': fits: the storage from 'system' serves it\n")) << text;
    const json j = b.object({"npu"});
    EXPECT_EQ(j["forecasts"][0]["outcome"], "fits");
    EXPECT_EQ(j["forecasts"][0]["from_heap"], "system");
    EXPECT_EQ(j["buffer"]["heap"], "system");
    EXPECT_EQ(j["buffer"]["id"], b.buffer->id());
}

TEST(ForecastReport, WouldMigrateNamesBothHeapsAndTheDynamicImportersTold) {
    GpuBuffer b(dynamicImporter(), true);
    const std::string text = b.text({"display"});
    EXPECT_TRUE(contains(text, "  'display': would migrate from 'system' to 'linux,cma', notifying 'gpu' (mappings "
                               "invalidated, map again after the move)\n"))
        << text;
    const json j = b.object({"display"});
    const json& f = j["forecasts"][0];
    EXPECT_EQ(f["outcome"], "would_migrate");
    EXPECT_EQ(f["from_heap"], "system");
    EXPECT_EQ(f["to_heap"], "linux,cma");
    EXPECT_EQ(f["notified"], json::array({"gpu"}));
    // The report changed nothing: the buffer did not move.
    EXPECT_EQ(b.buffer->heapName(), "system");
    EXPECT_TRUE(b.mapping.mapped());
}

TEST(ForecastReport, WouldMigrateWithNoDynamicImporterSaysNobodyIsTold) {
    GpuBuffer b({}, true);
    b.mapping.unmap(); // a static importer without a mapping holds nothing
    const std::string text = b.text({"display"});
    EXPECT_TRUE(contains(text, "'display': would migrate from 'system' to 'linux,cma', notifying no importer")) << text;
    EXPECT_EQ(b.object({"display"})["forecasts"][0]["notified"], json::array());
}

TEST(ForecastReport, BlockedNamesAStaticMappingOrAPin) {
    GpuBuffer held({}, true);
    const std::string text = held.text({"display"});
    EXPECT_TRUE(contains(text, "'display': blocked (EBUSY): the storage from 'system' must move and cannot: 'gpu' "
                               "holds a static mapping"))
        << text;
    const json j = held.object({"display"});
    EXPECT_EQ(j["forecasts"][0]["outcome"], "blocked");
    EXPECT_TRUE(j["forecasts"][0]["to_heap"].is_null());
    EXPECT_TRUE(contains(j["forecasts"][0]["reason"].get<std::string>(), "'gpu' holds a static mapping"));

    GpuBuffer pinned(dynamicImporter(), true);
    ASSERT_TRUE(pinned.gpu.pin());
    EXPECT_TRUE(contains(pinned.text({"display"}), "must move and cannot: 'gpu' pinned it\n"))
        << pinned.text({"display"});
    EXPECT_EQ(pinned.object({"display"})["forecasts"][0]["outcome"], "blocked");
    ASSERT_TRUE(pinned.gpu.unpin());
    EXPECT_EQ(pinned.object({"display"})["forecasts"][0]["outcome"], "would_migrate");
}

TEST(ForecastReport, UnsatisfiableGivesTheReason) {
    GpuBuffer b(dynamicImporter(), true);
    const AttachForecast f = b.buffer->forecastAttach(deviceOf(*b.context, "camera"));
    ASSERT_EQ(f.outcome, AttachForecast::Outcome::Unsatisfiable) << f.reason;
    ASSERT_FALSE(f.reason.empty());
    const std::string text = b.text({"camera"});
    EXPECT_TRUE(contains(text, "  'camera': unsatisfiable: " + printableText(f.reason) + "\n")) << text;
    const json j = b.object({"camera"});
    EXPECT_EQ(j["forecasts"][0]["outcome"], "unsatisfiable");
    EXPECT_EQ(j["forecasts"][0]["reason"], f.reason);
}

TEST(ForecastReport, SeveralDevicesKeepTheirOrder) {
    GpuBuffer b(dynamicImporter(), true);
    const std::string text = b.text({"npu", "display", "camera"});
    const size_t npu = text.find("'npu': fits");
    const size_t display = text.find("'display': would migrate");
    const size_t camera = text.find("'camera': unsatisfiable");
    ASSERT_NE(npu, std::string::npos) << text;
    ASSERT_NE(display, std::string::npos) << text;
    ASSERT_NE(camera, std::string::npos) << text;
    EXPECT_LT(npu, display);
    EXPECT_LT(display, camera);
    const json j = b.object({"npu", "display", "camera"});
    ASSERT_EQ(j["forecasts"].size(), 3u);
    EXPECT_EQ(j["forecasts"][1]["device"], "display");
}

TEST(ForecastReport, HostileNamesCannotReachTheTerminalOrBreakTheJson) {
    BufferInfo buffer;
    buffer.id = 7;
    buffer.size = kFrame;
    buffer.name = "evil\x1b[2J\n";
    AttachForecast f;
    f.outcome = AttachForecast::Outcome::Blocked;
    f.fromHeap = "system";
    f.reason = "'\x1b]0;x\x07' pinned it \xff";
    const std::vector<DeviceForecast> list{{"dev\x1b[1m", f}};
    const std::string text = reportAttachForecasts(buffer, list);
    EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
    EXPECT_EQ(text.find('\x07'), std::string::npos) << text;
    EXPECT_TRUE(contains(text, "'dev\\x1b[1m': blocked")) << text;
    EXPECT_TRUE(contains(text, "'evil\\x1b[2J\\x0a'")) << text;
    // One line naming the buffer and one for the device: no injected line.
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;
    const json j = json::parse(reportAttachForecasts(buffer, list, {ReportFormat::Json, {"a note"}}));
    EXPECT_EQ(j["forecasts"][0]["device"], "dev\x1b[1m");
    EXPECT_EQ(j["forecasts"][0]["reason"], "'\x1b]0;x\x07' pinned it \xef\xbf\xbd");
    EXPECT_EQ(j["notes"], json::array({"a note"}));
}

} // namespace
} // namespace cenalloc
