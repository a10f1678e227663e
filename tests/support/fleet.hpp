// Test support: a set of gorgone-host processes (central, remotes, pollers) with generated
// keys and configurations, on loopback, sharing one private PostgreSQL cluster; a host
// declared with `sqlite` keeps its history in an SQLite file of its own instead, as a
// poller packaged by Gorgone does.
#pragma once

#include <httplib.h>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "daemon.hpp"
#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "pg_fixture.hpp"
#include "store_sql.hpp"

namespace gorgone::testing {

struct HostSpec {
  static constexpr const char* kProxyDirectives = "      pool: 2\n      ping: 1\n      synchistory_time: 1\n";

  // The common fields in order, so that tests can write {"4", true, {"1"}, true, ...}.
  HostSpec(std::string id_ = "", bool external_ = false, std::vector<std::string> authorized_ = {},
           bool proxy_ = false, std::string proxy_directives_ = kProxyDirectives, std::string nodes_yaml_ = "",
           bool http_ = false)
      : id(std::move(id_)), external(external_), authorized(std::move(authorized_)), proxy(proxy_),
        proxy_directives(std::move(proxy_directives_)), nodes_yaml(std::move(nodes_yaml_)), http(http_) {}

  std::string id;
  bool external;                        // binds an external router (a poller or remote)
  std::vector<std::string> authorized;  // ids of the hosts allowed to connect
  bool proxy;
  std::string proxy_directives;
  std::string nodes_yaml;               // register module nodes file (YAML list items)
  bool http;
  std::string http_extra;               // more httpserver directives (YAML lines, 6-space indent)
  bool https = false;                   // the REST API is served over TLS (set ssl in http_extra)
  bool wait_http = true;                // start() waits until the REST API answers
  std::string http_address = "127.0.0.1";  // the REST API's listen address
  std::string extra_modules;            // more module entries (YAML list items, 4-space indent)
  std::string core_directives;          // more gorgonecore directives (YAML lines, 4-space indent)
  std::string action_directives;        // the action module's directives (YAML lines, 6-space indent)
  bool sqlite = false;                  // history in <dir>/<id>/history.sdb (gorgone_db_type: SQLite), not PostgreSQL
};

class Fleet {
 public:
  Fleet() : dir_(make_temp_dir("gorgone-fleet")) {}
  ~Fleet() {
    daemons_.clear();
    std::filesystem::remove_all(dir_);
  }

  // Declares a host: its key pair, ports and database exist from now on (so configs can
  // name them). Declaring it again only replaces its spec.
  void declare(const HostSpec& spec) {
    bool known = hosts_.count(spec.id) > 0;
    Entry& e = hosts_[spec.id];
    e.spec = spec;
    if (known) return;
    e.port = free_port();
    e.http_port = free_port();
    std::string d = dir_ + "/" + spec.id;
    std::filesystem::create_directories(d);
    if (!protocol::generate_key_files(d + "/rsakey.priv.pem", d + "/rsakey.pub.pem"))
      throw std::runtime_error("cannot generate keys");
    e.thumbprint = protocol::RsaKey::load_public_file(d + "/rsakey.pub.pem")->jwk_thumbprint();
    e.sqlite = spec.sqlite;
    e.db = spec.sqlite ? d + "/history.sdb" : gorgone_test::PgCluster::shared().create_database();
  }

  int port(const std::string& id) { return hosts_.at(id).port; }
  const std::string& thumbprint(const std::string& id) { return hosts_.at(id).thumbprint; }
  std::string private_key(const std::string& id) { return dir_ + "/" + id + "/rsakey.priv.pem"; }
  // The host's database: a libpq conninfo, or the SQLite file of a host declared with `sqlite`.
  const std::string& db(const std::string& id) { return hosts_.at(id).db; }
  gorgone_test::StoreRef store(const std::string& id) {
    const Entry& e = hosts_.at(id);
    return {e.sqlite ? gorgone_test::StoreKind::kSqlite : gorgone_test::StoreKind::kPg, e.db};
  }

  // Writes the configuration and starts the process.
  void start(const std::string& id) {
    for (const auto& a : hosts_.at(id).spec.authorized)
      if (!hosts_.count(a)) declare(HostSpec{a});  // its key must exist to be authorized
    Entry& e = hosts_.at(id);
    const HostSpec& s = e.spec;
    std::string d = dir_ + "/" + id;
    std::ostringstream y;
    y << "gorgone:\n  gorgonecore:\n    id: " << id << "\n    hostname: host-" << id << "\n"
      << "    privkey: " << d << "/rsakey.priv.pem\n    pubkey: " << d << "/rsakey.pub.pem\n"
      << "    gorgone_db_type: " << (e.sqlite ? "SQLite" : "Pg") << "\n    gorgone_db_name: \""
      << (e.sqlite ? "dbname=" : "") << e.db << "\"\n" << s.core_directives;
    if (s.external) {
      y << "    external_com_type: tcp\n    external_com_path: 127.0.0.1:" << e.port << "\n";
      y << "    authorized_clients:\n";
      for (const auto& a : s.authorized) y << "      - key: " << hosts_.at(a).thumbprint << "\n";
    }
    y << "  modules:\n    - name: action\n      package: gorgone::modules::core::action::hooks\n      enable: true\n"
      << s.action_directives;
    if (s.proxy) y << "    - name: proxy\n      package: gorgone::modules::core::proxy::hooks\n      enable: true\n" << s.proxy_directives;
    if (s.http)
      y << "    - name: httpserver\n      package: gorgone::modules::core::httpserver::hooks\n      enable: true\n"
        << "      address: " << s.http_address << "\n      port: " << e.http_port << "\n" << s.http_extra;
    y << s.extra_modules;
    if (!s.nodes_yaml.empty()) {
      write_file(d + "/nodes.yaml", "nodes:\n" + s.nodes_yaml);
      y << "    - name: register\n      package: gorgone::modules::core::register::hooks\n      enable: true\n"
        << "      config_file: " << d << "/nodes.yaml\n";
    }
    write_file(d + "/config.yaml", y.str());
    auto daemon = std::make_unique<Daemon>(d + "/config.yaml", d + "/gorgone.log");
    daemon->start();
    daemons_[id] = std::move(daemon);
    // Any HTTP answer (even a 401) means the API is up.
    if (s.http && s.wait_http && !eventually([&] { return get(id, "/api/internal/constatus").first != 0; }))
      throw std::runtime_error("host " + id + ": REST API never answered");
  }

  void stop(const std::string& id) { daemons_.erase(id); }
  Daemon& daemon(const std::string& id) { return *daemons_.at(id); }

  std::string logs() {
    std::string out;
    for (auto& [id, d] : daemons_) out += "---- host " + id + "\n" + d->log();
    return out;
  }

  int http_port(const std::string& id) { return hosts_.at(id).http_port; }
  std::string log_path(const std::string& id) const { return dir_ + "/" + id + "/gorgone.log"; }

  std::pair<int, std::string> get(const std::string& id, const std::string& path,
                                  const httplib::Headers& headers = {}) {
    const Entry& e = hosts_.at(id);
    auto answer = [](const httplib::Result& r) {
      return r ? std::make_pair(r->status, r->body) : std::make_pair(0, std::string());
    };
    if (e.spec.https) {
      httplib::SSLClient c("127.0.0.1", e.http_port);
      c.enable_server_certificate_verification(false);
      c.set_read_timeout(15, 0);
      return answer(c.Get(path.c_str(), headers));
    }
    httplib::Client c("127.0.0.1", e.http_port);
    c.set_read_timeout(15, 0);
    return answer(c.Get(path.c_str(), headers));
  }
  std::pair<int, std::string> post(const std::string& id, const std::string& path, const std::string& body) {
    httplib::Client c("127.0.0.1", hosts_.at(id).http_port);
    c.set_read_timeout(15, 0);
    auto r = c.Post(path.c_str(), body, "application/json");
    return r ? std::make_pair(r->status, r->body) : std::make_pair(0, std::string());
  }

  // Sends a command through host `via`'s REST API to node `target`; returns the token.
  std::string command(const std::string& via, const std::string& target, const std::string& cmd) {
    auto [status, body] = post(via, "/api/nodes/" + target + "/core/action/command",
                               "[{\"command\":" + json::quote(cmd) + "}]");
    json::Document d;
    if (status != 200 || !json::parse(d, body) || !d.HasMember("token")) return "";
    return d["token"].GetString();
  }

  // (code, data) of the rows host `via` holds for `token`; syncs `node` first when given.
  std::vector<std::pair<int, std::string>> rows(const std::string& via, const std::string& token,
                                                const std::string& node = "") {
    std::string path = (node.empty() ? "/api/log/" : "/api/nodes/" + node + "/log/") + token + "?sync_wait=200000";
    auto [status, body] = get(via, path);
    std::vector<std::pair<int, std::string>> out;
    json::Document d;
    if (status != 200 || !json::parse(d, body) || !d.HasMember("data") || !d["data"].IsArray()) return out;
    for (const auto& r : d["data"].GetArray()) out.emplace_back(r["code"].GetInt(), r["data"].GetString());
    return out;
  }

  // The command's stdout once its final row (code 2) reached `via`, else "".
  std::string result(const std::string& via, const std::string& token, const std::string& node) {
    std::string out;
    bool done = false;
    for (const auto& [code, data] : rows(via, token, node)) {
      json::Document d;
      if (!json::parse(d, data)) continue;
      if (code == 100 && d.HasMember("result")) out = d["result"]["stdout"].GetString();
      if (code == 2) done = true;
    }
    return done ? out : "";
  }

  json::Document constatus(const std::string& id) {
    json::Document d;
    auto [status, body] = get(id, "/api/internal/constatus");
    if (status != 200 || !json::parse(d, body)) d.SetObject();
    return d;
  }

 private:
  struct Entry {
    HostSpec spec;
    int port = 0, http_port = 0;
    std::string thumbprint, db;
    bool sqlite = false;
  };
  std::string dir_;
  std::map<std::string, Entry> hosts_;
  std::map<std::string, std::unique_ptr<Daemon>> daemons_;
};

// Posts, through host `via`, a REMOTECOPY of a fresh directory (a 200 KB binary file and a
// text file in a subdirectory) to node `node` (this machine), and waits until both files are
// at the destination byte for byte. "" when they are, else what went wrong.
inline std::string remote_copy_lands(Fleet& fleet, const std::string& via, const std::string& node) {
  std::string dir = make_temp_dir("gorgone-copy");
  std::string a, b;
  for (int i = 0; i < 200000; ++i) a += static_cast<char>((i * 31 + 7) % 251);
  for (int i = 0; i < 3000; ++i) b += static_cast<char>('a' + i % 26);
  write_file(dir + "/src/a.bin", a);
  write_file(dir + "/src/sub/b.cfg", b);
  std::filesystem::create_directories(dir + "/cache");
  auto [status, body] = fleet.post(via, "/api/nodes/" + node + "/core/proxy/remotecopy",
                                   R"({"source":")" + dir + R"(/src","destination":")" + dir + R"(/dst","cache_dir":")" +
                                       dir + R"(/cache"})");
  std::string error;
  if (status != 200) {
    error = "REMOTECOPY refused: " + std::to_string(status) + " " + body;
  } else if (!eventually([&] { return read_file(dir + "/dst/a.bin") == a && read_file(dir + "/dst/sub/b.cfg") == b; },
                         std::chrono::seconds(60))) {
    error = "the copied files did not arrive intact";
  }
  std::filesystem::remove_all(dir);
  return error;
}

// A push_zmq entry of a nodes file (YAML list item).
inline std::string push_node(const std::string& id, int port) {
  return "  - id: " + id + "\n    type: push_zmq\n    address: 127.0.0.1\n    port: " + std::to_string(port) + "\n";
}

// The usual pair: our poller "2" (trusting "1") and a central "1" with the proxy and the REST
// API that reaches it as a push_zmq node from its nodes file (with `more_nodes` after it).
inline void start_central_and_poller(Fleet& fleet, const std::string& more_nodes = "") {
  fleet.declare({"2", true, {"1"}});
  fleet.start("2");
  fleet.declare({"1", false, {}, true, HostSpec::kProxyDirectives, push_node("2", fleet.port("2")) + more_nodes, true});
  fleet.start("1");
}

// Runs `echo <text>` on node `node` through host `via`'s REST API and returns its output once
// synced to `via` (GETLOG through whatever carries the node), "" after `limit`. A command
// sent before `via` learnt the node's connection gets a KO: it is sent again then.
inline std::string echo_on(Fleet& fleet, const std::string& via, const std::string& node, const std::string& text,
                           std::chrono::seconds limit = std::chrono::seconds(60)) {
  std::string out;
  eventually([&] {
    std::string token = fleet.command(via, node, "echo " + text);
    if (token.empty()) return false;
    bool refused = false;
    eventually([&] {
      for (const auto& row : fleet.rows(via, token))
        if (row.first == 1) refused = true;
      out = fleet.result(via, token, node);
      return refused || !out.empty();
    }, std::chrono::seconds(20));
    return !out.empty();
  }, limit);
  return out;
}

}  // namespace gorgone::testing
