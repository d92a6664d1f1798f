// SPDX-License-Identifier: MIT
// Tests of which host kernel heaps the service offers (only those whose buffers' end it can see, else none, said),
// and of the placement a placed daemon's heap list carries.
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cenalloc/context.h>
#include <cenalloc/session.h>

#include "support/daemon.h"
#include "support/fake_kernel_heaps.h"
#include "support/fds.h"
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

// Op 24 (storage-fd): the fd of a buffer's bytes reaches the client through
// SCM_RIGHTS. On an unplaced daemon the bytes are in the buffer's memfd: the
// storage fd is that file, so what one side writes the other reads.
TEST(ServiceStorageFd, OfAModelledBufferIsItsOwnFileAndSeesItsBytes) {
    test::InProcessDaemon daemon;
    ASSERT_TRUE(daemon.ok());
    auto session = Session::connect(daemon.path());
    ASSERT_TRUE(session) << session.error().toString();
    const test::Baseline baseline = test::baselineOf(**session);
    const size_t fds = test::openFdCount();
    {
        auto buffer = (*session)->create(64 * 1024, "frame");
        ASSERT_TRUE(buffer) << buffer.error().toString();
        auto storage = (*session)->storageFd(buffer->borrow());
        ASSERT_TRUE(storage) << storage.error().toString();
        EXPECT_TRUE(test::hasCloexec(storage->get()));
        struct stat a {
        }, b{};
        ASSERT_EQ(::fstat(buffer->get(), &a), 0);
        ASSERT_EQ(::fstat(storage->get(), &b), 0);
        EXPECT_EQ(a.st_ino, b.st_ino) << "the bytes are in the buffer's own memfd";
        void* handle = ::mmap(nullptr, 64 * 1024, PROT_READ | PROT_WRITE, MAP_SHARED, buffer->get(), 0);
        ASSERT_NE(handle, MAP_FAILED);
        std::memset(handle, 0x3c, 64 * 1024);
        void* bytes = ::mmap(nullptr, 64 * 1024, PROT_READ, MAP_SHARED, storage->get(), 0);
        ASSERT_NE(bytes, MAP_FAILED);
        EXPECT_EQ(static_cast<const unsigned char*>(bytes)[4096], 0x3c);
        ::munmap(bytes, 64 * 1024);
        ::munmap(handle, 64 * 1024);

        // A memfd that is no buffer (the daemon closes a received memfd at
        // once; other files go to its closer thread, after the count below).
        UniqueFd notABuffer(::memfd_create("not-a-buffer", MFD_CLOEXEC));
        ASSERT_TRUE(notABuffer.valid());
        auto stranger = (*session)->storageFd(notABuffer.borrow());
        ASSERT_FALSE(stranger);
        EXPECT_EQ(stranger.error().code(), EBADF) << stranger.error().message();
        ASSERT_TRUE((*session)->release(buffer->borrow()));
    }
    test::expectBackTo(**session, baseline);
    EXPECT_EQ(test::openFdCount(), fds);
}

// On a daemon placed on the host kernel's heaps a deferred buffer's handle
// holds no bytes; its storage is the kernel's dma-buf, made when the client
// asks for the storage fd (the stand-in's nodes refuse: ENOTTY, as the
// kernel's answer), paid for by the quota its create charged.
TEST(ServiceStorageFd, OfADeferredBufferOnAPlacedDaemonAsksTheKernelHeapAndARefusalLeavesNothing) {
    FakeKernelHeapDir dir;
    test::InProcessDaemon daemon(test::placedOnStandIn(dir));
    ASSERT_TRUE(daemon.ok());
    auto session = Session::connect(daemon.path());
    ASSERT_TRUE(session) << session.error().toString();
    const test::Baseline baseline = test::baselineOf(**session);
    const size_t fds = test::openFdCount();
    {
        auto buffer = (*session)->create(1 << 20, "frame");
        ASSERT_TRUE(buffer) << buffer.error().toString();
        struct stat st {};
        ASSERT_EQ(::fstat(buffer->get(), &st), 0);
        EXPECT_EQ(st.st_size, 0) << "the handle the client gets holds no bytes";
        EXPECT_EQ(::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, buffer->get(), 0), MAP_FAILED)
            << "and cannot be written";

        auto storage = (*session)->storageFd(buffer->borrow());
        ASSERT_FALSE(storage);
        EXPECT_EQ(storage.error().code(), ENOTTY) << storage.error().message();
        EXPECT_NE(storage.error().message().find("heap 'system'"), std::string::npos) << storage.error().message();
        EXPECT_EQ(test::heapStats(**session, "system").failedAllocations, 1u);

        UniqueFd readOnly(::open(fmt::format("/proc/self/fd/{}", buffer->get()).c_str(), O_RDONLY | O_CLOEXEC));
        ASSERT_TRUE(readOnly.valid());
        auto refused = (*session)->storageFd(readOnly.borrow());
        ASSERT_FALSE(refused);
        EXPECT_EQ(refused.error().code(), EACCES) << refused.error().message();
        EXPECT_EQ(test::heapStats(**session, "system").failedAllocations, 1u) << "refused before the heap was asked";
        ASSERT_TRUE((*session)->release(buffer->borrow()));
    }
    test::expectBackTo(**session, baseline);
    EXPECT_EQ(test::openFdCount(), fds);
}

} // namespace
} // namespace cenalloc
