// SPDX-License-Identifier: MIT
// ContextAccess: the parts of a Context the service layer reaches that are no user's business.
#pragma once

#include <cenalloc/context.h>

#include "alloc/ready_memory.h"

namespace cenalloc {

struct ContextAccess {
    /// The context's pool of ready memory (never null).
    static ReadyMemory& readyMemory(const Context& context) { return *context.ready_; }
};

} // namespace cenalloc
