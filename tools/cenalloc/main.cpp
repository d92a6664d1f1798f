// SPDX-License-Identifier: MIT
// cenalloc: the command-line tool. Parses arguments and calls the library.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <cenalloc/context.h>
#include <cenalloc/explain.h>
#include <cenalloc/platform_sources.h>
#include <cenalloc/report.h>
#include <cenalloc/session.h>
#include <cenalloc/session_choice.h>
#include <cenalloc/units.h>

#include "tools/cenalloc/demo.h"
#include "tools/cenalloc/explain_buffer.h"

namespace {

using cenalloc::Error;
using cenalloc::ReportFormat;
using cenalloc::ReportOptions;

constexpr int kExitError = 1;
constexpr int kExitUnsatisfiable = 2;

int fail(const Error& error) {
    // A daemon's message may quote what a client sent.
    std::cerr << "cenalloc: " << cenalloc::printableText(error.toString()) << "\n";
    return kExitError;
}

// What the platform loader noted (device tree warnings, what --host could
// and could not learn): under "notes" in JSON objects, on stderr otherwise.
std::vector<std::string> notes;

void printNotes() {
    for (const std::string& note : notes)
        std::cerr << "cenalloc: note: " << note << "\n";
}

// How to write the command's report: JSON carries the notes, text leaves
// them to printNotes().
ReportOptions reportOptions(bool json) {
    if (!json)
        return {};
    return {ReportFormat::Json, notes};
}

// When the command line was refused because an option of a subcommand
// came before the subcommand (cenalloc --heap system alloc), a message
// saying so; empty otherwise. CLI11 itself would report the option as not
// expected, or as missing from the subcommand.
std::string misplacedOption(const CLI::App& app) {
    for (const std::string& word : app.remaining()) {
        if (!word.starts_with("-"))
            continue;
        const std::string name = word.substr(0, word.find('='));
        std::vector<std::string> owners;
        std::vector<const CLI::App*> commands = {&app};
        for (size_t i = 0; i < commands.size(); ++i)
            for (const CLI::App* sub : commands[i]->get_subcommands({})) {
                commands.push_back(sub);
                if (sub->get_option_no_throw(name) != nullptr)
                    owners.push_back((commands[i] == &app ? "" : commands[i]->get_name() + " ") + sub->get_name());
            }
        if (owners.empty())
            return {};
        std::string list;
        for (size_t i = 0; i < owners.size(); ++i)
            list += (i == 0 ? "'" : i + 1 == owners.size() ? " and '" : ", '") + owners[i] + "'";
        return name + " is an option of " + list + ": give it after the subcommand ('cenalloc " + owners.front() + " " +
               name + " ...'); only the options every command takes (see cenalloc --help) may come before it";
    }
    return {};
}

// --size and --cpu-access, each error saying which option it is about.
struct SizeAndCpu {
    uint64_t size;
    cenalloc::CpuAccess cpu;
};
cenalloc::Result<SizeAndCpu> parseSizeAndCpu(const std::string& sizeText, const std::string& cpuText) {
    auto size = cenalloc::parseSize(sizeText);
    if (!size)
        return size.error().withContext("--size");
    auto cpu = cenalloc::parseCpuAccess(cpuText);
    if (!cpu)
        return cpu.error().withContext("--cpu-access");
    return SizeAndCpu{*size, *cpu};
}

// The platform for an in-process command, its loader's notes said as
// printNotes() says them (JSON reports carry them instead).
cenalloc::Result<cenalloc::Platform> loadPlatform(const cenalloc::PlatformSource& source, bool json) {
    auto platform = cenalloc::loadPlatformSource(source, &notes);
    if (!json || !platform)
        printNotes();
    return platform;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"cenalloc: constraint-aware device-memory allocation and sharing"};
    app.require_subcommand(1);
    app.footer("--platform, --dtb, --overlay, --host, --json and --socket may come before the subcommand or after "
               "it:\n  cenalloc --socket /run/cenalloc/cenalloc.sock heaps --json");
    cenalloc::PlatformSource source;
    bool json = false;
    auto addCommon = [&](CLI::App* cmd) {
        cmd->add_option("--platform", source.yamlPath, "platform description (YAML); default: the built-in one")
            ->check(CLI::ExistingFile);
        cmd->add_option("--dtb", source.dtbPath, "a flattened device tree (.dtb) instead")->check(CLI::ExistingFile);
        cmd->add_option("--overlay", source.overlayPath, "board overlay (YAML) for --dtb or --host")
            ->check(CLI::ExistingFile);
        cmd->add_flag("--host", source.host, "the running host (/sys, /proc, /dev) instead");
        cmd->add_flag("--json", json, "machine-readable output");
    };

    // Options every command takes are accepted before the subcommand too
    // (cenalloc --socket S heaps), as git's and systemctl's are; each
    // subcommand still lists them, so they go after it as well.
    addCommon(&app);

    CLI::App* platformCmd = app.add_subcommand("platform", "the platform model");
    platformCmd->require_subcommand(1);
    CLI::App* showCmd = platformCmd->add_subcommand("show", "show the validated platform model");
    addCommon(showCmd);

    std::string socketPath;
    auto addSocket = [&](CLI::App* cmd) {
        cmd->add_option("--socket", socketPath,
                        "talk to cenallocd at this socket (default: the daemon when one "
                        "answers at the default socket, else in-process)");
    };
    addSocket(&app);

    CLI::App* heapsCmd = app.add_subcommand("heaps", "heaps with their properties and statistics");
    addCommon(heapsCmd);
    addSocket(heapsCmd);

    CLI::App* allocCmd = app.add_subcommand("alloc", "allocate a buffer from a heap and show it");
    addCommon(allocCmd);
    addSocket(allocCmd);
    std::string heapName;
    std::string allocSizeText;
    std::string bufferName;
    std::vector<std::string> allocFor;
    std::string allocCpuText = "rare";
    auto* heapOpt = allocCmd->add_option("--heap", heapName, "heap to allocate from");
    auto* forOpt = allocCmd
                       ->add_option("--for", allocFor,
                                    "devices sharing the buffer (DEV1,DEV2,...): allocate from the best heap for "
                                    "them (on --host, or through a cenallocd placed on the host, a real dma-buf "
                                    "from the host kernel's heap)")
                       ->delimiter(',');
    heapOpt->excludes(forOpt);
    allocCmd->add_option("--size", allocSizeText, "length (4096, 0x1000, 64K, 8M, ...)")->required();
    allocCmd->add_option("--name", bufferName, "buffer name (at most 31 bytes)");
    allocCmd->add_option("--cpu-access", allocCpuText, "with --for: how often the cpu touches it: none, rare, often")
        ->capture_default_str();

    CLI::App* bufinfoCmd = app.add_subcommand(
        "bufinfo", "live buffers, their attachments and mappings (--host: every dma-buf of the host, who holds it)");
    addCommon(bufinfoCmd);
    addSocket(bufinfoCmd);

    CLI::App* statsCmd = app.add_subcommand("stats", "heap, IOMMU and lifetime statistics");
    addCommon(statsCmd);
    addSocket(statsCmd);
    bool resetWatermark = false;
    statsCmd->add_flag("--reset-watermark", resetWatermark, "reset every heap's high-water mark first");

    CLI::App* demoCmd = app.add_subcommand("demo", "run the in-process demo scenario");
    addCommon(demoCmd);

    CLI::App* explainCmd = app.add_subcommand("explain", "which heap serves a set of devices, and who allocates");
    addCommon(explainCmd);
    addSocket(explainCmd);
    std::vector<std::string> devices;
    std::string sizeText = "4M";
    std::string cpuText = "rare";
    explainCmd->add_option("--devices", devices, "devices sharing the buffer")->required()->delimiter(',');
    explainCmd->add_option("--size", sizeText, "buffer size (4096, 0x1000, 64K, 8M, ...)")->capture_default_str();
    explainCmd->add_option("--cpu-access", cpuText, "how often the cpu touches it: none, rare, often")
        ->capture_default_str();
    std::vector<std::string> mappedBy;
    explainCmd
        ->add_option("--mapped-by", mappedBy,
                     "forecast against a buffer these devices mapped first, in-process: "
                     "DEVICE[:static|dynamic|pinned],...; each of --devices is forecast alone")
        ->delimiter(',');

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (std::string misplaced = misplacedOption(app); !misplaced.empty()) {
            std::cerr << "cenalloc: " << misplaced << "\n";
            return static_cast<int>(CLI::ExitCodes::ExtrasError);
        }
        return app.exit(e);
    }
    // --socket before the subcommand was accepted for any of them.
    if (app.count("--socket") && (showCmd->parsed() || demoCmd->parsed())) {
        std::cerr << "cenalloc: --socket applies to heaps, alloc, bufinfo, stats and explain, not to "
                  << (demoCmd->parsed() ? "demo" : "platform show") << "\n";
        return static_cast<int>(CLI::ExitCodes::ExtrasError);
    }

    // bufinfo --host: every dma-buf on the running system and the processes
    // holding it, read from /proc and /sys rather than asked of a session.
    if (bufinfoCmd->parsed() && source.host) {
        if (!socketPath.empty())
            return fail(Error(EINVAL, "bufinfo --host reads /proc and /sys: --socket does not apply"));
        auto report = cenalloc::reportHostDmaBufs(reportOptions(json));
        if (!report)
            return fail(report.error());
        std::cout << *report;
        return 0;
    }

    // explain --mapped-by: what attaching each device would do to a buffer
    // the importers mapped first (Buffer::forecastAttach), in-process.
    if (explainCmd->parsed() && !mappedBy.empty()) {
        if (!socketPath.empty())
            return fail(Error(EINVAL, "explain --mapped-by runs in-process: --socket does not apply"));
        std::vector<cenalloc::cli::MappedImporter> importers;
        for (const std::string& spec : mappedBy) {
            auto importer = cenalloc::cli::parseMappedImporter(spec);
            if (!importer)
                return fail(importer.error().withContext("--mapped-by"));
            importers.push_back(std::move(*importer));
        }
        auto args = parseSizeAndCpu(sizeText, cpuText);
        if (!args)
            return fail(args.error());
        auto platform = loadPlatform(source, json);
        if (!platform)
            return fail(platform.error());
        auto report = cenalloc::cli::explainAgainstBuffer(*platform, importers, devices, args->size, args->cpu,
                                                          reportOptions(json));
        if (!report)
            return fail(report.error());
        std::cout << report->output;
        return report->attachable ? 0 : kExitUnsatisfiable;
    }

    if (allocCmd->parsed() && allocFor.empty() && heapName.empty()) {
        std::cerr << "cenalloc: alloc needs --heap HEAP or --for DEV1,DEV2,...\n";
        return static_cast<int>(CLI::ExitCodes::RequiredError);
    }

    // alloc --for: the best heap for the devices. On a platform given here,
    // in-process (the host's kernel heaps are this process's to open);
    // otherwise in the session the other commands use: cenallocd (op
    // alloc-for) when --socket names one or one answers at the default
    // socket, else in-process on the built-in platform.
    if (allocCmd->parsed() && !allocFor.empty()) {
        auto args = parseSizeAndCpu(allocSizeText, allocCpuText);
        if (!args)
            return fail(args.error());
        auto request = cenalloc::AllocForRequest::make(allocFor, args->size, bufferName, args->cpu);
        if (!request)
            return fail(request.error());
        // The buffer (and its fd) lives until the report is printed.
        auto print = [&](const auto& allocated) {
            if (!allocated)
                return fail(allocated.error());
            auto report = cenalloc::reportAllocatedFor(*allocated, reportOptions(json));
            if (!report)
                return fail(report.error());
            std::cout << *report << std::flush;
            return 0;
        };
        if (!socketPath.empty() || !source.given()) {
            auto session = cenalloc::openSession({socketPath, source}, &notes);
            if (!json || !session)
                printNotes();
            if (!session)
                return fail(session.error());
            return print((*session)->allocateFor(*request));
        }
        auto platform = loadPlatform(source, json);
        if (!platform)
            return fail(platform.error());
        auto context = cenalloc::Context::create(*platform);
        if (!context)
            return fail(context.error());
        for (const std::string& problem : (*context)->kernelHeapProblems())
            std::cerr << "cenalloc: note: kernel heap left out: " << cenalloc::printableText(problem) << "\n";
        return print((*context)->allocateFor(*request));
    }

    // Commands about buffers and heaps run in a session: the daemon's when
    // one answers (or --socket names one), else in-process.
    if (heapsCmd->parsed() || allocCmd->parsed() || bufinfoCmd->parsed() || statsCmd->parsed() ||
        explainCmd->parsed()) {
        auto session = cenalloc::openSession({socketPath, source}, &notes);
        if (!json || !session)
            printNotes();
        if (!session)
            return fail(session.error());
        cenalloc::Session& s = **session;
        const ReportOptions options = reportOptions(json);

        if (heapsCmd->parsed()) {
            auto heaps = s.heaps();
            if (!heaps)
                return fail(heaps.error());
            std::cout << cenalloc::reportHeaps(s.describe(), *heaps, options);
            return 0;
        }
        if (allocCmd->parsed()) {
            auto size = cenalloc::parseSize(allocSizeText);
            if (!size)
                return fail(size.error().withContext("--size"));
            auto fd = s.allocate(heapName, *size);
            if (!fd)
                return fail(fd.error());
            if (!bufferName.empty())
                if (auto named = s.setName(*fd, bufferName); !named)
                    return fail(named.error());
            auto info = cenalloc::describeBuffer(s, *fd);
            if (!info)
                return fail(info.error());
            std::cout << cenalloc::reportBuffer(*info, options);
            return 0;
        }
        if (bufinfoCmd->parsed()) {
            auto buffers = s.bufinfo();
            if (!buffers)
                return fail(buffers.error());
            std::cout << cenalloc::reportBuffers(*buffers, options);
            return 0;
        }
        if (statsCmd->parsed()) {
            auto stats = s.stats(resetWatermark);
            if (!stats)
                return fail(stats.error());
            std::cout << cenalloc::reportStats(s.describe(), *stats, options);
            return 0;
        }
        auto args = parseSizeAndCpu(sizeText, cpuText);
        if (!args)
            return fail(args.error());
        auto explanation = s.explain(devices, args->size, args->cpu);
        if (!explanation)
            return fail(explanation.error());
        std::cout << cenalloc::reportExplanation(*explanation, options);
        return explanation->satisfiable ? 0 : kExitUnsatisfiable;
    }

    auto platform = loadPlatform(source, json);
    if (!platform)
        return fail(platform.error());

    const ReportOptions options = reportOptions(json);
    if (showCmd->parsed()) {
        std::cout << cenalloc::reportPlatform(*platform, options);
        return 0;
    }
    if (demoCmd->parsed()) {
        auto report = cenalloc::cli::runDemo(*platform, options);
        if (!report)
            return fail(report.error());
        std::cout << report->output;
        return report->ok ? 0 : kExitError;
    }
    return 0;
}
