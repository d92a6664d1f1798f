// SPDX-License-Identifier: MIT
// `cenalloc bufinfo --host` on a real kernel: real dma-bufs held by a child process are attributed to it.
//
//   host_bufinfo_check [CENALLOC]     (default /cenalloc)
//
// scripts/kernel-conformance runs it in its qemu guest (as /host-bufinfo,
// beside /cenalloc) after the other checks. It allocates a dma-buf from the system
// heap (and one from udmabuf when the kernel has it), names them, hands them
// to a child that holds each by fd and by a shared mapping, closes its own
// fds, then runs `CENALLOC bufinfo --host --json` and the text form and
// prints what they say about the child in lines that are the same on every
// run (no pids or inodes), compared with
// tests/conformance/host_bufinfo_expected.txt. Then it checks `CENALLOC
// alloc --for` (a real dma-buf from the kernel heap the model chose) and
// that `explain --host` names that kernel heap; then the same through
// `cenallocd --host` (CENALLOC's sibling cenallocd): its heap list's kernel
// heap column and `alloc --for --socket`.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <linux/udmabuf.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "conformance/guest_programs.h"

namespace {

using nlohmann::json;

constexpr uint64_t kHeapSize = 1 << 20;
constexpr uint64_t kUdmabufSize = 64 << 10;
constexpr const char kChildComm[] = "bufholder";

struct Allocated : cenalloc::guest::HeldBuffer {
    std::string exporter;
};

void name(Allocated& a, const char* n) {
    if (::ioctl(a.fd, DMA_BUF_SET_NAME_B, n) == 0)
        a.name = n;
    struct stat st {};
    if (::fstat(a.fd, &st) == 0)
        a.inode = st.st_ino;
}

Allocated allocateFromSystemHeap() {
    Allocated a;
    if (int error = cenalloc::guest::allocateFromHeap("/dev/dma_heap/system", kHeapSize, "held-by-child", &a)) {
        std::printf("host-bufinfo-system-alloc: %s\n", std::strerror(error));
        return a;
    }
    a.exporter = "system";
    std::printf("host-bufinfo-system-alloc: ok size=%llu\n", static_cast<unsigned long long>(a.size));
    return a;
}

Allocated allocateFromUdmabuf() {
    Allocated a;
    int dev = ::open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
    if (dev < 0) {
        std::printf("host-bufinfo-udmabuf-alloc: %s\n", std::strerror(errno));
        return a;
    }
    int memfd = ::memfd_create("udmabuf-backing", MFD_ALLOW_SEALING | MFD_CLOEXEC);
    if (memfd >= 0 && ::ftruncate(memfd, kUdmabufSize) == 0 && ::fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) == 0) {
        udmabuf_create create{};
        create.memfd = static_cast<uint32_t>(memfd);
        create.flags = UDMABUF_FLAGS_CLOEXEC;
        create.size = kUdmabufSize;
        int fd = ::ioctl(dev, UDMABUF_CREATE, &create);
        if (fd >= 0) {
            a.fd = fd;
            a.size = kUdmabufSize;
            a.exporter = "udmabuf";
            name(a, "udmabuf-held");
            std::printf("host-bufinfo-udmabuf-alloc: ok size=%llu\n", static_cast<unsigned long long>(a.size));
        } else {
            std::printf("host-bufinfo-udmabuf-alloc: %s\n", std::strerror(errno));
        }
    }
    if (memfd >= 0)
        ::close(memfd); // udmabuf keeps the pages
    ::close(dev);
    return a;
}

void checkBuffer(const json& report, const Allocated& a, const char* label, pid_t child) {
    const json* found = cenalloc::guest::findBuffer(report, a.inode);
    if (!found) {
        std::printf("host-bufinfo-%s-buffer: missing\n", label);
        return;
    }
    const json& b = *found;
    std::printf("host-bufinfo-%s-buffer: exporter=%s size=%llu exact=%s name=%s\n", label,
                b["exporter"].is_string() ? b["exporter"].get<std::string>().c_str() : "?",
                static_cast<unsigned long long>(b["size"].get<uint64_t>()), b["size_exact"] ? "yes" : "no",
                b["name"].get<std::string>().c_str());
    std::printf("host-bufinfo-%s-holders: %s\n", label, cenalloc::guest::describeHolders(b, child).c_str());
}

/// cenallocd, started as the sibling of @p cli with @p args, once it said
/// READY=1 (NOTIFY_SOCKET, as systemd's Type=notify waits for it, bounded
/// by 60 s); -1 when it did not.
pid_t startDaemon(const std::string& cli, const std::vector<std::string>& args, const std::string& dir) {
    const std::string daemon = cli.substr(0, cli.rfind('/') + 1) + "cenallocd";
    const std::string notifyPath = dir + "/notify";
    int notify = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", notifyPath.c_str());
    if (notify < 0 || ::bind(notify, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        std::printf("alloc-for-daemon: notify socket: %s\n", std::strerror(errno));
        return -1;
    }
    pid_t pid = ::fork();
    if (pid == 0) {
        ::setenv("NOTIFY_SOCKET", notifyPath.c_str(), 1);
        std::vector<std::string> command = {daemon};
        command.insert(command.end(), args.begin(), args.end());
        cenalloc::guest::execOrExit(command);
    }
    pollfd p{notify, POLLIN, 0};
    char said[64] = {};
    const bool ready = ::poll(&p, 1, 60000) == 1 && ::recv(notify, said, sizeof said - 1, 0) > 0 &&
                       std::string_view(said).starts_with("READY=1");
    ::close(notify);
    if (!ready) {
        std::printf("alloc-for-daemon: cenallocd did not become ready (%s)\n", said);
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        return -1;
    }
    return pid;
}

// The same allocation through `cenallocd --host`: the daemon's heap list
// says which /dev/dma_heap node the system heap stands for, and `alloc
// --for --socket` prints what the in-process command printed (the device's
// sysfs path @p sysfs included). Returns the number of failures.
int checkThroughDaemon(const std::string& cli, const std::string& device, const std::string& sysfs) {
    ::mkdir("/tmp", 01777); // the guest's initramfs may have none
    char dirTemplate[] = "/tmp/host-bufinfo.XXXXXX";
    if (!::mkdtemp(dirTemplate)) {
        std::printf("alloc-for-daemon: mkdtemp: %s\n", std::strerror(errno));
        return 1;
    }
    const std::string dir = dirTemplate;
    const std::string socketPath = dir + "/cenalloc.sock";
    pid_t daemon = startDaemon(cli, {"--host", "--socket", socketPath, "--log-level", "error"}, dir);
    if (daemon < 0)
        return 1;
    auto str = [](const json& v) { return v.is_string() ? v.get<std::string>() : std::string("null"); };
    int failures = 0;
    int status = 0;
    json heaps =
        json::parse(cenalloc::guest::run({cli, "heaps", "--socket", socketPath, "--json"}, &status), nullptr, false);
    std::string systemNode = "missing";
    if (!heaps.is_discarded())
        for (const json& h : heaps["heaps"])
            if (h["name"] == "system")
                systemNode = str(h["properties"].value("kernel_heap", json())) + " (" +
                             str(h["properties"].value("kernel_placement", json())) + ")";
    std::printf("alloc-for-daemon-heaps: status=%d system=%s\n", status, systemNode.c_str());
    failures += status != 0 || systemNode != "/dev/dma_heap/system (placed)";

    json a = json::parse(cenalloc::guest::run({cli, "alloc", "--for", device, "--size", "1M", "--name", "via-daemon",
                                               "--socket", socketPath, "--json"},
                                              &status),
                         nullptr, false);
    std::printf("alloc-for-daemon-json: %s status=%d\n", a.is_discarded() ? "unparsable" : "ok", status);
    if (!a.is_discarded() && status == 0) {
        std::printf("alloc-for-daemon-buffer: heap=%s kernel_heap=%s size=%llu exporter=%s name=%s fd=%s\n",
                    str(a["heap"]).c_str(), str(a["kernel_heap"]).c_str(),
                    static_cast<unsigned long long>(a["size"].get<uint64_t>()), str(a["exporter"]).c_str(),
                    str(a["name"]).c_str(), a["fd"].get<int>() >= 0 ? "open" : "none");
        const bool sameDevice = a["devices"].size() == 1 && a["devices"][0]["name"] == device;
        const bool sameSysfs = sameDevice && str(a["devices"][0]["sysfs"]) == sysfs;
        std::printf("alloc-for-daemon-devices: %zu, the one asked %s, sysfs as in-process %s\n", a["devices"].size(),
                    sameDevice ? "yes" : "no", sameSysfs ? "yes" : "no");
        failures += str(a["kernel_heap"]) != "/dev/dma_heap/system" || !sameSysfs;
    } else {
        failures += 1;
    }
    ::kill(daemon, SIGTERM);
    int raw = 0;
    ::waitpid(daemon, &raw, 0);
    std::printf("alloc-for-daemon-stopped: %s\n", WIFEXITED(raw) && WEXITSTATUS(raw) == 0 ? "exit 0" : "abnormally");
    failures += !(WIFEXITED(raw) && WEXITSTATUS(raw) == 0);
    ::unlink((dir + "/notify").c_str());
    ::rmdir(dir.c_str());
    return failures;
}

// `cenalloc alloc --for` on the host: the model placed on the kernel's
// heaps chooses the system heap for the guest's first device, and the CLI
// hands out a real dma-buf the kernel exported from it. Lines name no pid,
// fd or inode. Returns the number of failures.
int checkAllocFor(const std::string& cli) {
    int status = 0;
    json platform =
        json::parse(cenalloc::guest::run({cli, "platform", "show", "--host", "--json"}, &status), nullptr, false);
    if (platform.is_discarded() || status != 0 || !platform.contains("devices") || platform["devices"].empty()) {
        std::printf("alloc-for-platform: %s status=%d\n", platform.is_discarded() ? "unparsable" : "no devices",
                    status);
        return 1;
    }
    const std::string device = platform["devices"][0]["name"].get<std::string>();
    json a = json::parse(
        cenalloc::guest::run({cli, "alloc", "--for", device, "--size", "1M", "--name", "for-check", "--host", "--json"},
                             &status),
        nullptr, false);
    std::printf("alloc-for-json: %s status=%d\n", a.is_discarded() ? "unparsable" : "ok", status);
    if (a.is_discarded() || status != 0)
        return 1;
    auto str = [](const json& v) { return v.is_string() ? v.get<std::string>() : std::string("null"); };
    std::printf("alloc-for-buffer: heap=%s kernel_heap=%s size=%llu exporter=%s name=%s fd=%s inode=%s\n",
                str(a["heap"]).c_str(), str(a["kernel_heap"]).c_str(),
                static_cast<unsigned long long>(a["size"].get<uint64_t>()), str(a["exporter"]).c_str(),
                str(a["name"]).c_str(), a["fd"].get<int>() >= 0 ? "open" : "none",
                a["inode"].get<uint64_t>() != 0 ? "known" : "unknown");
    const bool sameDevice = a["devices"].size() == 1 && a["devices"][0]["name"] == device;
    std::printf("alloc-for-devices: %zu, the one asked %s, sysfs %s\n", a["devices"].size(), sameDevice ? "yes" : "no",
                sameDevice && a["devices"][0]["sysfs"].is_string() ? "shown" : "missing");

    // explain --host names the kernel heap the chosen heap stands for.
    json e = json::parse(
        cenalloc::guest::run({cli, "explain", "--host", "--devices", device, "--size", "1M", "--json"}, &status),
        nullptr, false);
    const bool named = !e.is_discarded() && e.value("kernel_heap", json()) == "/dev/dma_heap/system";
    std::printf("alloc-for-explain: status=%d heap=%s kernel_heap=%s\n", status,
                e.is_discarded() ? "unparsable" : str(e["heap"]).c_str(),
                e.is_discarded() ? "unparsable" : str(e["kernel_heap"]).c_str());
    const std::string sysfs = sameDevice ? str(a["devices"][0]["sysfs"]) : std::string();
    return (str(a["exporter"]) != "system") + !sameDevice + (status != 0) + !named +
           checkThroughDaemon(cli, device, sysfs);
}

} // namespace

int main(int argc, char** argv) {
    const std::optional<std::string> cliPath = cenalloc::guest::cliArgument(argc, argv);
    if (!cliPath)
        return 2;
    const std::string& cli = *cliPath;
    // /sys/kernel/dmabuf/buffers where the kernel has it (init mounts no sysfs).
    bool mountedSys = false;
    struct stat st {};
    if (::stat("/sys/kernel", &st) != 0) {
        ::mkdir("/sys", 0755);
        mountedSys = ::mount("sysfs", "/sys", "sysfs", 0, nullptr) == 0;
    }

    std::vector<cenalloc::guest::HeldBuffer> buffers;
    Allocated heap = allocateFromSystemHeap();
    if (heap.fd >= 0)
        buffers.push_back(heap);
    Allocated udmabuf = allocateFromUdmabuf();
    if (udmabuf.fd >= 0)
        buffers.push_back(udmabuf);

    int release = -1;
    pid_t child = cenalloc::guest::startHolder(buffers, kChildComm, "host-bufinfo", &release);
    for (const cenalloc::guest::HeldBuffer& a : buffers)
        ::close(a.fd); // the child alone holds them now

    int status = 0;
    std::string out = cenalloc::guest::run({cli, "bufinfo", "--host", "--json"}, &status);
    json report = json::parse(out, nullptr, false);
    std::printf("host-bufinfo-json: %s status=%d\n", report.is_discarded() ? "unparsable" : "ok", status);
    int failures = report.is_discarded() || status != 0;
    if (!report.is_discarded()) {
        if (heap.fd >= 0)
            checkBuffer(report, heap, "system", child);
        if (udmabuf.fd >= 0)
            checkBuffer(report, udmabuf, "udmabuf", child);
        std::string parent = "none";
        for (const json& p : report["processes"]) {
            if (p["pid"] == ::getpid())
                parent = "holds " + std::to_string(p["buffers"].get<int>());
            if (p["pid"] == child)
                std::printf("host-bufinfo-child-total: comm=%s buffers=%d bytes=%llu fd_bytes=%llu\n",
                            p["comm"].get<std::string>().c_str(), p["buffers"].get<int>(),
                            static_cast<unsigned long long>(p["bytes"].get<uint64_t>()),
                            static_cast<unsigned long long>(p["fd_bytes"].get<uint64_t>()));
        }
        std::printf("host-bufinfo-parent: %s\n", parent.c_str());
        std::string exporters;
        for (const json& e : report["exporters"])
            if (e["exporter"].is_string())
                exporters += (exporters.empty() ? "" : " ") + e["exporter"].get<std::string>();
        std::printf("host-bufinfo-exporters: %s\n", exporters.c_str());
        std::printf("host-bufinfo-uninspectable: %d\n", report["uninspectable_processes"].get<int>());
        std::printf("host-bufinfo-sysfs-stats: %s\n", report["sysfs_stats"] ? "read" : "absent");
    }

    // The text form names the child by pid and comm.
    std::string text = cenalloc::guest::run({cli, "bufinfo", "--host"}, &status);
    std::string expected = std::to_string(child) + " " + kChildComm + " (1 fd, 1 map)";
    bool named = text.find(expected) != std::string::npos;
    std::printf("host-bufinfo-text: status=%d child %s\n", status, named ? "named" : "missing");
    if (!named)
        std::fputs(text.c_str(), stdout);
    failures += status != 0 || !named;

    ::close(release);
    ::waitpid(child, nullptr, 0);

    failures += checkAllocFor(cli);
    if (mountedSys)
        ::umount("/sys");
    std::printf("host-bufinfo-summary: done\n");
    return failures == 0 ? 0 : 1;
}
