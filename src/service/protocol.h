// SPDX-License-Identifier: MIT
// The cenallocd wire protocol: message header, request and reply structs, and their encoding (docs/protocol.md).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <cenalloc/buffer.h>
#include <cenalloc/iommu.h>
#include <cenalloc/platform.h>
#include <cenalloc/result.h>
#include <cenalloc/session.h>

namespace cenalloc::wire {

// The structs below are the wire format: their in-memory layout on a
// little-endian host is the encoding, so they are copied with memcpy.
static_assert(std::endian::native == std::endian::little, "the wire structs are little-endian");

/// "CNAL" read as a little-endian u32.
inline constexpr uint32_t kMagic = 0x4c414e43;
/// The one version this implementation speaks.
inline constexpr uint16_t kVersion = 1;
/// Largest request datagram (header + payload) the daemon reads.
inline constexpr size_t kMaxRequestSize = 4096;
/// Largest reply datagram; longer replies travel in fragments.
inline constexpr size_t kMaxFragmentSize = 64 * 1024;
/// Most fds one message carries.
inline constexpr size_t kMaxFds = 1;
/// Longest error message a reply carries.
inline constexpr size_t kMaxErrorMessage = 1024;
/// Fixed name fields: heap and device names, buffer names (DMA_BUF_NAME_LEN).
inline constexpr size_t kNameField = 64;
inline constexpr size_t kBufferNameField = 32;

enum class Op : uint16_t {
    Handshake = 1,
    ListHeaps = 2,
    Allocate = 3,
    Create = 4,
    Import = 5,
    Release = 6,
    Attach = 7,
    Detach = 8,
    Map = 9,
    Unmap = 10,
    BeginCpuAccess = 11,
    EndCpuAccess = 12,
    SetName = 13,
    Bufinfo = 14,
    Stats = 15,
    Platform = 16,
};
inline constexpr uint16_t kFirstOp = 1;
inline constexpr uint16_t kLastOp = 16;
/// "allocate", ...; "?" for an unknown opcode.
const char* opName(uint16_t op);
/// Does @p op name the buffer by an fd attached to the request?
bool opTakesFd(Op op);

/// Header flags. Requests define none; in replies kFlagMore marks every
/// fragment but the last.
inline constexpr uint16_t kFlagMore = 0x1;
inline constexpr uint16_t kValidRequestFlags = 0;
inline constexpr uint16_t kValidReplyFlags = kFlagMore;

struct MessageHeader {
    uint32_t magic;
    uint16_t version;
    uint16_t opcode;
    uint32_t payloadSize; ///< bytes after the header in this datagram
    uint16_t fdCount;     ///< fds attached with SCM_RIGHTS
    uint16_t flags;
    uint32_t sequence; ///< chosen by the client, echoed in the reply
    int32_t error;     ///< replies: 0 or a positive errno; requests: reserved, 0
    uint64_t reserved; ///< 0
};
static_assert(sizeof(MessageHeader) == 32 && std::is_trivially_copyable_v<MessageHeader>);

// ------------------------------------------------------------ requests

struct HandshakeRequest {
    uint32_t minVersion;
    uint32_t maxVersion;
    uint64_t reserved;
};
static_assert(sizeof(HandshakeRequest) == 16);

struct AllocateRequest {
    uint64_t length;
    uint64_t heapFlags;
    uint32_t fdFlags;
    uint32_t reserved;
    char heap[kNameField];
};
static_assert(sizeof(AllocateRequest) == 88);

struct CreateRequest {
    uint64_t size;
    uint32_t cpuAccess; ///< 0 none, 1 rare, 2 often
    uint32_t reserved;
    char name[kBufferNameField];
};
static_assert(sizeof(CreateRequest) == 48);

struct AttachRequest {
    char device[kNameField];
};
static_assert(sizeof(AttachRequest) == 64);

/// Detach and Unmap.
struct IdRequest {
    uint64_t id;
};
static_assert(sizeof(IdRequest) == 8);

struct MapRequest {
    uint64_t attachment;
    uint32_t direction; ///< DmaDirection
    uint32_t reserved;
};
static_assert(sizeof(MapRequest) == 16);

/// BeginCpuAccess and EndCpuAccess.
struct SyncRequest {
    uint32_t flags; ///< kSyncRead | kSyncWrite
    uint32_t reserved;
};
static_assert(sizeof(SyncRequest) == 8);

struct SetNameRequest {
    char name[kBufferNameField];
};
static_assert(sizeof(SetNameRequest) == 32);

inline constexpr uint32_t kStatsResetWatermark = 0x1;
struct StatsRequest {
    uint32_t flags;
    uint32_t reserved;
};
static_assert(sizeof(StatsRequest) == 8);

// -------------------------------------------------------------- replies

/// Every reply payload starts with this, then the message (padded to 8),
/// then, on success, the op's body.
struct ReplyPrefix {
    uint32_t messageLength;
    uint32_t reserved;
};
static_assert(sizeof(ReplyPrefix) == 8);

struct HandshakeReply {
    uint32_t version;
    uint32_t maxRequestSize;
    uint32_t serverPid;
    uint32_t reserved;
};
static_assert(sizeof(HandshakeReply) == 16);

/// Allocate and Create; the buffer's fd is attached.
struct BufferReply {
    uint64_t buffer;
    uint64_t size;
};
static_assert(sizeof(BufferReply) == 16);

/// Import and Attach.
struct IdReply {
    uint64_t id;
};
static_assert(sizeof(IdReply) == 8);

struct WireSgEntry {
    uint64_t dmaAddress;
    uint64_t length;
};
static_assert(sizeof(WireSgEntry) == 16);

/// Followed by segmentCount WireSgEntry.
struct MapReply {
    uint64_t mapping;
    uint32_t direction;
    uint32_t segmentCount;
};
static_assert(sizeof(MapReply) == 16);

/// Lists: a count, then the elements.
struct ListHeader {
    uint32_t count;
    uint32_t reserved;
};
static_assert(sizeof(ListHeader) == 8);

inline constexpr uint32_t kHeapContiguous = 0x1;
inline constexpr uint32_t kHeapCached = 0x2;
/// The heap takes no address limit (a board kernel's heap).
inline constexpr uint32_t kHeapNoAddressLimit = 0x4;
/// Heap properties; followed by the name and the description.
struct WireHeapProperties {
    uint64_t lowestAddress;
    uint64_t highestAddress;
    uint64_t maxChunkSize;
    uint64_t minChunkSize;
    uint64_t chunkAlignment;
    uint64_t accessBits;
    uint64_t capacity;
    uint64_t validHeapFlags;
    uint32_t kind;
    uint32_t flags;
    uint32_t nameLength;
    uint32_t descriptionLength;
};
static_assert(sizeof(WireHeapProperties) == 80);

struct WireHeapStats {
    uint64_t liveBuffers;
    uint64_t liveBytes;
    uint64_t watermarkBytes;
    uint64_t failedAllocations;
    uint64_t totalAllocations;
    uint64_t freeBytes;
};
static_assert(sizeof(WireHeapStats) == 48);

/// Followed by the name.
struct WireDomainStats {
    uint64_t pageSize;
    uint64_t apertureBase;
    uint64_t apertureSize;
    uint64_t hits;
    uint64_t misses;
    uint64_t evictions;
    uint64_t faults;
    uint64_t usedIovaBytes;
    uint64_t cachedIovaBytes;
    uint64_t mappedBytes;
    uint64_t mappingCount;
    uint64_t inUseCount;
    uint32_t nameLength;
    uint32_t reserved;
};
static_assert(sizeof(WireDomainStats) == 104);

/// The end of a stats reply: ServiceLimits (absent from an older daemon's).
struct WireLimits {
    uint64_t heldBytes;
    uint64_t heldBuffers;
    uint64_t quotaBytes;
    uint64_t quotaBuffers;
    uint64_t trackedBuffers;
    uint64_t maxBuffers;
    uint64_t rootReserve;
    uint64_t reserved;
};
static_assert(sizeof(WireLimits) == 64);

inline constexpr uint32_t kBufferHasStorage = 0x1;
inline constexpr uint32_t kBufferInHostKernel = 0x2;
/// Followed by the strings (exporter, name, heap, exporter state), the
/// chunks, the attached devices' names and the mappings.
struct WireBufferInfo {
    uint64_t id;
    uint64_t size;
    uint64_t inode;
    int64_t references;
    uint64_t cacheMaintenanceOps;
    uint64_t syncViolations;
    uint32_t fdFlags;
    uint32_t cpuAccessDepth;
    uint32_t flags;
    uint32_t chunkCount;
    uint32_t deviceCount;
    uint32_t mappingCount;
    uint32_t exporterLength;
    uint32_t nameLength;
    uint32_t heapLength;
    uint32_t exporterStateLength;
};
static_assert(sizeof(WireBufferInfo) == 88);

struct WirePhysChunk {
    uint64_t address;
    uint64_t size;
};
static_assert(sizeof(WirePhysChunk) == 16);

/// Followed by the device and domain names, then segmentCount WireSgEntry.
struct WireMappingInfo {
    uint32_t direction;
    uint32_t segmentCount;
    uint32_t deviceLength;
    uint32_t domainLength;
};
static_assert(sizeof(WireMappingInfo) == 16);

/// The platform (for explain, computed by the client): followed by the
/// three strings, then the banks, regions, IOMMUs, devices and heaps.
struct WirePlatform {
    uint32_t nameLength;
    uint32_t descriptionLength;
    uint32_t sourceLength;
    uint32_t bankCount;
    uint32_t regionCount;
    uint32_t iommuCount;
    uint32_t deviceCount;
    uint32_t heapCount;
};
static_assert(sizeof(WirePlatform) == 32);

struct WireBank {
    uint64_t base;
    uint64_t size;
    uint32_t nameLength;
    uint32_t reserved;
};
static_assert(sizeof(WireBank) == 24);

inline constexpr uint32_t kRegionNoMap = 0x1;
inline constexpr uint32_t kRegionDefault = 0x2;
/// In the platform's facts after the heaps (encodePlatformFacts).
inline constexpr uint32_t kRegionRestricted = 0x1;
inline constexpr uint32_t kRegionHeap = 0x2;
struct WireRegion {
    uint64_t base;
    uint64_t size;
    uint64_t accessBits;
    uint32_t kind;
    uint32_t flags;
    uint32_t nameLength;
    uint32_t reserved;
};
static_assert(sizeof(WireRegion) == 40);

struct WireIommu {
    uint64_t pageSize;
    uint64_t apertureBase;
    uint64_t apertureSize;
    uint32_t nameLength;
    uint32_t reserved;
};
static_assert(sizeof(WireIommu) == 32);

inline constexpr uint32_t kDeviceContiguous = 0x1;
inline constexpr uint32_t kDeviceCoherent = 0x2;
inline constexpr uint32_t kDeviceHasIommu = 0x4;
/// Followed by the name, the description and the IOMMU name.
struct WireDevice {
    uint64_t dmaMask;
    uint64_t coherentDmaMask;
    uint64_t maxSegmentSize;
    uint64_t segmentBoundaryMask;
    uint64_t alignment;
    uint64_t accessBits;
    uint32_t maxSegmentCount;
    uint32_t flags;
    uint32_t nameLength;
    uint32_t descriptionLength;
    uint32_t iommuLength;
    uint32_t reserved;
};
static_assert(sizeof(WireDevice) == 72);

// ------------------------------------------------------------- encoding

/// Appends wire structs and strings (each string padded to 8 bytes).
class Writer {
public:
    template <typename T> void put(const T& value) {
        static_assert(std::is_trivially_copyable_v<T>);
        size_t at = bytes_.size();
        bytes_.resize(at + sizeof(T));
        std::memcpy(bytes_.data() + at, &value, sizeof(T));
    }
    void putBytes(std::string_view text);
    /// Zero bytes up to the next multiple of 8.
    void pad();
    std::vector<std::byte>& bytes() { return bytes_; }

private:
    std::vector<std::byte> bytes_;
};

/// Reads what Writer wrote; every read is bounds-checked and fails with
/// EPROTO rather than reading past the end.
class Reader {
public:
    explicit Reader(std::span<const std::byte> bytes) : bytes_(bytes) {}
    template <typename T> Result<T> get() {
        static_assert(std::is_trivially_copyable_v<T>);
        if (bytes_.size() - pos_ < sizeof(T))
            return truncated(sizeof(T));
        T value;
        std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
        pos_ += sizeof(T);
        return value;
    }
    /// @p length bytes, then the padding to 8.
    Result<std::string> getString(uint32_t length);
    /// @p count elements of at least @p elementSize bytes each still fit:
    /// refuses counts that would make the caller allocate without bound.
    Result<void> checkCount(uint64_t count, size_t elementSize) const;
    size_t remaining() const { return bytes_.size() - pos_; }

private:
    Error truncated(size_t wanted) const;
    std::span<const std::byte> bytes_;
    size_t pos_ = 0;
};

/// Copy @p name into a fixed name field (NUL-padded). Errors: ENAMETOOLONG
/// when it does not fit, EINVAL when it contains a NUL.
Result<void> putName(char* field, size_t fieldSize, std::string_view name);
/// The name in a fixed field: the bytes before the first NUL (all of them
/// when there is none). Errors: EINVAL when a byte after the first NUL is
/// not zero.
Result<std::string> getName(const char* field, size_t fieldSize, std::string_view what);

/// A request payload of the current struct @p T, decoded under the rule of
/// docs/protocol.md: a shorter payload (an older client) is zero-extended, a
/// longer one is accepted only when every extra byte is zero (EINVAL).
template <typename T> Result<T> decodePayload(std::span<const std::byte> payload) {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    std::memset(&value, 0, sizeof(T));
    size_t n = payload.size() < sizeof(T) ? payload.size() : sizeof(T);
    if (n > 0) // an empty payload's data() may be null
        std::memcpy(&value, payload.data(), n);
    for (size_t i = sizeof(T); i < payload.size(); ++i)
        if (payload[i] != std::byte{0})
            return Error(EINVAL, "the request has non-zero bytes past the end of its struct");
    return value;
}
/// The same for an op with no payload struct: every byte must be zero.
Result<void> checkEmptyPayload(std::span<const std::byte> payload);

// Bodies shared by the dispatcher (encode) and the client (decode).
void encodeHeaps(Writer& w, const std::vector<HeapInfo>& heaps);
Result<std::vector<HeapInfo>> decodeHeaps(Reader& r);
void encodeStats(Writer& w, const AllocatorStats& stats);
Result<AllocatorStats> decodeStats(Reader& r);
void encodeBufinfo(Writer& w, const std::vector<BufferInfo>& buffers);
Result<std::vector<BufferInfo>> decodeBufinfo(Reader& r);
void encodePlatform(Writer& w, const Platform& platform, std::span<const HeapProperties> heaps);
struct PlatformBody {
    Platform platform;
    std::vector<HeapProperties> heaps;
};
Result<PlatformBody> decodePlatform(Reader& r);
void encodeMapping(Writer& w, const SessionMapping& mapping);
Result<SessionMapping> decodeMapping(Reader& r);

/// A header for a message of @p op.
MessageHeader makeHeader(Op op, uint32_t payloadSize, uint16_t fdCount, uint32_t sequence);

} // namespace cenalloc::wire
