// SPDX-License-Identifier: MIT
// Tests of the YAML reader the loaders share: typed scalars, lists, mappings, names and "file:line: key: problem".
#include "platform/yaml_reader.h"

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <cenalloc/units.h>

namespace cenalloc {
namespace {

yaml::Node parsed(const std::string& text) {
    Result<yaml::Node> root = yaml::parse(text, "t.yaml", "settings", "a settings file");
    EXPECT_TRUE(root) << root.error().toString();
    return *root;
}

yaml::Map mapOf(const yaml::Node& node, std::initializer_list<std::string_view> allowed) {
    Result<yaml::Map> m = node.map(allowed);
    EXPECT_TRUE(m) << m.error().toString();
    return *m;
}

// The message of a failed Result, or a note that it did not fail.
template <typename T> std::string failure(const Result<T>& r) {
    if (r)
        return "(succeeded)";
    EXPECT_EQ(r.error().code(), EINVAL) << r.error().toString();
    return r.error().message();
}

TEST(YamlReader, ReadsTypedScalarsAndLeavesAbsentKeysAlone) {
    yaml::Map m = mapOf(parsed("count: 32\nmask: 0xffff\nsize: 64K\nflag: Yes\nname: cam\n"),
                        {"count", "mask", "size", "flag", "name", "absent"});
    uint64_t count = 0, mask = 0, size = 0, absent = 7;
    bool flag = false;
    std::optional<std::string> name;
    std::optional<uint64_t> optionalAbsent;
    ASSERT_TRUE(m.read("count", count, yaml::number));
    ASSERT_TRUE(m.read("mask", mask, yaml::number));
    ASSERT_TRUE(m.read("size", size, yaml::size));
    ASSERT_TRUE(m.read("flag", flag, yaml::boolean));
    ASSERT_TRUE(m.read("name", name, yaml::text));
    ASSERT_TRUE(m.read("absent", absent, yaml::number));
    ASSERT_TRUE(m.read("absent", optionalAbsent, yaml::number));
    EXPECT_EQ(count, 32u);
    EXPECT_EQ(mask, 0xffffu);
    EXPECT_EQ(size, 64 * KiB);
    EXPECT_TRUE(flag);
    EXPECT_EQ(name, std::optional<std::string>("cam"));
    EXPECT_EQ(absent, 7u) << "an absent key keeps the default";
    EXPECT_FALSE(optionalAbsent);
    EXPECT_TRUE(m.has("count"));
    EXPECT_FALSE(m.has("absent"));
}

TEST(YamlReader, ConversionErrorsNameTheFileLineAndKey) {
    yaml::Map m = mapOf(parsed("a: 1\nsize: 4G\nbig: 0x1ffffffffffffffff\nflag: maybe\nlist: [1]\nempty:\n"),
                        {"a", "size", "big", "flag", "list", "empty"});
    uint64_t n = 0;
    bool b = false;
    EXPECT_EQ(failure(m.read("size", n, yaml::number)),
              "t.yaml:2: size: '4G' is not a number (expected e.g. 32 or 0xffffffff)");
    EXPECT_EQ(failure(m.read("big", n, yaml::number)), "t.yaml:3: big: '0x1ffffffffffffffff' does not fit in 64 bits")
        << "EINVAL like every reading error, though the conversion said ERANGE";
    EXPECT_EQ(failure(m.read("flag", b, yaml::boolean)),
              "t.yaml:4: flag: 'maybe' is not a boolean (expected true or false)");
    EXPECT_EQ(failure(m.read("list", n, yaml::number)), "t.yaml:5: list: expected a scalar, got a list");
    EXPECT_EQ(failure(m.read("empty", n, yaml::number)), "t.yaml:6: empty: expected a scalar, got nothing")
        << "an empty value is reported at its key";
}

TEST(YamlReader, NamesNestedKeysListItemsAndRenamedEntries) {
    yaml::Node root = parsed("quota:\n  bytes: 12Q\nheaps:\n  - name: a\n    allow: [1, x]\n");
    yaml::Map top = mapOf(root, {"quota", "heaps"});
    yaml::Map quota = mapOf(*top.find("quota"), {"bytes"});
    uint64_t bytes = 0;
    std::string problem = failure(quota.read("bytes", bytes, yaml::size));
    EXPECT_EQ(problem.rfind("t.yaml:2: quota: bytes: ", 0), 0u) << problem;

    Result<std::vector<yaml::Node>> heaps = top.items("heaps");
    ASSERT_TRUE(heaps);
    ASSERT_EQ(heaps->size(), 1u);
    EXPECT_EQ((*heaps)[0].name(), "heaps[0]");
    yaml::Map heap = mapOf((*heaps)[0], {"name", "allow"});
    Result<std::vector<yaml::Node>> allow = heap.items("allow");
    ASSERT_TRUE(allow);
    ASSERT_EQ(allow->size(), 2u);
    EXPECT_EQ(failure((*allow)[1].as(yaml::number)),
              "t.yaml:5: heaps[0]: allow[1]: 'x' is not a number (expected e.g. 32 or 0xffffffff)");

    yaml::Map named = heap.named("heap 'a'");
    EXPECT_EQ(failure(named.find("allow")->as(yaml::number)),
              "t.yaml:5: heap 'a': allow: expected a scalar, got a list");
    EXPECT_EQ(failure(Result<void>(named.error("is odd"))), "t.yaml:4: heap 'a': is odd");
    EXPECT_EQ(failure(Result<void>(named.errorAt("allow", "allow is odd"))), "t.yaml:5: heap 'a': allow is odd");
    EXPECT_EQ(failure(Result<void>((*allow)[0].errorHere("a message that says it all"))),
              "t.yaml:5: a message that says it all");
    std::optional<yaml::Node> peeked = (*heaps)[0].peek("name");
    ASSERT_TRUE(peeked);
    EXPECT_EQ(peeked->text(), "a");
    EXPECT_FALSE((*heaps)[0].peek("nothing"));
}

TEST(YamlReader, MappingsRefuseUnknownRepeatedAndNonScalarKeys) {
    struct Case {
        const char* text;
        const char* message;
    };
    const Case cases[] = {
        {"a: 1\nb: 2\nc: 3\n", "t.yaml:3: settings: unknown key 'c' (allowed keys: a, b)"},
        {"a: 1\nb: 2\na: 3\n", "t.yaml:3: settings: key 'a' is given twice"},
        {"a: 1\n? [x, y]\n: 2\n", "t.yaml:2: settings: a key must be a plain word, got a list"},
        {"- a\n- b\n", "t.yaml:1: settings: expected a mapping, got a list"},
        {"a:\n  - 1\nb: {c: 1}\n", "t.yaml:3: b: unknown key 'c' (allowed keys: a, b)"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.text);
        yaml::Node root = parsed(c.text);
        Result<yaml::Map> m = root.map({"a", "b"});
        if (m && m->find("b"))
            m = m->find("b")->map({"a", "b"});
        EXPECT_EQ(failure(m), c.message);
    }
}

TEST(YamlReader, RequireNamesTheFirstMissingKeyAtTheMapping) {
    yaml::Node root = parsed("x: 1\nentry:\n  a: 1\n");
    yaml::Map entry = mapOf(*mapOf(root, {"x", "entry"}).find("entry"), {"a", "b", "c"});
    EXPECT_TRUE(entry.require({"a"}));
    EXPECT_EQ(failure(entry.require({"a", "b", "c"})), "t.yaml:3: entry: missing required key 'b'");
    EXPECT_EQ(failure(mapOf(root, {"x", "entry", "y"}).require({"y"})), "t.yaml:1: settings: missing required key 'y'")
        << "the root is named for what the file is";
}

TEST(YamlReader, ListsSayWhatTheyExpectAndWhatAnEmptyOneMeans) {
    yaml::Map m =
        mapOf(parsed("empty:\nscalar: 5\nlist: [a, b]\nbelow:\n  x: 1\n"), {"empty", "scalar", "list", "below"});
    Result<std::vector<yaml::Node>> empty = m.items("empty");
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->empty()) << "every entry commented out";
    EXPECT_EQ(failure(m.items("empty", "a list of ids", yaml::IfNull::Error)),
              "t.yaml:1: empty: expected a list of ids, got nothing");
    EXPECT_EQ(failure(m.items("scalar", "a list of ids")), "t.yaml:2: scalar: expected a list of ids, got a scalar");
    EXPECT_EQ(failure(m.items("below")), "t.yaml:5: below: expected a list, got a mapping")
        << "a value on its own line is reported where it is";
    Result<std::vector<yaml::Node>> absent = m.items("nothing", "a list", yaml::IfNull::Error);
    ASSERT_TRUE(absent);
    EXPECT_TRUE(absent->empty());
    Result<std::vector<yaml::Node>> list = m.items("list");
    ASSERT_TRUE(list);
    ASSERT_EQ(list->size(), 2u);
    EXPECT_EQ((*list)[1].text(), "b");
    EXPECT_EQ((*list)[1].name(), "list[1]");
}

TEST(YamlReader, LaterTellsWhichOfTwoKeysComesSecond) {
    yaml::Map m = mapOf(parsed("b: 1\na: 2\n"), {"a", "b"});
    EXPECT_EQ(m.later("a", "b"), "a");
    EXPECT_EQ(m.later("b", "a"), "a");
}

TEST(YamlReader, ParseTakesOneDocumentAndReportsSyntaxErrorsAtTheirLine) {
    Result<yaml::Node> empty = yaml::parse("", "t.yaml", "settings", "a settings file");
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->isNull());
    Result<yaml::Node> comment = yaml::parse("# nothing\n", "t.yaml", "settings", "a settings file");
    ASSERT_TRUE(comment);
    EXPECT_TRUE(comment->isNull());
    Result<yaml::Node> trailing = yaml::parse("a: 1\n---\n", "t.yaml", "settings", "a settings file");
    ASSERT_TRUE(trailing) << "a stray document marker at the end is harmless";
    EXPECT_TRUE(trailing->isMap());

    EXPECT_EQ(failure(yaml::parse("a: 1\n---\nb: 2\n", "t.yaml", "settings", "a settings file")),
              "t.yaml:3: a settings file is one yaml document, found another here");
    std::string syntax = failure(yaml::parse("a: 1\nb: [1\n", "t.yaml", "settings", "a settings file"));
    EXPECT_EQ(syntax.rfind("t.yaml:", 0), 0u) << syntax;
    EXPECT_NE(syntax.find("yaml syntax error"), std::string::npos) << syntax;
    std::string deep = failure(yaml::parse("a: " + std::string(100000, '['), "t.yaml", "settings", "x"));
    EXPECT_EQ(deep.rfind("t.yaml", 0), 0u) << deep;
}

TEST(YamlReader, NodesSayWhatTheyAre) {
    yaml::Map m = mapOf(parsed("s: x\nl: []\nm: {}\nn:\n"), {"s", "l", "m", "n"});
    EXPECT_STREQ(m.find("s")->kind(), "a scalar");
    EXPECT_STREQ(m.find("l")->kind(), "a list");
    EXPECT_STREQ(m.find("m")->kind(), "a mapping");
    EXPECT_STREQ(m.find("n")->kind(), "nothing");
    EXPECT_TRUE(m.find("s")->isScalar());
    EXPECT_TRUE(m.find("l")->isList());
    EXPECT_TRUE(m.find("m")->isMap());
    EXPECT_TRUE(m.find("n")->isNull());
    EXPECT_EQ(m.find("l")->text(), "") << "only a scalar has text";
    EXPECT_EQ(m.find("n")->line(), 4);
}

TEST(YamlReader, BooleanSpellings) {
    for (const char* yes : {"true", "True", "TRUE", "tRuE", "yes", "on"})
        EXPECT_EQ(yaml::boolean(yes).value(), true) << yes;
    for (const char* no : {"false", "No", "OFF"})
        EXPECT_EQ(yaml::boolean(no).value(), false) << no;
    EXPECT_FALSE(yaml::boolean("y")) << "a single letter is not one of ours";

    // YAML 1.1's, as yaml-cpp decodes them.
    for (const char* yes : {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})
        EXPECT_EQ(yaml::yaml11Boolean(yes).value(), true) << yes;
    for (const char* no : {"n", "N", "no", "false", "FALSE", "off"})
        EXPECT_EQ(yaml::yaml11Boolean(no).value(), false) << no;
    Result<bool> mixed = yaml::yaml11Boolean("tRuE");
    ASSERT_FALSE(mixed);
    EXPECT_EQ(mixed.error().message(), "'tRuE' is not true or false");
}

TEST(YamlReader, NumbersAreDecimalOrHexWithoutSuffix) {
    EXPECT_EQ(yaml::number("0").value(), 0u);
    EXPECT_EQ(yaml::number("0x10").value(), 16u);
    EXPECT_EQ(yaml::number("0XfF").value(), 255u);
    EXPECT_EQ(yaml::number("18446744073709551615").value(), UINT64_MAX);
    for (const char* bad : {"", "0x", "-1", "4K", "1.5", "0x1g"})
        EXPECT_FALSE(yaml::number(bad)) << bad;
    EXPECT_EQ(yaml::number("18446744073709551616").error().code(), ERANGE);
    EXPECT_EQ(yaml::size("2M").value(), 2 * MiB);
}

} // namespace
} // namespace cenalloc
