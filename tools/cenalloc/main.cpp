// SPDX-License-Identifier: MIT
// cenalloc: the command-line tool. Parses arguments and calls the library.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <cenalloc/explain.h>
#include <cenalloc/platform_sources.h>
#include <cenalloc/report.h>
#include <cenalloc/session.h>
#include <cenalloc/session_choice.h>
#include <cenalloc/units.h>

#include "demo.h"

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

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"cenalloc: constraint-aware device-memory allocation and sharing"};
    app.require_subcommand(1);
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

    CLI::App* heapsCmd = app.add_subcommand("heaps", "heaps with their properties and statistics");
    addCommon(heapsCmd);
    addSocket(heapsCmd);

    CLI::App* allocCmd = app.add_subcommand("alloc", "allocate a buffer from a heap and show it");
    addCommon(allocCmd);
    addSocket(allocCmd);
    std::string heapName;
    std::string allocSizeText;
    std::string bufferName;
    allocCmd->add_option("--heap", heapName, "heap to allocate from")->required();
    allocCmd->add_option("--size", allocSizeText, "length (4096, 0x1000, 64K, 8M, ...)")->required();
    allocCmd->add_option("--name", bufferName, "buffer name (at most 31 bytes)");

    CLI::App* bufinfoCmd = app.add_subcommand("bufinfo", "live buffers, their attachments and mappings");
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

    CLI11_PARSE(app, argc, argv);

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
        auto size = cenalloc::parseSize(sizeText);
        if (!size)
            return fail(size.error().withContext("--size"));
        auto cpu = cenalloc::parseCpuAccess(cpuText);
        if (!cpu)
            return fail(cpu.error().withContext("--cpu-access"));
        auto explanation = s.explain(devices, *size, *cpu);
        if (!explanation)
            return fail(explanation.error());
        std::cout << cenalloc::reportExplanation(*explanation, options);
        return explanation->satisfiable ? 0 : kExitUnsatisfiable;
    }

    auto platform = cenalloc::loadPlatformSource(source, &notes);
    if (!json || !platform)
        printNotes();
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
