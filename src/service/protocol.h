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
#include <tuple>
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

/// Header flags. Requests define none; in replies kFlagMore marks every
/// fragment but the last. kFlagEvent marks an event: a message the daemon
/// sends unasked (sequence 0), which only a client that asked for events in
/// its handshake receives (docs/protocol.md, "Events").
inline constexpr uint16_t kFlagMore = 0x1;
inline constexpr uint16_t kFlagEvent = 0x2;
inline constexpr uint16_t kValidRequestFlags = 0;
inline constexpr uint16_t kValidReplyFlags = kFlagMore;

/// Capabilities a client asks for in its handshake and the daemon grants.
/// kCapMoveEvents: the client receives move events and may attach
/// dynamically.
inline constexpr uint32_t kCapMoveEvents = 0x1;
inline constexpr uint32_t kValidCapabilities = kCapMoveEvents;

/// The opcode of a move event (kFlagEvent set, never a request's).
inline constexpr uint16_t kEventMove = 0x8001;

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
    uint32_t capabilities; ///< kCap* bits wanted (was reserved: old clients send 0)
    uint32_t reserved;
    static constexpr auto kReserved = std::tuple{&HandshakeRequest::reserved};
};
static_assert(sizeof(HandshakeRequest) == 16);

struct AllocateRequest {
    uint64_t length;
    uint64_t heapFlags;
    uint32_t fdFlags;
    uint32_t reserved;
    char heap[kNameField];
    static constexpr auto kReserved = std::tuple{&AllocateRequest::reserved};
};
static_assert(sizeof(AllocateRequest) == 88);

struct CreateRequest {
    uint64_t size;
    uint32_t cpuAccess; ///< 0 none, 1 rare, 2 often
    uint32_t reserved;
    char name[kBufferNameField];
    static constexpr auto kReserved = std::tuple{&CreateRequest::reserved};
};
static_assert(sizeof(CreateRequest) == 48);

/// AllocFor: the devices (device_count of the 16 slots, each a name
/// NUL-padded to 64 bytes; unused slots all zero), the size, name, CPU
/// access hint (as create's) and fd flags (as allocate's).
inline constexpr size_t kAllocForDevices = 16;
struct AllocForRequest {
    uint64_t size;
    uint32_t fdFlags;
    uint32_t cpuAccess; ///< 0 none, 1 rare, 2 often
    uint32_t deviceCount;
    uint32_t reserved;
    char name[kBufferNameField];
    char devices[kAllocForDevices][kNameField];
    static constexpr auto kReserved = std::tuple{&AllocForRequest::reserved};
};
static_assert(sizeof(AllocForRequest) == 1080);

/// Attach flags: kAttachDynamic asks for a dynamic attachment (move events).
inline constexpr uint32_t kAttachDynamic = 0x1;
struct AttachRequest {
    char device[kNameField];
    uint32_t flags; ///< kAttachDynamic; an older client's 64 bytes are static
    uint32_t reserved;
    static constexpr auto kReserved = std::tuple{&AttachRequest::reserved};
};
static_assert(sizeof(AttachRequest) == 72);

/// Migrate: the heap to move the buffer to.
struct MigrateRequest {
    char heap[kNameField];
};
static_assert(sizeof(MigrateRequest) == 64);

/// Forecast: the device whose attach is forecast.
struct ForecastRequest {
    char device[kNameField];
};
static_assert(sizeof(ForecastRequest) == 64);

/// AckMove: the attachment and the move sequence its event announced.
struct AckMoveRequest {
    uint64_t attachment;
    uint64_t sequence;
};
static_assert(sizeof(AckMoveRequest) == 16);

/// Detach and Unmap.
struct IdRequest {
    uint64_t id;
};
static_assert(sizeof(IdRequest) == 8);

struct MapRequest {
    uint64_t attachment;
    uint32_t direction; ///< DmaDirection
    uint32_t reserved;
    static constexpr auto kReserved = std::tuple{&MapRequest::reserved};
};
static_assert(sizeof(MapRequest) == 16);

/// BeginCpuAccess and EndCpuAccess.
struct SyncRequest {
    uint32_t flags; ///< kSyncRead | kSyncWrite
    uint32_t reserved;
    static constexpr auto kReserved = std::tuple{&SyncRequest::reserved};
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
    static constexpr auto kReserved = std::tuple{&StatsRequest::reserved};
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
    uint32_t capabilities; ///< kCap* bits granted (0 from an older daemon)
};
static_assert(sizeof(HandshakeReply) == 16);

/// Allocate and Create; the buffer's fd is attached.
struct BufferReply {
    uint64_t buffer;
    uint64_t size;
};
static_assert(sizeof(BufferReply) == 16);

/// AllocFor: the buffer as BufferReply, then the heap it came from, the
/// host kernel's heap node (empty for the model's storage) and the reason,
/// each {u32 length, u32 0} + bytes padded to 8; then (a daemon from before
/// them ends the body there) the buffer's exporter and the list of devices,
/// each its name, sysfs path and bound driver (empty when unknown or none);
/// the buffer's fd is attached.
struct AllocForReply {
    uint64_t buffer = 0;
    uint64_t size = 0;
    std::string heap;
    std::string kernelHeap;
    std::string reason;
    std::string exporter;
    std::vector<AllocForDevice> devices;
};

/// Import and Attach.
struct IdReply {
    uint64_t id;
};
static_assert(sizeof(IdReply) == 8);

/// A move event's fixed part; the cause follows (causeLength bytes, padded
/// to 8).
struct MoveEventBody {
    uint64_t buffer;
    uint64_t attachment;
    uint64_t sequence;
    uint32_t kind; ///< MoveEvent::Kind
    uint32_t causeLength;
};
static_assert(sizeof(MoveEventBody) == 32);
/// The longest cause an event carries.
inline constexpr size_t kMaxEventCause = 256;

/// Lists: a count, then the elements.
struct ListHeader {
    uint32_t count;
    uint32_t reserved;
};
static_assert(sizeof(ListHeader) == 8);

// Flag bits of the bodies below (docs/protocol.md, "Lists").
inline constexpr uint32_t kHeapContiguous = 0x1;
inline constexpr uint32_t kHeapCached = 0x2;
/// The heap takes no address limit (a board kernel's heap).
inline constexpr uint32_t kHeapNoAddressLimit = 0x4;
inline constexpr uint32_t kBufferHasStorage = 0x1;
inline constexpr uint32_t kBufferInHostKernel = 0x2;
inline constexpr uint32_t kRegionNoMap = 0x1;
inline constexpr uint32_t kRegionDefault = 0x2;
/// In the platform's facts after the heaps.
inline constexpr uint32_t kRegionRestricted = 0x1;
inline constexpr uint32_t kRegionHeap = 0x2;
inline constexpr uint32_t kDeviceContiguous = 0x1;
inline constexpr uint32_t kDeviceCoherent = 0x2;
inline constexpr uint32_t kDeviceHasIommu = 0x4;

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

/// A request struct as decodePayload() decodes it, with every field its
/// kReserved lists checked to be zero (EINVAL "@p op: reserved field is not
/// zero"): the one check of reserved request fields.
template <typename T> Result<T> decodeRequest(std::span<const std::byte> payload, std::string_view op) {
    auto value = decodePayload<T>(payload);
    if (!value)
        return value;
    bool zero = true;
    if constexpr (requires { T::kReserved; })
        std::apply([&](auto... member) { zero = (... && ((*value).*member == 0)); }, T::kReserved);
    if (!zero)
        return Error(EINVAL, std::string(op) + ": reserved field is not zero");
    return value;
}

// ---------------------------------------------------------------- bodies
//
// The bodies of replies that are more than a fixed struct. Each is
// described once in protocol.cpp, by a function template that names its
// fields in wire order and serves both directions: encode() writes what it
// names, decode() reads the same names back. A fixed struct (IdReply,
// BufferReply, HandshakeReply) is its own description.

/// The platform and its heaps' properties, as the Platform op sends them.
struct PlatformBody {
    Platform platform;
    std::vector<HeapProperties> heaps;
};
/// What encode() takes for a PlatformBody: the daemon's own, not copied.
struct PlatformView {
    const Platform& platform;
    std::span<const HeapProperties> heaps;
};

void encode(Writer& w, const std::vector<HeapInfo>& heaps);
void encode(Writer& w, const AllocatorStats& stats);
void encode(Writer& w, const BufferInfo& buffer);
void encode(Writer& w, const std::vector<BufferInfo>& buffers);
void encode(Writer& w, const SessionMapping& mapping);
void encode(Writer& w, const PlatformView& platform);
void encode(Writer& w, const AttachForecast& forecast);
void encode(Writer& w, const AllocForReply& reply);
void encode(Writer& w, const MoveEvent& event);
template <typename T>
requires std::is_trivially_copyable_v<T>
void encode(Writer& w, const T& value) {
    w.put(value);
}

/// Decode into @p out what encode() wrote. Errors: EPROTO for a body that
/// is truncated, holds more elements than its bytes can, or an undefined
/// value; never reads past the end.
Result<void> decodeInto(Reader& r, std::vector<HeapInfo>& heaps);
Result<void> decodeInto(Reader& r, AllocatorStats& stats);
Result<void> decodeInto(Reader& r, BufferInfo& buffer);
Result<void> decodeInto(Reader& r, std::vector<BufferInfo>& buffers);
Result<void> decodeInto(Reader& r, SessionMapping& mapping);
Result<void> decodeInto(Reader& r, PlatformBody& platform);
Result<void> decodeInto(Reader& r, AttachForecast& forecast);
Result<void> decodeInto(Reader& r, AllocForReply& reply);
Result<void> decodeInto(Reader& r, MoveEvent& event);
template <typename T>
requires std::is_trivially_copyable_v<T> Result<void> decodeInto(Reader& r, T& value) {
    auto read = r.get<T>();
    if (!read)
        return read.error();
    value = *read;
    return {};
}
template <typename T> Result<T> decode(Reader& r) {
    T value{};
    if (auto ok = decodeInto(r, value); !ok)
        return ok.error();
    return value;
}

/// A header for a message of opcode @p opcode.
MessageHeader makeHeader(uint16_t opcode, uint32_t payloadSize, uint16_t fdCount, uint32_t sequence);

} // namespace cenalloc::wire
