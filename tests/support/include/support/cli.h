// SPDX-License-Identifier: MIT
// The cenalloc CLI run as a user runs it: a real process, its exit code and its output.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "support/process.h"

namespace cenalloc::test {

struct CliRun {
    int exitCode = -1;
    /// What @p output of cli() chose: by default stdout and stderr in the
    /// order written, as a terminal shows them.
    std::string out;
};

/// Run the cenalloc CLI the build made with @p args: words separated by
/// spaces, passed as they are (no shell: no quoting, no globbing). Bounded:
/// a CLI still running after kPatience is killed and the test fails.
CliRun cli(std::string_view args, Output output = Output::Merged);
/// The same with the arguments one by one (for an argument with spaces).
CliRun cli(const std::vector<std::string>& args, Output output = Output::Merged);

/// @p text split at runs of spaces.
std::vector<std::string> splitWords(std::string_view text);

} // namespace cenalloc::test
