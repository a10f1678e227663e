// Parsing of core responses "[TYPE] [TOKEN] JSON"; PONG and SYNCLOGS carry an extra "[] "
// (protocol.md 2.3). Hand-written (no std::regex): responses can be megabytes long.
// Reentrant.
#pragma once

#include <cctype>
#include <optional>
#include <string>
#include <string_view>

namespace gorgone::protocol {

struct Response {
  std::string type, token, json;
};

inline std::optional<Response> parse_response(std::string_view t) {
  auto is_ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  std::size_t i = 0;
  auto bracket = [&](std::string& out) {
    if (i >= t.size() || t[i] != '[') return false;
    std::size_t end = t.find(']', i + 1);
    if (end == std::string_view::npos) return false;
    out.assign(t.substr(i + 1, end - i - 1));
    i = end + 1;
    return true;
  };
  auto skip_ws = [&]() {
    std::size_t start = i;
    while (i < t.size() && is_ws(t[i])) ++i;
    return i > start;
  };
  Response r;
  if (!bracket(r.type) || r.type.empty()) return std::nullopt;
  for (char c : r.type)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == ':')) return std::nullopt;
  if (!skip_ws() || !bracket(r.token)) return std::nullopt;
  skip_ws();
  if (i < t.size() && t[i] == '[') {
    std::string ignored;
    if (!bracket(ignored)) return std::nullopt;
    skip_ws();
  }
  r.json.assign(t.substr(i));
  return r;
}

}  // namespace gorgone::protocol
