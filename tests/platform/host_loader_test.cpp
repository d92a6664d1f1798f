// SPDX-License-Identifier: MIT
// Tests of the host loader against fake /sys, /proc and /dev trees, and once against this machine.
#include <cenalloc/platform_sources.h>

#include <cerrno>
#include <fstream>
#include <unistd.h>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "platform/dt_directory.h"
#include "support/dtb.h"

namespace cenalloc {
namespace {

namespace fs = std::filesystem;

/// A scratch directory holding fake sys/, proc/ and dev/ trees.
class FakeHost {
public:
    FakeHost() {
        std::string pattern = ::testing::TempDir() + "/cenalloc-host-XXXXXX";
        std::vector<char> buffer(pattern.begin(), pattern.end());
        buffer.push_back('\0');
        root_ = ::mkdtemp(buffer.data());
        paths.sys = root_ / "sys";
        paths.proc = root_ / "proc";
        paths.dev = root_ / "dev";
        fs::create_directories(paths.sys);
        fs::create_directories(paths.proc);
        fs::create_directories(paths.dev);
    }
    ~FakeHost() {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }

    void write(const fs::path& path, std::string_view text) {
        fs::create_directories(path.parent_path());
        std::ofstream(path) << text;
    }
    void link(const fs::path& path, const std::string& target) {
        fs::create_directories(path.parent_path());
        fs::create_symlink(target, path);
    }
    void pci(const std::string& bdf, const std::string& cls, const std::string& maskBits, const std::string& group = "",
             const std::string& groupType = "") {
        fs::path d = paths.sys / "bus/pci/devices" / bdf;
        write(d / "class", cls + "\n");
        write(d / "vendor", "0x1234\n");
        write(d / "device", "0x5678\n");
        if (!maskBits.empty()) {
            write(d / "dma_mask_bits", maskBits + "\n");
            write(d / "consistent_dma_mask_bits", maskBits + "\n");
        }
        if (!group.empty()) {
            link(d / "iommu_group", "../../../kernel/iommu_groups/" + group);
            if (!groupType.empty())
                write(paths.sys / "kernel/iommu_groups" / group / "type", groupType + "\n");
            else
                fs::create_directories(paths.sys / "kernel/iommu_groups" / group);
        }
    }

    HostPaths paths;

private:
    fs::path root_;
};

bool contains(const std::vector<std::string>& lines, std::string_view part) {
    return dtbtest::warned(lines, {part});
}

TEST(HostLoader, ReadsIomemPciIommuGroupsAndHeaps) {
    FakeHost h;
    h.write(h.paths.proc / "iomem", "00000000-00000fff : Reserved\n"
                                    "00001000-0009fbff : System RAM\n"
                                    "000a0000-000fffff : Reserved\n"
                                    "00100000-bfffffff : System RAM\n"
                                    "  01000000-01ffffff : Kernel code\n"
                                    "100000000-13fffffff : System RAM\n");
    h.pci("0000:00:00.0", "0x060000", "32");
    h.pci("0000:00:02.0", "0x030000", "39", "3", "DMA-FQ");
    h.pci("0000:00:03.0", "0x020000", "64", "3", "DMA-FQ");
    h.pci("0000:01:00.0", "0x010802", "64", "7", "identity");
    h.pci("0000:02:00.0", "0x0c0330", "64", "8", "blocked");
    h.pci("0000:03:00.0", "0x040300", "");
    h.write(h.paths.dev / "dma_heap/system", "");
    h.write(h.paths.dev / "dma_heap/linux,cma", "");

    HostReport report;
    Result<Platform> p = loadHostPlatform(&report, nullptr, h.paths);
    ASSERT_TRUE(p) << p.error().toString();
    // Memory: three System RAM lines, trimmed to pages; nested lines ignored.
    ASSERT_EQ(p->memory.size(), 3u);
    EXPECT_EQ(p->memory[0].base, 0x1000u);
    EXPECT_EQ(p->memory[0].end(), 0x9f000u);
    EXPECT_EQ(p->memory[1].base, 0x100000u);
    EXPECT_EQ(p->memory[2].end(), 0x140000000u);
    EXPECT_TRUE(contains(report.learned, "from the \"System RAM\" lines of"));

    // PCI: the bridge is left out, the function without masks too (and
    // reported), the VFIO ("blocked") one too.
    std::vector<std::string> names;
    for (const Device& d : p->devices)
        names.push_back(d.name);
    EXPECT_EQ(names, (std::vector<std::string>{"0000:00:02.0-display", "0000:00:03.0-ethernet", "0000:01:00.0-nvme"}));
    const Device* gpu = p->findDevice("0000:00:02.0-display");
    ASSERT_NE(gpu, nullptr);
    EXPECT_EQ(gpu->constraints.dmaMask, (uint64_t{1} << 39) - 1);
    EXPECT_EQ(gpu->constraints.maxSegmentSize, kDefaultMaxSegmentSize);
    EXPECT_NE(gpu->description.find("1234:5678"), std::string::npos);
    EXPECT_NE(gpu->description.find("no driver bound"), std::string::npos);
    // One translating group, shared by its two functions.
    ASSERT_EQ(p->iommus.size(), 1u);
    EXPECT_EQ(p->iommus[0].name, "iommu-group-3");
    EXPECT_EQ(gpu->iommu, "iommu-group-3");
    EXPECT_EQ(p->findDevice("0000:00:03.0-ethernet")->iommu, "iommu-group-3");
    EXPECT_FALSE(p->findDevice("0000:01:00.0-nvme")->iommu.has_value()) << "identity: DMA addresses are physical";
    EXPECT_TRUE(contains(report.notLearned, "0000:03:00.0: dma_mask_bits"));
    EXPECT_TRUE(contains(report.notLearned, "iommu group 8 is of type 'blocked'"));
    EXPECT_TRUE(contains(report.notLearned, "aperture is not exposed"));
    EXPECT_TRUE(contains(report.notLearned, "segment limits"));
    EXPECT_TRUE(contains(report.notLearned, "device tree"));
    EXPECT_TRUE(contains(report.learned, "1 of them translating"));
    EXPECT_EQ(report.dmaHeaps, (std::vector<std::string>{"linux,cma", "system"}));
    EXPECT_TRUE(validatePlatform(*p));
}

TEST(HostLoader, ReadsTheVtdApertureWhenPublished) {
    FakeHost h;
    h.write(h.paths.proc / "iomem", "00100000-7fffffff : System RAM\n");
    h.pci("0000:00:02.0", "0x030000", "39", "1", "DMA");
    // MGAW field (bits 21:16) = 38: a 39-bit guest address width.
    h.write(h.paths.sys / "bus/pci/devices/0000:00:02.0/iommu/intel-iommu/cap", "d2008c40660462\n");
    HostReport report;
    Result<Platform> p = loadHostPlatform(&report, nullptr, h.paths);
    ASSERT_TRUE(p) << p.error().toString();
    ASSERT_EQ(p->iommus.size(), 1u);
    EXPECT_EQ(p->iommus[0].apertureBase + p->iommus[0].apertureSize, uint64_t{1} << 39);
    EXPECT_TRUE(contains(report.learned, "aperture of 39 bits"));
}

TEST(HostLoader, HiddenIomemFallsBackToMemoryBlocks) {
    FakeHost h;
    h.write(h.paths.proc / "iomem", "00000000-00000000 : System RAM\n00000000-00000000 : System RAM\n");
    fs::path mem = h.paths.sys / "devices/system/memory";
    h.write(mem / "block_size_bytes", "8000000\n");
    for (int i : {0, 1, 2, 8}) {
        h.write(mem / ("memory" + std::to_string(i)) / "phys_index", fmt::format("{:08x}\n", i));
        h.write(mem / ("memory" + std::to_string(i)) / "state", i == 2 ? "offline\n" : "online\n");
    }
    HostReport report;
    Result<Platform> p = loadHostPlatform(&report, nullptr, h.paths);
    ASSERT_TRUE(p) << p.error().toString();
    // Blocks 0 and 1 are one bank; 2 is offline; 8 is a bank of its own.
    ASSERT_EQ(p->memory.size(), 2u);
    EXPECT_EQ(p->memory[0].base, 0u);
    EXPECT_EQ(p->memory[0].size, 256 * MiB);
    EXPECT_EQ(p->memory[1].base, 8 * 128 * MiB);
    EXPECT_TRUE(contains(report.notLearned, "every address as 0"));
    EXPECT_TRUE(contains(report.learned, "online memory blocks"));
}

TEST(HostLoader, NoMemoryAnywhereIsEnodataSayingWhy) {
    FakeHost h;
    HostReport report;
    Result<Platform> p = loadHostPlatform(&report, nullptr, h.paths);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code(), ENODATA);
    EXPECT_NE(p.error().message().find("iomem"), std::string::npos);
    EXPECT_TRUE(contains(report.notLearned, "cannot read"));
    EXPECT_TRUE(contains(report.notLearned, "dma-buf heaps"));
}

TEST(HostLoader, OverlayMemoryAndEntriesApply) {
    FakeHost h;
    h.pci("0000:00:03.0", "0x020000", "64");
    h.pci("0000:00:04.0", "0x020000", "64");
    Result<Overlay> o = parseOverlayYaml(R"(
name: lab-box
memory:
  - {base: 0x0, size: 1G}
devices:
  - name: 0000:00:03.0-ethernet
    max_segment_size: 0xffffffff
  - name: 0000:00:04.0-ethernet
    master: false
  - name: nosuch
    coherent: true
)",
                                         "o.yaml");
    ASSERT_TRUE(o) << o.error().toString();
    HostReport report;
    Result<Platform> p = loadHostPlatform(&report, &*o, h.paths);
    ASSERT_TRUE(p) << p.error().toString();
    EXPECT_EQ(p->name, "lab-box");
    ASSERT_EQ(p->memory.size(), 1u);
    ASSERT_EQ(p->devices.size(), 1u);
    EXPECT_EQ(p->devices[0].constraints.maxSegmentSize, 0xffffffffu);
    ASSERT_EQ(report.warnings.size(), 1u);
    EXPECT_NE(report.warnings[0].find("'nosuch' matches no device"), std::string::npos) << report.warnings[0];
}

// Writes @p blob as a directory tree, the form /sys/firmware/devicetree/base has.
void writeDirectory(const void* fdt, int node, const fs::path& dir) {
    fs::create_directories(dir);
    int property = 0;
    fdt_for_each_property_offset(property, fdt, node) {
        const char* name = nullptr;
        int length = 0;
        const void* value = fdt_getprop_by_offset(fdt, property, &name, &length);
        std::ofstream(dir / name, std::ios::binary).write(static_cast<const char*>(value), length);
    }
    // The kernel adds a "name" file to every node; it is no property.
    std::ofstream(dir / "name") << "ignored";
    int child = 0;
    fdt_for_each_subnode(child, fdt, node) {
        writeDirectory(fdt, child, dir / fdt_get_name(fdt, child, nullptr));
    }
}

TEST(HostLoader, ALiveDeviceTreeReadsLikeTheBlob) {
    CENALLOC_REQUIRE_FIXTURE("board");
    std::ifstream in(dtbtest::fixturePath("board"), std::ios::binary);
    std::vector<char> blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    FakeHost h;
    writeDirectory(blob.data(), 0, h.paths.sys / "firmware/devicetree/base");
    h.pci("0000:01:00.0", "0x0c0330", "64");

    HostReport report;
    Result<Platform> live = loadHostPlatform(&report, nullptr, h.paths);
    ASSERT_TRUE(live) << live.error().toString();
    Result<Platform> file = loadDeviceTreeFile(dtbtest::fixturePath("board"));
    ASSERT_TRUE(file);
    // The directory form has no /memreserve/ (the kernel does not show it):
    // the first bank starts at 0 instead of the page after it.
    ASSERT_EQ(live->memory.size(), file->memory.size());
    EXPECT_EQ(live->memory[0].base, 0u);
    EXPECT_EQ(live->memory[1].base, file->memory[1].base);
    EXPECT_EQ(live->regions.size(), file->regions.size());
    ASSERT_EQ(live->devices.size(), file->devices.size() + 1);
    for (const Device& d : file->devices) {
        SCOPED_TRACE(d.name);
        const Device* l = live->findDevice(d.name);
        ASSERT_NE(l, nullptr);
        EXPECT_EQ(l->constraints, d.constraints);
        EXPECT_EQ(l->iommu, d.iommu);
    }
    EXPECT_NE(live->findDevice("0000:01:00.0-usb"), nullptr) << "PCI functions join the device tree's devices";
    EXPECT_TRUE(contains(report.learned, "device tree: 2 memory banks"));
}

TEST(HostLoader, DirectoryReaderRefusesTooDeepTrees) {
    FakeHost h;
    fs::path dir = h.paths.sys / "firmware/devicetree/base";
    for (int i = 0; i < 70; ++i)
        dir /= "n";
    fs::create_directories(dir);
    Result<std::vector<std::byte>> blob = readDeviceTreeDirectory(h.paths.sys / "firmware/devicetree/base");
    ASSERT_FALSE(blob);
    EXPECT_EQ(blob.error().code(), EINVAL);
    // The host loader reports it and goes on without the device tree.
    h.write(h.paths.proc / "iomem", "00100000-7fffffff : System RAM\n");
    HostReport report;
    Result<Platform> p = loadHostPlatform(&report, nullptr, h.paths);
    ASSERT_TRUE(p) << p.error().toString();
    EXPECT_TRUE(contains(report.notLearned, "nested deeper"));
}

// This machine: whatever it is, --host succeeds and says what it learned and
// what it did not.
TEST(HostLoader, WorksOnThisMachine) {
    HostReport report;
    Result<Platform> p = loadHostPlatform(&report);
    if (!p && p.error().code() == ENODATA)
        GTEST_SKIP() << "this machine exposes no memory map to this user: " << p.error().message();
    ASSERT_TRUE(p) << p.error().toString();
    EXPECT_TRUE(validatePlatform(*p));
    EXPECT_EQ(p->source, "host");
    EXPECT_FALSE(p->memory.empty());
    EXPECT_FALSE(report.learned.empty());
    EXPECT_TRUE(contains(report.learned, "memory:"));
    EXPECT_TRUE(contains(report.learned, "pci:") || contains(report.notLearned, "pci:"));
    EXPECT_TRUE(contains(report.learned, "dma-buf heaps") || contains(report.notLearned, "dma-buf heaps"));
    EXPECT_TRUE(contains(report.learned, "device tree") || contains(report.notLearned, "device tree"));
    for (const std::string& line : report.learned)
        std::printf("learned: %s\n", line.c_str());
    for (const std::string& line : report.notLearned)
        std::printf("could not learn: %s\n", line.c_str());
}

} // namespace
} // namespace cenalloc
