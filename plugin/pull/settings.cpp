#include "settings.hpp"

#include <algorithm>
#include <cctype>

namespace gorgone::pull {
namespace {

// Keys of a module entry the core reads, and this module's directives.
const char* const kKnown[] = {"name",          "package",        "enable",        "target_type", "target_path",
                              "ping",          "ping_timeout",   "client_pubkey", "client_privkey",
                              "server_pubkey", "cipher",         "vector"};

std::string shown(const YAML::Node& n) { return n.IsScalar() ? n.Scalar() : std::string("<not a scalar>"); }

Status read_int(const YAML::Node& config, const char* name, std::int64_t min, std::int64_t max, std::int64_t& out) {
  const YAML::Node n = config[name];
  if (!n || n.IsNull()) return Status::success();
  std::string v = shown(n);
  bool digits = !v.empty() && v.size() <= 12 &&
                std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c); });
  std::int64_t value = digits ? std::stoll(v) : -1;
  if (!digits || value < min || value > max)
    return Status::failure(std::string("pull: directive '") + name + "' must be an integer between " +
                           std::to_string(min) + " and " + std::to_string(max) + ", got '" + v + "'");
  out = value;
  return Status::success();
}

// A text directive: absent or null leaves `out`; anything but a scalar is an error.
Status read_text(const YAML::Node& config, const char* name, std::string& out) {
  const YAML::Node n = config[name];
  if (!n || n.IsNull()) return Status::success();
  if (!n.IsScalar()) return Status::failure(std::string("pull: directive '") + name + "' must be a string");
  out = n.Scalar();
  return Status::success();
}

bool has_space(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c) || std::iscntrl(c); });
}

Status check_target_path(const std::string& type, const std::string& path) {
  if (path.empty()) return Status::failure("pull: directive 'target_path' is required (the central's external router, <host>:<port>)");
  if (has_space(path)) return Status::failure("pull: directive 'target_path' must not contain spaces, got '" + path + "'");
  if (type == "ipc") return Status::success();
  std::size_t colon = path.rfind(':');
  std::string host = colon == std::string::npos ? std::string() : path.substr(0, colon);
  std::string port = colon == std::string::npos ? std::string() : path.substr(colon + 1);
  bool digits = !port.empty() && port.size() <= 5 &&
                std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); });
  if (host.empty() || !digits || std::stoi(port) < 1 || std::stoi(port) > 65535 || host == "*")
    return Status::failure("pull: directive 'target_path' must be <host>:<port> with a port 1-65535, got '" + path + "'");
  return Status::success();
}

}  // namespace

Result<Settings> parse_settings(const YAML::Node& config, const CoreInfo& core) {
  Settings s;
  if (!config || config.IsNull()) return make_error("pull: directive 'target_path' is required (the central's external router, <host>:<port>)");
  if (!config.IsMap()) return make_error("pull: the module configuration must be a map");
  for (const auto& kv : config) {
    std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("<not a scalar>");
    if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown))
      s.warnings.push_back("unknown directive '" + key + "' ignored");
  }
  for (auto [name, out] : {std::pair<const char*, std::string*>{"target_type", &s.target_type},
                           {"target_path", &s.target_path},
                           {"client_pubkey", &s.client_pubkey},
                           {"client_privkey", &s.client_privkey},
                           {"server_pubkey", &s.server_pubkey}}) {
    Status st = read_text(config, name, *out);
    if (!st) return make_error(st.message());
  }
  // Unused by Gorgone too (the central chooses cipher and IV), but they must be text.
  std::string unused;
  for (const char* name : {"cipher", "vector"}) {
    Status st = read_text(config, name, unused);
    if (!st) return make_error(st.message());
  }
  if (s.target_type != "tcp" && s.target_type != "ipc")
    return make_error("pull: directive 'target_type' must be tcp or ipc, got '" + s.target_type + "'");
  Status st = check_target_path(s.target_type, s.target_path);
  if (!st) return make_error(st.message());
  st = read_int(config, "ping", 0, 86400, s.ping);
  if (!st) return make_error(st.message());
  st = read_int(config, "ping_timeout", 1, 86400, s.ping_timeout);
  if (!st) return make_error(st.message());
  // Gorgone: an empty key path means the core's.
  if (s.client_pubkey.empty()) s.client_pubkey = core.pubkey_path;
  if (s.client_privkey.empty()) s.client_privkey = core.privkey_path;
  if (s.client_privkey.empty()) return make_error("pull: directive 'client_privkey' is empty and the core has no privkey");
  if (s.client_pubkey.empty()) return make_error("pull: directive 'client_pubkey' is empty and the core has no pubkey");
  return s;
}

Result<protocol::RsaKey> load_client_key(const Settings& s) {
  auto priv = protocol::RsaKey::load_private_file(s.client_privkey);
  if (!priv) return make_error("pull: directive 'client_privkey': " + priv.error());
  auto pub = protocol::RsaKey::load_public_file(s.client_pubkey);
  if (!pub) return make_error("pull: directive 'client_pubkey': " + pub.error());
  if (pub->jwk_thumbprint() != priv->jwk_thumbprint())
    return make_error("pull: directive 'client_pubkey' ('" + s.client_pubkey + "') is not the public key of client_privkey ('" +
                      s.client_privkey + "')");
  if (!s.server_pubkey.empty()) {
    auto server = protocol::RsaKey::load_public_file(s.server_pubkey);
    if (!server) return make_error("pull: directive 'server_pubkey': " + server.error());
  }
  return std::move(priv.value());
}

}  // namespace gorgone::pull
