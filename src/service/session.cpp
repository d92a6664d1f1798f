// SPDX-License-Identifier: MIT
// Session's convenience overloads (where a caller's raw arguments become typed requests) and its RAII handles.
#include <cenalloc/session.h>

#include <cerrno>
#include <fcntl.h>
#include <poll.h>
#include <utility>

#include <fmt/format.h>

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

const char* moveEventKindName(MoveEvent::Kind kind) {
    switch (kind) {
    case MoveEvent::Kind::Pending: return "pending";
    case MoveEvent::Kind::Moved: return "moved";
    case MoveEvent::Kind::Cancelled: return "cancelled";
    }
    return "?";
}

Result<std::optional<MoveEvent>> Session::waitEvent(int timeoutMs) {
    auto event = CENALLOC_TRY(nextEvent());
    if (event)
        return event;
    pollfd p{eventFd().get(), POLLIN, 0};
    int n;
    do {
        n = ::poll(&p, 1, timeoutMs);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return Error::fromErrno("poll");
    return nextEvent();
}

Result<Session::Attachment> Session::attachHandle(BorrowedFd buffer, std::string_view device) {
    return Attachment(*this, CENALLOC_TRY(attach(buffer, device)));
}

Result<Session::CpuAccessGuard> Session::beginCpuAccessGuard(BorrowedFd buffer, uint32_t flags) {
    const SyncFlags sync = CENALLOC_TRY(SyncFlags::make(flags));
    // The guard's own fd of the buffer, to end the bracket through however
    // long the caller keeps theirs.
    UniqueFd own(::fcntl(buffer.get(), F_DUPFD_CLOEXEC, 0));
    if (!own.valid())
        return Error::fromErrno(fmt::format("duplicating fd {}", buffer.get()));
    CENALLOC_CHECK(beginCpuAccess(own.borrow(), sync));
    return CpuAccessGuard(*this, std::move(own), sync);
}

// ---------------------------------------------------------- Attachment

Session::Attachment::Attachment(Attachment&& other) noexcept
    : session_(std::exchange(other.session_, nullptr)), id_(std::exchange(other.id_, 0)) {}

Session::Attachment& Session::Attachment::operator=(Attachment&& other) noexcept {
    if (this != &other) {
        (void)detach();
        session_ = std::exchange(other.session_, nullptr);
        id_ = std::exchange(other.id_, 0);
    }
    return *this;
}

Session::Attachment::~Attachment() {
    (void)detach();
}

Result<Session::Mapping> Session::Attachment::map(DmaDirection direction) const {
    if (!session_)
        return Error(EINVAL, "mapping through an empty attachment handle");
    return Mapping(*session_, CENALLOC_TRY(session_->map(id_, direction)));
}

Result<void> Session::Attachment::detach() {
    if (!session_)
        return {};
    CENALLOC_CHECK(session_->detach(id_));
    session_ = nullptr;
    id_ = 0;
    return {};
}

uint64_t Session::Attachment::release() {
    session_ = nullptr;
    return std::exchange(id_, 0);
}

// ------------------------------------------------------------- Mapping

Session::Mapping::Mapping(Mapping&& other) noexcept
    : session_(std::exchange(other.session_, nullptr)), mapping_(std::exchange(other.mapping_, {})) {}

Session::Mapping& Session::Mapping::operator=(Mapping&& other) noexcept {
    if (this != &other) {
        (void)unmap();
        session_ = std::exchange(other.session_, nullptr);
        mapping_ = std::exchange(other.mapping_, {});
    }
    return *this;
}

Session::Mapping::~Mapping() {
    (void)unmap();
}

Result<void> Session::Mapping::unmap() {
    if (!session_)
        return {};
    CENALLOC_CHECK(session_->unmap(mapping_.id));
    session_ = nullptr;
    mapping_ = {};
    return {};
}

SessionMapping Session::Mapping::release() {
    session_ = nullptr;
    return std::exchange(mapping_, {});
}

// ------------------------------------------------------ CpuAccessGuard

Session::CpuAccessGuard::CpuAccessGuard(CpuAccessGuard&& other) noexcept
    : session_(std::exchange(other.session_, nullptr)), buffer_(std::move(other.buffer_)),
      flags_(std::exchange(other.flags_, std::nullopt)) {}

Session::CpuAccessGuard& Session::CpuAccessGuard::operator=(CpuAccessGuard&& other) noexcept {
    if (this != &other) {
        (void)end();
        session_ = std::exchange(other.session_, nullptr);
        buffer_ = std::move(other.buffer_);
        flags_ = std::exchange(other.flags_, std::nullopt);
    }
    return *this;
}

Session::CpuAccessGuard::~CpuAccessGuard() {
    (void)end();
}

Result<void> Session::CpuAccessGuard::end() {
    if (!session_)
        return {};
    CENALLOC_CHECK(session_->endCpuAccess(buffer_.borrow(), *flags_));
    session_ = nullptr;
    buffer_.reset();
    flags_.reset();
    return {};
}

} // namespace cenalloc