// SPDX-License-Identifier: MIT
// End-to-end tests of the CLI's --dtb, --overlay and --host options on every command.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/cli.h"

namespace {

using cenalloc::test::cli;
using cenalloc::test::CliRun;
using cenalloc::test::Output;

std::string fixture(const char* name) {
    return std::string(CENALLOC_DTB_FIXTURES) + "/" + name + ".dtb";
}

std::string overlay(const char* name) {
    return std::string(CENALLOC_SOURCE_DIR) + "/examples/overlays/" + name;
}

#define REQUIRE_FIXTURES()                                                                                             \
    do {                                                                                                               \
        if (!std::filesystem::exists(fixture("board")))                                                                \
            GTEST_SKIP() << "the device tree fixtures were not built: dtc was not found at configure time";            \
    } while (0)

TEST(DtbCli, EveryCommandTakesADtb) {
    REQUIRE_FIXTURES();
    const std::string dtb = " --dtb " + fixture("board");
    struct Case {
        std::string args;
        const char* expect;
    };
    const Case cases[] = {
        {"platform show" + dtb, "hvs"},
        {"heaps" + dtb, "linux,cma"},
        {"demo" + dtb, "demo ok"},
        {"explain --devices hvs,gpu --size 8M" + dtb, "linux,cma"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.args);
        CliRun r = cli(c.args);
        EXPECT_EQ(r.exitCode, 0) << r.out;
        EXPECT_NE(r.out.find(c.expect), std::string::npos) << r.out;
    }
}

TEST(DtbCli, WarningsGoToStderrOrUnderNotesInJson) {
    REQUIRE_FIXTURES();
    std::string args = "platform show --dtb " + fixture("reserved");
    CliRun err = cli(args, Output::Stderr);
    EXPECT_EQ(err.exitCode, 0);
    EXPECT_NE(err.out.find("cenalloc: note: "), std::string::npos) << err.out;
    EXPECT_NE(err.out.find("misaligned@a1000000"), std::string::npos) << err.out;

    CliRun json = cli(args + " --json", Output::Stdout);
    ASSERT_EQ(json.exitCode, 0) << json.out;
    nlohmann::json j = nlohmann::json::parse(json.out);
    ASSERT_TRUE(j.contains("notes"));
    bool found = false;
    for (const auto& note : j["notes"])
        found = found || note.get<std::string>().find("misaligned@a1000000") != std::string::npos;
    EXPECT_TRUE(found) << j["notes"].dump();
    EXPECT_EQ(j["name"], "cenalloc,test-reserved");
}

TEST(DtbCli, OverlayGivesRamToATreeWithout) {
    REQUIRE_FIXTURES();
    CliRun bare = cli("platform show --dtb " + fixture("no_memory"));
    EXPECT_EQ(bare.exitCode, 1);
    EXPECT_NE(bare.out.find("no ram"), std::string::npos) << bare.out;
    // The Pi 4 overlay's banks hold the fixture's CMA range (2..4 GiB is
    // partly RAM there).
    CliRun r = cli("platform show --json --dtb " + fixture("no_memory") + " --overlay " + overlay("rpi4-4g.yaml"),
                   Output::Stdout);
    ASSERT_EQ(r.exitCode, 0) << r.out;
    nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["name"], "rpi4-4g");
    EXPECT_EQ(j["memory"].size(), 2u);
}

TEST(DtbCli, ContradictoryOptionsAreRefused) {
    REQUIRE_FIXTURES();
    CliRun both = cli("heaps --host --dtb " + fixture("board"));
    EXPECT_EQ(both.exitCode, 1);
    EXPECT_NE(both.out.find("at most one of"), std::string::npos) << both.out;
    CliRun alone = cli("heaps --overlay " + overlay("rpi4-4g.yaml"));
    EXPECT_EQ(alone.exitCode, 1);
    EXPECT_NE(alone.out.find("an overlay applies"), std::string::npos) << alone.out;
    CliRun missing = cli("heaps --dtb /nonexistent.dtb");
    EXPECT_NE(missing.exitCode, 0);
    CliRun garbage = cli("platform show --dtb " + std::string(CENALLOC_SOURCE_DIR) + "/examples/platforms/rpi4.yaml");
    EXPECT_EQ(garbage.exitCode, 1);
    EXPECT_NE(garbage.out.find("not a valid flattened device tree"), std::string::npos) << garbage.out;
}

TEST(DtbCli, HostSaysWhatItLearnedAndWhatNot) {
    CliRun r = cli("platform show --host --json", Output::Stdout);
    if (r.exitCode == 1 && r.out.empty())
        GTEST_SKIP() << "this machine exposes no memory map to this user";
    ASSERT_EQ(r.exitCode, 0) << r.out;
    nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["source"], "host");
    ASSERT_TRUE(j.contains("notes"));
    bool learned = false, notLearned = false;
    for (const auto& note : j["notes"]) {
        std::string n = note.get<std::string>();
        learned = learned || n.rfind("learned ", 0) == 0;
        notLearned = notLearned || n.rfind("could not learn ", 0) == 0;
    }
    EXPECT_TRUE(learned) << j["notes"].dump();
    EXPECT_TRUE(notLearned) << j["notes"].dump();
    CliRun heaps = cli("heaps --host");
    EXPECT_EQ(heaps.exitCode, 0) << heaps.out;
}

} // namespace
