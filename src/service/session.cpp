// SPDX-License-Identifier: MIT
// Session's convenience overloads: where a caller's raw arguments become typed requests.
#include <cenalloc/session.h>

#include "base/try.h"

namespace cenalloc {

Result<UniqueFd> Session::allocate(std::string_view heap, uint64_t length, uint32_t fdFlags, uint64_t heapFlags) {
    return allocate(CENALLOC_TRY(AllocRequest::make(heap, length, fdFlags, heapFlags)));
}

Result<UniqueFd> Session::create(uint64_t size, std::string_view name, CpuAccess cpuAccess) {
    return create(CENALLOC_TRY(CreateRequest::make(size, name, cpuAccess)));
}

Result<void> Session::beginCpuAccess(BorrowedFd buffer, uint32_t flags) {
    return beginCpuAccess(buffer, CENALLOC_TRY(SyncFlags::make(flags)));
}

Result<void> Session::endCpuAccess(BorrowedFd buffer, uint32_t flags) {
    return endCpuAccess(buffer, CENALLOC_TRY(SyncFlags::make(flags)));
}

Result<void> Session::setName(BorrowedFd buffer, std::string_view name) {
    return setName(buffer, CENALLOC_TRY(BufferName::make(name)));
}

} // namespace cenalloc
