// SPDX-License-Identifier: MIT
// Lexical path normalisation and classification against /dev/dma_heap, without allocating.
#include "shim/heap_paths.h"

#include <cstring>

namespace cenalloc::shim {

bool mentionsHeapDir(const char* path) {
    return path != nullptr && std::strstr(path, "dma_heap") != nullptr;
}

HeapPath classifyAbsolute(std::string_view path, char* scratch, size_t scratchSize) {
    HeapPath result;
    if (path.empty() || path.front() != '/' || scratchSize < 2)
        return result;
    // Components are appended to scratch as "/name"; ".." removes the last.
    size_t length = 0;
    size_t pos = 0;
    while (pos < path.size()) {
        while (pos < path.size() && path[pos] == '/')
            ++pos;
        size_t end = path.find('/', pos);
        if (end == std::string_view::npos)
            end = path.size();
        std::string_view component = path.substr(pos, end - pos);
        pos = end;
        if (component.empty() || component == ".")
            continue;
        if (component == "..") {
            while (length > 0 && scratch[length - 1] != '/')
                --length;
            if (length > 0)
                --length; // the '/' before the removed component
            continue;
        }
        if (length + 1 + component.size() + 1 > scratchSize)
            return {};
        scratch[length++] = '/';
        std::memcpy(scratch + length, component.data(), component.size());
        length += component.size();
    }
    scratch[length] = '\0';
    std::string_view normal(scratch, length);
    // "name/" and "name/." both require a directory.
    result.trailingSlash = path.back() == '/' || path.ends_with("/.");
    if (normal == kHeapDir) {
        result.kind = HeapPath::Kind::Directory;
        return result;
    }
    if (normal.size() > kHeapDir.size() + 1 && normal.substr(0, kHeapDir.size()) == kHeapDir &&
        normal[kHeapDir.size()] == '/') {
        std::string_view name = normal.substr(kHeapDir.size() + 1);
        if (name.find('/') == std::string_view::npos) {
            result.kind = HeapPath::Kind::Entry;
            result.name = name;
        }
    }
    return result;
}

HeapPath classifyJoined(std::string_view base, std::string_view relative, char* scratch, size_t scratchSize) {
    // Joined in a second buffer half so that classifyAbsolute can normalise
    // into the first without overlap.
    const size_t half = scratchSize / 2;
    if (base.size() + 1 + relative.size() + 1 > half)
        return {};
    char* joined = scratch + half;
    std::memcpy(joined, base.data(), base.size());
    joined[base.size()] = '/';
    std::memcpy(joined + base.size() + 1, relative.data(), relative.size());
    std::string_view path(joined, base.size() + 1 + relative.size());
    return classifyAbsolute(path, scratch, half);
}

} // namespace cenalloc::shim
