// SPDX-License-Identifier: MIT
// Session::connect: the client library, running each op by asking cenallocd.
#include <cenalloc/session.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <optional>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>

#include "service/dispatch.h"
#include "service/event_queue.h"
#include "service/poll_window.h"
#include "service/operations.h"
#include "service/protocol.h"
#include "service/socket_io.h"

namespace cenalloc {

using namespace wire;

namespace {

// The longest a client polls for a reply before it sleeps.
constexpr auto kReplyPollLimit = std::chrono::microseconds(50);

/// A reply's body and the fd it carried.
struct Response {
    std::vector<std::byte> body;
    UniqueFd fd;
};

/// Runs each op by sending its request to cenallocd and decoding the reply.
class RemoteBackend {
public:
    RemoteBackend(UniqueFd socket, std::string path, EventQueue events, UniqueFd epoll)
        : socket_(std::move(socket)), path_(std::move(path)), events_(std::move(events)), epoll_(std::move(epoll)) {}

    Result<void> handshake() {
        auto reply = call<ops::Handshake>({kVersion, kVersion, kCapMoveEvents}, {});
        // A daemon older than events refuses the capability as a reserved
        // field that is not zero: ask again without it.
        if (!reply && reply.error().code() == EINVAL)
            reply = call<ops::Handshake>({kVersion, kVersion, 0}, {});
        if (!reply) {
            if (reply.error().code() == EPROTONOSUPPORT)
                return Error(EPROTO, reply.error().message());
            return reply.error();
        }
        if (reply->version != kVersion)
            return Error(EPROTO, fmt::format("the daemon answered with protocol version {}", reply->version));
        version_ = static_cast<uint16_t>(reply->version);
        receivesEvents_ = (reply->capabilities & kCapMoveEvents) != 0;
        // Readable when an event waits in the queue or on the socket.
        for (int fd : {socket_.get(), events_.fd().get()}) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.fd = fd;
            if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
                return Error::fromErrno("epoll_ctl");
        }
        return {};
    }

    std::string describe() const { return fmt::format("cenallocd at {} (protocol {})", path_, version_); }
    bool receivesEvents() const { return receivesEvents_; }
    EventQueue& events() { return events_; }
    BorrowedFd eventFd() const { return epoll_.borrow(); }

    /// Take the events waiting on the socket into the queue. Between
    /// requests anything the daemon sends is an event.
    Result<void> pollEvents() {
        std::lock_guard lock(mutex_);
        for (;;) {
            auto dg = receiveDatagram(socket_, kMaxFragmentSize, MSG_DONTWAIT);
            if (!dg) {
                if (dg.error().code() == EAGAIN)
                    return {};
                if (dg.error().code() == ECONNRESET)
                    return Error(ECONNRESET, fmt::format("cenallocd at {} closed the connection", path_));
                return dg.error();
            }
            MessageHeader h{};
            if (dg->bytes.size() < sizeof h)
                return Error(EPROTO, "malformed message from cenallocd");
            std::memcpy(&h, dg->bytes.data(), sizeof h);
            if (!(h.flags & kFlagEvent))
                return Error(EPROTO,
                             fmt::format("a reply for {} #{} when none was asked for", opName(h.opcode), h.sequence));
            CENALLOC_CHECK(takeEvent(*dg));
        }
    }

    template <typename O> ops::ResultOf<O> call(const typename O::Args& args, BorrowedFd fd) {
        Writer w;
        if constexpr (!std::is_same_v<typename O::Request, None>)
            w.put(CENALLOC_TRY(O::format(args)));
        Response r = CENALLOC_TRY(transact(O::kOp, w.bytes(), fd));
        Reader reader(r.body);
        auto body = decode<typename O::Decoded>(reader);
        if (!body)
            return body.error();
        return O::finish(std::move(*body), std::move(r.fd), args);
    }

    Result<Explanation> explain(std::span<const std::string> devices, uint64_t size, CpuAccess cpuAccess) {
        // explain() is pure over the platform and the heaps' properties:
        // computed here over the daemon's own (fetched once, they never
        // change while it runs) it is the answer the daemon would give.
        std::lock_guard lock(platformMutex_);
        if (!platform_)
            platform_ = CENALLOC_TRY(call<ops::Platform>({}, {}));
        return cenalloc::explain(platform_->platform, platform_->heaps, devices, size, cpuAccess);
    }

private:
    Result<Response> transact(Op op, const std::vector<std::byte>& payload, BorrowedFd fd) {
        std::lock_guard lock(mutex_);
        if (fd.get() < 0 && opTakesFd(op))
            return Error(EBADF, fmt::format("fd {} is not open", fd.get()));
        uint32_t sequence = ++sequence_;
        MessageHeader h = makeHeader(op, static_cast<uint32_t>(payload.size()), fd.valid() ? 1 : 0, sequence);
        int raw = fd.get();
        auto sent = sendDatagram(socket_, std::as_bytes(std::span(&h, 1)), payload,
                                 fd.valid() ? std::span<const int>(&raw, 1) : std::span<const int>());
        if (!sent) {
            // An fd that is not open cannot be sent: nothing was, and the
            // connection is as it was.
            if (sent.error().code() == EBADF && fd.valid())
                return Error(EBADF, fmt::format("fd {} is not open", fd.get()));
            // A daemon that refused us said why before hanging up.
            bool transport = false;
            auto why = receive(op, sequence, MSG_DONTWAIT, &transport);
            if (!why && !transport)
                return why.error();
            return Error(ECONNRESET,
                         fmt::format("cenallocd at {} closed the connection ({})", path_, sent.error().message()));
        }
        return receive(op, sequence, 0);
    }

    /// The reply to request @p sequence. @p transport, when given, tells
    /// whether a failure was the socket's (nothing received) rather than
    /// the daemon's answer.
    Result<Response> receive(Op op, uint32_t sequence, int flags, bool* transport = nullptr) {
        Response out;
        std::vector<std::byte> payload;
        size_t payloadOffset = 0; // where the payload starts in `payload`
        int error = 0;
        for (;;) {
            auto dg = flags == 0 && payload.empty() ? awaitReply() : receiveDatagram(socket_, kMaxFragmentSize, flags);
            if (!dg && dg.error().code() == ECONNRESET && payload.empty())
                // A daemon that refuses a client replies and closes before
                // reading the request; the kernel then reports the reset
                // ahead of the reply still queued here. It is read next.
                dg = receiveDatagram(socket_, kMaxFragmentSize, flags | MSG_DONTWAIT);
            if (!dg) {
                if (transport)
                    *transport = true;
                if (dg.error().code() == ECONNRESET)
                    return Error(ECONNRESET, fmt::format("cenallocd at {} closed the connection", path_));
                return dg.error();
            }
            MessageHeader h{};
            if (dg->bytes.size() < sizeof h || dg->wireSize > kMaxFragmentSize || dg->controlTruncated ||
                dg->foreignControl)
                return Error(EPROTO, "malformed reply from cenallocd");
            std::memcpy(&h, dg->bytes.data(), sizeof h);
            if (h.magic != kMagic || h.version != kVersion)
                return Error(EPROTO,
                             fmt::format("the peer at {} does not speak cenalloc protocol {}", path_, kVersion));
            if (h.flags & kFlagEvent) {
                // Events are ordered with replies on the stream: one that
                // came before the reply is queued, and the wait goes on.
                CENALLOC_CHECK(takeEvent(*dg));
                continue;
            }
            // Sequence 0 is the refusal a daemon sends before hanging up.
            bool refusal = h.sequence == 0 && h.error != 0;
            if (!refusal && (h.opcode != static_cast<uint16_t>(op) || h.sequence != sequence))
                return Error(EPROTO, fmt::format("reply for {} #{} while waiting for {} #{}", opName(h.opcode),
                                                 h.sequence, opName(static_cast<uint16_t>(op)), sequence));
            if (h.payloadSize != dg->bytes.size() - sizeof h || h.fdCount != dg->fds.size() ||
                (h.flags & ~kValidReplyFlags) || h.reserved != 0 || h.error < 0)
                return Error(EPROTO, "malformed reply header from cenallocd");
            if (payload.empty() && !(h.flags & kFlagMore)) {
                // The usual single-fragment reply: keep its bytes, header and all.
                payload = std::move(dg->bytes);
                payloadOffset = sizeof h;
            } else {
                payload.insert(payload.end(), dg->bytes.begin() + sizeof h, dg->bytes.end());
            }
            for (UniqueFd& fd : dg->fds) {
                if (out.fd.valid())
                    return Error(EPROTO, "a reply carried more than one fd");
                out.fd = std::move(fd);
            }
            error = h.error;
            if (!(h.flags & kFlagMore))
                break;
            flags = 0; // the rest of a fragmented reply is on its way
        }
        Reader reader(std::span<const std::byte>(payload).subspan(payloadOffset));
        auto prefix = reader.get<ReplyPrefix>();
        if (!prefix)
            return prefix.error();
        auto message = reader.getString(prefix->messageLength);
        if (!message)
            return message.error();
        if (error != 0)
            return Error(error, *message);
        size_t consumed = payload.size() - reader.remaining();
        out.body.assign(payload.begin() + static_cast<std::ptrdiff_t>(consumed), payload.end());
        return out;
    }

    /// Queue the move event @p dg (decodeEventMessage). Errors: EPROTO
    /// for a malformed one.
    Result<void> takeEvent(const Datagram& dg) {
        auto event = decodeEventMessage(dg);
        if (!event)
            return event.error();
        if (!receivesEvents_)
            return Error(EPROTO, "an event from cenallocd, which this session did not ask for");
        events_.push(*event);
        return {};
    }

    /// The first datagram of a reply. The daemon answers within
    /// microseconds, less than it costs to sleep and be woken for it (in a
    /// VM, the wake-up of a halted CPU is an exit to the hypervisor): so
    /// poll for it first, yielding the CPU, for as long as replies have
    /// lately taken (PollWindow, as the daemon's workers do). Caller holds
    /// mutex_.
    Result<Datagram> awaitReply() {
        using Clock = std::chrono::steady_clock;
        const Clock::time_point start = Clock::now();
        if (poll_.window() > PollWindow::Duration::zero()) {
            const Clock::time_point until = start + poll_.window();
            do {
                auto dg = receiveDatagram(socket_, kMaxFragmentSize, MSG_DONTWAIT);
                if (dg || dg.error().code() != EAGAIN)
                    return dg;
                ::sched_yield();
            } while (Clock::now() < until);
        }
        auto dg = receiveDatagram(socket_, kMaxFragmentSize, 0);
        if (dg)
            poll_.missed(Clock::now() - start);
        return dg;
    }

    UniqueFd socket_;
    const std::string path_;
    uint16_t version_ = kVersion;
    bool receivesEvents_ = false; // set by handshake()
    EventQueue events_;
    UniqueFd epoll_; // the socket and the queue's fd: eventFd()

    std::mutex mutex_;                     // one request in flight per session
    uint32_t sequence_ = 0;                // guarded by mutex_
    PollWindow poll_{kReplyPollLimit};     // guarded by mutex_
    std::mutex platformMutex_;             // taken before mutex_, never after
    std::optional<PlatformBody> platform_; // guarded by platformMutex_
};

} // namespace

std::string Session::defaultSocketPath() {
    const char* runtime = std::getenv("XDG_RUNTIME_DIR");
    if (::getuid() == 0 || runtime == nullptr || *runtime == '\0')
        return "/run/cenalloc/cenalloc.sock";
    return fmt::format("{}/cenalloc.sock", runtime);
}

Result<std::unique_ptr<Session>> Session::connect(const std::string& socketPath) {
    std::string path = socketPath.empty() ? defaultSocketPath() : socketPath;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        return Error(ENAMETOOLONG,
                     fmt::format("socket path '{}' is longer than {} bytes", path, sizeof addr.sun_path - 1));
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!fd.valid())
        return Error(errno, fmt::format("socket: {}", std::strerror(errno)));
    int rc;
    do {
        rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0)
        return Error(errno, fmt::format("no cenallocd at {}: {}", path, std::strerror(errno)));
    auto events = EventQueue::create();
    if (!events)
        return events.error();
    UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll.valid())
        return Error::fromErrno("epoll_create1");
    auto session =
        std::make_unique<OpSession<RemoteBackend>>(std::move(fd), path, std::move(*events), std::move(epoll));
    CENALLOC_CHECK(session->backend().handshake());
    return std::unique_ptr<Session>(std::move(session));
}

} // namespace cenalloc
