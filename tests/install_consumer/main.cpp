// SPDX-License-Identifier: MIT
// Install-consumer check: the documented API, used through the installed headers and the shared library only.
#include <cstdio>
#include <string>
#include <vector>

#include <cenalloc/context.h>
#include <cenalloc/report.h>
#include <cenalloc/session.h>

namespace {

int fail(const char* what, const cenalloc::Error& error) {
    std::fprintf(stderr, "%s: %s\n", what, error.toString().c_str());
    return 1;
}

} // namespace

int main() {
    auto context = cenalloc::Context::create();
    if (!context)
        return fail("context", context.error());
    auto buffer = (*context)->allocate("system", 4096);
    if (!buffer)
        return fail("allocate", buffer.error());
    std::printf("allocated buffer %llu of %llu bytes from %s\n", static_cast<unsigned long long>((*buffer)->id()),
                static_cast<unsigned long long>((*buffer)->size()), (*buffer)->heapName().c_str());

    // README's "Using the library": a deferred buffer two devices share.
    auto frame = (*context)->create(8 << 20, "frame");
    auto gpu = (*context)->device("gpu");
    auto display = (*context)->device("display");
    if (!frame || !gpu || !display)
        return fail("deferred buffer", !frame ? frame.error() : !gpu ? gpu.error() : display.error());
    auto a = (*frame)->attach(**gpu);
    auto b = (*frame)->attach(**display);
    if (!a || !b)
        return fail("attach", !a ? a.error() : b.error());
    auto mapping = b->map(cenalloc::DmaDirection::ToDevice);
    if (!mapping)
        return fail("map", mapping.error());
    std::printf("deferred buffer placed in %s, %zu segment(s) for the display\n", (*frame)->heapName().c_str(),
                mapping->segments().size());

    // The fd-based Session and a report, as the CLI shows them.
    auto session = cenalloc::Session::local();
    if (!session)
        return fail("session", session.error());
    auto heaps = (*session)->heaps();
    if (!heaps)
        return fail("heaps", heaps.error());
    std::printf("%s", cenalloc::reportHeaps((*session)->describe(), *heaps).c_str());
    return 0;
}
