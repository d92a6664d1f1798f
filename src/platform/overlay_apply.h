// SPDX-License-Identifier: MIT
// Applying an overlay's per-device entry to a loaded device (shared by the device tree and host loaders).
#pragma once

#include <cenalloc/platform_sources.h>

namespace cenalloc {

/// Apply a `name` entry of an overlay to @p device: every value the entry
/// gives replaces the device's (`master` is the caller's business).
void applyOverlayEntry(const OverlayDevice& entry, Device& device);

} // namespace cenalloc
