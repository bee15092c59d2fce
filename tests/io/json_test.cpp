#include "resin/io/json.h"

#include <gtest/gtest.h>

#include "resin/core/error.h"

namespace resin::io {
namespace {

TEST(Json, ParsesNestedValues) {
  const JsonValue v = parse_json(
      R"( {"a": [1, -2, 9223372036854775807, -9223372036854775808], "s": "q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00",
           "o": {}, "e": [], "t": true, "f": false, "n": null} )",
      "test");
  ASSERT_TRUE(v.is_object());
  ASSERT_EQ(v.object.size(), 7u);
  const JsonValue* a = v.find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->array.size(), 4u);
  EXPECT_EQ(a->array[1].integer, -2);
  EXPECT_EQ(a->array[2].integer, INT64_MAX);
  EXPECT_EQ(a->array[3].integer, INT64_MIN);
  EXPECT_EQ(v.find("s")->string, "q\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_TRUE(v.find("t")->boolean);
  EXPECT_EQ(v.find("n")->kind, JsonValue::Kind::null);
  EXPECT_EQ(v.find("missing"), nullptr);
}

TEST(Json, ParsesNumbers) {
  const JsonValue v = parse_json("[0, -0, 1.5, -2.5e-3, 1E2, 0.1, 12345678901234567890.0]", "n");
  EXPECT_EQ(v.array[0].kind, JsonValue::Kind::integer);
  EXPECT_EQ(v.array[1].integer, 0);
  EXPECT_EQ(v.array[2].kind, JsonValue::Kind::number);
  EXPECT_EQ(v.array[2].number, 1.5);
  EXPECT_EQ(v.array[3].number, -2.5e-3);
  EXPECT_EQ(v.array[4].kind, JsonValue::Kind::number);
  EXPECT_EQ(v.array[4].number, 100.0);
  EXPECT_EQ(v.array[5].number, 0.1);  // correctly rounded
  EXPECT_EQ(v.array[6].number, 12345678901234567890.0);
}

TEST(Json, QuoteRoundTrips) {
  const std::string s = std::string("a\"b\\c\n\x01\x1f") + "\xc3\xa9";
  EXPECT_EQ(parse_json(json_quote(s), "q").string, s);
}

TEST(Json, RejectsMalformedInput) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "unexpected end"},
      {"{", "expected a string key"},
      {"{\"a\":1,}", "expected a string key"},
      {"{\"a\":1 \"b\":2}", "expected ',' or '}'"},
      {"[1 2]", "expected ',' or ']'"},
      {"{\"a\":1,\"a\":2}", "duplicate key \"a\""},
      {"{} x", "trailing data"},
      {"[1.]", "expected a digit after the decimal point"},
      {"[.5]", "unexpected character"},
      {"[1e]", "expected a digit in the exponent"},
      {"[1e+]", "expected a digit in the exponent"},
      {"[1e999]", "number out of range"},
      {"[-01.5]", "leading zeros"},
      {"[01]", "leading zeros"},
      {"[-]", "expected a digit"},
      {"[9223372036854775808]", "does not fit"},
      {"[-9223372036854775809]", "does not fit"},
      {"[99999999999999999999999]", "does not fit"},
      {"\"abc", "unterminated string"},
      {"\"a\x01\"", "control character"},
      {"\"\\x\"", "invalid escape"},
      {"\"\\u12g4\"", "invalid hex digit"},
      {"\"\\ud800\"", "unpaired high surrogate"},
      {"\"\\udc00\"", "unpaired low surrogate"},
      {"\"\xc3\"", "UTF-8"},
      {"\"\xc0\xaf\"", "invalid UTF-8"},
      {"\"\xed\xa0\x80\"", "invalid UTF-8"},
      {"tru", "expected 'true'"},
      {"nul", "expected 'null'"},
      {"@", "unexpected character"},
  };
  for (const auto& [text, expected] : cases) {
    try {
      parse_json(text, "case.json");
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("case.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find(expected), std::string::npos) << "for " << text << ": " << msg;
    }
  }
}

TEST(Json, RejectsDeepNestingWithoutRecursionBlowup) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  try {
    parse_json(deep, "deep");
    ADD_FAILURE() << "accepted deep nesting";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nesting deeper than"), std::string::npos) << e.what();
  }
  std::string ok = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_NO_THROW(parse_json(ok, "ok"));
}

}  // namespace
}  // namespace resin::io
