// SPDX-License-Identifier: MIT
// Daemon: the public face of cenallocd's Server, with its configuration file and socket activation.
#include <cenalloc/daemon.h>

#include "service/config.h"
#include "service/server.h"

namespace cenalloc {

Result<std::unique_ptr<Daemon>> Daemon::create(const Platform& platform, DaemonOptions options) {
    ServerOptions server;
    if (!options.configPath.empty()) {
        auto config = loadServiceConfig(options.configPath);
        if (!config)
            return config.error();
        server.config = std::move(*config);
    }
    auto inherited = listenFdFromSystemd();
    if (!inherited)
        return inherited.error();
    server.listenFd = std::move(*inherited);
    server.socketPath = std::move(options.socketPath);
    server.log = std::move(options.log);
    server.logLevel = options.logLevel;
    server.stopFd = options.stopFd;
    auto created = Server::create(platform, std::move(server));
    if (!created)
        return created.error();
    return std::unique_ptr<Daemon>(new Daemon(std::move(*created)));
}

Daemon::Daemon(std::unique_ptr<Server> server) : server_(std::move(server)) {}

Daemon::~Daemon() = default;

Result<void> Daemon::run() {
    return server_->run();
}

void Daemon::stop() {
    server_->stop();
}

const std::string& Daemon::socketPath() const {
    return server_->socketPath();
}

} // namespace cenalloc
