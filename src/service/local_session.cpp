// SPDX-License-Identifier: MIT
// Session::local: the in-process session, a trusted client of its own Service, running the ops directly.
#include <cenalloc/session.h>

#include <unistd.h>

#include "service/operations.h"
#include "service/service.h"

namespace cenalloc {

namespace {

/// Runs each op's serve() on its own service, as the daemon would for a
/// trusted client, and hands the answer to its finish().
class LocalBackend {
public:
    LocalBackend(std::shared_ptr<Service> service, std::unique_ptr<ServiceClient> client, EventQueue events)
        : service_(std::move(service)), client_(std::move(client)), events_(std::move(events)) {
        // The in-process client is told of its dynamic attachments' moves by
        // their move notification, into its queue.
        service_->enableEvents(client_->id(), true);
        service_->setHooks(client_->id(), ClientHooks{[this](const MoveEvent& e) { events_.push(e); }, {}});
    }
    ~LocalBackend() { service_->setHooks(client_->id(), {}); }

    std::string describe() const { return "in-process"; }
    bool receivesEvents() const { return true; }
    EventQueue& events() { return events_; }
    BorrowedFd eventFd() const { return events_.fd(); }
    Result<void> pollEvents() { return {}; } // pushed as they happen

    template <typename O> ops::ResultOf<O> call(const typename O::Args& args, BorrowedFd fd) {
        // The only client of its service: no other client's importer is
        // ever waited for, so no request is parked (Service::kParked).
        auto answer = O::serve(*client_, args, fd);
        if (!answer)
            return answer.error();
        return O::finish(std::move(answer->body), std::move(answer->fd), args);
    }

    Result<Explanation> explain(std::span<const std::string> devices, uint64_t size, CpuAccess cpuAccess) const {
        return service_->context().explain(devices, size, cpuAccess);
    }

private:
    std::shared_ptr<Service> service_;
    std::unique_ptr<ServiceClient> client_; // destroyed before the service: disconnects first
    EventQueue events_;
};

} // namespace

Result<std::unique_ptr<Session>> Session::local(const Platform& platform) {
    return local(platform, ServiceConfig{}.context);
}

Result<std::unique_ptr<Session>> Session::local(const Platform& platform, const ContextOptions& options) {
    ServiceConfig config;
    config.context = options;
    auto service = Service::create(platform, std::move(config));
    if (!service)
        return service.error();
    Credentials self;
    self.pid = ::getpid();
    self.uid = ::getuid();
    self.gid = ::getgid();
    auto client = (*service)->connect(self, /*trusted=*/true);
    if (!client)
        return client.error();
    auto events = EventQueue::create();
    if (!events)
        return events.error();
    return std::unique_ptr<Session>(
        std::make_unique<OpSession<LocalBackend>>(std::move(*service), std::move(*client), std::move(*events)));
}

} // namespace cenalloc
