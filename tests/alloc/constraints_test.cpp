// SPDX-License-Identifier: MIT
// The constraint algebra: the merge table row by row, its laws, and ConstraintSet with IOMMUs.
#include <cenalloc/constraints.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include "support/boards.h"

namespace cenalloc {
namespace {

using test::DeviceSpec;
using test::makeDevice;

// A spread of records: tight and loose in every field, so each law is
// exercised on values that differ.
std::vector<DmaConstraints> samples() {
    std::vector<DmaConstraints> out;
    out.push_back(unconstrained());
    out.push_back(DmaConstraints{});
    DmaConstraints display;
    display.dmaMask = display.coherentDmaMask = 0x3fffffff;
    display.maxSegmentSize = 0xffffffff;
    display.maxSegmentCount = 1;
    display.contiguous = true;
    display.coherent = false;
    display.accessBits = 0x1;
    out.push_back(display);
    DmaConstraints nvme;
    nvme.maxSegmentSize = 0xffffffff;
    nvme.segmentBoundaryMask = 0xfff;
    nvme.maxSegmentCount = 128;
    out.push_back(nvme);
    DmaConstraints codec;
    codec.dmaMask = 0xffffffff;
    codec.coherentDmaMask = 0xfffffff;
    codec.alignment = 1 * MiB;
    codec.maxSegmentCount = 16;
    codec.accessBits = 0x3;
    out.push_back(codec);
    DmaConstraints secure;
    secure.accessBits = 0x2;
    secure.alignment = 64 * KiB;
    secure.segmentBoundaryMask = 0xffff;
    out.push_back(secure);
    return out;
}

std::string show(const DmaConstraints& c) {
    std::string out;
    for (const ConstraintRule& r : constraintRules())
        out += fmt::format("{}={} ", r.name, r.print(c));
    return out;
}

TEST(ConstraintRules, OneRowPerFieldInDeclarationOrder) {
    std::vector<std::string> names;
    for (const ConstraintRule& r : constraintRules())
        names.emplace_back(r.name);
    EXPECT_EQ(names,
              (std::vector<std::string>{"dma_mask", "coherent_dma_mask", "max_segment_size", "segment_boundary_mask",
                                        "max_segment_count", "alignment", "contiguous", "coherent", "access_bits"}));
    EXPECT_EQ(findConstraintRule("alignment"), &constraintRules()[5]);
    EXPECT_EQ(findConstraintRule("dma_msk"), nullptr);
}

TEST(ConstraintRules, UnconstrainedIsEveryRowRelaxed) {
    const DmaConstraints& u = unconstrained();
    EXPECT_EQ(u.dmaMask, kNoLimit);
    EXPECT_EQ(u.coherentDmaMask, kNoLimit);
    EXPECT_EQ(u.maxSegmentSize, kNoLimit);
    EXPECT_EQ(u.segmentBoundaryMask, kNoLimit);
    EXPECT_EQ(u.maxSegmentCount, 0u);
    EXPECT_EQ(u.alignment, 1u);
    EXPECT_FALSE(u.contiguous);
    EXPECT_TRUE(u.coherent);
    EXPECT_EQ(u.accessBits, kAllAccess);
    EXPECT_EQ(unsatisfiableRule(u), nullptr);
}

// Each row's merge on concrete values. Every row of the table must appear
// here at least once: adding a constraint kind without saying how it merges
// fails RowCasesCoverEveryRow.
struct RowCase {
    const char* row;
    uint64_t a;
    uint64_t b;
    uint64_t merged;
};

void setField(DmaConstraints& c, std::string_view row, uint64_t v) {
    if (row == "dma_mask")
        c.dmaMask = v;
    else if (row == "coherent_dma_mask")
        c.coherentDmaMask = v;
    else if (row == "max_segment_size")
        c.maxSegmentSize = v;
    else if (row == "segment_boundary_mask")
        c.segmentBoundaryMask = v;
    else if (row == "max_segment_count")
        c.maxSegmentCount = static_cast<uint32_t>(v);
    else if (row == "alignment")
        c.alignment = v;
    else if (row == "contiguous")
        c.contiguous = v != 0;
    else if (row == "coherent")
        c.coherent = v != 0;
    else if (row == "access_bits")
        c.accessBits = v;
    else
        ADD_FAILURE() << "no setter for row " << row;
}

const RowCase kRowCases[] = {
    {"dma_mask", 0xffffffff, 0x3fffffff, 0x3fffffff},
    {"dma_mask", kNoLimit, 0xfffffffff, 0xfffffffff},
    {"dma_mask", 0xbfffffff, 0x7fffffff, 0x7fffffff}, // address limits: the lower, not the bits in common
    {"coherent_dma_mask", 0xffffffff, kNoLimit, 0xffffffff},
    {"max_segment_size", 64 * KiB, 0xffffffff, 64 * KiB},
    {"max_segment_size", kNoLimit, 4 * KiB, 4 * KiB},
    {"segment_boundary_mask", 0xffff, 0xfff, 0xfff},
    {"segment_boundary_mask", kNoLimit, 0xffffffff, 0xffffffff},
    {"max_segment_count", 0, 16, 16},
    {"max_segment_count", 16, 0, 16},
    {"max_segment_count", 16, 1, 1},
    {"max_segment_count", 0, 0, 0},
    {"alignment", 4 * KiB, 1 * MiB, 1 * MiB},
    {"alignment", 6, 4, 12},                // lcm, not max, when not powers of two
    {"alignment", uint64_t{1} << 63, 3, 0}, // an lcm that does not fit: absorbing
    {"contiguous", 0, 1, 1},
    {"contiguous", 0, 0, 0},
    {"coherent", 1, 0, 0},
    {"coherent", 1, 1, 1},
    {"access_bits", 0x3, 0x6, 0x2},
    {"access_bits", 0x1, 0x2, 0x0},
};

TEST(ConstraintRules, EachRowMergesByItsRule) {
    for (const RowCase& rc : kRowCases) {
        SCOPED_TRACE(fmt::format("{}: {:#x} with {:#x}", rc.row, rc.a, rc.b));
        const ConstraintRule* rule = findConstraintRule(rc.row);
        ASSERT_NE(rule, nullptr);
        DmaConstraints a = unconstrained();
        DmaConstraints b = unconstrained();
        setField(a, rc.row, rc.a);
        setField(b, rc.row, rc.b);
        const DmaConstraints m = mergeConstraints(a, b);
        EXPECT_EQ(rule->get(m), rc.merged);
        // The other rows stay unconstrained: a row touches only its field.
        for (const ConstraintRule& other : constraintRules())
            if (&other != rule) {
                EXPECT_EQ(other.get(m), other.get(unconstrained())) << other.name;
            }
    }
}

TEST(ConstraintRules, RowCasesCoverEveryRow) {
    std::set<std::string> covered;
    for (const RowCase& rc : kRowCases)
        covered.insert(rc.row);
    for (const ConstraintRule& r : constraintRules())
        EXPECT_TRUE(covered.count(std::string(r.name))) << "no merge case for row " << r.name;
}

TEST(ConstraintRules, EveryRowPrints) {
    DmaConstraints c = unconstrained();
    c.dmaMask = 0xffffffff;
    c.maxSegmentSize = 64 * KiB;
    c.maxSegmentCount = 16;
    c.segmentBoundaryMask = 0xffff;
    c.accessBits = 0x2;
    const std::vector<std::string> expected = {
        "0x00000000ffffffff (32-bit mask)",
        "0xffffffffffffffff (64-bit mask)",
        "64 KiB",
        "0xffff (segments do not cross 64 KiB boundaries)",
        "16",
        "1 B",
        "no",
        "yes",
        "0x2",
    };
    ASSERT_EQ(constraintRules().size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i)
        EXPECT_EQ(constraintRules()[i].print(c), expected[i]) << constraintRules()[i].name;
    EXPECT_EQ(findConstraintRule("max_segment_count")->print(unconstrained()), "unlimited");
    EXPECT_EQ(findConstraintRule("max_segment_size")->print(unconstrained()), "unlimited");
    EXPECT_EQ(findConstraintRule("access_bits")->print(unconstrained()), "all");
    EXPECT_EQ(findConstraintRule("segment_boundary_mask")->print(unconstrained()), "none");
}

TEST(ConstraintAlgebra, MergeIsCommutative) {
    const auto s = samples();
    for (size_t i = 0; i < s.size(); ++i)
        for (size_t j = 0; j < s.size(); ++j) {
            SCOPED_TRACE(fmt::format("{} with {}", i, j));
            EXPECT_EQ(mergeConstraints(s[i], s[j]), mergeConstraints(s[j], s[i]));
        }
}

TEST(ConstraintAlgebra, MergeIsAssociative) {
    const auto s = samples();
    for (size_t i = 0; i < s.size(); ++i)
        for (size_t j = 0; j < s.size(); ++j)
            for (size_t k = 0; k < s.size(); ++k) {
                SCOPED_TRACE(fmt::format("{}, {}, {}", i, j, k));
                EXPECT_EQ(mergeConstraints(mergeConstraints(s[i], s[j]), s[k]),
                          mergeConstraints(s[i], mergeConstraints(s[j], s[k])));
            }
}

TEST(ConstraintAlgebra, MergeIsIdempotent) {
    for (const DmaConstraints& c : samples()) {
        SCOPED_TRACE(show(c));
        EXPECT_EQ(mergeConstraints(c, c), c);
    }
}

TEST(ConstraintAlgebra, UnconstrainedIsTheIdentity) {
    for (const DmaConstraints& c : samples()) {
        SCOPED_TRACE(show(c));
        EXPECT_EQ(mergeConstraints(c, unconstrained()), c);
        EXPECT_EQ(mergeConstraints(unconstrained(), c), c);
    }
}

TEST(ConstraintAlgebra, MergeIsNoLooserThanEitherSide) {
    const auto s = samples();
    for (size_t i = 0; i < s.size(); ++i)
        for (size_t j = 0; j < s.size(); ++j) {
            SCOPED_TRACE(fmt::format("{} with {}", i, j));
            const DmaConstraints m = mergeConstraints(s[i], s[j]);
            // Merging the result with either side changes nothing: m is below both.
            EXPECT_EQ(mergeConstraints(m, s[i]), m);
            EXPECT_EQ(mergeConstraints(m, s[j]), m);
        }
}

// Absorbing values: once merged in, the set stays unsatisfiable whatever
// joins it, and the table names the row.
TEST(ConstraintAlgebra, AbsorbingValuesMakeEveryMergeUnsatisfiable) {
    struct Case {
        const char* row;
        uint64_t value;
    };
    const Case cases[] = {
        {"dma_mask", 0}, {"coherent_dma_mask", 0}, {"max_segment_size", 0}, {"alignment", 0}, {"access_bits", 0}};
    for (const Case& c : cases) {
        SCOPED_TRACE(c.row);
        DmaConstraints zero = unconstrained();
        setField(zero, c.row, c.value);
        ASSERT_NE(unsatisfiableRule(zero), nullptr);
        EXPECT_EQ(unsatisfiableRule(zero)->name, c.row);
        for (const DmaConstraints& other : samples()) {
            const DmaConstraints m = mergeConstraints(zero, other);
            ASSERT_NE(unsatisfiableRule(m), nullptr);
            EXPECT_EQ(unsatisfiableRule(m)->name, c.row);
            EXPECT_EQ(findConstraintRule(c.row)->get(m), c.value); // absorbing: the zero stays
        }
    }
    // Disjoint access bits are reached by merging, not only given.
    DmaConstraints a = unconstrained(), b = unconstrained();
    a.accessBits = 0x1;
    b.accessBits = 0x2;
    EXPECT_EQ(unsatisfiableRule(a), nullptr);
    EXPECT_EQ(unsatisfiableRule(mergeConstraints(a, b))->name, "access_bits");
}

TEST(ConstraintAlgebra, RowsWithoutAbsorbingValuesNeverReportOne) {
    for (const char* row : {"segment_boundary_mask", "max_segment_count", "contiguous", "coherent"}) {
        SCOPED_TRACE(row);
        EXPECT_EQ(findConstraintRule(row)->unsatisfiable, nullptr);
        DmaConstraints c = unconstrained();
        setField(c, row, 0);
        EXPECT_EQ(unsatisfiableRule(c), nullptr);
    }
}

TEST(AddressLimit, IsTheLowerOfBothMasks) {
    DmaConstraints c = unconstrained();
    c.dmaMask = 0xffffffff;
    c.coherentDmaMask = 0x3fffffff;
    EXPECT_EQ(addressLimit(c), 0x3fffffffu);
    c.coherentDmaMask = kNoLimit;
    EXPECT_EQ(addressLimit(c), 0xffffffffu);
    EXPECT_EQ(describeMask(0x3fffffff), "30-bit mask");
    EXPECT_EQ(describeMask(kNoLimit), "64-bit mask");
    EXPECT_EQ(describeMask(0x12345), "address limit 0x12345");
}

Platform iommuBoard() {
    Platform p;
    p.name = "iommu-board";
    p.memory = {{"dram", 0x80000000, 4 * GiB}};
    p.iommus = {{"smmu-b", 16384, 0x100000, 0xfff00000}, {"smmu-a", 4096, 0, 1 * GiB}};
    return p;
}

TEST(ConstraintSet, EmptySetConstrainsNothing) {
    ConstraintSet empty;
    EXPECT_EQ(empty.physical(), unconstrained());
    EXPECT_TRUE(empty.iovaSpaces().empty());
    EXPECT_EQ(empty.addressLimit(), kNoLimit);
    EXPECT_TRUE(empty.coherent());
    EXPECT_FALSE(empty.unsatisfiable());
    EXPECT_EQ(empty.unsatisfiableReason(), "");
}

TEST(ConstraintSet, DeviceWithoutIommuContributesItsPlacementAndItsOwnMapping) {
    const Platform p = iommuBoard();
    const Device d = makeDevice({.name = "display",
                                 .maskBits = 32,
                                 .maxSegmentSize = 0xffffffff,
                                 .maxSegmentCount = 1,
                                 .contiguous = true,
                                 .coherent = false,
                                 .accessBits = 0x1});
    Result<ConstraintSet> set = ConstraintSet::forDevice(d, p);
    ASSERT_TRUE(set) << set.error().toString();
    EXPECT_EQ(set->physical(), placementOf(d.constraints));
    EXPECT_EQ(set->physical().maxSegmentCount, 0u) << "mapping limits are not placement";
    EXPECT_TRUE(set->physical().contiguous);
    EXPECT_TRUE(set->iovaSpaces().empty());
    ASSERT_EQ(set->mappings().size(), 1u);
    EXPECT_EQ(set->mappings()[0], (DeviceMapping{"display", "", 0xffffffff, kNoLimit, 1}));
}

// A device that takes one segment needs one contiguous block: that much of
// its mapping limits is placement.
TEST(ConstraintSet, OneSegmentMeansContiguousPlacement) {
    const Platform p = iommuBoard();
    const Device d = makeDevice({.name = "lcd", .maxSegmentSize = 0xffffffff, .maxSegmentCount = 1});
    EXPECT_TRUE(ConstraintSet::forDevice(d, p)->physical().contiguous);
}

TEST(ConstraintSet, DeviceBehindIommuContributesNoPhysicalLimits) {
    const Platform p = iommuBoard();
    const Device d = makeDevice({.name = "isp",
                                 .maskBits = 32,
                                 .maxSegmentSize = 64 * KiB,
                                 .maxSegmentCount = 2,
                                 .contiguous = true,
                                 .coherent = false,
                                 .accessBits = 0x1,
                                 .iommu = "smmu-b",
                                 .boundaryMask = 0xffff,
                                 .alignment = 64 * KiB});
    Result<ConstraintSet> set = ConstraintSet::forDevice(d, p);
    ASSERT_TRUE(set) << set.error().toString();
    const DmaConstraints& phys = set->physical();
    // No physical mask, contiguity or segment limits ...
    EXPECT_EQ(phys.dmaMask, kNoLimit);
    EXPECT_EQ(phys.coherentDmaMask, kNoLimit);
    EXPECT_FALSE(phys.needsContiguous());
    EXPECT_EQ(phys.maxSegmentCount, 0u);
    EXPECT_EQ(phys.maxSegmentSize, kNoLimit);
    EXPECT_EQ(phys.segmentBoundaryMask, kNoLimit);
    // ... but coherency, access bits and the IOMMU page as the granule.
    EXPECT_FALSE(phys.coherent);
    EXPECT_EQ(phys.accessBits, 0x1u);
    EXPECT_EQ(phys.alignment, 16384u);
    // Its own limits hold in IOVA space.
    ASSERT_EQ(set->iovaSpaces().size(), 1u);
    const IovaSpace& s = set->iovaSpaces()[0];
    EXPECT_EQ(s.iommu, "smmu-b");
    EXPECT_EQ(s.pageSize, 16384u);
    EXPECT_EQ(s.apertureBase, 0x100000u);
    EXPECT_EQ(s.apertureLast, 0xffffffffu);
    DmaConstraints iovaPlacement = placementOf(d.constraints);
    iovaPlacement.contiguous = false; // an I/O virtual range is contiguous
    EXPECT_EQ(s.limits, iovaPlacement);
    ASSERT_EQ(set->mappings().size(), 1u);
    EXPECT_EQ(set->mappings()[0], (DeviceMapping{"isp", "smmu-b", 64 * KiB, 0xffff, 2}));
    EXPECT_EQ(s.windowLast(), 0xffffffffu);
    EXPECT_EQ(s.windowSize(), 0xfff00000u);
}

TEST(ConstraintSet, DevicesBehindOneIommuShareAnIovaSpace) {
    const Platform p = iommuBoard();
    const Device a = makeDevice({.name = "a", .maskBits = 32, .maxSegmentCount = 8, .iommu = "smmu-b"});
    const Device b = makeDevice({.name = "b", .maskBits = 28, .maxSegmentSize = 16 * KiB, .iommu = "smmu-b"});
    const Device c = makeDevice({.name = "c", .maskBits = 40, .iommu = "smmu-a"});
    ConstraintSet set;
    for (const Device* d : {&a, &b, &c}) {
        Result<ConstraintSet> next = set.merge(*d, p);
        ASSERT_TRUE(next) << next.error().toString();
        set = *next;
    }
    ASSERT_EQ(set.iovaSpaces().size(), 2u);
    EXPECT_EQ(set.iovaSpaces()[0].iommu, "smmu-a"); // sorted by name
    EXPECT_EQ(set.iovaSpaces()[1].iommu, "smmu-b");
    const IovaSpace& shared = set.iovaSpaces()[1];
    DmaConstraints placement = mergePlacement(a.constraints, b.constraints);
    EXPECT_EQ(shared.limits, placement);
    // Their segment limits stay their own.
    EXPECT_EQ(set.findMapping("a")->maxSegmentCount, 8u);
    EXPECT_EQ(set.findMapping("a")->maxSegmentSize, kDefaultMaxSegmentSize);
    EXPECT_EQ(set.findMapping("b")->maxSegmentSize, 16 * KiB);
    EXPECT_EQ(set.findMapping("b")->maxSegmentCount, 0u);
    EXPECT_EQ(shared.windowLast(), 0xfffffffu); // the 28-bit mask cuts the aperture
    EXPECT_EQ(shared.windowSize(), 0xfffffffu - 0x100000u + 1);
    // The smmu-a window is the aperture: the 40-bit mask reaches all of it.
    EXPECT_EQ(set.iovaSpaces()[0].windowSize(), 1 * GiB);
    // Physically only the largest IOMMU page remains.
    EXPECT_EQ(set.physical().alignment, 16384u);
    EXPECT_EQ(set.addressLimit(), kNoLimit);
}

// Masters behind one IOMMU with different stream IDs sit in different
// IOMMU groups, so Linux gives each its own default domain: separate IOVA
// spaces, each with only its own devices' limits.
TEST(ConstraintSet, SeparateIommuGroupsHaveSeparateIovaSpaces) {
    const Platform p = iommuBoard();
    Device cam = makeDevice({.name = "cam", .maskBits = 28, .iommu = "smmu-b"});
    cam.iommuGroup = "0x880";
    Device gpu = makeDevice({.name = "gpu", .maskBits = 40, .iommu = "smmu-b"});
    gpu.iommuGroup = "0x400";
    Device vpu = makeDevice({.name = "vpu", .maskBits = 32, .iommu = "smmu-b"});
    vpu.iommuGroup = "0x880"; // the same stream ID: the same group
    ConstraintSet set = *ConstraintSet().merge(cam, p)->merge(gpu, p)->merge(vpu, p);
    ASSERT_EQ(set.iovaSpaces().size(), 2u);
    EXPECT_EQ(set.iovaSpaces()[0].iommu, "smmu-b:0x400");
    EXPECT_EQ(set.iovaSpaces()[1].iommu, "smmu-b:0x880");
    EXPECT_EQ(set.iovaSpaces()[0].windowLast(), 0xffffffffu) << "the gpu's space is not cut by the camera's mask";
    EXPECT_EQ(set.iovaSpaces()[1].windowLast(), 0xfffffffu);
    EXPECT_EQ(set.findMapping("gpu")->domain, "smmu-b:0x400");
    EXPECT_EQ(set.findMapping("vpu")->domain, "smmu-b:0x880");
}

// The placement part keeps the algebra's properties over every row case.
TEST(ConstraintAlgebra, PlacementMergeIsAMeetAndIgnoresMappingRows) {
    std::vector<DmaConstraints> s;
    for (const RowCase& rc : kRowCases) {
        DmaConstraints a = unconstrained();
        setField(a, rc.row, rc.a);
        s.push_back(a);
    }
    for (const DmaConstraints& a : s) {
        EXPECT_EQ(mergePlacement(a, a), placementOf(a));
        EXPECT_EQ(mergePlacement(a, unconstrained()), placementOf(a));
        for (const DmaConstraints& b : s) {
            EXPECT_EQ(mergePlacement(a, b), mergePlacement(b, a));
            for (const DmaConstraints& c : s) {
                EXPECT_EQ(mergePlacement(mergePlacement(a, b), c), mergePlacement(a, mergePlacement(b, c)));
            }
            const DmaConstraints m = mergePlacement(a, b);
            for (const ConstraintRule& r : constraintRules()) {
                if (r.part == ConstraintPart::Mapping) {
                    EXPECT_EQ(r.get(m), r.get(unconstrained())) << r.name;
                }
            }
        }
    }
}

TEST(ConstraintSet, MergeDoesNotDependOnOrder) {
    const Platform p = iommuBoard();
    std::vector<Device> devices = {
        makeDevice({.name = "a", .maskBits = 32, .maxSegmentCount = 8, .iommu = "smmu-b"}),
        makeDevice({.name = "b", .maskBits = 28, .maxSegmentSize = 16 * KiB, .coherent = false, .iommu = "smmu-b"}),
        makeDevice({.name = "c", .maskBits = 40, .accessBits = 0x3, .iommu = "smmu-a"}),
        makeDevice({.name = "d", .maskBits = 36, .maxSegmentCount = 4, .contiguous = true, .accessBits = 0x5}),
    };
    std::vector<size_t> order = {0, 1, 2, 3};
    std::optional<ConstraintSet> first;
    do {
        SCOPED_TRACE(fmt::format("{}", fmt::join(order, ",")));
        ConstraintSet set;
        for (size_t i : order)
            set = *set.merge(devices[i], p);
        if (!first)
            first = set;
        EXPECT_EQ(set, *first);
    } while (std::next_permutation(order.begin(), order.end()));
    // Merging sets is associative and idempotent too.
    ConstraintSet ab = *ConstraintSet().merge(devices[0], p)->merge(devices[1], p);
    ConstraintSet cd = *ConstraintSet().merge(devices[2], p)->merge(devices[3], p);
    EXPECT_EQ(ab.merge(cd), *first);
    EXPECT_EQ(first->merge(*first), *first);
    EXPECT_EQ(first->merge(ConstraintSet()), *first);
    // intersect() is the same fold in one pass.
    std::vector<ConstraintSet> singles;
    for (const Device& d : devices)
        singles.push_back(*ConstraintSet::forDevice(d, p));
    EXPECT_EQ(ConstraintSet::intersect(singles), *first);
    EXPECT_EQ(ConstraintSet::intersect({}), ConstraintSet());
}

TEST(ConstraintSet, UnknownIommuIsEinvalAndLeavesTheSetAlone) {
    const Platform p = iommuBoard();
    const Device ok = makeDevice({.name = "ok", .maskBits = 32});
    const ConstraintSet set = *ConstraintSet::forDevice(ok, p);
    const Device bad = makeDevice({.name = "bad", .iommu = "no-such-smmu"});
    Result<ConstraintSet> r = set.merge(bad, p);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EINVAL);
    EXPECT_NE(r.error().message().find("no-such-smmu"), std::string::npos);
    EXPECT_NE(r.error().message().find("'bad'"), std::string::npos);
    EXPECT_EQ(set, *ConstraintSet::forDevice(ok, p));
}

TEST(ConstraintSet, MaskBelowTheApertureIsUnsatisfiable) {
    Platform p = iommuBoard();
    p.iommus.push_back({"high-smmu", 4096, 0x100000000, 0x100000000});
    const Device d = makeDevice({.name = "d", .maskBits = 32, .iommu = "high-smmu"});
    ConstraintSet set = *ConstraintSet::forDevice(d, p);
    EXPECT_TRUE(set.iovaSpaces()[0].windowEmpty());
    EXPECT_EQ(set.iovaSpaces()[0].windowSize(), 0u);
    EXPECT_TRUE(set.unsatisfiable());
    EXPECT_NE(set.unsatisfiableReason().find("high-smmu"), std::string::npos);
    EXPECT_NE(set.unsatisfiableReason().find("32-bit mask"), std::string::npos);
}

TEST(ConstraintSet, DisjointAccessBitsAreUnsatisfiable) {
    const Platform p = iommuBoard();
    ConstraintSet set = *ConstraintSet::forDevice(makeDevice({.name = "s", .accessBits = 0x2}), p);
    EXPECT_FALSE(set.unsatisfiable());
    // Behind an IOMMU the access bits still count physically.
    set = *set.merge(makeDevice({.name = "n", .accessBits = 0x1, .iommu = "smmu-a"}), p);
    EXPECT_TRUE(set.unsatisfiable());
    EXPECT_NE(set.unsatisfiableReason().find("access_bits"), std::string::npos);
}

TEST(ConstraintSet, DescribeHasALinePerRowAndPerIovaSpace) {
    const Platform p = iommuBoard();
    ConstraintSet set = *ConstraintSet::forDevice(makeDevice({.name = "a", .maskBits = 32}), p);
    set = *set.merge(makeDevice({.name = "b", .maskBits = 32, .maxSegmentCount = 2, .iommu = "smmu-a"}), p);
    const std::string text = describe(set);
    EXPECT_NE(text.find("dma_mask: 0x00000000ffffffff (32-bit mask)\n"), std::string::npos) << text;
    EXPECT_NE(text.find("iommu smmu-a: page 4 KiB, window 0x0000000000000000..0x000000003fffffff (1 GiB)"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("mapping b: in smmu-a, at most 2 segments of up to 64 KiB"), std::string::npos) << text;
    EXPECT_NE(text.find("mapping a: direct, any number of segments of up to 64 KiB"), std::string::npos) << text;
    EXPECT_EQ(text.find("max_segment_count"), std::string::npos) << "mapping rows are per device:\n" << text;
    size_t placement = 0;
    for (const ConstraintRule& r : constraintRules())
        placement += r.part == ConstraintPart::Placement;
    // The placement rows, the space line and its rows but contiguity, a line per device.
    const size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
    EXPECT_EQ(lines, placement + 1 + (placement - 1) + 2);
}

TEST(StorageLimits, CarryTheSetsPhysicalLimits) {
    const Platform p = iommuBoard();
    ConstraintSet set = *ConstraintSet::forDevice(
        makeDevice({.name = "a", .maskBits = 32, .maxSegmentSize = 64 * KiB, .alignment = 1 * MiB}), p);
    StorageLimits l = storageLimits(set);
    EXPECT_EQ(l.highestAddress, 0xffffffffu);
    EXPECT_EQ(l.alignment, 1 * MiB);
    EXPECT_EQ(l.maxChunkSize, 64 * KiB);
    // Chunks up to the largest segment any direct device takes are useful.
    set = *set.merge(makeDevice({.name = "c", .maxSegmentSize = 1 * MiB}), p);
    EXPECT_EQ(storageLimits(set).maxChunkSize, 1 * MiB);
    set = *set.merge(makeDevice({.name = "d", .iommu = "smmu-a"}), p);
    EXPECT_EQ(storageLimits(set).maxChunkSize, 0u) << "a device behind an IOMMU takes any chunk";
    // Behind an IOMMU: no address limit, no chunk size limit, the page granule.
    StorageLimits free = storageLimits(*ConstraintSet::forDevice(makeDevice({.name = "b", .iommu = "smmu-b"}), p));
    EXPECT_EQ(free.highestAddress, kNoLimit);
    EXPECT_EQ(free.maxChunkSize, 0u);
    EXPECT_EQ(free.alignment, 16384u);
    // Never less than a page.
    EXPECT_EQ(storageLimits(ConstraintSet()).alignment, kPageSize);
}

TEST(Boards, AreValidPlatforms) {
    for (const Platform& p : {test::piBoard(), test::phoneBoard(), test::pcBoard(), iommuBoard()}) {
        SCOPED_TRACE(p.name);
        Result<void> r = validatePlatform(p);
        EXPECT_TRUE(r) << r.error().toString();
    }
}

} // namespace
} // namespace cenalloc

namespace cenalloc {
namespace {

// internName() returns one stable view per distinct text, whatever buffer the
// text was passed in: a buffer reused for another name (as a std::string
// assigned a new value keeps its storage) gets that name's view, not the old one.
TEST(InternName, OneViewPerTextWhateverTheBufferHeld) {
    std::string buffer = "first-device-name";
    const std::string_view first = internName(buffer);
    EXPECT_EQ(first, "first-device-name");
    EXPECT_NE(first.data(), buffer.data()); // a copy that outlives the caller's text
    const char* storage = buffer.data();
    buffer = "other-device-name"; // same length: the same storage
    ASSERT_EQ(buffer.data(), storage);
    const std::string_view other = internName(buffer);
    EXPECT_EQ(other, "other-device-name");
    EXPECT_EQ(first, "first-device-name"); // the first view is unchanged
    buffer = "first-device-name";
    EXPECT_EQ(internName(buffer).data(), first.data()); // same text, same view
    EXPECT_EQ(internName(std::string("first-device-name")).data(), first.data());
    EXPECT_TRUE(internName("").empty());
}

} // namespace
} // namespace cenalloc
