// SPDX-License-Identifier: MIT
// cenalloc on an arm64 board: what `cenalloc --host` says about the board it runs on, checked against the kernel.
//
//   board_check [CENALLOC]     (default /cenalloc)
//
// scripts/board-conformance runs it in its arm64 qemu guest (as /board-check, beside /cenalloc), booted with
// tests/board/board.dts: qemu's virt machine, a linux,cma-default area at 0x50000000 and three i.MX8MP DMA masters
// (display-controller, gpu, usb). It prints lines that are the same on every run (no pids, inodes or fd numbers),
// compared with tests/board/board_expected.txt:
//   board-device         the three masters as `platform show --host` names them, with their sysfs device
//   board-cma-*          the default CMA area as cenalloc models it, and as the kernel's debugfs shows it
//   board-dma-heaps      what /dev/dma_heap holds
//   board-heap           cenalloc's heaps on this host
//   board-explain        `explain --host` for display+GPU and for GPU+USB: the chosen heap and kernel heap
//   board-alloc          `alloc --for` for the same sets (the CMA area's sysfs alloc_pages_success rises by
//                        the size in pages for the display+GPU buffer, not for the GPU+USB one)
//   board-hold           a buffer from each kernel heap explain chose, held by a child: debugfs `used` of the
//                        CMA area rises by the size in pages and falls back when the child lets go; the
//                        fdinfo names the exporter; `bufinfo --host` attributes both buffers to the child
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "conformance/guest_programs.h"

namespace {

using nlohmann::json;
namespace guest = cenalloc::guest;

constexpr const char kDisplay[] = "display-controller";
constexpr const char kGpu[] = "gpu";
constexpr const char kUsb[] = "usb";
constexpr uint64_t kPage = 4096;
constexpr uint64_t kCmaBufferSize = 4 << 20;
constexpr uint64_t kSystemBufferSize = 1 << 20;
constexpr const char kChildComm[] = "boardholder";
// kernel/dma/contiguous.c and mm/cma_debug.c, mm/cma_sysfs.c (Linux 6.12): the CMA area is named after its
// reserved-memory node; debugfs shows it under cma/<name>/ (base_pfn, count, used in pages), sysfs under
// /sys/kernel/mm/cma/<name>/ (alloc_pages_success: pages allocated since boot).
constexpr const char kCmaDebugfs[] = "/sys/kernel/debug/cma/";
constexpr const char kCmaSysfs[] = "/sys/kernel/mm/cma/";

int failures = 0;

std::string str(const json& j) {
    return j.is_string() ? j.get<std::string>() : "none";
}

std::optional<uint64_t> readNumber(const std::string& path) {
    std::string text = guest::readText(path);
    if (text.empty())
        return std::nullopt;
    return std::strtoull(text.c_str(), nullptr, 0);
}

/// The value after "@p key:" on a line of @p text (spaces and tabs after the colon left out); empty when absent.
std::string field(const std::string& text, const std::string& key) {
    size_t at = 0;
    while ((at = text.find(key + ":", at)) != std::string::npos) {
        if (at == 0 || text[at - 1] == '\n') {
            size_t begin = text.find_first_not_of(" \t", at + key.size() + 1);
            size_t end = text.find('\n', at);
            return begin == std::string::npos || begin >= end ? std::string() : text.substr(begin, end - begin);
        }
        at += key.size();
    }
    return {};
}

/// Every line of @p text that starts with "@p key:", the key left out.
std::vector<std::string> fields(const std::string& text, const std::string& key) {
    std::vector<std::string> found;
    size_t at = 0;
    while (at < text.size()) {
        size_t end = text.find('\n', at);
        if (end == std::string::npos)
            end = text.size();
        std::string line = text.substr(at, end - at);
        if (line.rfind(key + ":", 0) == 0) {
            size_t begin = line.find_first_not_of(" \t", key.size() + 1);
            found.push_back(begin == std::string::npos ? std::string() : line.substr(begin));
        }
        at = end + 1;
    }
    return found;
}

json runJson(const std::string& cli, std::vector<std::string> args, const char* label) {
    args.insert(args.begin(), cli);
    args.push_back("--json");
    int status = 0;
    std::string errors;
    json j = json::parse(guest::run(args, &status, &errors), nullptr, false);
    if (status != 0 || j.is_discarded()) {
        std::printf("%s: status=%d %s\n%s", label, status, j.is_discarded() ? "unparsable" : "", errors.c_str());
        ++failures;
        return json::object();
    }
    return j;
}

void checkDevices(const json& platform) {
    for (const char* name : {kDisplay, kGpu, kUsb}) {
        auto it = std::find_if(platform["devices"].begin(), platform["devices"].end(),
                               [&](const json& d) { return d["name"] == name; });
        if (it == platform["devices"].end()) {
            std::printf("board-device: %s missing\n", name);
            ++failures;
            continue;
        }
        std::printf("board-device: %s sysfs=%s driver=%s (%s)\n", name, str((*it)["sysfs_path"]).c_str(),
                    str((*it)["driver"]).c_str(), str((*it)["description"]).c_str());
    }
}

/// The default CMA area cenalloc models; its name.
std::string checkCma(const json& platform) {
    std::string name;
    for (const json& r : platform["regions"]) {
        if (!r["default"].get<bool>())
            continue;
        name = r["name"].get<std::string>();
        std::printf("board-cma-region: %s kind=%s base=0x%" PRIx64 " size=%" PRIu64 " MiB default\n", name.c_str(),
                    str(r["kind"]).c_str(), r["base"].get<uint64_t>(), r["size"].get<uint64_t>() >> 20);
    }
    if (name.empty()) {
        std::printf("board-cma-region: no default CMA area\n");
        ++failures;
        return name;
    }
    auto basePfn = readNumber(kCmaDebugfs + name + "/base_pfn");
    auto count = readNumber(kCmaDebugfs + name + "/count");
    if (!basePfn || !count) {
        std::printf("board-cma-debugfs: %s%s unreadable\n", kCmaDebugfs, name.c_str());
        ++failures;
        return name;
    }
    std::printf("board-cma-debugfs: %s base=0x%" PRIx64 " pages=%" PRIu64 " (%" PRIu64 " MiB)\n", name.c_str(),
                *basePfn * kPage, *count, *count * kPage >> 20);
    return name;
}

void listDmaHeaps() {
    std::vector<std::string> names;
    if (DIR* dir = ::opendir("/dev/dma_heap")) {
        while (const dirent* e = ::readdir(dir))
            if (e->d_name[0] != '.')
                names.emplace_back(e->d_name);
        ::closedir(dir);
    }
    std::sort(names.begin(), names.end());
    std::string line;
    for (const std::string& n : names)
        line += " " + n;
    std::printf("board-dma-heaps:%s\n", line.empty() ? " none" : line.c_str());
}

void listHeaps(const json& heaps) {
    for (const json& h : heaps["heaps"]) {
        const json& p = h["properties"];
        std::printf("board-heap: %s kind=%s contiguous=%s cached=%s range=0x%" PRIx64 "..0x%" PRIx64 "\n",
                    str(h["name"]).c_str(), str(p["kind"]).c_str(), p["contiguous"].get<bool>() ? "yes" : "no",
                    p["cached"].get<bool>() ? "yes" : "no", p["lowest_address"].get<uint64_t>(),
                    p["highest_address"].get<uint64_t>());
    }
}

/// `explain --host` for @p devices; the kernel heap it names (its path), or /dev/dma_heap/<chosen heap> when it
/// names none (the heap names of a device-tree board are the kernel's).
std::string explain(const std::string& cli, const std::string& devices) {
    int status = 0;
    std::string errors;
    std::string text = guest::run({cli, "explain", "--host", "--devices", devices, "--size", "4M"}, &status, &errors);
    std::string chosen = field(text, "chosen heap");
    std::string kernel = field(text, "kernel heap");
    std::printf("board-explain: %s status=%d chosen=%s kernel-heap=%s\n", devices.c_str(), status,
                chosen.empty() ? "none" : chosen.c_str(), kernel.empty() ? "none" : kernel.c_str());
    if (status != 0) {
        std::printf("board-explain: %s said:\n%s", devices.c_str(), errors.c_str());
        ++failures;
    } else if (chosen.empty() || kernel.empty()) {
        std::printf("board-explain: %s printed no '%s' line\n", devices.c_str(),
                    chosen.empty() ? "chosen heap:" : "kernel heap:");
        ++failures;
    }
    if (!kernel.empty())
        return kernel;
    return chosen.empty() ? std::string() : "/dev/dma_heap/" + chosen;
}

/// `alloc --for @p devices`: what it says, and how many pages the CMA area @p cma gave out meanwhile.
void allocFor(const std::string& cli, const std::string& devices, uint64_t size, const std::string& cma) {
    const std::string successPath = kCmaSysfs + cma + "/alloc_pages_success";
    auto before = readNumber(successPath);
    int status = 0;
    std::string errors;
    std::string text = guest::run({cli, "alloc", "--host", "--for", devices, "--size", std::to_string(size), "--name",
                                   "board-" + std::to_string(size >> 10) + "k"},
                                  &status, &errors);
    auto after = readNumber(successPath);
    std::printf("board-alloc: %s size=%" PRIu64 " status=%d\n", devices.c_str(), size, status);
    // fd, inode and reason are left out: numbers of this run, and words that may change.
    for (const char* key : {"heap", "kernel heap", "size", "exporter", "name"})
        std::printf("board-alloc: %s %s: %s\n", devices.c_str(), key, field(text, key).c_str());
    for (const std::string& device : fields(text, "device"))
        std::printf("board-alloc: %s device: %s\n", devices.c_str(), device.c_str());
    if (before && after)
        std::printf("board-alloc: %s cma alloc_pages_success +%" PRIu64 "\n", devices.c_str(), *after - *before);
    else
        std::printf("board-alloc: %s %s unreadable\n", devices.c_str(), successPath.c_str());
    if (status != 0 || !before || !after) {
        std::printf("board-alloc: %s said:\n%s", devices.c_str(), status != 0 ? errors.c_str() : text.c_str());
        ++failures;
    }
}

std::string fdinfoField(int fd, const char* key) {
    return field(guest::readText("/proc/self/fdinfo/" + std::to_string(fd)), key);
}

/// Buffers from the kernel heaps explain chose, held by a child and found by `bufinfo --host`.
void hold(const std::string& cli, const std::string& cmaHeap, const std::string& systemHeap, const std::string& cma) {
    const std::string usedPath = kCmaDebugfs + cma + "/used";
    auto usedBefore = readNumber(usedPath);
    struct Held {
        const char* label;
        std::string heap;
        uint64_t size;
        guest::HeldBuffer buffer;
    };
    std::vector<Held> held = {{"cma", cmaHeap, kCmaBufferSize, {}}, {"system", systemHeap, kSystemBufferSize, {}}};
    std::vector<guest::HeldBuffer> buffers;
    for (Held& h : held) {
        int error = h.heap.empty()
                        ? ENOENT
                        : guest::allocateFromHeap(h.heap, h.size, (std::string("held-") + h.label).c_str(), &h.buffer);
        std::printf("board-hold-%s: %s size=%" PRIu64 " %s\n", h.label, h.heap.empty() ? "none" : h.heap.c_str(),
                    h.size, error == 0 ? "ok" : std::strerror(error));
        if (error != 0) {
            ++failures;
            continue;
        }
        std::printf("board-hold-%s-fdinfo: exp_name=%s size=%s\n", h.label,
                    fdinfoField(h.buffer.fd, "exp_name").c_str(), fdinfoField(h.buffer.fd, "size").c_str());
        buffers.push_back(h.buffer);
    }
    auto usedHeld = readNumber(usedPath);
    if (usedBefore && usedHeld)
        std::printf("board-hold-cma-used: +%" PRId64 " pages\n", static_cast<int64_t>(*usedHeld - *usedBefore));

    int release = -1;
    pid_t child = guest::startHolder(buffers, kChildComm, "board-hold", &release);
    for (const guest::HeldBuffer& b : buffers)
        ::close(b.fd); // the child alone holds them now

    json report = runJson(cli, {"bufinfo", "--host"}, "board-bufinfo");
    for (const Held& h : held) {
        if (h.buffer.fd < 0)
            continue;
        const json* b = guest::findBuffer(report, h.buffer.inode);
        if (!b) {
            std::printf("board-bufinfo-%s: missing\n", h.label);
            ++failures;
            continue;
        }
        std::printf("board-bufinfo-%s: exporter=%s size=%" PRIu64 " name=%s holders: %s\n", h.label,
                    str((*b)["exporter"]).c_str(), (*b)["size"].get<uint64_t>(), str((*b)["name"]).c_str(),
                    guest::describeHolders(*b, child).c_str());
    }
    for (const json& p : report["processes"])
        if (p["pid"] == child)
            std::printf("board-bufinfo-child: comm=%s buffers=%d bytes=%" PRIu64 "\n", str(p["comm"]).c_str(),
                        p["buffers"].get<int>(), p["bytes"].get<uint64_t>());

    ::close(release);
    ::waitpid(child, nullptr, 0);
    // The pages go back to the CMA area at once in debugfs `used` (not in CmaFree: per-CPU lists).
    auto usedAfter = readNumber(usedPath);
    if (usedBefore && usedAfter)
        std::printf("board-hold-cma-released: used %s\n", *usedAfter == *usedBefore ? "back to before" : "differs");
    failures += !usedBefore || !usedHeld || !usedAfter || *usedAfter != *usedBefore;
}

} // namespace

int main(int argc, char** argv) {
    const std::optional<std::string> cliPath = cenalloc::guest::cliArgument(argc, argv);
    if (!cliPath)
        return 2;
    const std::string& cli = *cliPath;

    json platform = runJson(cli, {"platform", "show", "--host"}, "board-platform");
    checkDevices(platform);
    std::string cma = checkCma(platform);
    listDmaHeaps();
    listHeaps(runJson(cli, {"heaps", "--host"}, "board-heaps"));

    const std::string displayGpu = std::string(kDisplay) + "," + kGpu;
    const std::string gpuUsb = std::string(kGpu) + "," + kUsb;
    std::string cmaHeap = explain(cli, displayGpu);
    std::string systemHeap = explain(cli, gpuUsb);

    allocFor(cli, displayGpu, kCmaBufferSize, cma);
    allocFor(cli, gpuUsb, kSystemBufferSize, cma);

    hold(cli, cmaHeap, systemHeap, cma);
    std::printf("board-summary: done\n");
    return failures == 0 ? 0 : 1;
}
