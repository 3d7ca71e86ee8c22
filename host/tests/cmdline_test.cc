#include "lib/cmdline.h"

#include <gtest/gtest.h>

#include <string>

namespace {

using cohort::CommandLine;
using Status = CommandLine::Status;

TEST(Cmdline, Empty) {
    CommandLine cl;
    EXPECT_TRUE(cl.parse(""));
    EXPECT_TRUE(cl.args().empty());
    EXPECT_STREQ(cl.error(), "");
    EXPECT_TRUE(cl.parse(" \t  "));
    EXPECT_TRUE(cl.args().empty());
    EXPECT_FALSE(cl.has("x"));
    EXPECT_EQ(cl.get("x"), std::nullopt);
}

TEST(Cmdline, KeysValuesAndFlags) {
    CommandLine cl;
    ASSERT_TRUE(cl.parse("console=serial  quiet\tmem=512M  loglevel=7 empty="));
    auto args = cl.args();
    ASSERT_EQ(args.size(), 5u);
    EXPECT_EQ(args[0].key, "console");
    EXPECT_EQ(args[0].value, "serial");
    EXPECT_TRUE(args[0].has_value);
    EXPECT_EQ(args[1].key, "quiet");
    EXPECT_FALSE(args[1].has_value);
    EXPECT_EQ(args[1].value, "");
    EXPECT_EQ(args[2].key, "mem");
    EXPECT_EQ(args[2].value, "512M");
    EXPECT_EQ(args[4].key, "empty");
    EXPECT_TRUE(args[4].has_value);
    EXPECT_EQ(args[4].value, "");
    EXPECT_TRUE(cl.has("quiet"));
    EXPECT_FALSE(cl.has("quie"));
    EXPECT_EQ(cl.get("console"), "serial");
    EXPECT_EQ(cl.get("quiet"), "");
    EXPECT_EQ(cl.get("nope"), std::nullopt);
}

TEST(Cmdline, ValueMayContainEquals) {
    CommandLine cl;
    ASSERT_TRUE(cl.parse("init=/bin/sh=x a==b"));
    EXPECT_EQ(cl.get("init"), "/bin/sh=x");
    EXPECT_EQ(cl.get("a"), "=b");
}

TEST(Cmdline, QuotedValues) {
    CommandLine cl;
    ASSERT_TRUE(cl.parse("test=\"smp.* mm.*\" x=\"\" last=\"a\tb\""));
    EXPECT_EQ(cl.get("test"), "smp.* mm.*");
    EXPECT_EQ(cl.get("x"), "");
    EXPECT_EQ(cl.get("last"), "a\tb");
    EXPECT_EQ(cl.args().size(), 3u);
}

TEST(Cmdline, LaterDuplicateWins) {
    CommandLine cl;
    ASSERT_TRUE(cl.parse("log=1 other log=2"));
    EXPECT_EQ(cl.args().size(), 3u);
    EXPECT_EQ(cl.get("log"), "2");
    uint64_t v = 0;
    EXPECT_EQ(cl.get_u64("log", v), Status::Ok);
    EXPECT_EQ(v, 2u);
}

TEST(Cmdline, OwnsItsText) {
    CommandLine cl;
    std::string text = "root=disk0 verbose";
    ASSERT_TRUE(cl.parse(text));
    text.assign(text.size(), '#');
    EXPECT_EQ(cl.get("root"), "disk0");
    EXPECT_TRUE(cl.has("verbose"));
}

TEST(Cmdline, ReparseReplaces) {
    CommandLine cl;
    ASSERT_FALSE(cl.parse("=bad"));
    ASSERT_TRUE(cl.parse("a=1"));
    EXPECT_STREQ(cl.error(), "");
    EXPECT_EQ(cl.args().size(), 1u);
}

TEST(Cmdline, EmptyKeyIsRejectedButRestParsed) {
    CommandLine cl;
    EXPECT_FALSE(cl.parse("a=1 =x b=2 =\"q r\" c"));
    EXPECT_STRNE(cl.error(), "");
    EXPECT_NE(std::string(cl.error()).find("empty key"), std::string::npos);
    ASSERT_EQ(cl.args().size(), 3u);
    EXPECT_EQ(cl.args()[0].key, "a");
    EXPECT_EQ(cl.args()[1].key, "b");
    EXPECT_EQ(cl.args()[2].key, "c");
}

TEST(Cmdline, UnterminatedQuote) {
    CommandLine cl;
    EXPECT_FALSE(cl.parse("a=1 b=\"never closed c=3"));
    EXPECT_NE(std::string(cl.error()).find("quote"), std::string::npos);
    ASSERT_EQ(cl.args().size(), 1u);
    EXPECT_FALSE(cl.has("b"));
    EXPECT_FALSE(cl.has("c"));
}

TEST(Cmdline, TextAfterClosingQuote) {
    CommandLine cl;
    EXPECT_FALSE(cl.parse("a=\"x\"y b=2"));
    EXPECT_STRNE(cl.error(), "");
    EXPECT_FALSE(cl.has("a"));
    EXPECT_FALSE(cl.has("y"));
    EXPECT_EQ(cl.get("b"), "2");
}

TEST(Cmdline, TooLongRejectedEntirely) {
    CommandLine cl;
    std::string text = "a=1 ";
    text.resize(CommandLine::kMaxText + 1, 'x');
    EXPECT_FALSE(cl.parse(text));
    EXPECT_NE(std::string(cl.error()).find("too long"), std::string::npos);
    EXPECT_TRUE(cl.args().empty());
    // Exactly at the limit is fine.
    text.resize(CommandLine::kMaxText);
    EXPECT_TRUE(cl.parse(text));
    EXPECT_EQ(cl.args().size(), 2u);
    EXPECT_EQ(cl.args()[1].key.size(), CommandLine::kMaxText - 4);
}

TEST(Cmdline, TooManyArgsKeepsFirst) {
    CommandLine cl;
    std::string text;
    for (size_t i = 0; i < CommandLine::kMaxArgs; ++i)
        text += "k" + std::to_string(i) + " ";
    EXPECT_TRUE(cl.parse(text));
    EXPECT_EQ(cl.args().size(), CommandLine::kMaxArgs);
    text += "overflow=1 more";
    EXPECT_FALSE(cl.parse(text));
    EXPECT_NE(std::string(cl.error()).find("too many"), std::string::npos);
    EXPECT_EQ(cl.args().size(), CommandLine::kMaxArgs);
    EXPECT_TRUE(cl.has("k63"));
    EXPECT_FALSE(cl.has("overflow"));
}

TEST(Cmdline, FirstErrorIsReported) {
    CommandLine cl;
    EXPECT_FALSE(cl.parse("=a b=\"open"));
    EXPECT_NE(std::string(cl.error()).find("empty key"), std::string::npos);
}

TEST(Cmdline, GetU64) {
    CommandLine cl;
    ASSERT_TRUE(
        cl.parse("d=123 h=0x1F H=0XfF k=4K m=2m g=1G hk=0x10K zero=0 max=18446744073709551615 "
                 "maxhex=0xffffffffffffffff over=18446744073709551616 "
                 "overhex=0x10000000000000000 overg=17179869184G neg=-1 junk=12x "
                 "empty= bare hexonly=0x sufonly=K space=\" 1\" dbl=1KK"));
    uint64_t v = 99;
    auto ok = [&](const char* key, uint64_t want) {
        v = 99;
        EXPECT_EQ(cl.get_u64(key, v), Status::Ok) << key;
        EXPECT_EQ(v, want) << key;
    };
    ok("d", 123);
    ok("h", 0x1f);
    ok("H", 0xff);
    ok("k", 4096);
    ok("m", 2u << 20);
    ok("g", 1u << 30);
    ok("hk", 0x10u << 10);
    ok("zero", 0);
    ok("max", UINT64_MAX);
    ok("maxhex", UINT64_MAX);
    for (const char* bad : {"over", "overhex", "overg", "neg", "junk", "empty", "bare", "hexonly",
                            "sufonly", "space", "dbl"}) {
        v = 99;
        EXPECT_EQ(cl.get_u64(bad, v), Status::Invalid) << bad;
        EXPECT_EQ(v, 99u) << "out written on failure for " << bad;
    }
    EXPECT_EQ(cl.get_u64("absent", v), Status::Absent);
    EXPECT_EQ(v, 99u);
}

TEST(Cmdline, GetU64SuffixBoundary) {
    CommandLine cl;
    // 2^34 - 1 G fits below 2^64; 2^34 G does not.
    ASSERT_TRUE(cl.parse("fits=17179869183G nofit=17179869184G"));
    uint64_t v = 0;
    EXPECT_EQ(cl.get_u64("fits", v), Status::Ok);
    EXPECT_EQ(v, 17179869183ull << 30);
    EXPECT_EQ(cl.get_u64("nofit", v), Status::Invalid);
}

TEST(Cmdline, GetBool) {
    CommandLine cl;
    ASSERT_TRUE(cl.parse("a=1 b=0 c=true d=FALSE e=yes f=No g=on h=off flag i=2 j= k=onn"));
    bool v = false;
    auto expect = [&](const char* key, bool want) {
        v = !want;
        EXPECT_EQ(cl.get_bool(key, v), Status::Ok) << key;
        EXPECT_EQ(v, want) << key;
    };
    expect("a", true);
    expect("b", false);
    expect("c", true);
    expect("d", false);
    expect("e", true);
    expect("f", false);
    expect("g", true);
    expect("h", false);
    expect("flag", true);
    for (const char* bad : {"i", "j", "k"}) {
        v = true;
        EXPECT_EQ(cl.get_bool(bad, v), Status::Invalid) << bad;
        EXPECT_TRUE(v);
    }
    EXPECT_EQ(cl.get_bool("absent", v), Status::Absent);
}

} // namespace
