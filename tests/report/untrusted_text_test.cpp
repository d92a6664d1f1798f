// SPDX-License-Identifier: MIT
// Buffer names and other peer-supplied strings in the text and JSON views: escaped, never raw, never a crash.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include <nlohmann/json.hpp>

#include "report/report.h"
#include "report/untrusted_text.h"

namespace cenalloc {
namespace {

using namespace std::string_literals;

// The hostile names of issue 13: a byte that is not UTF-8, a terminal
// escape that clears the screen, a newline, and a name of the longest
// length DMA_BUF_SET_NAME takes (31 bytes and its NUL).
const std::string kNotUtf8 = "cam\xff"
                             "era";
const std::string kClearScreen = "\x1b[2Jowned";
const std::string kNewline = "line1\nline2";
const std::string kLongest = "\x1b[2J\xff\n" + std::string(kBufferNameMax - 6, 'x');

BufferInfo named(std::string name) {
    BufferInfo b;
    b.id = 7;
    b.size = 4096;
    b.exporter = "system";
    b.heap = "system";
    b.hasStorage = true;
    b.name = std::move(name);
    return b;
}

bool hasRawControl(const std::string& text) {
    for (char c : text) {
        const auto b = static_cast<unsigned char>(c);
        if ((b < 0x20 && c != '\n') || b == 0x7f || b >= 0x80)
            return true;
    }
    return false;
}

TEST(UntrustedText, PrintableTextEscapesControlsAndIllFormedBytes) {
    EXPECT_EQ(printableText("plain name-1.2"), "plain name-1.2");
    EXPECT_EQ(printableText(kNotUtf8), "cam\\xffera");
    EXPECT_EQ(printableText(kClearScreen), "\\x1b[2Jowned");
    EXPECT_EQ(printableText(kNewline), "line1\\x0aline2");
    EXPECT_EQ(printableText("a\0b"s), "a\\x00b");
    EXPECT_EQ(printableText("back\\slash"), "back\\\\slash");
    // Well-formed UTF-8 of printable characters is kept.
    EXPECT_EQ(printableText("caméra \xe6\x97\xa5"), "caméra \xe6\x97\xa5");
    // C1 controls (CSI as U+009B), bidirectional overrides, overlong forms
    // and surrogates are escaped byte by byte.
    EXPECT_EQ(printableText("\xc2\x9b"
                            "2J"),
              "\\xc2\\x9b2J");
    EXPECT_EQ(printableText("\xe2\x80\xae"
                            "txt"),
              "\\xe2\\x80\\xaetxt");
    EXPECT_EQ(printableText("\xc0\xaf"), "\\xc0\\xaf");
    EXPECT_EQ(printableText("\xed\xa0\x80"), "\\xed\\xa0\\x80");
    EXPECT_EQ(printableText("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");
    EXPECT_EQ(printableText("\xe6\x97"), "\\xe6\\x97"); // cut short
    // Escaping cannot be forged: the escaped text of a backslash-x spelled
    // out differs from that of the byte.
    EXPECT_NE(printableText("\\xff"), printableText("\xff"));
}

TEST(UntrustedText, ValidUtf8ReplacesEachIllFormedByteAndHexKeepsThem) {
    EXPECT_EQ(validUtf8(kNotUtf8), "cam\xef\xbf\xbd"
                                   "era");
    EXPECT_EQ(validUtf8("caméra"), "caméra");
    EXPECT_TRUE(isValidUtf8(validUtf8("\xff\xfe\xc0\xaf\xed\xa0\x80\xe6\x97")));
    EXPECT_FALSE(isValidUtf8(kNotUtf8));
    EXPECT_EQ(hexBytes("\xff\x1b"
                       "A\0"s),
              "ff1b4100");
    EXPECT_EQ(hexBytes(""), "");
}

TEST(UntrustedText, BufinfoJsonIsValidForAnyNameAndKeepsEveryByte) {
    for (const std::string& name : {kNotUtf8, kClearScreen, kNewline, kLongest}) {
        SCOPED_TRACE(hexBytes(name));
        nlohmann::json j = bufinfoJson({named(name)});
        // dump() throws on ill-formed UTF-8 (what aborted `bufinfo --json`);
        // the strict handler is the default.
        std::string dumped;
        ASSERT_NO_THROW(dumped = j.dump(2));
        auto parsed = nlohmann::json::parse(dumped);
        const auto& b = parsed["buffers"][0];
        EXPECT_EQ(b["name_hex"], hexBytes(name));
        EXPECT_EQ(b["name"], validUtf8(name));
        // JSON escapes what is left: no raw control byte in the output.
        for (char c : dumped)
            EXPECT_FALSE(c == '\x1b' || c == '\xff');
    }
    // A well-formed name is itself.
    EXPECT_EQ(bufinfoJson({named("frame")})["buffers"][0]["name"], "frame");
}

TEST(UntrustedText, BufinfoTextShowsNamesEscapedOnOneLine) {
    for (const std::string& name : {kNotUtf8, kClearScreen, kNewline, kLongest}) {
        SCOPED_TRACE(hexBytes(name));
        std::string text = renderBufinfo({named(name)});
        EXPECT_FALSE(hasRawControl(text)) << text;
        EXPECT_NE(text.find(printableText(name)), std::string::npos) << text;
        // Header, rule and one row: the newline in the name made no line.
        EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 4) << text;
    }
}

TEST(UntrustedText, EveryOtherPeerStringIsEscapedToo) {
    BufferInfo b = named("ok");
    b.exporter = "exp\x1b]0;title\x07";
    b.heap = "he\xffp";
    b.attachedDevices = {"dev\n"};
    b.exporterState = "st\xfe";
    MappingInfo m;
    m.device = "gpu\x1b[31m";
    m.domain = "dom\xff";
    b.mappings.push_back(m);
    std::string text = renderBufinfo({b});
    EXPECT_FALSE(hasRawControl(text)) << text;
    EXPECT_NO_THROW((void)bufinfoJson({b}).dump());

    HeapInfo heap;
    heap.name = "h\x1b[2J\xff";
    heap.properties.name = heap.name;
    EXPECT_FALSE(hasRawControl(renderHeaps("platform p\x1b[2J", {heap})));
    EXPECT_NO_THROW((void)heapsJson("p\xff", {heap}).dump());
    AllocatorStats stats;
    stats.heaps = {heap};
    stats.lifetimeBugs = {"buffer '\x1b[2J\xff' released with attachments"};
    EXPECT_FALSE(hasRawControl(renderStats("cenallocd at \x1b[2J", stats)));
    EXPECT_NO_THROW((void)statsJson(stats).dump());
}

} // namespace
} // namespace cenalloc
