// SPDX-License-Identifier: MIT
// Tests of the flattened device tree reader: validation, indexing, cells and property readers.
#include "platform/dt_tree.h"

#include <cerrno>

#include "support/dtb.h"

namespace cenalloc {
namespace {

using dtbtest::FdtWriter;

std::vector<std::byte> smallTree() {
    FdtWriter w;
    w.memReserve(0x1000, 0x2000);
    w.begin("").cells("#address-cells", {2}).cells("#size-cells", {1}).string("compatible", "test,root");
    w.begin("bus").cells("#address-cells", {1}).cells("phandle", {7});
    w.begin("dev@10").cells("reg", {0x10, 0x20}).string("status", "okay").end();
    w.begin("off@20").string("status", "disabled");
    w.begin("child").end();
    w.end();
    w.begin("inherit").end();
    w.end();
    w.begin("sizes").cells("#address-cells", {5}).cells("#size-cells", {0}).end();
    w.end();
    return w.finish();
}

TEST(DtTree, IndexesNodesPathsAndPhandles) {
    std::vector<std::byte> blob = smallTree();
    Result<DtTree> t = DtTree::parse(blob, "small.dtb");
    ASSERT_TRUE(t) << t.error().toString();
    ASSERT_EQ(t->nodes().size(), 7u);
    EXPECT_EQ(t->path(0), "/");
    int dev = t->byPath("/bus/dev@10");
    ASSERT_GT(dev, 0);
    EXPECT_EQ(t->path(dev), "/bus/dev@10");
    EXPECT_EQ(t->node(dev).baseName(), "dev");
    EXPECT_EQ(t->node(dev).unitAddress(), "10");
    EXPECT_EQ(t->byPhandle(7), t->byPath("/bus"));
    EXPECT_EQ(t->byPhandle(8), -1);
    EXPECT_EQ(t->byPath("/bus/missing"), -1);
    EXPECT_EQ(t->byPath("bus"), -1);
    ASSERT_EQ(t->memReserve().size(), 1u);
    EXPECT_EQ(t->memReserve()[0].address, 0x1000u);
    EXPECT_EQ(t->memReserve()[0].size, 0x2000u);
}

TEST(DtTree, AvailabilityFollowsStatusAlongThePath) {
    std::vector<std::byte> blob = smallTree();
    Result<DtTree> t = DtTree::parse(blob, "small.dtb");
    ASSERT_TRUE(t);
    EXPECT_TRUE(t->available(0));
    EXPECT_TRUE(t->available(t->byPath("/bus/dev@10")));
    EXPECT_FALSE(t->available(t->byPath("/bus/off@20")));
    // A child of a disabled node is not available whatever it says.
    EXPECT_FALSE(t->available(t->byPath("/bus/off@20/child")));
}

TEST(DtTree, CellsAreInheritedFromTheNearestAncestorLikeTheKernel) {
    std::vector<std::byte> blob = smallTree();
    Result<DtTree> t = DtTree::parse(blob, "small.dtb");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->addressCells(0), 2);
    EXPECT_EQ(t->sizeCells(0), 1);
    EXPECT_EQ(t->addressCells(t->byPath("/bus")), 1);
    // /bus has no #size-cells: the root's applies (of_bus_n_size_cells).
    EXPECT_EQ(t->sizeCells(t->byPath("/bus")), 1);
    EXPECT_EQ(t->addressCells(t->byPath("/bus/inherit")), 1);
    // More than FDT_MAX_NCELLS is malformed.
    EXPECT_FALSE(t->addressCells(t->byPath("/sizes")).has_value());
    EXPECT_EQ(t->sizeCells(t->byPath("/sizes")), 0);
}

TEST(DtTree, MissingCellsDefaultToOne) {
    FdtWriter w;
    w.begin("").begin("a").end().end();
    std::vector<std::byte> blob = w.finish();
    Result<DtTree> t = DtTree::parse(blob, "x");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->addressCells(0), 1);
    EXPECT_EQ(t->sizeCells(0), 1);
}

TEST(DtTree, RefusesWhatLibfdtRefusesWithEinval) {
    std::vector<std::byte> good = smallTree();
    struct Case {
        const char* what;
        std::vector<std::byte> blob;
    };
    std::vector<Case> cases;
    cases.push_back({"empty", {}});
    cases.push_back({"shorter than a header", std::vector<std::byte>(good.begin(), good.begin() + 20)});
    std::vector<std::byte> badMagic = good;
    badMagic[0] = std::byte{0};
    cases.push_back({"bad magic", badMagic});
    cases.push_back({"truncated", std::vector<std::byte>(good.begin(), good.end() - 16)});
    std::vector<std::byte> garbage = good;
    // Scribble over the structure block (it starts at off_dt_struct).
    uint32_t structOffset = fdt_off_dt_struct(good.data());
    for (size_t i = structOffset; i < structOffset + 24 && i < garbage.size(); ++i)
        garbage[i] = std::byte{0xff};
    cases.push_back({"garbage structure", garbage});
    std::vector<std::byte> text(200, std::byte{'a'});
    cases.push_back({"text", text});
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        Result<DtTree> t = DtTree::parse(c.blob, "bad.dtb");
        ASSERT_FALSE(t);
        EXPECT_EQ(t.error().code(), EINVAL);
        EXPECT_EQ(t.error().message().rfind("bad.dtb: ", 0), 0u) << t.error().message();
    }
}

// libfdt 1.6.1's fdt_check_full() loops forever on a property length of
// 0xfffffff4: its int offset arithmetic steps back onto the same tag (found
// by fuzz/dtb_fuzz.cpp). The reader must refuse the blob before libfdt walks
// it; a regression hangs this test until ctest's timeout.
TEST(DtTree, RefusesAPropertyLengthThatWrapsLibfdtsOffsets) {
    FdtWriter w;
    w.begin("").cells("a", {1}).cells("b", {2}).end();
    std::vector<std::byte> blob = w.finish();
    uint32_t structOffset = fdt_off_dt_struct(blob.data());
    size_t at = structOffset;
    while (fdt32_to_cpu(*reinterpret_cast<const fdt32_t*>(blob.data() + at)) != FDT_PROP)
        at += 4;
    for (uint32_t length : {0xfffffff4u, 0xfffffff8u, 0x7ffffff4u, 0x1000u}) {
        SCOPED_TRACE(length);
        std::vector<std::byte> bad = blob;
        fdt32_t be = cpu_to_fdt32(length);
        std::memcpy(bad.data() + at + 4, &be, 4);
        Result<DtTree> t = DtTree::parse(bad, "wrap.dtb");
        ASSERT_FALSE(t);
        EXPECT_EQ(t.error().code(), EINVAL);
        EXPECT_NE(t.error().message().find("runs past the structure block"), std::string::npos) << t.error().message();
    }
}

TEST(DtTree, RefusesBlobsOlderThanVersion16) {
    std::vector<std::byte> blob = smallTree();
    fdt_set_version(blob.data(), 15);
    fdt_set_last_comp_version(blob.data(), 2);
    Result<DtTree> t = DtTree::parse(blob, "old.dtb");
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error().code(), EINVAL);
    EXPECT_NE(t.error().message().find("version 15"), std::string::npos) << t.error().message();
}

TEST(DtTree, RefusesNestingDeeperThanTheKernelAccepts) {
    auto nested = [](int depth) {
        FdtWriter w;
        w.begin("");
        for (int i = 1; i < depth; ++i)
            w.begin("n");
        for (int i = 0; i < depth; ++i)
            w.end();
        return w.finish();
    };
    std::vector<std::byte> ok = nested(kDtMaxDepth);
    EXPECT_TRUE(DtTree::parse(ok, "ok"));
    std::vector<std::byte> deep = nested(kDtMaxDepth + 1);
    Result<DtTree> t = DtTree::parse(deep, "deep.dtb");
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error().code(), EINVAL);
    EXPECT_NE(t.error().message().find("64"), std::string::npos);
}

TEST(DtTree, AcceptsAnUnalignedBuffer) {
    std::vector<std::byte> blob = smallTree();
    std::vector<std::byte> shifted(blob.size() + 1);
    std::copy(blob.begin(), blob.end(), shifted.begin() + 1);
    Result<DtTree> t = DtTree::parse(std::span(shifted).subspan(1), "shifted");
    ASSERT_TRUE(t) << t.error().toString();
    EXPECT_EQ(t->nodes().size(), 7u);
}

TEST(DtTree, ReadersNeverReadPastTheValue) {
    const std::byte raw[] = {std::byte{0x00}, std::byte{0x00}, std::byte{0x00}, std::byte{0x01}, std::byte{0x00},
                             std::byte{0x00}, std::byte{0x00}, std::byte{0x02}, std::byte{0xff}};
    std::span<const std::byte> v(raw);
    EXPECT_EQ(dtCellCount(v), 2u);
    EXPECT_EQ(dtCell(v, 0), 1u);
    EXPECT_EQ(dtCell(v, 1), 2u);
    EXPECT_FALSE(dtCell(v, 2));
    EXPECT_EQ(dtNumber(v, 0, 2), 0x100000002u);
    EXPECT_EQ(dtNumber(v, 1, 1), 2u);
    EXPECT_EQ(dtNumber(v, 0, 0), 0u);
    EXPECT_FALSE(dtNumber(v, 1, 2));
    EXPECT_FALSE(dtNumber(v, 0, -1));
    // Three cells are a number only when the top cell is zero.
    const std::byte three[] = {std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0},
                               std::byte{0}, std::byte{1}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{2}};
    EXPECT_EQ(dtNumber(three, 0, 3), 0x100000002u);
    const std::byte high[] = {std::byte{0}, std::byte{0}, std::byte{0}, std::byte{1}, std::byte{0}, std::byte{0},
                              std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}};
    EXPECT_FALSE(dtNumber(high, 0, 3));

    const char strings[] = "okay\0second";
    std::span<const std::byte> s(reinterpret_cast<const std::byte*>(strings), sizeof strings);
    EXPECT_EQ(dtStrings(s), (std::vector<std::string_view>{"okay", "second"}));
    // Not NUL-terminated: no strings at all.
    EXPECT_TRUE(dtStrings(s.first(4)).empty());
    EXPECT_TRUE(dtStrings({}).empty());
    DtProperty p{"x", s};
    EXPECT_EQ(dtString(&p), "okay");
    EXPECT_FALSE(dtString(nullptr));
    EXPECT_FALSE(dtU32(&p));
}

} // namespace
} // namespace cenalloc
