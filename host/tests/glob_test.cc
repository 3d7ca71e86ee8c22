#include "lib/glob.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace {

using cohort::glob_match;

TEST(Glob, Literals) {
    EXPECT_TRUE(glob_match("", ""));
    EXPECT_TRUE(glob_match("abc", "abc"));
    EXPECT_FALSE(glob_match("abc", "abd"));
    EXPECT_FALSE(glob_match("abc", "ab"));
    EXPECT_FALSE(glob_match("ab", "abc"));
    EXPECT_FALSE(glob_match("", "a"));
    EXPECT_FALSE(glob_match("a", ""));
}

TEST(Glob, Star) {
    EXPECT_TRUE(glob_match("*", ""));
    EXPECT_TRUE(glob_match("*", "anything"));
    EXPECT_TRUE(glob_match("**", "x"));
    EXPECT_TRUE(glob_match("smp.*", "smp.ipi"));
    EXPECT_TRUE(glob_match("smp.*", "smp."));
    EXPECT_FALSE(glob_match("smp.*", "smp"));
    EXPECT_FALSE(glob_match("smp.*", "mm.smp.x"));
    EXPECT_TRUE(glob_match("*.alloc", "mm.alloc"));
    EXPECT_FALSE(glob_match("*.alloc", "mm.alloc2"));
    EXPECT_TRUE(glob_match("a*b*c", "abc"));
    EXPECT_TRUE(glob_match("a*b*c", "aXbYbZc"));
    EXPECT_FALSE(glob_match("a*b*c", "aXbYbZ"));
    EXPECT_TRUE(glob_match("*ab", "aab"));
    EXPECT_TRUE(glob_match("*aab", "aaab"));
    EXPECT_FALSE(glob_match("a*", "ba"));
}

TEST(Glob, QuestionMark) {
    EXPECT_TRUE(glob_match("?", "a"));
    EXPECT_FALSE(glob_match("?", ""));
    EXPECT_FALSE(glob_match("?", "ab"));
    EXPECT_TRUE(glob_match("t?st", "test"));
    EXPECT_TRUE(glob_match("*?", "a"));
    EXPECT_FALSE(glob_match("*??", "a"));
    EXPECT_TRUE(glob_match("?*?", "ab"));
}

TEST(Glob, StarInTextIsLiteral) {
    EXPECT_TRUE(glob_match("a*", "a*"));
    EXPECT_FALSE(glob_match("a?c", "a*"));
    EXPECT_TRUE(glob_match("*x", "*x"));
    EXPECT_FALSE(glob_match("ab", "a*"));
}

// Would take exponential time with naive recursive backtracking.
TEST(Glob, PathologicalPatternIsFast) {
    const std::string text(5000, 'a');
    EXPECT_FALSE(glob_match("a*a*a*a*a*a*a*a*a*a*a*a*b", text));
    EXPECT_TRUE(glob_match("a*a*a*a*a*a*a*a*a*a*a*a*a", text));
}

// Straightforward exponential matcher, fine for tiny inputs.
bool ref_match(std::string_view p, std::string_view t) {
    if (p.empty()) return t.empty();
    if (p[0] == '*') return ref_match(p.substr(1), t) || (!t.empty() && ref_match(p, t.substr(1)));
    if (t.empty()) return false;
    return (p[0] == '?' || p[0] == t[0]) && ref_match(p.substr(1), t.substr(1));
}

TEST(Glob, RandomizedAgainstReference) {
    std::mt19937 rng(7);
    const char pattern_chars[] = {'a', 'b', '*', '?'};
    for (int iter = 0; iter < 20000; ++iter) {
        std::string p, t;
        for (size_t n = rng() % 7; n > 0; --n)
            p += pattern_chars[rng() % 4];
        for (size_t n = rng() % 8; n > 0; --n)
            t += "ab*"[rng() % 3];
        ASSERT_EQ(glob_match(p, t), ref_match(p, t)) << "pattern '" << p << "' text '" << t << "'";
    }
}

} // namespace
