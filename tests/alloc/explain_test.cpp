// SPDX-License-Identifier: MIT
// explain(), chooseHeap() and checkAttach() on the example boards, in every device order.
#include <cenalloc/explain.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include "support/boards.h"

namespace cenalloc {
namespace {

using test::boardHeaps;
using test::makeDevice;

constexpr uint64_t kFrame = 8 * MiB; // a 1080p-ish frame buffer

const HeapExplanation& heapIn(const Explanation& e, std::string_view name) {
    auto it = std::find_if(e.heaps.begin(), e.heaps.end(), [&](const HeapExplanation& h) { return h.name == name; });
    EXPECT_NE(it, e.heaps.end()) << name;
    return *it;
}

size_t deviceIndex(const Explanation& e, std::string_view name) {
    auto it = std::find(e.devices.begin(), e.devices.end(), name);
    EXPECT_NE(it, e.devices.end()) << name;
    return static_cast<size_t>(it - e.devices.begin());
}

Explanation explainOk(const Platform& p, const std::vector<HeapProperties>& heaps,
                      const std::vector<std::string>& devices, uint64_t size, CpuAccess cpu) {
    Result<Explanation> e = explain(p, heaps, devices, size, cpu);
    EXPECT_TRUE(e) << e.error().toString();
    return e ? std::move(*e) : Explanation{};
}

struct Scenario {
    const char* what;
    Platform platform;
    std::vector<std::string> devices;
    CpuAccess cpu;
    std::string heap;
    std::string allocatingDevice; // empty: none
};

std::vector<Scenario> scenarios() {
    return {
        {"pi: display + camera need the cma pool below 1 GiB",
         test::piBoard(),
         {"hvs", "unicam"},
         CpuAccess::Rare,
         "linux,cma",
         "hvs"},
        {"pi: ethernet alone, cpu often: the cached system heap",
         test::piBoard(),
         {"genet"},
         CpuAccess::Often,
         "system",
         "genet"},
        {"phone: gpu + isp, cpu often: the system heap",
         test::phoneBoard(),
         {"gpu", "isp"},
         CpuAccess::Often,
         "system",
         "isp"},
        {"phone: gpu + isp, cpu rarely: the uncached system heap (the isp is not coherent)",
         test::phoneBoard(),
         {"gpu", "isp"},
         CpuAccess::Rare,
         "system-uncached",
         "isp"},
        {"phone: gpu + isp + display move to contiguous memory",
         test::phoneBoard(),
         {"gpu", "isp", "display"},
         CpuAccess::Often,
         "linux,cma",
         "display"},
        {"phone: gpu + isp + display, cpu none",
         test::phoneBoard(),
         {"gpu", "isp", "display"},
         CpuAccess::None,
         "linux,cma",
         "display"},
        {"pc: the 32-bit capture card forces the dma32 heap",
         test::pcBoard(),
         {"capture", "gpu"},
         CpuAccess::Rare,
         "system-dma32",
         "capture"},
        {"pc: gpu + nvme take the system heap; the gpu's 44-bit mask is the tighter",
         test::pcBoard(),
         {"gpu", "nvme"},
         CpuAccess::Rare,
         "system",
         "gpu"},
    };
}

TEST(Explain, ScenariosChooseWhatAKernelEngineerWould) {
    for (const Scenario& s : scenarios()) {
        SCOPED_TRACE(s.what);
        const std::vector<HeapProperties> heaps = boardHeaps(s.platform);
        const Explanation e = explainOk(s.platform, heaps, s.devices, kFrame, s.cpu);
        EXPECT_TRUE(e.satisfiable);
        EXPECT_FALSE(e.conflict);
        ASSERT_TRUE(e.heap);
        EXPECT_EQ(*e.heap, s.heap);
        ASSERT_FALSE(e.ranking.empty());
        EXPECT_EQ(e.ranking.front(), s.heap);
        EXPECT_EQ(e.allocatingDevice.value_or(""), s.allocatingDevice) << e.allocatingReason;
        EXPECT_EQ(e.devices, s.devices);
        EXPECT_EQ(e.heaps.size(), heaps.size());
        // The chosen heap serves every device, alone and together.
        const HeapExplanation& chosen = heapIn(e, s.heap);
        EXPECT_TRUE(chosen.accepted);
        EXPECT_TRUE(chosen.combined.accepted());
        for (const HeapVerdict& v : chosen.devices)
            EXPECT_EQ(v.reason(), "");
        // chooseHeap() agrees, on either heap-list spelling.
        Result<ConstraintSet> set = ConstraintSet();
        for (const std::string& d : s.devices)
            set = set->merge(*s.platform.findDevice(d), s.platform);
        ASSERT_TRUE(set);
        EXPECT_EQ(*set, e.constraints);
        Result<const HeapProperties*> h = chooseHeap(*set, heaps, kFrame, s.cpu);
        ASSERT_TRUE(h) << h.error().toString();
        EXPECT_EQ((*h)->name, s.heap);
        std::vector<const HeapProperties*> ptrs;
        for (const HeapProperties& hp : heaps)
            ptrs.push_back(&hp);
        Result<const HeapProperties*> hp = chooseHeap(*set, ptrs, kFrame, s.cpu);
        ASSERT_TRUE(hp);
        EXPECT_EQ(*hp, *h);
    }
}

TEST(Explain, ScenariosDoNotDependOnDeviceOrder) {
    for (const Scenario& s : scenarios()) {
        SCOPED_TRACE(s.what);
        const std::vector<HeapProperties> heaps = boardHeaps(s.platform);
        std::vector<std::string> order = s.devices;
        std::sort(order.begin(), order.end());
        do {
            SCOPED_TRACE(fmt::format("{}", fmt::join(order, ",")));
            const Explanation e = explainOk(s.platform, heaps, order, kFrame, s.cpu);
            EXPECT_EQ(e.heap.value_or(""), s.heap);
            EXPECT_EQ(e.allocatingDevice.value_or(""), s.allocatingDevice);
            // Attaching one by one, checking each attach, reaches the same set and heap.
            ConstraintSet attached;
            for (const std::string& d : order) {
                Result<ConstraintSet> next =
                    checkAttach(attached, *s.platform.findDevice(d), s.platform, heaps, kFrame);
                ASSERT_TRUE(next) << next.error().toString();
                attached = *next;
            }
            EXPECT_EQ(attached, e.constraints);
            EXPECT_EQ((*chooseHeap(attached, heaps, kFrame, s.cpu))->name, s.heap);
        } while (std::next_permutation(order.begin(), order.end()));
    }
}

TEST(Explain, PiDisplayAndCameraRefuseEverySystemHeapWithAReason) {
    const Platform p = test::piBoard();
    const std::vector<HeapProperties> heaps = boardHeaps(p);
    const Explanation e = explainOk(p, heaps, {"hvs", "unicam"}, kFrame, CpuAccess::Rare);
    for (const char* name : {"system", "system-uncached"}) {
        SCOPED_TRACE(name);
        const HeapExplanation& h = heapIn(e, name);
        EXPECT_FALSE(h.accepted);
        ASSERT_EQ(h.devices.size(), 2u);
        for (const HeapVerdict& v : h.devices) {
            EXPECT_EQ(v.refusal(), Refusal::NotContiguous);
            EXPECT_EQ(v.reason(), "chunks can be as small as 4 KiB but the device needs one contiguous buffer");
        }
        EXPECT_EQ(h.combined.reason(), "chunks can be as small as 4 KiB but the devices need one contiguous buffer");
    }
    EXPECT_EQ(e.ranking, std::vector<std::string>{"linux,cma"});
    EXPECT_FALSE(e.preferCached);
    EXPECT_EQ(e.cachePolicy, "uncached: 'hvs' and 'unicam' are not coherent and the cpu accesses the buffer rarely");
    EXPECT_EQ(e.allocatingReason, "'hvs' alone would choose 'linux,cma' too; of the 2 devices that would, its limits "
                                  "are the tightest (contiguous, 30-bit mask, at most 1 segment, segments of up to "
                                  "4.0 GiB, not coherent)");
    // The merged constraints are the devices' intersection.
    EXPECT_EQ(e.constraints.addressLimit(), 0x3fffffffu);
    EXPECT_TRUE(e.constraints.physical().needsContiguous());
    EXPECT_NE(describe(e.constraints).find("dma_mask: 0x000000003fffffff (30-bit mask)"), std::string::npos);
}

TEST(Explain, PhoneDisplayNeedsWhatTheSystemHeapsCannotGive) {
    const Platform p = test::phoneBoard();
    const std::vector<HeapProperties> heaps = boardHeaps(p);
    const Explanation e = explainOk(p, heaps, {"gpu", "isp", "display"}, kFrame, CpuAccess::Often);
    const size_t gpu = deviceIndex(e, "gpu");
    const size_t display = deviceIndex(e, "display");
    for (const char* name : {"system", "system-uncached", "system-dma32", "system-uncached-dma32"}) {
        SCOPED_TRACE(name);
        const HeapExplanation& h = heapIn(e, name);
        EXPECT_FALSE(h.accepted);
        EXPECT_TRUE(h.devices[gpu].accepted()); // behind its SMMU the gpu takes any pages
        EXPECT_EQ(h.devices[display].refusal(), Refusal::NotContiguous);
    }
    // The secure carveout is memory the display cannot reach.
    const HeapExplanation& secure = heapIn(e, "vpu-secure");
    EXPECT_EQ(secure.devices[display].reason(), "heap memory has access bits 0x2; the device reaches only 0x1");
    EXPECT_EQ(secure.devices[gpu].reason(), "heap memory has access bits 0x2; the device reaches only 0x1");
    EXPECT_EQ(e.ranking, std::vector<std::string>{"linux,cma"});
    // The gpu and the isp keep their IOVA spaces in the merged set.
    ASSERT_EQ(e.constraints.iovaSpaces().size(), 2u);
    EXPECT_EQ(e.constraints.iovaSpaces()[0].iommu, "camera-smmu");
    EXPECT_EQ(e.constraints.iovaSpaces()[1].iommu, "gpu-smmu");
}

TEST(Explain, PcCaptureCardKeepsTheSystemHeapButRanksDma32First) {
    const Platform p = test::pcBoard();
    const std::vector<HeapProperties> heaps = boardHeaps(p);
    const Explanation e = explainOk(p, heaps, {"capture", "gpu"}, kFrame, CpuAccess::Rare);
    // Scattered pages below 4 GiB from the wide heap would do too; dma32 ranks first.
    EXPECT_EQ(e.ranking,
              (std::vector<std::string>{"system-dma32", "system-uncached-dma32", "system", "system-uncached"}));
    EXPECT_TRUE(e.preferCached);
    EXPECT_EQ(e.cachePolicy, "cached: every device is coherent");
    EXPECT_EQ(e.allocatingReason, "'capture' alone would choose 'system-dma32' too");
}

// A platform with a CMA pool on each side of 4 GiB: a 32-bit scatter-gather
// device alone wants dma32 pages, a 64-bit contiguous device alone wants the
// wide pool, together they need the low pool, which neither would pick.
Platform twoPoolBoard() {
    Platform p = test::pcBoard();
    p.name = "two-pools";
    ReservedRegion low;
    low.name = "cma-low";
    low.base = 0x80000000;
    low.size = 256 * MiB;
    ReservedRegion high;
    high.name = "cma-high";
    high.base = 0x200000000;
    high.size = 256 * MiB;
    p.regions = {low, high};
    p.devices = {makeDevice({.name = "sg32", .maskBits = 32}),
                 makeDevice({.name = "contig64", .maxSegmentSize = 0xffffffff, .contiguous = true})};
    return p;
}

TEST(Explain, NoDeviceAllocatesWhenNoOwnPreferenceWorks) {
    const Platform p = twoPoolBoard();
    ASSERT_TRUE(validatePlatform(p));
    const std::vector<HeapProperties> heaps = boardHeaps(p);
    std::vector<std::string> devices = {"contig64", "sg32"};
    do {
        const Explanation e = explainOk(p, heaps, devices, kFrame, CpuAccess::Often);
        EXPECT_EQ(e.heap.value_or(""), "cma-low");
        EXPECT_FALSE(e.allocatingDevice);
        EXPECT_EQ(e.allocatingReason,
                  "no single device's own preference works: cenalloc must allocate ('contig64' alone would choose "
                  "'cma-high', 'sg32' alone would choose 'system-dma32')");
    } while (std::next_permutation(devices.begin(), devices.end()));
}

// A secure-only master and a master that cannot reach secure memory
// conflict, whatever else shares the buffer.
Platform securePhone() {
    Platform p = test::phoneBoard();
    p.devices.push_back(makeDevice({.name = "secure-dsp", .maskBits = 32, .accessBits = 0x2}));
    // Harmless: any memory, segments of any size (the 64 KiB default would
    // clash with the display's one segment).
    p.devices.push_back(makeDevice({.name = "dma-a", .maskBits = 40, .maxSegmentSize = 0xffffffff}));
    p.devices.push_back(makeDevice({.name = "dma-b", .maskBits = 36, .maxSegmentSize = 0xffffffff, .coherent = false}));
    return p;
}

TEST(Explain, ConflictNamesExactlyTheTwoDevicesThatClash) {
    const Platform p = securePhone();
    const std::vector<HeapProperties> heaps = boardHeaps(p);
    std::vector<std::string> devices = {"codec", "display", "dma-a", "dma-b", "secure-dsp"};
    int orders = 0;
    do {
        SCOPED_TRACE(fmt::format("{}", fmt::join(devices, ",")));
        const Explanation e = explainOk(p, heaps, devices, kFrame, CpuAccess::Rare);
        EXPECT_FALSE(e.satisfiable);
        EXPECT_FALSE(e.heap);
        EXPECT_FALSE(e.allocatingDevice);
        EXPECT_TRUE(e.ranking.empty());
        ASSERT_TRUE(e.conflict);
        EXPECT_EQ(e.conflict->devices, (std::vector<std::string>{"display", "secure-dsp"}));
        ASSERT_EQ(e.conflict->heaps.size(), heaps.size());
        ++orders;
    } while (std::next_permutation(devices.begin(), devices.end()) && orders < 24);

    const Explanation e = explainOk(p, heaps, devices, kFrame, CpuAccess::Rare);
    // Every heap says why, naming the device it refuses alone when there is one.
    for (size_t i = 0; i < heaps.size(); ++i) {
        SCOPED_TRACE(heaps[i].name);
        EXPECT_EQ(e.conflict->heaps[i].heap, heaps[i].name);
        EXPECT_FALSE(e.conflict->heaps[i].reason.empty());
    }
    const auto secure = std::find_if(e.conflict->heaps.begin(), e.conflict->heaps.end(),
                                     [](const ConflictRefusal& r) { return r.heap == "vpu-secure"; });
    ASSERT_NE(secure, e.conflict->heaps.end());
    EXPECT_EQ(secure->device, "display");
    EXPECT_EQ(secure->reason, "heap memory has access bits 0x2; the device reaches only 0x1");
    const auto cma = std::find_if(e.conflict->heaps.begin(), e.conflict->heaps.end(),
                                  [](const ConflictRefusal& r) { return r.heap == "linux,cma"; });
    ASSERT_NE(cma, e.conflict->heaps.end());
    EXPECT_EQ(cma->device, "");
    EXPECT_EQ(cma->reason, "the devices' access bits have no bit in common: together they reach no memory");
    EXPECT_EQ(e.conflict->reason.rfind("no heap serves 'display' and 'secure-dsp' together: heap 'system' refuses "
                                       "'display': chunks can be as small as 4 KiB",
                                       0),
              0u)
        << e.conflict->reason;
    EXPECT_TRUE(e.constraints.unsatisfiable());
}

Platform bitsBoard(std::vector<uint64_t> bits) {
    Platform p = test::pcBoard();
    p.devices.clear();
    for (size_t i = 0; i < bits.size(); ++i)
        p.devices.push_back(makeDevice({.name = fmt::format("d{}", i), .accessBits = bits[i]}));
    p.devices.push_back(makeDevice({.name = "plain"}));
    return p;
}

std::vector<std::string> deviceNames(const Platform& p) {
    std::vector<std::string> names;
    for (const Device& d : p.devices)
        names.push_back(d.name);
    return names;
}

TEST(Explain, ConflictOfThreeWhenEveryPairCanShare) {
    // Each pair shares an access bit; the three together share none.
    const Platform p = bitsBoard({0x3, 0x5, 0x6});
    const Explanation e = explainOk(p, boardHeaps(p), deviceNames(p), kFrame, CpuAccess::Rare);
    ASSERT_TRUE(e.conflict);
    EXPECT_EQ(e.conflict->devices, (std::vector<std::string>{"d0", "d1", "d2"}));
    EXPECT_EQ(e.conflict->reason.rfind("no heap serves 'd0', 'd1' and 'd2' together: heap 'system' refuses them "
                                       "together: the devices' access bits have no bit in common",
                                       0),
              0u)
        << e.conflict->reason;
}

TEST(Explain, WholeSetConflictsWhenNoThreeDo) {
    const Platform p = bitsBoard({0x7, 0xb, 0xd, 0xe});
    const Explanation e = explainOk(p, boardHeaps(p), deviceNames(p), kFrame, CpuAccess::Rare);
    ASSERT_TRUE(e.conflict);
    EXPECT_EQ(e.conflict->devices, (std::vector<std::string>{"d0", "d1", "d2", "d3", "plain"}));
    EXPECT_NE(e.conflict->reason.find("no heap serves all 5 devices together, though any 3 of them can share"),
              std::string::npos)
        << e.conflict->reason;
}

TEST(Explain, SingleDeviceNoHeapServes) {
    Platform p = test::pcBoard();
    p.devices.push_back(makeDevice({.name = "odd", .accessBits = 0x100}));
    std::vector<HeapProperties> heaps = boardHeaps(p);
    for (HeapProperties& h : heaps)
        h.accessBits = 0x1;
    const Explanation e = explainOk(p, heaps, {"gpu", "odd"}, kFrame, CpuAccess::Rare);
    ASSERT_TRUE(e.conflict);
    EXPECT_EQ(e.conflict->devices, std::vector<std::string>{"odd"});
    EXPECT_EQ(e.conflict->reason.rfind("no heap serves 'odd': heap 'system' refuses 'odd': heap memory has access "
                                       "bits 0x1; the device reaches only 0x100",
                                       0),
              0u)
        << e.conflict->reason;
}

TEST(Explain, DevicesThatOnlyClashTogetherGetACombinedReason) {
    // Each reaches one kind of memory the pools are made of (0x1 and 0x4 of
    // their 0x5), but the two have only 0x2 in common: a pool serves each
    // alone and neither together.
    Platform p = twoPoolBoard();
    for (ReservedRegion& r : p.regions)
        r.accessBits = 0x5;
    p.devices = {makeDevice({.name = "left", .maxSegmentSize = 0xffffffff, .contiguous = true, .accessBits = 0x3}),
                 makeDevice({.name = "right", .maxSegmentSize = 0xffffffff, .contiguous = true, .accessBits = 0x6})};
    const std::vector<HeapProperties> heaps = boardHeaps(p);
    const Explanation e = explainOk(p, heaps, {"left", "right"}, 1 * MiB, CpuAccess::Rare);
    EXPECT_FALSE(e.satisfiable);
    const HeapExplanation& pool = heapIn(e, "cma-low");
    EXPECT_TRUE(pool.devices[0].accepted());
    EXPECT_TRUE(pool.devices[1].accepted());
    EXPECT_FALSE(pool.accepted);
    EXPECT_EQ(pool.combined.reason(), "heap memory has access bits 0x5; the devices reach only 0x2");
    // The system heap refuses "left" alone already: its pages may be scattered.
    EXPECT_EQ(heapIn(e, "system").devices[0].refusal(), Refusal::NotContiguous);
    ASSERT_TRUE(e.conflict);
    EXPECT_EQ(e.conflict->devices, (std::vector<std::string>{"left", "right"}));
    EXPECT_EQ(e.conflict->heaps[0].device, "left");
}

// Segment limits of different devices never clash: each maps the storage
// under its own (DESIGN.md section 5). One takes at most 16 segments, the
// other only 4 KiB ones; a contiguous pool's 1 MiB block is one segment to
// the first and 256 to the second, as Linux maps it for each attachment.
TEST(Explain, SegmentLimitsOfDifferentDevicesNeverClash) {
    Platform p = twoPoolBoard();
    p.devices = {makeDevice({.name = "few", .maxSegmentSize = 0xffffffff, .maxSegmentCount = 16}),
                 makeDevice({.name = "small", .maxSegmentSize = 4096})};
    const std::vector<HeapProperties> heaps = boardHeaps(p);
    const Explanation e = explainOk(p, heaps, {"few", "small"}, 1 * MiB, CpuAccess::Rare);
    EXPECT_TRUE(e.satisfiable);
    EXPECT_TRUE(heapIn(e, "cma-low").accepted);
    EXPECT_TRUE(heapIn(e, "cma-low").combined.accepted()) << heapIn(e, "cma-low").combined.reason();
    // The system heap still refuses "few": its pages may be 256 scattered ones.
    EXPECT_EQ(heapIn(e, "system").devices[0].refusal(), Refusal::TooManySegments);
    EXPECT_FALSE(e.conflict);
    ASSERT_EQ(e.constraints.mappings().size(), 2u);
    EXPECT_EQ(e.constraints.findMapping("small")->maxSegmentSize, 4096u);
    EXPECT_EQ(e.constraints.findMapping("few")->maxSegmentCount, 16u);
}

// explain says which facts were assumed (a class default, not a cited
// driver row) and which device bounces through a restricted pool, so a
// user knows what to confirm and that no zero-copy sharing happens.
TEST(Explain, SaysWhichFactsWereAssumedAndWhoBounces) {
    Platform p = twoPoolBoard();
    p.regions.push_back({.name = "wifi-bounce",
                         .kind = RegionKind::Carveout,
                         .base = 0x90000000,
                         .size = 4 * MiB,
                         .owners = {"wifi"},
                         .restricted = true});
    Device vpu = makeDevice({.name = "vpu", .maxSegmentSize = 0xffffffff, .maxSegmentCount = 1, .contiguous = true});
    vpu.assumedFacts = {"needs one contiguous buffer: a codec engine without an IOMMU and no driver row"};
    Device wifi = makeDevice({.name = "wifi", .maskBits = 30});
    wifi.restrictedPool = "wifi-bounce";
    wifi.factSource = "drivers/net/wireless/example.c: dma_set_mask(DMA_BIT_MASK(30))";
    p.devices = {vpu, wifi};
    ASSERT_TRUE(validatePlatform(p));
    const Explanation e = explainOk(p, boardHeaps(p), {"vpu", "wifi"}, 1 * MiB, CpuAccess::Rare);
    ASSERT_EQ(e.facts.size(), 2u);
    EXPECT_EQ(e.facts[0].device, "vpu");
    EXPECT_EQ(e.facts[0].assumed, vpu.assumedFacts);
    EXPECT_EQ(e.facts[0].source, "");
    EXPECT_EQ(e.facts[1].source, wifi.factSource);
    EXPECT_EQ(e.facts[1].restrictedPool, "wifi-bounce");
    ASSERT_EQ(e.notes.size(), 2u);
    EXPECT_NE(e.notes[0].find("'vpu': assumed, confirm with its driver: needs one contiguous buffer"),
              std::string::npos)
        << e.notes[0];
    EXPECT_NE(e.notes[1].find("'wifi' bounces every DMA through its restricted-dma-pool 'wifi-bounce'"),
              std::string::npos)
        << e.notes[1];
    // The bouncing device's 30-bit mask limits its pool, not the buffer: a
    // contiguous pool above 1 GiB still serves the pair.
    EXPECT_TRUE(e.satisfiable);
    EXPECT_EQ(e.constraints.addressLimit(), kNoLimit);
    // The restricted pool is no heap.
    for (const HeapExplanation& h : e.heaps)
        EXPECT_NE(h.name, "wifi-bounce");
}

// A pool a device names in its memory-region is that device's alone.
TEST(Explain, APrivatePoolServesItsOwnerOnly) {
    Platform p = twoPoolBoard();
    p.regions[0].owners = {"contig64"};
    p.devices.push_back(makeDevice({.name = "display", .maxSegmentSize = 0xffffffff, .contiguous = true}));
    ASSERT_TRUE(validatePlatform(p));
    const std::vector<HeapProperties> heaps = boardHeaps(p);
    const Explanation both = explainOk(p, heaps, {"contig64", "display"}, kFrame, CpuAccess::Rare);
    const HeapExplanation& pool = heapIn(both, "cma-low");
    EXPECT_FALSE(pool.accepted);
    EXPECT_EQ(pool.owners, std::vector<std::string>{"contig64"});
    EXPECT_EQ(pool.devices[1].refusal(), Refusal::PrivatePool);
    EXPECT_EQ(pool.devices[1].reason(),
              "a pool private to other devices (their memory-region): 'display' may not use it");
    EXPECT_EQ(both.heap.value_or(""), "cma-high");
    const Explanation alone = explainOk(p, heaps, {"contig64"}, kFrame, CpuAccess::Rare);
    EXPECT_TRUE(heapIn(alone, "cma-low").accepted);
}

TEST(Explain, NoDevicesGetsTheBestHeapAndNoAllocatingDevice) {
    const Platform p = test::phoneBoard();
    const Explanation e = explainOk(p, boardHeaps(p), {}, kFrame, CpuAccess::None);
    EXPECT_TRUE(e.satisfiable);
    EXPECT_EQ(e.heap.value_or(""), "system");
    EXPECT_FALSE(e.allocatingDevice);
    EXPECT_EQ(e.constraints, ConstraintSet());
}

TEST(Explain, SizeIsRoundedUpToAPage) {
    const Platform p = test::pcBoard();
    const Explanation e = explainOk(p, boardHeaps(p), {"gpu"}, 1, CpuAccess::Rare);
    EXPECT_EQ(e.size, kPageSize);
    EXPECT_EQ(e.cpuAccess, CpuAccess::Rare);
}

TEST(Explain, BadInputIsRefusedWithErrno) {
    const Platform p = test::phoneBoard();
    const std::vector<HeapProperties> heaps = boardHeaps(p);
    struct Case {
        const char* what;
        std::vector<std::string> devices;
        uint64_t size;
        int code;
        const char* text;
    };
    const Case cases[] = {
        {"unknown device", {"gpu", "gpu2"}, kFrame, ENOENT, "platform 'phone-soc' has no device 'gpu2'"},
        {"device twice", {"gpu", "isp", "gpu"}, kFrame, EINVAL, "device 'gpu' is listed twice"},
        {"zero size", {"gpu"}, 0, EINVAL, "buffer size 0"},
        {"size that overflows", {"gpu"}, UINT64_MAX - 1, EINVAL, "overflows"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        Result<Explanation> e = explain(p, heaps, c.devices, c.size, CpuAccess::Rare);
        ASSERT_FALSE(e);
        EXPECT_EQ(e.error().code(), c.code);
        EXPECT_NE(e.error().message().find(c.text), std::string::npos) << e.error().message();
    }
    // Devices given by description: their IOMMU must exist, none may be null.
    const Device lost = makeDevice({.name = "lost", .iommu = "nowhere"});
    const std::vector<const Device*> withLost = {p.findDevice("gpu"), &lost};
    Result<Explanation> e = explain(p, heaps, std::span<const Device* const>(withLost), kFrame, CpuAccess::Rare);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code(), EINVAL);
    const std::vector<const Device*> withNull = {p.findDevice("gpu"), nullptr};
    e = explain(p, heaps, std::span<const Device* const>(withNull), kFrame, CpuAccess::Rare);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code(), EINVAL);
}

TEST(Explain, DevicesByDescriptionNeedNotBeInThePlatform) {
    const Platform p = test::phoneBoard();
    const Device scanout = makeDevice(
        {.name = "hdmi", .maskBits = 32, .maxSegmentSize = 0xffffffff, .maxSegmentCount = 1, .contiguous = true});
    const std::vector<const Device*> devices = {p.findDevice("gpu"), &scanout};
    Result<Explanation> e = explain(p, boardHeaps(p), std::span<const Device* const>(devices), kFrame, CpuAccess::Rare);
    ASSERT_TRUE(e) << e.error().toString();
    EXPECT_EQ(e->heap.value_or(""), "linux,cma");
    EXPECT_EQ(e->allocatingDevice.value_or(""), "hdmi");
}

TEST(ChooseHeap, NamesEveryHeapWhenNoneServes) {
    const Platform p = securePhone();
    const std::vector<HeapProperties> heaps = boardHeaps(p);
    ConstraintSet set = *ConstraintSet::forDevice(*p.findDevice("display"), p);
    set = *set.merge(*p.findDevice("secure-dsp"), p);
    Result<const HeapProperties*> h = chooseHeap(set, heaps, kFrame, CpuAccess::Rare);
    ASSERT_FALSE(h);
    EXPECT_EQ(h.error().code(), EINVAL);
    for (const HeapProperties& hp : heaps)
        EXPECT_NE(h.error().message().find(fmt::format("heap '{}': ", hp.name)), std::string::npos) << hp.name;
    Result<const HeapProperties*> none =
        chooseHeap(ConstraintSet(), std::span<const HeapProperties>(), kFrame, CpuAccess::Rare);
    ASSERT_FALSE(none);
    EXPECT_NE(none.error().message().find("there are no heaps"), std::string::npos);
    Result<const HeapProperties*> zero = chooseHeap(ConstraintSet(), heaps, 0, CpuAccess::Rare);
    ASSERT_FALSE(zero);
    EXPECT_EQ(zero.error().code(), EINVAL);
}

TEST(CheckAttach, RefusesTheAttachThatLeavesNoHeapAndSaysWhy) {
    const Platform p = securePhone();
    const std::vector<HeapProperties> heaps = boardHeaps(p);
    ConstraintSet attached;
    for (const char* d : {"gpu", "isp", "display"})
        attached = *checkAttach(attached, *p.findDevice(d), p, heaps, kFrame);
    const ConstraintSet before = attached;
    Result<ConstraintSet> r = checkAttach(attached, *p.findDevice("secure-dsp"), p, heaps, kFrame);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EINVAL);
    const std::string& m = r.error().message();
    EXPECT_EQ(m.rfind("attaching 'secure-dsp' would leave no heap for the buffer: ", 0), 0u) << m;
    EXPECT_NE(m.find("heap 'system' refuses the devices already attached: chunks can be as small as 4 KiB but the "
                     "devices need one contiguous buffer"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("heap 'linux,cma' refuses 'secure-dsp' together with the devices already attached: the devices' "
                     "access bits have no bit in common"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("heap 'vpu-secure' refuses the devices already attached: heap memory has access bits 0x2"),
              std::string::npos)
        << m;
    EXPECT_EQ(attached, before);
}

TEST(CheckAttach, NamesTheDeviceWhenAHeapRefusesItAlone) {
    Platform p = test::pcBoard();
    p.devices.push_back(makeDevice({.name = "tiny", .maskBits = 16}));
    const std::vector<HeapProperties> heaps = boardHeaps(p);
    Result<ConstraintSet> r = checkAttach(ConstraintSet(), *p.findDevice("tiny"), p, heaps, kFrame);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("heap 'system' refuses 'tiny': memory starts at 0x100000, above the device's "
                                       "16-bit mask"),
              std::string::npos)
        << r.error().message();
}

TEST(CheckAttach, BadInput) {
    const Platform p = test::pcBoard();
    const std::vector<HeapProperties> heaps = boardHeaps(p);
    Result<ConstraintSet> zero = checkAttach(ConstraintSet(), *p.findDevice("gpu"), p, heaps, 0);
    ASSERT_FALSE(zero);
    EXPECT_EQ(zero.error().code(), EINVAL);
    Result<ConstraintSet> lost =
        checkAttach(ConstraintSet(), makeDevice({.name = "lost", .iommu = "nowhere"}), p, heaps, kFrame);
    ASSERT_FALSE(lost);
    EXPECT_EQ(lost.error().code(), EINVAL);
    std::vector<const HeapProperties*> none;
    Result<ConstraintSet> empty = checkAttach(ConstraintSet(), *p.findDevice("gpu"), p, none, kFrame);
    ASSERT_FALSE(empty);
    EXPECT_NE(empty.error().message().find("there are no heaps"), std::string::npos);
}

} // namespace
} // namespace cenalloc
