// SPDX-License-Identifier: MIT
// The YAML reader every loader uses: yaml-cpp behind typed, checked accessors with "<file>:<line>: ..." errors.
#include "platform/yaml_reader.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <cenalloc/units.h>

namespace cenalloc::yaml {

struct Node::Data {
    std::shared_ptr<const std::string> source;
    YAML::Node value;
    /// For a mapping's value: its key, which carries the line an empty value is reported at.
    std::optional<YAML::Node> key;
};

namespace {

std::string_view trim(std::string_view s) {
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (!s.empty() && space(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && space(s.back()))
        s.remove_suffix(1);
    return s;
}

// The 1-based line of a mark, 0 when it has none.
int lineOf(const YAML::Mark& mark) {
    return mark.is_null() || mark.line < 0 ? 0 : mark.line + 1;
}

// "<source>:<line>: <message>", or "<source>: <message>" when the line is unknown.
Error located(const std::string& source, int line, std::string_view message) {
    if (line == 0)
        return Error(EINVAL, fmt::format("{}: {}", source, message));
    return Error(EINVAL, fmt::format("{}:{}: {}", source, line, message));
}

} // namespace

bool Node::isNull() const {
    return !data_->value.IsDefined() || data_->value.IsNull();
}

bool Node::isScalar() const {
    return data_->value.IsScalar();
}

bool Node::isList() const {
    return data_->value.IsSequence();
}

bool Node::isMap() const {
    return data_->value.IsMap();
}

const std::string& Node::text() const {
    static const std::string none;
    return isScalar() ? data_->value.Scalar() : none;
}

const char* Node::kind() const {
    switch (data_->value.Type()) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Undefined: break;
    }
    return "an undefined node";
}

int Node::line() const {
    // A value on its own line ("key:\n  - ...") is best reported where it is; an empty one, at its key.
    return lineOf(data_->key && isNull() ? data_->key->Mark() : data_->value.Mark());
}

size_t Node::offset() const {
    YAML::Mark mark = data_->key ? data_->key->Mark() : data_->value.Mark();
    return mark.is_null() || mark.pos < 0 ? 0 : static_cast<size_t>(mark.pos);
}

Node Node::named(std::string name) const {
    return Node(data_, std::move(name));
}

Error Node::error(std::string_view problem) const {
    if (name_.empty())
        return errorHere(problem);
    return errorHere(fmt::format("{}: {}", name_, problem));
}

Error Node::errorHere(std::string_view message) const {
    return located(*data_->source, line(), message);
}

Error Node::notScalar() const {
    return error(fmt::format("expected a scalar, got {}", kind()));
}

std::string Node::keyName(std::string_view key) const {
    if (root_ || name_.empty())
        return std::string(key);
    return fmt::format("{}: {}", name_, key);
}

Result<std::vector<Node>> Node::items(std::string_view expected, IfNull ifNull) const {
    std::vector<Node> out;
    if (isNull() && ifNull == IfNull::Empty)
        return out;
    if (!isList())
        return error(fmt::format("expected {}, got {}", expected, kind()));
    size_t index = 0;
    for (auto it = data_->value.begin(); it != data_->value.end(); ++it, ++index)
        out.push_back(Node(std::make_shared<const Data>(Data{data_->source, *it, std::nullopt}),
                           fmt::format("{}[{}]", name_, index)));
    return out;
}

Result<Map> Node::map(std::span<const std::string_view> allowed) const {
    if (!isMap())
        return error(fmt::format("expected a mapping, got {}", kind()));
    Map m(*this);
    for (auto it = data_->value.begin(); it != data_->value.end(); ++it) {
        // Copies: it-> yields a proxy that dies at the end of the expression.
        YAML::Node key = it->first;
        YAML::Node value = it->second;
        if (!key.IsScalar()) {
            Node k(std::make_shared<const Data>(Data{data_->source, key, std::nullopt}), name_);
            return k.error(fmt::format("a key must be a plain word, got {}", k.kind()));
        }
        const std::string& name = key.Scalar();
        if (std::find(allowed.begin(), allowed.end(), name) == allowed.end())
            return located(
                *data_->source, lineOf(key.Mark()),
                fmt::format("{}: unknown key '{}' (allowed keys: {})", name_, name, fmt::join(allowed, ", ")));
        // yaml-cpp keeps both copies of a repeated key; which one wins would be an accident of its
        // implementation, so refuse.
        if (m.field(name))
            return located(*data_->source, lineOf(key.Mark()), fmt::format("{}: key '{}' is given twice", name_, name));
        m.fields_.push_back({name, Node(std::make_shared<const Data>(Data{data_->source, value, key}), keyName(name))});
    }
    return m;
}

std::optional<Node> Node::peek(std::string_view key) const {
    if (!isMap())
        return std::nullopt;
    for (auto it = data_->value.begin(); it != data_->value.end(); ++it) {
        YAML::Node k = it->first;
        if (k.IsScalar() && k.Scalar() == key)
            return Node(std::make_shared<const Data>(Data{data_->source, it->second, k}), keyName(key));
    }
    return std::nullopt;
}

const Map::Field* Map::field(std::string_view key) const {
    auto it = std::find_if(fields_.begin(), fields_.end(), [&](const Field& f) { return f.key == key; });
    return it == fields_.end() ? nullptr : &*it;
}

bool Map::has(std::string_view key) const {
    return field(key) != nullptr;
}

std::optional<Node> Map::find(std::string_view key) const {
    const Field* f = field(key);
    return f ? std::optional<Node>(f->value) : std::nullopt;
}

Result<void> Map::require(std::initializer_list<std::string_view> keys) const {
    for (std::string_view k : keys)
        if (!has(k))
            return error(fmt::format("missing required key '{}'", k));
    return {};
}

Result<std::vector<Node>> Map::items(std::string_view key, std::string_view expected, IfNull ifNull) const {
    const Field* f = field(key);
    if (!f)
        return std::vector<Node>();
    return f->value.items(expected, ifNull);
}

Map Map::named(std::string name) const {
    Map m(node_.named(std::move(name)));
    for (const Field& f : fields_)
        m.fields_.push_back({f.key, f.value.named(m.node_.keyName(f.key))});
    return m;
}

std::string_view Map::later(std::string_view a, std::string_view b) const {
    return field(a)->value.offset() > field(b)->value.offset() ? a : b;
}

Error Map::errorAt(std::string_view key, std::string_view problem) const {
    return field(key)->value.errorHere(fmt::format("{}: {}", name(), problem));
}

Result<Node> parse(std::string_view text, std::string_view source, std::string_view rootName, std::string_view noun) {
    auto name = std::make_shared<const std::string>(source);
    std::vector<YAML::Node> documents;
    // yaml-cpp reports errors by throwing; this is where they become Results (Node's accessors do not throw).
    try {
        documents = YAML::LoadAll(std::string(text));
    } catch (const YAML::ParserException& e) {
        return located(*name, lineOf(e.mark), fmt::format("yaml syntax error: {}", e.msg));
    } catch (const YAML::Exception& e) {
        return Error(EINVAL, fmt::format("{}: cannot read {}: {}", source, noun, e.what()));
    }
    // A stray "---" at the end is harmless; a second document is not.
    for (size_t i = 1; i < documents.size(); ++i)
        if (!documents[i].IsNull())
            return located(*name, lineOf(documents[i].Mark()),
                           fmt::format("{} is one yaml document, found another here", noun));
    YAML::Node root = documents.empty() ? YAML::Node() : documents.front();
    return Node(std::make_shared<const Node::Data>(Node::Data{name, root, std::nullopt}), std::string(rootName), true);
}

Result<std::string> text(std::string_view s) {
    return std::string(s);
}

Result<uint64_t> number(std::string_view text) {
    std::string_view s = trim(text);
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s.remove_prefix(2);
    }
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value, base);
    if (ec == std::errc::result_out_of_range)
        return Error(ERANGE, fmt::format("'{}' does not fit in 64 bits", text));
    if (ec != std::errc() || end != s.data() + s.size() || s.empty())
        return Error(EINVAL, fmt::format("'{}' is not a number (expected e.g. 32 or 0xffffffff)", text));
    return value;
}

Result<uint64_t> size(std::string_view s) {
    return parseSize(s);
}

Result<bool> boolean(std::string_view text) {
    std::string lower;
    for (char c : trim(text))
        lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "true" || lower == "yes" || lower == "on")
        return true;
    if (lower == "false" || lower == "no" || lower == "off")
        return false;
    return Error(EINVAL, fmt::format("'{}' is not a boolean (expected true or false)", text));
}

Result<bool> yaml11Boolean(std::string_view text) {
    bool value = false;
    if (YAML::convert<bool>::decode(YAML::Node(std::string(text)), value))
        return value;
    return Error(EINVAL, fmt::format("'{}' is not true or false", text));
}

} // namespace cenalloc::yaml
