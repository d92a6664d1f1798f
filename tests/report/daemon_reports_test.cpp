// SPDX-License-Identifier: MIT
// Tests that what the CLI prints through cenallocd is what it prints in-process: the heaps' kernel heap column,
// alloc --for's lines.
#include <cenalloc/report.h>

#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cenalloc/context.h>
#include <cenalloc/session.h>

#include "service/config.h"
#include "support/daemon.h"
#include "support/fake_kernel_heaps.h"
#include "support/service.h"

namespace cenalloc {
namespace {

using test::FakeKernelHeapDir;

TEST(DaemonReports, HeapsThroughAPlacedDaemonShowTheKernelHeapColumnAsInProcess) {
    // "system" has a node, "linux,cma" none, and node "zz" matches no heap.
    FakeKernelHeapDir dir;
    const ServiceConfig config = test::placedOnStandIn(dir);
    test::InProcessDaemon daemon(config);
    ASSERT_TRUE(daemon.ok());
    auto session = Session::connect(daemon.path());
    ASSERT_TRUE(session) << session.error().toString();
    auto heaps = (*session)->heaps();
    ASSERT_TRUE(heaps) << heaps.error().toString();

    const std::string remote = reportHeaps("platform", *heaps);
    EXPECT_NE(remote.find("kernel heap"), std::string::npos) << remote;
    EXPECT_NE(remote.find("/dev/dma_heap/system"), std::string::npos) << remote;
    EXPECT_NE(remote.find("- (not-in-kernel)"), std::string::npos) << remote;
    EXPECT_NE(remote.find("/dev/dma_heap/zz"), std::string::npos) << remote;

    auto context = Context::create(defaultPlatform(), config.context);
    ASSERT_TRUE(context) << context.error().toString();
    std::vector<HeapInfo> own;
    for (const auto& heap : (*context)->heaps())
        own.push_back({heap->name(), heap->properties(), heap->stats(), heap->freeBytes()});
    // Each heap's properties (kernel placement and node included) as in-process.
    const ReportOptions json{ReportFormat::Json, {}};
    auto remoteJson = nlohmann::json::parse(reportHeaps("platform", *heaps, json));
    auto localJson = nlohmann::json::parse(reportHeaps("platform", own, json));
    ASSERT_EQ(remoteJson["heaps"].size(), localJson["heaps"].size());
    for (size_t i = 0; i < localJson["heaps"].size(); ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(remoteJson["heaps"][i]["properties"], localJson["heaps"][i]["properties"]);
    }
    EXPECT_EQ(localJson["heaps"][0]["properties"]["kernel_heap"], "/dev/dma_heap/system");

    // A daemon not placed: no such column.
    test::InProcessDaemon plain;
    ASSERT_TRUE(plain.ok());
    auto other = Session::connect(plain.path());
    ASSERT_TRUE(other);
    auto plainHeaps = (*other)->heaps();
    ASSERT_TRUE(plainHeaps);
    EXPECT_EQ(reportHeaps("platform", *plainHeaps).find("kernel heap"), std::string::npos);
}

TEST(DaemonReports, TheKernelHeapColumnMarksTheDefaultCmaAreasSecondNodeAsAnAlias) {
    FakeKernelHeapDir dir;
    dir.addHeap("system");
    dir.addHeap("linux,cma");
    dir.addHeap("default_cma_region");
    auto context = Context::create(
        defaultPlatform(), ContextOptions{.kernelHeapDir = dir.path(), .placeKernelHeaps = true, .readyPool = {}});
    ASSERT_TRUE(context) << context.error().toString();
    std::vector<HeapInfo> heaps;
    for (const auto& heap : (*context)->heaps())
        heaps.push_back({heap->name(), heap->properties(), heap->stats(), heap->freeBytes()});
    const std::string text = reportHeaps("platform", heaps);
    EXPECT_NE(text.find("/dev/dma_heap/default_cma_region (alias)"), std::string::npos) << text;
    EXPECT_EQ(text.find("/dev/dma_heap/linux,cma (alias)"), std::string::npos) << text;
    auto json = nlohmann::json::parse(reportHeaps("platform", heaps, ReportOptions{ReportFormat::Json, {}}));
    EXPECT_EQ(json["heaps"].back()["name"], "kernel:default_cma_region");
    EXPECT_EQ(json["heaps"].back()["properties"]["kernel_placement"], "alias");
}

// The report's lines but fd and inode, which differ between two buffers.
std::vector<std::string> linesButFd(const std::string& report) {
    std::vector<std::string> lines;
    std::istringstream in(report);
    for (std::string line; std::getline(in, line);)
        if (!line.starts_with("fd: ") && !line.starts_with("inode: "))
            lines.push_back(line);
    return lines;
}

TEST(DaemonReports, AllocForThroughTheDaemonPrintsWhatInProcessPrintsDevicesIncluded) {
    Platform host = defaultPlatform();
    for (Device& d : host.devices) {
        if (d.name == "display") {
            d.sysfsPath = "/sys/devices/platform/soc@0/32e80000.display-controller";
            d.driver = "imx-lcdif";
        } else if (d.name == "gpu") {
            d.sysfsPath = "/sys/devices/platform/soc@0/38000000.gpu"; // no driver bound
        }
    }
    test::InProcessDaemon daemon(ServiceConfig{}, host);
    ASSERT_TRUE(daemon.ok());
    auto session = Session::connect(daemon.path());
    ASSERT_TRUE(session) << session.error().toString();
    auto request = AllocForRequest::make({"display", "gpu"}, 1 << 20, "via-daemon");
    ASSERT_TRUE(request);
    auto allocated = (*session)->allocateFor(*request);
    ASSERT_TRUE(allocated) << allocated.error().toString();
    // What the reply carried (op alloc-for).
    EXPECT_EQ(allocated->name, "via-daemon");
    EXPECT_FALSE(allocated->exporter.empty());
    ASSERT_EQ(allocated->devices.size(), 2u);
    EXPECT_EQ(allocated->devices[0].name, "display");
    EXPECT_EQ(allocated->devices[0].driver, "imx-lcdif");
    EXPECT_EQ(allocated->devices[1].name, "gpu");
    EXPECT_EQ(allocated->devices[1].sysfsPath, "/sys/devices/platform/soc@0/38000000.gpu");
    EXPECT_EQ(allocated->devices[1].driver, "");

    auto remote = reportAllocatedFor(*allocated);
    ASSERT_TRUE(remote) << remote.error().toString();
    EXPECT_NE(remote->find("device: display sysfs=/sys/devices/platform/soc@0/32e80000.display-controller "
                           "driver=imx-lcdif\n"),
              std::string::npos)
        << *remote;
    EXPECT_NE(remote->find("device: gpu sysfs=/sys/devices/platform/soc@0/38000000.gpu driver=-\n"), std::string::npos)
        << *remote;
    EXPECT_NE(remote->find("name: via-daemon\n"), std::string::npos) << *remote;

    // In-process, on the same platform: the same lines, JSON too.
    auto context = Context::create(host, ContextOptions{.kernelHeaps = false, .readyPool = {}});
    ASSERT_TRUE(context);
    auto local = (*context)->allocateFor(*request);
    ASSERT_TRUE(local) << local.error().toString();
    auto inProcess = reportAllocatedFor(*local);
    ASSERT_TRUE(inProcess);
    EXPECT_EQ(linesButFd(*remote), linesButFd(*inProcess)) << *remote << "\n---\n" << *inProcess;

    const ReportOptions json{ReportFormat::Json, {}};
    auto remoteJson = nlohmann::json::parse(*reportAllocatedFor(*allocated, json));
    auto localJson = nlohmann::json::parse(*reportAllocatedFor(*local, json));
    for (const char* key : {"fd", "inode"}) {
        remoteJson.erase(key);
        localJson.erase(key);
    }
    EXPECT_EQ(remoteJson, localJson);
}

} // namespace
} // namespace cenalloc
