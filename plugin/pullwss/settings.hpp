// The pullwss module's directives. Gorgone's modules/core/pullwss reads address, port, ssl,
// token, proxy and max_msg_size; it never verifies the central's certificate (its user agent
// is always "insecure" with ssl) and its keep-alive period and inactivity timeout are fixed
// (60 s, 120 s). Here the certificate is verified unless ssl_insecure says otherwise
// (ssl_ca_file names the authority to trust), and ping, ping_timeout and max_message_size
// are directives.
// Thread-safety: reentrant functions on values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>
#include <yaml-cpp/yaml.h>

#include "gorgone/result.hpp"

namespace gorgone::pullwss {

// An HTTP proxy the connection goes through with CONNECT (Gorgone's `proxy`, an URL).
struct ProxyUrl {
  std::string host;
  std::string port;
  std::string credentials;  // "user:password" when the URL has them, sent as Basic auth
};

struct Settings {
  std::string address;            // the central's websocket listener
  std::string port;               // 1-65535, as text
  bool ssl = false;               // wss:// (TLS) instead of ws://
  bool ssl_insecure = false;      // true: the central's certificate is not verified (Gorgone's behaviour)
  std::string ssl_ca_file;        // "" : the system's authorities
  std::string token;              // sent as "Authorization: Bearer <token>"; never logged
  std::string proxy;              // "" or http://[user[:password]@]host:port
  ProxyUrl proxy_url;             // parsed from proxy
  std::int64_t ping = 60;         // s between two REGISTERNODES keep-alives (Gorgone: every 60 s)
  std::int64_t ping_timeout = 180;  // s without any message from the central before a new connection
  std::int64_t max_message_size = 64LL << 20;  // bytes: nothing larger is sent
  std::vector<std::string> warnings;  // for the log: unknown or ignored directives

  // "ws://<address>:<port>/" or "wss://...": what logs name (never the token).
  std::string url() const;
  // The HTTP Host header, "<address>:<port>" (brackets around an IPv6 address).
  std::string host_header() const;
};

// Reads the directives. Errors name the directive and the value:
// "pullwss: directive 'port' must be an integer between 1 and 65535, got 'x'"
// (the token's value is never repeated in a message).
Result<Settings> parse_settings(const YAML::Node& module_config);

// "http://[user[:password]@]host:port[/]" -> its parts; errors say what is wrong without
// repeating the credentials.
Result<ProxyUrl> parse_proxy_url(const std::string& url);

}  // namespace gorgone::pullwss
