// SPDX-License-Identifier: MIT
// A stand-in for /dev/dma_heap in tests: entries open like the kernel's heaps and refuse to allocate.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace cenalloc::test {

/// A temporary directory standing in for /dev/dma_heap. Its heaps are
/// regular files, which open() accepts and DMA_HEAP_IOCTL_ALLOC refuses with
/// ENOTTY, so everything up to the kernel's answer runs on any host.
class FakeKernelHeapDir {
public:
    FakeKernelHeapDir() {
        char templ[] = "/tmp/cenalloc-fake-dma-heap.XXXXXX";
        EXPECT_NE(::mkdtemp(templ), nullptr);
        path_ = templ;
    }
    ~FakeKernelHeapDir() { std::filesystem::remove_all(path_); }
    FakeKernelHeapDir(const FakeKernelHeapDir&) = delete;
    FakeKernelHeapDir& operator=(const FakeKernelHeapDir&) = delete;

    void addHeap(const std::string& name) const { std::ofstream(path_ / name).put('\0'); }
    /// An entry that cannot be opened (ENOENT).
    void addDanglingHeap(const std::string& name) const {
        std::filesystem::create_symlink(path_ / "nowhere", path_ / name);
    }
    std::string path() const { return path_.string(); }

private:
    std::filesystem::path path_;
};

} // namespace cenalloc::test
