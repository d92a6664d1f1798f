// SPDX-License-Identifier: MIT
// `cenalloc demo`: an in-process tour of the library, written against its public API only.
#pragma once

#include <string>

#include <cenalloc/platform.h>
#include <cenalloc/report.h>
#include <cenalloc/result.h>

namespace cenalloc::cli {

/// What `cenalloc demo` prints, and whether the scenario held.
struct DemoReport {
    /// The narrative and its checks as text, or one JSON object (with the
    /// options' notes), as ReportOptions::format says.
    std::string output;
    /// Every check of the scenario held.
    bool ok = false;
};

/// The demo scenario on @p platform, in-process: allocate from every heap,
/// attach devices, map, move data between buffers through the device model
/// and check it; a deferred allocation where the first device's preference
/// would have failed; the late restrictive importer (a static importer's
/// mapping makes the late attach EBUSY, a dynamic one's is moved and told);
/// bufinfo, heap statistics and IOMMU counters; release
/// and check everything is back to baseline.
/// Errors: only when the context cannot be created; failed checks are in
/// the report (ok = false).
Result<DemoReport> runDemo(const Platform& platform, const ReportOptions& options);

} // namespace cenalloc::cli
