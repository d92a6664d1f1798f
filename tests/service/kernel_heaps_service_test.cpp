// SPDX-License-Identifier: MIT
// Tests of which host kernel heaps the service offers (only those whose buffers' end it can see, else none, said),
// and of the placement a placed daemon's heap list carries.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/context.h>
#include <cenalloc/session.h>

#include "support/daemon.h"
#include "support/fake_kernel_heaps.h"
#include "support/service.h"
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

TEST(ServiceKernelHeaps, TheHeapListThroughTheDaemonCarriesEachHeapsKernelPlacement) {
    FakeKernelHeapDir dir;
    test::InProcessDaemon daemon(test::placedOnStandIn(dir));
    ASSERT_TRUE(daemon.ok());
    auto session = Session::connect(daemon.path());
    ASSERT_TRUE(session) << session.error().toString();
    auto heaps = (*session)->heaps();
    ASSERT_TRUE(heaps) << heaps.error().toString();

    std::span<const HeapProperties> own = daemon.server().service().context().heapProperties();
    ASSERT_EQ(heaps->size(), own.size());
    for (size_t i = 0; i < own.size(); ++i) {
        SCOPED_TRACE(own[i].name);
        EXPECT_EQ((*heaps)[i].properties.kernelPlacement, own[i].kernelPlacement);
        EXPECT_EQ((*heaps)[i].properties.kernelHeap, own[i].kernelHeap);
    }
    auto placement = [&](std::string_view name) {
        for (const HeapInfo& h : *heaps)
            if (h.name == name)
                return std::pair(h.properties.kernelPlacement, h.properties.kernelHeap);
        ADD_FAILURE() << "no heap " << name;
        return std::pair(KernelPlacement::Modelled, std::string());
    };
    EXPECT_EQ(placement("system"), std::pair(KernelPlacement::Placed, std::string("system")));
    EXPECT_EQ(placement("linux,cma"), std::pair(KernelPlacement::NotInKernel, std::string()));
    EXPECT_EQ(placement("kernel:zz"), std::pair(KernelPlacement::Unplaced, std::string("zz")));
}

TEST(ServiceKernelHeaps, AnUnplacedDaemonsHeapListSaysEveryHeapIsModelled) {
    test::InProcessDaemon daemon;
    ASSERT_TRUE(daemon.ok());
    auto session = Session::connect(daemon.path());
    ASSERT_TRUE(session) << session.error().toString();
    auto heaps = (*session)->heaps();
    ASSERT_TRUE(heaps) << heaps.error().toString();
    for (const HeapInfo& h : *heaps)
        EXPECT_EQ(h.properties.kernelPlacement, KernelPlacement::Modelled) << h.name;
}

} // namespace
} // namespace cenalloc
