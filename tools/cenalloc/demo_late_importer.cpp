// SPDX-License-Identifier: MIT
// The demo's late restrictive importer: a static importer blocks the move, a dynamic one is moved and told.
#include "tools/cenalloc/demo_late_importer.h"

#include <cerrno>
#include <cstring>
#include <optional>
#include <sys/mman.h>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <cenalloc/device.h>
#include <cenalloc/report.h>
#include <cenalloc/units.h>

namespace cenalloc::cli {

namespace {

using nlohmann::json;

constexpr uint64_t kFrameSize = 4 * MiB;

std::vector<std::byte> framePattern(uint64_t size) {
    std::vector<std::byte> bytes(size);
    for (uint64_t i = 0; i < size; ++i)
        bytes[i] = std::byte(static_cast<uint8_t>((i * 29 + (i >> 12) * 7 + 5) & 0xff));
    return bytes;
}

/// @p device writes @p bytes through its mapping, segment by segment.
Result<void> dmaWrite(const DmaDevice& device, const SgTable& table, const std::vector<std::byte>& bytes) {
    uint64_t done = 0;
    for (size_t i = 0; i < table.size() && done < bytes.size(); ++i) {
        uint64_t step = std::min<uint64_t>(table[i].length, bytes.size() - done);
        if (auto w = device.write(table[i].dmaAddress, std::span(bytes).subspan(done, step)); !w)
            return w.error();
        done += step;
    }
    return done == bytes.size() ? Result<void>{} : Error(EINVAL, "segment table shorter than the buffer");
}

/// What @p device reads of @p size bytes through its mapping.
Result<std::vector<std::byte>> dmaRead(const DmaDevice& device, const SgTable& table, uint64_t size) {
    std::vector<std::byte> bytes(size);
    uint64_t done = 0;
    for (size_t i = 0; i < table.size() && done < size; ++i) {
        uint64_t step = std::min<uint64_t>(table[i].length, size - done);
        if (auto r = device.read(table[i].dmaAddress, std::span(bytes).subspan(done, step)); !r)
            return r.error();
        done += step;
    }
    if (done != size)
        return Error(EINVAL, "segment table shorter than the buffer");
    return bytes;
}

std::string segmentsText(const SgTable& table) {
    return fmt::format("{} segment{} at {}", table.size(), table.size() == 1 ? "" : "s",
                       table.empty() ? "-" : formatAddress(table.front().dmaAddress));
}

struct Pair {
    const DmaDevice* early = nullptr; ///< behind an IOMMU: maps first
    const DmaDevice* late = nullptr;  ///< contiguous only, no IOMMU: attaches late
};

/// The first pair (in the platform's device order) where the late device
/// cannot use what the early one's map allocated, but the buffer could move
/// to storage that serves both.
std::optional<Pair> findPair(Context& context) {
    for (const auto& early : context.devices()) {
        if (!early->description().iommu)
            continue;
        for (const auto& late : context.devices()) {
            if (late->description().iommu || !late->constraints().needsContiguous())
                continue;
            auto buffer = context.create(kFrameSize, "probe");
            if (!buffer)
                return std::nullopt;
            auto attachment = (*buffer)->attach(*early, {.onMove = [](const MoveNotification&) {}});
            if (!attachment)
                continue;
            auto mapping = attachment->map(DmaDirection::Bidirectional);
            if (!mapping)
                continue;
            if ((*buffer)->forecastAttach(*late).outcome == AttachForecast::Outcome::WouldMigrate)
                return Pair{early.get(), late.get()};
        }
    }
    return std::nullopt;
}

/// The forecast of @p device attaching to @p buffer, printed indented
/// under the section; its JSON object is appended to @p forecasts.
AttachForecast forecast(Narrator& n, json& forecasts, const Buffer& buffer, const DmaDevice& device) {
    const std::vector<DeviceForecast> list{{device.name(), buffer.forecastAttach(device)}};
    std::string text = reportAttachForecasts(buffer.info(), list);
    for (size_t start = 0; start < text.size();) {
        size_t end = text.find('\n', start);
        n.raw("  " + text.substr(start, end - start + 1));
        start = end + 1;
    }
    forecasts.push_back(json::parse(reportAttachForecasts(buffer.info(), list, {ReportFormat::Json, {}})));
    return list.front().forecast;
}

void staticImporter(Context& context, Narrator& n, json& forecasts, const Pair& pair) {
    const DmaDevice& early = *pair.early;
    const DmaDevice& late = *pair.late;
    auto buffer = context.create(kFrameSize, "late:static");
    if (!buffer) {
        n.check(false, buffer.error().toString());
        return;
    }
    auto attachment = (*buffer)->attach(early);
    auto mapping =
        attachment ? attachment->map(DmaDirection::Bidirectional) : Result<Attachment::Mapping>(attachment.error());
    if (!mapping) {
        n.check(false, fmt::format("'{}' maps the frame: {}", early.name(), mapping.error().toString()));
        return;
    }
    const std::string heap = (*buffer)->heapName();
    n.say(fmt::format("'{}' attaches as a static importer and maps the frame: {}, storage from '{}'", early.name(),
                      segmentsText(mapping->segments()), heap));
    const AttachForecast f = forecast(n, forecasts, **buffer, late);
    auto refused = (*buffer)->attach(late);
    const bool ok = f.outcome == AttachForecast::Outcome::Blocked && !refused && refused.error().code() == EBUSY &&
                    refused.error().message().find(f.reason) != std::string::npos && (*buffer)->heapName() == heap &&
                    mapping->mapped();
    n.check(ok, fmt::format("'{}' is refused with {}: the storage cannot move, {}", late.name(),
                            refused                           ? "success?!"
                            : refused.error().code() == EBUSY ? "EBUSY"
                                                              : refused.error().toString(),
                            f.reason));
}

void dynamicImporter(Context& context, Narrator& n, json& forecasts, const Pair& pair, Live& live) {
    const DmaDevice& early = *pair.early;
    const DmaDevice& late = *pair.late;
    auto buffer = context.create(kFrameSize, "late:dynamic");
    if (!buffer) {
        n.check(false, buffer.error().toString());
        return;
    }
    // The importer's move_notify: it records what it was told. Shared, as
    // the attachment keeps the callback after this function returns.
    auto told = std::make_shared<std::vector<MoveNotification>>();
    auto attachment = (*buffer)->attach(early, {.onMove = [told](const MoveNotification& m) { told->push_back(m); }});
    auto mapping =
        attachment ? attachment->map(DmaDirection::Bidirectional) : Result<Attachment::Mapping>(attachment.error());
    if (!mapping) {
        n.check(false, fmt::format("'{}' maps the frame: {}", early.name(), mapping.error().toString()));
        return;
    }
    const std::vector<std::byte> frame = framePattern(kFrameSize);
    auto written = dmaWrite(early, mapping->segments(), frame);
    n.check(bool(written),
            fmt::format("'{}' attaches as a dynamic importer, maps the frame ({}, storage from '{}') and "
                        "writes {} through it",
                        early.name(), segmentsText(mapping->segments()), (*buffer)->heapName(),
                        written ? formatSize(kFrameSize) : written.error().toString()));
    const uint64_t oldAddress = mapping->segments().front().dmaAddress;

    const AttachForecast f = forecast(n, forecasts, **buffer, late);
    auto lateAttachment = (*buffer)->attach(late);
    if (!lateAttachment) {
        n.check(false, fmt::format("'{}' attaches: {}", late.name(), lateAttachment.error().toString()));
        return;
    }
    const std::vector<PhysChunk> chunks = (*buffer)->chunks();
    n.check(f.outcome == AttachForecast::Outcome::WouldMigrate && (*buffer)->heapName() == f.toHeap,
            fmt::format("'{}' attaches: the buffer moved from '{}' to '{}' ({} chunk{} at {})", late.name(), f.fromHeap,
                        (*buffer)->heapName(), chunks.size(), chunks.size() == 1 ? "" : "s",
                        chunks.empty() ? "-" : formatAddress(chunks.front().address)));
    const bool toldOnce = told->size() == 1 && told->front().sequence == 1 && (*buffer)->moveSequence() == 1;
    n.check(toldOnce && !mapping->mapped(),
            toldOnce ? fmt::format("'{}' notified: move sequence {}, '{}' -> '{}' ({}); its mapping of sequence {} is "
                                   "invalidated",
                                   early.name(), told->front().sequence, told->front().fromHeap, told->front().toHeap,
                                   told->front().reason, mapping->sequence())
                     : fmt::format("'{}' was told {} time(s)", early.name(), told->size()));

    std::vector<std::byte> probe(kPageSize);
    auto stale = early.read(oldAddress, probe);
    n.check(!stale && stale.error().code() == EFAULT,
            fmt::format("'{}' using its old address {} faults: {}", early.name(), formatAddress(oldAddress),
                        stale ? "read succeeded?!" : stale.error().message()));

    auto remapped = attachment->map(DmaDirection::Bidirectional);
    auto scanout = lateAttachment->map(DmaDirection::ToDevice);
    auto cpu = (*buffer)->mmap(PROT_READ);
    if (!remapped || !scanout || !cpu) {
        n.check(false, fmt::format("map after the move: {}", !remapped  ? remapped.error().toString()
                                                             : !scanout ? scanout.error().toString()
                                                                        : cpu.error().toString()));
        return;
    }
    auto earlyView = dmaRead(early, remapped->segments(), kFrameSize);
    auto lateView = dmaRead(late, scanout->segments(), kFrameSize);
    const bool same = earlyView && *earlyView == frame && lateView && *lateView == frame &&
                      std::memcmp(cpu->data(), frame.data(), kFrameSize) == 0;
    n.check(remapped->sequence() == 1, fmt::format("'{}' maps again: sequence {}, {}", early.name(),
                                                   remapped->sequence(), segmentsText(remapped->segments())));
    n.check(same, fmt::format("{} identical byte for byte through '{}', '{}' ({}) and the cpu", formatSize(kFrameSize),
                              early.name(), late.name(), segmentsText(scanout->segments())));
    live.mappings.push_back(std::move(*remapped));
    live.mappings.push_back(std::move(*scanout));
    live.attachments.push_back(std::move(*attachment));
    live.attachments.push_back(std::move(*lateAttachment));
    live.buffers.push_back(*buffer);
}

} // namespace

json showLateImporter(Context& context, Narrator& n, Live& live) {
    json forecasts = json::array();
    std::optional<Pair> pair = findPair(context);
    if (!pair) {
        n.say("no device behind an IOMMU maps storage that a contiguous-only device cannot use: nothing to show");
        return forecasts;
    }
    n.say(fmt::format("'{}' (behind iommu '{}') maps a {} frame first; '{}' (no iommu, contiguous only) attaches "
                      "late",
                      pair->early->name(), *pair->early->description().iommu, formatSize(kFrameSize),
                      pair->late->name()));
    staticImporter(context, n, forecasts, *pair);
    dynamicImporter(context, n, forecasts, *pair, live);
    return forecasts;
}

} // namespace cenalloc::cli
