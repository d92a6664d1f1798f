// SPDX-License-Identifier: MIT
// cenalloc: the command-line tool. Parses arguments and calls the library.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <cenalloc/context.h>
#include <cenalloc/platform_sources.h>
#include <cenalloc/units.h>

#include "report/report.h"

namespace {

using cenalloc::Error;
using cenalloc::Platform;
using cenalloc::Result;

constexpr int kExitError = 1;
constexpr int kExitUnsatisfiable = 2;

int fail(const Error& error) {
    std::cerr << "cenalloc: " << error.toString() << "\n";
    return kExitError;
}

// What the platform loader noted (device tree warnings, what --host could
// and could not learn): under "notes" in JSON objects, on stderr otherwise.
std::vector<std::string> notes;

void printNotes() {
    for (const std::string& note : notes)
        std::cerr << "cenalloc: note: " << note << "\n";
}

void print(nlohmann::json j) {
    if (!notes.empty() && j.is_object())
        j["notes"] = notes;
    else
        printNotes();
    std::cout << j.dump(2) << "\n";
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

    CLI::App* heapsCmd = app.add_subcommand("heaps", "heaps with their properties and statistics");
    addCommon(heapsCmd);

    CLI::App* demoCmd = app.add_subcommand("demo", "run the in-process demo scenario");
    addCommon(demoCmd);

    CLI::App* explainCmd = app.add_subcommand("explain", "which heap serves a set of devices, and who allocates");
    addCommon(explainCmd);
    std::vector<std::string> devices;
    std::string sizeText = "4M";
    std::string cpuText = "rare";
    explainCmd->add_option("--devices", devices, "devices sharing the buffer")->required()->delimiter(',');
    explainCmd->add_option("--size", sizeText, "buffer size (4096, 0x1000, 64K, 8M, ...)")->capture_default_str();
    explainCmd->add_option("--cpu-access", cpuText, "how often the cpu touches it: none, rare, often")
        ->capture_default_str();

    CLI11_PARSE(app, argc, argv);

    auto platform = cenalloc::loadPlatformSource(source, &notes);
    if (!json || !platform)
        printNotes();
    if (!platform)
        return fail(platform.error());

    if (showCmd->parsed()) {
        if (json)
            print(cenalloc::platformJson(*platform));
        else
            std::cout << cenalloc::renderPlatform(*platform);
        return 0;
    }
    if (heapsCmd->parsed()) {
        auto context = cenalloc::Context::create(*platform);
        if (!context)
            return fail(context.error());
        if (json)
            print(cenalloc::heapsJson(**context));
        else
            std::cout << cenalloc::renderHeaps(**context);
        return 0;
    }
    if (demoCmd->parsed()) {
        auto report = cenalloc::runDemo(*platform);
        if (!report)
            return fail(report.error());
        if (json)
            print(report->json);
        else
            std::cout << report->text;
        return report->ok ? 0 : kExitError;
    }
    if (explainCmd->parsed()) {
        auto size = cenalloc::parseSize(sizeText);
        if (!size)
            return fail(size.error().withContext("--size"));
        auto cpu = cenalloc::parseCpuAccess(cpuText);
        if (!cpu)
            return fail(cpu.error().withContext("--cpu-access"));
        auto context = cenalloc::Context::create(*platform);
        if (!context)
            return fail(context.error());
        auto explanation = (*context)->explain(devices, *size, *cpu);
        if (!explanation)
            return fail(explanation.error());
        if (json)
            print(cenalloc::explanationJson(*explanation));
        else
            std::cout << cenalloc::renderExplanation(*explanation);
        return explanation->satisfiable ? 0 : kExitUnsatisfiable;
    }
    return 0;
}
