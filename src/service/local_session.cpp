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
    LocalBackend(std::shared_ptr<Service> service, std::unique_ptr<ServiceClient> client)
        : service_(std::move(service)), client_(std::move(client)) {}

    std::string describe() const { return "in-process"; }

    template <typename O> ops::ResultOf<O> call(const typename O::Args& args, BorrowedFd fd) {
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
    return std::unique_ptr<Session>(std::make_unique<OpSession<LocalBackend>>(std::move(*service), std::move(*client)));
}

} // namespace cenalloc
