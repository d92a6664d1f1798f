// SPDX-License-Identifier: MIT
// The demo's narrative and checks, in text and JSON, and what its scenarios keep alive until the release step.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cenalloc/buffer.h>

namespace cenalloc::cli {

/// Collects the demo's narrative and checks, in text and JSON.
class Narrator {
public:
    void section(const std::string& title) {
        text_ += fmt::format("\n== {}\n", title);
        current_ = title;
    }
    void say(const std::string& line) {
        text_ += "  " + line + "\n";
        steps_.push_back({{"section", current_}, {"note", line}});
    }
    void check(bool ok, const std::string& what) {
        text_ += fmt::format("  [{}] {}\n", ok ? "ok" : "FAIL", what);
        steps_.push_back({{"section", current_}, {"check", what}, {"ok", ok}});
        ok_ = ok_ && ok;
    }
    void raw(const std::string& block) { text_ += block; }
    std::string& text() { return text_; }
    nlohmann::json& steps() { return steps_; }
    bool ok() const { return ok_; }

private:
    std::string text_;
    std::string current_;
    nlohmann::json steps_ = nlohmann::json::array();
    bool ok_ = true;
};

/// What the scenarios leave alive for the bufinfo step; cleared in the
/// order a user must release them (mappings, attachments, buffers).
struct Live {
    std::vector<Attachment::Mapping> mappings;
    std::vector<Attachment> attachments;
    std::vector<std::shared_ptr<Buffer>> buffers;
    void clear() {
        mappings.clear();
        attachments.clear();
        buffers.clear();
    }
};

} // namespace cenalloc::cli
