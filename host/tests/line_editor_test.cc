// The console's line editor (kernel/console/line_editor.h).
#include <gtest/gtest.h>

#include <string>

#include "console/line_editor.h"

using cohort::console::LineEditor;
using cohort::console::Output;
using Event = LineEditor::Event;

namespace {

struct Capture : Output {
    std::string text;
    void write(const char* s, size_t n) override { text.append(s, n); }
};

// Feeds every byte; returns the last non-None event (None if there was none).
Event feed(LineEditor& ed, const std::string& bytes, Capture& out) {
    Event last = Event::None;
    for (unsigned char c : bytes) {
        const Event e = ed.feed(c, out);
        if (e != Event::None) last = e;
    }
    return last;
}

} // namespace

TEST(LineEditor, TypedLineEndsWithEnterAndIsEchoed) {
    LineEditor ed;
    Capture out;
    EXPECT_EQ(feed(ed, "cpus\r", out), Event::Line);
    EXPECT_STREQ(ed.line(), "cpus");
    EXPECT_EQ(out.text, "cpus\r\n");
}

TEST(LineEditor, CrLfIsOneEnterAndLfAloneIsEnter) {
    LineEditor ed;
    Capture out;
    int lines = 0;
    for (unsigned char c : std::string("a\r\nb\n"))
        if (ed.feed(c, out) == Event::Line) ++lines;
    EXPECT_EQ(lines, 2);
    EXPECT_STREQ(ed.line(), "b");
}

TEST(LineEditor, BackspaceAndDeleteRemoveTheLastCharacter) {
    LineEditor ed;
    Capture out;
    EXPECT_EQ(feed(ed, "cpux\x7f" "s\r", out), Event::Line);
    EXPECT_STREQ(ed.line(), "cpus");
    EXPECT_EQ(feed(ed, "ab\b\bcd\r", out), Event::Line);
    EXPECT_STREQ(ed.line(), "cd");
    // Backspace on an empty line does nothing (and echoes nothing).
    out.text.clear();
    feed(ed, "\x7f", out);
    EXPECT_EQ(out.text, "");
}

TEST(LineEditor, CtrlUKillsTheLineAndCtrlCCancelsIt) {
    LineEditor ed;
    Capture out;
    EXPECT_EQ(feed(ed, "garbage\x15top\r", out), Event::Line);
    EXPECT_STREQ(ed.line(), "top");
    EXPECT_EQ(feed(ed, "half a command\x03", out), Event::Cancelled);
    EXPECT_EQ(ed.current_length(), 0u);
    EXPECT_EQ(feed(ed, "ipi\r", out), Event::Line);
    EXPECT_STREQ(ed.line(), "ipi");
}

TEST(LineEditor, ArrowsWalkTheHistory) {
    LineEditor ed;
    Capture out;
    feed(ed, "one\r", out);
    feed(ed, "two\r", out);
    feed(ed, "two\r", out); // a repeat is kept once
    EXPECT_EQ(ed.history_size(), 2u);
    EXPECT_EQ(feed(ed, "\x1b[A\r", out), Event::Line);
    EXPECT_STREQ(ed.line(), "two");
    EXPECT_EQ(feed(ed, "\x1b[A\x1b[A\r", out), Event::Line);
    EXPECT_STREQ(ed.line(), "one");
    // Up past the oldest stays there; down past the newest gives an empty line.
    EXPECT_EQ(feed(ed, "\x1b[A\x1b[A\x1b[A\x1b[A\x1b[B\r", out), Event::Line);
    EXPECT_STREQ(ed.line(), "two");
    EXPECT_EQ(feed(ed, "\x1bOA\x1bOB\x1bOBx\r", out), Event::Line);
    EXPECT_STREQ(ed.line(), "x");
    // A recalled line can be edited.
    EXPECT_EQ(feed(ed, "\x1b[A\x7fy\r", out), Event::Line);
    EXPECT_STREQ(ed.line(), "y");
}

TEST(LineEditor, HistoryKeepsTheNewestLines) {
    LineEditor ed;
    Capture out;
    for (int i = 0; i < 40; ++i) feed(ed, "cmd" + std::to_string(i) + "\r", out);
    EXPECT_EQ(ed.history_size(), LineEditor::kHistory);
    EXPECT_STREQ(ed.history(LineEditor::kHistory - 1), "cmd39");
    EXPECT_STREQ(ed.history(0), ("cmd" + std::to_string(40 - LineEditor::kHistory)).c_str());
}

TEST(LineEditor, OtherEscapeSequencesAndControlBytesAreIgnored) {
    LineEditor ed;
    Capture out;
    // Right arrow, F5 (ESC [ 1 5 ~), a tab, a bell, high bytes.
    EXPECT_EQ(feed(ed, "a\x1b[C\x1b[15~\t\a\xff\x80" "b\r", out), Event::Line);
    EXPECT_STREQ(ed.line(), "ab");
}

TEST(LineEditor, LineLongerThanTheLimitIsDroppedWhole) {
    LineEditor ed;
    Capture out;
    const std::string big(4096, 'x');
    EXPECT_EQ(feed(ed, big + "\r", out), Event::TooLong);
    EXPECT_LE(out.text.size(), LineEditor::kMaxLine + 2); // the echo stopped at the limit
    EXPECT_EQ(ed.history_size(), 0u);
    // The editor is usable at once afterwards.
    EXPECT_EQ(feed(ed, "help\r", out), Event::Line);
    EXPECT_STREQ(ed.line(), "help");
    // Exactly the limit is still a line.
    EXPECT_EQ(feed(ed, std::string(LineEditor::kMaxLine, 'y') + "\r", out), Event::Line);
    EXPECT_EQ(ed.line_length(), LineEditor::kMaxLine);
}

TEST(LineEditor, BinaryGarbageNeverProducesNonPrintableLines) {
    LineEditor ed;
    Capture out;
    uint32_t x = 12345;
    for (int i = 0; i < 100000; ++i) {
        x = x * 1103515245u + 12345u;
        const Event e = ed.feed(static_cast<uint8_t>(x >> 16), out);
        if (e == Event::Line) {
            for (size_t k = 0; k < ed.line_length(); ++k) {
                const unsigned char c = static_cast<unsigned char>(ed.line()[k]);
                ASSERT_TRUE(c >= 0x20 && c <= 0x7e);
            }
            ASSERT_LE(ed.line_length(), LineEditor::kMaxLine);
        }
    }
}

#include "console/args.h"

TEST(ConsoleArgs, SplitsOnSpacesAndTabs) {
    std::string_view w[4];
    EXPECT_EQ(cohort::console::split_words("  irq 3\tcpu   2 ", w, 4), 4u);
    EXPECT_EQ(w[0], "irq");
    EXPECT_EQ(w[1], "3");
    EXPECT_EQ(w[2], "cpu");
    EXPECT_EQ(w[3], "2");
    EXPECT_EQ(cohort::console::split_words("", w, 4), 0u);
    EXPECT_EQ(cohort::console::split_words("a b c d e f", w, 4), 6u); // counted past max
}

TEST(ConsoleArgs, ParsesPlainDecimalNumbersOnly) {
    using cohort::console::parse_u32;
    EXPECT_EQ(parse_u32("0"), std::optional<uint32_t>(0));
    EXPECT_EQ(parse_u32("4294967295"), std::optional<uint32_t>(4294967295u));
    EXPECT_EQ(parse_u32("4294967296"), std::nullopt);
    EXPECT_EQ(parse_u32("99999999999"), std::nullopt);
    EXPECT_EQ(parse_u32("-1"), std::nullopt);
    EXPECT_EQ(parse_u32("12x"), std::nullopt);
    EXPECT_EQ(parse_u32(""), std::nullopt);
}
