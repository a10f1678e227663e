// The proxy module's directives, with Gorgone's defaults.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <yaml-cpp/yaml.h>

#include "gorgone/result.hpp"
#include "wss_server.hpp"

namespace gorgone::proxy {

struct Settings {
  int pool = 5;                          // worker threads
  std::int64_t synchistory_time = 60;    // s between full log syncs
  std::int64_t synchistory_timeout = 30; // s before a GETLOG is abandoned
  std::int64_t ping = 60;                // s between pings of a node
  std::int64_t pong_discard_timeout = 300;
  std::int64_t pong_max_timeout = 3;
  std::int64_t buffer_size = 150000;     // REMOTECOPY chunk bytes
  std::int64_t handshake_timeout = 10;   // s per handshake step
  std::size_t max_queue = 10000;         // frames held per node while it is unreachable
  // Largest message accepted from a node (ZMQ_MAXMSGSIZE): a bigger one closes the connection
  // instead of being buffered, as the external router does with gorgonecore.max_frame_size.
  std::int64_t max_frame_size = 64 << 20;
  // The WebSocket listener for wss/pullwss pollers (the `httpserver:` block), when enabled.
  std::optional<WssConfig> wss;
};

// Errors name the directive: "proxy: directive 'pool' must be an integer between 1 and 256, got 'x'".
Result<Settings> parse_settings(const YAML::Node& module_config);

}  // namespace gorgone::proxy
