// Small RapidJSON helpers shared by the host and modules. Header-only, reentrant.
#pragma once

#include <cstdint>
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

// Parses `text`; nullopt-like error message in `error` when invalid.
// Full precision: the default fast path can be a few ULPs off, and a log-sync cursor
// (a ctime double) must come back bit for bit or a row is synced twice or skipped.
inline bool parse(Document& doc, std::string_view text, std::string* error = nullptr) {
  doc.Parse<rapidjson::kParseStopWhenDoneFlag | rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
  if (doc.HasParseError()) {
    if (error)
      *error = std::string(rapidjson::GetParseError_En(doc.GetParseError())) + " at offset " +
               std::to_string(doc.GetErrorOffset());
    return false;
  }
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

}  // namespace gorgone::json
