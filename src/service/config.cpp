// SPDX-License-Identifier: MIT
// The cenallocd configuration: its schema, read with the platform layer's YAML reader, and its rules.
#include "service/config.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <utility>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "base/file.h"
#include "base/try.h"
#include "platform/yaml_reader.h"

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
    if (peer.uid == 0 && !defaultBuffersConfigured) {
        Quota root = defaultQuota;
        root.buffers = kUnlimited;
        return root;
    }
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

// A count or an id: plain decimal.
Result<uint64_t> decimal(std::string_view text) {
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty())
        return Error(EINVAL, fmt::format("'{}' is not a number", text));
    return value;
}

// A limit: "unlimited", or a count (decimal) or an amount of bytes (a size).
Result<uint64_t> limit(std::string_view text) {
    return text == "unlimited" ? Result<uint64_t>(kUnlimited) : decimal(text);
}

Result<uint64_t> bytesLimit(std::string_view text) {
    return text == "unlimited" ? Result<uint64_t>(kUnlimited) : yaml::size(text);
}

// A limit of at least one.
Result<uint64_t> count(const yaml::Node& node) {
    uint64_t n = CENALLOC_TRY(node.as(limit));
    if (n == 0)
        return node.error("must be at least 1");
    return n;
}

// A plain number in [min, max] ("unlimited" is not one).
Result<uint64_t> bounded(const yaml::Node& node, uint64_t min, uint64_t max) {
    uint64_t n = CENALLOC_TRY(node.as(decimal));
    if (n < min)
        return node.error(fmt::format("must be at least {}", min));
    if (n > max)
        return node.error(fmt::format("{} is more than {}", n, max));
    return n;
}

Result<uint32_t> id(const yaml::Node& node) {
    uint64_t n = CENALLOC_TRY(node.as(decimal));
    // (uid_t)-1 means "no change" to the kernel's set*id calls: never a real id.
    if (n >= UINT32_MAX)
        return node.error(fmt::format("{} is not a valid id", n));
    return static_cast<uint32_t>(n);
}

// What @p quota does not say keeps its value in @p q.
Result<Quota> readQuota(const yaml::Map& quota, Quota q = {}) {
    CENALLOC_CHECK(quota.read("bytes", q.bytes, bytesLimit));
    CENALLOC_CHECK(quota.read("buffers", q.buffers, limit));
    CENALLOC_CHECK(quota.read("pending_moves", q.pendingMoves, limit));
    CENALLOC_CHECK(quota.read("unacked_moves", q.unackedMoves, limit));
    return q;
}

Result<QuotaRule> readClient(const yaml::Node& entry) {
    yaml::Map f = CENALLOC_TRY(entry.map({"uid", "gid", "quota"}));
    QuotaRule rule;
    rule.line = entry.line();
    std::optional<yaml::Node> uid = f.find("uid");
    std::optional<yaml::Node> gid = f.find("gid");
    if (uid.has_value() == gid.has_value())
        return f.error("give exactly one of uid and gid");
    if (uid)
        rule.uid = CENALLOC_TRY(id(*uid));
    else
        rule.gid = CENALLOC_TRY(id(*gid));
    CENALLOC_CHECK(f.require({"quota"}));
    yaml::Map quota = CENALLOC_TRY(f.find("quota")->map({"bytes", "buffers", "pending_moves", "unacked_moves"}));
    rule.quota = CENALLOC_TRY(readQuota(quota));
    return rule;
}

// The most ready memory the daemon may be told to keep: a pool is optional
// memory, and a typo ("64G" for "64M") must not pin the machine's RAM.
constexpr uint64_t kMaxReadyBytes = 16 * GiB;
// Each memfd the pool holds is an open fd of the daemon (and, made ahead, an
// inotify watch of its uid).
constexpr uint64_t kMaxReadyBuffers = 4096;
constexpr uint64_t kMaxClassDepth = 64;

// ready_memory: {heap_bytes, total_bytes, min_bytes, populate_bytes,
// max_buffers, class_depth, refill_bytes_per_second, low_memory_bytes}; what
// it does not say keeps its value in @p r.
Result<ReadyPoolOptions> readReadyMemory(const yaml::Node& node, ReadyPoolOptions r) {
    yaml::Map m = CENALLOC_TRY(node.map({"heap_bytes", "total_bytes", "min_bytes", "populate_bytes", "max_buffers",
                                         "class_depth", "refill_bytes_per_second", "low_memory_bytes"}));
    CENALLOC_CHECK(m.read("heap_bytes", r.heapBytes, yaml::size));
    CENALLOC_CHECK(m.read("total_bytes", r.totalBytes, yaml::size));
    CENALLOC_CHECK(m.read("min_bytes", r.minBytes, yaml::size));
    CENALLOC_CHECK(m.read("populate_bytes", r.populateBytes, yaml::size));
    if (std::optional<yaml::Node> v = m.find("max_buffers"))
        r.maxBuffers = CENALLOC_TRY(bounded(*v, 0, kMaxReadyBuffers));
    if (std::optional<yaml::Node> v = m.find("class_depth"))
        r.classDepth = CENALLOC_TRY(bounded(*v, 1, kMaxClassDepth));
    CENALLOC_CHECK(m.read("refill_bytes_per_second", r.refillBytesPerSecond, yaml::size));
    CENALLOC_CHECK(m.read("low_memory_bytes", r.lowMemoryBytes, yaml::size));
    for (auto [key, value] : {std::pair{"heap_bytes", r.heapBytes}, std::pair{"total_bytes", r.totalBytes}})
        if (value > kMaxReadyBytes)
            return m.errorAt(key,
                             fmt::format("{}: {} is more than {}", key, formatSize(value), formatSize(kMaxReadyBytes)));
    if (r.totalBytes != 0 && r.heapBytes > r.totalBytes)
        return m.errorAt("heap_bytes", fmt::format("heap_bytes: {} per heap is more than the {} in all (total_bytes)",
                                                   formatSize(r.heapBytes), formatSize(r.totalBytes)));
    return r;
}

Result<HeapAccess> readHeap(const yaml::Node& entry, std::span<const HeapAccess> earlier) {
    yaml::Map f = CENALLOC_TRY(entry.map({"name", "allow_uids", "allow_gids"}));
    HeapAccess access;
    access.line = entry.line();
    CENALLOC_CHECK(f.require({"name"}));
    yaml::Node name = *f.find("name");
    if (!name.isScalar() || name.text().empty())
        return name.error("expected a heap name");
    access.heap = name.text();
    for (const HeapAccess& other : earlier)
        if (other.heap == access.heap)
            return f.errorAt("name",
                             fmt::format("heap '{}' is listed twice (first on line {})", access.heap, other.line));
    for (auto [key, out] : {std::pair{"allow_uids", &access.uids}, std::pair{"allow_gids", &access.gids}})
        for (const yaml::Node& item : CENALLOC_TRY(f.items(key, "a list of ids", yaml::IfNull::Error)))
            out->push_back(CENALLOC_TRY(id(item)));
    return access;
}

Result<ServiceConfig> readConfig(const yaml::Node& root, std::string_view source) {
    ServiceConfig config;
    config.source = std::string(source);
    if (root.isNull())
        return config; // an empty file: the defaults
    yaml::Map top = CENALLOC_TRY(
        root.map({"max_clients", "max_clients_per_uid", "workers", "busy_poll_us", "quota", "clients", "heaps",
                  "kernel_heaps", "max_buffers", "move_ack_timeout_ms", "ready_memory", "subordinate_uids"}));
    if (std::optional<yaml::Node> v = top.find("max_clients"))
        config.maxClients = CENALLOC_TRY(count(*v));
    if (std::optional<yaml::Node> v = top.find("max_clients_per_uid"))
        config.maxClientsPerUid = CENALLOC_TRY(count(*v));
    if (std::optional<yaml::Node> v = top.find("subordinate_uids")) {
        if (!v->isNull() && !v->isScalar())
            return v->error(fmt::format("expected a file name, got {}", v->kind()));
        config.subordinateUids = v->isNull() ? std::string() : v->text();
    }
    if (std::optional<yaml::Node> v = top.find("max_buffers"))
        config.maxBuffers = CENALLOC_TRY(count(*v));
    // A bound, not a wait anyone may make long: at most a minute.
    if (std::optional<yaml::Node> v = top.find("move_ack_timeout_ms"))
        config.moveAckTimeoutMs = CENALLOC_TRY(bounded(*v, 1, 60'000));
    if (std::optional<yaml::Node> v = top.find("workers"))
        config.workers = CENALLOC_TRY(bounded(*v, 1, kMaxWorkers));
    if (std::optional<yaml::Node> v = top.find("busy_poll_us"))
        config.busyPollMicros = CENALLOC_TRY(bounded(*v, 0, kMaxBusyPollMicros));
    if (std::optional<yaml::Node> v = top.find("kernel_heaps")) {
        if (!v->isScalar())
            return v->error("'a collection' is not true or false");
        config.context.kernelHeaps = CENALLOC_TRY(v->as(yaml::yaml11Boolean));
    }
    if (std::optional<yaml::Node> v = top.find("ready_memory"))
        config.context.readyPool = CENALLOC_TRY(readReadyMemory(*v, config.context.readyPool));
    if (std::optional<yaml::Node> v = top.find("quota")) {
        // What the default quota does not say keeps its default (a count of
        // buffers always exists).
        yaml::Map quota = CENALLOC_TRY(v->map({"bytes", "buffers", "pending_moves", "unacked_moves"}));
        config.defaultQuota = CENALLOC_TRY(readQuota(quota, config.defaultQuota));
        config.defaultBuffersConfigured = quota.has("buffers");
    }
    for (const yaml::Node& entry : CENALLOC_TRY(top.items("clients", "a list", yaml::IfNull::Error)))
        config.quotas.push_back(CENALLOC_TRY(readClient(entry)));
    for (const yaml::Node& entry : CENALLOC_TRY(top.items("heaps", "a list", yaml::IfNull::Error)))
        config.heaps.push_back(CENALLOC_TRY(readHeap(entry, config.heaps)));
    return config;
}

} // namespace

Result<ServiceConfig> parseServiceConfig(std::string_view text, std::string_view sourceName) {
    yaml::Node root = CENALLOC_TRY(yaml::parse(text, sourceName, "configuration", "a configuration"));
    return readConfig(root, sourceName);
}

Result<ServiceConfig> loadServiceConfig(const std::filesystem::path& path) {
    std::string text = CENALLOC_TRY(readFileLimited(path, kMaxConfigSize, "a configuration"));
    return parseServiceConfig(text, path.string());
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
