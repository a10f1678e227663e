#include "config.hpp"

#include <algorithm>
#include <cctype>
#include <unistd.h>

#include "history_sqlite.hpp"
#include "rest_request.hpp"

namespace gorgone {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string scalar(const YAML::Node& n, const std::string& fallback = "") {
  if (!n || n.IsNull()) return fallback;
  if (!n.IsScalar()) return fallback;
  return n.Scalar();
}

Error bad(const std::string& file, const std::string& key, const std::string& why) {
  return make_error(file + ": gorgone." + key + ": " + why);
}

Result<long long> integer(const YAML::Node& n, const std::string& file, const std::string& key,
                          long long fallback, long long min, long long max) {
  if (!n || n.IsNull()) return fallback;
  if (!n.IsScalar()) return bad(file, key, "must be a number");
  const std::string& s = n.Scalar();
  if (s.empty() || s.size() > 18 ||
      !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); }))
    return bad(file, key, "must be a non-negative integer, got '" + s + "'");
  long long v = std::stoll(s);
  if (v < min || v > max)
    return bad(file, key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  return v;
}

// Module packages the host implements itself instead of loading a shared object.
bool builtin_package(const std::string& name, const std::string& package, const std::string& what) {
  return name == what || package == "gorgone::modules::core::" + what + "::hooks";
}

// A libpq keyword value: single-quoted, with \\ and \' escaped, so that a password holding a
// space or a quote cannot add keywords of its own to the connection string.
std::string conninfo_quote(const std::string& v) {
  std::string out = "'";
  for (char ch : v) {
    if (ch == '\\' || ch == '\'') out.push_back('\\');
    out.push_back(ch);
  }
  return out + "'";
}

}  // namespace

bool yaml_true(const YAML::Node& node, bool fallback) {
  if (!node || node.IsNull() || !node.IsScalar()) return fallback;
  std::string v = lower(node.Scalar());
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off" || v.empty()) return false;
  return fallback;
}

Result<CoreConfig> parse_core_config(const YAML::Node& root, const std::string& file) {
  CoreConfig c;
  c.source_file = file;
  if (!root || !root.IsMap()) return make_error(file + ": the document must be a map");
  YAML::Node gorgone;
  if (root["configuration"] && root["configuration"].IsMap() && root["configuration"]["gorgone"])
    gorgone = root["configuration"]["gorgone"];
  else if (root["gorgone"])
    gorgone = root["gorgone"];
  if (!gorgone || !gorgone.IsMap())
    return make_error(file + ": no 'gorgone' section (expected configuration.gorgone or gorgone)");
  c.gorgone = gorgone;

  YAML::Node core = gorgone["gorgonecore"];
  if (!core || !core.IsMap()) return make_error(file + ": gorgone.gorgonecore is missing or not a map");

  c.id = scalar(core["id"]);
  if (!c.id.empty() && c.id.find("~~") != std::string::npos)
    return bad(file, "gorgonecore.id", "must not contain '~~'");
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  c.hostname = scalar(core["hostname"], host);
  c.privkey = scalar(core["privkey"], c.privkey);
  c.pubkey = scalar(core["pubkey"], c.pubkey);
  c.external_com_type = scalar(core["external_com_type"]);
  c.external_com_path = scalar(core["external_com_path"]);
  if (!c.external_com_type.empty() && c.external_com_type != "tcp" && c.external_com_type != "ipc")
    return bad(file, "gorgonecore.external_com_type", "ZMQ type '" + c.external_com_type + "' not managed (use tcp or ipc)");
  if (!c.external_com_type.empty() && c.external_com_path.empty())
    return bad(file, "gorgonecore.external_com_path", "is required with external_com_type");

  auto rotation = integer(core["external_com_rotation"], file, "gorgonecore.external_com_rotation", 1440, 1, 10000000);
  if (!rotation) return Error{rotation.error()};
  c.external_com_rotation = *rotation * 60;
  // Not in Gorgone: a rotation period in seconds, so that rotations can be exercised quickly.
  if (core["external_com_rotation_seconds"]) {
    auto seconds = integer(core["external_com_rotation_seconds"], file, "gorgonecore.external_com_rotation_seconds",
                           0, 1, 10000000);
    if (!seconds) return Error{seconds.error()};
    c.external_com_rotation = *seconds;
  }
  auto keysize = integer(core["external_com_keysize"], file, "gorgonecore.external_com_keysize", 32, 16, 32);
  if (!keysize) return Error{keysize.error()};
  if (*keysize != 16 && *keysize != 24 && *keysize != 32)
    return bad(file, "gorgonecore.external_com_keysize", "must be 16, 24 or 32");
  c.external_com_keysize = static_cast<std::size_t>(*keysize);
  auto max_sessions = integer(core["external_com_max_sessions"], file, "gorgonecore.external_com_max_sessions", 10000,
                              1, 1000000);
  if (!max_sessions) return Error{max_sessions.error()};
  c.external_com_max_sessions = static_cast<std::size_t>(*max_sessions);
  auto helo_rate = integer(core["external_com_helo_per_minute"], file, "gorgonecore.external_com_helo_per_minute", 600,
                           0, 1000000);
  if (!helo_rate) return Error{helo_rate.error()};
  c.external_com_helo_per_minute = static_cast<int>(*helo_rate);
  auto timeout = integer(core["timeout"], file, "gorgonecore.timeout", 50, 1, 3600);
  if (!timeout) return Error{timeout.error()};
  c.timeout = static_cast<int>(*timeout);
  auto maxframe = integer(core["max_frame_size"], file, "gorgonecore.max_frame_size", 64 << 20, 1024, 1LL << 31);
  if (!maxframe) return Error{maxframe.error()};
  c.max_frame_size = *maxframe;
  auto page = integer(core["getlog_max_rows"], file, "gorgonecore.getlog_max_rows", 10000, 1, 10000000);
  if (!page) return Error{page.error()};
  c.getlog_max_rows = *page;
  auto page_bytes = integer(core["getlog_max_bytes"], file, "gorgonecore.getlog_max_bytes", 4 << 20, 1024, 1LL << 31);
  if (!page_bytes) return Error{page_bytes.error()};
  c.getlog_max_bytes = *page_bytes;
  auto queue = integer(core["history_queue_rows"], file, "gorgonecore.history_queue_rows", 100000, 100, 10000000);
  if (!queue) return Error{queue.error()};
  c.history_queue = static_cast<std::size_t>(*queue);

  if (YAML::Node ac = core["authorized_clients"]) {
    if (!ac.IsSequence()) return bad(file, "gorgonecore.authorized_clients", "must be a list of {key: <thumbprint>}");
    for (const auto& e : ac) {
      std::string key = e.IsMap() ? scalar(e["key"]) : scalar(e);
      if (key.empty()) return bad(file, "gorgonecore.authorized_clients", "an entry has no 'key'");
      c.authorized_clients.push_back(key);
    }
  }

  // The history store (CoreConfig::db_type says which and why).
  const std::string db_type = scalar(core["gorgone_db_type"]);
  const std::string db_name = scalar(core["gorgone_db_name"]);
  bool pg_fields = false;
  for (const char* k : {"host", "port", "user", "password"})
    pg_fields |= !scalar(core[std::string("gorgone_db_") + k]).empty();
  if (!db_type.empty()) {
    if (lower(db_type) == "sqlite") c.db_type = "SQLite";
    else if (lower(db_type) == "pg" || lower(db_type) == "postgresql") c.db_type = "Pg";
    else
      return bad(file, "gorgonecore.gorgone_db_type",
                 "'" + db_type + "' is not supported: write 'gorgone_db_type: SQLite' with gorgone_db_name "
                 "'dbname=/var/lib/centreon-gorgone/history.sdb' (a poller), or 'gorgone_db_type: Pg' with a libpq "
                 "connection string in gorgone_db_name (e.g. 'host=/run/postgresql dbname=gorgone')");
  } else {
    std::string path = lower(db_name).rfind("dbname=", 0) == 0 ? db_name.substr(7) : db_name;
    bool sqlite_name = db_name.empty() || (path.size() > 1 && path[0] == '/' &&
                                           path.find_first_of(" \t'") == std::string::npos);
    c.db_type = sqlite_name && !pg_fields ? "SQLite" : "Pg";
    c.db_defaulted = db_name.empty() && !pg_fields;
  }
  if (c.db_type == "SQLite") {
    auto path = SqliteHistory::path_from_db_name(db_name);
    if (!path) return bad(file, "gorgonecore.gorgone_db_name", path.error());
    c.db_path = *path;
  } else {
    c.db_name = db_name;
    // Gorgone's optional separate fields, folded into the conninfo.
    for (const char* k : {"host", "port", "user", "password"}) {
      std::string v = scalar(core[std::string("gorgone_db_") + k]);
      if (!v.empty()) c.db_name += std::string(c.db_name.empty() ? "" : " ") + k + "=" + conninfo_quote(v);
    }
  }

  std::string mode = lower(scalar(core["fingerprint_mode"], "first"));
  while (!mode.empty() && std::isspace(static_cast<unsigned char>(mode.front()))) mode.erase(0, 1);
  if (mode.rfind("always", 0) == 0) c.fingerprint_mode = "always";
  else if (mode.rfind("strict", 0) == 0) c.fingerprint_mode = "strict";
  else c.fingerprint_mode = "first";

  c.proxy_name = scalar(core["proxy_name"], "proxy");
  c.internal_com_crypt = yaml_true(core["internal_com_crypt"], false);
  if (YAML::Node mp = core["modules_path"]) {
    if (mp.IsSequence())
      for (const auto& e : mp) c.modules_path.push_back(scalar(e));
    else
      c.modules_path.push_back(scalar(mp));
  }

  YAML::Node modules = gorgone["modules"];
  // `modules:` with nothing under it is a null node: no modules, as Gorgone runs.
  if (modules && !modules.IsNull() && !modules.IsSequence()) return bad(file, "modules", "must be a list");
  if (modules && modules.IsSequence()) {
    for (std::size_t i = 0; i < modules.size(); ++i) {
      const YAML::Node& m = modules[i];
      std::string where = "modules[" + std::to_string(i) + "]";
      if (!m.IsMap()) return bad(file, where, "must be a map");
      ModuleEntry e{scalar(m["name"]), scalar(m["package"]), m};
      if (e.name.empty()) return bad(file, where + ".name", "is required");
      if (e.package.empty()) return bad(file, where + ".package", "is required (module '" + e.name + "')");
      // Gorgone loads a module only when `enable` is present and not the string false.
      if (!m["enable"] || !yaml_true(m["enable"], true)) continue;
      if (builtin_package(e.name, e.package, "httpserver")) {
        HttpConfig& h = c.http;
        h.enabled = true;
        h.address = scalar(m["address"], "0.0.0.0");
        auto port = integer(m["port"], file, where + ".port", 8080, 1, 65535);
        if (!port) return Error{port.error()};
        h.port = static_cast<int>(*port);
        h.ssl = yaml_true(m["ssl"], false);
        h.ssl_cert_file = scalar(m["ssl_cert_file"]);
        h.ssl_key_file = scalar(m["ssl_key_file"]);
        if (h.ssl && (h.ssl_cert_file.empty() || h.ssl_key_file.empty()))
          return bad(file, where, "ssl needs ssl_cert_file and ssl_key_file");
        if (YAML::Node a = m["auth"]) {
          h.auth_enabled = yaml_true(a["enabled"], false);
          h.auth_user = scalar(a["user"]);
          h.auth_password = scalar(a["password"]);
          if (h.auth_enabled && (h.auth_user.empty() || h.auth_password.empty()))
            return bad(file, where + ".auth", "enabled auth needs user and password");
        }
        if (YAML::Node a = m["allowed_hosts"]) {
          h.allowed_hosts_enabled = yaml_true(a["enabled"], false);
          // Checked here, enabled or not: an entry that does not parse must stop the host,
          // not silently match everyone (or no one).
          if (YAML::Node s = a["subnets"]) {
            const std::string key = where + ".allowed_hosts.subnets";
            if (!s.IsSequence()) return bad(file, key, "must be a list of networks (e.g. [127.0.0.1/32, ::1/128])");
            for (std::size_t j = 0; j < s.size(); ++j) {
              std::string text = scalar(s[j]);
              if (!rest::parse_subnet(text))
                return bad(file, key + "[" + std::to_string(j) + "]",
                           "'" + text + "' is not an IPv4 or IPv6 address or network "
                           "(address/prefix length, e.g. 10.0.0.0/8 or ::1/128)");
              h.allowed_subnets.push_back(text);
            }
          }
        }
        auto max_body = integer(m["max_body_size"], file, where + ".max_body_size", rest::kDefaultMaxBodySize, 1,
                                1LL << 30);
        if (!max_body) return Error{max_body.error()};
        h.max_body_size = static_cast<std::size_t>(*max_body);
        continue;
      }
      if (builtin_package(e.name, e.package, "register")) {
        c.register_config_file = scalar(m["config_file"]);
        continue;
      }
      if (builtin_package(e.name, e.package, "dbcleaner")) {  // purging: built into the host
        auto sessions = integer(m["purge_sessions_time"], file, where + ".purge_sessions_time", 3600, 60, 1LL << 40);
        if (!sessions) return Error{sessions.error()};
        auto history = integer(m["purge_history_time"], file, where + ".purge_history_time", 604800, 60, 1LL << 40);
        if (!history) return Error{history.error()};
        c.purge = PurgeConfig{*sessions, *history};
        continue;
      }
      c.modules.push_back(std::move(e));
    }
  }
  return c;
}

}  // namespace gorgone
