#include "json.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace cohort::host {

std::optional<uint64_t> Json::as_uint() const {
    if (kind_ == Kind::Uint) return uint_;
    if (kind_ == Kind::Int && int_ >= 0) return static_cast<uint64_t>(int_);
    return std::nullopt;
}

std::optional<int64_t> Json::as_int() const {
    if (kind_ == Kind::Int) return int_;
    if (kind_ == Kind::Uint && uint_ <= static_cast<uint64_t>(INT64_MAX))
        return static_cast<int64_t>(uint_);
    return std::nullopt;
}

const Json* Json::find(std::string_view key) const {
    for (const auto& [k, v] : object_)
        if (k == key) return &v;
    return nullptr;
}

Json& Json::operator[](std::string_view key) {
    if (kind_ == Kind::Null) kind_ = Kind::Object;
    for (auto& [k, v] : object_)
        if (k == key) return v;
    object_.emplace_back(std::string(key), Json());
    return object_.back().second;
}

bool Json::operator==(const Json& o) const {
    if (is_number() && o.is_number()) {
        if (kind_ == Kind::Double || o.kind_ == Kind::Double) {
            auto d = [](const Json& j) {
                return j.kind_ == Kind::Double ? j.double_
                       : j.kind_ == Kind::Int  ? static_cast<double>(j.int_)
                                               : static_cast<double>(j.uint_);
            };
            return d(*this) == d(o);
        }
        const auto a = as_uint(), b = o.as_uint();
        if (a || b) return a == b;
        return as_int() == o.as_int();
    }
    if (kind_ != o.kind_) return false;
    switch (kind_) {
    case Kind::Null:
        return true;
    case Kind::Bool:
        return bool_ == o.bool_;
    case Kind::String:
        return string_ == o.string_;
    case Kind::Array:
        return array_ == o.array_;
    case Kind::Object: {
        if (object_.size() != o.object_.size()) return false;
        for (const auto& [k, v] : object_) {
            const Json* other = o.find(k);
            if (!other || !(*other == v)) return false;
        }
        return true;
    }
    default:
        return false;
    }
}

namespace {

void dump_string(std::string& out, const std::string& s) {
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default:
            if (c < 0x20 || c >= 0x7f) {
                // Table strings are raw bytes; emit them as Latin-1 code points so the output
                // is always valid JSON (Python's json reads them the same way iasl text was).
                char buf[8];
                std::snprintf(buf, sizeof(buf), "\\u%04x", c);
                out += buf;
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    out += '"';
}

void newline(std::string& out, int indent, int depth) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * depth), ' ');
}

class Parser {
  public:
    explicit Parser(std::string_view text) : s_(text) {}

    std::optional<Json> run(std::string* error) {
        auto v = value();
        skip_ws();
        if (v && pos_ != s_.size()) fail("trailing characters");
        if (!err_.empty()) {
            if (error) *error = err_ + " at offset " + std::to_string(pos_);
            return std::nullopt;
        }
        return v;
    }

  private:
    void fail(const char* msg) {
        if (err_.empty()) err_ = msg;
    }
    void skip_ws() {
        while (pos_ < s_.size() &&
               (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t'))
            ++pos_;
    }
    bool eat(char c) {
        skip_ws();
        if (pos_ < s_.size() && s_[pos_] == c) {
            ++pos_;
            return true;
        }
        return false;
    }
    bool literal(std::string_view word) {
        if (s_.substr(pos_, word.size()) != word) return false;
        pos_ += word.size();
        return true;
    }

    std::optional<Json> value() {
        if (++depth_ > 200) {
            fail("nesting too deep");
            return std::nullopt;
        }
        skip_ws();
        std::optional<Json> r;
        if (pos_ >= s_.size()) {
            fail("unexpected end");
        } else if (s_[pos_] == '{') {
            r = object();
        } else if (s_[pos_] == '[') {
            r = array();
        } else if (s_[pos_] == '"') {
            if (auto str = string()) r = Json(std::move(*str));
        } else if (literal("true")) {
            r = Json(true);
        } else if (literal("false")) {
            r = Json(false);
        } else if (literal("null")) {
            r = Json();
        } else {
            r = number();
        }
        --depth_;
        return err_.empty() ? r : std::nullopt;
    }

    std::optional<Json> object() {
        ++pos_;
        Json obj = Json::object();
        if (eat('}')) return obj;
        do {
            skip_ws();
            auto key = string();
            if (!key) return std::nullopt;
            if (!eat(':')) {
                fail("expected ':'");
                return std::nullopt;
            }
            auto v = value();
            if (!v) return std::nullopt;
            obj[*key] = std::move(*v);
        } while (eat(','));
        if (!eat('}')) fail("expected '}'");
        return obj;
    }

    std::optional<Json> array() {
        ++pos_;
        Json arr = Json::array();
        if (eat(']')) return arr;
        do {
            auto v = value();
            if (!v) return std::nullopt;
            arr.push_back(std::move(*v));
        } while (eat(','));
        if (!eat(']')) fail("expected ']'");
        return arr;
    }

    static void append_utf8(std::string& out, uint32_t cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }

    std::optional<std::string> string() {
        if (pos_ >= s_.size() || s_[pos_] != '"') {
            fail("expected string");
            return std::nullopt;
        }
        ++pos_;
        std::string out;
        while (pos_ < s_.size() && s_[pos_] != '"') {
            char c = s_[pos_++];
            if (c != '\\') {
                out += c;
                continue;
            }
            if (pos_ >= s_.size()) break;
            c = s_[pos_++];
            switch (c) {
            case '"':
                out += '"';
                break;
            case '\\':
                out += '\\';
                break;
            case '/':
                out += '/';
                break;
            case 'b':
                out += '\b';
                break;
            case 'f':
                out += '\f';
                break;
            case 'n':
                out += '\n';
                break;
            case 'r':
                out += '\r';
                break;
            case 't':
                out += '\t';
                break;
            case 'u': {
                if (pos_ + 4 > s_.size()) {
                    fail("short \\u escape");
                    return std::nullopt;
                }
                const uint32_t cp = static_cast<uint32_t>(
                    std::strtoul(std::string(s_.substr(pos_, 4)).c_str(), nullptr, 16));
                pos_ += 4;
                // Code points below 0x100 stand for raw bytes (see dump_string), so both sides
                // of a comparison decode to the same std::string.
                if (cp < 0x100)
                    out += static_cast<char>(cp);
                else
                    append_utf8(out, cp);
                break;
            }
            default:
                fail("bad escape");
                return std::nullopt;
            }
        }
        if (pos_ >= s_.size()) {
            fail("unterminated string");
            return std::nullopt;
        }
        ++pos_;
        return out;
    }

    std::optional<Json> number() {
        const size_t start = pos_;
        bool is_float = false;
        if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
        while (pos_ < s_.size()) {
            const char c = s_[pos_];
            if (c >= '0' && c <= '9') {
                ++pos_;
            } else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
                is_float = true;
                ++pos_;
            } else {
                break;
            }
        }
        const std::string tok(s_.substr(start, pos_ - start));
        if (tok.empty() || tok == "-") {
            fail("expected value");
            return std::nullopt;
        }
        char* end = nullptr;
        errno = 0;
        if (!is_float) {
            if (tok[0] == '-') {
                const long long v = std::strtoll(tok.c_str(), &end, 10);
                if (errno == 0 && *end == '\0') return Json(static_cast<int64_t>(v));
            } else {
                const unsigned long long v = std::strtoull(tok.c_str(), &end, 10);
                if (errno == 0 && *end == '\0') return Json(static_cast<uint64_t>(v));
            }
        }
        const double d = std::strtod(tok.c_str(), &end);
        if (*end != '\0') {
            fail("bad number");
            return std::nullopt;
        }
        return Json(d);
    }

    std::string_view s_;
    size_t pos_ = 0;
    int depth_ = 0;
    std::string err_;
};

} // namespace

void Json::dump_to(std::string& out, int indent, int depth) const {
    switch (kind_) {
    case Kind::Null:
        out += "null";
        break;
    case Kind::Bool:
        out += bool_ ? "true" : "false";
        break;
    case Kind::Int:
        out += std::to_string(int_);
        break;
    case Kind::Uint:
        out += std::to_string(uint_);
        break;
    case Kind::Double: {
        char buf[32];
        std::snprintf(buf, sizeof(buf), "%.17g", double_);
        out += buf;
        break;
    }
    case Kind::String:
        dump_string(out, string_);
        break;
    case Kind::Array:
        out += '[';
        for (size_t i = 0; i < array_.size(); ++i) {
            if (i) out += ',';
            newline(out, indent, depth + 1);
            array_[i].dump_to(out, indent, depth + 1);
        }
        if (!array_.empty()) newline(out, indent, depth);
        out += ']';
        break;
    case Kind::Object:
        out += '{';
        for (size_t i = 0; i < object_.size(); ++i) {
            if (i) out += ',';
            newline(out, indent, depth + 1);
            dump_string(out, object_[i].first);
            out += indent < 0 ? ":" : ": ";
            object_[i].second.dump_to(out, indent, depth + 1);
        }
        if (!object_.empty()) newline(out, indent, depth);
        out += '}';
        break;
    }
}

std::string Json::dump(int indent) const {
    std::string out;
    dump_to(out, indent, 0);
    return out;
}

std::optional<Json> Json::parse(std::string_view text, std::string* error) {
    return Parser(text).run(error);
}

} // namespace cohort::host
