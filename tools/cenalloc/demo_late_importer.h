// SPDX-License-Identifier: MIT
// The demo's late restrictive importer: a static importer blocks the move, a dynamic one is moved and told.
#pragma once

#include <nlohmann/json.hpp>

#include <cenalloc/context.h>

#include "tools/cenalloc/demo_narrator.h"

namespace cenalloc::cli {

/// On @p context, find a device behind an IOMMU (the GPU on the built-in
/// platform) whose storage a contiguous-only device without one (the
/// display) cannot use, and show the late attach twice: against a static
/// importer's mapping (EBUSY, the blocker named) and against a dynamic
/// importer's (the buffer moves, the importer is told the move's sequence,
/// maps again, and the bytes check through both devices and the CPU). Each
/// attach is forecast first and the forecast printed (reportAttachForecasts).
/// The moved buffer stays in @p live for the bufinfo step.
/// Returns the forecasts' JSON objects, in the order shown.
nlohmann::json showLateImporter(Context& context, Narrator& narrator, Live& live);

} // namespace cenalloc::cli
