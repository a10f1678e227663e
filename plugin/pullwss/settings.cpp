#include "settings.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>

namespace gorgone::pullwss {
namespace {

// Keys of a module entry the core reads, and this module's directives.
const char* const kKnown[] = {"name",         "package", "enable",       "address", "port",
                              "ssl",          "ssl_insecure", "ssl_ca_file", "token", "proxy",
                              "ping",         "ping_timeout", "max_message_size", "max_msg_size"};

std::string shown(const YAML::Node& n) { return n.IsScalar() ? n.Scalar() : std::string("<not a scalar>"); }

std::string error(const char* name, const std::string& what) {
  return std::string("pullwss: directive '") + name + "' " + what;
}

bool all_digits(const std::string& v) {
  return !v.empty() && std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c); });
}

Status read_int(const YAML::Node& config, const char* name, std::int64_t min, std::int64_t max, std::int64_t& out) {
  const YAML::Node n = config[name];
  if (!n || n.IsNull()) return Status::success();
  std::string v = shown(n);
  bool digits = all_digits(v) && v.size() <= 12;
  std::int64_t value = digits ? std::stoll(v) : -1;
  if (!digits || value < min || value > max)
    return Status::failure(error(name, "must be an integer between " + std::to_string(min) + " and " +
                                           std::to_string(max) + ", got '" + v + "'"));
  out = value;
  return Status::success();
}

Status read_text(const YAML::Node& config, const char* name, std::string& out) {
  const YAML::Node n = config[name];
  if (!n || n.IsNull()) return Status::success();
  if (!n.IsScalar()) return Status::failure(error(name, "must be a string"));
  out = n.Scalar();
  return Status::success();
}

// YAML true/false (Gorgone compares ssl with the string 'true'; 'false' and absent are off).
Status read_bool(const YAML::Node& config, const char* name, bool& out) {
  const YAML::Node n = config[name];
  if (!n || n.IsNull()) return Status::success();
  std::string v = shown(n);
  std::string lower(v);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower == "true" || lower == "yes" || lower == "on" || lower == "1") {
    out = true;
  } else if (lower == "false" || lower == "no" || lower == "off" || lower == "0") {
    out = false;
  } else {
    return Status::failure(error(name, "must be true or false, got '" + v + "'"));
  }
  return Status::success();
}

bool has_space(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c) || std::iscntrl(c); });
}

bool valid_port(const std::string& p) { return all_digits(p) && p.size() <= 5 && std::stoi(p) >= 1 && std::stoi(p) <= 65535; }

}  // namespace

std::string Settings::url() const { return std::string(ssl ? "wss" : "ws") + "://" + host_header() + "/"; }

std::string Settings::host_header() const {
  bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + port;
}

Result<ProxyUrl> parse_proxy_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.compare(0, scheme.size(), scheme) != 0)
    return make_error("pullwss: directive 'proxy' must be an http:// URL (http://[user[:password]@]host:port)");
  std::string rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  ProxyUrl p;
  std::size_t at = rest.rfind('@');
  if (at != std::string::npos) {
    p.credentials = rest.substr(0, at);
    rest = rest.substr(at + 1);
  }
  if (has_space(rest) || rest.find('/') != std::string::npos)
    return make_error("pullwss: directive 'proxy' must be http://[user[:password]@]host:port, with no path");
  std::size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return make_error("pullwss: directive 'proxy' must name a host and a port (http://host:port)");
  p.host = rest.substr(0, colon);
  p.port = rest.substr(colon + 1);
  if (p.host.size() > 2 && p.host.front() == '[' && p.host.back() == ']') p.host = p.host.substr(1, p.host.size() - 2);
  if (!valid_port(p.port)) return make_error("pullwss: directive 'proxy' must have a port between 1 and 65535");
  return p;
}

Result<Settings> parse_settings(const YAML::Node& config) {
  Settings s;
  if (!config || config.IsNull() || !config.IsMap()) return make_error("pullwss: the module configuration must be a map");
  for (const auto& kv : config) {
    std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("<not a scalar>");
    if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown))
      s.warnings.push_back("unknown directive '" + key + "' ignored");
  }
  for (auto [name, out] : {std::pair<const char*, std::string*>{"address", &s.address},
                           {"ssl_ca_file", &s.ssl_ca_file},
                           {"token", &s.token},
                           {"proxy", &s.proxy}}) {
    Status st = read_text(config, name, *out);
    if (!st) return make_error(st.message());
  }
  // Gorgone: "port option mandatory" unless digits.
  const YAML::Node port = config["port"];
  if (!port || port.IsNull()) return make_error("pullwss: directive 'port' is required (the central's websocket listener)");
  s.port = shown(port);
  if (!valid_port(s.port)) return make_error("pullwss: directive 'port' must be an integer between 1 and 65535, got '" + s.port + "'");
  if (s.address.find_first_not_of(" \t") == std::string::npos)
    return make_error("pullwss: directive 'address' is required (the central's websocket listener)");
  if (has_space(s.address) || s.address.find('/') != std::string::npos)
    return make_error("pullwss: directive 'address' must be a host name or an address, got '" + s.address + "'");
  if (s.address.size() > 2 && s.address.front() == '[' && s.address.back() == ']')
    s.address = s.address.substr(1, s.address.size() - 2);
  if (s.token.find_first_not_of(" \t") == std::string::npos)
    return make_error("pullwss: directive 'token' is required (the central's httpserver token)");
  // It goes into an HTTP header: a line break would split it.
  if (std::any_of(s.token.begin(), s.token.end(), [](unsigned char c) { return std::iscntrl(c); }))
    return make_error("pullwss: directive 'token' must not contain control characters");
  for (auto [name, out] : {std::pair<const char*, bool*>{"ssl", &s.ssl}, {"ssl_insecure", &s.ssl_insecure}}) {
    Status st = read_bool(config, name, *out);
    if (!st) return make_error(st.message());
  }
  if (!s.ssl_ca_file.empty()) {
    if (!std::ifstream(s.ssl_ca_file).good())
      return make_error("pullwss: directive 'ssl_ca_file': cannot read '" + s.ssl_ca_file + "'");
  }
  if (!s.proxy.empty()) {
    auto p = parse_proxy_url(s.proxy);
    if (!p) return make_error(p.error());
    s.proxy_url = std::move(p.value());
  }
  Status st = read_int(config, "ping", 1, 86400, s.ping);
  if (!st) return make_error(st.message());
  st = read_int(config, "ping_timeout", 0, 86400, s.ping_timeout);
  if (!st) return make_error(st.message());
  st = read_int(config, "max_message_size", 1024, 1LL << 30, s.max_message_size);
  if (!st) return make_error(st.message());
  std::int64_t unused = 0;
  st = read_int(config, "max_msg_size", 0, 1LL << 40, unused);
  if (!st) return make_error(st.message());
  if (config["max_msg_size"])
    s.warnings.push_back(
        "directive 'max_msg_size' ignored: log-sync answers are paged by the core (gorgonecore.getlog_max_bytes) "
        "and max_message_size bounds what is sent");
  if (s.ssl_insecure && !s.ssl) s.warnings.push_back("directive 'ssl_insecure' has no effect without ssl: true");
  if (!s.ssl_ca_file.empty() && !s.ssl) s.warnings.push_back("directive 'ssl_ca_file' has no effect without ssl: true");
  return s;
}

}  // namespace gorgone::pullwss
