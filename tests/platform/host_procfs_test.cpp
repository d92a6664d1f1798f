// SPDX-License-Identifier: MIT
// Tests of the host's /proc and debugfs readers: iomem, meminfo, cma= and the CMA areas of debugfs.
#include "platform/host_procfs.h"

#include <fstream>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "platform/host_cma.h"

namespace cenalloc::host {
namespace {

namespace fs = std::filesystem;

TEST(HostIomem, SeparatesSystemRamNoMapRamAndReservations) {
    // An arm64 board: no-map RAM at the top level as "reserved", the
    // kernel's memblock reservations nested in System RAM.
    Iomem m = parseIomem("09000000-09000fff : pl011@9000000\n"
                         "40000000-4fffffff : System RAM\n"
                         "  40210000-41a1ffff : Kernel code\n"
                         "  44000000-47ffffff : reserved\n"
                         "  48000000-48ffffff : reserved\n"
                         "50000000-50ffffff : reserved\n"
                         "51000000-7fffffff : System RAM\n"
                         "  7c000000-7fffffff : reserved\n"
                         "    7c000000-7c000fff : nested deeper\n"
                         "bad line\n"
                         "80000000-7fffffff : System RAM\n");
    EXPECT_EQ(m.systemRam, (std::vector<Range>{{0x40000000, 0x4fffffff}, {0x51000000, 0x7fffffff}}));
    EXPECT_EQ(m.noMap, (std::vector<Range>{{0x50000000, 0x50ffffff}}));
    // Touching reservations are one range.
    EXPECT_EQ(m.reserved, (std::vector<Range>{{0x44000000, 0x48ffffff}, {0x7c000000, 0x7fffffff}}));
    EXPECT_EQ(m.ram(), (std::vector<Range>{{0x40000000, 0x7fffffff}}));
    EXPECT_FALSE(m.hidden());
    std::vector<MemoryBank> banks = banksOf(m.ram());
    ASSERT_EQ(banks.size(), 1u);
    EXPECT_EQ(banks[0].base, 0x40000000u);
    EXPECT_EQ(banks[0].size, 1 * GiB);
}

TEST(HostIomem, ReadsRiscvNamesToo) {
    // riscv capitalises both (arch/riscv/kernel/setup.c).
    Iomem m = parseIomem("80000000-801fffff : Reserved\n"
                         "80200000-bfffffff : System RAM\n"
                         "  80200000-80ffffff : Reserved-memblock\n"
                         "  81000000-81ffffff : Reserved\n");
    EXPECT_EQ(m.noMap, (std::vector<Range>{{0x80000000, 0x801fffff}}));
    EXPECT_EQ(m.reserved, (std::vector<Range>{{0x80200000, 0x81ffffff}}));
    EXPECT_EQ(m.ram(), (std::vector<Range>{{0x80000000, 0xbfffffff}}));
}

TEST(HostIomem, AddressesHiddenFromUsersAreSaidSo) {
    Iomem m = parseIomem("00000000-00000000 : System RAM\n  00000000-00000000 : reserved\n"
                         "00000000-00000000 : reserved\n");
    EXPECT_TRUE(m.hidden());
    EXPECT_TRUE(m.systemRam.empty());
    EXPECT_TRUE(m.reserved.empty());
    EXPECT_FALSE(parseIomem("").hidden()) << "no line at all is nothing hidden";
}

TEST(HostMeminfo, ReadsCmaTotalAndFree) {
    std::optional<MeminfoCma> cma = parseMeminfoCma("MemTotal:        8000000 kB\n"
                                                    "CmaTotal:          65536 kB\n"
                                                    "CmaFree:           61440 kB\n");
    ASSERT_TRUE(cma);
    EXPECT_EQ(cma->total, 64 * MiB);
    EXPECT_EQ(cma->free, 60 * MiB);
    EXPECT_FALSE(parseMeminfoCma("MemTotal: 8000000 kB\n")) << "a kernel without CONFIG_CMA";
    EXPECT_FALSE(parseMeminfoCma("CmaTotal: lots kB\n"));
}

TEST(HostCmdline, ParsesCmaAsTheKernelDoes) {
    std::string_view text = "0x10M rest";
    EXPECT_EQ(memparse(text), 16 * MiB);
    EXPECT_EQ(text, " rest");
    text = "1G";
    EXPECT_EQ(memparse(text), 1 * GiB);
    text = "010";
    EXPECT_EQ(memparse(text), 8u) << "a leading 0 is octal, as simple_strtoull(.., 0)";
    text = "99999999E";
    EXPECT_FALSE(memparse(text)) << "overflow";

    EXPECT_FALSE(parseCmaParameter("console=ttyAMA0 root=/dev/vda"));
    std::optional<CmaParameter> p = parseCmaParameter("console=ttyAMA0 cma=64M quiet\n");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->size, 64 * MiB);
    EXPECT_FALSE(p->base);
    EXPECT_FALSE(p->fixed());
    p = parseCmaParameter("cma=32M cma=256M@0x50000000");
    ASSERT_TRUE(p) << "the last one wins";
    EXPECT_EQ(p->size, 256 * MiB);
    EXPECT_EQ(p->base, 0x50000000u);
    EXPECT_TRUE(p->fixed()) << "size@base without a limit is fixed there";
    p = parseCmaParameter("cma=128M@1G-3G");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->limit, 3 * GiB);
    EXPECT_FALSE(p->fixed());
    p = parseCmaParameter("cma=0");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->size, 0u);
    EXPECT_FALSE(parseCmaParameter("cma=lots")) << "a value that does not parse";
    EXPECT_FALSE(parseCmaParameter("nocma=64M"));
}

/// A scratch debugfs.
class FakeDebugfs {
public:
    FakeDebugfs() {
        std::string pattern = ::testing::TempDir() + "/cenalloc-debugfs-XXXXXX";
        std::vector<char> buffer(pattern.begin(), pattern.end());
        buffer.push_back('\0');
        root = ::mkdtemp(buffer.data());
    }
    ~FakeDebugfs() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    void write(const fs::path& path, std::string_view text) {
        fs::create_directories(path.parent_path());
        std::ofstream(path) << text;
    }
    void area(const std::string& name, uint64_t basePfn, uint64_t count, uint64_t used) {
        write(root / "cma" / name / "base_pfn", std::to_string(basePfn) + "\n");
        write(root / "cma" / name / "count", std::to_string(count) + "\n");
        write(root / "cma" / name / "used", std::to_string(used) + "\n");
        write(root / "cma" / name / "order_per_bit", "0\n");
    }
    fs::path root;
};

TEST(HostCmaDebugfs, ReadsEachAreaInBytes) {
    FakeDebugfs d;
    d.area("linux,cma", 0x50000, 0x4000, 0x100);
    d.area("reserved", 0x60000, 0x800, 0);
    // An area whose count is unreadable (a directory where the file should
    // be: unreadable whoever runs the test) is left out and said so.
    d.write(d.root / "cma" / "broken" / "base_pfn", "1\n");
    fs::create_directories(d.root / "cma" / "broken" / "count");
    // 6.15+: an area of two ranges is not one region.
    d.area("split", 0x70000, 0x10, 0);
    fs::create_directories(d.root / "cma" / "split" / "ranges" / "0");
    fs::create_directories(d.root / "cma" / "split" / "ranges" / "1");

    CmaDebugfs c = readCmaDebugfs(d.root, 4096);
    EXPECT_TRUE(c.problem.empty()) << c.problem;
    ASSERT_EQ(c.areas.size(), 2u);
    EXPECT_EQ(c.areas[0].name, "linux,cma");
    EXPECT_EQ(c.areas[0].base, 0x50000000u);
    EXPECT_EQ(c.areas[0].size, 64 * MiB);
    EXPECT_EQ(c.areas[0].used, 1 * MiB);
    EXPECT_EQ(c.areas[1].name, "reserved");
    ASSERT_EQ(c.skipped.size(), 2u);
    EXPECT_NE(c.skipped[0].find("broken"), std::string::npos) << c.skipped[0];
    EXPECT_NE(c.skipped[1].find("2 separate ranges"), std::string::npos) << c.skipped[1];
}

TEST(HostCmaDebugfs, SaysWhyWhenThereIsNothingToRead) {
    FakeDebugfs d;
    CmaDebugfs empty = readCmaDebugfs(d.root, 4096);
    EXPECT_TRUE(empty.areas.empty());
    EXPECT_NE(empty.problem.find("not mounted"), std::string::npos) << empty.problem;
    d.write(d.root / "tracing" / "README", "x");
    CmaDebugfs noCma = readCmaDebugfs(d.root, 4096);
    EXPECT_NE(noCma.problem.find("CONFIG_CMA_DEBUGFS"), std::string::npos) << noCma.problem;
    CmaDebugfs absent = readCmaDebugfs(d.root / "nosuch", 4096);
    EXPECT_NE(absent.problem.find("not mounted"), std::string::npos) << absent.problem;
}

} // namespace
} // namespace cenalloc::host
