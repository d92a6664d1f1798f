// SPDX-License-Identifier: MIT
// udmabuf: cenalloc's memfd-backed buffers handed out as real dma-bufs the kernel's drivers can import.
#pragma once

#include <cstdint>
#include <string_view>

#include <cenalloc/export.h>
#include <cenalloc/result.h>
#include <cenalloc/unique_fd.h>

namespace cenalloc {

class Buffer;

/// The kernel's udmabuf device.
inline constexpr std::string_view kUdmabufDevice = "/dev/udmabuf";

/// True when @p device exists and can be opened (CONFIG_UDMABUF, and
/// permission to use it).
CENALLOC_EXPORT bool udmabufAvailable(std::string_view device = kUdmabufDevice);

/// A real dma-buf of bytes [@p offset, @p offset + @p size) of @p memfd
/// (UDMABUF_CREATE): the same pages, so writes through either are seen
/// through the other; the memfd's memory stays alive while the dma-buf does.
/// @p memfd must be sealed against shrinking and not against writing, and
/// the range page-aligned and inside it: cenalloc's buffers are all that.
/// Errors: ENODEV when the host has no udmabuf (the message says so);
/// EINVAL for an unaligned, empty or out-of-range range, or a memfd without
/// F_SEAL_SHRINK or with F_SEAL_WRITE (checked here, with the reason); the
/// kernel's errno otherwise (e.g. E2BIG beyond its size_limit_mb).
CENALLOC_EXPORT Result<UniqueFd> exportUdmabuf(BorrowedFd memfd, uint64_t offset, uint64_t size, bool cloexec = true,
                                               std::string_view device = kUdmabufDevice);

/// A real dma-buf of the whole of @p buffer: exportUdmabuf() of its memfd,
/// or a new fd of it when it is a host kernel heap's dma-buf already. A
/// buffer whose fd the service surrendered has none here (EBADF): a client
/// exports the fd it holds, with the overload above.
CENALLOC_EXPORT Result<UniqueFd> exportUdmabuf(const Buffer& buffer, bool cloexec = true);

} // namespace cenalloc
