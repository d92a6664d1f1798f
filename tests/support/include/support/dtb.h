// SPDX-License-Identifier: MIT
// Helpers for the device tree tests: fixture paths and a libfdt blob writer.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/platform_sources.h>

#include <gtest/gtest.h>
#include <libfdt.h>

namespace cenalloc::dtbtest {

/// The compiled fixture tests/dtb/fixtures/<name>.dts.
inline std::string fixturePath(std::string_view name) {
    return std::string(CENALLOC_DTB_FIXTURES) + "/" + std::string(name) + ".dtb";
}

inline std::string overlayPath(std::string_view name) {
    return std::string(CENALLOC_SOURCE_DIR) + "/examples/overlays/" + std::string(name);
}

/// Skips the test when the fixtures were not built (no dtc at configure time).
#define CENALLOC_REQUIRE_FIXTURE(name)                                                                                 \
    do {                                                                                                               \
        if (!std::filesystem::exists(::cenalloc::dtbtest::fixturePath(name)))                                          \
            GTEST_SKIP() << "fixture " << (name)                                                                       \
                         << ".dtb was not built: dtc (Debian device-tree-compiler) was not found at configure time";   \
    } while (0)

struct Loaded {
    Result<Platform> platform;
    std::vector<std::string> warnings;
};

inline Loaded loadFixture(std::string_view name, const Overlay* overlay = nullptr) {
    std::vector<std::string> warnings;
    Result<Platform> p = loadDeviceTreeFile(fixturePath(name), overlay, &warnings);
    return {std::move(p), std::move(warnings)};
}

/// True when some warning contains every one of @p parts.
inline bool warned(const std::vector<std::string>& warnings, std::initializer_list<std::string_view> parts) {
    for (const std::string& w : warnings) {
        bool all = true;
        for (std::string_view p : parts)
            all = all && w.find(p) != std::string::npos;
        if (all)
            return true;
    }
    return false;
}

/// Writes blobs with libfdt's sequential-write API, for trees dtc would not
/// write (malformed cells, nesting beyond the kernel's limit).
class FdtWriter {
public:
    explicit FdtWriter(size_t capacity = 256 * 1024) : buffer_(capacity) {
        ok(fdt_create(buffer_.data(), static_cast<int>(buffer_.size())));
    }
    FdtWriter& memReserve(uint64_t address, uint64_t size) {
        ok(fdt_add_reservemap_entry(buffer_.data(), address, size));
        return *this;
    }
    FdtWriter& begin(const char* name) {
        if (!mapFinished_) {
            ok(fdt_finish_reservemap(buffer_.data()));
            mapFinished_ = true;
        }
        ok(fdt_begin_node(buffer_.data(), name));
        return *this;
    }
    FdtWriter& end() {
        ok(fdt_end_node(buffer_.data()));
        return *this;
    }
    FdtWriter& cells(const char* name, std::initializer_list<uint32_t> values) {
        std::vector<uint32_t> be;
        for (uint32_t v : values)
            be.push_back(cpu_to_fdt32(v));
        ok(fdt_property(buffer_.data(), name, be.data(), static_cast<int>(be.size() * 4)));
        return *this;
    }
    FdtWriter& string(const char* name, const char* value) {
        ok(fdt_property_string(buffer_.data(), name, value));
        return *this;
    }
    FdtWriter& bytes(const char* name, std::vector<uint8_t> value) {
        ok(fdt_property(buffer_.data(), name, value.data(), static_cast<int>(value.size())));
        return *this;
    }
    FdtWriter& flag(const char* name) {
        ok(fdt_property(buffer_.data(), name, nullptr, 0));
        return *this;
    }
    std::vector<std::byte> finish() {
        ok(fdt_finish(buffer_.data()));
        const std::byte* p = reinterpret_cast<const std::byte*>(buffer_.data());
        return std::vector<std::byte>(p, p + fdt_totalsize(buffer_.data()));
    }

private:
    static void ok(int err) { ASSERT_EQ(err, 0) << fdt_strerror(err); }

    std::vector<char> buffer_;
    bool mapFinished_ = false;
};

} // namespace cenalloc::dtbtest
