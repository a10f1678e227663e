// Small RapidJSON helpers shared by the host and modules. Header-only, reentrant.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace gorgone::json {

using Value = rapidjson::Value;
using Document = rapidjson::Document;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// Limits applied to every parse: text from a REST caller or a node is hostile until parsed.
// Gorgone's own messages nest a few levels (a chain of remotes adds two per hop) and a log-sync
// page is bounded by the sender's max_frame_size.
inline constexpr std::size_t kMaxDepth = 64;
inline constexpr std::size_t kMaxTextSize = std::size_t{1} << 31;

// What a scan of the raw text found before any parse.
struct TextCheck {
  std::size_t depth = 0;  // deepest array/object nesting (stops counting past the limit)
  std::string error;      // non-empty: refuse the text
};

// Number tokens a parse could mishandle: rapidjson 1.1.0's full-precision path reads past its
// table of cached powers for a value beyond ~1e308 written with many digits, and overflows an
// int on exponents of ten digits, computes table indexes out of range below ~1e-320, and a value
// of 1e308 or more would become infinity, which no writer can put back, and it misreads a zero
// with a large exponent. So a number must be within [1e-300, 1e308] in magnitude, or a zero with
// an exponent of at most 22: no Gorgone peer writes anything else. 1e308 itself is in because a
// value just under it (9.99...e307 with enough nines) is read as 1e308, and what was accepted
// must be accepted again once written back.
inline std::string check_number(std::string_view n) {
  if (n.size() > 400) return "JSON number longer than 400 characters";
  std::size_t i = 0;
  if (i < n.size() && (n[i] == '-' || n[i] == '+')) ++i;
  long magnitude = 0;  // decimal exponent of the leading significant digit, roughly
  bool significant = false;
  long leading_fraction_zeros = 0;
  char head[21];  // the first 21 significant digits, decimal point left out
  std::size_t head_size = 0;
  bool nonzero_after_first = false;  // a significant digit after the first one is not 0
  auto keep = [&](char digit) {
    if (head_size > 0 && digit != '0') nonzero_after_first = true;
    if (head_size < sizeof head) head[head_size] = digit;
    ++head_size;
  };
  for (; i < n.size() && n[i] >= '0' && n[i] <= '9'; ++i)
    if (significant || n[i] != '0') {
      significant = true, ++magnitude;
      keep(n[i]);
    }
  if (i < n.size() && n[i] == '.')
    for (++i; i < n.size() && n[i] >= '0' && n[i] <= '9'; ++i) {
      if (!significant) {
        if (n[i] == '0') ++leading_fraction_zeros;
        else significant = true;
      }
      if (significant) keep(n[i]);
    }
  // Its DiyFp path reads up to 20 significant digits into a uint64 and rounds up on the next one:
  // 18446744073709551615 followed by a digit of 5 or more wraps to zero (a clz(0), garbage out).
  if (head_size >= sizeof head && std::string_view(head, 20) == "18446744073709551615" && head[20] >= '5')
    return "JSON number with 2^64-1 as its leading digits, which this parser cannot read exactly";
  if (magnitude == 0) magnitude = -leading_fraction_zeros;
  long exponent = 0;
  if (i < n.size() && (n[i] == 'e' || n[i] == 'E')) {
    ++i;
    bool negative = i < n.size() && n[i] == '-';
    if (i < n.size() && (n[i] == '-' || n[i] == '+')) ++i;
    std::size_t digits = 0;
    for (; i < n.size() && n[i] >= '0' && n[i] <= '9'; ++i)
      if (++digits <= 6) exponent = exponent * 10 + (n[i] - '0');
    if (digits > 6) return "JSON number with an exponent of more than 6 digits";
    if (negative) exponent = -exponent;
  }
  // A zero is read right only on the fast path (power of ten within 22): "0e300" came out -1.7e-21.
  long power = exponent - leading_fraction_zeros;  // as the parser scales a zero
  if (!significant) return power > 22 || power < -22 ? "JSON number out of range" : std::string();
  const bool exactly_1e308 = magnitude + exponent == 309 && head[0] == '1' && !nonzero_after_first;
  if ((magnitude + exponent > 308 && !exactly_1e308) || magnitude + exponent < -300) return "JSON number out of range";
  return std::string();
}

// One linear pass over the raw text, no recursion: the deepest array/object nesting (counting
// brackets outside strings, stopping as soon as `max_depth` is exceeded) and number tokens that
// must not reach the parser. On text that is not JSON the figures may be off, which the parser
// then refuses anyway.
inline TextCheck scan(std::string_view text, std::size_t max_depth = kMaxDepth) {
  TextCheck out;
  std::size_t depth = 0;
  bool in_string = false, escaped = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > out.depth && (out.depth = depth) > max_depth) return out;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      std::size_t end = i;
      while (end < text.size() && ((text[end] >= '0' && text[end] <= '9') || text[end] == '.' || text[end] == 'e' ||
                                   text[end] == 'E' || text[end] == '-' || text[end] == '+'))
        ++end;
      out.error = check_number(text.substr(i, end - i));
      if (!out.error.empty()) return out;
      i = end - 1;
    }
  }
  return out;
}

// Parses `text` into `doc`; on failure returns false with a message in `error`.
// - Iterative parser (no recursion on the input) after a scan of the text: a value nested deeper
//   than max_depth, text longer than max_size or a number the parser could mishandle is refused
//   before any parse, so nothing that walks the document later (dump, Accept) recurses deeply.
// - Full precision: the default fast path can be a few ULPs off, and a log-sync cursor (a ctime
//   double) must come back bit for bit or a row is synced twice or skipped.
inline bool parse(Document& doc, std::string_view text, std::string* error = nullptr,
                  std::size_t max_depth = kMaxDepth, std::size_t max_size = kMaxTextSize) {
  auto fail = [&](std::string why) {
    doc.SetNull();
    if (error) *error = std::move(why);
    return false;
  };
  if (text.size() > max_size)
    return fail("JSON text of " + std::to_string(text.size()) + " bytes is larger than the limit of " +
                std::to_string(max_size) + " bytes");
  TextCheck check = scan(text, max_depth);
  if (check.depth > max_depth) return fail("JSON nested deeper than " + std::to_string(max_depth) + " levels");
  if (!check.error.empty()) return fail(std::move(check.error));
  doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseStopWhenDoneFlag | rapidjson::kParseFullPrecisionFlag>(
      text.data(), text.size());
  if (doc.HasParseError())
    return fail(std::string(rapidjson::GetParseError_En(doc.GetParseError())) + " at offset " +
                std::to_string(doc.GetErrorOffset()));
  return true;
}

inline std::string dump(const Value& v) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  v.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

// Gorgone ids, ports, codes may be JSON strings or numbers: read either as text.
inline std::optional<std::string> as_text(const Value& v) {
  if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
  if (v.IsInt64()) return std::to_string(v.GetInt64());
  if (v.IsUint64()) return std::to_string(v.GetUint64());
  if (v.IsDouble()) {
    double d = v.GetDouble();
    if (d == static_cast<double>(static_cast<std::int64_t>(d))) return std::to_string(static_cast<std::int64_t>(d));
    return std::to_string(d);
  }
  return std::nullopt;
}

inline std::optional<std::string> member_text(const Value& obj, const char* name) {
  if (!obj.IsObject()) return std::nullopt;
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd()) return std::nullopt;
  return as_text(it->value);
}

// Number or numeric string -> double.
inline std::optional<double> as_number(const Value& v) {
  if (v.IsNumber()) return v.GetDouble();
  if (v.IsString()) {
    const char* s = v.GetString();
    char* end = nullptr;
    double d = std::strtod(s, &end);
    if (end != s && *end == '\0') return d;
  }
  return std::nullopt;
}

inline std::string quote(std::string_view s) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  return std::string(sb.GetString(), sb.GetSize());
}

// {"message":"<text>"}
inline std::string message(std::string_view text) { return "{\"message\":" + quote(text) + "}"; }

// {"error":"<error>","message":"<text>"}: Gorgone's error answer (both often name peer text).
inline std::string error_message(std::string_view error, std::string_view text) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("error");
  w.String(error.data(), static_cast<rapidjson::SizeType>(error.size()));
  w.Key("message");
  w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace gorgone::json
