// SPDX-License-Identifier: MIT
// DmaDevice: a platform device at run time, and the model of its DMA.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include <cenalloc/buffer.h>
#include <cenalloc/export.h>
#include <cenalloc/platform.h>
#include <cenalloc/result.h>

namespace cenalloc {

class DmaSegmentIndex; // the library's own (core/dma_segment_index.h)

enum class DmaFaultKind {
    Unmapped,       ///< no mapping of this device covers the address
    AfterUnmap,     ///< the address belonged to a mapping that was unmapped
    BeyondSegment,  ///< the transfer starts in a segment but runs past its end
    WrongDirection, ///< e.g. a device write through a DMA_TO_DEVICE mapping
    Translation,    ///< the IOMMU has no page for the address
};
CENALLOC_EXPORT const char* dmaFaultKindName(DmaFaultKind kind);

/// A fault report, like an IOMMU or bus fault: who, where, what.
struct DmaFault {
    std::string device;
    uint64_t address = 0;
    uint64_t length = 0;
    bool write = false;
    DmaFaultKind kind = DmaFaultKind::Unmapped;
    std::string message;
};

/// A DMA master of the platform at run time: its description, its IOMMU
/// domain (if behind one), the mappings it currently holds, and the model of
/// its DMA. The device reads and writes memory only through a mapping it
/// holds; every other access faults exactly where hardware would, changes
/// nothing, and is recorded.
///
/// Ownership: owned by the Context; attachments borrow it (it must outlive
/// them). Thread safety: all methods may be called concurrently.
class CENALLOC_EXPORT DmaDevice {
public:
    /// The device @p description describes, its DMA going through @p domain
    /// (null: direct, physical addresses). A Context makes the devices of
    /// its platform; IommuDomain is the library's own, so a program can make
    /// only direct devices itself.
    DmaDevice(Device description, std::shared_ptr<IommuDomain> domain);
    ~DmaDevice();
    DmaDevice(const DmaDevice&) = delete;
    DmaDevice& operator=(const DmaDevice&) = delete;

    const std::string& name() const { return desc_.name; }
    const Device& description() const { return desc_; }
    const DmaConstraints& constraints() const { return desc_.constraints; }
    /// The IOMMU domain the device's DMA goes through, or nullptr (an
    /// opaque handle here: devices with the same domain share IOVA space
    /// and cached mappings).
    IommuDomain* domain() const { return domain_.get(); }

    /// The device writes @p data to memory at @p dmaAddress (one burst: the
    /// range must lie inside one segment of a mapping that allows device
    /// writes). Errors: EFAULT for address faults, EPERM for a write through
    /// a DMA_TO_DEVICE mapping; nothing is written and the fault is recorded.
    Result<void> write(uint64_t dmaAddress, std::span<const std::byte> data) const;
    /// The device reads memory at @p dmaAddress into @p out. Same rules.
    Result<void> read(uint64_t dmaAddress, std::span<std::byte> out) const;

    uint64_t faultCount() const;
    /// The most recent faults (bounded history, oldest first).
    std::vector<DmaFault> recentFaults() const;
    /// Mappings the device holds now.
    size_t activeMappingCount() const;

private:
    // The mapping code (Buffer) tells the device what it may reach.
    friend class Buffer;
    const std::shared_ptr<IommuDomain>& sharedDomain() const { return domain_; }
    // The library's own: not exported (cenalloc/export.h).
    CENALLOC_NO_EXPORT void addMapping(uint64_t mappingId, std::weak_ptr<Buffer> buffer, DmaDirection direction,
                                       const SgTable& segments, std::vector<PhysChunk> chunks) const;
    CENALLOC_NO_EXPORT void removeMapping(uint64_t mappingId, UnmapCause cause = UnmapCause::Unmapped) const;
    CENALLOC_NO_EXPORT Result<void> transfer(uint64_t dmaAddress, std::byte* data, uint64_t length, bool write) const;
    CENALLOC_NO_EXPORT Error fault(DmaFaultKind kind, uint64_t address, uint64_t length, bool write,
                                   std::string message) const;

    Device desc_;
    std::shared_ptr<IommuDomain> domain_;
    // The device's DMA state changes under const methods: a device is
    // shared read-only by attachments, its mappings and faults are its own.
    mutable std::mutex mutex_;
    // The segments of every mapping it holds, by mapping id and by address.
    const std::unique_ptr<DmaSegmentIndex> active_; // its contents guarded by mutex_
    /// One mapping taken away: its segments, and why.
    struct Unmapped {
        SgTable ranges;
        UnmapCause cause;
    };
    mutable std::deque<Unmapped> recentlyUnmapped_; // guarded by mutex_
    mutable std::deque<DmaFault> faults_;           // guarded by mutex_
    mutable uint64_t faultCount_ = 0;               // guarded by mutex_
};

} // namespace cenalloc
