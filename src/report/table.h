// SPDX-License-Identifier: MIT
// Plain-text tables for people: aligned columns, a header rule.
#pragma once

#include <string>
#include <vector>

namespace cenalloc {

/// Collects rows and prints them with every column padded to its widest cell.
class TextTable {
public:
    explicit TextTable(std::vector<std::string> header) : header_(std::move(header)) {}
    /// A row; every cell is shown through printableText(), so that no cell
    /// can break the table or reach the terminal as a control sequence.
    void addRow(std::vector<std::string> row);
    /// The table, each line indented by @p indent spaces.
    std::string render(size_t indent = 2) const;

private:
    std::vector<std::string> header_;
    std::vector<std::vector<std::string>> rows_;
};

} // namespace cenalloc
