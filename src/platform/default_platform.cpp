// SPDX-License-Identifier: MIT
// The built-in reference platform, used when no description is given.
#include <cenalloc/platform.h>

#include <cstdio>
#include <cstdlib>

namespace cenalloc {

namespace {

// A made-up but realistic SoC, chosen so that every interesting answer can be
// demonstrated without a file: memory above 4 GiB (so DMA32 placement
// matters), a default CMA pool and a secure carveout, devices with and
// without IOMMUs, coherent and non-coherent ones, and one display controller
// that only takes physically contiguous memory. The demo and the tests of
// every layer are written against these exact numbers.
constexpr std::string_view kDefaultPlatformYaml = R"yaml(# cenalloc built-in reference platform
name: cenalloc-reference
description: >-
  Reference SoC built into cenalloc: 4 GiB of DRAM in two banks (one above
  4 GiB), a default CMA pool, a secure video carveout, two SMMUs and six
  DMA masters.

memory:
  # 2 GiB at the usual arm64 DRAM base.
  - name: dram-low
    base: 0x40000000
    size: 2G
  # 2 GiB above 4 GiB, where arm64 SoCs alias the rest of their DRAM: devices
  # with 32-bit masks cannot reach it, hence DMA32 heaps.
  - name: dram-high
    base: 0x880000000
    size: 2G

regions:
  # The default CMA pool ("linux,cma" with linux,cma-default), below 4 GiB so
  # that 32-bit devices can use it.
  - name: linux,cma
    kind: cma
    base: 0xb0000000
    size: 256M
    default: true
  # Secure video memory: not in the kernel's linear map, and only masters
  # with access bit 0x2 (the video codec) may touch it.
  - name: vpu-carveout
    kind: carveout
    base: 0xa8000000
    size: 128M
    no_map: true
    access_bits: 0x2

iommus:
  # The GPU's SMMU: a 32-bit IOVA space (the first MiB is left unmapped to
  # catch NULL-ish DMA addresses).
  - name: gpu-smmu
    page_size: 4K
    aperture_base: 0x100000
    aperture_size: 0xfff00000
  # The multimedia SMMU in front of the ISP and the codec: 40-bit IOVAs.
  - name: media-smmu
    page_size: 4K
    aperture_base: 0x100000
    aperture_size: 0xfffff00000

devices:
  - name: gpu
    description: 3D GPU behind its own SMMU, IO-coherent
    iommu: gpu-smmu
    dma_mask_bits: 40
    max_segment_size: 0xffffffff
    coherent: true
    access_bits: 0x1
  - name: isp
    description: image signal processor behind the media SMMU
    iommu: media-smmu
    dma_mask_bits: 32
    coherent: false
    access_bits: 0x1
  - name: codec
    description: video decoder/encoder, the only master allowed into secure memory
    iommu: media-smmu
    dma_mask_bits: 36
    coherent: false
    access_bits: 0x3
  - name: display
    description: display controller without an IOMMU, scans out one contiguous buffer
    dma_mask_bits: 32
    max_segment_size: 0xffffffff
    max_segment_count: 1
    contiguous: true
    coherent: false
    access_bits: 0x1
  - name: camera
    description: camera receiver (CSI-2) with a scatter-gather DMA engine of 64 entries
    dma_mask_bits: 32
    max_segment_count: 64
    coherent: false
    access_bits: 0x1
  - name: usb
    description: USB 3 host controller, 32-bit DMA, IO-coherent
    dma_mask_bits: 32
    coherent: true
    access_bits: 0x1
)yaml";

} // namespace

std::string_view defaultPlatformYaml() {
    return kDefaultPlatformYaml;
}

const Platform& defaultPlatform() {
    // Parsed once, on first use; C++ makes the initialisation thread-safe.
    static const Platform platform = [] {
        Result<Platform> parsed = parsePlatformYaml(kDefaultPlatformYaml, "<builtin>");
        if (!parsed) {
            // The text is part of the library: failing to parse it is a bug
            // in cenalloc, not bad input, so there is nothing to return.
            std::fprintf(stderr, "cenalloc: built-in platform is invalid: %s\n", parsed.error().toString().c_str());
            std::abort();
        }
        return std::move(parsed).value();
    }();
    return platform;
}

} // namespace cenalloc
