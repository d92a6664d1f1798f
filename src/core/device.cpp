// SPDX-License-Identifier: MIT
// The device model: DMA through the mappings a device holds, faulting like hardware.
#include <cenalloc/device.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unistd.h>

#include <fmt/format.h>

#include <cenalloc/units.h>

#include "core/dma_segment_index.h"
#include "iommu/iommu_domain.h"

namespace cenalloc {

namespace {
// Bounded histories: enough to report and classify recent faults.
constexpr size_t kFaultHistory = 64;
constexpr size_t kUnmapHistory = 64; // mappings
// ...and at most this many ranges in all, after merging a mapping's touching
// segments (a device's max segment size cuts contiguous memory into many):
// a client must not make the history, kept per device and scanned on every
// fault at an address no mapping covers, as large as its mappings. Past it
// the oldest unmappings are forgotten (their addresses then fault as
// unmapped, EFAULT all the same).
constexpr size_t kUnmapHistoryRanges = 4096;

// @p ranges sorted, with those that overlap or touch made one.
SgTable merged(SgTable ranges) {
    std::sort(ranges.begin(), ranges.end(),
              [](const SgEntry& a, const SgEntry& b) { return a.dmaAddress < b.dmaAddress; });
    SgTable out;
    for (const SgEntry& r : ranges) {
        if (!out.empty() && r.dmaAddress <= out.back().end())
            out.back().length = std::max(out.back().end(), r.end()) - out.back().dmaAddress;
        else
            out.push_back(r);
    }
    return out;
}
} // namespace

const char* dmaFaultKindName(DmaFaultKind kind) {
    switch (kind) {
    case DmaFaultKind::Unmapped: return "unmapped";
    case DmaFaultKind::AfterUnmap: return "after-unmap";
    case DmaFaultKind::BeyondSegment: return "beyond-segment";
    case DmaFaultKind::WrongDirection: return "wrong-direction";
    case DmaFaultKind::Translation: return "translation";
    }
    return "?";
}

DmaDevice::DmaDevice(Device description, std::shared_ptr<IommuDomain> domain)
    : desc_(std::move(description)), domain_(std::move(domain)), active_(std::make_unique<DmaSegmentIndex>()) {}

DmaDevice::~DmaDevice() = default;

void DmaDevice::addMapping(uint64_t mappingId, std::weak_ptr<Buffer> buffer, DmaDirection direction,
                           const SgTable& segments, std::vector<PhysChunk> chunks) const {
    auto table = std::make_shared<std::vector<std::pair<PhysChunk, uint64_t>>>();
    uint64_t offset = 0;
    for (const PhysChunk& c : chunks) {
        table->push_back({c, offset});
        offset += c.size;
    }
    // transfer() looks chunks up by physical address; heaps hand chunks out
    // in any address order (the system heap goes top-down), so sort them.
    std::sort(table->begin(), table->end(),
              [](const auto& a, const auto& b) { return a.first.address < b.first.address; });
    std::lock_guard lock(mutex_);
    for (const SgEntry& s : segments) {
        auto seg = std::make_shared<DmaSegment>();
        seg->mappingId = mappingId;
        seg->start = s.dmaAddress;
        seg->end = s.dmaAddress + s.length;
        seg->direction = direction;
        seg->buffer = buffer;
        seg->chunks = table;
        active_->add(std::move(seg));
    }
}

void DmaDevice::removeMapping(uint64_t mappingId, UnmapCause cause) const {
    std::lock_guard lock(mutex_);
    Unmapped gone{merged(active_->remove(mappingId)), cause};
    if (gone.ranges.empty())
        return;
    if (gone.ranges.size() > kUnmapHistoryRanges)
        gone.ranges.resize(kUnmapHistoryRanges); // the rest is forgotten at once
    size_t ranges = gone.ranges.size();
    for (const Unmapped& u : recentlyUnmapped_)
        ranges += u.ranges.size();
    while (!recentlyUnmapped_.empty() && (recentlyUnmapped_.size() >= kUnmapHistory || ranges > kUnmapHistoryRanges)) {
        ranges -= recentlyUnmapped_.front().ranges.size();
        recentlyUnmapped_.pop_front();
    }
    recentlyUnmapped_.push_back(std::move(gone));
}

size_t DmaDevice::activeMappingCount() const {
    std::lock_guard lock(mutex_);
    return active_->mappingCount();
}

uint64_t DmaDevice::faultCount() const {
    std::lock_guard lock(mutex_);
    return faultCount_;
}

std::vector<DmaFault> DmaDevice::recentFaults() const {
    std::lock_guard lock(mutex_);
    return {faults_.begin(), faults_.end()};
}

Error DmaDevice::fault(DmaFaultKind kind, uint64_t address, uint64_t length, bool write, std::string message) const {
    // Called with mutex_ held; the domain's lock nests inside the device's.
    ++faultCount_;
    if (domain_)
        domain_->recordFault();
    if (faults_.size() == kFaultHistory)
        faults_.pop_front();
    std::string text = fmt::format("dma fault: device '{}' {} {} at {}: {}", desc_.name, write ? "write" : "read",
                                   formatSize(length), formatAddress(address), message);
    faults_.push_back({desc_.name, address, length, write, kind, text});
    return Error(kind == DmaFaultKind::WrongDirection ? EPERM : EFAULT, std::move(text));
}

Result<void> DmaDevice::write(uint64_t dmaAddress, std::span<const std::byte> data) const {
    // transfer() never writes through the pointer for a device write.
    return transfer(dmaAddress, const_cast<std::byte*>(data.data()), data.size(), true);
}

Result<void> DmaDevice::read(uint64_t dmaAddress, std::span<std::byte> out) const {
    return transfer(dmaAddress, out.data(), out.size(), false);
}

Result<void> DmaDevice::transfer(uint64_t dmaAddress, std::byte* data, uint64_t length, bool write) const {
    if (length == 0)
        return {};
    std::shared_ptr<const DmaSegment> seg;
    std::vector<std::pair<uint64_t, uint64_t>> pieces; // (memfd offset, length)
    {
        std::lock_guard lock(mutex_);
        // Several of its mappings can cover one address (the same buffer
        // mapped twice, or a shared IOVA mapping): the transfer is allowed
        // when one of them holds the whole range in the right direction, and
        // otherwise faults the way the closest candidate says (the earliest
        // mapped among equally close ones).
        auto permits = [&](const DmaSegment& s) {
            return s.direction == DmaDirection::Bidirectional ||
                   (write ? s.direction == DmaDirection::FromDevice : s.direction == DmaDirection::ToDevice);
        };
        // 0: covers the start, 1: and the whole length, 2: and allows the direction
        seg = active_->best(
            dmaAddress, [&](const DmaSegment& s) { return length > s.end - dmaAddress ? 0 : (permits(s) ? 2 : 1); });
        if (!seg) {
            // The newest unmapping of the address says what happened to it.
            auto stale = std::find_if(recentlyUnmapped_.rbegin(), recentlyUnmapped_.rend(), [&](const Unmapped& u) {
                return std::any_of(u.ranges.begin(), u.ranges.end(), [&](const SgEntry& e) {
                    return dmaAddress >= e.dmaAddress && dmaAddress - e.dmaAddress < e.length;
                });
            });
            if (stale != recentlyUnmapped_.rend() && stale->cause == UnmapCause::Moved) {
                // The buffer moved under a dynamic importer that did not map
                // it again. Behind an IOMMU the old IOVA was unmapped: the
                // IOMMU faults. Without one the device would reach memory
                // that is no longer the buffer's: the model reports it.
                if (domain_)
                    return fault(DmaFaultKind::Translation, dmaAddress, length, write,
                                 "IOMMU fault: the IOVA was released when the buffer moved (map it again after the "
                                 "move notification)");
                return fault(DmaFaultKind::AfterUnmap, dmaAddress, length, write,
                             "stale mapping: the buffer moved (map it again after the move notification)");
            }
            if (stale != recentlyUnmapped_.rend())
                return fault(DmaFaultKind::AfterUnmap, dmaAddress, length, write, "the mapping was unmapped");
            return fault(DmaFaultKind::Unmapped, dmaAddress, length, write, "no mapping of this device covers it");
        }
        if (length > seg->end - dmaAddress)
            return fault(DmaFaultKind::BeyondSegment, dmaAddress, length, write,
                         fmt::format("the segment ends at {}", formatAddress(seg->end)));
        if (!permits(*seg))
            return fault(DmaFaultKind::WrongDirection, dmaAddress, length, write,
                         fmt::format("the mapping is {}", dmaDirectionName(seg->direction)));

        // Translate page by page (through the IOMMU when there is one) into
        // physical addresses, then into offsets of the buffer's memfd.
        const auto& chunks = *seg->chunks;
        uint64_t addr = dmaAddress;
        uint64_t left = length;
        while (left > 0) {
            uint64_t pageLeft = kPageSize - (addr % kPageSize);
            uint64_t step = std::min(left, pageLeft);
            uint64_t phys = addr;
            if (domain_) {
                auto translated = domain_->translate(addr);
                if (!translated)
                    return fault(DmaFaultKind::Translation, addr, step, write, translated.error().message());
                phys = *translated;
            }
            auto it = std::upper_bound(chunks.begin(), chunks.end(), phys,
                                       [](uint64_t p, const auto& entry) { return p < entry.first.address; });
            if (it == chunks.begin() || phys >= std::prev(it)->first.end())
                return fault(DmaFaultKind::Translation, addr, step, write,
                             fmt::format("physical address {} is not the buffer's memory", formatAddress(phys)));
            --it;
            uint64_t offset = it->second + (phys - it->first.address);
            step = std::min(step, it->first.end() - phys);
            if (!pieces.empty() && pieces.back().first + pieces.back().second == offset)
                pieces.back().second += step;
            else
                pieces.push_back({offset, step});
            addr += step;
            left -= step;
        }
    }
    auto buffer = seg->buffer.lock();
    if (!buffer) {
        std::lock_guard lock(mutex_);
        return fault(DmaFaultKind::AfterUnmap, dmaAddress, length, write, "the buffer was released");
    }
    buffer->noteDeviceAccess();
    int fd = buffer->fd().get();
    if (fd < 0) // the service gave the memfd to its client: the bytes are out of reach here
        return Error(EBADF, fmt::format("device '{}' dma: buffer {} gave its fd away", desc_.name, buffer->id()));
    std::byte* cursor = data;
    for (auto [offset, len] : pieces) {
        uint64_t done = 0;
        while (done < len) {
            ssize_t n = write ? ::pwrite(fd, cursor + done, len - done, static_cast<off_t>(offset + done))
                              : ::pread(fd, cursor + done, len - done, static_cast<off_t>(offset + done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return Error(n < 0 ? errno : EIO, fmt::format("device '{}' dma to the buffer's memory: {}", desc_.name,
                                                              n < 0 ? std::strerror(errno) : "short"));
            done += static_cast<uint64_t>(n);
        }
        cursor += len;
    }
    return {};
}

} // namespace cenalloc
