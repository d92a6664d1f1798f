// SPDX-License-Identifier: MIT
// Must not compile: a platform-layer file including a header of the core layer, which platform does not depend
// on (the layering_build_refuses_upward_include test builds it and expects the include to be unresolvable).
#include "core/registry.h"
