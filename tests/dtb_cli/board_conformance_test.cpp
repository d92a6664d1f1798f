// SPDX-License-Identifier: MIT
// The board scripts/board-conformance boots in qemu (tests/board/board.dts: qemu's arm64 virt machine, a default
// CMA area and three i.MX8MP DMA masters), read with --dtb: the model's answers the guest checks against the
// kernel, checked on every run without qemu.
#include <cstdint>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/cli.h"

namespace {

using cenalloc::test::cli;
using cenalloc::test::CliRun;
using cenalloc::test::Output;
using nlohmann::json;

constexpr uint64_t kMiB = 1 << 20;

std::string boardDtb() {
    return std::string(CENALLOC_DTB_FIXTURES) + "/qemu-board.dtb";
}

#define REQUIRE_BOARD()                                                                                                \
    do {                                                                                                               \
        if (!std::filesystem::exists(boardDtb()))                                                                      \
            GTEST_SKIP() << "tests/board/board.dts was not compiled: dtc was not found at configure time";             \
    } while (0)

json runJson(const std::string& args) {
    CliRun r = cli(args + " --json --dtb " + boardDtb(), Output::Stdout);
    EXPECT_EQ(r.exitCode, 0) << args << "\n" << r.out;
    return json::parse(r.out, nullptr, false);
}

const json* device(const json& platform, const char* name) {
    for (const json& d : platform["devices"])
        if (d["name"] == name)
            return &d;
    return nullptr;
}

TEST(BoardConformance, TheTreeHasTheMastersAndTheCmaAreaWhereTheGuestExpectsThem) {
    REQUIRE_BOARD();
    json platform = runJson("platform show");
    ASSERT_FALSE(platform.is_discarded());

    const json* display = device(platform, "display-controller");
    ASSERT_NE(display, nullptr) << platform["devices"].dump();
    EXPECT_EQ((*display)["constraints"]["max_segment_count"], 1); // scans out one contiguous buffer
    EXPECT_EQ((*display)["constraints"]["dma_mask"], 0xffffffffULL);
    EXPECT_TRUE((*display)["iommu"].is_null());
    const json* gpu = device(platform, "gpu");
    ASSERT_NE(gpu, nullptr);
    EXPECT_EQ((*gpu)["constraints"]["dma_mask"], (1ULL << 40) - 1); // etnaviv: DMA_BIT_MASK(40)
    EXPECT_EQ((*gpu)["constraints"]["max_segment_count"], 0);
    ASSERT_NE(device(platform, "usb"), nullptr);

    // The default CMA area is the reserved-memory node, away from where qemu's virt machine loads the initrd and
    // the DTB (0x48000000 and right after it).
    int defaults = 0;
    for (const json& r : platform["regions"]) {
        if (!r["default"].get<bool>())
            continue;
        ++defaults;
        EXPECT_EQ(r["name"], "linux,cma@50000000");
        EXPECT_EQ(r["kind"], "cma");
        EXPECT_EQ(r["base"], 0x50000000ULL);
        EXPECT_EQ(r["size"], 64 * kMiB);
    }
    EXPECT_EQ(defaults, 1) << platform["regions"].dump();
}

TEST(BoardConformance, DisplayAndGpuShareTheCmaHeap) {
    REQUIRE_BOARD();
    json e = runJson("explain --devices display-controller,gpu --size 4M");
    ASSERT_FALSE(e.is_discarded());
    EXPECT_TRUE(e["satisfiable"].get<bool>());
    EXPECT_EQ(e["heap"], "linux,cma@50000000");
    EXPECT_TRUE(e["constraints"]["contiguous"].get<bool>());
    EXPECT_EQ(e["allocating_device"], "display-controller");
}

TEST(BoardConformance, GpuAndUsbShareTheSystemHeap) {
    REQUIRE_BOARD();
    json e = runJson("explain --devices gpu,usb --size 1M");
    ASSERT_FALSE(e.is_discarded());
    EXPECT_TRUE(e["satisfiable"].get<bool>());
    EXPECT_EQ(e["heap"], "system");
    EXPECT_FALSE(e["constraints"]["contiguous"].get<bool>());
}

} // namespace
