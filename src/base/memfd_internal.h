// SPDX-License-Identifier: MIT
// The steps of making a buffer's memfd, shared by createSealedMemfd and the pool of ready memfds.
#pragma once

#include <cstdint>

#include <cenalloc/result.h>
#include <cenalloc/unique_fd.h>

namespace cenalloc {

/// memfd_create(@p name) with MFD_CLOEXEC | MFD_ALLOW_SEALING, nothing sealed.
/// Errors: the errno of memfd_create.
Result<UniqueFd> openSealableMemfd(const char* name);

/// Set the size of memfd @p fd to @p size (growing or shrinking it), then add
/// F_SEAL_SHRINK | F_SEAL_GROW, @p extraSeals and F_SEAL_SEAL: what every
/// buffer's memfd gets before it leaves cenalloc. Errors: ENOMEM for a size
/// tmpfs refuses (EFBIG/EINVAL), else the errno of ftruncate/fcntl.
Result<void> sizeAndSealMemfd(BorrowedFd fd, uint64_t size, int extraSeals);

/// The sealing half of sizeAndSealMemfd, for a memfd already of its size.
/// Errors: the errno of fcntl.
Result<void> sealMemfd(BorrowedFd fd, int extraSeals);

} // namespace cenalloc
