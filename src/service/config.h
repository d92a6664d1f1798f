// SPDX-License-Identifier: MIT
// The cenallocd configuration: client limits, quotas and per-heap access control, loaded from YAML.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/context.h>
#include <cenalloc/platform.h>
#include <cenalloc/result.h>

namespace cenalloc {

/// A peer as SO_PEERCRED / SO_PEERGROUPS identify it.
struct Credentials {
    int32_t pid = 0;
    uint32_t uid = 0;
    uint32_t gid = 0;
    /// Supplementary groups (the primary gid need not be among them).
    std::vector<uint32_t> groups;

    bool inGroup(uint32_t group) const;
};

inline constexpr uint64_t kUnlimited = UINT64_MAX;
/// The most worker threads a configuration may ask for.
inline constexpr size_t kMaxWorkers = 64;
/// The longest busy-poll limit a configuration may set.
inline constexpr uint64_t kMaxBusyPollMicros = 10'000;

/// What the buffers charged to one uid may add up to.
/// Besides buffers, what a uid's clients may keep the daemon waiting on
/// (docs/protocol.md, "Migration across processes"): migrations they asked
/// for that wait for other clients' acknowledgements, and move events their
/// dynamic importers were sent and have not acknowledged. Past the first a
/// migration is EAGAIN; past the second an importer is not waited for and
/// holds its storage as a static importer (EBUSY naming it).
struct Quota {
    uint64_t bytes = kUnlimited;
    uint64_t buffers = kUnlimited;
    uint64_t pendingMoves = 4;
    uint64_t unackedMoves = 64;
    bool operator==(const Quota&) const = default;
};

/// A quota for the clients a uid or a gid names.
struct QuotaRule {
    std::optional<uint32_t> uid;
    std::optional<uint32_t> gid;
    Quota quota;
    int line = 0; ///< where the rule is, for messages
};

/// Who may allocate from a heap. A heap without an entry is open to all.
struct HeapAccess {
    std::string heap;
    std::vector<uint32_t> uids;
    std::vector<uint32_t> gids;
    int line = 0;
};

/// Buffers a uid may hold when no rule says otherwise, even without a
/// configuration file: every buffer costs the daemon an inotify watch and
/// its bookkeeping, so no uid may have them without bound.
inline constexpr uint64_t kDefaultBufferQuota = 4096;

/// The daemon's configuration. The defaults (no file) are: 256 clients, 64
/// per uid, one worker thread per CPU (at most 4) polling up to 50 us, a
/// quota of 4096 buffers (and any number of bytes) per uid, as many buffers
/// in all as fs.inotify.max_user_watches allows with a share of them kept
/// for root, every heap open.
struct ServiceConfig {
    size_t maxClients = 256;
    size_t maxClientsPerUid = 64;
    /// Threads serving connections; 0 (no `workers` key): one per CPU, at
    /// most 4.
    size_t workers = 0;
    /// The longest an idle worker polls for the next request before it
    /// sleeps (it polls only while requests come that often; 0: never).
    uint64_t busyPollMicros = 50;
    /// The quota of a uid no rule names.
    Quota defaultQuota{kUnlimited, kDefaultBufferQuota};
    /// Whether the file set the default quota's count of buffers (else the
    /// built-in one, which uid 0 is not subject to).
    bool defaultBuffersConfigured = false;
    /// Buffers the daemon tracks at once (each is an inotify watch); 0 (no
    /// `max_buffers` key): fs.inotify.max_user_watches. A sixteenth of them
    /// (at least 64, at most half) is kept for uid 0.
    uint64_t maxBuffers = 0;
    /// subuid(5): a uid in a range it gives a user counts as that user for
    /// every per-uid limit and rule (SubordinateIds); empty: none. YAML
    /// `subordinate_uids: <file>` (`~` or "" for none).
    std::string subordinateUids = "/etc/subuid";
    /// How long a migration waits for a dynamic importer's acknowledgement
    /// of its move event before it treats it as static (EBUSY naming it).
    uint64_t moveAckTimeoutMs = 1000;
    /// In file order; the first rule naming the uid, or a group of the
    /// client, applies.
    std::vector<QuotaRule> quotas;
    std::vector<HeapAccess> heaps;
    /// Which host kernel heaps to offer (YAML `kernel_heaps: false` turns
    /// them off; the directory is for tests).
    ContextOptions context;
    /// Offer the host kernel's heaps only after one page allocated from one
    /// showed that the kernel reports a dma-buf's end (serviceContext). Not
    /// a configuration key: tests whose stand-in heap directory
    /// (context.kernelHeapDir) holds nodes that cannot allocate turn it off.
    bool probeKernelHeaps = true;
    /// The file it came from, for messages ("<defaults>" without one).
    std::string source = "<defaults>";

    /// The quota that applies to @p peer: the first rule naming its uid or
    /// one of its groups, else the default (whose built-in count of buffers
    /// does not apply to uid 0).
    Quota quotaFor(const Credentials& peer) const;
    /// Is @p quota the default one (for messages)?
    bool quotaIsDefault(const Quota& quota) const;
    /// May @p peer allocate from @p heap?
    bool allows(std::string_view heap, const Credentials& peer) const;
};

/// Parse a YAML configuration (docs/protocol.md shows the schema). Every
/// error names "<source>:<line>:". Errors: EINVAL.
Result<ServiceConfig> parseServiceConfig(std::string_view text, std::string_view sourceName);
/// Read and parse a configuration file. Errors: errno of open/read, EINVAL.
Result<ServiceConfig> loadServiceConfig(const std::filesystem::path& path);
/// Check that every heap the configuration names exists on @p platform.
/// Errors: EINVAL "<source>:<line>: no heap 'x' on platform 'y' (heaps: ...)".
Result<void> checkServiceConfig(const ServiceConfig& config, const Platform& platform,
                                std::span<const std::string> heapNames);

} // namespace cenalloc
