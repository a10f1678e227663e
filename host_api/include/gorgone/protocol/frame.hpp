// Gorgone frame text: "[ACTION] [TOKEN] [TARGET] DATA" and the response forms.
// Thread-safety: all functions are reentrant.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace gorgone::protocol {

struct Frame {
  std::string action;
  std::string token;
  std::string target;
  std::string data;  // raw JSON text as received (not decoded)
};

// Parses with the core's rule: /^\[(.+?)\]\s+\[(.*?)\]\s+\[(.*?)\]\s+/ then DATA is the rest.
// Returns nullopt when the text does not match (the caller answers
// "request not well formatted").
std::optional<Frame> parse_frame(std::string_view text);

// "[ACTION] [TOKEN] [TARGET] DATA"; empty data becomes "{}".
std::string build_frame(std::string_view action, std::string_view token, std::string_view target,
                        std::string_view data);
inline std::string build_frame(const Frame& f) { return build_frame(f.action, f.token, f.target, f.data); }

// Core response "[TYPE] [TOKEN] {"code":C,"data":DATA}"; TYPE PONG and SYNCLOGS get an extra
// "[] " before the JSON (protocol.md 2.3). data_json is pasted as is ("null" when empty).
std::string build_response(std::string_view type, std::string_view token, int code,
                           std::string_view data_json);

// Random lowercase hex token of `bytes` random bytes (default 64 -> 128 hex chars).
std::string generate_token(std::size_t bytes = 64);

// True for a token that is safe to use in a file name: ^[A-Za-z0-9_-]{1,256}$.
bool is_safe_token(std::string_view token);

}  // namespace gorgone::protocol
