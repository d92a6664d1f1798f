// SPDX-License-Identifier: MIT
// Reading what Linux exposes in /sys and /proc: small text files, directory listings, link targets, numbers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/result.h>

namespace cenalloc::host {

/// The contents of a sysfs attribute or a /proc file (at most 4 MiB).
/// Errors: the errno of open/read, with strerror as the message; EFBIG.
Result<std::string> readText(const std::filesystem::path& path);
/// @p s without leading and trailing white space.
std::string_view trim(std::string_view s);
/// An unsigned number in @p base (16: with or without 0x), white space around it allowed.
std::optional<uint64_t> parseUnsigned(std::string_view s, int base);
/// The entries of @p dir, sorted, without "." and ".."; *@p error is 0 or the errno of opendir().
std::vector<std::string> listDirectory(const std::filesystem::path& dir, int* error);
/// The last component of what the symbolic link @p link points at (a driver's or group's name).
std::optional<std::string> linkTarget(const std::filesystem::path& link);
/// The whole target of the symbolic link @p link, as written ("../../../firmware/devicetree/base/soc/vop@ff900000").
std::optional<std::string> linkText(const std::filesystem::path& link);
/// Where the sysfs entry @p entry (a device's directory, or a link to one) really is, written under @p sys (the
/// sysfs root the caller uses): "/sys/devices/platform/ff900000.display". nullopt when it cannot be resolved.
std::optional<std::string> devicePath(const std::filesystem::path& sys, const std::filesystem::path& entry);

} // namespace cenalloc::host
