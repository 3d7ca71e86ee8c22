#include "console/args.h"

namespace cohort::console {

size_t split_words(std::string_view line, std::string_view* words, size_t max) {
    size_t n = 0;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        if (i == line.size()) break;
        const size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
        if (n < max) words[n] = line.substr(start, i - start);
        ++n;
    }
    return n;
}

std::optional<uint32_t> parse_u32(std::string_view word) {
    if (word.empty() || word.size() > 10) return std::nullopt;
    uint64_t v = 0;
    for (char c : word) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    if (v > UINT32_MAX) return std::nullopt;
    return static_cast<uint32_t>(v);
}

} // namespace cohort::console
