// SPDX-License-Identifier: MIT
// End-to-end tests of the cenalloc CLI: real process, real output, JSON as a stable interface.
#include <cstdio>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cenalloc/session.h>

#include "support/cli.h"
#include "support/daemon.h"

namespace {

using cenalloc::test::cli;
using cenalloc::test::CliRun;

std::string example(const char* name) {
    return std::string(CENALLOC_SOURCE_DIR) + "/examples/platforms/" + name;
}

const char* const kPlatforms[] = {"", "phone-soc.yaml", "rpi4.yaml", "pc-x86.yaml"};

std::string platformArg(const char* name) {
    return *name ? " --platform " + example(name) : std::string();
}

TEST(Cli, DemoPassesOnEveryPlatform) {
    for (const char* p : kPlatforms) {
        SCOPED_TRACE(*p ? p : "builtin");
        CliRun r = cli("demo" + platformArg(p));
        EXPECT_EQ(r.exitCode, 0) << r.out;
        EXPECT_NE(r.out.find("demo ok"), std::string::npos) << r.out;
        EXPECT_EQ(r.out.find("FAIL"), std::string::npos) << r.out;
        // The bufinfo table and the heap statistics are part of the tour.
        EXPECT_NE(r.out.find("dma-buf objects:"), std::string::npos);
        EXPECT_NE(r.out.find("heaps of platform"), std::string::npos);
    }
}

TEST(Cli, DemoJsonReportsEveryCheck) {
    CliRun r = cli("demo --json");
    ASSERT_EQ(r.exitCode, 0) << r.out;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_TRUE(j["ok"].get<bool>());
    size_t checks = 0;
    for (const auto& step : j["steps"])
        if (step.contains("check")) {
            ++checks;
            EXPECT_TRUE(step["ok"].get<bool>()) << step.dump();
        }
    EXPECT_GE(checks, 10u);
    EXPECT_FALSE(j["bufinfo"].empty());
}

// The late restrictive importer on the built-in platform: the GPU (behind
// its SMMU) maps a frame on the system heap, then the display (contiguous
// only) attaches. Each line below is one the demo must print.
TEST(Cli, DemoShowsTheLateRestrictiveImporter) {
    CliRun r = cli("demo");
    ASSERT_EQ(r.exitCode, 0) << r.out;
    for (const char* line : {
             "== 5. the late restrictive importer: static blocks, dynamic moves\n",
             "  'gpu' (behind iommu 'gpu-smmu') maps a 4 MiB frame first; 'display' (no iommu, contiguous only) "
             "attaches late\n",
             "    'display': blocked (EBUSY): the storage from 'system' must move and cannot: 'gpu' holds a static "
             "mapping of it\n",
             "  [ok] 'display' is refused with EBUSY: the storage cannot move, 'gpu' holds a static mapping of it\n",
             "    'display': would migrate from 'system' to 'linux,cma', notifying 'gpu' (mappings invalidated, map "
             "again after the move)\n",
             "  [ok] 'display' attaches: the buffer moved from 'system' to 'linux,cma' (1 chunk at ",
             "  [ok] 'gpu' notified: move sequence 1, 'system' -> 'linux,cma' (attach of 'display'); its mapping of "
             "sequence 0 is invalidated\n",
             "  [ok] 'gpu' using its old address ",
             "  [ok] 'gpu' maps again: sequence 1, 1 segment at ",
             "  [ok] 4 MiB identical byte for byte through 'gpu', 'display' (1 segment at ",
         })
        EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
    // The moved buffer is still live in the bufinfo listing, on CMA.
    EXPECT_NE(r.out.find("late:dynamic"), std::string::npos) << r.out;

    CliRun j = cli("demo --json");
    ASSERT_EQ(j.exitCode, 0) << j.out;
    auto report = nlohmann::json::parse(j.out);
    ASSERT_EQ(report["forecasts"].size(), 2u) << j.out;
    const auto& blocked = report["forecasts"][0];
    EXPECT_EQ(blocked["buffer"]["name"], "late:static");
    EXPECT_EQ(blocked["forecasts"][0]["device"], "display");
    EXPECT_EQ(blocked["forecasts"][0]["outcome"], "blocked");
    EXPECT_EQ(blocked["forecasts"][0]["reason"], "'gpu' holds a static mapping of it");
    const auto& moves = report["forecasts"][1]["forecasts"][0];
    EXPECT_EQ(moves["outcome"], "would_migrate");
    EXPECT_EQ(moves["from_heap"], "system");
    EXPECT_EQ(moves["to_heap"], "linux,cma");
    EXPECT_EQ(moves["notified"], nlohmann::json::array({"gpu"}));
    size_t lateChecks = 0;
    for (const auto& step : report["steps"])
        if (step["section"].get<std::string>().starts_with("5.") && step.contains("check")) {
            ++lateChecks;
            EXPECT_TRUE(step["ok"].get<bool>()) << step.dump();
        }
    EXPECT_EQ(lateChecks, 7u);
}

// explain --mapped-by: the late device forecast against a buffer the GPU
// mapped first, for each kind of importer.
TEST(Cli, ExplainMappedByForecastsTheLateAttach) {
    CliRun dynamic = cli("explain --devices display,isp --mapped-by gpu:dynamic --size 8M");
    EXPECT_EQ(dynamic.exitCode, 0) << dynamic.out;
    EXPECT_NE(dynamic.out.find("attaching to buffer 1 'explain' (8 MiB, storage from 'system'; attached: 'gpu'):\n"
                               "  'display': would migrate from 'system' to 'linux,cma', notifying 'gpu' (mappings "
                               "invalidated, map again after the move)\n"
                               "  'isp': fits: the storage from 'system' serves it\n"),
              std::string::npos)
        << dynamic.out;

    for (const char* importer : {"gpu", "gpu:static"}) {
        CliRun held = cli(std::string("explain --devices display --mapped-by ") + importer);
        EXPECT_EQ(held.exitCode, 2) << held.out;
        EXPECT_NE(held.out.find("'display': blocked (EBUSY): the storage from 'system' must move and cannot: 'gpu' "
                                "holds a static mapping of it\n"),
                  std::string::npos)
            << held.out;
    }
    CliRun pinned = cli("explain --devices display --mapped-by gpu:pinned");
    EXPECT_EQ(pinned.exitCode, 2) << pinned.out;
    EXPECT_NE(pinned.out.find("must move and cannot: 'gpu' pinned it\n"), std::string::npos) << pinned.out;

    CliRun j = cli("explain --json --devices display --mapped-by gpu:dynamic,isp:dynamic");
    ASSERT_EQ(j.exitCode, 0) << j.out;
    auto report = nlohmann::json::parse(j.out);
    EXPECT_EQ(report["buffer"]["attached_devices"], nlohmann::json::array({"gpu", "isp"}));
    ASSERT_EQ(report["forecasts"].size(), 1u);
    EXPECT_EQ(report["forecasts"][0]["outcome"], "would_migrate");
    EXPECT_EQ(report["forecasts"][0]["notified"], nlohmann::json::array({"gpu", "isp"}));
}

TEST(Cli, ExplainMappedByRefusesBadImportersAndASocket) {
    struct Case {
        const char* args;
        const char* message;
    };
    for (const Case& c : {
             Case{"--mapped-by gpu:sticky",
                  "--mapped-by: 'gpu:sticky': the kind is static, dynamic or pinned (EINVAL)"},
             Case{"--mapped-by :dynamic", "--mapped-by: ':dynamic': no device before the kind (EINVAL)"},
             Case{"--mapped-by nope", "--mapped-by: no device 'nope' on platform"},
             Case{"--mapped-by gpu --socket /nonexistent.sock",
                  "explain --mapped-by runs in-process: --socket does not apply (EINVAL)"},
         }) {
        SCOPED_TRACE(c.args);
        CliRun r = cli(std::string("explain --devices display ") + c.args);
        EXPECT_EQ(r.exitCode, 1) << r.out;
        EXPECT_NE(r.out.find(c.message), std::string::npos) << r.out;
        EXPECT_EQ(r.out.find("attaching to buffer"), std::string::npos) << r.out;
    }
}

TEST(Cli, HeapsJsonHasTheDocumentedShape) {
    for (const char* p : kPlatforms) {
        SCOPED_TRACE(*p ? p : "builtin");
        CliRun r = cli("heaps --json" + platformArg(p));
        ASSERT_EQ(r.exitCode, 0) << r.out;
        auto j = nlohmann::json::parse(r.out);
        ASSERT_TRUE(j["heaps"].is_array());
        ASSERT_FALSE(j["heaps"].empty());
        EXPECT_EQ(j["heaps"][0]["name"], "system");
        for (const auto& h : j["heaps"]) {
            EXPECT_TRUE(h["name"].is_string());
            EXPECT_TRUE(h["properties"].is_object());
            for (const char* key : {"live_buffers", "live_bytes", "watermark_bytes", "failed_allocations"})
                EXPECT_EQ(h["stats"][key], 0) << key;
        }
    }
}

TEST(Cli, PlatformShowJsonHasTheDocumentedShape) {
    CliRun r = cli("platform show --json --platform " + example("phone-soc.yaml"));
    ASSERT_EQ(r.exitCode, 0) << r.out;
    auto j = nlohmann::json::parse(r.out);
    for (const char* key : {"memory", "regions", "iommus", "devices"})
        EXPECT_TRUE(j[key].is_array()) << key;
    for (const auto& d : j["devices"])
        EXPECT_TRUE(d["name"].is_string());
    EXPECT_EQ(j["name"], "phone-soc");
}

TEST(Cli, ExplainJsonNamesHeapAndAllocatingDevice) {
    CliRun r = cli("explain --devices hvs,unicam --size 8M --json --platform " + example("rpi4.yaml"));
    ASSERT_EQ(r.exitCode, 0) << r.out;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_TRUE(j["satisfiable"].get<bool>());
    EXPECT_EQ(j["heap"], "linux,cma");
    EXPECT_TRUE(j["allocating_device"].is_string());
    EXPECT_TRUE(j["constraints"].is_object());
    for (const auto& h : j["heaps"]) {
        EXPECT_TRUE(h.contains("name") && h.contains("accepted") && h.contains("reasons"));
        if (h["name"] == "system") {
            EXPECT_FALSE(h["accepted"].get<bool>());
        }
    }
    EXPECT_TRUE(j["conflict"].is_null());
}

TEST(Cli, ExplainUnsatisfiableExitsTwoAndNamesTheConflict) {
    // On the built-in platform only the codec reaches the secure carveout, and a
    // buffer the display (one contiguous segment, 32-bit) and the camera (64
    // segments of 64 KiB) share cannot exceed 4 MiB.
    CliRun r = cli("explain --devices display,camera,gpu --size 8M --json");
    EXPECT_EQ(r.exitCode, 2) << r.out;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_FALSE(j["satisfiable"].get<bool>());
    EXPECT_TRUE(j["heap"].is_null());
    ASSERT_TRUE(j["conflict"].is_object());
    EXPECT_EQ(j["conflict"]["devices"], nlohmann::json::array({"camera"}));
}

TEST(Cli, BadInputIsAnErrorWithAMessage) {
    CliRun unknownDevice = cli("explain --devices nosuch");
    EXPECT_EQ(unknownDevice.exitCode, 1);
    EXPECT_NE(unknownDevice.out.find("nosuch"), std::string::npos) << unknownDevice.out;
    EXPECT_NE(unknownDevice.out.find("ENOENT"), std::string::npos) << unknownDevice.out;

    CliRun badSize = cli("explain --devices gpu --size 12Q");
    EXPECT_EQ(badSize.exitCode, 1);
    EXPECT_NE(badSize.out.find("--size"), std::string::npos) << badSize.out;

    CliRun badCpu = cli("explain --devices gpu --cpu-access sometimes");
    EXPECT_EQ(badCpu.exitCode, 1);
    EXPECT_NE(badCpu.out.find("--cpu-access"), std::string::npos) << badCpu.out;
}

TEST(Cli, BadPlatformFileNamesFileAndLine) {
    std::string path = std::string(CENALLOC_BINARY_DIR) + "/bad-platform.yaml";
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("name: bad\nmemory:\n  - name: ram\n    base: 0\n    size: 1G\n    colour: blue\n", f);
    std::fclose(f);
    CliRun r = cli("platform show --platform " + path);
    EXPECT_EQ(r.exitCode, 1);
    EXPECT_NE(r.out.find("bad-platform.yaml:6"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("colour"), std::string::npos) << r.out;
}

TEST(Cli, AllocBufinfoAndStatsInProcess) {
    CliRun alloc = cli("alloc --heap linux,cma --size 3M --name frame --json");
    ASSERT_EQ(alloc.exitCode, 0) << alloc.out;
    auto j = nlohmann::json::parse(alloc.out);
    EXPECT_EQ(j["size"], 3 * 1024 * 1024);
    EXPECT_EQ(j["heap"], "linux,cma");
    EXPECT_EQ(j["name"], "frame");
    EXPECT_EQ(j["chunk_count"], 1);

    CliRun bad = cli("alloc --heap system --size 0");
    EXPECT_EQ(bad.exitCode, 1);
    EXPECT_NE(bad.out.find("EINVAL"), std::string::npos) << bad.out;
    CliRun missing = cli("alloc --heap nosuch --size 4K");
    EXPECT_EQ(missing.exitCode, 1);
    EXPECT_NE(missing.out.find("ENOENT"), std::string::npos) << missing.out;

    CliRun stats = cli("stats --json");
    ASSERT_EQ(stats.exitCode, 0) << stats.out;
    auto sj = nlohmann::json::parse(stats.out);
    EXPECT_EQ(sj["live_buffers"], 0);
    EXPECT_TRUE(sj["heaps"].is_array());
    EXPECT_TRUE(sj["domains"].is_array());
}

TEST(Cli, AllocForChoosesTheHeapForTheDevicesAndShowsEachDevice) {
    CliRun text = cli("alloc --for display,gpu --size 3M --name scanout", cenalloc::test::Output::Stdout);
    ASSERT_EQ(text.exitCode, 0) << text.out;
    std::vector<std::string> keys;
    for (size_t at = 0; at < text.out.size();) {
        size_t end = text.out.find('\n', at);
        const std::string line = text.out.substr(at, end - at);
        keys.push_back(line.substr(0, line.find(':')));
        at = end == std::string::npos ? text.out.size() : end + 1;
    }
    const std::vector<std::string> expected = {"heap",     "kernel heap", "size",   "fd",     "inode",
                                               "exporter", "name",        "reason", "device", "device"};
    EXPECT_EQ(keys, expected) << text.out;
    EXPECT_NE(text.out.find("heap: linux,cma\n"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("name: scanout\n"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("device: display sysfs=- driver=-\n"), std::string::npos) << text.out;

    CliRun json = cli("alloc --for gpu --size 1M --cpu-access often --json", cenalloc::test::Output::Stdout);
    ASSERT_EQ(json.exitCode, 0) << json.out;
    auto j = nlohmann::json::parse(json.out);
    EXPECT_EQ(j["heap"], "system");
    EXPECT_TRUE(j["kernel_heap"].is_null()) << "the built-in platform is not placed on a kernel's heaps";
    EXPECT_EQ(j["size"], 1024 * 1024);
    EXPECT_GE(j["fd"].get<int>(), 0);
    EXPECT_GT(j["inode"].get<uint64_t>(), 0u);
    EXPECT_EQ(j["exporter"], "system");
    ASSERT_EQ(j["devices"].size(), 1u);
    EXPECT_EQ(j["devices"][0]["name"], "gpu");
    EXPECT_TRUE(j["reason"].is_string());
}

TEST(Cli, AllocForRefusesBadInputWithItsErrno) {
    struct Case {
        const char* args;
        const char* message;
    };
    for (const Case& c : {
             Case{"--for toaster --size 1M", "no device 'toaster' on platform"},
             Case{"--for gpu,gpu --size 1M", "device 'gpu' is listed twice (EINVAL)"},
             Case{"--for gpu --size 0", "(EINVAL)"},
             Case{"--for display --size 8G", "no heap serves"},
             Case{"--for gpu --size 1M --cpu-access sometimes", "--cpu-access"},
             Case{"--for gpu --size 1M --socket /nonexistent.sock", "(ENOENT)"},
         }) {
        SCOPED_TRACE(c.args);
        CliRun r = cli(std::string("alloc ") + c.args);
        EXPECT_EQ(r.exitCode, 1) << r.out;
        EXPECT_NE(r.out.find(c.message), std::string::npos) << r.out;
        EXPECT_EQ(r.out.find("heap: "), std::string::npos) << r.out;
    }
    CliRun unknown = cli("alloc --for toaster --size 1M");
    EXPECT_NE(unknown.out.find("(ENODEV)"), std::string::npos) << unknown.out;
    CliRun neither = cli("alloc --size 1M");
    EXPECT_NE(neither.exitCode, 0);
    EXPECT_NE(neither.out.find("alloc needs --heap HEAP or --for DEV1,DEV2,..."), std::string::npos) << neither.out;
    CliRun both = cli("alloc --heap system --for gpu --size 1M");
    EXPECT_NE(both.exitCode, 0);
    EXPECT_NE(both.out.find("excludes"), std::string::npos) << both.out;
}

/// A cenallocd on a private socket, socket-activated: reachable the
/// moment it is spawned, no waiting.
using Daemon = cenalloc::test::DaemonProcess;

TEST(Cli, CommandsTalkToTheDaemonWithSocket) {
    Daemon daemon({.logLevel = "error"});
    ASSERT_TRUE(daemon.running());
    const std::string socket = " --socket " + daemon.path();

    CliRun heaps = cli("heaps --json" + socket);
    ASSERT_EQ(heaps.exitCode, 0) << heaps.out;
    auto hj = nlohmann::json::parse(heaps.out);
    EXPECT_NE(hj["source"].get<std::string>().find("cenallocd"), std::string::npos);
    EXPECT_EQ(hj["heaps"][0]["name"], "system");

    CliRun alloc = cli("alloc --heap system --size 1M --name via-daemon --json" + socket);
    ASSERT_EQ(alloc.exitCode, 0) << alloc.out;
    EXPECT_EQ(nlohmann::json::parse(alloc.out)["name"], "via-daemon");

    // The allocating process has exited, so its only fd is gone: the daemon
    // released the buffer, and the statistics are back at zero with the
    // watermark remembering it.
    CliRun stats = cli("stats --json" + socket);
    ASSERT_EQ(stats.exitCode, 0) << stats.out;
    auto sj = nlohmann::json::parse(stats.out);
    EXPECT_EQ(sj["live_buffers"], 0);
    EXPECT_EQ(sj["heaps"][0]["stats"]["live_bytes"], 0);
    EXPECT_EQ(sj["heaps"][0]["stats"]["watermark_bytes"], 1024 * 1024);

    CliRun reset = cli("stats --reset-watermark --json" + socket);
    ASSERT_EQ(reset.exitCode, 0) << reset.out;
    EXPECT_EQ(nlohmann::json::parse(reset.out)["heaps"][0]["stats"]["watermark_bytes"], 0);

    CliRun explain = cli("explain --devices gpu,display --json" + socket);
    ASSERT_EQ(explain.exitCode, 0) << explain.out;
    EXPECT_EQ(nlohmann::json::parse(explain.out)["heap"], "linux,cma");

    CliRun nobody = cli("heaps --socket " + daemon.path() + ".missing");
    EXPECT_EQ(nobody.exitCode, 1);
}

// The lines of `alloc --for`'s text output but fd and inode, which differ
// between two buffers.
std::string withoutFdAndInode(const std::string& out) {
    std::string kept;
    for (size_t at = 0; at < out.size();) {
        size_t end = out.find('\n', at);
        const std::string line = out.substr(at, end == std::string::npos ? std::string::npos : end + 1 - at);
        if (!line.starts_with("fd: ") && !line.starts_with("inode: "))
            kept += line;
        at = end == std::string::npos ? out.size() : end + 1;
    }
    return kept;
}

TEST(Cli, AllocForThroughTheDaemonPrintsWhatInProcessPrints) {
    Daemon daemon({.logLevel = "error"});
    ASSERT_TRUE(daemon.running());
    const std::string socket = " --socket " + daemon.path();
    const std::string args = "alloc --for display,gpu --size 3M --name scanout";
    CliRun remote = cli(args + socket, cenalloc::test::Output::Stdout);
    ASSERT_EQ(remote.exitCode, 0) << remote.out;
    CliRun local = cli(args, cenalloc::test::Output::Stdout); // in-process, on the built-in platform
    ASSERT_EQ(local.exitCode, 0) << local.out;
    EXPECT_EQ(withoutFdAndInode(remote.out), withoutFdAndInode(local.out));
    EXPECT_NE(remote.out.find("heap: linux,cma\n"), std::string::npos) << remote.out;
    EXPECT_NE(remote.out.find("device: gpu sysfs=- driver=-\n"), std::string::npos) << remote.out;

    CliRun json = cli("alloc --for gpu --size 1M --json" + socket, cenalloc::test::Output::Stdout);
    ASSERT_EQ(json.exitCode, 0) << json.out;
    auto j = nlohmann::json::parse(json.out);
    EXPECT_EQ(j["heap"], "system");
    EXPECT_EQ(j["exporter"], "system");
    ASSERT_EQ(j["devices"].size(), 1u);
    EXPECT_EQ(j["devices"][0]["name"], "gpu");

    // Refusals come from the daemon with their errno, and leave nothing behind.
    CliRun unknown = cli("alloc --for toaster --size 1M" + socket);
    EXPECT_EQ(unknown.exitCode, 1);
    EXPECT_NE(unknown.out.find("(ENODEV)"), std::string::npos) << unknown.out;
    CliRun stats = cli("stats --json" + socket);
    ASSERT_EQ(stats.exitCode, 0) << stats.out;
    EXPECT_EQ(nlohmann::json::parse(stats.out)["live_buffers"], 0) << "each buffer died with its process";
}

TEST(Cli, OptionsEveryCommandTakesGoBeforeTheSubcommandOrAfterIt) {
    Daemon daemon({.logLevel = "error"});
    ASSERT_TRUE(daemon.running());
    const std::string socket = "--socket " + daemon.path();
    for (const std::string& args : {socket + " heaps --json", "heaps " + socket + " --json",
                                    "--json " + socket + " heaps", "--json heaps " + socket}) {
        SCOPED_TRACE(args);
        CliRun heaps = cli(args);
        ASSERT_EQ(heaps.exitCode, 0) << heaps.out;
        auto j = nlohmann::json::parse(heaps.out);
        EXPECT_NE(j["source"].get<std::string>().find("cenallocd"), std::string::npos) << "the daemon served it";
    }
    CliRun stats = cli(socket + " stats --reset-watermark --json");
    ASSERT_EQ(stats.exitCode, 0) << stats.out;
    EXPECT_TRUE(nlohmann::json::parse(stats.out)["heaps"].is_array());

    // A platform, and --json, before the subcommand.
    const std::string rpi4 = "--platform " + example("rpi4.yaml");
    CliRun show = cli(rpi4 + " --json platform show");
    ASSERT_EQ(show.exitCode, 0) << show.out;
    EXPECT_EQ(nlohmann::json::parse(show.out)["name"], "rpi4");
    for (const std::string& args : {rpi4 + " explain --devices hvs,unicam --size 8M --json",
                                    "--json explain --devices hvs,unicam --size 8M " + rpi4}) {
        SCOPED_TRACE(args);
        CliRun explain = cli(args);
        ASSERT_EQ(explain.exitCode, 0) << explain.out;
        EXPECT_EQ(nlohmann::json::parse(explain.out)["heap"], "linux,cma");
    }
    CliRun demo = cli("--json demo");
    ASSERT_EQ(demo.exitCode, 0) << demo.out;
    EXPECT_TRUE(nlohmann::json::parse(demo.out)["ok"].get<bool>());
}

TEST(Cli, AnOptionOfOneSubcommandBeforeItIsRefusedSayingWhereItGoes) {
    CliRun heap = cli("--heap system alloc --size 4K");
    EXPECT_NE(heap.exitCode, 0);
    EXPECT_NE(heap.out.find("--heap is an option of 'alloc': give it after the subcommand"), std::string::npos)
        << heap.out;
    CliRun devices = cli("--devices gpu,display explain");
    EXPECT_NE(devices.exitCode, 0);
    EXPECT_NE(devices.out.find("--devices is an option of 'explain'"), std::string::npos) << devices.out;
    CliRun flag = cli("--reset-watermark stats");
    EXPECT_NE(flag.exitCode, 0);
    EXPECT_NE(flag.out.find("--reset-watermark is an option of 'stats'"), std::string::npos) << flag.out;
    // --socket is for the commands that talk to a daemon, wherever it is given.
    CliRun demo = cli("--socket /nonexistent.sock demo");
    EXPECT_NE(demo.exitCode, 0);
    EXPECT_NE(demo.out.find("--socket applies to heaps, alloc, bufinfo, stats and explain, not to demo"),
              std::string::npos)
        << demo.out;
    CliRun afterDemo = cli("demo --socket /nonexistent.sock");
    EXPECT_NE(afterDemo.exitCode, 0) << afterDemo.out;
    // What no command takes is refused as before.
    CliRun unknown = cli("--frobnicate heaps");
    EXPECT_NE(unknown.exitCode, 0);
    EXPECT_NE(unknown.out.find("--frobnicate"), std::string::npos) << unknown.out;
}

TEST(Cli, BufinfoOfHostileBufferNamesIsValidJsonAndEscapedText) {
    if (::geteuid() != 0)
        GTEST_SKIP() << "only root's bufinfo lists other clients' buffers (the case of issue 13)";
    Daemon daemon({.logLevel = "error"});
    ASSERT_TRUE(daemon.running());
    // Any client may name its buffer with any 31 bytes: one not UTF-8, a
    // screen-clearing escape, a newline, at the longest DMA_BUF_SET_NAME takes.
    auto client = cenalloc::Session::connect(daemon.path());
    ASSERT_TRUE(client) << client.error().toString();
    const std::string prefix = "\xff\x1b[2J\nevil";
    const std::string hostile = prefix + std::string(31 - prefix.size(), 'x');
    ASSERT_EQ(hostile.size(), 31u);
    auto buffer = (*client)->allocate("system", 4096);
    ASSERT_TRUE(buffer) << buffer.error().toString();
    ASSERT_TRUE((*client)->setName(buffer->borrow(), hostile));

    const std::string socket = " --socket " + daemon.path();
    CliRun json = cli("bufinfo --json" + socket);
    ASSERT_EQ(json.exitCode, 0) << json.out;
    auto j = nlohmann::json::parse(json.out);
    std::string hexName = "ff1b5b324a0a6576696c";
    for (size_t i = prefix.size(); i < hostile.size(); ++i)
        hexName += "78";
    bool found = false;
    for (const auto& b : j["buffers"])
        if (b["name_hex"] == hexName) {
            found = true;
            EXPECT_EQ(b["name"], "\xef\xbf\xbd\x1b[2J\nevil" + std::string(31 - prefix.size(), 'x'));
        }
    EXPECT_TRUE(found) << json.out;

    CliRun text = cli("bufinfo" + socket);
    ASSERT_EQ(text.exitCode, 0) << text.out;
    EXPECT_NE(text.out.find("\\xff\\x1b[2J\\x0aevil"), std::string::npos) << text.out;
    EXPECT_EQ(text.out.find('\x1b'), std::string::npos);
    EXPECT_EQ(text.out.find('\xff'), std::string::npos);
}

} // namespace
