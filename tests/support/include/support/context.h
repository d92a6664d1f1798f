// SPDX-License-Identifier: MIT
// Small helpers the alloc tests share: a Context for a platform, a device of it, substring checks.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include <cenalloc/context.h>
#include <cenalloc/platform.h>

namespace cenalloc::test {

/// Whether @p part occurs in @p text.
inline bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

/// A Context for @p platform; null (and the test failed) when it cannot be made.
inline std::unique_ptr<Context> makeContext(const Platform& platform = defaultPlatform()) {
    auto context = Context::create(platform);
    EXPECT_TRUE(context) << context.error().toString();
    return context ? std::move(*context) : nullptr;
}

/// The device called @p name of @p context; it must exist.
inline const DmaDevice& deviceOf(const Context& context, std::string_view name) {
    auto device = context.device(name);
    EXPECT_TRUE(device) << device.error().toString();
    return **device;
}

} // namespace cenalloc::test
