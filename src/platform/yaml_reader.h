// SPDX-License-Identifier: MIT
// Reading YAML files against a schema: typed scalars, lists and mappings, "<file>:<line>: <key>: <problem>" errors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <cenalloc/result.h>

#include "base/try.h"

/// What every YAML loader of cenalloc (platform descriptions, board overlays, the daemon's configuration) reads
/// its file with. yaml-cpp stays behind it: its exceptions become Results at parse(), and its nodes are reached
/// only through Node, whose accessors never throw.
///
/// Every error is EINVAL with a message "<source>:<line>: <name>: <problem>": the line of the node (for a
/// mapping's value that is empty, "key:", its key's line) and the node's name, which is the path to it from the
/// root ("quota: bytes", "heaps[0]: allow_uids[2]") or what a reader called it ("device 'cam'"). The root is named
/// for what the file is ("configuration") in errors about the root itself, but its keys are named by themselves
/// ("workers", not "configuration: workers").
namespace cenalloc::yaml {

class Map;

/// What a list that is present but empty ("regions:" with every entry commented out) means.
enum class IfNull {
    Empty, ///< no items
    Error, ///< an error: "expected a list, got nothing"
};

/// A node of a parsed document and its name. A cheap handle: copies share the document.
class Node {
public:
    bool isNull() const;
    bool isScalar() const;
    bool isList() const;
    bool isMap() const;
    /// The text of a scalar; empty for any other node.
    const std::string& text() const;
    /// What the node is, for messages: "nothing", "a scalar", "a list", "a mapping".
    const char* kind() const;
    /// The 1-based line the node is on (an empty value's: its key's), 0 when unknown.
    int line() const;
    /// The offset in the text of the node (a mapping's value: its key), to tell which of two comes first.
    size_t offset() const;
    const std::string& name() const { return name_; }
    /// The same node under another name (its keys and items are then named after it).
    Node named(std::string name) const;

    /// "<source>:<line>: <name>: <problem>" (without "<name>: " for an unnamed node).
    Error error(std::string_view problem) const;
    /// "<source>:<line>: <message>", for a message that names what it is about itself.
    Error errorHere(std::string_view message) const;

    /// The scalar converted by @p convert, a callable taking the text (std::string_view) and returning a
    /// Result<T> whose error message is the problem ("'x' is not a number").
    /// Errors: "expected a scalar, got a list"; the conversion's problem.
    template <typename Convert> auto as(Convert&& convert) const -> decltype(convert(std::string_view()));
    /// The items of a list, named "<name>[<index>]". Errors: "expected @p expected, got a mapping".
    Result<std::vector<Node>> items(std::string_view expected = "a list", IfNull ifNull = IfNull::Empty) const;
    /// The node as a mapping whose keys must be among @p allowed. Errors: "expected a mapping, got a list", "a key
    /// must be a plain word, got a list", "unknown key 'x' (allowed keys: a, b)", "key 'x' is given twice".
    Result<Map> map(std::span<const std::string_view> allowed) const;
    Result<Map> map(std::initializer_list<std::string_view> allowed) const;
    /// The value of @p key when the node is a mapping that has it, unchecked: for naming an entry by one of its
    /// keys before map() checks it.
    std::optional<Node> peek(std::string_view key) const;

private:
    friend Result<Node> parse(std::string_view text, std::string_view source, std::string_view rootName,
                              std::string_view noun);
    friend class Map;
    struct Data;

    Node(std::shared_ptr<const Data> data, std::string name, bool root = false)
        : data_(std::move(data)), name_(std::move(name)), root_(root) {}
    /// The name of this node's value of @p key.
    std::string keyName(std::string_view key) const;
    Error notScalar() const;

    std::shared_ptr<const Data> data_;
    std::string name_;
    bool root_ = false; ///< the document's root: its keys are named by themselves
};

/// A mapping whose keys have been checked (Node::map()).
class Map {
public:
    const Node& node() const { return node_; }
    const std::string& name() const { return node_.name(); }
    bool has(std::string_view key) const;
    /// The value of @p key, named "<map>: <key>"; nullopt when the key is absent.
    std::optional<Node> find(std::string_view key) const;
    /// Errors: "<map>: missing required key 'x'" (at the mapping) for the first of @p keys that is absent.
    Result<void> require(std::initializer_list<std::string_view> keys) const;
    /// When @p key is present: its value converted by @p convert (see Node::as) into @p out, a T or a
    /// std::optional<T>. When it is absent, @p out keeps its value (the default).
    template <typename T, typename Convert> Result<void> read(std::string_view key, T& out, Convert&& convert) const;
    /// The items of the list @p key (Node::items); none when the key is absent.
    Result<std::vector<Node>> items(std::string_view key, std::string_view expected = "a list",
                                    IfNull ifNull = IfNull::Empty) const;
    /// The same mapping under another name, and its keys named after it.
    Map named(std::string name) const;
    /// Which of the present keys @p a and @p b comes later in the file (to blame it).
    std::string_view later(std::string_view a, std::string_view b) const;

    /// "<source>:<line>: <map>: <problem>" at the mapping.
    Error error(std::string_view problem) const { return node_.error(problem); }
    /// "<source>:<line>: <map>: <problem>" at the present key @p key, for a problem that names the key itself.
    Error errorAt(std::string_view key, std::string_view problem) const;

private:
    friend class Node;
    struct Field;

    explicit Map(Node node) : node_(std::move(node)) {}
    const Field* field(std::string_view key) const;

    Node node_;
    std::vector<Field> fields_;
};

/// Parse @p text, the contents of @p source (a file name, for messages), as one YAML document of the kind
/// @p noun says ("an overlay"), and return its root, named @p rootName ("overlay"). An empty text is a document
/// whose root is null. Errors: EINVAL "<source>:<line>: yaml syntax error: ...", "<source>:<line>: <noun> is one
/// yaml document, found another here".
Result<Node> parse(std::string_view text, std::string_view source, std::string_view rootName, std::string_view noun);

/// Conversions for Node::as and Map::read.
/// The text itself.
Result<std::string> text(std::string_view text);
/// A plain integer: decimal or 0x-hex, without a size suffix (so "4G" is refused, not read as 2^32).
Result<uint64_t> number(std::string_view text);
/// A size: a number with an optional K/M/G/T suffix (parseSize).
Result<uint64_t> size(std::string_view text);
/// true, yes, on / false, no, off, in any case.
Result<bool> boolean(std::string_view text);
/// YAML 1.1's booleans as yaml-cpp decodes them: y/yes/true/on and n/no/false/off, in lower, Capitalised or UPPER
/// case. The error is "'x' is not true or false".
Result<bool> yaml11Boolean(std::string_view text);

template <typename Convert> auto Node::as(Convert&& convert) const -> decltype(convert(std::string_view())) {
    if (!isScalar())
        return notScalar();
    auto value = convert(std::string_view(text()));
    if (!value)
        return error(value.error().message());
    return value;
}

inline Result<Map> Node::map(std::initializer_list<std::string_view> allowed) const {
    return map(std::span<const std::string_view>(allowed.begin(), allowed.size()));
}

struct Map::Field {
    std::string key;
    Node value;
};

template <typename T, typename Convert> Result<void> Map::read(std::string_view key, T& out, Convert&& convert) const {
    const Field* f = field(key);
    if (!f)
        return {};
    out = CENALLOC_TRY(f->value.as(convert));
    return {};
}

} // namespace cenalloc::yaml
