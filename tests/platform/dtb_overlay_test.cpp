// SPDX-License-Identifier: MIT
// Tests of board overlays: parsing with line numbers, and what each key changes in a loaded device tree.
#include <cenalloc/platform_sources.h>

#include <cerrno>

#include <cenalloc/units.h>

#include "support/dtb.h"

namespace cenalloc {
namespace {

using dtbtest::Loaded;
using dtbtest::loadFixture;
using dtbtest::warned;

Overlay parse(std::string_view text) {
    Result<Overlay> o = parseOverlayYaml(text, "ov.yaml");
    EXPECT_TRUE(o) << (o ? "" : o.error().toString());
    return o ? std::move(*o) : Overlay{};
}

TEST(Overlay, ParsesEveryKey) {
    Overlay o = parse(R"(
name: board
description: a board
memory:
  - {base: 0x0, size: 1G}
  - {name: high, base: 4G, size: 0x40000000}
cma_size: 64M
kernel_heaps: [system-uncached, system-dma32]
devices:
  - compatible: vendor,display
    master: true
    max_segment_count: 1
    dma_mask_bits: 30
  - name: gpu
    description: the GPU
    coherent_dma_mask: 0xffffffff
    max_segment_size: 1M
    segment_boundary_mask: 0xffffffff
    alignment: 64K
    contiguous: yes
    coherent: false
    access_bits: 0x3
)");
    EXPECT_EQ(o.source, "ov.yaml");
    EXPECT_EQ(o.name, "board");
    EXPECT_EQ(o.description, "a board");
    ASSERT_EQ(o.memory.size(), 2u);
    EXPECT_EQ(o.memory[0].name, "ram-0");
    EXPECT_EQ(o.memory[0].size, GiB);
    EXPECT_EQ(o.memory[1].name, "high");
    EXPECT_EQ(o.memory[1].base, 4 * GiB);
    EXPECT_EQ(o.cmaSize, 64 * MiB);
    EXPECT_EQ(o.kernelHeaps, (std::vector<std::string>{"system-uncached", "system-dma32"}));
    ASSERT_EQ(o.devices.size(), 2u);
    const OverlayDevice& display = o.devices[0];
    EXPECT_EQ(display.compatible, "vendor,display");
    EXPECT_EQ(display.master, true);
    EXPECT_EQ(display.maxSegmentCount, 1u);
    EXPECT_EQ(display.dmaMask, 0x3fffffffu);
    const OverlayDevice& gpu = o.devices[1];
    EXPECT_EQ(gpu.name, "gpu");
    EXPECT_EQ(gpu.description, "the GPU");
    EXPECT_EQ(gpu.coherentDmaMask, 0xffffffffu);
    EXPECT_FALSE(gpu.dmaMask.has_value());
    EXPECT_EQ(gpu.maxSegmentSize, MiB);
    EXPECT_EQ(gpu.segmentBoundaryMask, 0xffffffffu);
    EXPECT_EQ(gpu.alignment, 64 * KiB);
    EXPECT_EQ(gpu.contiguous, true);
    EXPECT_EQ(gpu.coherent, false);
    EXPECT_EQ(gpu.accessBits, 3u);
}

TEST(Overlay, AnEmptyOverlayChangesNothing) {
    Overlay o = parse("");
    EXPECT_TRUE(o.memory.empty());
    EXPECT_TRUE(o.devices.empty());
    EXPECT_FALSE(o.name || o.cmaSize);
}

TEST(Overlay, BadOverlaysAreEinvalWithTheLine) {
    struct Case {
        const char* text;
        const char* message;
    };
    const Case cases[] = {
        {"name: x\nbogus: 1\n", "ov.yaml:2: overlay: unknown key 'bogus'"},
        {"devices:\n  - dma_mask_bits: 32\n", "ov.yaml:2: devices[0]: give exactly one of 'name' and 'compatible'"},
        {"devices:\n  - {name: a, compatible: b}\n", "give exactly one of"},
        {"devices:\n  - name: a\n    master: true\n", "ov.yaml:3: device 'a': master: true needs a compatible"},
        {"devices:\n  - name: a\n    dma_mask: 0x1234\n", "ov.yaml:3: device 'a': dma_mask: 0x1234 is neither 2^n-1"},
        {"devices:\n  - name: a\n    dma_mask_bits: 65\n", "dma_mask_bits: 65 is not between 1 and 64"},
        {"devices:\n  - name: a\n    dma_mask_bits: 32\n    dma_mask: 0xff\n", "give either dma_mask or"},
        {"devices:\n  - name: a\n    max_segment_size: 512\n", "below the page size"},
        {"devices:\n  - name: a\n    alignment: 3000\n", "not a power of two"},
        {"devices:\n  - name: a\n    segment_boundary_mask: 0xff\n", "segment_boundary_mask must be"},
        {"devices:\n  - name: a\n    max_segment_count: 0x100000000\n", "max_segment_count"},
        {"devices:\n  - name: a\n    access_bits: 0\n", "access bits 0"},
        {"devices:\n  - name: a\n    contiguous: maybe\n", "'maybe' is not a boolean"},
        {"devices:\n  - name: a\n  - name: a\n", "ov.yaml:3: devices[1]: 'a' has an entry already"},
        {"memory:\n  - {base: 0x1001, size: 4K}\n", "ov.yaml:2: memory[0]: a bank must be non-empty, page-aligned"},
        {"memory:\n  - {size: 4K}\n", "missing required key 'base'"},
        {"memory:\n  - {base: 0, size: 8K}\n  - {base: 4K, size: 4K}\n", "overlaps bank"},
        {"cma_size: 0\n", "cma_size must be a non-zero number of pages"},
        {"memory: 5\n", "memory: expected a list"},
        {"name: [1\n", "yaml syntax error"},
        {"name: a\n---\nname: b\n", "one yaml document"},
        {"- 1\n", "overlay: expected a mapping"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.text);
        Result<Overlay> o = parseOverlayYaml(c.text, "ov.yaml");
        ASSERT_FALSE(o);
        EXPECT_EQ(o.error().code(), EINVAL);
        EXPECT_NE(o.error().message().find(c.message), std::string::npos) << o.error().message();
    }
}

TEST(Overlay, FileErrorsCarryTheirErrno) {
    Result<Overlay> missing = loadOverlayFile("/nonexistent/ov.yaml");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), ENOENT);
    Result<Overlay> dir = loadOverlayFile("/");
    ASSERT_FALSE(dir);
    EXPECT_EQ(dir.error().code(), EISDIR);
}

TEST(Overlay, ExampleOverlaysParse) {
    for (const char* name : {"rpi4-4g.yaml", "rk3399-rockpro64-4g.yaml", "sdm845-db845c.yaml", "imx8mq-evk-cma.yaml"}) {
        SCOPED_TRACE(name);
        Result<Overlay> o = loadOverlayFile(dtbtest::overlayPath(name));
        ASSERT_TRUE(o) << o.error().toString();
        EXPECT_TRUE(o->name.has_value());
    }
}

TEST(Overlay, MemoryGivesRamToATreeThatHasNone) {
    CENALLOC_REQUIRE_FIXTURE("no_memory");
    Overlay o = parse("memory:\n  - {name: dram, base: 0x80000000, size: 1G}\n");
    Loaded l = loadFixture("no_memory", &o);
    ASSERT_TRUE(l.platform) << l.platform.error().toString();
    ASSERT_EQ(l.platform->memory.size(), 1u);
    EXPECT_EQ(l.platform->memory[0].name, "dram");
    // The device tree's dynamic pool is placed in the overlay's RAM: at the
    // top of its alloc-ranges (2..4 GiB), which is the top of the bank.
    const ReservedRegion* cma = l.platform->findRegion("linux,cma");
    ASSERT_NE(cma, nullptr);
    EXPECT_EQ(cma->end(), 0xc0000000u);
    EXPECT_EQ(cma->size, 128 * MiB);
}

TEST(Overlay, MemoryReplacesTheTreesBanks) {
    CENALLOC_REQUIRE_FIXTURE("memory");
    Overlay o = parse("memory:\n  - {name: only, base: 0x40000000, size: 512M}\n");
    Loaded l = loadFixture("memory", &o);
    ASSERT_TRUE(l.platform);
    ASSERT_EQ(l.platform->memory.size(), 1u);
    // The /memreserve/ at the bottom is still cut out: the piece is renamed.
    EXPECT_EQ(l.platform->memory[0].name, "only-40010000");
    EXPECT_EQ(l.platform->memory[0].end(), 0x60000000u);
}

TEST(Overlay, CmaSizeAddsTheDefaultPoolBelowTheDmaZoneLimit) {
    CENALLOC_REQUIRE_FIXTURE("dma_ranges");
    Overlay o = parse("cma_size: 99M\n");
    Loaded l = loadFixture("dma_ranges", &o);
    ASSERT_TRUE(l.platform) << l.platform.error().toString();
    // dma_contiguous_reserve_area names the cma= area "reserved", and the
    // CMA heap takes that name.
    const ReservedRegion* cma = l.platform->findRegion("reserved");
    ASSERT_NE(cma, nullptr);
    EXPECT_TRUE(cma->isDefault);
    EXPECT_TRUE(cma->heap);
    EXPECT_EQ(cma->kind, RegionKind::Cma);
    // Rounded up to the 2 MiB CMA alignment; the lowest dma-ranges limit in
    // the tree is the inner bus's 512 MiB, so the DMA zone (and the pool)
    // lies below 512 MiB, at its top.
    EXPECT_EQ(cma->size, 100 * MiB);
    EXPECT_EQ(cma->end(), 512 * MiB);
    EXPECT_FALSE(warned(l.warnings, {"no CMA pool"}));
}

TEST(Overlay, CmaSizeReplacesTheTreesDefaultPoolLikeTheCmaParameter) {
    CENALLOC_REQUIRE_FIXTURE("board");
    Overlay o = parse("cma_size: 32M\n");
    Loaded l = loadFixture("board", &o);
    ASSERT_TRUE(l.platform) << l.platform.error().toString();
    ASSERT_EQ(l.platform->regions.size(), 1u);
    const ReservedRegion& cma = l.platform->regions[0];
    EXPECT_EQ(cma.name, "reserved");
    EXPECT_TRUE(cma.heap);
    EXPECT_EQ(cma.size, 32 * MiB);
    // The tree's 64 MiB pool stays reserved below it (the kernel keeps the
    // memory); the new one goes below the 1 GiB DMA zone, under that.
    EXPECT_EQ(cma.end(), 0x37400000u);
    EXPECT_TRUE(warned(l.warnings, {"/reserved-memory/linux,cma", "replaced by the overlay's cma_size"}));
}

TEST(Overlay, CompatibleEntriesActLikeTableRowsBeforeTheWindows) {
    CENALLOC_REQUIRE_FIXTURE("board");
    Overlay o = parse(R"(
devices:
  - compatible: brcm,bcm2711-genet-v5
    dma_mask_bits: 64
    max_segment_size: 1M
  - compatible: brcm,bcm2835-dma
    master: false
)");
    Loaded l = loadFixture("board", &o);
    ASSERT_TRUE(l.platform);
    const Device* eth = l.platform->findDevice("ethernet");
    ASSERT_NE(eth, nullptr);
    // 64 bits from the overlay; scb has no window, RAM ends below 4 GiB: the
    // mask covers what the device reaches, 64 bits.
    EXPECT_EQ(eth->constraints.dmaMask, kNoLimit);
    EXPECT_EQ(eth->constraints.maxSegmentSize, MiB);
    EXPECT_EQ(l.platform->findDevice("dma"), nullptr);
}

TEST(Overlay, CompatibleEntryStillNarrowedByTheBusWindow) {
    CENALLOC_REQUIRE_FIXTURE("board");
    Overlay o = parse("devices:\n  - compatible: brcm,bcm2711-hvs\n    dma_mask_bits: 64\n");
    Loaded l = loadFixture("board", &o);
    ASSERT_TRUE(l.platform);
    EXPECT_EQ(l.platform->findDevice("hvs")->constraints.dmaMask, 0x3fffffffu);
}

TEST(Overlay, MasterTrueMakesANodeAMaster) {
    CENALLOC_REQUIRE_FIXTURE("dma_ranges");
    Overlay o = parse("devices:\n  - compatible: vendor,timer\n    master: true\n");
    Loaded l = loadFixture("dma_ranges", &o);
    ASSERT_TRUE(l.platform);
    EXPECT_NE(l.platform->findDevice("timer"), nullptr);
}

TEST(Overlay, NameEntriesAreFinal) {
    CENALLOC_REQUIRE_FIXTURE("board");
    Overlay o = parse(R"(
name: my-board
description: mine
devices:
  - name: hvs
    dma_mask_bits: 32
    description: scanout
    coherent: true
  - name: gpu
    master: false
  - name: nosuch
    contiguous: true
)");
    Loaded l = loadFixture("board", &o);
    ASSERT_TRUE(l.platform);
    EXPECT_EQ(l.platform->name, "my-board");
    EXPECT_EQ(l.platform->description, "mine");
    const Device* hvs = l.platform->findDevice("hvs");
    ASSERT_NE(hvs, nullptr);
    EXPECT_EQ(hvs->constraints.dmaMask, 0xffffffffu) << "the user's word wins over the window";
    EXPECT_EQ(hvs->description, "scanout");
    EXPECT_TRUE(hvs->constraints.coherent);
    EXPECT_EQ(l.platform->findDevice("gpu"), nullptr);
    EXPECT_TRUE(warned(l.warnings, {"'nosuch' matches no device"}));
}

// The board kernel's vendor heaps exist only where the overlay says so:
// a device-tree board without kernel_heaps has none (the lead's heaps
// layer then offers no system-uncached or *-dma32 heap on it).
TEST(Overlay, KernelHeapsListTheBoardKernelsVendorHeaps) {
    CENALLOC_REQUIRE_FIXTURE("board");
    Loaded bare = loadFixture("board");
    ASSERT_TRUE(bare.platform);
    ASSERT_TRUE(bare.platform->vendorHeaps.has_value()) << "a device tree board lists its vendor heaps";
    EXPECT_TRUE(bare.platform->vendorHeaps->empty());
    Overlay o = parse("kernel_heaps: [system-uncached]\n");
    Loaded l = loadFixture("board", &o);
    ASSERT_TRUE(l.platform) << l.platform.error().toString();
    EXPECT_EQ(l.platform->vendorHeaps, (std::vector<std::string>{"system-uncached"}));
    for (const char* bad : {"kernel_heaps: [linux,cma]\n", "kernel_heaps: [system-uncached, system-uncached]\n",
                            "kernel_heaps: system-uncached\n"}) {
        SCOPED_TRACE(bad);
        Result<Overlay> r = parseOverlayYaml(bad, "ov.yaml");
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code(), EINVAL);
        EXPECT_NE(r.error().message().find("kernel_heaps"), std::string::npos) << r.error().message();
    }
}

TEST(Overlay, RamNoWindowReachesSkipsOnlyWhatCannotReachIt) {
    CENALLOC_REQUIRE_FIXTURE("board");
    Overlay o = parse("memory:\n  - {base: 0x100000000, size: 1G}\n");
    Loaded l = loadFixture("board", &o);
    // RAM above 4 GiB only: the 30-bit devices reach none of it and are
    // skipped, the CMA pool cannot be placed in the first GiB; the rest loads.
    ASSERT_TRUE(l.platform) << l.platform.error().toString();
    EXPECT_EQ(l.platform->findDevice("hvs"), nullptr);
    EXPECT_TRUE(warned(l.warnings, {"/soc/hvs@7e400000", "skipped"}));
    EXPECT_TRUE(warned(l.warnings, {"linux,cma", "no free RAM"}));
}

} // namespace
} // namespace cenalloc
