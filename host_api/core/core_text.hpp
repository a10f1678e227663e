// Small text helpers shared by the host's core files: Gorgone's answer shapes, built with the
// JSON writer (they often carry peer text). Reentrant.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"

namespace gorgone::internal {

inline std::int64_t now_s() { return static_cast<std::int64_t>(::time(nullptr)); }

inline std::string hex_identity(const std::string& id) { return protocol::to_hex(id); }

inline std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// {"error":<error>,"message":<message>}, both quoted: the message often names peer text.
inline std::string error_json(std::string_view error, std::string_view message) {
  return json::error_message(error, message);
}

// {"action":<action>,"message":<message>[,"data":<data_json>]}: Gorgone's answer to an
// internal action. data_json is JSON this host built.
inline std::string action_json(std::string_view action, std::string_view message, std::string_view data_json = {}) {
  rapidjson::StringBuffer sb;
  json::Writer w(sb);
  w.StartObject();
  w.Key("action");
  w.String(action.data(), static_cast<rapidjson::SizeType>(action.size()));
  w.Key("message");
  w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
  if (!data_json.empty()) {
    w.Key("data");
    w.RawValue(data_json.data(), data_json.size(), rapidjson::kObjectType);
  }
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace gorgone::internal
