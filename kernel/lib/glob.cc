#include "lib/glob.h"

#include <cstddef>

namespace cohort {

bool glob_match(std::string_view pattern, std::string_view text) {
    size_t p = 0, t = 0;
    // Where to resume after the most recent '*': only the latest star ever needs revisiting,
    // because a later star can absorb anything an earlier one could. That keeps this linear in
    // backtracking depth instead of exponential.
    size_t star_p = std::string_view::npos, star_t = 0;
    while (t < text.size()) {
        if (p < pattern.size() && pattern[p] == '*') {
            star_p = p++;
            star_t = t;
        } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
            ++p;
            ++t;
        } else if (star_p != std::string_view::npos) {
            // Let the last star swallow one more character and retry from just after it.
            p = star_p + 1;
            t = ++star_t;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*')
        ++p;
    return p == pattern.size();
}

} // namespace cohort
