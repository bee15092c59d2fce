// A small, strict JSON reader and writer for file headers (safetensors) and test specs.
//
// Accepted: objects, arrays, strings (all JSON escapes, \u surrogate pairs, UTF-8 validated),
// integers that fit in int64 (kind integer), other JSON numbers (kind number, a double), true,
// false, null. Rejected with resin::Error: malformed numbers (leading zeros, "1.", ".5", "1e"),
// integers outside int64, non-finite numbers, duplicate object keys, control characters in strings,
// nesting deeper than kMaxJsonDepth, and anything but whitespace after the top-level value.
// Errors name the source and the byte offset of the problem.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace resin::io {

inline constexpr int kMaxJsonDepth = 64;

struct JsonMember;

struct JsonValue {
  enum class Kind { null, boolean, integer, number, string, array, object };
  Kind kind = Kind::null;
  bool boolean = false;
  int64_t integer = 0;
  double number = 0;  // kind number only
  std::string string;
  std::vector<JsonValue> array;
  // In file order, keys unique. (Not std::pair: pair<string, JsonValue> inside JsonValue's own
  // definition needs a complete type, which clang's checks reject.)
  std::vector<JsonMember> object;

  bool is_object() const { return kind == Kind::object; }
  // The member named `key`, or nullptr (objects only).
  const JsonValue* find(const std::string& key) const;
};

struct JsonMember {
  std::string first;
  JsonValue second;
};

const char* json_kind_name(JsonValue::Kind k);

// Parses `text`; `source` names it in error messages (a file name, "header", ...).
JsonValue parse_json(const std::string& text, const std::string& source);

// `s` as a quoted JSON string literal (escapes quotes, backslashes and control characters).
std::string json_quote(const std::string& s);

}  // namespace resin::io
