// SPDX-License-Identifier: MIT
// Tests of which host kernel heaps the service offers: only those whose buffers' end it can see, else none, said.
#include <string>

#include <gtest/gtest.h>

#include <cenalloc/context.h>

#include "support/fake_kernel_heaps.h"
#include "service/config.h"
#include "service/service.h"

namespace cenalloc {
namespace {

using test::FakeKernelHeapDir;

bool offers(const Service& service, const std::string& heap) {
    for (const auto& h : service.context().heaps())
        if (h->name() == heap)
            return true;
    return false;
}

TEST(ServiceKernelHeaps, AHeapWhoseProbeFailsIsNotOfferedAndTheNoteSaysWhy) {
    FakeKernelHeapDir dir;
    dir.addHeap("system");
    ServiceConfig config;
    config.context.kernelHeapDir = dir.path();
    auto service = Service::create(defaultPlatform(), config);
    ASSERT_TRUE(service) << service.error().toString();
    EXPECT_FALSE(offers(**service, "kernel:system"));
    EXPECT_TRUE(offers(**service, "system")) << "the modelled heaps stay";
    ASSERT_EQ((*service)->notes().size(), 1u);
    const std::string& note = (*service)->notes()[0];
    EXPECT_EQ(note.rfind("kernel heaps are not offered: probing kernel:system: ", 0), 0u) << note;
}

TEST(ServiceKernelHeaps, TurnedOffMeansNoneAndNothingToSay) {
    FakeKernelHeapDir dir;
    dir.addHeap("system");
    ServiceConfig config;
    config.context.kernelHeapDir = dir.path();
    config.context.kernelHeaps = false;
    auto service = Service::create(defaultPlatform(), config);
    ASSERT_TRUE(service) << service.error().toString();
    EXPECT_FALSE(offers(**service, "kernel:system"));
    EXPECT_TRUE((*service)->notes().empty());
}

TEST(ServiceKernelHeaps, AHostWithoutKernelHeapsHasNothingToSay) {
    ServiceConfig config;
    config.context.kernelHeapDir = "/nonexistent/dma_heap";
    auto service = Service::create(defaultPlatform(), config);
    ASSERT_TRUE(service) << service.error().toString();
    EXPECT_TRUE((*service)->notes().empty());
}

} // namespace
} // namespace cenalloc
