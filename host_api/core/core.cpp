#include "core.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sys/time.h>
#include <unistd.h>

#include "gorgone/json.hpp"
#include "gorgone/status_codes.hpp"
#include "logger.hpp"
#include "rest_server.hpp"
#include "yaml_loader.hpp"

namespace gorgone {
namespace fs = std::filesystem;
using protocol::Frame;

namespace {

std::int64_t now_s() { return static_cast<std::int64_t>(::time(nullptr)); }

const char* const kInternalActions[] = {"ADDLISTENER", "PUTLOG",       "GETLOG",     "KILL",
                                        "PING",        "CONSTATUS",    "SETCOREID",  "SETMODULEKEY",
                                        "SYNCLOGS",    "LOADMODULE",   "UNLOADMODULE", "INFORMATION",
                                        "GETTHUMBPRINT"};

bool is_internal_action(const std::string& a) {
  if (a.rfind("BCAST", 0) == 0) return true;
  return std::find(std::begin(kInternalActions), std::end(kInternalActions), a) != std::end(kInternalActions);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

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

std::string hex_identity(const std::string& id) { return protocol::to_hex(id); }

// {"error":<error>,"message":<message>}, both quoted: the message often names peer text.
std::string error_json(std::string_view error, std::string_view message) {
  rapidjson::StringBuffer sb;
  json::Writer w(sb);
  w.StartObject();
  w.Key("error");
  w.String(error.data(), static_cast<rapidjson::SizeType>(error.size()));
  w.Key("message");
  w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

// {"action":<action>,"message":<message>[,"data":<data_json>]}: Gorgone's answer to an
// internal action. data_json is JSON this host built.
std::string action_json(std::string_view action, std::string_view message, std::string_view data_json = {}) {
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

}  // namespace

Core::Core(CoreConfig config, std::unique_ptr<History> history)
    : config_(std::move(config)), history_(std::move(history)) {}

Core::~Core() {
  if (rest_) rest_->stop();
  rest_.reset();
  // Modules were stopped by run(); make sure anything left is killed before unloading.
  for (auto& m : modules_) {
    Status s = m->hooks.kill();
    (void)s;
  }
  internal_.reset();
  external_.reset();
  while (!modules_.empty()) modules_.pop_back();  // reverse order of loading
}

Result<std::unique_ptr<Core>> Core::create(CoreConfig config, std::unique_ptr<History> history) {
  std::unique_ptr<Core> core(new Core(std::move(config), std::move(history)));
  Status s = core->setup();
  if (!s) return make_error(s.message());
  return core;
}

void Core::log(Severity severity, std::string_view message) { Logger::instance().log(severity, message); }

CoreInfo Core::core_info() const {
  CoreInfo i;
  {
    std::lock_guard<std::mutex> lock(id_mu_);
    i.id = config_.id;
  }
  i.hostname = config_.hostname;
  i.privkey_path = config_.privkey;
  i.pubkey_path = config_.pubkey;
  i.internal_endpoint = kInternalEndpoint;
  i.fingerprint_mode = config_.fingerprint_mode;
  return i;
}

void Core::add_history(const std::string* token, int code, std::string_view data_json, int instant) {
  HistoryRow row;
  if (token) row.token = *token;
  row.code = code;
  row.instant = instant;
  row.data = std::string(data_json);
  auto r = history_->add(row);
  if (!r) log_error("[core] cannot write history: " + r.error());
}

Status Core::load_keys() {
  std::error_code ec;
  bool has_priv = fs::exists(config_.privkey, ec), has_pub = fs::exists(config_.pubkey, ec);
  if (!has_priv && !has_pub) {
    log_info("[core] no key pair at '" + config_.privkey + "': generating one");
    Status s = protocol::generate_key_files(config_.privkey, config_.pubkey);
    if (!s) return Status::failure("cannot generate the key pair: " + s.message());
  }
  auto priv = protocol::RsaKey::load_private_file(config_.privkey);
  if (!priv) return Status::failure(config_.source_file + ": gorgone.gorgonecore.privkey: " + priv.error());
  auto pub = protocol::RsaKey::load_public_file(config_.pubkey);
  if (!pub) return Status::failure(config_.source_file + ": gorgone.gorgonecore.pubkey: " + pub.error());
  server_key_ = std::move(priv.value());
  // The example pair shipped with the sources (examples/keys/central) is public: a host that
  // uses it can be impersonated by anyone who has the sources.
  if (server_key_->jwk_thumbprint() == "CnVbRZdQHHZN8h1vjJ2vG3sQOznWnB1pxsYiWuj63M0")
    log_warning("[core] the key pair '" + config_.privkey +
                "' is the public example pair shipped with the sources: anyone can impersonate this host. "
                "Outside the demo, delete both key files and restart: a new pair is generated");
  return Status::success();
}

Status Core::setup() {
  Status s = load_keys();
  if (!s) return s;
  add_history(nullptr, code::kStarted, json::message("gorgoned is starting..."));
  // Gorgone encrypts its internal bus because modules are separate processes; here they are
  // threads of this process, so encryption would only protect memory copies (doc/protocol.md).
  if (config_.internal_com_crypt)
    Logger::instance().log(Severity::kNotice,
                           "[core] internal_com_crypt ignored: modules run in-process and the internal bus "
                           "(inproc) never leaves this process");

  internal_.emplace(context_, zmq::socket_type::router);
  internal_->set(zmq::sockopt::routing_id, "router-internal");
  internal_->set(zmq::sockopt::linger, 0);
  internal_->set(zmq::sockopt::router_handover, 1);
  internal_->set(zmq::sockopt::router_mandatory, 1);
  // In-process peers: no high-water mark, so a burst towards a busy worker waits in its
  // queue instead of being dropped (each node's own queue is bounded by the proxy).
  internal_->set(zmq::sockopt::sndhwm, 0);
  internal_->set(zmq::sockopt::rcvhwm, 0);
  internal_->bind(kInternalEndpoint);

  if (!config_.external_com_type.empty()) {
    protocol::HandshakeServer::Config hc{*server_key_, config_.authorized_clients, config_.hostname,
                                         config_.external_com_keysize};
    hc.max_sessions = config_.external_com_max_sessions;
    hc.helo_per_minute = config_.external_com_helo_per_minute;
    handshake_.emplace(std::move(hc));
    auto ids = history_->load_identities();
    if (ids) {
      for (const auto& row : *ids) {
        auto id = protocol::from_hex(row.identity), key = protocol::from_hex(row.key), iv = protocol::from_hex(row.iv);
        if (!id || !key || !iv) continue;
        protocol::HandshakeServer::Session session;
        session.key = *key;
        session.iv = *iv;
        if (auto ok = protocol::from_hex(row.oldkey)) session.oldkey = *ok;
        if (auto oi = protocol::from_hex(row.oldiv)) session.oldiv = *oi;
        session.ctime = row.ctime;
        session.mtime = row.mtime;
        handshake_->restore(*id, session);
      }
    }
    external_.emplace(context_, zmq::socket_type::router);
    external_->set(zmq::sockopt::routing_id, "router-external");
    external_->set(zmq::sockopt::linger, 0);
    // No handover: a second connection with a live peer's routing id is refused, so nobody
    // takes over the peer's answers (or replays into its session) while it is connected.
    external_->set(zmq::sockopt::router_handover, 0);
    external_->set(zmq::sockopt::router_mandatory, 1);
    external_->set(zmq::sockopt::maxmsgsize, config_.max_frame_size);
    // ZMTP heartbeats: a peer that vanished without closing (NAT, cable) is noticed within
    // 90 s, so its routing id is free again for its reconnection.
    external_->set(zmq::sockopt::heartbeat_ivl, 30000);
    external_->set(zmq::sockopt::heartbeat_timeout, 90000);
    if (config_.external_com_type == "tcp") external_->set(zmq::sockopt::tcp_keepalive, 1);
    std::string endpoint = config_.external_com_type + "://" + config_.external_com_path;
    try {
      external_->bind(endpoint);
    } catch (const zmq::error_t& e) {
      return Status::failure("cannot bind the external router on '" + endpoint + "': " + e.what());
    }
    log_info("[core] external router listening on " + endpoint);
  }
  load_modules();
  return Status::success();
}

void Core::load_modules() {
  std::vector<std::string> path = config_.modules_path;
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
#ifdef GORGONE_MODULE_DIR
  path.push_back(GORGONE_MODULE_DIR);
#endif
  for (const auto& entry : config_.modules) {
    auto file = resolve_package(entry.package, path);
    if (!file) {
      log_error("[core] module '" + entry.name + "' not loaded: " + file.error());
      continue;
    }
    auto loaded = load_module(entry.name, *file);
    if (!loaded) {
      log_error("[core] " + loaded.error() + "; module skipped");
      continue;
    }
    std::unique_ptr<LoadedModule> mod = std::move(loaded.value());
    Status s = mod->hooks.register_(entry.node, config_.gorgone, *this, mod->registration);
    if (!s || !mod->registration.loaded) {
      log_error("[core] module '" + entry.name + "' cannot be loaded" + (s ? std::string() : ": " + s.message()));
      continue;
    }
    for (const auto& ev : mod->registration.events) {
      events_[ev.event] = mod.get();
      if (!ev.uri.empty()) {
        std::string method = ev.method.empty() ? "GET" : ev.method;
        api_endpoints_[method + "_/" + mod->registration.ns + "/" + mod->registration.name + ev.uri] = ev.event;
      }
    }
    log_info("[core] module '" + entry.name + "' is loaded from " + mod->path);
    modules_.push_back(std::move(mod));
  }
  api_endpoints_["GET_/internal/constatus"] = "CONSTATUS";
  api_endpoints_["GET_/internal/thumbprint"] = "GETTHUMBPRINT";
  api_endpoints_["GET_/internal/information"] = "INFORMATION";
  api_endpoints_["POST_/internal/logger"] = "BCASTLOGGER";
}

LoadedModule* Core::proxy() const {
  for (const auto& m : modules_)
    if (m->registration.name == config_.proxy_name) return m.get();
  return nullptr;
}

void Core::register_static_nodes() {
  if (config_.register_config_file.empty()) return;
  auto doc = load_yaml_with_includes(config_.register_config_file);
  if (!doc) {
    log_error("[register] cannot read nodes file: " + doc.error());
    return;
  }
  YAML::Node nodes = (*doc)["nodes"];
  if (!nodes || !nodes.IsSequence()) {
    log_error("[register] " + config_.register_config_file + ": 'nodes' must be a list");
    return;
  }
  rapidjson::StringBuffer sb;
  json::Writer w(sb);
  w.StartObject();
  w.Key("nodes");
  yaml_to_json(nodes, w);
  w.EndObject();
  dispatch(Frame{"REGISTERNODES", protocol::generate_token(), "", std::string(sb.GetString(), sb.GetSize())});
  log_info("[register] " + std::to_string(nodes.size()) + " node(s) registered from " + config_.register_config_file);
}

int Core::run() {
  std::string id = core_info().id;
  for (auto& m : modules_) {
    Status s = m->hooks.init(id);
    if (!s) log_error("[core] module '" + m->name + "' init failed: " + s.message());
  }
  register_static_nodes();
  if (config_.http.enabled) {
    rest_ = std::make_unique<RestServer>(*this, config_.http);
    Status s = rest_->start();
    if (!s) {
      log_error("[core] " + s.message());
      rest_.reset();
    }
  }
  log_info("[core] gorgone core " + (id.empty() ? std::string("(no id)") : "id " + id) + " is running");

  while (true) {
    zmq::pollitem_t items[2] = {{static_cast<void*>(*internal_), 0, ZMQ_POLLIN, 0},
                                {external_ ? static_cast<void*>(*external_) : nullptr, 0, ZMQ_POLLIN, 0}};
    int n = external_ ? 2 : 1;
    try {
      zmq::poll(items, n, std::chrono::milliseconds(200));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) log_error(std::string("[core] poll: ") + e.what());
    }
    if (items[0].revents & ZMQ_POLLIN) read_internal();
    if (n == 2 && (items[1].revents & ZMQ_POLLIN)) read_external();
    tick();
    if (stopping_) {
      int total = 0;
      for (auto& m : modules_) {
        CheckResult r;
        if (m->hooks.check(r)) total += r.count;
      }
      auto elapsed = std::chrono::steady_clock::now() - stop_started_;
      if (total == 0) break;
      if (elapsed > std::chrono::seconds(config_.timeout)) {
        log_error("[core] modules did not stop in time: killing them");
        for (auto& m : modules_) (void)m->hooks.kill_internal();
        break;
      }
      if (std::chrono::steady_clock::now() - last_gently_ > std::chrono::seconds(10)) {
        for (auto& m : modules_) (void)m->hooks.gently();
        last_gently_ = std::chrono::steady_clock::now();
      }
    }
  }
  if (rest_) rest_->stop();
  log_info("[core] gorgone core stopped");
  return 0;
}

void Core::tick() {
  if (reopen_requested_.exchange(false)) {
    if (Logger::instance().reopen()) log_info("[core] SIGHUP: log file reopened");
    else log_error(std::string("[core] SIGHUP: cannot reopen the log file: ") + std::strerror(errno));
  }
  if (stop_requested_ && !stopping_) {
    stopping_ = true;
    stop_started_ = std::chrono::steady_clock::now();
    last_gently_ = stop_started_;
    log_info("[core] stop requested: stopping modules");
    for (auto& m : modules_) (void)m->hooks.gently();
  }
  std::int64_t now = now_s();
  if (!touched_identities_.empty() && (now - last_touch_flush_ >= 30 || stopping_)) {
    last_touch_flush_ = now;
    for (const auto& identity : touched_identities_) {
      const auto* session = handshake_ ? handshake_->session(identity) : nullptr;
      if (!session) continue;
      Status st = history_->touch_identity(hex_identity(identity), session->mtime);
      if (!st) log_error("[core] cannot store the activity of session " + hex_identity(identity) + ": " + st.message());
    }
    touched_identities_.clear();
  }
  if (!stopping_ && now != last_check_) {
    last_check_ = now;
    for (auto& m : modules_) {
      CheckResult r;
      Status s = m->hooks.check(r);
      if (!s) log_error("[core] module '" + m->name + "' check failed: " + s.message());
    }
    for (auto it = parents_.begin(); it != parents_.end();)
      it = (now - it->second.last_time > 1800) ? parents_.erase(it) : std::next(it);
  }
  // Every 5 s as in Gorgone, or more often when the rotation period itself is shorter.
  if (handshake_ && now - last_rotation_check_ >= std::min<std::int64_t>(5, config_.external_com_rotation)) {
    last_rotation_check_ = now;
    for (const auto& rot : handshake_->rotate(now, config_.external_com_rotation)) {
      send_router(*external_, rot.identity, rot.wire);
      if (const auto* s = handshake_->session(rot.identity)) {
        IdentityRow row{hex_identity(rot.identity), protocol::to_hex(s->key), protocol::to_hex(s->iv),
                        protocol::to_hex(s->oldkey), protocol::to_hex(s->oldiv), s->ctime, s->mtime};
        Status st = history_->update_identity_keys(row);
        if (!st) log_error("[core] cannot store rotated key of " + hex_identity(rot.identity) + ": " + st.message());
      }
      log_info("[core] key rotated for " + hex_identity(rot.identity));
    }
  }
}

bool Core::send_router(zmq::socket_t& router, const std::string& identity, std::string_view body) {
  // Both routers are ROUTER_MANDATORY: a peer that is gone, or whose queue is full, is an
  // error we report, never a message dropped without a word.
  try {
    if (!router.send(zmq::buffer(identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      log_error("[core] cannot send to '" + identity + "': its queue is full");
      return false;
    }
    router.send(zmq::buffer(body.data(), body.size()), zmq::send_flags::dontwait);
    return true;
  } catch (const zmq::error_t& e) {
    log_error("[core] cannot send to '" + identity + "': " + e.what());
    return false;
  }
}

void Core::read_internal() {
  for (int batch = 0; batch < 1000; ++batch) {
    zmq::message_t id, body;
    if (!internal_->recv(id, zmq::recv_flags::dontwait)) return;
    if (id.more()) (void)internal_->recv(body, zmq::recv_flags::none);
    // A module never sends multipart messages: drop any extra part.
    while (body.more()) {
      zmq::message_t extra;
      (void)internal_->recv(extra, zmq::recv_flags::none);
    }
    std::string identity = id.to_string();
    if (identity.rfind("gorgone-", 0) != 0) {
      log_error("[core] unknown identity: " + identity);
      continue;
    }
    message_run("internal", identity, body.to_string_view());
  }
}

void Core::read_external() {
  for (int batch = 0; batch < 1000; ++batch) {
    zmq::message_t id, body;
    auto r = external_->recv(id, zmq::recv_flags::dontwait);
    if (!r) return;
    if (id.more()) (void)external_->recv(body, zmq::recv_flags::none);
    while (body.more()) {
      zmq::message_t extra;
      (void)external_->recv(extra, zmq::recv_flags::none);
    }
    std::string identity = id.to_string();
    if (identity.rfind("gorgone-", 0) != 0) {
      log_error("[core] unknown identity: " + hex_identity(identity));
      continue;
    }
    std::int64_t now = now_s();
    // The peer's address (TCP) bounds its HELO rate; routing ids are the peer's to choose.
    std::string peer;
    try {
      if (const char* address = body.gets("Peer-Address")) peer = address;
    } catch (const zmq::error_t&) {
    }
    auto out = handshake_->on_message(identity, body.to_string_view(), now, peer);
    using Kind = protocol::HandshakeServer::Outcome::Kind;
    switch (out.kind) {
      case Kind::kReply:
        if (!out.log.empty()) log_info("[core] " + out.log + " [identity " + hex_identity(identity) + "]");
        send_router(*external_, identity, out.reply);
        break;
      case Kind::kNewSession:
        // Stored once the client uses it (its first frame proves it holds the private key).
        log_info("[core] " + (out.log.empty() ? "handshake with " + hex_identity(identity) : out.log) +
                 ": key sent, the session starts at its first frame");
        send_router(*external_, identity, out.reply);
        break;
      case Kind::kDropped:
        log_error("[core] " + hex_identity(identity) + (peer.empty() ? "" : " (" + peer + ")") + ": " + out.log);
        break;
      case Kind::kMessage:
        if (out.persist) {
          log_info("[core] new session for " + hex_identity(identity));
          if (const auto* s = handshake_->session(identity)) {
            IdentityRow row{hex_identity(identity), protocol::to_hex(s->key), protocol::to_hex(s->iv), "", "",
                            s->ctime, s->mtime};
            Status st = history_->save_identity(row);
            if (!st) log_error("[core] cannot store session of " + hex_identity(identity) + ": " + st.message());
          }
        }
        // The session's mtime is written to the database in batches (tick), not once per
        // message: it only matters for purging and for restoring sessions after a restart.
        touched_identities_.insert(identity);
        message_run("external", identity, out.plaintext);
        break;
    }
  }
}

void Core::count(const std::string& router, const std::string& action, bool proxied) {
  std::string a = lower(action);
  ++counters_total_;
  if (!router.empty()) {
    ++counters_[router]["total"];
    ++counters_[router][a];
  }
  if (proxied) {
    ++counters_["proxy"]["total"];
    ++counters_["proxy"][a];
  }
}

void Core::reply(const std::string& router, const std::string& identity, std::string_view type,
                 std::string_view token, int code, std::string_view data_json) {
  if (router.empty()) return;
  std::string text = protocol::build_response(type, token, code, data_json.empty() ? "null" : data_json);
  if (router == "internal") {
    send_router(*internal_, identity, text);
  } else if (handshake_) {
    auto wire = handshake_->encrypt_for(identity, text);
    if (wire) send_router(*external_, identity, *wire);
  }
}

void Core::dispatch(const Frame& frame) { message_run("", "", protocol::build_frame(frame)); }

void Core::message_run(const std::string& router, const std::string& identity, std::string_view text) {
  auto parsed = protocol::parse_frame(text);
  if (!parsed) {
    reply(router, identity, "ACK", "", code::kActionFinishKo, json::message("request not well formatted"));
    return;
  }
  Frame frame = std::move(*parsed);
  if (frame.token.empty()) frame.token = protocol::generate_token();
  std::string id = core_info().id;
  bool has_target = !frame.target.empty() && frame.target != id;
  count(router, frame.action, has_target);

  if (stopping_) {
    std::string msg = json::message("gorgone is stopping/restarting. Cannot proceed request.");
    add_history(&frame.token, code::kActionFinishKo, msg);
    reply(router, identity, "ACK", frame.token, code::kActionFinishKo, msg);
    return;
  }
  RouteContext ctx{router, identity};
  if (has_target) {
    LoadedModule* p = proxy();
    if (!p) {
      std::string msg = error_json("no_proxy", "no proxy configured. cannot manage target.");
      add_history(&frame.token, code::kActionFinishKo, msg);
      reply(router, identity, "ACK", frame.token, code::kActionFinishKo, msg);
      return;
    }
    reply(router, identity, "ACK", frame.token, code::kActionBegin, "null");
    Status s = p->hooks.routing(frame, ctx);
    if (!s) log_error("[core] proxy routing of " + frame.action + " failed: " + s.message());
    return;
  }
  frame.target.clear();
  if (is_internal_action(frame.action)) {
    run_internal_action(router, identity, frame);
    return;
  }
  auto ev = events_.find(frame.action);
  if (ev == events_.end()) {
    std::string msg = error_json("unknown_action", "action '" + frame.action + "' is unknown");
    // Gorgone answers an unknown action with an empty token.
    add_history(&frame.token, code::kActionFinishKo, msg);
    reply(router, identity, "ACK", "", code::kActionFinishKo, msg);
    return;
  }
  reply(router, identity, "ACK", frame.token, code::kActionBegin, "null");
  Status s = ev->second->hooks.routing(frame, ctx);
  if (!s) log_error("[core] module '" + ev->second->name + "' routing of " + frame.action + " failed: " + s.message());
}

std::string Core::constatus_json() {
  LoadedModule* p = proxy();
  if (!p || !p->hooks.get_constatus_result) return "";
  std::string out;
  Status s = p->hooks.get_constatus_result(out);
  if (!s) return "";
  return out;
}

std::string Core::getlog_reply(const std::string& data, int& code) {
  json::Document doc;
  GetlogFilter f;
  code = code::kActionFinishKo;
  if (!json::parse(doc, data) || !doc.IsObject()) return json::message("request not well formatted");
  auto text = [&](const char* k) -> std::optional<std::string> {
    auto v = json::member_text(doc, k);
    if (v && v->empty()) return std::nullopt;
    return v;
  };
  try {
    if (auto v = text("id")) f.id = std::stoll(*v);
    if (auto v = text("token")) f.token = *v;
    // A number is taken as is: going through text would round it to 6 decimals and
    // move a log-sync cursor off the node's ctime.
    auto ctime = doc.FindMember("ctime");
    if (ctime != doc.MemberEnd() && ctime->value.IsNumber()) {
      f.ctime = ctime->value.GetDouble();
    } else if (auto v = text("ctime")) {
      std::size_t used = 0;
      f.ctime = std::stod(*v, &used);
      if (used != v->size()) return json::message("request not well formatted");
    }
    if (auto v = text("etime")) f.etime = std::stoll(*v);
    if (auto v = text("code")) f.code = std::stoi(*v);
    if (auto v = text("limit")) {
      f.limit = std::stoll(*v);
      if (*f.limit < 0) return json::message("limit must be a positive integer");
    }
  } catch (const std::exception&) {
    return json::message("request not well formatted");
  }
  if (f.empty()) return json::message("need at least one filter");
  // A parent syncing its cursor (the proxy sends exactly {"ctime": x}) gets the backlog
  // in pages, oldest first; any other request keeps Gorgone's answer.
  if (f.ctime && !f.id && !f.token && !f.etime && !f.code && !f.limit) f.ctime_page = config_.getlog_max_rows;
  auto rows = history_->getlog(f);
  if (!rows) {
    log_error("[core] getlog: " + rows.error());
    return json::message("database issue");
  }
  auto row_json = [](const HistoryRow& r, const std::string* data) {
    rapidjson::StringBuffer sb;
    json::Writer w(sb);
    w.StartObject();
    w.Key("id");
    w.String(std::to_string(r.id).c_str());
    w.Key("token");
    if (r.token) w.String(r.token->c_str(), static_cast<rapidjson::SizeType>(r.token->size()));
    else w.Null();
    w.Key("code");
    w.Int(r.code);
    w.Key("etime");
    w.Int64(r.etime);
    w.Key("ctime");
    w.Double(r.ctime);
    w.Key("instant");
    w.Int(r.instant);
    w.Key("data");
    if (!data) data = &r.data;
    w.String(data->c_str(), static_cast<rapidjson::SizeType>(data->size()));
    w.EndObject();
    return std::string(sb.GetString(), sb.GetSize());
  };
  const std::string id = core_info().id;
  // A log-sync page is bounded in bytes too: beyond the parent's max_frame_size its
  // connection is closed and the same page asked again forever. The page is cut only
  // between two ctimes (the parent's next cursor is the last ctime it got, so a row tied
  // with it must come now); a row larger than the bound alone travels as a placeholder
  // with its token, code and times, so that the cursor moves past it.
  std::vector<std::string> page;
  bool cut = false;
  const bool paged = f.ctime_page.has_value();
  const std::size_t cap = static_cast<std::size_t>(config_.getlog_max_bytes);
  // {"action":"getlog","result":[],"more":true,"id":"<id>"}
  const std::size_t envelope = 60 + json::quote(id).size();
  std::size_t size = envelope;
  for (std::size_t i = 0; i < rows->size();) {
    std::size_t end = i + 1;  // [i, end): the rows of one ctime
    while (end < rows->size() && (*rows)[end].ctime == (*rows)[i].ctime) ++end;
    std::vector<std::string> group;
    std::size_t group_size = 0;
    for (std::size_t k = i; k < end; ++k) {
      const HistoryRow& r = (*rows)[k];
      std::string text = row_json(r, nullptr);
      // Too large alone, or (the page's first ctime, which cannot be put off) too large
      // for what is left.
      if (paged && (envelope + text.size() + 1 > cap || (page.empty() && size + group_size + text.size() + 1 > cap))) {
        std::string placeholder = json::message("row too large to sync (" + std::to_string(r.data.size()) + " bytes)");
        text = row_json(r, &placeholder);
        log_error("[core] getlog: row " + std::to_string(r.id) + " (token " + r.token.value_or("") + ", " +
                  std::to_string(r.data.size()) + " bytes) exceeds getlog_max_bytes: sent as a placeholder");
      }
      group_size += text.size() + 1;
      group.push_back(std::move(text));
    }
    if (paged && !page.empty() && size + group_size > cap) {
      cut = true;
      break;
    }
    for (auto& text : group) page.push_back(std::move(text));
    size += group_size;
    i = end;
  }
  rapidjson::StringBuffer sb;
  json::Writer w(sb);
  w.StartObject();
  w.Key("action");
  w.String("getlog");
  w.Key("result");
  w.StartArray();
  for (const auto& text : page) w.RawValue(text.c_str(), text.size(), rapidjson::kObjectType);
  w.EndArray();
  // Not in Gorgone (a Perl parent ignores it): the page was full or cut, ask again.
  if (cut || (f.ctime_page && static_cast<std::int64_t>(rows->size()) >= *f.ctime_page)) {
    w.Key("more");
    w.Bool(true);
  }
  w.Key("id");
  w.String(id.c_str());
  w.EndObject();
  code = code::kActionBegin;
  return std::string(sb.GetString(), sb.GetSize());
}

void Core::run_internal_action(const std::string& router, const std::string& identity, Frame& frame) {
  const std::string& a = frame.action;
  const std::string* token = &frame.token;
  std::string id = core_info().id;
  LoadedModule* p = proxy();
  if (a == "PING") {
    std::string status = constatus_json();
    rapidjson::StringBuffer sb;
    json::Writer w(sb);
    w.StartObject();
    w.Key("action"); w.String("ping");
    w.Key("message"); w.String("ping ok");
    w.Key("id"); w.String(id.c_str());
    w.Key("hostname"); w.String(config_.hostname.c_str());
    w.Key("data");
    w.RawValue(status.empty() ? "{}" : status.c_str(), status.empty() ? 2 : status.size(), rapidjson::kObjectType);
    w.EndObject();
    if (!router.empty()) {
      parents_[identity] = Parent{now_s(), router};
      if (p && p->hooks.add_parent_ping) (void)p->hooks.add_parent_ping(router, identity);
    }
    reply(router, identity, "PONG", frame.token, code::kActionBegin, std::string(sb.GetString(), sb.GetSize()));
  } else if (a == "CONSTATUS") {
    std::string status = constatus_json();
    std::string data;
    int c;
    if (status.empty()) {
      data = action_json("constatus", "cannot get value");
      c = code::kActionFinishKo;
    } else {
      data = action_json("constatus", "ok", status);
      c = code::kActionFinishOk;
    }
    add_history(token, c, data);
    reply(router, identity, "CONSTATUS", frame.token, c, data);
  } else if (a == "GETLOG") {
    int c;
    std::string data = getlog_reply(frame.data, c);
    reply(router, identity, "ACK", frame.token, c, data);
  } else if (a == "PUTLOG") {
    json::Document doc;
    if (!json::parse(doc, frame.data) || !doc.IsObject() || !doc.HasMember("code") || !doc.HasMember("data")) {
      reply(router, identity, "ACK", frame.token, code::kActionFinishKo, json::message("request not well formatted"));
      return;
    }
    HistoryRow row;
    row.token = json::member_text(doc, "token");
    row.code = static_cast<int>(json::as_number(doc["code"]).value_or(0));
    if (doc.HasMember("etime")) row.etime = static_cast<std::int64_t>(json::as_number(doc["etime"]).value_or(0));
    if (doc.HasMember("instant")) row.instant = static_cast<int>(json::as_number(doc["instant"]).value_or(0));
    row.data = json::dump(doc["data"]);
    auto r = history_->add(row);
    if (r) reply(router, identity, "ACK", frame.token, code::kActionBegin, json::message("message inserted"));
    else reply(router, identity, "ACK", frame.token, code::kActionFinishKo, json::message("database issue"));
  } else if (a == "SYNCLOGS") {
    if (p && p->hooks.synclog) (void)p->hooks.synclog();
    reply(router, identity, "ACK", frame.token, code::kActionBegin,
          action_json("synclog", "synclog launched"));
  } else if (a == "SETCOREID") {
    json::Document doc;
    std::optional<std::string> newid;
    if (json::parse(doc, frame.data)) newid = json::member_text(doc, "id");
    if (!newid || newid->empty()) {
      reply(router, identity, "ACK", frame.token, code::kActionFinishKo, json::message("request not well formatted"));
      return;
    }
    if (id.empty()) {
      {
        std::lock_guard<std::mutex> lock(id_mu_);
        config_.id = *newid;
      }
      if (p && p->hooks.setcoreid) (void)p->hooks.setcoreid(*newid);
      log_info("[core] core id set to " + *newid);
    }
    reply(router, identity, "ACK", frame.token, code::kActionFinishOk,
          action_json("setcoreid", "setcoreid changed"));
  } else if (a == "GETTHUMBPRINT") {
    std::string data = action_json("getthumbprint", "ok", "{\"thumbprint\":" + json::quote(server_key_->jwk_thumbprint()) + "}");
    add_history(token, code::kActionFinishOk, data);
    reply(router, identity, "GETTHUMBPRINT", frame.token, code::kActionFinishOk, data);
  } else if (a == "INFORMATION") {
    rapidjson::StringBuffer sb;
    json::Writer w(sb);
    w.StartObject();
    w.Key("action"); w.String("information");
    w.Key("message"); w.String("ok");
    w.Key("data");
    w.StartObject();
    w.Key("counters");
    w.StartObject();
    w.Key("total"); w.Int64(counters_total_);
    for (const auto& [type, map] : counters_) {
      w.Key(type.c_str());
      w.StartObject();
      for (const auto& [k, v] : map) {
        w.Key(k.c_str());
        w.Int64(v);
      }
      w.EndObject();
    }
    w.EndObject();
    w.Key("modules");
    w.StartObject();
    for (const auto& m : modules_) {
      w.Key(m->name.c_str());
      w.String(m->path.c_str());
    }
    w.EndObject();
    w.Key("api_endpoints");
    w.StartObject();
    for (const auto& [k, v] : api_endpoints_) {
      w.Key(k.c_str());
      w.String(v.c_str());
    }
    w.EndObject();
    w.EndObject();
    w.EndObject();
    std::string data(sb.GetString(), sb.GetSize());
    add_history(token, code::kActionFinishOk, data);
    reply(router, identity, "INFORMATION", frame.token, code::kActionFinishOk, data);
  } else if (a == "BCASTLOGGER" || a == "BCASTCOREKEY") {
    if (a == "BCASTLOGGER") {
      json::Document doc;
      if (json::parse(doc, frame.data) && doc.IsObject() && doc.HasMember("content") && doc["content"].IsObject()) {
        auto sev = json::member_text(doc["content"], "severity");
        Severity s;
        if (sev && Logger::parse_severity(*sev, s)) Logger::instance().set_severity(s);
      }
    }
    for (auto& m : modules_) (void)m->hooks.broadcast(frame);
    reply(router, identity, "ACK", frame.token, code::kActionBegin, "null");
  } else if (a.rfind("BCAST", 0) == 0) {
    std::string msg = error_json("unknown_action", "action '" + a + "' is unknown");
    reply(router, identity, "ACK", "", code::kActionFinishKo, msg);
  } else {
    // ADDLISTENER, KILL, SETMODULEKEY, LOADMODULE, UNLOADMODULE: not offered by this host.
    std::string msg = json::message("action '" + a + "' is not supported by this core");
    add_history(token, code::kActionFinishKo, msg);
    reply(router, identity, "ACK", frame.token, code::kActionFinishKo, msg);
  }
}

void Core::send_internal(std::string_view identity, const Frame& frame) {
  send_router(*internal_, std::string(identity), protocol::build_frame(frame));
}

Status Core::send_external(const std::string& routing_id, const Frame& frame) {
  if (!handshake_) return Status::failure("no external router");
  auto wire = handshake_->encrypt_for(routing_id, protocol::build_frame(frame));
  if (!wire) return Status::failure("no session for " + hex_identity(routing_id));
  if (!send_router(*external_, routing_id, *wire)) return Status::failure("not connected");
  return Status::success();
}

void Core::send_to_parents(const Frame& frame) {
  std::string text = protocol::build_frame(frame);
  for (const auto& [identity, parent] : parents_) {
    if (parent.router_type == "external") {
      if (!handshake_) continue;
      auto wire = handshake_->encrypt_for(identity, text);
      if (wire) send_router(*external_, identity, *wire);
    } else {
      send_router(*internal_, identity, text);
    }
  }
}

}  // namespace gorgone
