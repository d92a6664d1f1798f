// SPDX-License-Identifier: MIT
// The cenallocd configuration loader: schema checks with "<source>:<line>: <problem>" errors.
#include "service/config.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cenalloc/unique_fd.h>
#include <cenalloc/units.h>

#include "base/file.h"

namespace cenalloc {

bool Credentials::inGroup(uint32_t group) const {
    return gid == group || std::find(groups.begin(), groups.end(), group) != groups.end();
}

bool ServiceConfig::quotaIsDefault(const Quota& quota) const {
    return quota == defaultQuota;
}

Quota ServiceConfig::quotaFor(const Credentials& peer) const {
    for (const QuotaRule& rule : quotas) {
        if (rule.uid && *rule.uid == peer.uid)
            return rule.quota;
        if (rule.gid && peer.inGroup(*rule.gid))
            return rule.quota;
    }
    // Root administers the daemon: the built-in count of buffers, which
    // bounds each user's share of the daemon's watches, is not for it (it
    // has the reserve); one the configuration sets, or a rule naming uid 0
    // or a group of its, applies.
    if (peer.uid == 0 && !defaultBuffersConfigured)
        return Quota{defaultQuota.bytes, kUnlimited};
    return defaultQuota;
}

bool ServiceConfig::allows(std::string_view heap, const Credentials& peer) const {
    for (const HeapAccess& access : heaps) {
        if (access.heap != heap)
            continue;
        if (std::find(access.uids.begin(), access.uids.end(), peer.uid) != access.uids.end())
            return true;
        return std::any_of(access.gids.begin(), access.gids.end(), [&](uint32_t g) { return peer.inGroup(g); });
    }
    return true;
}

namespace {

constexpr uint64_t kMaxConfigSize = 1 * MiB;

using Keys = std::initializer_list<std::string_view>;

class ConfigLoader {
public:
    explicit ConfigLoader(std::string_view source) : source_(source) {}

    Result<ServiceConfig> load(const YAML::Node& root) const {
        ServiceConfig config;
        config.source = std::string(source_);
        if (root.IsNull() || !root.IsDefined())
            return config; // an empty file: the defaults
        auto top = fields(root, "configuration",
                          {"max_clients", "max_clients_per_uid", "workers", "busy_poll_us", "quota", "clients", "heaps",
                           "kernel_heaps", "max_buffers"});
        if (!top)
            return top.error();
        if (auto v = find(*top, "max_clients")) {
            auto n = count(*v, "max_clients");
            if (!n)
                return n.error();
            config.maxClients = *n;
        }
        if (auto v = find(*top, "max_clients_per_uid")) {
            auto n = count(*v, "max_clients_per_uid");
            if (!n)
                return n.error();
            config.maxClientsPerUid = *n;
        }
        if (auto v = find(*top, "max_buffers")) {
            auto n = count(*v, "max_buffers");
            if (!n)
                return n.error();
            config.maxBuffers = *n;
        }
        if (auto v = find(*top, "workers")) {
            auto n = bounded(*v, "workers", 1, kMaxWorkers);
            if (!n)
                return n.error();
            config.workers = *n;
        }
        if (auto v = find(*top, "busy_poll_us")) {
            auto n = bounded(*v, "busy_poll_us", 0, kMaxBusyPollMicros);
            if (!n)
                return n.error();
            config.busyPollMicros = *n;
        }
        if (auto v = find(*top, "kernel_heaps")) {
            bool offer = true;
            if (!v->IsScalar() || !YAML::convert<bool>::decode(*v, offer))
                return errorAt(*v, fmt::format("kernel_heaps: '{}' is not true or false",
                                               v->IsScalar() ? v->Scalar() : std::string("a collection")));
            config.context.kernelHeaps = offer;
        }
        if (auto v = find(*top, "quota")) {
            // What the default quota does not say keeps its default (a
            // count of buffers always exists).
            auto q = quota(*v, "quota", config.defaultQuota);
            if (!q)
                return q.error();
            config.defaultBuffersConfigured = v->IsMap() && (*v)["buffers"].IsDefined();
            config.defaultQuota = *q;
        }
        if (auto v = find(*top, "clients")) {
            if (!v->IsSequence())
                return errorAt(*v, "clients: expected a list");
            for (size_t i = 0; i < v->size(); ++i) {
                YAML::Node entry = (*v)[i];
                std::string what = fmt::format("clients[{}]", i);
                auto f = fields(entry, what, {"uid", "gid", "quota"});
                if (!f)
                    return f.error();
                QuotaRule rule;
                rule.line = entry.Mark().line + 1;
                const YAML::Node* uid = find(*f, "uid");
                const YAML::Node* gid = find(*f, "gid");
                if ((uid != nullptr) == (gid != nullptr))
                    return errorAt(entry, fmt::format("{}: give exactly one of uid and gid", what));
                if (uid) {
                    auto n = id(*uid, what + ": uid");
                    if (!n)
                        return n.error();
                    rule.uid = *n;
                } else {
                    auto n = id(*gid, what + ": gid");
                    if (!n)
                        return n.error();
                    rule.gid = *n;
                }
                const YAML::Node* q = find(*f, "quota");
                if (!q)
                    return errorAt(entry, fmt::format("{}: missing required key 'quota'", what));
                auto parsed = quota(*q, what + ": quota");
                if (!parsed)
                    return parsed.error();
                rule.quota = *parsed;
                config.quotas.push_back(std::move(rule));
            }
        }
        if (auto v = find(*top, "heaps")) {
            if (!v->IsSequence())
                return errorAt(*v, "heaps: expected a list");
            for (size_t i = 0; i < v->size(); ++i) {
                YAML::Node entry = (*v)[i];
                std::string what = fmt::format("heaps[{}]", i);
                auto f = fields(entry, what, {"name", "allow_uids", "allow_gids"});
                if (!f)
                    return f.error();
                HeapAccess access;
                access.line = entry.Mark().line + 1;
                const YAML::Node* name = find(*f, "name");
                if (!name)
                    return errorAt(entry, fmt::format("{}: missing required key 'name'", what));
                if (!name->IsScalar() || name->Scalar().empty())
                    return errorAt(*name, fmt::format("{}: name: expected a heap name", what));
                access.heap = name->Scalar();
                for (const HeapAccess& earlier : config.heaps)
                    if (earlier.heap == access.heap)
                        return errorAt(*name, fmt::format("{}: heap '{}' is listed twice (first on line {})", what,
                                                          access.heap, earlier.line));
                for (auto [key, out] : {std::pair{"allow_uids", &access.uids}, std::pair{"allow_gids", &access.gids}}) {
                    const YAML::Node* list = find(*f, key);
                    if (!list)
                        continue;
                    if (!list->IsSequence())
                        return errorAt(*list, fmt::format("{}: {}: expected a list of ids", what, key));
                    for (size_t k = 0; k < list->size(); ++k) {
                        auto n = id((*list)[k], fmt::format("{}: {}[{}]", what, key, k));
                        if (!n)
                            return n.error();
                        out->push_back(*n);
                    }
                }
                config.heaps.push_back(std::move(access));
            }
        }
        return config;
    }

    Error errorAt(const YAML::Node& node, std::string_view message) const {
        YAML::Mark mark = node.Mark();
        if (mark.is_null() || mark.line < 0)
            return Error(EINVAL, fmt::format("{}: {}", source_, message));
        return Error(EINVAL, fmt::format("{}:{}: {}", source_, mark.line + 1, message));
    }

private:
    using FieldMap = std::map<std::string, std::pair<YAML::Node, YAML::Node>, std::less<>>;

    Result<FieldMap> fields(const YAML::Node& node, std::string_view what, Keys allowed) const {
        if (!node.IsMap())
            return errorAt(node, fmt::format("{}: expected a mapping", what));
        FieldMap out;
        for (auto it = node.begin(); it != node.end(); ++it) {
            YAML::Node key = it->first;
            YAML::Node value = it->second;
            if (!key.IsScalar())
                return errorAt(key, fmt::format("{}: a key must be a plain word", what));
            const std::string& name = key.Scalar();
            if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
                std::string list;
                for (std::string_view k : allowed)
                    list += (list.empty() ? "" : ", ") + std::string(k);
                return errorAt(key, fmt::format("{}: unknown key '{}' (allowed keys: {})", what, name, list));
            }
            if (!out.emplace(name, std::make_pair(key, value)).second)
                return errorAt(key, fmt::format("{}: key '{}' is given twice", what, name));
        }
        return out;
    }

    static const YAML::Node* find(const FieldMap& f, std::string_view key) {
        auto it = f.find(key);
        return it == f.end() ? nullptr : &it->second.second;
    }

    Result<uint64_t> number(const YAML::Node& node, std::string_view what, bool sizes) const {
        if (!node.IsScalar())
            return errorAt(node, fmt::format("{}: expected a number", what));
        const std::string& text = node.Scalar();
        if (text == "unlimited")
            return kUnlimited;
        if (sizes) {
            auto size = parseSize(text);
            if (!size)
                return errorAt(node, fmt::format("{}: {}", what, size.error().message()));
            return *size;
        }
        uint64_t value = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc() || end != text.data() + text.size() || text.empty())
            return errorAt(node, fmt::format("{}: '{}' is not a number", what, text));
        return value;
    }

    // A plain number in [min, max] ("unlimited" is not one).
    Result<uint64_t> bounded(const YAML::Node& node, std::string_view what, uint64_t min, uint64_t max) const {
        if (node.IsScalar() && node.Scalar() == "unlimited")
            return errorAt(node, fmt::format("{}: 'unlimited' is not a number", what));
        auto n = number(node, what, false);
        if (!n)
            return n.error();
        if (*n < min)
            return errorAt(node, fmt::format("{}: must be at least {}", what, min));
        if (*n > max)
            return errorAt(node, fmt::format("{}: {} is more than {}", what, *n, max));
        return *n;
    }

    Result<size_t> count(const YAML::Node& node, std::string_view what) const {
        auto n = number(node, what, false);
        if (!n)
            return n.error();
        if (*n == 0)
            return errorAt(node, fmt::format("{}: must be at least 1", what));
        return static_cast<size_t>(*n);
    }

    Result<uint32_t> id(const YAML::Node& node, std::string what) const {
        if (!node.IsScalar() || node.Scalar() == "unlimited")
            return errorAt(node, fmt::format("{}: expected a numeric id", what));
        auto n = number(node, what, false);
        if (!n)
            return n.error();
        // (uid_t)-1 means "no change" to the kernel's set*id calls: never a real id.
        if (*n >= UINT32_MAX)
            return errorAt(node, fmt::format("{}: {} is not a valid id", what, *n));
        return static_cast<uint32_t>(*n);
    }

    Result<Quota> quota(const YAML::Node& node, std::string what, Quota q = {}) const {
        auto f = fields(node, what, {"bytes", "buffers"});
        if (!f)
            return f.error();
        if (auto v = find(*f, "bytes")) {
            auto n = number(*v, what + ": bytes", true);
            if (!n)
                return n.error();
            q.bytes = *n;
        }
        if (auto v = find(*f, "buffers")) {
            auto n = number(*v, what + ": buffers", false);
            if (!n)
                return n.error();
            q.buffers = *n;
        }
        return q;
    }

    std::string_view source_;
};

} // namespace

Result<ServiceConfig> parseServiceConfig(std::string_view text, std::string_view sourceName) {
    YAML::Node root;
    try {
        // yaml-cpp reports syntax errors by throwing; nothing else here does.
        root = YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
        if (e.mark.is_null())
            return Error(EINVAL, fmt::format("{}: {}", sourceName, e.msg));
        return Error(EINVAL, fmt::format("{}:{}: {}", sourceName, e.mark.line + 1, e.msg));
    }
    return ConfigLoader(sourceName).load(root);
}

Result<ServiceConfig> loadServiceConfig(const std::filesystem::path& path) {
    auto text = readFileLimited(path, kMaxConfigSize, "a configuration");
    if (!text)
        return text.error();
    return parseServiceConfig(*text, path.string());
}

Result<void> checkServiceConfig(const ServiceConfig& config, const Platform& platform,
                                std::span<const std::string> heapNames) {
    for (const HeapAccess& access : config.heaps) {
        if (std::find(heapNames.begin(), heapNames.end(), access.heap) != heapNames.end())
            continue;
        std::string known;
        for (const std::string& h : heapNames)
            known += (known.empty() ? "" : ", ") + h;
        return Error(EINVAL, fmt::format("{}:{}: no heap '{}' on platform '{}' (heaps: {})", config.source, access.line,
                                         access.heap, platform.name, known));
    }
    return {};
}

} // namespace cenalloc
