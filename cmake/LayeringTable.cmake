# SPDX-License-Identifier: MIT
# The layering check's table (cmake/CheckLayering.cmake, the layering test). The layers, what each DEPENDS on and
# its third-party LIBS are the cenalloc_layer() calls of CMakeLists.txt; this file says the rest. Moving a header
# or granting a folder something is one line here.

# Each public header (include/cenalloc/...) and the layer that implements it: code may include it only where it
# may include that layer's private headers.
set(CENALLOC_PUBLIC_HEADERS
    result.h=base
    unique_fd.h=base
    units.h=base
    export.h=base
    memfd.h=base
    platform.h=platform
    platform_sources.h=platform
    storage_types.h=memory
    iommu.h=iommu
    heap.h=heaps
    request.h=heaps
    buffer.h=core
    device.h=core
    udmabuf.h=core
    constraints.h=alloc
    explain.h=alloc
    context.h=alloc
    ready_pool.h=alloc
    session.h=service
    daemon.h=service
    c/cenalloc.h=service
    report.h=report
    session_choice.h=report)

# The include prefix of each third-party library a LIBS list (or an outside folder) can name. Angle-bracket includes
# matching none of them are the system's or the C++ library's, which anyone may use.
set(CENALLOC_THIRD_PARTY
    fmt::fmt=fmt/
    yaml-cpp=yaml-cpp/
    nlohmann_json::nlohmann_json=nlohmann/
    libfdt::libfdt=libfdt
    libfdt::libfdt=fdt.h
    CLI11::CLI11=CLI/
    GTest::gtest=gtest/
    GTest::gmock=gmock/
    benchmark::benchmark=benchmark/)

# Folders outside src/ that build on the library. Each may include its own headers ("shim/x.h"), the public headers,
# the private headers granted below by name, and the third-party libraries listed.
set(CENALLOC_OUTSIDE shim tools)
# The dma-heap shim: DESIGN.md section 3 counts it with the service layer (an entry point, like the C API), but all
# it needs is a Session: it is held to the public API like any other client.
set(CENALLOC_OUTSIDE_LIBS_shim fmt::fmt)
set(CENALLOC_OUTSIDE_PRIVATE_shim "")
# The tools: main() parses and calls the library, through its public API only, as any program using cenalloc does
# (they link the shared library); the CLI's demo builds its JSON with nlohmann_json.
set(CENALLOC_OUTSIDE_LIBS_tools fmt::fmt CLI11::CLI11 nlohmann_json::nlohmann_json)
set(CENALLOC_OUTSIDE_PRIVATE_tools "")
