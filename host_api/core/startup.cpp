#include "startup.hpp"

#include <libpq-fe.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <zmq.hpp>

#include "gorgone/json.hpp"
#include "gorgone/module.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "history_sqlite.hpp"
#include "module_loader.hpp"
#include "yaml_loader.hpp"

namespace gorgone {
namespace {

// YAML scalars become JSON strings, as Gorgone's register module sends them.
void yaml_to_json(const YAML::Node& n, json::Writer& w) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      w.StartObject();
      for (const auto& kv : n) {
        w.Key(kv.first.Scalar().c_str());
        yaml_to_json(kv.second, w);
      }
      w.EndObject();
      break;
    case YAML::NodeType::Sequence:
      w.StartArray();
      for (const auto& e : n) yaml_to_json(e, w);
      w.EndArray();
      break;
    case YAML::NodeType::Scalar:
      w.String(n.Scalar().c_str(), static_cast<rapidjson::SizeType>(n.Scalar().size()));
      break;
    default:
      w.Null();
  }
}

// The Host a module's register hook sees under --check-config: it records what the module
// logs (an error line is a problem), and runs nothing (no database, no loop).
class CheckHost final : public Host {
 public:
  void log(Severity severity, std::string_view message) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (severity >= Severity::kError) errors.emplace_back(message);
  }
  History& history() override { throw std::runtime_error("no history under --check-config"); }
  zmq::context_t& zmq_context() override { return context_; }
  CoreInfo core_info() const override { return info; }
  bool stopping() const override { return false; }
  void add_history(const std::string*, int, std::string_view, int) override {}
  void send_internal(std::string_view, const protocol::Frame&) override {}
  Status send_external(const std::string&, const protocol::Frame&) override { return Status::failure("checking"); }
  void dispatch(const protocol::Frame&) override {}
  void send_to_parents(const protocol::Frame&) override {}
  void history_job(std::function<void(History&)>, std::function<void()>) override {}
  void post(std::function<void()>) override {}

  CoreInfo info;
  std::vector<std::string> errors;

 private:
  std::mutex mu_;
  zmq::context_t context_;
};

}  // namespace

std::vector<std::string> module_search_path(const CoreConfig& config) {
  std::vector<std::string> path = config.modules_path;
  if (const char* env = std::getenv("GORGONE_MODULE_PATH")) {
    std::string all = env;
    std::size_t start = 0;
    while (start <= all.size()) {
      std::size_t end = all.find(':', start);
      if (end == std::string::npos) end = all.size();
      if (end > start) path.push_back(all.substr(start, end - start));
      start = end + 1;
    }
  }
#ifdef GORGONE_MODULE_DIR_FROM_BIN
  // The installed modules folder next to the installed host, wherever the tree was put.
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    std::filesystem::path dir = self.parent_path() / GORGONE_MODULE_DIR_FROM_BIN;
    if (std::filesystem::is_directory(dir, ec)) path.push_back(dir.lexically_normal().string());
  }
#endif
#ifdef GORGONE_MODULE_DIR
  path.push_back(GORGONE_MODULE_DIR);
#endif
  return path;
}

Result<std::string> nodes_file_json(const std::string& path, std::size_t& count) {
  auto doc = load_yaml_with_includes(path);
  if (!doc) return make_error("cannot read nodes file: " + doc.error());
  YAML::Node nodes = (*doc)["nodes"];
  if (!nodes || !nodes.IsSequence()) return make_error(path + ": 'nodes' must be a list");
  rapidjson::StringBuffer sb;
  json::Writer w(sb);
  w.StartObject();
  w.Key("nodes");
  yaml_to_json(nodes, w);
  w.EndObject();
  count = nodes.size();
  return std::string(sb.GetString(), sb.GetSize());
}

int check_config(const std::string& file, std::ostream& out) {
  std::size_t problems = 0;
  auto problem = [&](const std::string& text) {
    out << "gorgone-host: " << text << "\n";
    ++problems;
  };
  auto doc = load_yaml_with_includes(file);
  if (!doc) {
    problem(doc.error());
    out << "gorgone-host: " << file << ": configuration NOT usable\n";
    return 1;
  }
  auto config = parse_core_config(*doc, file);
  if (!config) {
    problem(config.error());
    out << "gorgone-host: " << file << ": configuration NOT usable\n";
    return 1;
  }
  const CoreConfig& c = *config;
  if (c.db_type == "SQLite") {
    // Checked, not created: the check changes nothing on disk.
    Status where = SqliteHistory::check_location(c.db_path);
    if (!where) problem(file + ": gorgone.gorgonecore.gorgone_db_name: " + where.message());
    else
      out << "gorgone-host: note: history in the SQLite database '" << c.db_path << "'"
          << (c.db_defaulted ? " (no gorgone_db_* set: Gorgone's default)" : "") << "\n";
  } else if (c.db_name.empty()) {
    problem(file + ": gorgone.gorgonecore.gorgone_db_name: a libpq connection string is required");
  } else {
    char* error = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(c.db_name.c_str(), &error);
    if (error) PQfreemem(error);  // it may quote the password: not shown
    if (!parsed) problem(file + ": gorgone.gorgonecore.gorgone_db_name: not a valid PostgreSQL connection string");
    else PQconninfoFree(parsed);
  }
  std::error_code ec;
  const bool has_priv = std::filesystem::exists(c.privkey, ec), has_pub = std::filesystem::exists(c.pubkey, ec);
  if (has_priv || has_pub) {
    auto priv = protocol::RsaKey::load_private_file(c.privkey);
    if (!priv) problem(file + ": gorgone.gorgonecore.privkey: " + priv.error());
    auto pub = protocol::RsaKey::load_public_file(c.pubkey);
    if (!pub) problem(file + ": gorgone.gorgonecore.pubkey: " + pub.error());
  } else {
    out << "gorgone-host: note: no key pair at '" << c.privkey << "': one is generated at the first start\n";
  }
  if (c.http.enabled && c.http.ssl) {
    for (const auto& [key, path] : {std::pair<std::string, std::string>{"ssl_cert_file", c.http.ssl_cert_file},
                                    {"ssl_key_file", c.http.ssl_key_file}}) {
      std::ifstream in(path);
      if (!in) problem(file + ": httpserver." + key + ": cannot read '" + path + "'");
    }
  }

  // Modules: loaded and registered on their directives, as at start. The hooks list stays
  // loaded until the end (the proxy checks the nodes file).
  CheckHost host;
  host.info.id = c.id;
  host.info.hostname = c.hostname;
  host.info.privkey_path = c.privkey;
  host.info.pubkey_path = c.pubkey;
  host.info.fingerprint_mode = c.fingerprint_mode;
  const std::vector<std::string> path = module_search_path(c);
  std::vector<std::unique_ptr<LoadedModule>> modules;
  LoadedModule* registrar = nullptr;  // the module that takes REGISTERNODES (the proxy)
  for (const auto& entry : c.modules) {
    auto so = resolve_package(entry.package, path);
    if (!so) {
      problem(file + ": module '" + entry.name + "': " + so.error());
      continue;
    }
    auto loaded = load_module(entry.name, *so);
    if (!loaded) {
      problem(file + ": " + loaded.error());
      continue;
    }
    std::unique_ptr<LoadedModule> mod = std::move(loaded.value());
    host.errors.clear();
    Status s = mod->hooks.register_(entry.node, c.gorgone, host, mod->registration);
    for (const auto& e : host.errors) problem(file + ": module '" + entry.name + "': " + e);
    if (!s || !mod->registration.loaded) {
      problem(file + ": module '" + entry.name + "' cannot be loaded" + (s ? std::string() : ": " + s.message()));
      (void)mod->hooks.kill();
      continue;
    }
    for (const auto& ev : mod->registration.events)
      if (ev.event == "REGISTERNODES") registrar = mod.get();
    modules.push_back(std::move(mod));
  }
  std::size_t nodes = 0;
  if (!c.register_config_file.empty()) {
    auto json = nodes_file_json(c.register_config_file, nodes);
    if (!json) {
      problem(file + ": register.config_file: " + json.error());
    } else if (registrar) {
      host.errors.clear();
      (void)registrar->hooks.routing(protocol::Frame{"REGISTERNODES", "check", "", *json},
                                     RouteContext{"internal", "gorgone-check"});
      for (const auto& e : host.errors) problem(c.register_config_file + ": " + e);
    }
  }
  for (auto it = modules.rbegin(); it != modules.rend(); ++it) (void)(*it)->hooks.kill();
  while (!modules.empty()) modules.pop_back();
  if (problems) {
    out << "gorgone-host: " << file << ": configuration NOT usable (" << problems << " problem(s))\n";
    return 1;
  }
  out << "gorgone-host: " << file << ": configuration OK (" << c.modules.size() << " module(s)"
      << (c.register_config_file.empty() ? std::string() : ", " + std::to_string(nodes) + " node(s)") << ")\n";
  return 0;
}

}  // namespace gorgone
