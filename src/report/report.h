// SPDX-License-Identifier: MIT
// The views behind cenalloc/report.h: text for people and JSON (a stable interface) for programs.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <cenalloc/buffer.h>
#include <cenalloc/context.h>
#include <cenalloc/explain.h>
#include <cenalloc/iommu.h>
#include <cenalloc/platform.h>
#include <cenalloc/report.h>
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
std::string renderBufinfo(const std::vector<BufferInfo>& buffers);

nlohmann::json domainsJson(const std::vector<IommuDomainStats>& domains);
std::string renderDomains(const std::vector<IommuDomainStats>& domains);
/// The pool of ready memory per heap, then in all, as a table.
std::string renderReadyPools(const std::vector<ReadyPoolStats>& pools);

/// {"heaps", "domains", "live_buffers", "lifetime_bugs"}
nlohmann::json statsJson(const AllocatorStats& stats);
std::string renderStats(const std::string& where, const AllocatorStats& stats);

nlohmann::json constraintSetJson(const ConstraintSet& set);
nlohmann::json explanationJson(const Explanation& explanation);
std::string renderExplanation(const Explanation& explanation);

/// "fits", "would_migrate", "blocked", "unsatisfiable".
const char* attachOutcomeKey(AttachForecast::Outcome outcome);
/// {"device", "outcome", "from_heap", "to_heap", "notified", "reason"}
nlohmann::json deviceForecastJson(const DeviceForecast& forecast);
/// {"buffer", "forecasts"}
nlohmann::json attachForecastsJson(const BufferInfo& buffer, const std::vector<DeviceForecast>& forecasts);
/// One line per forecast under a line naming the buffer.
std::string renderAttachForecasts(const BufferInfo& buffer, const std::vector<DeviceForecast>& forecasts);

/// What the fd of a buffer allocated for devices is, as the kernel shows it.
struct AllocatedFdFacts {
    int fd = -1;
    uint64_t inode = 0;
    /// fdinfo exp_name for a real dma-buf; the buffer's exporter otherwise.
    std::string exporter;
};
/// {"heap", "kernel_heap", "size", "fd", "inode", "exporter", "name", "reason", "devices": [{"name", "sysfs",
/// "driver"}]}. @p allocated's own fd is not looked at: @p fd says it.
nlohmann::json allocatedForJson(const SessionAllocatedFor& allocated, const AllocatedFdFacts& fd);
/// "heap: ...", "kernel heap: ...", ... one line each, then a "device:" line per device.
std::string renderAllocatedFor(const SessionAllocatedFor& allocated, const AllocatedFdFacts& fd);

} // namespace cenalloc
