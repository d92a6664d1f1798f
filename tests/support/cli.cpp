// SPDX-License-Identifier: MIT
// The CLI runner: the cenalloc binary as a child process with its output collected.
#include "support/cli.h"

namespace cenalloc::test {

std::vector<std::string> splitWords(std::string_view text) {
    std::vector<std::string> words;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find(' ', start);
        if (end == std::string_view::npos)
            end = text.size();
        if (end > start)
            words.emplace_back(text.substr(start, end - start));
        start = end + 1;
    }
    return words;
}

CliRun cli(std::string_view args, Output output) {
    return cli(splitWords(args), output);
}

CliRun cli(const std::vector<std::string>& args, Output output) {
    std::vector<std::string> argv = {CENALLOC_CLI};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessOptions options;
    options.output = output;
    ProcessRun run = runProcess(argv, std::move(options));
    return {run.exitCode, run.out};
}

} // namespace cenalloc::test
