// SPDX-License-Identifier: MIT
// TextTable rendering.
#include "report/table.h"

#include <algorithm>

#include "report/untrusted_text.h"

namespace cenalloc {

void TextTable::addRow(std::vector<std::string> row) {
    // A cell may hold bytes a peer chose (a buffer name): one line of
    // printable characters whatever they are.
    for (std::string& cell : row)
        cell = printableText(cell);
    rows_.push_back(std::move(row));
}

std::string TextTable::render(size_t indent) const {
    std::vector<size_t> width(header_.size(), 0);
    auto measure = [&](const std::vector<std::string>& row) {
        for (size_t i = 0; i < row.size() && i < width.size(); ++i)
            width[i] = std::max(width[i], row[i].size());
    };
    measure(header_);
    for (const auto& row : rows_)
        measure(row);
    std::string out;
    auto emit = [&](const std::vector<std::string>& row) {
        std::string line(indent, ' ');
        for (size_t i = 0; i < width.size(); ++i) {
            std::string cell = i < row.size() ? row[i] : std::string();
            line += cell;
            if (i + 1 < width.size())
                line += std::string(width[i] - cell.size() + 2, ' ');
        }
        while (!line.empty() && line.back() == ' ')
            line.pop_back();
        out += line + '\n';
    };
    emit(header_);
    std::vector<std::string> rule;
    for (size_t w : width)
        rule.push_back(std::string(w, '-'));
    emit(rule);
    for (const auto& row : rows_)
        emit(row);
    return out;
}

} // namespace cenalloc
