// SPDX-License-Identifier: MIT
// libFuzzer target: the device tree loader must survive any blob, and whatever it returns must be a valid platform.
#include <cenalloc/platform_sources.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

namespace {

// A second pass gives the tree RAM, so that blobs without usable /memory
// nodes still reach the reserved-memory, window and IOMMU code.
const cenalloc::Overlay& testRam() {
    static const cenalloc::Overlay overlay = [] {
        cenalloc::Result<cenalloc::Overlay> o =
            cenalloc::parseOverlayYaml("memory:\n  - {base: 0x0, size: 16G}\ncma_size: 64M\n", "fuzz-ram.yaml");
        if (!o)
            std::abort();
        return std::move(*o);
    }();
    return overlay;
}

void check(const cenalloc::Result<cenalloc::Platform>& p) {
    if (!p)
        return;
    // The loader promises a platform that passes validatePlatform().
    if (cenalloc::Result<void> valid = cenalloc::validatePlatform(*p); !valid) {
        std::fprintf(stderr, "invalid platform: %s\n", valid.error().toString().c_str());
        std::abort();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::span<const std::byte> blob(reinterpret_cast<const std::byte*>(data), size);
    std::vector<std::string> warnings;
    check(cenalloc::loadDeviceTree(blob, "fuzz.dtb", nullptr, &warnings));
    check(cenalloc::loadDeviceTree(blob, "fuzz.dtb", &testRam(), &warnings));
    return 0;
}
