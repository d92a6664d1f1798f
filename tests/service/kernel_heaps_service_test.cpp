// SPDX-License-Identifier: MIT
// Tests of which host kernel heaps the service offers: only those whose buffers' end it can see, else none, said.
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include <cenalloc/context.h>

#include "service/config.h"
#include "service/service.h"

namespace cenalloc {
namespace {

namespace fs = std::filesystem;

/// A stand-in for /dev/dma_heap whose heaps are regular files: opened like
/// the kernel's, refusing DMA_HEAP_IOCTL_ALLOC with ENOTTY.
class FakeHeapDir {
public:
    FakeHeapDir() {
        char templ[] = "/tmp/cenalloc-service-dma-heap.XXXXXX";
        EXPECT_NE(::mkdtemp(templ), nullptr);
        path_ = templ;
        std::ofstream(path_ / "system").put('\0');
    }
    ~FakeHeapDir() { fs::remove_all(path_); }
    std::string path() const { return path_.string(); }

private:
    fs::path path_;
};

bool offers(const Service& service, const std::string& heap) {
    for (const auto& h : service.context().heaps())
        if (h->name() == heap)
            return true;
    return false;
}

TEST(ServiceKernelHeaps, AHeapWhoseProbeFailsIsNotOfferedAndTheNoteSaysWhy) {
    FakeHeapDir dir;
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
    FakeHeapDir dir;
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
