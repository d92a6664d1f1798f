// SPDX-License-Identifier: MIT
// How much work the constraint algebra has done: what tests measure its callers' cost by, not the clock.
#pragma once

#include <cstdint>

namespace cenalloc {

/// Device contributions worked out (one per device merged into a set or
/// made a set of its own), by every thread since the process started.
uint64_t deviceContributionsWorkedOut();

} // namespace cenalloc
