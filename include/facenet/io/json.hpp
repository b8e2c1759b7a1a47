// A small strict JSON parser and writer (RFC 8259) for safetensors headers and fixture indexes.
// Strict on purpose: no comments, no trailing commas, no control characters in strings, bounded
// nesting depth, and integers kept exact (safetensors offsets must not pass through a double).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "facenet/core/error.hpp"

namespace facenet::io {

class json_value {
 public:
  enum class kind { null, boolean, integer, number, string, array, object };

  json_value() = default;
  static json_value make_bool(bool b) { json_value v; v.kind_ = kind::boolean; v.bool_ = b; return v; }
  static json_value make_int(std::int64_t i) { json_value v; v.kind_ = kind::integer; v.int_ = i; return v; }
  static json_value make_number(double d) { json_value v; v.kind_ = kind::number; v.number_ = d; return v; }
  static json_value make_string(std::string s) { json_value v; v.kind_ = kind::string; v.string_ = std::move(s); return v; }
  static json_value make_array() { json_value v; v.kind_ = kind::array; return v; }
  static json_value make_object() { json_value v; v.kind_ = kind::object; return v; }

  kind type() const noexcept { return kind_; }
  bool is_null() const noexcept { return kind_ == kind::null; }
  bool is_string() const noexcept { return kind_ == kind::string; }
  bool is_integer() const noexcept { return kind_ == kind::integer; }
  bool is_array() const noexcept { return kind_ == kind::array; }
  bool is_object() const noexcept { return kind_ == kind::object; }

  bool as_bool(const std::string& what) const { expect(kind::boolean, what); return bool_; }
  std::int64_t as_int(const std::string& what) const { expect(kind::integer, what); return int_; }
  double as_number(const std::string& what) const {
    if (kind_ == kind::integer) return static_cast<double>(int_);
    expect(kind::number, what);
    return number_;
  }
  const std::string& as_string(const std::string& what) const { expect(kind::string, what); return string_; }
  const std::vector<json_value>& as_array(const std::string& what) const { expect(kind::array, what); return items_; }
  // Object members in document order.
  const std::vector<std::pair<std::string, json_value>>& members(const std::string& what) const {
    expect(kind::object, what);
    return members_;
  }
  const json_value* find(const std::string& key) const {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &members_[it->second].second;
  }

  void push_back(json_value v) { items_.push_back(std::move(v)); }
  // Adds a member; duplicate keys are an error (RFC 8259 leaves them undefined, safetensors rejects them).
  void set(std::string key, json_value v) {
    FACENET_CHECK(index_.emplace(key, members_.size()).second, format_error, "JSON: duplicate key \"" + key + "\"");
    members_.emplace_back(std::move(key), std::move(v));
  }

  static const char* kind_name(kind k) noexcept {
    switch (k) {
      case kind::null: return "null";
      case kind::boolean: return "boolean";
      case kind::integer: return "integer";
      case kind::number: return "number";
      case kind::string: return "string";
      case kind::array: return "array";
      case kind::object: return "object";
    }
    return "?";
  }

 private:
  void expect(kind k, const std::string& what) const {
    FACENET_CHECK(kind_ == k, format_error,
                  what + ": expected a JSON " + kind_name(k) + ", found " + kind_name(kind_));
  }

  kind kind_ = kind::null;
  bool bool_ = false;
  std::int64_t int_ = 0;
  double number_ = 0;
  std::string string_;
  std::vector<json_value> items_;
  std::vector<std::pair<std::string, json_value>> members_;
  std::map<std::string, std::size_t> index_;  // key -> position in members_
};

namespace detail {

class json_parser {
 public:
  static constexpr int max_depth = 64;

  json_parser(const std::string& text, std::string what) : s_(text), what_(std::move(what)) {}

  json_value parse_document() {
    json_value v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    throw format_error(what_ + ": invalid JSON at offset " + std::to_string(pos_) + ": " + msg);
  }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  char peek() {
    skip_ws();
    if (pos_ >= s_.size()) fail("unexpected end of input");
    return s_[pos_];
  }
  void expect_char(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  void expect_word(const char* w) {
    const std::size_t n = std::char_traits<char>::length(w);
    if (s_.compare(pos_, n, w) != 0) fail(std::string("expected '") + w + "'");
    pos_ += n;
  }

  json_value parse_value(int depth) {
    if (depth > max_depth) fail("nesting deeper than " + std::to_string(max_depth));
    const char c = peek();
    switch (c) {
      case '{': return parse_object(depth);
      case '[': return parse_array(depth);
      case '"': return json_value::make_string(parse_string());
      case 't': expect_word("true"); return json_value::make_bool(true);
      case 'f': expect_word("false"); return json_value::make_bool(false);
      case 'n': expect_word("null"); return json_value();
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
        fail(std::string("unexpected character '") + c + "'");
    }
  }
  json_value parse_object(int depth) {
    json_value obj = json_value::make_object();
    ++pos_;
    if (peek() == '}') {
      ++pos_;
      return obj;
    }
    for (;;) {
      if (peek() != '"') fail("expected a string key");
      std::string key = parse_string();
      expect_char(':');
      json_value v = parse_value(depth + 1);
      if (obj.find(key)) fail("duplicate key \"" + key + "\"");
      obj.set(std::move(key), std::move(v));
      const char c = peek();
      ++pos_;
      if (c == '}') return obj;
      if (c != ',') fail("expected ',' or '}'");
    }
  }
  json_value parse_array(int depth) {
    json_value arr = json_value::make_array();
    ++pos_;
    if (peek() == ']') {
      ++pos_;
      return arr;
    }
    for (;;) {
      arr.push_back(parse_value(depth + 1));
      const char c = peek();
      ++pos_;
      if (c == ']') return arr;
      if (c != ',') fail("expected ',' or ']'");
    }
  }
  unsigned hex4() {
    if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
      else fail("bad hex digit in \\u escape");
    }
    return v;
  }
  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  // Validates one UTF-8 sequence starting at pos_ and copies it.
  void copy_utf8(std::string& out) {
    const auto b0 = static_cast<unsigned char>(s_[pos_]);
    int n = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xe ? 3 : (b0 >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || pos_ + static_cast<std::size_t>(n) > s_.size()) fail("invalid UTF-8");
    unsigned cp = n == 1 ? b0 : n == 2 ? (b0 & 0x1f) : n == 3 ? (b0 & 0x0f) : (b0 & 0x07);
    for (int i = 1; i < n; ++i) {
      const auto b = static_cast<unsigned char>(s_[pos_ + static_cast<std::size_t>(i)]);
      if ((b & 0xc0) != 0x80) fail("invalid UTF-8");
      cp = (cp << 6) | (b & 0x3f);
    }
    const unsigned min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) fail("invalid UTF-8");
    out.append(s_, pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
  }
  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) fail("unterminated string");
      const char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        copy_utf8(out);
        continue;
      }
      if (++pos_ >= s_.size()) fail("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xdc00 && cp <= 0xdfff) fail("lone low surrogate");
          if (cp >= 0xd800 && cp <= 0xdbff) {
            if (s_.compare(pos_, 2, "\\u") != 0) fail("high surrogate without a low one");
            pos_ += 2;
            const unsigned lo = hex4();
            if (lo < 0xdc00 || lo > 0xdfff) fail("high surrogate without a low one");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          append_utf8(out, cp);
          break;
        }
        default: fail(std::string("bad escape '\\") + e + "'");
      }
    }
  }
  json_value parse_number() {
    const std::size_t start = pos_;
    if (s_[pos_] == '-') ++pos_;
    auto digits = [&] {
      const std::size_t d0 = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      if (pos_ == d0) fail("expected a digit");
    };
    if (pos_ < s_.size() && s_[pos_] == '0') {
      ++pos_;  // no leading zeros
    } else {
      digits();
    }
    bool integral = true;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      digits();
      integral = false;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      digits();
      integral = false;
    }
    const std::string text = s_.substr(start, pos_ - start);
    if (integral) {
      // Exact int64, or a range error rather than a silently rounded offset.
      const bool neg = text[0] == '-';
      std::uint64_t mag = 0;
      for (std::size_t i = neg ? 1 : 0; i < text.size(); ++i) {
        const unsigned d = static_cast<unsigned>(text[i] - '0');
        if (mag > (UINT64_MAX - d) / 10) fail("integer " + text + " out of range");
        mag = mag * 10 + d;
      }
      if (mag > (neg ? 9223372036854775808ull : 9223372036854775807ull)) fail("integer " + text + " out of range");
      return json_value::make_int(neg ? static_cast<std::int64_t>(0 - mag) : static_cast<std::int64_t>(mag));
    }
    const double d = std::strtod(text.c_str(), nullptr);
    if (!std::isfinite(d)) fail("number " + text + " out of range");
    return json_value::make_number(d);
  }

  const std::string& s_;
  std::string what_;
  std::size_t pos_ = 0;
};

inline void json_escape(std::string& out, const std::string& s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

inline void json_write(std::string& out, const json_value& v) {
  using kind = json_value::kind;
  switch (v.type()) {
    case kind::null: out += "null"; break;
    case kind::boolean: out += v.as_bool("") ? "true" : "false"; break;
    case kind::integer: out += std::to_string(v.as_int("")); break;
    case kind::number: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", v.as_number(""));  // round-trips every double
      out += buf;
      break;
    }
    case kind::string: json_escape(out, v.as_string("")); break;
    case kind::array: {
      out += '[';
      bool first = true;
      for (const auto& item : v.as_array("")) {
        if (!first) out += ',';
        first = false;
        json_write(out, item);
      }
      out += ']';
      break;
    }
    case kind::object: {
      out += '{';
      bool first = true;
      for (const auto& m : v.members("")) {
        if (!first) out += ',';
        first = false;
        json_escape(out, m.first);
        out += ':';
        json_write(out, m.second);
      }
      out += '}';
      break;
    }
  }
}

}  // namespace detail

// Parses a complete JSON document; `what` names the source in error messages.
inline json_value parse_json(const std::string& text, const std::string& what = "JSON") {
  return detail::json_parser(text, what).parse_document();
}
// Compact serialisation (no whitespace), members in insertion order.
inline std::string to_json(const json_value& v) {
  std::string out;
  detail::json_write(out, v);
  return out;
}

}  // namespace facenet::io
