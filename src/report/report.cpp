// SPDX-License-Identifier: MIT
// The public reports (cenalloc/report.h): the report layer's views, written as text or as JSON text.
#include <cenalloc/report.h>

#include <cerrno>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "base/file.h"
#include "base/try.h"
#include "report/host_dmabufs.h"
#include "report/report.h"

namespace cenalloc {

namespace {

using nlohmann::json;

std::string write(json j, const ReportOptions& options) {
    if (!options.notes.empty())
        j["notes"] = options.notes;
    // The views give well-formed UTF-8; should any string still not be
    // (a note, say), it becomes U+FFFD rather than failing the report.
    return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

bool asJson(const ReportOptions& options) {
    return options.format == ReportFormat::Json;
}

} // namespace

std::string reportPlatform(const Platform& platform, const ReportOptions& options) {
    return asJson(options) ? write(platformJson(platform), options) : renderPlatform(platform);
}

std::string reportHeaps(std::string_view source, std::span<const HeapInfo> heaps, const ReportOptions& options) {
    std::vector<HeapInfo> list(heaps.begin(), heaps.end());
    return asJson(options) ? write(heapsJson(std::string(source), list), options)
                           : renderHeaps(std::string(source), list);
}

std::string reportBuffers(std::span<const BufferInfo> buffers, const ReportOptions& options) {
    std::vector<BufferInfo> list(buffers.begin(), buffers.end());
    return asJson(options) ? write(bufinfoJson(list), options) : renderBufinfo(list);
}

std::string reportBuffer(const BufferInfo& buffer, const ReportOptions& options) {
    return asJson(options) ? write(bufinfoJson({buffer})["buffers"][0], options) : renderBufinfo({buffer});
}

std::string reportDomains(std::span<const IommuDomainStats> domains, const ReportOptions& options) {
    std::vector<IommuDomainStats> list(domains.begin(), domains.end());
    return asJson(options) ? write(domainsJson(list), options) : renderDomains(list);
}

std::string reportStats(std::string_view source, const AllocatorStats& stats, const ReportOptions& options) {
    return asJson(options) ? write(statsJson(stats), options) : renderStats(std::string(source), stats);
}

std::string reportExplanation(const Explanation& explanation, const ReportOptions& options) {
    return asJson(options) ? write(explanationJson(explanation), options) : renderExplanation(explanation);
}

std::string reportAttachForecasts(const BufferInfo& buffer, std::span<const DeviceForecast> forecasts,
                                  const ReportOptions& options) {
    std::vector<DeviceForecast> list(forecasts.begin(), forecasts.end());
    return asJson(options) ? write(attachForecastsJson(buffer, list), options) : renderAttachForecasts(buffer, list);
}

Result<std::string> reportHostDmaBufs(const ReportOptions& options) {
    const HostDmaBufScan scan = CENALLOC_TRY(scanHostDmaBufs());
    return asJson(options) ? write(hostDmaBufsJson(scan), options) : renderHostDmaBufs(scan);
}

namespace {

// @p allocated as reportAllocatedFor shows it, its buffer's fd being @p fd.
Result<std::string> reportAllocated(const SessionAllocatedFor& allocated, int fd, const ReportOptions& options) {
    AllocatedFdFacts facts;
    facts.fd = fd;
    struct stat st {};
    if (::fstat(facts.fd, &st) != 0)
        return Error::fromErrno("fstat of buffer fd");
    facts.inode = st.st_ino;
    facts.exporter = allocated.exporter;
    if (!allocated.kernelHeap.empty()) {
        // What the kernel says of its own dma-buf (drivers/dma-buf/dma-buf.c dma_buf_show_fdinfo).
        auto fdinfo = readFileLimited(fmt::format("/proc/self/fdinfo/{}", facts.fd), 64 * 1024, "an fdinfo");
        if (fdinfo)
            if (auto info = parseDmaBufFdInfo(*fdinfo))
                facts.exporter = info->exporter;
    }
    return asJson(options) ? write(allocatedForJson(allocated, facts), options) : renderAllocatedFor(allocated, facts);
}

} // namespace

Result<std::string> reportAllocatedFor(const AllocatedFor& allocated, const ReportOptions& options) {
    const Buffer& buffer = *allocated.buffer;
    SessionAllocatedFor view; // its fd stays the buffer's
    view.size = buffer.size();
    view.heap = allocated.choice.heap;
    view.kernelHeap = allocated.choice.kernelHeap;
    view.reason = allocated.choice.reason;
    view.name = buffer.name();
    view.exporter = buffer.exporterName();
    view.devices = allocated.choice.devices;
    return reportAllocated(view, buffer.fd().get(), options);
}

Result<std::string> reportAllocatedFor(const SessionAllocatedFor& allocated, const ReportOptions& options) {
    return reportAllocated(allocated, allocated.fd.get(), options);
}

Result<BufferInfo> describeBuffer(Session& session, BorrowedFd fd) {
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        return Error::fromErrno("fstat of buffer fd");
    auto buffers = session.bufinfo();
    if (!buffers)
        return buffers.error();
    for (BufferInfo& info : *buffers)
        if (info.inode == st.st_ino)
            return std::move(info);
    return Error(ENOENT, "the buffer is not in bufinfo");
}

} // namespace cenalloc
