// SPDX-License-Identifier: MIT
// The context a service serves: the host kernel's heaps only where the service can follow their buffers' lifetime.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <cenalloc/context.h>
#include <cenalloc/platform.h>
#include <cenalloc/result.h>

namespace cenalloc {

/// A context for the service on @p platform with @p options. The host
/// kernel's heaps are kept only when this kernel lets the service see their
/// buffers end (else it could never count them free); otherwise the context
/// has none, and @p notes says why, as it lists kernel heaps left out for
/// other reasons (Context::kernelHeapProblems). Without @p probeHeaps they are
/// kept untried (ServiceConfig::probeKernelHeaps). Errors: Context::create's.
Result<std::unique_ptr<Context>> serviceContext(const Platform& platform, const ContextOptions& options,
                                                std::vector<std::string>& notes, bool probeHeaps = true);

} // namespace cenalloc
