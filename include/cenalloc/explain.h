// SPDX-License-Identifier: MIT
// Heap matching, heap choice and explain(): where a buffer shared by devices must live, and who should allocate it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <cenalloc/constraints.h>
#include <cenalloc/export.h>
#include <cenalloc/heap.h>
#include <cenalloc/platform.h>
#include <cenalloc/result.h>

namespace cenalloc {

/// How often the CPU touches the buffer: the caller's hint for the choice
/// between cached and uncached memory.
enum class CpuAccess {
    None,  ///< only devices touch it
    Rare,  ///< the CPU fills or inspects it now and then
    Often, ///< the CPU reads or writes it all the time
};

/// "none", "rare", "often".
CENALLOC_EXPORT const char* cpuAccessName(CpuAccess access);
/// The inverse of cpuAccessName(). Errors: EINVAL naming the accepted words.
CENALLOC_EXPORT Result<CpuAccess> parseCpuAccess(std::string_view text);

/// Why a heap refused, as a kind (for programs); HeapVerdict::reason() says
/// it in words. Listed in the order the rules are checked.
enum class Refusal {
    None,               ///< accepted
    HostKernel,         ///< a host kernel heap: where its pages lie is unknown
    NotInHostKernel,    ///< a heap of the model the host kernel does not have (KernelPlacement::NotInKernel)
    KernelAlias,        ///< a second host kernel node of a placed heap's memory (KernelPlacement::Alias)
    PrivatePool,        ///< another device's private pool (its memory-region)
    AccessBits,         ///< the heap's memory is of no kind the devices reach
    AboveAddressLimit,  ///< all of the heap's memory lies above the address limit
    BelowLimitCapacity, ///< too little of the heap lies below the address limit
    NotContiguous,      ///< the devices need one contiguous buffer, the heap gives chunks
    TooManySegments,    ///< the buffer may take more segments than the devices accept
    Alignment,          ///< the heap's chunks are aligned less than the devices need
    Capacity,           ///< the buffer is larger than the heap
    IovaWindow,         ///< behind an IOMMU, the reachable I/O virtual window is too small
    IovaSegments,       ///< behind an IOMMU, the I/O virtual range splits into too many segments
};

/// "access-bits", "above-address-limit", ...: stable names for JSON.
CENALLOC_EXPORT const char* refusalName(Refusal refusal);

/// Whom a verdict speaks of: one device ("the device's 30-bit mask") or a
/// set merged from several ("the devices' 30-bit mask").
enum class Subject { Device, Devices };

/// A heap's answer for a constraint set and a buffer size: accepted, or the
/// first rule that refused. The reason is put into words only when asked
/// for, so matching costs no string building.
class CENALLOC_EXPORT HeapVerdict {
public:
    /// Accepted.
    HeapVerdict() = default;

    bool accepted() const { return refusal_ == Refusal::None; }
    Refusal refusal() const { return refusal_; }
    /// The first reason in words, lowercase without a final period:
    /// "chunks can be as small as 4 KiB but the device needs one contiguous
    /// buffer". Empty when accepted.
    std::string reason() const;

private:
    friend struct VerdictAccess; // alloc/match.cpp builds refusals

    Refusal refusal_ = Refusal::None;
    Subject subject_ = Subject::Device;
    std::array<uint64_t, 7> values_{}; // the numbers reason() quotes; meaning per refusal
    std::string_view iommu_;           // IOVA refusals only (interned)
    std::string_view device_;          // the device a per-device rule refused, when the set has several (interned)
    std::string_view kernelHeap_;      // placement refusals: the /dev/dma_heap node or the heap (interned)
};

/// Does @p heap serve a buffer of @p size bytes for @p set? The rules, in
/// order (the first that fails is the verdict):
///  0. the heap is no host kernel heap whose placement is unknown
///     (HeapKind::Kernel), no heap of the model that the host kernel does
///     not have (KernelPlacement::NotInKernel), and no other device's
///     private pool: a heap with owners serves a non-empty set of its
///     owners only;
///  1. access bits: the heap's and the set's share a bit;
///  2. address: the heap's memory starts at or below the address limit and
///     enough of it (at most capacity, at most limit - lowestAddress + 1)
///     lies below the limit (a heap that merely extends above the limit is
///     fine: heaps honour an address limit), except that a board kernel's
///     heap, which takes no address limit, must lie wholly below it;
///  3. contiguity: a set that needs contiguous memory needs a contiguous heap;
///  4. segments, per device mapping the storage directly: the worst-case
///     count of its own segments (its own size and boundary) does not
///     exceed its own max_segment_count (see alloc/match.h for the
///     arithmetic); limits of different devices are never combined;
///  5. alignment: a non-contiguous heap's chunk alignment covers the set's
///     (contiguous heaps honour any alignment);
///  6. capacity: the buffer fits in the heap;
///  7. IOVA, per IOMMU domain of the set: the window its devices reach
///     holds the buffer, and for each device mapping there, the buffer's
///     one I/O virtual range splits into no more segments than that device
///     accepts. These refuse every heap alike.
/// @p size must be non-zero. Pure: no heap is touched.
CENALLOC_EXPORT HeapVerdict matchHeap(const HeapProperties& heap, const ConstraintSet& set, uint64_t size,
                                      Subject subject = Subject::Devices);

/// The best heap for @p set (see explain() for the ranking policy), a
/// pointer into @p heaps. O(heaps).
/// Errors: EINVAL for a zero size or one that overflows when rounded up to a
/// page; EINVAL naming every heap and its first reason when no heap serves
/// the set.
CENALLOC_EXPORT Result<const HeapProperties*>
chooseHeap(const ConstraintSet& set, std::span<const HeapProperties> heaps, uint64_t size, CpuAccess cpuAccess);
CENALLOC_EXPORT Result<const HeapProperties*>
chooseHeap(const ConstraintSet& set, std::span<const HeapProperties* const> heaps, uint64_t size, CpuAccess cpuAccess);

/// The set after @p device joins @p attached, provided some heap still
/// serves a buffer of @p size for it: the check an attach makes, in
/// O(heaps) without re-merging the devices already attached.
/// Errors: EINVAL for a bad size or an unknown IOMMU; EINVAL when no heap
/// would serve the set, naming the device and every heap's first reason
/// ("attaching 'display' would leave no heap for the buffer: heap 'system'
/// refuses 'display': ..."); @p attached is unchanged either way.
CENALLOC_EXPORT Result<ConstraintSet> checkAttach(const ConstraintSet& attached, const Device& device,
                                                  const Platform& platform, std::span<const HeapProperties> heaps,
                                                  uint64_t size);
CENALLOC_EXPORT Result<ConstraintSet> checkAttach(const ConstraintSet& attached, const Device& device,
                                                  const Platform& platform,
                                                  std::span<const HeapProperties* const> heaps, uint64_t size);

/// One heap in an Explanation.
struct HeapExplanation {
    std::string name;
    /// The devices whose private pool the heap is (HeapProperties::owners):
    /// their drivers allocate from it; no /dev/dma_heap node hands it out.
    std::vector<std::string> owners;
    /// The heap serves the whole set.
    bool accepted = false;
    /// Its verdict for each device alone, parallel to Explanation::devices.
    std::vector<HeapVerdict> devices;
    /// Its verdict for the merged set. Refused while every device alone is
    /// accepted means the devices' limits only clash together (e.g. one
    /// takes few segments, another only small ones).
    HeapVerdict combined;
};

/// Why one heap refuses the devices of a Conflict.
struct ConflictRefusal {
    std::string heap;
    /// The device the heap refuses on its own, or empty when the heap
    /// serves each of the devices alone and refuses only their combination.
    std::string device;
    std::string reason;
};

/// A smallest set of devices no heap serves.
struct Conflict {
    /// Sorted by name.
    std::vector<std::string> devices;
    /// Every heap, in the order given, and the first reason it refuses these devices.
    std::vector<ConflictRefusal> heaps;
    /// One line: "no heap serves 'a' and 'b' together: heap 'x' refuses 'a': ...;
    /// heap 'y' refuses them together: ...".
    std::string reason;
};

/// Where explain() got one device's facts: what a user should confirm.
struct DeviceFacts {
    std::string device;
    /// The cited driver behaviour its limits come from (Device::factSource);
    /// empty when the device tree or platform description said everything.
    std::string source;
    /// Facts assumed from the conservative default of its class
    /// (Device::assumedFacts).
    std::vector<std::string> assumed;
    /// Its restricted-dma-pool, when it has one: every DMA of it bounces
    /// through that pool, so it never shares the buffer's memory zero-copy.
    std::string restrictedPool;
};

/// Everything explain() found.
struct Explanation {
    /// The devices, in the order given.
    std::vector<std::string> devices;
    /// Where each device's facts came from, parallel to devices.
    std::vector<DeviceFacts> facts;
    /// Things a user must know beyond the verdict, in words: devices that
    /// bounce through a restricted pool, facts that were assumed.
    std::vector<std::string> notes;
    /// The buffer size, rounded up to a page.
    uint64_t size = 0;
    CpuAccess cpuAccess = CpuAccess::Rare;
    /// The merged constraints of every device.
    ConstraintSet constraints;
    /// Some heap serves the set.
    bool satisfiable = false;
    /// Every heap, in the order given.
    std::vector<HeapExplanation> heaps;
    /// The heaps that serve the set, best first.
    std::vector<std::string> ranking;
    /// The ranking's cache preference and why, in words.
    bool preferCached = true;
    std::string cachePolicy;
    /// The chosen heap (ranking.front()), when satisfiable.
    std::optional<std::string> heap;
    /// The host kernel's node the chosen heap stands for (its
    /// HeapProperties::kernelHeap: /dev/dma_heap/<kernelHeap>), when the
    /// heap is placed on the host kernel's; nullopt otherwise.
    std::optional<std::string> kernelHeap;
    /// The device that should allocate (export) the buffer, when one
    /// device's own choice is the chosen heap.
    std::optional<std::string> allocatingDevice;
    /// Why that device, or why none ("no single device's own preference
    /// works: cenalloc must allocate").
    std::string allocatingReason;
    /// When unsatisfiable: a smallest set of devices that conflict.
    std::optional<Conflict> conflict;
};

/// Why @p devices sharing a buffer of @p size bytes can or cannot be served,
/// by which heap, and who should allocate. Pure: nothing is allocated.
///
/// Heap choice. Among the heaps that serve the merged set, the ranking
/// (alloc/ranking.h keeps it as a table) prefers, in order:
///  1. the least scarce kind of memory: system, then CMA, then carveout;
///  2. within a kind, a heap all of whose memory the devices reach (so a
///     32-bit device gets the dma32 heap rather than the wide system heap
///     honouring a 32-bit limit: the same pages, under the name a kernel
///     engineer would give), then the wider address range (system before
///     system-dma32);
///  3. the cache attribute: cached when every device is coherent or the
///     CPU accesses the buffer often; uncached when a device is
///     non-coherent and the CPU access is none or rare;
///  4. the name, so the result is deterministic.
///
/// Allocating device. A device qualifies when its own choice (the same
/// ranking over the heaps that serve it alone, with its own coherency) is
/// the chosen heap. Among those, the tightest wins, compared in this order:
/// needs contiguous memory first, then the lower physical address limit,
/// the fewer segments (0 = unlimited counts as most), the smaller segment
/// size, the larger alignment, non-coherent before coherent, then the name.
/// (A device behind an IOMMU asks little of physical memory and so comes
/// after one that is not; its segment limits apply to its I/O virtual range
/// and are not compared.) When the chosen heap is a private pool, its owner
/// allocates. When no device qualifies, there is none: cenalloc must
/// allocate.
///
/// Conflict. When no heap serves the set, single devices, then pairs, then
/// triples are tried in name order; the first that no heap serves is the
/// conflict. When none of up to three devices conflicts, the whole set is.
///
/// The result does not depend on the order of @p devices except for the
/// order of Explanation::devices and HeapExplanation::devices.
///
/// Errors: EINVAL for a zero size or one that overflows when rounded up to a
/// page, for a device listed twice, or for a device whose IOMMU is unknown;
/// ENOENT for a device name the platform does not have.
CENALLOC_EXPORT Result<Explanation> explain(const Platform& platform, std::span<const HeapProperties> heaps,
                                            std::span<const std::string> devices, uint64_t size, CpuAccess cpuAccess);
/// The same for devices given by description (they need not be in
/// @p platform, but their IOMMUs must).
CENALLOC_EXPORT Result<Explanation> explain(const Platform& platform, std::span<const HeapProperties> heaps,
                                            std::span<const Device* const> devices, uint64_t size, CpuAccess cpuAccess);

} // namespace cenalloc
