// SPDX-License-Identifier: MIT
// `cenalloc explain --mapped-by`: what attaching devices would do to a buffer other devices have mapped.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/explain.h>
#include <cenalloc/platform.h>
#include <cenalloc/report.h>
#include <cenalloc/result.h>

namespace cenalloc::cli {

/// A device that mapped the buffer first, and how it attached.
struct MappedImporter {
    enum class Kind {
        Static,  ///< its mapping holds the storage in place
        Dynamic, ///< it takes move notifications: a move invalidates its mapping
        Pinned,  ///< dynamic, and pinned (a scanout engine with a frame on screen)
    };
    std::string device;
    Kind kind = Kind::Static;
};

/// "DEVICE" (a static importer), "DEVICE:static", "DEVICE:dynamic" or
/// "DEVICE:pinned". Errors: EINVAL for an empty device or another kind.
Result<MappedImporter> parseMappedImporter(std::string_view spec);

/// What `cenalloc explain --mapped-by` prints.
struct BufferForecastReport {
    /// reportAttachForecasts() of the buffer and the devices, as text or JSON.
    std::string output;
    /// Every device could attach now (each fits or would migrate).
    bool attachable = false;
};

/// In-process on @p platform: a deferred buffer of @p size and @p cpuAccess
/// that each of @p mappedBy attaches to, as its kind says, and maps, in
/// order (the first map allocates its storage); then what attaching each
/// of @p devices would do, each forecast against that buffer alone
/// (Buffer::forecastAttach, which changes nothing).
/// Errors: those of Context::create and CreateRequest; ENOENT for an
/// unknown device; the error of an importer's attach, map or pin.
Result<BufferForecastReport> explainAgainstBuffer(const Platform& platform, std::span<const MappedImporter> mappedBy,
                                                  std::span<const std::string> devices, uint64_t size,
                                                  CpuAccess cpuAccess, const ReportOptions& options);

} // namespace cenalloc::cli
