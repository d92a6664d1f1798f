// SPDX-License-Identifier: MIT
// Tests of the YAML platform loader: the schema, defaults and error reporting.
#include <cenalloc/platform.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <unistd.h>
#include <vector>

#include <cenalloc/units.h>

#include <gtest/gtest.h>

namespace cenalloc {
namespace {

// The smallest valid description, to which tests append.
constexpr const char* kMinimal = R"yaml(name: minimal
memory:
  - name: dram
    base: 0x40000000
    size: 1G
)yaml";

// The 1-based line of the first line containing "#<" (the marker the error
// cases put on the line an error must point at), or 0.
int markedLine(const std::string& text) {
    size_t pos = text.find("#<");
    if (pos == std::string::npos)
        return 0;
    return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
}

TEST(ParsePlatformYaml, AppliesTheDocumentedDefaults) {
    std::string text = std::string(kMinimal) + R"yaml(
regions:
  - name: pool
    kind: cma
    base: 0x48000000
    size: 64M
iommus:
  - name: smmu
devices:
  - name: plain
)yaml";
    Result<Platform> p = parsePlatformYaml(text, "defaults.yaml");
    ASSERT_TRUE(p) << p.error().toString();
    EXPECT_EQ(p->name, "minimal");
    EXPECT_EQ(p->source, "defaults.yaml");
    EXPECT_EQ(p->description, "");
    ASSERT_EQ(p->memory.size(), 1u);
    EXPECT_EQ(p->memory[0].name, "dram");
    EXPECT_EQ(p->memory[0].base, 0x40000000u);
    EXPECT_EQ(p->memory[0].size, GiB);

    ASSERT_EQ(p->regions.size(), 1u);
    EXPECT_EQ(p->regions[0].kind, RegionKind::Cma);
    EXPECT_FALSE(p->regions[0].noMap);
    EXPECT_FALSE(p->regions[0].isDefault);
    EXPECT_EQ(p->regions[0].accessBits, kAllAccess);

    ASSERT_EQ(p->iommus.size(), 1u);
    EXPECT_EQ(p->iommus[0].pageSize, 4096u);
    EXPECT_EQ(p->iommus[0].apertureBase, 0u);
    EXPECT_EQ(p->iommus[0].apertureSize, 4 * GiB);

    ASSERT_EQ(p->devices.size(), 1u);
    const Device& d = p->devices[0];
    EXPECT_EQ(d.name, "plain");
    EXPECT_EQ(d.description, "");
    EXPECT_EQ(d.iommu, std::nullopt);
    EXPECT_EQ(d.constraints, DmaConstraints{});
    EXPECT_EQ(d.constraints.dmaMask, kNoLimit);
    EXPECT_EQ(d.constraints.coherentDmaMask, kNoLimit);
    EXPECT_EQ(d.constraints.maxSegmentSize, kDefaultMaxSegmentSize);
    EXPECT_EQ(d.constraints.segmentBoundaryMask, kNoLimit);
    EXPECT_EQ(d.constraints.maxSegmentCount, 0u);
    EXPECT_EQ(d.constraints.alignment, 4096u);
    EXPECT_FALSE(d.constraints.contiguous);
    EXPECT_TRUE(d.constraints.coherent);
    EXPECT_EQ(d.constraints.accessBits, kAllAccess);
}

TEST(ParsePlatformYaml, ReadsEveryDeviceKey) {
    std::string text = std::string(kMinimal) + R"yaml(
iommus:
  - name: smmu
    page_size: 64K
    aperture_base: 0x10000000
    aperture_size: 1G
devices:
  - name: full
    description: every key set
    iommu: smmu
    dma_mask_bits: 36
    coherent_dma_mask: 0xffffffff
    max_segment_size: 1M
    segment_boundary_mask: 0xffffff
    max_segment_count: 16
    alignment: 64K
    contiguous: true
    coherent: false
    access_bits: 0x5
)yaml";
    Result<Platform> p = parsePlatformYaml(text, "full.yaml");
    ASSERT_TRUE(p) << p.error().toString();
    EXPECT_EQ(p->iommus[0].pageSize, 64 * KiB);
    EXPECT_EQ(p->iommus[0].apertureBase, 0x10000000u);
    EXPECT_EQ(p->iommus[0].apertureSize, GiB);
    const Device& d = p->devices.at(0);
    EXPECT_EQ(d.description, "every key set");
    EXPECT_EQ(d.iommu, std::optional<std::string>("smmu"));
    EXPECT_EQ(d.constraints.dmaMask, 0xfffffffffu);
    EXPECT_EQ(d.constraints.coherentDmaMask, 0xffffffffu);
    EXPECT_EQ(d.constraints.maxSegmentSize, MiB);
    EXPECT_EQ(d.constraints.segmentBoundaryMask, 0xffffffu);
    EXPECT_EQ(d.constraints.maxSegmentCount, 16u);
    EXPECT_EQ(d.constraints.alignment, 64 * KiB);
    EXPECT_TRUE(d.constraints.contiguous);
    EXPECT_FALSE(d.constraints.coherent);
    EXPECT_EQ(d.constraints.accessBits, 0x5u);
}

TEST(ParsePlatformYaml, MaskFormsAndTheCoherentMaskDefault) {
    struct Case {
        const char* keys;
        uint64_t dmaMask;
        uint64_t coherentMask;
    };
    const Case cases[] = {
        {"dma_mask_bits: 32", 0xffffffff, 0xffffffff},
        {"dma_mask: 0xffffffff", 0xffffffff, 0xffffffff},
        {"dma_mask_bits: 64", kNoLimit, kNoLimit},
        {"dma_mask_bits: 1", 1, 1},
        {"dma_mask: 0xffffffffffffffff", kNoLimit, kNoLimit},
        {"dma_mask_bits: 40\n    coherent_dma_mask_bits: 32", 0xffffffffff, 0xffffffff},
        {"coherent_dma_mask: 0xffffff", kNoLimit, 0xffffff},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.keys);
        std::string text = std::string(kMinimal) + "devices:\n  - name: d\n    " + c.keys + "\n";
        Result<Platform> p = parsePlatformYaml(text, "masks.yaml");
        ASSERT_TRUE(p) << p.error().toString();
        EXPECT_EQ(p->devices.at(0).constraints.dmaMask, c.dmaMask);
        EXPECT_EQ(p->devices.at(0).constraints.coherentDmaMask, c.coherentMask);
    }
}

TEST(ParsePlatformYaml, AcceptsSectionsInAnyOrderAndEmptyOptionalLists) {
    const char* text = R"yaml(
devices:
  - name: dev
    iommu: smmu
iommus:
  - name: smmu
regions:
memory:
  - {name: dram, base: 0, size: 0x100000}
name: reordered
)yaml";
    Result<Platform> p = parsePlatformYaml(text, "order.yaml");
    ASSERT_TRUE(p) << p.error().toString();
    EXPECT_EQ(p->name, "reordered");
    EXPECT_TRUE(p->regions.empty());
    EXPECT_EQ(p->devices.at(0).iommu, std::optional<std::string>("smmu"));
    EXPECT_EQ(p->memory.at(0).size, MiB);
}

TEST(ParsePlatformYaml, ReadsKernelHeapDescriptions) {
    auto p = parsePlatformYaml(std::string(kMinimal) + R"(kernel_heaps:
  - name: system
  - name: linux,cma
    description: the default CMA pool
    contiguous: true
    cached: false
    size: 256M
)",
                               "board.yaml");
    ASSERT_TRUE(p) << p.error().toString();
    ASSERT_EQ(p->kernelHeaps.size(), 2u);
    const KernelHeapDescription& system = p->kernelHeaps[0];
    EXPECT_EQ(system.name, "system");
    EXPECT_FALSE(system.contiguous);
    EXPECT_TRUE(system.cached);
    EXPECT_EQ(system.size, 0u) << "unknown unless said";
    const KernelHeapDescription* cma = p->findKernelHeap("linux,cma");
    ASSERT_NE(cma, nullptr);
    EXPECT_EQ(cma->description, "the default CMA pool");
    EXPECT_TRUE(cma->contiguous);
    EXPECT_FALSE(cma->cached);
    EXPECT_EQ(cma->size, 256u << 20);
    EXPECT_EQ(p->findKernelHeap("reserved"), nullptr);
}

// A modelled platform can say which devices own a region (the device
// tree's memory-region) and which IOMMU group a device is in.
TEST(ParsePlatformYaml, ReadsRegionOwnersAndIommuGroups) {
    std::string text = std::string(kMinimal) + R"yaml(
regions:
  - name: vpu-pool
    kind: carveout
    base: 0x48000000
    size: 16M
    owners: [codec]
  - name: shared
    kind: cma
    base: 0x50000000
    size: 16M
iommus:
  - name: smmu
devices:
  - name: codec
    iommu: smmu
    iommu_group: sid-0x10a0
  - name: display
    iommu: smmu
)yaml";
    Result<Platform> p = parsePlatformYaml(text, "owners.yaml");
    ASSERT_TRUE(p) << p.error().toString();
    const ReservedRegion* vpu = p->findRegion("vpu-pool");
    ASSERT_NE(vpu, nullptr);
    EXPECT_EQ(vpu->owners, (std::vector<std::string>{"codec"}));
    EXPECT_FALSE(vpu->heap) << "an owned region is nobody else's heap";
    EXPECT_TRUE(p->findRegion("shared")->heap);
    EXPECT_TRUE(p->findRegion("shared")->owners.empty());
    EXPECT_EQ(p->findDevice("codec")->iommuGroup, "sid-0x10a0");
    EXPECT_EQ(p->findDevice("display")->iommuGroup, "");
    EXPECT_NE(iommuDomainName(*p->findDevice("codec")), iommuDomainName(*p->findDevice("display")));
    EXPECT_FALSE(p->vendorHeaps.has_value()) << "a modelled platform has every vendor heap";

    // An owner that is no device is an error at its line.
    std::string bad = std::string(kMinimal) + R"yaml(
regions:
  - name: vpu-pool
    kind: carveout
    base: 0x48000000
    size: 16M
    owners: [nosuch] #<
devices:
  - name: codec
)yaml";
    Result<Platform> e = parsePlatformYaml(bad, "bad.yaml");
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code(), EINVAL);
    EXPECT_NE(e.error().message().find("bad.yaml:" + std::to_string(markedLine(bad)) + ":"), std::string::npos)
        << e.error().message();
    EXPECT_NE(e.error().message().find("unknown device 'nosuch'"), std::string::npos) << e.error().message();
    Result<Platform> notAList = parsePlatformYaml(std::string(kMinimal) + R"yaml(
regions:
  - {name: a, kind: cma, base: 0x48000000, size: 16M, owners: codec}
)yaml",
                                                  "list.yaml");
    ASSERT_FALSE(notAList);
    EXPECT_NE(notAList.error().message().find("owners"), std::string::npos);
}

TEST(ParsePlatformYaml, AcceptsBooleanSpellingsAndATrailingDocumentMarker) {
    for (const char* spelling : {"true", "True", "yes", "on"}) {
        SCOPED_TRACE(spelling);
        std::string text = std::string(kMinimal) + "devices:\n  - name: d\n    contiguous: " + spelling + "\n---\n";
        Result<Platform> p = parsePlatformYaml(text, "bool.yaml");
        ASSERT_TRUE(p) << p.error().toString();
        EXPECT_TRUE(p->devices.at(0).constraints.contiguous);
    }
}

struct BadInput {
    const char* what;
    std::string text; // "#<" marks the line the error must name
    std::vector<std::string> mentions;
};

void PrintTo(const BadInput& bad, std::ostream* os) {
    *os << bad.what;
}

std::vector<BadInput> badInputs() {
    const std::string m = kMinimal;
    return {
        {"unknown device key",
         m + "devices:\n  - name: cam\n    dma_msk: 32 #<\n",
         {"unknown key 'dma_msk'", "device 'cam'", "dma_mask_bits", "max_segment_size"}},
        {"unknown top-level key", m + "devices_: [] #<\n", {"unknown key 'devices_'", "memory", "iommus"}},
        {"unknown bank key",
         "name: x\nmemory:\n  - name: dram\n    base: 0\n    size: 1G\n    sise: 1G #<\n",
         {"unknown key 'sise'", "memory bank 'dram'", "name, base, size"}},
        {"bad number", m + "devices:\n  - name: d\n    dma_mask_bits: thirty #<\n", {"dma_mask_bits", "'thirty'"}},
        {"number with a size suffix",
         m + "devices:\n  - name: d\n    max_segment_count: 4K #<\n",
         {"max_segment_count", "'4K'", "not a number"}},
        {"number too large",
         m + "devices:\n  - name: d\n    access_bits: 0x1ffffffffffffffff #<\n",
         {"access_bits", "does not fit in 64 bits"}},
        {"segment count beyond 32 bits",
         m + "devices:\n  - name: d\n    max_segment_count: 4294967296 #<\n",
         {"max_segment_count", "4294967296"}},
        {"bad size suffix",
         "name: x\nmemory:\n  - name: dram\n    base: 0\n    size: 12Q #<\n",
         {"memory bank 'dram'", "size", "unknown suffix 'Q'"}},
        {"size overflow",
         "name: x\nmemory:\n  - name: dram\n    base: 0\n    size: 16777216T #<\n",
         {"size", "does not fit in 64 bits"}},
        {"mask of zero bits",
         m + "devices:\n  - name: d\n    dma_mask_bits: 0 #<\n",
         {"device 'd'", "dma_mask_bits", "mask of zero"}},
        {"mask of zero", m + "devices:\n  - name: d\n    dma_mask: 0x0 #<\n", {"dma_mask", "mask of zero"}},
        {"coherent mask of zero",
         m + "devices:\n  - name: d\n    coherent_dma_mask_bits: 0 #<\n",
         {"coherent_dma_mask_bits", "mask of zero"}},
        {"mask of 65 bits", m + "devices:\n  - name: d\n    dma_mask_bits: 65 #<\n", {"dma_mask_bits", "65 bits"}},
        {"mask that ends inside a page",
         m + "devices:\n  - name: d\n    dma_mask: 0xf0000000 #<\n",
         {"dma_mask", "0xf0000000", "neither 2^n-1 nor the end of a page"}},
        {"both mask forms",
         m + "devices:\n  - name: d\n    dma_mask: 0xffffffff\n    dma_mask_bits: 32 #<\n",
         {"device 'd'", "dma_mask_bits", "dma_mask", "not both"}},
        {"both coherent mask forms",
         m + "devices:\n  - name: d\n    coherent_dma_mask_bits: 32\n    coherent_dma_mask: 0xffffffff #<\n",
         {"coherent_dma_mask", "not both"}},
        {"overlapping regions",
         m + "regions:\n  - name: a\n    kind: cma\n    base: 0x40000000\n    size: 16M\n"
             "  - name: b #<\n    kind: carveout\n    base: 0x40800000\n    size: 16M\n",
         {"reserved regions 'a' and 'b' overlap"}},
        {"region outside any bank",
         m + "regions:\n  - name: stray #<\n    kind: carveout\n    base: 0x80000000\n    size: 16M\n",
         {"reserved region 'stray'", "not inside any memory bank"}},
        {"region straddling a bank end",
         m + "regions:\n  - name: edge #<\n    kind: cma\n    base: 0x7ff00000\n    size: 2M\n",
         {"reserved region 'edge'", "not inside any memory bank"}},
        {"overlapping banks",
         "name: x\nmemory:\n  - name: a\n    base: 0\n    size: 2G\n  - name: b #<\n    base: 1G\n    size: 2G\n",
         {"memory banks 'a' and 'b' overlap"}},
        {"unaligned bank",
         "name: x\nmemory:\n  - name: odd #<\n    base: 0x1001\n    size: 1G\n",
         {"memory bank 'odd'", "page-aligned"}},
        {"duplicate bank names",
         "name: x\nmemory:\n  - name: a\n    base: 0\n    size: 1G\n  - name: a #<\n    base: 2G\n    size: 1G\n",
         {"memory bank 'a' is defined twice"}},
        {"unknown iommu",
         m + "iommus:\n  - name: smmu\ndevices:\n  - name: ok\n    iommu: smmu\n  - name: gpu #<\n    iommu: nope\n",
         {"device 'gpu'", "unknown iommu 'nope'"}},
        {"duplicate device names",
         m + "devices:\n  - name: cam\n  - name: isp\n  - name: cam #<\n",
         {"device 'cam' is defined twice"}},
        {"duplicate iommu names", m + "iommus:\n  - name: s\n  - name: s #<\n", {"iommu 's' is defined twice"}},
        {"two default regions",
         m + "regions:\n  - name: a\n    kind: cma\n    base: 0x40000000\n    size: 16M\n    default: true\n"
             "  - name: b #<\n    kind: cma\n    base: 0x50000000\n    size: 16M\n    default: true\n",
         {"more than one", "default"}},
        {"no-map cma pool",
         m + "regions:\n  - name: pool #<\n    kind: cma\n    base: 0x40000000\n    size: 16M\n    no_map: true\n",
         {"reserved region 'pool'", "no_map"}},
        {"default carveout",
         m + "regions:\n  - name: co #<\n    kind: carveout\n    base: 0x40000000\n    size: 16M\n    default: yes\n",
         {"reserved region 'co'", "default"}},
        {"bad region kind",
         m + "regions:\n  - name: r\n    kind: secure #<\n    base: 0x40000000\n    size: 16M\n",
         {"reserved region 'r'", "kind", "'secure'", "cma or carveout"}},
        {"iommu page size", m + "iommus:\n  - name: s #<\n    page_size: 3K\n", {"iommu 's'", "page size 3072"}},
        {"boundary mask not 2^n-1",
         m + "devices:\n  - name: d #<\n    segment_boundary_mask: 0x1fff0\n",
         {"device 'd'", "segment_boundary_mask"}},
        {"device access bits zero",
         m + "devices:\n  - name: d #<\n    access_bits: 0\n",
         {"device 'd'", "access bits 0"}},
        {"max segment size below a page",
         m + "devices:\n  - name: d #<\n    max_segment_size: 512\n",
         {"device 'd'", "max_segment_size"}},
        {"bad boolean",
         m + "devices:\n  - name: d\n    coherent: maybe #<\n",
         {"device 'd'", "coherent", "'maybe'", "boolean"}},
        {"missing memory", "name: x #<\ndevices: []\n", {"missing required key 'memory'"}},
        {"missing name", "memory: #<\n  - name: dram\n    base: 0\n    size: 1G\n", {"missing required key 'name'"}},
        {"empty memory list", "name: x\nmemory: [] #<\n", {"no memory banks"}},
        {"null memory", "name: x\nmemory: #<\n", {"no memory banks"}},
        {"empty platform name", "name: '' #<\nmemory:\n  - {name: dram, base: 0, size: 1G}\n", {"name", "empty"}},
        {"missing bank size",
         "name: x\nmemory:\n  - name: dram #<\n    base: 0\n",
         {"memory bank 'dram'", "missing required key 'size'"}},
        {"missing region kind",
         m + "regions:\n  - name: r #<\n    base: 0x40000000\n    size: 16M\n",
         {"reserved region 'r'", "missing required key 'kind'"}},
        {"device without a name",
         m + "devices:\n  - name: a\n  - description: nameless #<\n",
         {"devices[1]", "missing required key 'name'"}},
        {"repeated key",
         m + "devices:\n  - name: d\n    coherent: true\n    coherent: false #<\n",
         {"device 'd'", "'coherent'", "twice"}},
        {"wrong node type for memory", "name: x\nmemory: 5 #<\n", {"memory", "expected a list", "a scalar"}},
        {"wrong node type for a device",
         m + "devices:\n  - just-a-name #<\n",
         {"devices[0]", "expected a mapping", "a scalar"}},
        {"wrong node type for a name",
         m + "devices:\n  - name: [a, b] #<\n",
         {"devices[0]", "name", "expected a scalar", "a list"}},
        {"wrong node type for a size",
         "name: x\nmemory:\n  - name: dram\n    base: 0\n    size: {a: 1} #<\n",
         {"size", "expected a scalar", "a mapping"}},
        {"top level is a list", "- name: x #<\n", {"platform", "expected a mapping", "a list"}},
        {"non-scalar key", m + "? [a, b] #<\n: 1\n", {"key", "a list"}},
        {"empty text", "#<\n", {"empty"}},
        {"two documents", m + "---\nname: second #<\n", {"one yaml document"}},
        {"unknown kernel heap key",
         m + "kernel_heaps:\n  - name: system\n    contigous: true #<\n",
         {"unknown key 'contigous'", "kernel heap 'system'", "contiguous, cached, size"}},
        {"kernel heap name with a slash",
         m + "kernel_heaps:\n  - name: ../system #<\n",
         {"kernel heap name '../system'", "/dev/dma_heap"}},
        {"kernel heap described twice",
         m + "kernel_heaps:\n  - name: system\n  - name: system #<\n",
         {"kernel heap 'system' is described twice"}},
        {"kernel heap size not page-aligned",
         m + "kernel_heaps:\n  - name: reserved #<\n    size: 5000\n",
         {"kernel heap 'reserved'", "not page-aligned"}},
        {"kernel heap without a name", m + "kernel_heaps:\n  - cached: false #<\n", {"name"}},
        {"syntax error: unterminated flow list",
         "name: x\nmemory: [ {name: a, base: 0, size: 1G}\ndevices: #<\n",
         {"yaml syntax error"}},
        {"syntax error: bad indentation",
         "name: x\nmemory:\n  - name: dram\n    base: 0\n   size: 1G #<\n",
         {"yaml syntax error"}},
        {"syntax error: undefined alias", "name: x\nmemory: *nope #<\n", {"yaml syntax error", "anchor"}},
        {"syntax error: tab indentation", "name: x\n\tmemory: [] #<\n", {"yaml syntax error", "tab"}},
        {"syntax error: stray flow end", "name: x\nmemory: [a]] #<\n", {"yaml syntax error"}},
    };
}

// One test per bad input, named after it ("BadInput/UnknownDeviceKey").
class BadInputTest : public testing::TestWithParam<BadInput> {};

TEST_P(BadInputTest, IsEinvalNamingFileLineAndProblem) {
    const BadInput& bad = GetParam();
    SCOPED_TRACE(bad.text);
    int line = markedLine(bad.text);
    ASSERT_GT(line, 0) << "test case has no #< marker";
    Result<Platform> p = parsePlatformYaml(bad.text, "board.yaml");
    ASSERT_FALSE(p) << "accepted";
    const Error& e = p.error();
    EXPECT_EQ(e.code(), EINVAL) << e.toString();
    std::string prefix = "board.yaml:" + std::to_string(line) + ": ";
    EXPECT_EQ(e.message().rfind(prefix, 0), 0u) << "expected prefix '" << prefix << "' in: " << e.message();
    for (const std::string& word : bad.mentions)
        EXPECT_NE(e.message().find(word), std::string::npos) << "'" << word << "' missing from: " << e.message();
}

std::string testName(const testing::TestParamInfo<BadInput>& info) {
    std::string name;
    bool upper = true;
    for (char c : std::string(info.param.what)) {
        if (std::isalnum(static_cast<unsigned char>(c))) {
            name += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
            upper = false;
        } else {
            upper = true;
        }
    }
    return name;
}

INSTANTIATE_TEST_SUITE_P(ParsePlatformYaml, BadInputTest, testing::ValuesIn(badInputs()), testName);

TEST(ParsePlatformYaml, SurvivesDeeplyNestedInput) {
    std::string text = "name: x\nmemory: " + std::string(100000, '[') + "\n";
    Result<Platform> p = parsePlatformYaml(text, "deep.yaml");
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code(), EINVAL);
    EXPECT_EQ(p.error().message().rfind("deep.yaml:", 0), 0u) << p.error().message();
}

TEST(ParsePlatformYaml, SurvivesBinaryGarbage) {
    std::string text;
    for (int i = 0; i < 4096; ++i)
        text += static_cast<char>((i * 131 + 7) % 256);
    Result<Platform> p = parsePlatformYaml(text, "garbage.bin");
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code(), EINVAL);
    EXPECT_EQ(p.error().message().rfind("garbage.bin", 0), 0u) << p.error().message();
}

/// A scratch directory removed at the end of the test.
class TempDir {
public:
    TempDir() {
        std::string templ = (std::filesystem::temp_directory_path() / "cenalloc-platform-XXXXXX").string();
        char* made = ::mkdtemp(templ.data());
        EXPECT_NE(made, nullptr);
        path_ = templ;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path write(const std::string& name, const std::string& text) const {
        std::filesystem::path file = path_ / name;
        std::ofstream(file) << text;
        return file;
    }

private:
    std::filesystem::path path_;
};

TEST(LoadPlatformFile, LoadsAFileAndRecordsItsPath) {
    TempDir dir;
    std::filesystem::path file = dir.write("board.yaml", kMinimal);
    Result<Platform> p = loadPlatformFile(file);
    ASSERT_TRUE(p) << p.error().toString();
    EXPECT_EQ(p->source, file.string());
    EXPECT_EQ(p->name, "minimal");
}

TEST(LoadPlatformFile, ErrorsNameThePathAndLine) {
    TempDir dir;
    std::filesystem::path file =
        dir.write("bad.yaml", std::string(kMinimal) + "devices:\n  - name: d\n    dma_msk: 3\n");
    Result<Platform> p = loadPlatformFile(file);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code(), EINVAL);
    EXPECT_EQ(p.error().message().rfind(file.string() + ":8: ", 0), 0u) << p.error().message();
    EXPECT_NE(p.error().message().find("dma_msk"), std::string::npos);
}

TEST(LoadPlatformFile, MissingFileIsEnoentNamingThePath) {
    TempDir dir;
    std::filesystem::path file = dir.path() / "no-such-board.yaml";
    Result<Platform> p = loadPlatformFile(file);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code(), ENOENT);
    EXPECT_NE(p.error().message().find(file.string()), std::string::npos) << p.error().message();
}

TEST(LoadPlatformFile, DirectoryIsEisdir) {
    TempDir dir;
    Result<Platform> p = loadPlatformFile(dir.path());
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code(), EISDIR);
    EXPECT_NE(p.error().message().find(dir.path().string()), std::string::npos) << p.error().message();
}

TEST(LoadPlatformFile, EmptyFileIsEinval) {
    TempDir dir;
    std::filesystem::path file = dir.write("empty.yaml", "");
    Result<Platform> p = loadPlatformFile(file);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code(), EINVAL);
    EXPECT_EQ(p.error().message().rfind(file.string() + ":1: ", 0), 0u) << p.error().message();
}

TEST(LoadPlatformFile, RefusesHugeFiles) {
    TempDir dir;
    std::filesystem::path file = dir.path() / "huge.yaml";
    std::ofstream(file).close();
    std::filesystem::resize_file(file, 64 * MiB); // sparse: costs no disk
    Result<Platform> p = loadPlatformFile(file);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code(), EFBIG);
    EXPECT_NE(p.error().message().find(file.string()), std::string::npos) << p.error().message();
}

} // namespace
} // namespace cenalloc
