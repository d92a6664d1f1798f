// SPDX-License-Identifier: MIT
// Session::local: the in-process session, a trusted client of its own Service.
#include <cenalloc/session.h>

#include <unistd.h>

#include "service/service.h"
#include "service/socket_io.h"

namespace cenalloc {

namespace {

class LocalSession final : public Session {
public:
    LocalSession(std::shared_ptr<Service> service, std::unique_ptr<ServiceClient> client)
        : service_(std::move(service)), client_(std::move(client)) {}

    std::string describe() const override { return "in-process"; }

    Result<std::vector<HeapInfo>> heaps() override { return client_->heaps(); }

    Result<UniqueFd> allocate(std::string_view heap, uint64_t length, uint32_t fdFlags, uint64_t heapFlags) override {
        auto buffer = client_->allocate(heap, length, fdFlags, heapFlags);
        if (!buffer)
            return buffer.error();
        return applyFdFlags(std::move(buffer->fd), fdFlags);
    }

    Result<UniqueFd> create(uint64_t size, std::string_view name, CpuAccess cpuAccess) override {
        auto buffer = client_->create(size, name, cpuAccess);
        if (!buffer)
            return buffer.error();
        return std::move(buffer->fd);
    }

    Result<uint64_t> import(BorrowedFd buffer) override { return client_->import(buffer); }
    Result<void> release(BorrowedFd buffer) override { return client_->release(buffer); }
    Result<uint64_t> attach(BorrowedFd buffer, std::string_view device) override {
        return client_->attach(buffer, device);
    }
    Result<void> detach(uint64_t attachment) override { return client_->detach(attachment); }
    Result<SessionMapping> map(uint64_t attachment, DmaDirection direction) override {
        return client_->map(attachment, direction);
    }
    Result<void> unmap(uint64_t mapping) override { return client_->unmap(mapping); }
    Result<void> beginCpuAccess(BorrowedFd buffer, uint32_t flags) override {
        return client_->beginCpuAccess(buffer, flags);
    }
    Result<void> endCpuAccess(BorrowedFd buffer, uint32_t flags) override {
        return client_->endCpuAccess(buffer, flags);
    }
    Result<void> setName(BorrowedFd buffer, std::string_view name) override { return client_->setName(buffer, name); }
    Result<std::vector<BufferInfo>> bufinfo() override { return client_->bufinfo(); }
    Result<AllocatorStats> stats(bool resetWatermark) override { return client_->stats(resetWatermark); }
    Result<Explanation> explain(std::span<const std::string> devices, uint64_t size, CpuAccess cpuAccess) override {
        return service_->context().explain(devices, size, cpuAccess);
    }

private:
    std::shared_ptr<Service> service_;
    std::unique_ptr<ServiceClient> client_; // destroyed first: disconnects before the service goes
};

} // namespace

Result<std::unique_ptr<Session>> Session::local(const Platform& platform) {
    auto service = Service::create(platform);
    if (!service)
        return service.error();
    Credentials self;
    self.pid = ::getpid();
    self.uid = ::getuid();
    self.gid = ::getgid();
    auto client = (*service)->connect(self, /*trusted=*/true);
    if (!client)
        return client.error();
    return std::unique_ptr<Session>(new LocalSession(std::move(*service), std::move(*client)));
}

} // namespace cenalloc
