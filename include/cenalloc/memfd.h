// SPDX-License-Identifier: MIT
// Sealed memfds: the real memory behind every cenalloc buffer.
#pragma once

#include <cstdint>

#include <cenalloc/export.h>
#include <cenalloc/result.h>
#include <cenalloc/unique_fd.h>

namespace cenalloc {

/// Create a zero-filled memfd of @p size bytes with MFD_CLOEXEC, sealed
/// against shrinking and growing (and against removing the seals) before the
/// fd is returned, so no process that later receives it can truncate it under
/// another's mapping.
///
/// @p name shows in /proc/PID/fd and must be shorter than 250 bytes.
/// Errors: EINVAL for a size of 0; the errno of memfd_create/ftruncate/fcntl.
CENALLOC_EXPORT Result<UniqueFd> createSealedMemfd(const char* name, uint64_t size);
/// The same, with @p extraSeals (F_SEAL_FUTURE_WRITE for a read-only
/// buffer: nobody, root included, can write it through a new fd or
/// mapping) added before F_SEAL_SEAL makes the seals final.
CENALLOC_EXPORT Result<UniqueFd> createSealedMemfd(const char* name, uint64_t size, int extraSeals);

/// True when @p fd is a memfd carrying the shrink and grow seals.
CENALLOC_EXPORT bool isSizeSealed(BorrowedFd fd);

} // namespace cenalloc
