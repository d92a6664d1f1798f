// SPDX-License-Identifier: MIT
// Install-consumer check: allocate from the default platform's system heap.
#include <cstdio>

#include <cenalloc/context.h>

int main() {
    auto context = cenalloc::Context::create();
    if (!context) {
        std::fprintf(stderr, "%s\n", context.error().toString().c_str());
        return 1;
    }
    auto buffer = (*context)->allocate("system", 4096);
    if (!buffer) {
        std::fprintf(stderr, "%s\n", buffer.error().toString().c_str());
        return 1;
    }
    std::printf("allocated buffer %llu of %llu bytes from %s\n", static_cast<unsigned long long>((*buffer)->id()),
                static_cast<unsigned long long>((*buffer)->size()), (*buffer)->heapName().c_str());
    return 0;
}
