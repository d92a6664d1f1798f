// SPDX-License-Identifier: MIT
// What the tools show: text for people and JSON (a stable interface) for programs.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <cenalloc/buffer.h>
#include <cenalloc/context.h>
#include <cenalloc/explain.h>
#include <cenalloc/iommu.h>
#include <cenalloc/platform.h>
#include <cenalloc/session.h>

namespace cenalloc {

// JSON field names are snake_case and only ever added to, never renamed.

nlohmann::json platformJson(const Platform& platform);
std::string renderPlatform(const Platform& platform);

nlohmann::json heapPropertiesJson(const HeapProperties& properties);
nlohmann::json heapStatsJson(const HeapStats& stats);
/// The heaps of @p context as a session lists them.
std::vector<HeapInfo> heapInfos(const Context& context);
/// {"platform", "heaps": [{"name", "properties", "stats"}, ...]}
nlohmann::json heapsJson(const std::string& platform, const std::vector<HeapInfo>& heaps);
std::string renderHeaps(const std::string& platform, const std::vector<HeapInfo>& heaps);
nlohmann::json heapsJson(const Context& context);
std::string renderHeaps(const Context& context);

nlohmann::json bufinfoJson(const std::vector<BufferInfo>& buffers);
/// The bufinfo line of the buffer @p fd names, as @p session sees it.
/// Errors: those of Session::bufinfo; ENOENT when the buffer is not listed.
Result<BufferInfo> describeBuffer(Session& session, BorrowedFd fd);
std::string renderBufinfo(const std::vector<BufferInfo>& buffers);

nlohmann::json domainsJson(const std::vector<IommuDomainStats>& domains);
std::string renderDomains(const std::vector<IommuDomainStats>& domains);

/// {"heaps", "domains", "live_buffers", "lifetime_bugs"}
nlohmann::json statsJson(const AllocatorStats& stats);
std::string renderStats(const std::string& where, const AllocatorStats& stats);

nlohmann::json constraintSetJson(const ConstraintSet& set);
nlohmann::json explanationJson(const Explanation& explanation);
std::string renderExplanation(const Explanation& explanation);

/// The result of `cenalloc demo`.
struct DemoReport {
    std::string text;
    nlohmann::json json;
    /// Every check of the scenario held.
    bool ok = false;
};

/// The demo scenario on @p platform, in-process: allocate from every heap,
/// attach devices, map, move data between buffers through the device model
/// and check it; a deferred allocation where the first device's preference
/// would have failed; bufinfo, heap statistics and IOMMU counters; release
/// and check everything is back to baseline.
/// Errors: only when the context cannot be created; failed checks are in
/// the report (ok = false).
Result<DemoReport> runDemo(const Platform& platform);

} // namespace cenalloc
