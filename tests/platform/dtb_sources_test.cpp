// SPDX-License-Identifier: MIT
// Tests of loadPlatformSource: which loader a source picks, and contradictory sources.
#include <cenalloc/platform_sources.h>

#include <cerrno>

#include "support/dtb.h"

namespace cenalloc {
namespace {

TEST(PlatformSource, NothingGivenIsTheBuiltInPlatform) {
    std::vector<std::string> notes;
    Result<Platform> p = loadPlatformSource({}, &notes);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->name, defaultPlatform().name);
    EXPECT_TRUE(notes.empty());
}

TEST(PlatformSource, YamlGoesToTheYamlLoader) {
    PlatformSource s;
    s.yamlPath = std::string(CENALLOC_SOURCE_DIR) + "/examples/platforms/rpi4.yaml";
    Result<Platform> p = loadPlatformSource(s);
    ASSERT_TRUE(p) << p.error().toString();
    EXPECT_EQ(p->name, "rpi4");
}

TEST(PlatformSource, DtbWithOverlayCollectsTheWarnings) {
    CENALLOC_REQUIRE_FIXTURE("no_memory");
    PlatformSource s;
    s.dtbPath = dtbtest::fixturePath("no_memory");
    Result<Platform> bare = loadPlatformSource(s);
    ASSERT_FALSE(bare);
    EXPECT_EQ(bare.error().code(), ENODATA);

    std::string overlay = ::testing::TempDir() + "/cenalloc-overlay.yaml";
    {
        FILE* f = std::fopen(overlay.c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fputs("name: with-ram\nmemory:\n  - {base: 0x80000000, size: 1G}\ndevices:\n  - name: nosuch\n"
                   "    coherent: true\n",
                   f);
        std::fclose(f);
    }
    s.overlayPath = overlay;
    std::vector<std::string> notes;
    Result<Platform> p = loadPlatformSource(s, &notes);
    ASSERT_TRUE(p) << p.error().toString();
    EXPECT_EQ(p->name, "with-ram");
    EXPECT_TRUE(dtbtest::warned(notes, {"nosuch", "matches no device"}));
    std::remove(overlay.c_str());
}

TEST(PlatformSource, ContradictorySourcesAreEinval) {
    struct Case {
        PlatformSource source;
        const char* message;
    };
    std::vector<Case> cases;
    PlatformSource both;
    both.yamlPath = "a.yaml";
    both.dtbPath = "a.dtb";
    cases.push_back({both, "at most one of"});
    PlatformSource hostAndDtb;
    hostAndDtb.host = true;
    hostAndDtb.dtbPath = "a.dtb";
    cases.push_back({hostAndDtb, "at most one of"});
    PlatformSource overlayAlone;
    overlayAlone.overlayPath = "o.yaml";
    cases.push_back({overlayAlone, "an overlay applies to a device tree blob or to the host only"});
    PlatformSource overlayWithYaml;
    overlayWithYaml.overlayPath = "o.yaml";
    overlayWithYaml.yamlPath = "a.yaml";
    cases.push_back({overlayWithYaml, "an overlay applies"});
    for (const Case& c : cases) {
        SCOPED_TRACE(c.message);
        std::vector<std::string> notes;
        Result<Platform> p = loadPlatformSource(c.source, &notes);
        ASSERT_FALSE(p);
        EXPECT_EQ(p.error().code(), EINVAL);
        EXPECT_NE(p.error().message().find(c.message), std::string::npos) << p.error().message();
        EXPECT_TRUE(notes.empty());
    }
}

TEST(PlatformSource, AMissingOverlayIsReportedBeforeAnythingIsLoaded) {
    PlatformSource s;
    s.dtbPath = "/nonexistent.dtb";
    s.overlayPath = "/nonexistent-overlay.yaml";
    Result<Platform> p = loadPlatformSource(s);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code(), ENOENT);
    EXPECT_NE(p.error().message().find("nonexistent-overlay.yaml"), std::string::npos);
}

} // namespace
} // namespace cenalloc
