#include "worker.hpp"

#include <chrono>
#include <deque>
#include <optional>
#include <vector>

#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "gorgone/protocol/handshake.hpp"
#include "gorgone/status_codes.hpp"
#include "gorgone/protocol/response.hpp"

namespace gorgone::proxy {
namespace {

using Clock = std::chrono::steady_clock;

std::string text_or(const json::Value& obj, const char* name, std::string fallback = "") {
  auto v = json::member_text(obj, name);
  return v && !v->empty() ? *v : fallback;
}

// Scalar members only: Gorgone ignores arrays and objects (subnode lists) when deciding
// whether a node's session must be recreated.
std::map<std::string, std::string> scalars(const std::string& node_json) {
  std::map<std::string, std::string> out;
  json::Document d;
  if (!json::parse(d, node_json) || !d.IsObject()) return out;
  for (const auto& m : d.GetObject())
    if (!m.value.IsObject() && !m.value.IsArray())
      out[m.name.GetString()] = json::as_text(m.value).value_or(m.value.IsNull() ? "" : json::dump(m.value));
  return out;
}

}  // namespace

// One push_zmq node as seen from a worker: its DEALER, its handshake and the frames
// waiting for the handshake to finish.
class NodeConnection {
 public:
  struct Pending {
    std::string token;
    std::string target;
    std::string text;
  };
  std::string id;
  std::string type;
  std::string endpoint;
  std::string privkey_path, pubkey_path;
  std::unique_ptr<zmq::socket_t> socket;
  std::optional<protocol::HandshakeClient> handshake;
  Clock::time_point deadline;
  std::deque<Pending> queue;
};

Worker::Worker(int pool_id, Host& host, Settings settings, std::string core_id)
    : pool_id_(pool_id), host_(host), settings_(settings), core_id_(std::move(core_id)) {}

Worker::~Worker() { stop(); }

void Worker::start() {
  running_ = true;
  thread_ = std::thread([this] {
    try {
      run();
    } catch (const std::exception& e) {
      host_.log(Severity::kError, "[proxy] worker " + std::to_string(pool_id_) + " stopped on error: " + e.what());
    }
    connections_.clear();
    control_.reset();
    running_ = false;
  });
}

void Worker::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void Worker::to_core(std::string_view action, std::string_view token, std::string_view data) {
  std::string text = protocol::build_frame(action, token, "", data);
  control_->send(zmq::buffer(text), zmq::send_flags::dontwait);
}

void Worker::history_ko(const std::string& token, const std::string& message) {
  host_.add_history(&token, code::kActionFinishKo, json::message(message));
}

void Worker::pong_reset(const std::string& node_id) {
  to_core("PONGRESET", protocol::generate_token(), "{\"data\":{\"id\":" + json::quote(node_id) + "}}");
}

void Worker::run() {
  control_ = std::make_unique<zmq::socket_t>(host_.zmq_context(), zmq::socket_type::dealer);
  control_->set(zmq::sockopt::routing_id, "gorgone-proxy-" + std::to_string(pool_id_));
  control_->set(zmq::sockopt::linger, 0);
  control_->connect(host_.core_info().internal_endpoint);
  to_core("PROXYREADY", protocol::generate_token(), "{\"pool_id\":" + std::to_string(pool_id_) + "}");

  std::vector<zmq::pollitem_t> items;
  std::vector<NodeConnection*> owners;
  while (!stop_) {
    items.clear();
    owners.clear();
    items.push_back({static_cast<void*>(*control_), 0, ZMQ_POLLIN, 0});
    owners.push_back(nullptr);
    for (auto& [id, c] : connections_) {
      if (!c->socket) continue;
      items.push_back({static_cast<void*>(*c->socket), 0, ZMQ_POLLIN, 0});
      owners.push_back(c.get());
    }
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(200));
    if (items[0].revents & ZMQ_POLLIN) {
      for (int i = 0; i < 1000; ++i) {
        zmq::message_t msg;
        if (!control_->recv(msg, zmq::recv_flags::dontwait)) break;
        on_control(msg.to_string_view());
      }
    }
    for (std::size_t i = 1; i < items.size(); ++i) {
      if (!(items[i].revents & ZMQ_POLLIN)) continue;
      // The connection may have been closed by a previous message in this round, and
      // handling this one may close it: look it up, then leave the map alone.
      NodeConnection* owner = nullptr;
      for (auto& [id, c] : connections_)
        if (c.get() == owners[i] && c->socket) owner = c.get();
      if (owner) on_node_message(*owner);
    }
    check_timeouts();
  }
  host_.log(Severity::kInfo, "[proxy] worker " + std::to_string(pool_id_) + " has quit");
}

void Worker::close_node(const std::string& node_id, bool reset) {
  auto it = connections_.find(node_id);
  if (it == connections_.end()) return;
  connections_.erase(it);
  if (reset) pong_reset(node_id);
}

void Worker::on_control(std::string_view text) {
  auto frame = protocol::parse_frame(text);
  if (!frame) return;  // the core's ACKs to what we sent
  const std::string& a = frame->action;
  if (a == "ACK") return;
  std::string parent, target;
  auto sep = frame->target.find("~~");
  if (sep != std::string::npos) {
    parent = frame->target.substr(0, sep);
    target = frame->target.substr(sep + 2);
  }
  if (a == "PROXYADDNODE") {
    if (parent.empty()) return;
    auto old = node_configs_.find(parent);
    if (old != node_configs_.end() && connections_.count(parent)) {
      if (scalars(old->second) == scalars(frame->data)) {
        host_.log(Severity::kDebug, "[proxy] Session not changed " + parent);
      } else {
        host_.log(Severity::kInfo, "[proxy] Recreate session for " + parent);
        close_node(parent, true);
      }
    }
    node_configs_[parent] = frame->data;
    return;
  }
  if (a == "PROXYDELNODE") {
    host_.log(Severity::kInfo, "[proxy] Node '" + parent + "' removed from worker " + std::to_string(pool_id_));
    node_configs_.erase(parent);
    close_node(parent, true);
    return;
  }
  if (a == "PROXYCLOSECONNECTION") {
    host_.log(Severity::kInfo, "[proxy] Close connection for " + parent);
    close_node(parent, false);
    return;
  }
  if (a.rfind("BCAST", 0) == 0) return;
  if (sep == std::string::npos) {
    history_ko(frame->token, "unknown target format '" + frame->target + "'");
    return;
  }
  NodeConnection* c = connection_for(parent);
  if (!c) {
    history_ko(frame->token, "cannot connect on target node '" + parent + "'");
    return;
  }
  std::string out = protocol::build_frame(a, frame->token, parent == target ? "" : target, frame->data);
  if (c->handshake && c->handshake->state() == protocol::HandshakeClient::State::kEstablished) {
    std::string wire = c->handshake->encrypt(out);
    c->socket->send(zmq::buffer(wire), zmq::send_flags::dontwait);
    return;
  }
  if (c->queue.size() >= settings_.max_queue) {
    history_ko(frame->token, "Send message problem for '" + target + "': queue of node '" + parent + "' is full (" +
                                 std::to_string(settings_.max_queue) + " frames)");
    return;
  }
  c->queue.push_back({frame->token, target, std::move(out)});
}

NodeConnection* Worker::connection_for(const std::string& node_id) {
  auto it = connections_.find(node_id);
  if (it != connections_.end()) return it->second.get();
  auto cfg = node_configs_.find(node_id);
  if (cfg == node_configs_.end()) return nullptr;
  json::Document d;
  if (!json::parse(d, cfg->second) || !d.IsObject()) return nullptr;
  auto c = std::make_unique<NodeConnection>();
  c->id = node_id;
  c->type = text_or(d, "type", "push_zmq");
  if (c->type != "push_zmq") {
    host_.log(Severity::kError, "[proxy] node '" + node_id + "': type '" + c->type + "' is not handled by this worker yet");
    return nullptr;
  }
  std::string target_type = text_or(d, "target_type", "tcp");
  std::string target_path = text_or(d, "target_path", text_or(d, "address") + ":" + text_or(d, "port"));
  c->endpoint = target_type + "://" + target_path;
  CoreInfo core = host_.core_info();
  c->privkey_path = text_or(d, "client_privkey", core.privkey_path);
  c->pubkey_path = text_or(d, "client_pubkey", core.pubkey_path);
  auto key = protocol::RsaKey::load_private_file(c->privkey_path);
  if (!key) {
    host_.log(Severity::kError, "[proxy] node '" + node_id + "': cannot load client key: " + key.error());
    return nullptr;
  }
  std::string target = c->endpoint;
  std::string mode = core.fingerprint_mode;
  Host* host = &host_;
  auto check = [host, target, mode](const protocol::RsaKey& server) -> Status {
    if (mode == "always") return Status::success();
    std::string fp = server.jwk_thumbprint();
    auto known = host->history().target_fingerprint(target);
    if (!known) return Status::failure("cannot get fingerprint for target '" + target + "'");
    if (!known->has_value()) {
      if (mode == "strict")
        return Status::failure("no fingerprint found for target '" + target + "' [strict mode] [fingerprint: " + fp + "]");
      if (!host->history().add_target_fingerprint(target, fp))
        return Status::failure("cannot insert target '" + target + "' fingerprint");
      return Status::success();
    }
    if (**known != fp)
      return Status::failure("fingerprint changed for target '" + target + "' [old fingerprint: " + **known +
                             "] [new fingerprint: " + fp + "]");
    return Status::success();
  };
  std::string hid = "gorgone-proxy-" + core.id + "-" + node_id;
  c->handshake.emplace(hid, std::move(key.value()), check);
  c->socket = std::make_unique<zmq::socket_t>(host_.zmq_context(), zmq::socket_type::dealer);
  c->socket->set(zmq::sockopt::routing_id, hid + "-" + protocol::to_hex(protocol::random_bytes(12)));
  c->socket->set(zmq::sockopt::linger, 0);
  c->socket->set(zmq::sockopt::reconnect_ivl, 1000);
  c->socket->set(zmq::sockopt::connect_timeout, 30000);
  try {
    c->socket->connect(c->endpoint);
  } catch (const zmq::error_t& e) {
    host_.log(Severity::kError, "[proxy] node '" + node_id + "': cannot connect to " + c->endpoint + ": " + e.what());
    return nullptr;
  }
  host_.log(Severity::kInfo, "[proxy] connect for " + node_id + " (" + c->endpoint + ")");
  std::string hello = c->handshake->start();
  c->socket->send(zmq::buffer(hello), zmq::send_flags::dontwait);
  c->deadline = Clock::now() + std::chrono::seconds(settings_.handshake_timeout);
  NodeConnection* raw = c.get();
  connections_[node_id] = std::move(c);
  return raw;
}

void Worker::fail_node(NodeConnection& c, const std::string& reason) {
  std::string id = c.id;
  host_.log(Severity::kError, "[proxy] node '" + id + "': " + (reason.empty() ? "no answer" : reason));
  // Nothing is dropped silently: each frame that was waiting gets a KO in history.
  for (const auto& p : c.queue) history_ko(p.token, "Send message problem for '" + p.target + "': " + reason);
  close_node(id, true);
}

void Worker::on_node_message(NodeConnection& c) {
  for (int i = 0; i < 1000 && c.socket; ++i) {
    zmq::message_t msg;
    if (!c.socket->recv(msg, zmq::recv_flags::dontwait)) return;
    using Kind = protocol::HandshakeClient::Step::Kind;
    auto step = c.handshake->on_message(msg.to_string_view());
    switch (step.kind) {
      case Kind::kSend:
        c.socket->send(zmq::buffer(step.text), zmq::send_flags::dontwait);
        c.deadline = Clock::now() + std::chrono::seconds(settings_.handshake_timeout);
        break;
      case Kind::kEstablished:
        host_.log(Severity::kInfo, "[proxy] session established with node '" + c.id + "'");
        while (!c.queue.empty()) {
          std::string wire = c.handshake->encrypt(c.queue.front().text);
          c.socket->send(zmq::buffer(wire), zmq::send_flags::dontwait);
          c.queue.pop_front();
        }
        break;
      case Kind::kMessage:
        on_node_text(c, step.text);
        break;
      case Kind::kRotated:
        host_.log(Severity::kInfo, "[proxy] node '" + c.id + "' rotated the session key");
        break;
      case Kind::kFailed:
        fail_node(c, step.text);
        return;
      case Kind::kIgnored:
        break;
    }
  }
}

void Worker::on_node_text(NodeConnection& c, std::string_view text) {
  auto r = protocol::parse_response(text);
  if (!r) return;
  if (r->type == "PONG") {
    json::Document d;
    if (!json::parse(d, r->json) || !d.IsObject()) return;
    if (!d.HasMember("data") || !d["data"].IsObject()) d.AddMember("data", json::Value(rapidjson::kObjectType), d.GetAllocator());
    json::Value& data = d["data"];
    data.RemoveMember("id");
    data.AddMember("id", json::Value(c.id.c_str(), d.GetAllocator()), d.GetAllocator());
    to_core("PONG", r->token, json::dump(d));
  } else if (r->type == "REGISTERNODES" || r->type == "UNREGISTERNODES" || r->type == "SYNCLOGS") {
    to_core(r->type, r->token, r->json);
  } else if (r->type == "ACK") {
    json::Document d;
    if (!json::parse(d, r->json) || !d.IsObject()) return;
    auto data = d.FindMember("data");
    if (data == d.MemberEnd() || !data->value.IsObject()) return;
    if (json::member_text(data->value, "action").value_or("") != "getlog") return;
    data->value.RemoveMember("id");
    data->value.AddMember("id", json::Value(c.id.c_str(), d.GetAllocator()), d.GetAllocator());
    to_core("SETLOGS", r->token, json::dump(d));
  }
}

void Worker::check_timeouts() {
  auto now = Clock::now();
  std::vector<std::string> expired;
  for (auto& [id, c] : connections_)
    if (c->handshake && c->handshake->state() != protocol::HandshakeClient::State::kEstablished && now > c->deadline)
      expired.push_back(id);
  for (const auto& id : expired) {
    auto it = connections_.find(id);
    if (it != connections_.end()) fail_node(*it->second, "Handshake timeout");
  }
}

}  // namespace gorgone::proxy
