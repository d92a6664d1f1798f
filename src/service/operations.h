// SPDX-License-Identifier: MIT
// Every client operation described once: opcode, wire request, validation, service call and reply, and the Session that
// runs them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unistd.h>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <cenalloc/session.h>

#include "base/try.h"
#include "service/event_queue.h"
#include "service/protocol.h"
#include "service/service.h"
#include "service/socket_io.h"

namespace cenalloc {

namespace wire {

/// The opcodes (docs/protocol.md, "Operations").
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
    Describe = 17,
    Pin = 18,
    Unpin = 19,
    Migrate = 20,
    Forecast = 21,
    AckMove = 22,
    AllocFor = 23,
    StorageFd = 24,
};

inline MessageHeader makeHeader(Op op, uint32_t payloadSize, uint16_t fdCount, uint32_t sequence) {
    return makeHeader(static_cast<uint16_t>(op), payloadSize, fdCount, sequence);
}

/// An op whose request has no payload struct, or whose reply has no body.
struct None {};
inline void encode(Writer&, None) {}
inline Result<void> decodeInto(Reader&, None&) {
    return {};
}

} // namespace wire

/// The operations. Each is a struct that says, in one place:
///  - kOp, kName, kTakesFd: its opcode, its name in messages, whether the
///    buffer it works on travels as an fd;
///  - Request: its wire request struct (wire::None: no payload), and Args:
///    the typed, validated value the Session method passes;
///  - parse(): the daemon's validation of a decoded request into Args, the
///    only one (the C API and Session make Args with the same make()s);
///    format(): Args as the client sends them;
///  - serve(): what the service does, answering a Reply body (encoded by
///    wire::encode, decoded as Decoded) and perhaps an fd;
///  - finish(): that answer as the Session method returns it (Result).
/// The daemon (dispatch.cpp) runs parse, serve and encode; the in-process
/// session runs serve and finish; the client library runs format, sends,
/// decodes and runs finish. Adding an operation is adding a struct here,
/// its line in OpSession below, its Session method (session.h) and, for C
/// callers, its function in the C API.
namespace ops {

/// What serve() answers: a body and the fd that rides with it.
template <typename Body> struct Answer {
    Body body;
    UniqueFd fd;
};
template <typename Body> Result<Answer<Body>> answer(Result<Body> body) {
    if (!body)
        return body.error();
    return Answer<Body>{std::move(*body), {}};
}
inline Result<Answer<wire::None>> done(Result<void> r) {
    if (!r)
        return r.error();
    return Answer<wire::None>{};
}
inline Result<Answer<wire::IdReply>> idAnswer(Result<uint64_t> id) {
    if (!id)
        return id.error();
    return Answer<wire::IdReply>{{*id}, {}};
}
inline Result<Answer<wire::BufferReply>> bufferAnswer(Result<ServiceBuffer> buffer) {
    if (!buffer)
        return buffer.error();
    return Answer<wire::BufferReply>{{buffer->id, buffer->size}, std::move(buffer->fd)};
}
inline Result<UniqueFd> bufferFd(UniqueFd fd, uint32_t fdFlags) {
    if (!fd.valid())
        return Error(EPROTO, "the daemon's reply carried no buffer fd");
    return applyFdFlags(std::move(fd), fdFlags);
}
/// A name field of a request: the bytes before its first NUL.
template <size_t N> Result<std::string> nameIn(const char (&field)[N], std::string_view what) {
    return wire::getName(field, N, what);
}
/// @p name into a request's name field; a name too long for the field is
/// refused as @p tooLong (what it cannot name does not exist).
template <size_t N> Result<void> nameOut(char (&field)[N], std::string_view name, Error tooLong) {
    auto put = wire::putName(field, N, name);
    if (!put && put.error().code() == ENAMETOOLONG)
        return tooLong;
    return put;
}
inline Error invalid(std::string message) {
    return Error(EINVAL, std::move(message));
}

/// Defaults for the common shapes; each op overrides what differs.
struct NoPayload {
    using Request = wire::None;
    using Args = wire::None;
    static Result<Args> parse(const Request&) { return Args{}; }
    static Result<Request> format(const Args&) { return Request{}; }
};
struct Void {
    using Reply = wire::None;
    using Decoded = wire::None;
    using Value = void;
    template <typename A> static Result<void> finish(wire::None, UniqueFd, const A&) { return {}; }
};
template <typename T> struct Same {
    using Reply = T;
    using Decoded = T;
    using Value = T;
    template <typename A> static Result<T> finish(T body, UniqueFd, const A&) { return body; }
};
struct Id {
    using Reply = wire::IdReply;
    using Decoded = wire::IdReply;
    using Value = uint64_t;
    template <typename A> static Result<uint64_t> finish(wire::IdReply body, UniqueFd, const A&) { return body.id; }
};

struct Handshake : NoPayload, Same<wire::HandshakeReply> {
    static constexpr wire::Op kOp = wire::Op::Handshake;
    static constexpr const char* kName = "handshake";
    static constexpr bool kTakesFd = false;
    using Request = wire::HandshakeRequest;
    struct Args {
        uint32_t minVersion;
        uint32_t maxVersion;
        uint32_t capabilities; ///< wire::kCap* bits
    };
    static Result<Args> parse(const Request& r) {
        if (r.minVersion > r.maxVersion)
            return invalid(fmt::format("handshake: version range {}..{} is empty", r.minVersion, r.maxVersion));
        if (r.capabilities & ~wire::kValidCapabilities)
            return invalid(
                fmt::format("handshake: undefined capabilities {:#x}", r.capabilities & ~wire::kValidCapabilities));
        return Args{r.minVersion, r.maxVersion, r.capabilities};
    }
    static Result<Request> format(const Args& a) { return Request{a.minVersion, a.maxVersion, a.capabilities, 0}; }
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& a, BorrowedFd) {
        if (wire::kVersion < a.minVersion || wire::kVersion > a.maxVersion)
            return Error(EPROTONOSUPPORT, fmt::format("the client speaks versions {}..{}, this daemon speaks {}",
                                                      a.minVersion, a.maxVersion, wire::kVersion));
        // Events from now on, for a client that asked: one that did not (an
        // older one) gets none.
        c.service().enableEvents(c.id(), (a.capabilities & wire::kCapMoveEvents) != 0);
        return Answer<Reply>{{wire::kVersion, static_cast<uint32_t>(wire::kMaxRequestSize),
                              static_cast<uint32_t>(::getpid()), a.capabilities & wire::kValidCapabilities},
                             {}};
    }
};

struct ListHeaps : NoPayload, Same<std::vector<HeapInfo>> {
    static constexpr wire::Op kOp = wire::Op::ListHeaps;
    static constexpr const char* kName = "list-heaps";
    static constexpr bool kTakesFd = false;
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args&, BorrowedFd) {
        return answer(c.service().heaps(c.id()));
    }
};

struct Allocate {
    static constexpr wire::Op kOp = wire::Op::Allocate;
    static constexpr const char* kName = "allocate";
    static constexpr bool kTakesFd = false;
    using Request = wire::AllocateRequest;
    using Args = AllocRequest;
    using Reply = wire::BufferReply;
    using Decoded = Reply;
    using Value = UniqueFd;
    static Result<Args> parse(const Request& r) {
        std::string heap = CENALLOC_TRY(nameIn(r.heap, "allocate: heap"));
        return AllocRequest::make(std::move(heap), r.length, r.fdFlags, r.heapFlags);
    }
    static Result<Request> format(const Args& a) {
        Request r{};
        r.length = a.length();
        r.heapFlags = a.heapFlags();
        r.fdFlags = a.fdFlags();
        CENALLOC_CHECK(nameOut(r.heap, a.heap(), Error(ENOENT, fmt::format("no heap '{}'", a.heap()))));
        return r;
    }
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& a, BorrowedFd) {
        return bufferAnswer(c.service().allocate(c.id(), a));
    }
    static Result<UniqueFd> finish(Reply, UniqueFd fd, const Args& a) { return bufferFd(std::move(fd), a.fdFlags()); }
};

struct Create {
    static constexpr wire::Op kOp = wire::Op::Create;
    static constexpr const char* kName = "create";
    static constexpr bool kTakesFd = false;
    using Request = wire::CreateRequest;
    using Args = CreateRequest;
    using Reply = wire::BufferReply;
    using Decoded = Reply;
    using Value = UniqueFd;
    static Result<Args> parse(const Request& r) {
        if (r.cpuAccess > static_cast<uint32_t>(CpuAccess::Often))
            return invalid(fmt::format("create: cpu access {} is not 0 (none), 1 (rare) or 2 (often)", r.cpuAccess));
        std::string name = CENALLOC_TRY(nameIn(r.name, "create: name"));
        return CreateRequest::make(r.size, std::string_view(name), static_cast<CpuAccess>(r.cpuAccess));
    }
    static Result<Request> format(const Args& a) {
        Request r{};
        r.size = a.size();
        r.cpuAccess = static_cast<uint32_t>(a.cpuAccess());
        CENALLOC_CHECK(wire::putName(r.name, sizeof r.name, a.name().str()));
        return r;
    }
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& a, BorrowedFd) {
        return bufferAnswer(c.service().create(c.id(), a));
    }
    static Result<UniqueFd> finish(Reply, UniqueFd fd, const Args&) { return bufferFd(std::move(fd), O_CLOEXEC); }
};

struct Import : NoPayload, Id {
    static constexpr wire::Op kOp = wire::Op::Import;
    static constexpr const char* kName = "import";
    static constexpr bool kTakesFd = true;
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args&, BorrowedFd fd) {
        return idAnswer(c.service().import(c.id(), fd));
    }
};

struct Release : NoPayload, Void {
    static constexpr wire::Op kOp = wire::Op::Release;
    static constexpr const char* kName = "release";
    static constexpr bool kTakesFd = true;
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args&, BorrowedFd fd) {
        return done(c.service().release(c.id(), fd));
    }
};

struct Attach : Id {
    static constexpr wire::Op kOp = wire::Op::Attach;
    static constexpr const char* kName = "attach";
    static constexpr bool kTakesFd = true;
    using Request = wire::AttachRequest;
    struct Args {
        std::string device;
        bool dynamic = false;
    };
    static Result<Args> parse(const Request& r) {
        if (r.flags & ~wire::kAttachDynamic)
            return invalid(fmt::format("attach: undefined flags {:#x}", r.flags & ~wire::kAttachDynamic));
        std::string device = CENALLOC_TRY(nameIn(r.device, "attach: device"));
        return Args{std::move(device), (r.flags & wire::kAttachDynamic) != 0};
    }
    static Result<Request> format(const Args& a) {
        Request r{};
        CENALLOC_CHECK(nameOut(r.device, a.device, Error(ENOENT, fmt::format("no device '{}'", a.device))));
        r.flags = a.dynamic ? wire::kAttachDynamic : 0;
        return r;
    }
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& a, BorrowedFd fd) {
        return idAnswer(c.service().attach(c.id(), fd, a.device, a.dynamic));
    }
};

/// Detach and Unmap name what they end by its id.
struct ById {
    using Request = wire::IdRequest;
    using Args = uint64_t;
    static Result<Args> parse(const Request& r) { return r.id; }
    static Result<Request> format(const Args& id) { return Request{id}; }
};

struct Detach : ById, Void {
    static constexpr wire::Op kOp = wire::Op::Detach;
    static constexpr const char* kName = "detach";
    static constexpr bool kTakesFd = false;
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& attachment, BorrowedFd) {
        return done(c.service().detach(c.id(), attachment));
    }
};

struct Map : Same<SessionMapping> {
    static constexpr wire::Op kOp = wire::Op::Map;
    static constexpr const char* kName = "map";
    static constexpr bool kTakesFd = false;
    using Request = wire::MapRequest;
    struct Args {
        uint64_t attachment;
        DmaDirection direction;
    };
    static Result<Args> parse(const Request& r) {
        if (r.direction > static_cast<uint32_t>(DmaDirection::FromDevice))
            return invalid(fmt::format("map: direction {} is not 0, 1 or 2", r.direction));
        return Args{r.attachment, static_cast<DmaDirection>(r.direction)};
    }
    static Result<Request> format(const Args& a) {
        return Request{a.attachment, static_cast<uint32_t>(a.direction), 0};
    }
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& a, BorrowedFd) {
        return answer(c.service().map(c.id(), a.attachment, a.direction));
    }
};

struct Unmap : ById, Void {
    static constexpr wire::Op kOp = wire::Op::Unmap;
    static constexpr const char* kName = "unmap";
    static constexpr bool kTakesFd = false;
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& mapping, BorrowedFd) {
        return done(c.service().unmap(c.id(), mapping));
    }
};

/// BeginCpuAccess and EndCpuAccess: DMA_BUF_IOCTL_SYNC's flags.
struct Sync : Void {
    static constexpr bool kTakesFd = true;
    using Request = wire::SyncRequest;
    using Args = SyncFlags;
    static Result<Args> parse(const Request& r) { return SyncFlags::make(r.flags); }
    static Result<Request> format(const Args& flags) { return Request{flags.bits(), 0}; }
};

struct BeginCpuAccess : Sync {
    static constexpr wire::Op kOp = wire::Op::BeginCpuAccess;
    static constexpr const char* kName = "begin-cpu-access";
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& flags, BorrowedFd fd) {
        return done(c.service().beginCpuAccess(c.id(), fd, flags));
    }
};

struct EndCpuAccess : Sync {
    static constexpr wire::Op kOp = wire::Op::EndCpuAccess;
    static constexpr const char* kName = "end-cpu-access";
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& flags, BorrowedFd fd) {
        return done(c.service().endCpuAccess(c.id(), fd, flags));
    }
};

struct SetName : Void {
    static constexpr wire::Op kOp = wire::Op::SetName;
    static constexpr const char* kName = "set-name";
    static constexpr bool kTakesFd = true;
    using Request = wire::SetNameRequest;
    using Args = BufferName;
    static Result<Args> parse(const Request& r) {
        std::string name = CENALLOC_TRY(nameIn(r.name, "set-name: name"));
        return BufferName::make(name);
    }
    static Result<Request> format(const Args& name) {
        Request r{};
        CENALLOC_CHECK(wire::putName(r.name, sizeof r.name, name.str()));
        return r;
    }
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& name, BorrowedFd fd) {
        return done(c.service().setName(c.id(), fd, name));
    }
};

struct Bufinfo : NoPayload, Same<std::vector<BufferInfo>> {
    static constexpr wire::Op kOp = wire::Op::Bufinfo;
    static constexpr const char* kName = "bufinfo";
    static constexpr bool kTakesFd = false;
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args&, BorrowedFd) {
        return answer(c.service().bufinfo(c.id()));
    }
};

struct Stats : Same<AllocatorStats> {
    static constexpr wire::Op kOp = wire::Op::Stats;
    static constexpr const char* kName = "stats";
    static constexpr bool kTakesFd = false;
    using Request = wire::StatsRequest;
    using Args = bool; ///< reset the watermarks first
    static Result<Args> parse(const Request& r) {
        if (r.flags & ~wire::kStatsResetWatermark)
            return invalid(fmt::format("stats: undefined flags {:#x}", r.flags & ~wire::kStatsResetWatermark));
        return (r.flags & wire::kStatsResetWatermark) != 0;
    }
    static Result<Request> format(const Args& reset) { return Request{reset ? wire::kStatsResetWatermark : 0, 0}; }
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& reset, BorrowedFd) {
        return answer(c.service().stats(c.id(), reset));
    }
};

/// What explain() is computed from (docs/protocol.md, "explain").
struct Platform : NoPayload {
    static constexpr wire::Op kOp = wire::Op::Platform;
    static constexpr const char* kName = "platform";
    static constexpr bool kTakesFd = false;
    using Reply = wire::PlatformView; // the daemon's own, not copied
    using Decoded = wire::PlatformBody;
    using Value = wire::PlatformBody;
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args&, BorrowedFd) {
        const Context& context = c.service().context();
        return Answer<Reply>{{context.platform(), context.heapProperties()}, {}};
    }
    static Result<Value> finish(Decoded body, UniqueFd, const Args&) { return body; }
};

/// One buffer's bufinfo entry, by an fd of it.
struct Describe : NoPayload, Same<BufferInfo> {
    static constexpr wire::Op kOp = wire::Op::Describe;
    static constexpr const char* kName = "describe";
    static constexpr bool kTakesFd = true;
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args&, BorrowedFd fd) {
        std::shared_ptr<Buffer> buffer = CENALLOC_TRY(c.service().lookup(c.id(), fd));
        BufferInfo info = buffer->info();
        // Not counting the reference held here, as bufinfo does not count its own.
        info.references = std::max(0L, info.references - 1);
        return Answer<Reply>{std::move(info), {}};
    }
};

struct Pin : ById, Void {
    static constexpr wire::Op kOp = wire::Op::Pin;
    static constexpr const char* kName = "pin";
    static constexpr bool kTakesFd = false;
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& attachment, BorrowedFd) {
        return done(c.service().pin(c.id(), attachment));
    }
};

struct Unpin : ById, Void {
    static constexpr wire::Op kOp = wire::Op::Unpin;
    static constexpr const char* kName = "unpin";
    static constexpr bool kTakesFd = false;
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& attachment, BorrowedFd) {
        return done(c.service().unpin(c.id(), attachment));
    }
};

/// Move a buffer's storage to a heap; may be parked (Service::kParked)
/// while other clients' dynamic importers are asked to acknowledge.
struct Migrate : Void {
    static constexpr wire::Op kOp = wire::Op::Migrate;
    static constexpr const char* kName = "migrate";
    static constexpr bool kTakesFd = true;
    using Request = wire::MigrateRequest;
    using Args = std::string; ///< the heap
    static Result<Args> parse(const Request& r) { return nameIn(r.heap, "migrate: heap"); }
    static Result<Request> format(const Args& heap) {
        Request r{};
        CENALLOC_CHECK(nameOut(r.heap, heap, Error(ENOENT, fmt::format("no heap '{}'", heap))));
        return r;
    }
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& heap, BorrowedFd fd) {
        return done(c.service().migrate(c.id(), fd, heap));
    }
};

struct Forecast : Same<AttachForecast> {
    static constexpr wire::Op kOp = wire::Op::Forecast;
    static constexpr const char* kName = "forecast";
    static constexpr bool kTakesFd = true;
    using Request = wire::ForecastRequest;
    using Args = std::string; ///< the device
    static Result<Args> parse(const Request& r) { return nameIn(r.device, "forecast: device"); }
    static Result<Request> format(const Args& device) {
        Request r{};
        CENALLOC_CHECK(nameOut(r.device, device, Error(ENOENT, fmt::format("no device '{}'", device))));
        return r;
    }
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& device, BorrowedFd fd) {
        return answer(c.service().forecast(c.id(), fd, device));
    }
};

struct AckMove : Void {
    static constexpr wire::Op kOp = wire::Op::AckMove;
    static constexpr const char* kName = "ack-move";
    static constexpr bool kTakesFd = false;
    using Request = wire::AckMoveRequest;
    struct Args {
        uint64_t attachment;
        uint64_t sequence;
    };
    static Result<Args> parse(const Request& r) {
        if (r.sequence == 0)
            return invalid("ack-move: sequence 0 is no move's");
        return Args{r.attachment, r.sequence};
    }
    static Result<Request> format(const Args& a) { return Request{a.attachment, a.sequence}; }
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& a, BorrowedFd) {
        return done(c.service().acknowledgeMove(c.id(), a.attachment, a.sequence));
    }
};

struct AllocFor {
    static constexpr wire::Op kOp = wire::Op::AllocFor;
    static constexpr const char* kName = "alloc-for";
    static constexpr bool kTakesFd = false;
    using Request = wire::AllocForRequest;
    using Args = AllocForRequest;
    using Reply = wire::AllocForReply;
    using Decoded = Reply;
    using Value = SessionAllocatedFor;
    static Result<Args> parse(const Request& r) {
        if (r.cpuAccess > static_cast<uint32_t>(CpuAccess::Often))
            return invalid(fmt::format("alloc-for: cpu access {} is not 0 (none), 1 (rare) or 2 (often)", r.cpuAccess));
        if (r.deviceCount == 0 || r.deviceCount > wire::kAllocForDevices)
            return invalid(fmt::format("alloc-for: {} devices: 1 to {}", r.deviceCount, wire::kAllocForDevices));
        std::vector<std::string> devices;
        for (uint32_t i = 0; i < wire::kAllocForDevices; ++i) {
            std::string device = CENALLOC_TRY(nameIn(r.devices[i], "alloc-for: device"));
            if (i >= r.deviceCount) {
                if (!device.empty())
                    return invalid(
                        fmt::format("alloc-for: device slot {} is beyond the {} given but not zero", i, r.deviceCount));
                continue;
            }
            devices.push_back(std::move(device));
        }
        std::string name = CENALLOC_TRY(nameIn(r.name, "alloc-for: name"));
        return AllocForRequest::make(std::move(devices), r.size, name, static_cast<CpuAccess>(r.cpuAccess), r.fdFlags);
    }
    static Result<Request> format(const Args& a) {
        Request r{};
        r.size = a.size();
        r.fdFlags = a.fdFlags();
        r.cpuAccess = static_cast<uint32_t>(a.cpuAccess());
        r.deviceCount = static_cast<uint32_t>(a.devices().size());
        CENALLOC_CHECK(wire::putName(r.name, sizeof r.name, a.name().str()));
        for (size_t i = 0; i < a.devices().size(); ++i) // AllocForRequest::make bounded both
            CENALLOC_CHECK(wire::putName(r.devices[i], sizeof r.devices[i], a.devices()[i]));
        return r;
    }
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args& a, BorrowedFd) {
        AllocForChoice choice;
        auto buffer = c.service().allocateFor(c.id(), a, choice);
        if (!buffer)
            return buffer.error();
        return Answer<Reply>{{buffer->id, buffer->size, std::move(choice.heap), std::move(choice.kernelHeap),
                              std::move(choice.reason), std::move(choice.exporter), std::move(choice.devices)},
                             std::move(buffer->fd)};
    }
    /// The longest sysfs path and driver name a reply may carry (PATH_MAX
    /// and NAME_MAX without their NUL), and exporter name (a heap's name).
    static constexpr size_t kMaxSysfsPath = 4095;
    static constexpr size_t kMaxDriver = 255;
    static constexpr size_t kMaxExporter = sizeof(wire::AllocateRequest::heap);
    /// A reply whose devices are not the ones asked, in order, or whose
    /// strings are longer than any the daemon has: EPROTO.
    static Result<void> checkDevices(const Reply& body, const Args& a) {
        if (body.exporter.size() > kMaxExporter)
            return Error(EPROTO, fmt::format("alloc-for reply: an exporter name of {} bytes", body.exporter.size()));
        if (body.devices.size() != a.devices().size())
            return Error(EPROTO, fmt::format("alloc-for reply: {} devices for the {} asked", body.devices.size(),
                                             a.devices().size()));
        for (size_t i = 0; i < body.devices.size(); ++i) {
            const AllocForDevice& d = body.devices[i];
            if (d.name != a.devices()[i])
                return Error(EPROTO, fmt::format("alloc-for reply: device {} is not the one asked", i));
            if (d.sysfsPath.size() > kMaxSysfsPath || d.driver.size() > kMaxDriver)
                return Error(EPROTO, fmt::format("alloc-for reply: device {}'s sysfs path or driver is too long", i));
        }
        return {};
    }
    static Result<SessionAllocatedFor> finish(Reply body, UniqueFd fd, const Args& a) {
        const bool older = body.exporter.empty() && body.devices.empty(); // a daemon from before them
        if (!older)
            CENALLOC_CHECK(checkDevices(body, a));
        SessionAllocatedFor out;
        out.fd = CENALLOC_TRY(bufferFd(std::move(fd), a.fdFlags()));
        out.size = body.size;
        out.heap = std::move(body.heap);
        out.kernelHeap = std::move(body.kernelHeap);
        out.reason = std::move(body.reason);
        out.name = a.name().str();
        out.exporter = std::move(body.exporter);
        out.devices = std::move(body.devices);
        if (older)
            for (const std::string& device : a.devices())
                out.devices.push_back({device, {}, {}});
        return out;
    }
};

struct StorageFd : NoPayload {
    static constexpr wire::Op kOp = wire::Op::StorageFd;
    static constexpr const char* kName = "storage-fd";
    static constexpr bool kTakesFd = true;
    using Reply = wire::None;
    using Decoded = wire::None;
    using Value = UniqueFd;
    static Result<Answer<Reply>> serve(ServiceClient& c, const Args&, BorrowedFd fd) {
        auto storage = c.service().storageFd(c.id(), fd);
        if (!storage)
            return storage.error();
        return Answer<Reply>{{}, std::move(*storage)};
    }
    static Result<UniqueFd> finish(Reply, UniqueFd fd, const Args&) {
        if (!fd.valid())
            return Error(EPROTO, "the daemon's reply carried no storage fd");
        return applyFdFlags(std::move(fd), O_CLOEXEC);
    }
};

/// Every operation, in opcode order.
using All = std::tuple<Handshake, ListHeaps, Allocate, Create, Import, Release, Attach, Detach, Map, Unmap,
                       BeginCpuAccess, EndCpuAccess, SetName, Bufinfo, Stats, Platform, Describe, Pin, Unpin, Migrate,
                       Forecast, AckMove, AllocFor, StorageFd>;

/// What the Session method of op @p O returns.
template <typename O> using ResultOf = Result<typename O::Value>;

/// Call @p f.template operator()<O>() for the op whose opcode is @p opcode;
/// false when there is none.
template <typename F> bool withOp(uint16_t opcode, F&& f) {
    return std::apply(
        [&](auto... op) {
            return (... || (static_cast<uint16_t>(decltype(op)::kOp) == opcode &&
                            (f.template operator()<decltype(op)>(), true)));
        },
        All{});
}

} // namespace ops

namespace wire {

inline constexpr uint16_t kFirstOp = 1;
inline constexpr uint16_t kLastOp = std::tuple_size_v<ops::All>;

/// "allocate", ...; "?" for an unknown opcode.
inline const char* opName(uint16_t op) {
    const char* name = "?";
    ops::withOp(op, [&]<typename O>() { name = O::kName; });
    return name;
}
/// Does @p op name the buffer by an fd attached to the request?
inline bool opTakesFd(Op op) {
    bool takes = false;
    ops::withOp(static_cast<uint16_t>(op), [&]<typename O>() { takes = O::kTakesFd; });
    return takes;
}

} // namespace wire

/// A Session whose every operation is an op above, run by @p Backend: the
/// in-process service (local_session.cpp) or cenallocd (remote_session.cpp).
/// A backend has `template <typename O> ops::ResultOf<O> call(const
/// typename O::Args&, BorrowedFd)`, describe(), explain(), receivesEvents(), events() (its
/// EventQueue), eventFd() and pollEvents()
/// (take what arrived into events()).
template <typename Backend> class OpSession final : public Session {
public:
    template <typename... A> explicit OpSession(A&&... args) : backend_(std::forward<A>(args)...) {}
    Backend& backend() { return backend_; }

    std::string describe() const override { return backend_.describe(); }
    Result<std::vector<HeapInfo>> heaps() override { return call<ops::ListHeaps>({}); }
    Result<UniqueFd> allocate(const AllocRequest& request) override { return call<ops::Allocate>(request); }
    Result<UniqueFd> create(const CreateRequest& request) override { return call<ops::Create>(request); }
    Result<SessionAllocatedFor> allocateFor(const AllocForRequest& request) override {
        return call<ops::AllocFor>(request);
    }
    Result<uint64_t> import(BorrowedFd buffer) override { return call<ops::Import>({}, buffer); }
    Result<void> release(BorrowedFd buffer) override { return call<ops::Release>({}, buffer); }
    Result<uint64_t> attach(BorrowedFd buffer, std::string_view device) override {
        return call<ops::Attach>({std::string(device), false}, buffer);
    }
    Result<uint64_t> attach(BorrowedFd buffer, std::string_view device, SessionAttachOptions options) override {
        if (options.dynamic && !backend_.receivesEvents())
            return Error(EPROTONOSUPPORT, "the daemon sends no move events: a dynamic attachment needs them");
        return call<ops::Attach>({std::string(device), options.dynamic}, buffer);
    }
    Result<void> pin(uint64_t attachment) override { return call<ops::Pin>(attachment); }
    Result<void> unpin(uint64_t attachment) override { return call<ops::Unpin>(attachment); }
    Result<void> migrate(BorrowedFd buffer, std::string_view heap) override {
        return call<ops::Migrate>(std::string(heap), buffer);
    }
    Result<AttachForecast> forecast(BorrowedFd buffer, std::string_view device) override {
        return call<ops::Forecast>(std::string(device), buffer);
    }
    Result<void> acknowledgeMove(uint64_t attachment, uint64_t sequence) override {
        return call<ops::AckMove>({attachment, sequence});
    }
    BorrowedFd eventFd() override { return backend_.eventFd(); }
    void setMoveCallback(MoveEventCallback callback) override { backend_.events().setCallback(std::move(callback)); }
    Result<size_t> dispatchEvents() override {
        CENALLOC_CHECK(backend_.pollEvents());
        return backend_.events().dispatch();
    }
    Result<std::optional<MoveEvent>> nextEvent() override {
        CENALLOC_CHECK(backend_.pollEvents());
        return backend_.events().take();
    }
    Result<void> detach(uint64_t attachment) override { return call<ops::Detach>(attachment); }
    Result<SessionMapping> map(uint64_t attachment, DmaDirection direction) override {
        return call<ops::Map>({attachment, direction});
    }
    Result<void> unmap(uint64_t mapping) override { return call<ops::Unmap>(mapping); }
    Result<void> beginCpuAccess(BorrowedFd buffer, SyncFlags flags) override {
        return call<ops::BeginCpuAccess>(flags, buffer);
    }
    Result<void> endCpuAccess(BorrowedFd buffer, SyncFlags flags) override {
        return call<ops::EndCpuAccess>(flags, buffer);
    }
    Result<void> setName(BorrowedFd buffer, const BufferName& name) override {
        return call<ops::SetName>(name, buffer);
    }
    Result<std::vector<BufferInfo>> bufinfo() override { return call<ops::Bufinfo>({}); }
    Result<BufferInfo> describe(BorrowedFd buffer) override { return call<ops::Describe>({}, buffer); }
    Result<UniqueFd> storageFd(BorrowedFd buffer) override { return call<ops::StorageFd>({}, buffer); }
    Result<AllocatorStats> stats(bool resetWatermark) override { return call<ops::Stats>(resetWatermark); }
    Result<Explanation> explain(std::span<const std::string> devices, uint64_t size, CpuAccess cpuAccess) override {
        return backend_.explain(devices, size, cpuAccess);
    }

private:
    template <typename O> ops::ResultOf<O> call(const typename O::Args& args, BorrowedFd fd = {}) {
        return backend_.template call<O>(args, fd);
    }
    Backend backend_;
};

} // namespace cenalloc
