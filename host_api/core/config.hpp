// The host's view of a Gorgone configuration: gorgone.gorgonecore and gorgone.modules.
// Parsing only; files are read by yaml_loader (with !include).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>
#include <yaml-cpp/yaml.h>

#include "gorgone/result.hpp"

namespace gorgone {

struct ModuleEntry {
  std::string name;
  std::string package;
  YAML::Node node;  // the whole module block (directives)
};

struct HttpConfig {
  bool enabled = false;
  std::string address = "0.0.0.0";
  int port = 8080;
  bool ssl = false;
  std::string ssl_cert_file, ssl_key_file;
  bool auth_enabled = false;
  std::string auth_user, auth_password;
  bool allowed_hosts_enabled = false;
  std::vector<std::string> allowed_subnets;  // validated: each parses with rest::parse_subnet
  std::size_t max_body_size = 1 << 20;       // bytes; a larger body gets a 413 unread
};

// Gorgone's dbcleaner: what the host purges at start and then hourly (core.cpp).
struct PurgeConfig {
  std::int64_t sessions_seconds = 3600;   // gorgone_identity rows idle longer than this
  std::int64_t history_seconds = 604800;  // gorgone_history rows older than this (instant rows: one day)
};

struct CoreConfig {
  std::string source_file;
  std::string id;  // empty when unset
  std::string hostname;
  std::string privkey = "/var/lib/centreon-gorgone/.keys/rsakey.priv.pem";
  std::string pubkey = "/var/lib/centreon-gorgone/.keys/rsakey.pub.pem";
  std::string external_com_type;  // empty: no external router
  std::string external_com_path;
  std::int64_t external_com_rotation = 1440 * 60;  // seconds (configured in minutes)
  std::size_t external_com_keysize = 32;
  std::vector<std::string> authorized_clients;  // thumbprints
  std::size_t external_com_max_sessions = 10000;  // sessions and pending handshakes
  int external_com_helo_per_minute = 600;         // per peer address, 0: unlimited
  // The history store: "SQLite" (db_path, Gorgone's default on every node) or "Pg"
  // (db_name, a libpq conninfo). With no gorgone_db_* key at all: SQLite at Gorgone's
  // default path (db_defaulted). Without gorgone_db_type, a gorgone_db_name that is Gorgone's
  // "dbname=/path" (an absolute path) is SQLite and any other (or a gorgone_db_host, _port,
  // _user, _password) PostgreSQL, as this host read it before it had SQLite.
  std::string db_type = "SQLite";
  std::string db_name;  // Pg: libpq conninfo
  std::string db_path;  // SQLite: the database file
  bool db_defaulted = false;
  std::string fingerprint_mode = "first";
  std::string proxy_name = "proxy";
  std::vector<std::string> modules_path;  // folders searched for module .so files
  bool internal_com_crypt = false;
  int timeout = 50;  // seconds to wait for modules when stopping
  std::int64_t max_frame_size = 64 << 20;
  std::size_t history_queue = 100000;    // rows waiting for the database before new ones are refused
  std::int64_t getlog_max_rows = 10000;  // rows per GETLOG {"ctime"} answer (log-sync page)
  std::int64_t getlog_max_bytes = 4 << 20;  // JSON bytes of such an answer

  std::vector<ModuleEntry> modules;  // enabled, non built-in modules
  HttpConfig http;
  std::optional<PurgeConfig> purge;  // set when the dbcleaner module is enabled
  std::string register_config_file;  // register module's nodes file ("" when none)
  YAML::Node gorgone;                // the whole "gorgone" tree, handed to modules
};

// root: the document loaded from --config. Accepts `configuration: {gorgone: ...}` (packaged
// layout) and `gorgone: ...` at the top. Errors name the file and the key.
Result<CoreConfig> parse_core_config(const YAML::Node& root, const std::string& file);

// Gorgone's boolean strings: true/1/yes/on (case-insensitive) are true.
bool yaml_true(const YAML::Node& node, bool fallback);

}  // namespace gorgone
