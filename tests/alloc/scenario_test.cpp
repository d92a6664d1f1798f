// SPDX-License-Identifier: MIT
// Deferred allocation on the example platforms: the heap a kernel engineer would pick, in every attach order.
#include <cenalloc/context.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "support/context.h"
#include "support/core_board.h"

namespace cenalloc {
namespace {

using test::deviceOf;

constexpr uint64_t kFrame = 8 * MiB; // a 1080p-ish frame
constexpr uint64_t k1GiB = uint64_t{1} << 30;
constexpr uint64_t k4GiB = uint64_t{1} << 32;

std::unique_ptr<Context> loadContext(const std::string& file) {
    if (file.empty()) {
        auto context = Context::create(defaultPlatform());
        EXPECT_TRUE(context) << context.error().toString();
        return context ? std::move(*context) : nullptr;
    }
    auto platform = loadPlatformFile(std::string(CENALLOC_SOURCE_DIR "/examples/platforms/") + file);
    EXPECT_TRUE(platform) << platform.error().toString();
    if (!platform)
        return nullptr;
    auto context = Context::create(*platform);
    EXPECT_TRUE(context) << context.error().toString();
    return context ? std::move(*context) : nullptr;
}

struct Scenario {
    const char* what;
    std::string file; // empty: the built-in platform
    std::vector<std::string> devices;
    std::string heap;
    uint64_t highestEnd; // every chunk ends at or below this
    bool contiguous;
};

// The answers the example files' comments give, with the cache choice of the
// ranking policy for the default hint (CPU access rare): uncached when a
// device is not coherent, cached when all are.
std::vector<Scenario> scenarios() {
    return {
        // Both need one contiguous buffer a 30-bit master reaches: only the
        // CMA pool below 1 GiB is both.
        {"pi 4: display + camera", "rpi4.yaml", {"hvs", "unicam"}, "linux,cma", k1GiB, true},
        // Both translate through SMMUs, so scattered pages anywhere do; the
        // isp is not coherent and the CPU rarely looks: uncached.
        {"phone: gpu + isp", "phone-soc.yaml", {"gpu", "isp"}, "system-uncached", UINT64_MAX, false},
        // The display has no IOMMU and takes one contiguous 32-bit buffer.
        {"phone: gpu + isp + display", "phone-soc.yaml", {"gpu", "isp", "display"}, "linux,cma", k4GiB, true},
        // The capture card's 32-bit mask forces memory below 4 GiB; every PC
        // device is coherent, so explain picks the cached dma32 heap.
        {"pc: capture + gpu", "pc-x86.yaml", {"capture", "gpu"}, "system-dma32", k4GiB, false},
        {"pc: capture + gpu + nvme", "pc-x86.yaml", {"capture", "gpu", "nvme"}, "system-dma32", k4GiB, false},
        {"reference: gpu + isp + codec + display", "", {"gpu", "isp", "codec", "display"}, "linux,cma", k4GiB, true},
    };
}

TEST(Scenario, EveryAttachOrderGetsTheSameHeap) {
    for (const Scenario& s : scenarios()) {
        SCOPED_TRACE(s.what);
        auto context = loadContext(s.file);
        ASSERT_TRUE(context);
        auto explanation = context->explain(s.devices, kFrame);
        ASSERT_TRUE(explanation) << explanation.error().toString();
        ASSERT_TRUE(explanation->heap);
        EXPECT_EQ(*explanation->heap, s.heap) << explanation->cachePolicy;

        std::vector<std::string> order = s.devices;
        std::sort(order.begin(), order.end());
        int permutations = 0;
        do {
            SCOPED_TRACE(fmt::format("attach order {}", fmt::join(order, ", ")));
            ++permutations;
            auto buffer = context->create(kFrame);
            ASSERT_TRUE(buffer);
            std::vector<Attachment> attachments;
            for (const std::string& name : order) {
                auto a = (*buffer)->attach(deviceOf(*context, name));
                ASSERT_TRUE(a) << a.error().toString();
                attachments.push_back(std::move(*a));
            }
            // Every device maps; the first map allocates.
            std::vector<Attachment::Mapping> mappings;
            for (Attachment& a : attachments) {
                auto m = a.map(DmaDirection::Bidirectional);
                ASSERT_TRUE(m) << a.device().name() << ": " << m.error().toString();
                mappings.push_back(std::move(*m));
            }
            EXPECT_EQ((*buffer)->heapName(), s.heap);
            const std::vector<PhysChunk> chunks = (*buffer)->chunks();
            for (const PhysChunk& c : chunks)
                EXPECT_LE(c.end(), s.highestEnd);
            if (s.contiguous) {
                EXPECT_EQ(test::mergedChunks(chunks).size(), 1u);
            }

            // Data moves from the first device to the last through their own mappings.
            const std::vector<std::byte> data(4 * KiB, std::byte{0x5e});
            const DmaDevice& first = attachments.front().device();
            const DmaDevice& last = attachments.back().device();
            ASSERT_TRUE(first.write(mappings.front().segments().front().dmaAddress, data));
            std::vector<std::byte> out(4 * KiB);
            ASSERT_TRUE(last.read(mappings.back().segments().front().dmaAddress, out));
            EXPECT_EQ(out, data);
        } while (std::next_permutation(order.begin(), order.end()));
        int expected = 1;
        for (size_t i = 2; i <= s.devices.size(); ++i)
            expected *= static_cast<int>(i);
        EXPECT_EQ(permutations, expected);
    }
}

struct EagerCase {
    const char* what;
    std::string file;
    std::vector<std::string> devices; // the first is scatter-gather capable and attaches first
    std::string deferredHeap;
};

TEST(Scenario, EagerAllocationFromTheFirstDevicesChoiceFailsWhereDeferredSucceeds) {
    const EagerCase cases[] = {
        {"pi 4: gpu first, then the display", "rpi4.yaml", {"v3d", "hvs"}, "linux,cma"},
        {"phone: gpu and isp first, then the display", "phone-soc.yaml", {"gpu", "isp", "display"}, "linux,cma"},
        {"pc: gpu first, then the capture card", "pc-x86.yaml", {"gpu", "capture"}, "system-dma32"},
    };
    for (const EagerCase& c : cases) {
        SCOPED_TRACE(c.what);
        auto context = loadContext(c.file);
        ASSERT_TRUE(context);

        // The dma-heap way: the first device picks the heap it would use alone.
        auto alone = context->explain(std::vector<std::string>{c.devices.front()}, kFrame);
        ASSERT_TRUE(alone && alone->heap);
        const std::string preferred = *alone->heap;
        ASSERT_NE(preferred, c.deferredHeap) << "precondition: the first device alone prefers another heap";
        auto eager = context->allocate(preferred, kFrame);
        ASSERT_TRUE(eager) << eager.error().toString();
        std::vector<Attachment> eagerAttachments;
        auto firstAttachment = (*eager)->attach(deviceOf(*context, c.devices.front()));
        ASSERT_TRUE(firstAttachment) << firstAttachment.error().toString();
        eagerAttachments.push_back(std::move(*firstAttachment));
        bool refused = false;
        for (size_t i = 1; i < c.devices.size(); ++i) {
            auto a = (*eager)->attach(deviceOf(*context, c.devices[i]));
            if (a) {
                eagerAttachments.push_back(std::move(*a));
                continue;
            }
            EXPECT_EQ(a.error().code(), EBUSY);
            EXPECT_NE(a.error().message().find(c.devices[i]), std::string::npos) << a.error().message();
            refused = true;
        }
        EXPECT_TRUE(refused) << "eager storage from '" << preferred << "' served every device";

        // The same devices, the same order, on a deferred buffer.
        auto deferred = context->create(kFrame);
        ASSERT_TRUE(deferred);
        std::vector<Attachment> attachments;
        for (const std::string& name : c.devices) {
            auto a = (*deferred)->attach(deviceOf(*context, name));
            ASSERT_TRUE(a) << a.error().toString();
            attachments.push_back(std::move(*a));
        }
        for (Attachment& a : attachments) {
            auto m = a.map(DmaDirection::Bidirectional);
            ASSERT_TRUE(m) << a.device().name() << ": " << m.error().toString();
        }
        EXPECT_EQ((*deferred)->heapName(), c.deferredHeap);
    }
}

TEST(Scenario, ExampleAnswersWithoutConstrainingDevices) {
    struct Case {
        const char* what;
        std::string file;
        std::vector<std::string> devices;
        HeapKind kind;
        uint64_t highestEnd;
    };
    const Case cases[] = {
        // genet reaches 40 bits: the system heap anywhere in DRAM.
        {"pi 4: ethernet alone", "rpi4.yaml", {"genet"}, HeapKind::System, UINT64_MAX},
        // The 30-bit DMA engine gets scattered pages below 1 GiB.
        {"pi 4: legacy dma engine", "rpi4.yaml", {"dma"}, HeapKind::System, k1GiB},
        {"pc: gpu + nvme", "pc-x86.yaml", {"gpu", "nvme"}, HeapKind::System, UINT64_MAX},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        auto context = loadContext(c.file);
        ASSERT_TRUE(context);
        auto buffer = context->create(kFrame);
        ASSERT_TRUE(buffer);
        std::vector<Attachment> attachments;
        for (const std::string& name : c.devices) {
            auto a = (*buffer)->attach(deviceOf(*context, name));
            ASSERT_TRUE(a) << a.error().toString();
            attachments.push_back(std::move(*a));
        }
        for (Attachment& a : attachments) {
            auto m = a.map(DmaDirection::Bidirectional);
            ASSERT_TRUE(m) << a.device().name() << ": " << m.error().toString();
        }
        EXPECT_EQ(context->findHeap((*buffer)->heapName())->properties().kind, c.kind) << (*buffer)->heapName();
        for (const PhysChunk& chunk : (*buffer)->chunks())
            EXPECT_LE(chunk.end(), c.highestEnd);
    }
}

} // namespace
} // namespace cenalloc
