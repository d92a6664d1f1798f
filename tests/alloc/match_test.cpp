// SPDX-License-Identifier: MIT
// Heap matching: each refusal rule, its words, the rule order, and the segment arithmetic.
#include "alloc/match.h"

#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "support/boards.h"

namespace cenalloc {
namespace {

using test::DeviceSpec;
using test::makeDevice;

HeapProperties systemHeap() {
    HeapProperties h;
    h.name = "system";
    h.kind = HeapKind::System;
    h.lowestAddress = 0x80000000;
    h.highestAddress = 0x37fffffff;
    h.maxChunkSize = 1 * MiB;
    h.minChunkSize = 4 * KiB;
    h.chunkAlignment = 4 * KiB;
    h.capacity = 12 * GiB;
    return h;
}

HeapProperties cmaHeap() {
    HeapProperties h;
    h.name = "cma";
    h.kind = HeapKind::Cma;
    h.lowestAddress = 0xf0000000;
    h.highestAddress = 0xffffffff;
    h.contiguous = true;
    h.maxChunkSize = 256 * MiB;
    h.minChunkSize = 4 * KiB;
    h.chunkAlignment = 4 * KiB;
    h.capacity = 256 * MiB;
    return h;
}

HeapProperties carveout(std::string name, uint64_t base, uint64_t size, uint64_t accessBits) {
    HeapProperties h = cmaHeap();
    h.name = std::move(name);
    h.kind = HeapKind::Carveout;
    h.lowestAddress = base;
    h.highestAddress = base + size - 1;
    h.cached = false;
    h.maxChunkSize = size;
    h.capacity = size;
    h.accessBits = accessBits;
    return h;
}

// The system heap of a board's kernel: it takes no address limit.
HeapProperties kernelSystemHeap() {
    HeapProperties h = systemHeap();
    h.honoursAddressLimit = false;
    return h;
}

// A pool that only 'dsp' names in its memory-region.
HeapProperties privatePool() {
    HeapProperties h = carveout("dsp-pool", 0x90000000, 32 * MiB, kAllAccess);
    h.kind = HeapKind::Cma;
    h.owners = {"dsp"};
    return h;
}

Platform smmuBoard() {
    Platform p;
    p.name = "smmu-board";
    p.memory = {{"dram", 0x80000000, 12 * GiB}};
    p.iommus = {{"camera-smmu", 4096, 0x100000, 0xfff00000},
                {"small-smmu", 4096, 0x10000000, 256 * MiB},
                {"high-smmu", 4096, 0x100000000, 0x100000000}};
    return p;
}

ConstraintSet setOf(std::initializer_list<DeviceSpec> specs) {
    const Platform p = smmuBoard();
    ConstraintSet set;
    for (const DeviceSpec& s : specs) {
        Result<ConstraintSet> next = set.merge(makeDevice(s), p);
        EXPECT_TRUE(next) << next.error().toString();
        set = *next;
    }
    return set;
}

struct MatchCase {
    const char* what;
    HeapProperties heap;
    ConstraintSet set;
    uint64_t size;
    Subject subject;
    Refusal refusal;
    std::string reason;
};

std::vector<MatchCase> matchCases() {
    HeapProperties cmaAligned = cmaHeap();
    cmaAligned.chunkAlignment = 64 * KiB;
    HeapProperties kernelHeap = systemHeap();
    kernelHeap.name = "kernel:system";
    kernelHeap.kind = HeapKind::Kernel;
    return {
        {"host kernel heap", kernelHeap, setOf({{.name = "d"}}), 1 * MiB, Subject::Device, Refusal::HostKernel,
         "a host kernel heap: the kernel does not say where its pages lie, so the device's limits cannot be checked "
         "and no modelled device can map it (allocate from it by name for kernel drivers)"},
        {"heap of another kind of memory", carveout("secure", 0xe8000000, 128 * MiB, 0x2),
         setOf({{.name = "d", .accessBits = 0x1}}), 1 * MiB, Subject::Device, Refusal::AccessBits,
         "heap memory has access bits 0x2; the device reaches only 0x1"},
        {"devices that reach no memory together", systemHeap(),
         setOf({{.name = "a", .accessBits = 0x1}, {.name = "b", .accessBits = 0x2}}), 1 * MiB, Subject::Devices,
         Refusal::AccessBits, "the devices' access bits have no bit in common: together they reach no memory"},
        {"heap entirely above the mask", carveout("high", 0x880000000, 64 * MiB, kAllAccess),
         setOf({{.name = "d", .maskBits = 32}}), 1 * MiB, Subject::Device, Refusal::AboveAddressLimit,
         "memory starts at 0x880000000, above the device's 32-bit mask"},
        {"too little of the heap below the mask", systemHeap(), setOf({{.name = "d", .maskBits = 32}}), 3 * GiB,
         Subject::Device, Refusal::BelowLimitCapacity,
         "only 2 GiB of the heap lies below the device's 32-bit mask, less than the 3 GiB buffer"},
        {"heap that only extends above the mask", systemHeap(), setOf({{.name = "d", .maskBits = 32}}), 1 * MiB,
         Subject::Device, Refusal::None, ""},
        {"kernel heap that extends above the mask", kernelSystemHeap(), setOf({{.name = "d", .maskBits = 32}}), 1 * MiB,
         Subject::Device, Refusal::AboveAddressLimit,
         "the kernel's heap takes no address limit and its memory reaches 0x37fffffff, above the device's 32-bit "
         "mask (the driver would bounce the buffer through swiotlb)"},
        {"scattered heap for a contiguous device", systemHeap(), setOf({{.name = "d", .contiguous = true}}), 1 * MiB,
         Subject::Device, Refusal::NotContiguous,
         "chunks can be as small as 4 KiB but the device needs one contiguous buffer"},
        {"scattered heap for a one-segment device", systemHeap(),
         setOf({{.name = "a", .maxSegmentCount = 1}, {.name = "b"}}), 1 * MiB, Subject::Devices, Refusal::NotContiguous,
         "chunks can be as small as 4 KiB but the devices need one contiguous buffer"},
        {"scattered heap, too many segments", systemHeap(),
         setOf({{.name = "d", .maxSegmentSize = 64 * KiB, .maxSegmentCount = 16}}), 1 * MiB, Subject::Device,
         Refusal::TooManySegments,
         "a 1 MiB buffer can take 256 segments (chunks can be as small as 4 KiB) but the device accepts at most 16 "
         "segments of up to 64 KiB"},
        {"scattered heap, few enough segments", systemHeap(),
         setOf({{.name = "d", .maxSegmentSize = 64 * KiB, .maxSegmentCount = 16}}), 64 * KiB, Subject::Device,
         Refusal::None, ""},
        {"contiguous heap split by the segment size", cmaHeap(),
         setOf({{.name = "d", .maxSegmentSize = 64 * KiB, .maxSegmentCount = 8}}), 1 * MiB, Subject::Device,
         Refusal::TooManySegments,
         "one 1 MiB chunk can split into 16 segments of up to 64 KiB but the device accepts at most 8"},
        {"contiguous heap split by boundaries", cmaHeap(),
         setOf({{.name = "d", .maxSegmentSize = kNoLimit, .maxSegmentCount = 16, .boundaryMask = 0xffff}}), 1 * MiB,
         Subject::Device, Refusal::TooManySegments,
         "one 1 MiB chunk can split into 17 segments not crossing a 64 KiB boundary but the device accepts at most "
         "16"},
        {"boundary-aligned contiguous heap", cmaAligned,
         setOf({{.name = "d", .maxSegmentSize = kNoLimit, .maxSegmentCount = 16, .boundaryMask = 0xffff}}), 1 * MiB,
         Subject::Device, Refusal::None, ""},
        {"scattered heap aligned less than needed", systemHeap(), setOf({{.name = "d", .alignment = 1 * MiB}}), 1 * MiB,
         Subject::Device, Refusal::Alignment, "chunks are aligned to 4 KiB but the device needs 1 MiB alignment"},
        {"contiguous heap honours alignment", cmaHeap(), setOf({{.name = "d", .alignment = 1 * MiB}}), 1 * MiB,
         Subject::Device, Refusal::None, ""},
        {"buffer larger than the heap", cmaHeap(), setOf({{.name = "d"}}), 512 * MiB, Subject::Device,
         Refusal::Capacity, "buffer of 512 MiB exceeds the heap's 256 MiB"},
        {"iova range split into too many segments", systemHeap(),
         setOf({{.name = "d", .maxSegmentSize = 64 * KiB, .maxSegmentCount = 2, .iommu = "camera-smmu"}}), 1 * MiB,
         Subject::Device, Refusal::IovaSegments,
         "behind camera-smmu, the buffer's one 1 MiB I/O virtual range can split into 16 segments of up to 64 KiB "
         "but the device accepts at most 2"},
        {"iova range within the segment limits", systemHeap(),
         setOf({{.name = "d", .maxSegmentSize = 64 * KiB, .maxSegmentCount = 2, .iommu = "camera-smmu"}}), 128 * KiB,
         Subject::Device, Refusal::None, ""},
        {"iova window smaller than the buffer", systemHeap(), setOf({{.name = "d", .iommu = "small-smmu"}}), 512 * MiB,
         Subject::Device, Refusal::IovaWindow,
         "behind small-smmu, the I/O virtual window the device reaches holds 256 MiB, less than the 512 MiB buffer"},
        {"mask below the iova aperture", systemHeap(), setOf({{.name = "d", .maskBits = 32, .iommu = "high-smmu"}}),
         4 * KiB, Subject::Device, Refusal::IovaWindow,
         "behind high-smmu, the device's 32-bit mask reaches none of the aperture starting at 0x100000000"},
        {"private pool of another device", privatePool(), setOf({{.name = "dsp"}, {.name = "display"}}), 1 * MiB,
         Subject::Devices, Refusal::PrivatePool,
         "a pool private to other devices (their memory-region): 'display' may not use it"},
        {"private pool for no device", privatePool(), ConstraintSet(), 1 * MiB, Subject::Devices, Refusal::PrivatePool,
         "a pool private to the devices that name it in memory-region: no buffer without them"},
        {"private pool of its owner", privatePool(), setOf({{.name = "dsp"}}), 1 * MiB, Subject::Device, Refusal::None,
         ""},
        {"contiguous heap, one device's segments too many for it alone", cmaHeap(),
         setOf({{.name = "display", .maxSegmentSize = 64 * KiB, .maxSegmentCount = 1}, {.name = "usb"}}), 1 * MiB,
         Subject::Devices, Refusal::TooManySegments,
         "one 1 MiB chunk can split into 16 segments of up to 64 KiB but 'display' accepts at most 1"},
        {"contiguous device behind an iommu takes scattered pages", systemHeap(),
         setOf({{.name = "d",
                 .maskBits = 32,
                 .maxSegmentSize = 0xffffffff,
                 .maxSegmentCount = 1,
                 .contiguous = true,
                 .iommu = "camera-smmu"}}),
         8 * MiB, Subject::Device, Refusal::None, ""},
    };
}

TEST(MatchHeap, EachRuleRefusesWithItsReason) {
    for (const MatchCase& c : matchCases()) {
        SCOPED_TRACE(c.what);
        const HeapVerdict v = matchHeap(c.heap, c.set, c.size, c.subject);
        EXPECT_EQ(v.refusal(), c.refusal) << refusalName(v.refusal());
        EXPECT_EQ(v.accepted(), c.refusal == Refusal::None);
        EXPECT_EQ(v.reason(), c.reason);
    }
}

TEST(MatchHeap, EveryRefusalKindIsCovered) {
    std::vector<Refusal> seen;
    for (const MatchCase& c : matchCases())
        seen.push_back(c.refusal);
    for (Refusal r :
         {Refusal::None, Refusal::HostKernel, Refusal::PrivatePool, Refusal::AccessBits, Refusal::AboveAddressLimit,
          Refusal::BelowLimitCapacity, Refusal::NotContiguous, Refusal::TooManySegments, Refusal::Alignment,
          Refusal::Capacity, Refusal::IovaWindow, Refusal::IovaSegments})
        EXPECT_NE(std::find(seen.begin(), seen.end(), r), seen.end()) << refusalName(r);
}

TEST(MatchHeap, ReasonsAreLowercaseWithoutFinalPeriod) {
    for (const MatchCase& c : matchCases()) {
        if (c.reason.empty())
            continue;
        SCOPED_TRACE(c.what);
        const std::string r = matchHeap(c.heap, c.set, c.size, c.subject).reason();
        EXPECT_FALSE(std::isupper(static_cast<unsigned char>(r.front())));
        EXPECT_NE(r.back(), '.');
    }
}

TEST(MatchHeap, RulesAreCheckedInOrder) {
    std::vector<std::string> names;
    for (const MatchRule& r : matchRules())
        names.emplace_back(r.name);
    EXPECT_EQ(names, (std::vector<std::string>{"placement", "private", "access", "address", "contiguity", "segments",
                                               "alignment", "capacity", "iova"}));
    // A heap failing access, address, contiguity and capacity reports access.
    HeapProperties h = carveout("far", 0x880000000, 4 * MiB, 0x2);
    h.contiguous = false;
    ConstraintSet set = setOf({{.name = "d", .maskBits = 32, .contiguous = true, .accessBits = 0x1}});
    EXPECT_EQ(matchHeap(h, set, 8 * MiB).refusal(), Refusal::AccessBits);
    h.accessBits = kAllAccess;
    EXPECT_EQ(matchHeap(h, set, 8 * MiB).refusal(), Refusal::AboveAddressLimit);
    h.lowestAddress = 0x80000000;
    h.highestAddress = 0x80000000 + 4 * MiB - 1;
    EXPECT_EQ(matchHeap(h, set, 8 * MiB).refusal(), Refusal::NotContiguous);
    h.contiguous = true;
    EXPECT_EQ(matchHeap(h, set, 8 * MiB).refusal(), Refusal::Capacity);
}

TEST(MatchHeap, IovaRefusalsRefuseEveryHeapAlike) {
    const ConstraintSet set =
        setOf({{.name = "d", .maxSegmentSize = 64 * KiB, .maxSegmentCount = 2, .iommu = "camera-smmu"}});
    const std::string expected = matchHeap(systemHeap(), set, 1 * MiB).reason();
    for (const HeapProperties& h : {systemHeap(), cmaHeap(), carveout("c", 0x90000000, 64 * MiB, kAllAccess)}) {
        SCOPED_TRACE(h.name);
        EXPECT_EQ(matchHeap(h, set, 1 * MiB).refusal(), Refusal::IovaSegments);
        EXPECT_EQ(matchHeap(h, set, 1 * MiB).reason(), expected);
    }
}

// Mapping limits are each device's own (DESIGN.md section 5): a USB
// controller taking 64 KiB segments maps a display's contiguous block as
// many segments; merging its segment size with the display's one-segment
// count would invent a device that exists nowhere.
TEST(MatchHeap, SegmentLimitsAreCheckedPerDeviceNeverMerged) {
    const DeviceSpec display{.name = "display", .maxSegmentSize = 0xffffffff, .maxSegmentCount = 1, .contiguous = true};
    const DeviceSpec usb{.name = "usb", .maskBits = 32}; // 64 KiB segments, any number
    const ConstraintSet set = setOf({display, usb});
    EXPECT_TRUE(matchHeap(cmaHeap(), set, 8 * MiB).accepted()) << matchHeap(cmaHeap(), set, 8 * MiB).reason();
    EXPECT_EQ(matchHeap(systemHeap(), set, 8 * MiB).refusal(), Refusal::NotContiguous);
    ASSERT_EQ(set.mappings().size(), 2u);
    EXPECT_EQ(set.findMapping("usb")->maxSegmentSize, 64 * KiB);
    EXPECT_EQ(set.findMapping("display")->maxSegmentCount, 1u);

    // Each device's count is checked against its own segment size: a
    // device taking 4 segments of 1 MiB refuses a 8 MiB block, whoever
    // else takes it.
    const ConstraintSet tight = setOf({usb, {.name = "isp", .maxSegmentSize = 1 * MiB, .maxSegmentCount = 4}});
    const HeapVerdict v = matchHeap(cmaHeap(), tight, 8 * MiB);
    EXPECT_EQ(v.refusal(), Refusal::TooManySegments);
    EXPECT_EQ(v.reason(), "one 8 MiB chunk can split into 8 segments of up to 1 MiB but 'isp' accepts at most 4");

    // Behind an IOMMU too: each device splits the shared I/O virtual range
    // by its own limits.
    const ConstraintSet iova =
        setOf({{.name = "cam", .maxSegmentSize = 0xffffffff, .maxSegmentCount = 1, .iommu = "camera-smmu"},
               {.name = "dsp", .iommu = "camera-smmu"}});
    EXPECT_TRUE(matchHeap(systemHeap(), iova, 8 * MiB).accepted()) << matchHeap(systemHeap(), iova, 8 * MiB).reason();
}

TEST(MatchHeap, AcceptedVerdictHasNoReason) {
    const HeapVerdict v = matchHeap(systemHeap(), ConstraintSet(), 1 * MiB);
    EXPECT_TRUE(v.accepted());
    EXPECT_EQ(v.refusal(), Refusal::None);
    EXPECT_EQ(v.reason(), "");
    EXPECT_STREQ(refusalName(Refusal::None), "none");
    EXPECT_STREQ(refusalName(Refusal::IovaSegments), "iova-segments");
}

// A heap that serves a merged set serves each of its devices alone: the
// merge never loosens anything matching looks at.
TEST(MatchHeap, ServingTheSetImpliesServingEachDevice) {
    const std::vector<DeviceSpec> specs = {
        {.name = "scanout", .maskBits = 32, .maxSegmentSize = 0xffffffff, .maxSegmentCount = 1, .contiguous = true},
        {.name = "sg16", .maxSegmentSize = 64 * KiB, .maxSegmentCount = 16},
        {.name = "boundary", .maxSegmentSize = kNoLimit, .maxSegmentCount = 32, .boundaryMask = 0xffff},
        {.name = "aligned", .alignment = 1 * MiB},
        {.name = "secure", .accessBits = 0x2},
        {.name = "smmu", .maskBits = 32, .maxSegmentCount = 4, .iommu = "camera-smmu"},
        {.name = "wide"},
    };
    std::vector<HeapProperties> heaps = {systemHeap(), cmaHeap(), carveout("secure", 0xe8000000, 128 * MiB, 0x2),
                                         carveout("low", 0x90000000, 64 * MiB, kAllAccess)};
    heaps[3].chunkAlignment = 64 * KiB;
    for (uint64_t size : {64 * KiB, 1 * MiB, 16 * MiB})
        for (size_t i = 0; i < specs.size(); ++i)
            for (size_t j = 0; j < specs.size(); ++j) {
                const ConstraintSet a = setOf({specs[i]});
                const ConstraintSet b = setOf({specs[j]});
                const ConstraintSet ab = a.merge(b);
                for (const HeapProperties& h : heaps) {
                    SCOPED_TRACE(fmt::format("{} + {} on {}, {}", specs[i].name, specs[j].name, h.name, size));
                    if (matchHeap(h, ab, size).accepted()) {
                        EXPECT_TRUE(matchHeap(h, a, size).accepted());
                        EXPECT_TRUE(matchHeap(h, b, size).accepted());
                    }
                }
            }
}

// The greedy split Linux applies (a segment ends at the segment size, at a
// boundary, or at the end), run over every possible start.
uint64_t exactWorstSegments(uint64_t size, uint64_t maxSegment, uint64_t window, uint64_t startAlignment) {
    uint64_t worst = 0;
    for (uint64_t start = 0; start < 2 * window; start += startAlignment) {
        uint64_t count = 0;
        for (uint64_t pos = start; pos < start + size; ++count) {
            const uint64_t boundary = (pos / window + 1) * window;
            pos = std::min({pos + maxSegment, boundary, start + size});
        }
        worst = std::max(worst, count);
    }
    return worst;
}

TEST(SegmentArithmetic, ContiguousBoundIsExactOrOneAbove) {
    for (uint64_t window : {1, 2, 4, 8, 16, 32})
        for (uint64_t maxSegment : {1, 3, 4, 5, 8, 16, 40})
            for (uint64_t align : {1, 2, 4, 8, 16, 32, 64})
                for (uint64_t size = 1; size <= 48; ++size) {
                    SCOPED_TRACE(fmt::format("size {} max {} window {} align {}", size, maxSegment, window, align));
                    const uint64_t exact = exactWorstSegments(size, maxSegment, window, align);
                    const uint64_t bound = contiguousSegments(size, maxSegment, window - 1, align);
                    ASSERT_GE(bound, exact);
                    ASSERT_LE(bound, exact + 1);
                    if (align % window == 0) {
                        ASSERT_EQ(bound, exact);
                    }
                }
}

TEST(SegmentArithmetic, Cases) {
    EXPECT_EQ(contiguousSegments(1 * MiB, 64 * KiB, kNoLimit, 4096), 16u);
    EXPECT_EQ(contiguousSegments(1 * MiB + 4096, 64 * KiB, kNoLimit, 4096), 17u);
    EXPECT_EQ(contiguousSegments(1 * MiB, kNoLimit, kNoLimit, 4096), 1u);
    EXPECT_EQ(contiguousSegments(1 * MiB, 0xffffffff, kNoLimit, 4096), 1u);
    EXPECT_EQ(contiguousSegments(1 * MiB, 0, kNoLimit, 4096), UINT64_MAX);
    EXPECT_EQ(contiguousSegments(0, 64 * KiB, kNoLimit, 4096), 0u);
    EXPECT_EQ(contiguousSegments(1 * MiB, kNoLimit, 0xfff, 4096), 256u); // NVMe: 4 KiB boundaries, page-aligned
    EXPECT_EQ(contiguousSegments(UINT64_MAX - 4095, 4096, kNoLimit, 4096), (UINT64_MAX - 4095) / 4096);
    EXPECT_EQ(scatteredSegments(1 * MiB, 4 * KiB, 64 * KiB, kNoLimit), 256u);
    EXPECT_EQ(scatteredSegments(1 * MiB, 1 * MiB, 64 * KiB, kNoLimit), 16u);
    EXPECT_EQ(scatteredSegments(1 * MiB, 1 * MiB, kNoLimit, 0x3fff), 64u);
    EXPECT_EQ(scatteredSegments(1 * MiB, 0, 0, kNoLimit), UINT64_MAX);
}

} // namespace
} // namespace cenalloc
