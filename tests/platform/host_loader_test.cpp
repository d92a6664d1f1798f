// SPDX-License-Identifier: MIT
// Tests of the host loader against fake /sys, /proc and /dev trees, and once against this machine.
#include <cenalloc/platform_sources.h>

#include <cerrno>
#include <cstddef>
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

    /// A device of bus @p bus at /sys/devices/platform/@p dir for device tree node @p node, with @p driver bound
    /// (none when empty) and in IOMMU group @p group (none when empty).
    void device(const std::string& bus, const std::string& dir, const std::string& node, const std::string& driver,
                const std::string& group = "", const std::string& groupType = "DMA") {
        fs::path d = paths.sys / "devices/platform" / dir;
        fs::create_directories(d);
        link(paths.sys / "bus" / bus / "devices" / dir, "../../../devices/platform/" + dir);
        link(d / "of_node", "../../../firmware/devicetree/base" + node);
        if (!driver.empty())
            link(d / "driver", "../../../bus/" + bus + "/drivers/" + driver);
        if (!group.empty()) {
            fs::path g = paths.sys / "kernel/iommu_groups" / group;
            if (!fs::exists(g / "type"))
                write(g / "type", groupType + "\n");
            link(g / "devices" / dir, "../../../../devices/platform/" + dir);
            link(d / "iommu_group", "../../../kernel/iommu_groups/" + group);
        }
    }
    /// A CMA area of debugfs.
    void cmaArea(const std::string& name, uint64_t base, uint64_t size, uint64_t used) {
        uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
        fs::path d = paths.sys / "kernel/debug/cma" / name;
        write(d / "base_pfn", fmt::format("{}\n", base / page));
        write(d / "count", fmt::format("{}\n", size / page));
        write(d / "used", fmt::format("{}\n", used / page));
        write(d / "order_per_bit", "0\n");
    }
    void writeBytes(const fs::path& path, const std::vector<std::byte>& bytes) {
        fs::create_directories(path.parent_path());
        std::ofstream(path, std::ios::binary)
            .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
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

// A board in the shape of the issue's qemu guest: 1 GiB of RAM at 1 GiB, a
// dynamically placed default CMA area, a display without an IOMMU, a GPU and
// a USB controller behind an SMMU with their own stream IDs, a codec behind
// a Rockchip IOMMU and a 2D engine the kernel made no device for.
std::vector<std::byte> liveBoard(bool memoryNode = true) {
    dtbtest::FdtWriter w;
    w.begin("").cells("#address-cells", {2}).cells("#size-cells", {2}).string("compatible", "test,board");
    w.string("model", "Test Board");
    if (memoryNode)
        w.begin("memory@40000000").string("device_type", "memory").cells("reg", {0, 0x40000000, 0, 0x40000000}).end();
    w.begin("reserved-memory").cells("#address-cells", {2}).cells("#size-cells", {2}).flag("ranges");
    w.begin("linux,cma").string("compatible", "shared-dma-pool").flag("reusable").cells("size", {0, 0x4000000});
    w.cells("alloc-ranges", {0, 0x40000000, 0, 0x40000000}).flag("linux,cma-default").end();
    w.end();
    w.begin("iommu@fd800000").string("compatible", "arm,smmu-v3").cells("reg", {0, 0xfd800000, 0, 0x20000});
    w.cells("#iommu-cells", {1}).cells("phandle", {1}).end();
    w.begin("iommu@ff650800").string("compatible", "rockchip,iommu").cells("reg", {0, 0xff650800, 0, 0x40});
    w.cells("#iommu-cells", {0}).cells("phandle", {2}).end();
    w.begin("display@ff900000").string("compatible", "rockchip,rk3399-vop-big");
    w.cells("reg", {0, 0xff900000, 0, 0x2000}).end();
    w.begin("gpu@ff9a0000").string("compatible", "rockchip,rk3399-mali").cells("reg", {0, 0xff9a0000, 0, 0x10000});
    w.cells("iommus", {1, 0x10}).end();
    w.begin("usb@fe800000").string("compatible", "snps,dwc3").cells("reg", {0, 0xfe800000, 0, 0x100000});
    w.cells("iommus", {1, 0x20}).end();
    w.begin("codec@ff650000").string("compatible", "rockchip,rk3399-vpu").cells("reg", {0, 0xff650000, 0, 0x800});
    w.cells("iommus", {2}).end();
    w.begin("rga@ff680000").string("compatible", "rockchip,rk3399-rga").cells("reg", {0, 0xff680000, 0, 0x10000});
    w.end();
    w.end();
    return w.finish();
}

// The running system of that board: its blob in /sys/firmware/fdt, RAM and
// reservations in /proc/iomem, CMA in meminfo and debugfs, devices in sysfs.
void liveSystem(FakeHost& h, bool debugfs = true) {
    h.writeBytes(h.paths.sys / "firmware/fdt", liveBoard());
    h.write(h.paths.proc / "iomem", "09000000-09000fff : pl011@9000000\n"
                                    "40000000-7fffffff : System RAM\n"
                                    "  40210000-41a1ffff : Kernel code\n"
                                    "  48000000-48ffffff : reserved\n"
                                    "  50000000-53ffffff : reserved\n");
    h.write(h.paths.proc / "meminfo", "MemTotal: 1000000 kB\nCmaTotal: 65536 kB\nCmaFree: 63488 kB\n");
    h.write(h.paths.proc / "cmdline", "console=ttyAMA0 rdinit=/init\n");
    if (debugfs)
        h.cmaArea("linux,cma", 0x50000000, 64 * MiB, 2 * MiB);
    h.device("platform", "ff900000.display", "/display@ff900000", "rockchip-vop");
    h.device("platform", "ff9a0000.gpu", "/gpu@ff9a0000", "panfrost", "0");
    h.device("platform", "fe800000.usb", "/usb@fe800000", "dwc3", "1");
    h.device("platform", "ff650000.codec", "/codec@ff650000", "");
}

TEST(HostLoader, ADeviceTreeHostReadsTheBlobAndWhatOnlyTheKernelKnows) {
    FakeHost h;
    liveSystem(h);
    HostReport report;
    Result<Platform> p = loadHostPlatform(&report, nullptr, h.paths);
    ASSERT_TRUE(p) << p.error().toString();
    EXPECT_TRUE(contains(report.learned, (h.paths.sys / "firmware/fdt").string() + " (the flattened blob"));
    // RAM: the memory node agrees with /proc/iomem.
    ASSERT_EQ(p->memory.size(), 1u);
    EXPECT_EQ(p->memory[0].base, 0x40000000u);
    EXPECT_EQ(p->memory[0].size, 1 * GiB);
    EXPECT_TRUE(contains(report.learned, "matches what the kernel uses"));
    // CMA: the tree gives a size and a range; debugfs says where it is (the
    // loader alone would have put it top-down, at 0x7c000000).
    const ReservedRegion* cma = p->findRegion("linux,cma");
    ASSERT_NE(cma, nullptr);
    EXPECT_EQ(cma->base, 0x50000000u);
    EXPECT_EQ(cma->size, 64 * MiB);
    EXPECT_TRUE(cma->isDefault && cma->heap);
    EXPECT_TRUE(contains(report.learned, "where the kernel put it (debugfs linux,cma)"));
    EXPECT_TRUE(contains(report.learned, "2 MiB in use"));
    EXPECT_FALSE(contains(report.warnings, "not reserved memory")) << "the kernel reserved 0x50000000..";
    // Devices: sysfs path and driver of each.
    const Device* display = p->findDevice("display");
    ASSERT_NE(display, nullptr);
    EXPECT_EQ(display->sysfsPath, (h.paths.sys / "devices/platform/ff900000.display").string());
    EXPECT_EQ(display->driver, "rockchip-vop");
    EXPECT_FALSE(display->iommu);
    const Device* codec = p->findDevice("codec");
    ASSERT_NE(codec, nullptr);
    EXPECT_TRUE(codec->driver.empty());
    EXPECT_TRUE(contains(report.learned, "4 of the device tree's 5 DMA masters have a device"));
    EXPECT_TRUE(contains(report.learned, "3 with a driver bound"));
    EXPECT_TRUE(contains(report.notLearned, "no device has the node of rga"));
    EXPECT_TRUE(p->findDevice("rga")->sysfsPath.empty());
    // IOMMU groups: the kernel's agree with the stream IDs.
    const Device* gpu = p->findDevice("gpu");
    const Device* usb = p->findDevice("usb");
    ASSERT_TRUE(gpu && usb && gpu->iommu && usb->iommu);
    EXPECT_NE(iommuDomainName(*gpu), iommuDomainName(*usb));
    EXPECT_EQ(gpu->iommuGroup, "sid-0x10") << "the device tree's name stays when the kernel agrees";
    EXPECT_TRUE(contains(report.learned, "grouped as the device tree's IOMMU specifiers say"));
    EXPECT_TRUE(contains(report.notLearned, "codec is in no IOMMU group yet"));
    EXPECT_TRUE(codec->iommu) << "without a driver, the device tree's word stands";
    EXPECT_TRUE(validatePlatform(*p));
}

TEST(HostLoader, TheKernelsIommuGroupsWinOverTheDeviceTrees) {
    FakeHost h;
    liveSystem(h);
    // The kernel put the GPU and the USB controller in one group (say, an
    // SMMU driver that groups by something the tree does not show).
    fs::remove_all(h.paths.sys / "kernel/iommu_groups/1");
    h.link(h.paths.sys / "kernel/iommu_groups/0/devices/fe800000.usb", "../../../../devices/platform/fe800000.usb");
    // And the codec has a driver but no group: the kernel does direct DMA.
    h.link(h.paths.sys / "devices/platform/ff650000.codec/driver", "../../../bus/platform/drivers/hantro-vpu");
    HostReport report;
    Result<Platform> p = loadHostPlatform(&report, nullptr, h.paths);
    ASSERT_TRUE(p) << p.error().toString();
    const Device* gpu = p->findDevice("gpu");
    const Device* usb = p->findDevice("usb");
    ASSERT_TRUE(gpu && usb);
    EXPECT_EQ(iommuDomainName(*gpu), iommuDomainName(*usb)) << "one group, one I/O address space";
    EXPECT_EQ(gpu->iommuGroup, "group-0");
    EXPECT_TRUE(contains(report.warnings, "the kernel's groups are modelled"));
    EXPECT_FALSE(p->findDevice("codec")->iommu);
    EXPECT_TRUE(contains(report.warnings, "codec is bound to hantro-vpu but in no IOMMU group"));
    EXPECT_TRUE(validatePlatform(*p));
}

TEST(HostLoader, UnreadableBlobFallsBackToTheDirectoryTree) {
    std::vector<std::byte> blob = liveBoard();
    FakeHost h;
    liveSystem(h, false);
    // /sys/firmware/fdt is root's only; here it cannot be read by anyone
    // (a directory in its place), so /proc/device-tree is read.
    fs::remove(h.paths.sys / "firmware/fdt");
    fs::create_directories(h.paths.sys / "firmware/fdt");
    writeDirectory(blob.data(), 0, h.paths.proc / "device-tree");
    HostReport report;
    Result<Platform> p = loadHostPlatform(&report, nullptr, h.paths);
    ASSERT_TRUE(p) << p.error().toString();
    EXPECT_TRUE(contains(report.learned, (h.paths.proc / "device-tree").string() + " (the kernel's unflattened tree; "
                                                                                   "not from"));
    // Without debugfs the CMA area stays where the loader placed it, and
    // the report says it is an estimate; meminfo's total agrees.
    const ReservedRegion* cma = p->findRegion("linux,cma");
    ASSERT_NE(cma, nullptr);
    EXPECT_EQ(cma->base, 0x7c000000u);
    EXPECT_TRUE(contains(report.notLearned, "the loader's estimate"));
    EXPECT_TRUE(contains(report.notLearned, "debugfs is not mounted"));
    EXPECT_TRUE(contains(report.learned, "CmaTotal of /proc/meminfo (64 MiB) equals"));
    // ... and /proc/iomem shows no reservation there: said, not hidden.
    EXPECT_TRUE(contains(report.warnings, "linux,cma at 0x7c000000..0x80000000 is not reserved memory"));
}

TEST(HostLoader, TheKernelsRamWinsOverTheMemoryNodes) {
    FakeHost h;
    liveSystem(h);
    // The kernel uses 512 MiB (mem=, or a bootloader that patched the tree
    // it passed but not this one).
    h.write(h.paths.proc / "iomem", "40000000-5fffffff : System RAM\n  50000000-53ffffff : reserved\n");
    HostReport report;
    Result<Platform> p = loadHostPlatform(&report, nullptr, h.paths);
    ASSERT_TRUE(p) << p.error().toString();
    EXPECT_EQ(p->totalMemory(), 512 * MiB);
    EXPECT_TRUE(contains(report.warnings, "differ from the RAM the kernel uses"));
    EXPECT_EQ(p->findRegion("linux,cma")->base, 0x50000000u);

    // A tree without a memory node takes the kernel's RAM, saying so.
    FakeHost bare;
    liveSystem(bare);
    bare.writeBytes(bare.paths.sys / "firmware/fdt", liveBoard(false));
    HostReport bareReport;
    Result<Platform> q = loadHostPlatform(&bareReport, nullptr, bare.paths);
    ASSERT_TRUE(q) << q.error().toString();
    EXPECT_EQ(q->totalMemory(), 1 * GiB);
    EXPECT_TRUE(contains(bareReport.learned, "the device tree has no memory node with a size"));
}

TEST(HostLoader, ACmaParameterMakesTheDefaultAreaReserved) {
    FakeHost h;
    liveSystem(h, false);
    h.write(h.paths.proc / "cmdline", "console=ttyAMA0 cma=32M@0x60000000\n");
    h.write(h.paths.proc / "iomem", "40000000-7fffffff : System RAM\n  60000000-61ffffff : reserved\n");
    h.write(h.paths.proc / "meminfo", "CmaTotal: 32768 kB\nCmaFree: 32768 kB\n");
    HostReport report;
    Result<Platform> p = loadHostPlatform(&report, nullptr, h.paths);
    ASSERT_TRUE(p) << p.error().toString();
    // Linux's name for a cma= area, fixed at its base; the node is bypassed.
    const ReservedRegion* reserved = p->findRegion("reserved");
    ASSERT_NE(reserved, nullptr);
    EXPECT_TRUE(reserved->isDefault && reserved->heap);
    EXPECT_EQ(reserved->base, 0x60000000u);
    EXPECT_EQ(reserved->size, 32 * MiB);
    EXPECT_EQ(p->findRegion("linux,cma"), nullptr);
    EXPECT_TRUE(contains(report.learned, "cma=32 MiB on the kernel command line"));
    EXPECT_TRUE(contains(report.learned, "fixed there by cma="));
    EXPECT_FALSE(contains(report.warnings, "not reserved memory")) << "the kernel reserved it there";

    // With debugfs, its placement comes from there.
    h.cmaArea("reserved", 0x70000000, 32 * MiB, 0);
    h.write(h.paths.proc / "cmdline", "cma=32M\n");
    h.write(h.paths.proc / "iomem", "40000000-7fffffff : System RAM\n  70000000-71ffffff : reserved\n");
    HostReport second;
    Result<Platform> q = loadHostPlatform(&second, nullptr, h.paths);
    ASSERT_TRUE(q) << q.error().toString();
    EXPECT_EQ(q->findRegion("reserved")->base, 0x70000000u);
    EXPECT_TRUE(contains(second.learned, "where the kernel put it (debugfs reserved)"));
}

TEST(HostLoader, ADefaultAreaWithoutANodeComesFromDebugfs) {
    // CONFIG_CMA_SIZE_MBYTES: the kernel's default area "reserved", which no
    // node describes.
    FakeHost h;
    liveSystem(h);
    dtbtest::FdtWriter w;
    w.begin("").cells("#address-cells", {2}).cells("#size-cells", {2}).string("compatible", "test,bare");
    w.begin("memory@40000000").string("device_type", "memory").cells("reg", {0, 0x40000000, 0, 0x40000000}).end();
    w.begin("display@ff900000").string("compatible", "rockchip,rk3399-vop-big");
    w.cells("reg", {0, 0xff900000, 0, 0x2000}).end();
    w.end();
    h.writeBytes(h.paths.sys / "firmware/fdt", w.finish());
    fs::remove_all(h.paths.sys / "kernel/debug/cma/linux,cma");
    h.cmaArea("reserved", 0x50000000, 64 * MiB, 0);
    HostReport report;
    Result<Platform> p = loadHostPlatform(&report, nullptr, h.paths);
    ASSERT_TRUE(p) << p.error().toString();
    const ReservedRegion* r = p->findRegion("reserved");
    ASSERT_NE(r, nullptr);
    EXPECT_TRUE(r->isDefault && r->heap);
    EXPECT_EQ(r->base, 0x50000000u);
    EXPECT_TRUE(contains(report.learned, "from the kernel's configuration, not the device tree"));
    EXPECT_FALSE(contains(report.warnings, "no CMA pool in the device tree")) << "answered by debugfs";
    EXPECT_TRUE(validatePlatform(*p));
}

TEST(HostLoader, ANonDeviceTreeHostModelsTheCmaAreaDebugfsShows) {
    FakeHost h;
    h.write(h.paths.proc / "iomem", "00100000-bfffffff : System RAM\n");
    h.write(h.paths.proc / "meminfo", "CmaTotal: 262144 kB\nCmaFree: 262144 kB\n");
    {
        // Without debugfs: the honest line.
        HostReport report;
        Result<Platform> p = loadHostPlatform(&report, nullptr, h.paths);
        ASSERT_TRUE(p) << p.error().toString();
        EXPECT_TRUE(p->regions.empty());
        EXPECT_TRUE(contains(report.notLearned, "256 MiB of CMA (CmaTotal), but not where"));
    }
    h.cmaArea("reserved", 0xb0000000, 256 * MiB, 4 * MiB);
    HostReport report;
    Result<Platform> p = loadHostPlatform(&report, nullptr, h.paths);
    ASSERT_TRUE(p) << p.error().toString();
    const ReservedRegion* r = p->findRegion("reserved");
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->kind, RegionKind::Cma);
    EXPECT_TRUE(r->isDefault && r->heap);
    EXPECT_EQ(r->base, 0xb0000000u);
    EXPECT_EQ(r->size, 256 * MiB);
    EXPECT_TRUE(contains(report.learned, "from debugfs reserved"));
    EXPECT_TRUE(validatePlatform(*p));
    // An area outside the RAM is not modelled, and that is said.
    h.write(h.paths.proc / "iomem", "00100000-7fffffff : System RAM\n");
    HostReport outside;
    Result<Platform> q = loadHostPlatform(&outside, nullptr, h.paths);
    ASSERT_TRUE(q) << q.error().toString();
    EXPECT_TRUE(q->regions.empty());
    EXPECT_TRUE(contains(outside.notLearned, "does not lie inside one RAM bank"));
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
