// SPDX-License-Identifier: MIT
// Tests of the heap registry: lookup by name, registration order, rejected names.
#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

#include "heaps/contiguous_heap.h"
#include "heaps/heap_registry.h"
#include "heaps/platform_heaps.h"

namespace cenalloc {
namespace {

Platform board() {
    Platform p;
    p.memory = {{.name = "dram", .base = 0x40000000, .size = 64 * MiB},
                {.name = "high", .base = 0x100000000, .size = 16 * MiB}};
    p.regions = {{.name = "cma", .kind = RegionKind::Cma, .base = 0x42000000, .size = 8 * MiB}};
    EXPECT_TRUE(validatePlatform(p));
    return p;
}

TEST(HeapRegistry, FindsHeapsByNameInRegistrationOrder) {
    const Platform p = board();
    Result<std::vector<std::shared_ptr<Heap>>> heaps = createPlatformHeaps(p, std::make_shared<PhysicalMemory>(p));
    ASSERT_TRUE(heaps);
    HeapRegistry registry;
    EXPECT_TRUE(registry.heaps().empty());
    EXPECT_EQ(registry.find("system"), nullptr);
    for (const auto& h : *heaps)
        ASSERT_TRUE(registry.add(h));

    EXPECT_EQ(registry.heaps(), *heaps);
    for (const auto& h : *heaps) {
        SCOPED_TRACE(h->name());
        EXPECT_EQ(registry.find(h->name()), h);
    }
    EXPECT_EQ(registry.find("cma")->properties().kind, HeapKind::Cma);
    EXPECT_EQ(registry.find("nope"), nullptr);
    EXPECT_EQ(registry.find(""), nullptr);
    EXPECT_EQ(registry.find("System"), nullptr);
}

TEST(HeapRegistry, RejectsEmptyNullAndDuplicateNames) {
    HeapRegistry registry;
    auto cma = createContiguousHeap({.name = "cma", .kind = RegionKind::Cma, .base = 0x42000000, .size = 8 * MiB});
    ASSERT_TRUE(registry.add(cma));

    struct Case {
        const char* what;
        std::shared_ptr<Heap> heap;
        int code;
    };
    const Case cases[] = {
        {"empty name", createContiguousHeap({.name = "", .base = 0x50000000, .size = 1 * MiB}), EINVAL},
        {"null heap", nullptr, EINVAL},
        {"duplicate name", createContiguousHeap({.name = "cma", .base = 0x50000000, .size = 1 * MiB}), EEXIST},
        {"same heap twice", cma, EEXIST},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        Result<void> r = registry.add(c.heap);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code(), c.code);
        // Nothing changed.
        ASSERT_EQ(registry.heaps().size(), 1u);
        EXPECT_EQ(registry.heaps()[0], cma);
        EXPECT_EQ(registry.find("cma"), cma);
    }
}

} // namespace
} // namespace cenalloc
