// Minimal JSON value, parser and writer for host tests and tools (expected.json, acpi-inspect).
// Integers keep full 64-bit precision, which matters for physical addresses.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cohort::host {

class Json {
  public:
    enum class Kind { Null, Bool, Int, Uint, Double, String, Array, Object };
    using Array = std::vector<Json>;
    // Object keys keep insertion order for readable output; lookups are linear, which is fine
    // for the small objects used here.
    using Object = std::vector<std::pair<std::string, Json>>;

    Json() = default;
    Json(std::nullptr_t) {}
    Json(bool b) : kind_(Kind::Bool), bool_(b) {}
    template <typename T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, bool>) Json(T v) {
        if constexpr (std::is_signed_v<T>) {
            kind_ = Kind::Int;
            int_ = static_cast<int64_t>(v);
        } else {
            kind_ = Kind::Uint;
            uint_ = static_cast<uint64_t>(v);
        }
    }
    Json(double d) : kind_(Kind::Double), double_(d) {}
    Json(const char* s) : kind_(Kind::String), string_(s) {}
    Json(std::string s) : kind_(Kind::String), string_(std::move(s)) {}
    Json(std::string_view s) : kind_(Kind::String), string_(s) {}
    Json(Array a) : kind_(Kind::Array), array_(std::move(a)) {}
    Json(Object o) : kind_(Kind::Object), object_(std::move(o)) {}

    static Json array() { return Json(Array{}); }
    static Json object() { return Json(Object{}); }

    Kind kind() const { return kind_; }
    bool is_number() const {
        return kind_ == Kind::Int || kind_ == Kind::Uint || kind_ == Kind::Double;
    }
    bool is_object() const { return kind_ == Kind::Object; }
    bool is_array() const { return kind_ == Kind::Array; }
    bool is_string() const { return kind_ == Kind::String; }
    bool is_bool() const { return kind_ == Kind::Bool; }

    bool as_bool() const { return bool_; }
    const std::string& as_string() const { return string_; }
    /// Integer value; nullopt if not an integer representable as int64/uint64 respectively.
    std::optional<uint64_t> as_uint() const;
    std::optional<int64_t> as_int() const;
    const Array& as_array() const { return array_; }
    Array& as_array() { return array_; }
    const Object& as_object() const { return object_; }

    /// Object member, or nullptr.
    const Json* find(std::string_view key) const;
    /// Object member, created (null) if missing. The value must be an object.
    Json& operator[](std::string_view key);
    void push_back(Json v) { array_.push_back(std::move(v)); }

    /// Structural equality; numbers compare by value across Int/Uint.
    bool operator==(const Json& other) const;

    /// Serialises; indent < 0 gives one line.
    std::string dump(int indent = -1) const;

    /// Parses a complete JSON text; nullopt with `error` set on failure.
    static std::optional<Json> parse(std::string_view text, std::string* error = nullptr);

  private:
    void dump_to(std::string& out, int indent, int depth) const;

    Kind kind_ = Kind::Null;
    bool bool_ = false;
    int64_t int_ = 0;
    uint64_t uint_ = 0;
    double double_ = 0;
    std::string string_;
    Array array_;
    Object object_;
};

} // namespace cohort::host
