#include "wire.hpp"

#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/protocol/response.hpp"

namespace gorgone::pull {
namespace {

std::string nodes_json(const std::string& core_id, const std::string* routing_id) {
  rapidjson::StringBuffer sb;
  json::Writer w(sb);
  w.StartObject();
  w.Key("nodes");
  w.StartArray();
  w.StartObject();
  w.Key("id");
  w.String(core_id.c_str(), static_cast<rapidjson::SizeType>(core_id.size()));
  if (routing_id) {
    w.Key("type");
    w.String("pull");
    w.Key("identity");
    w.String(routing_id->c_str(), static_cast<rapidjson::SizeType>(routing_id->size()));
  }
  w.EndObject();
  w.EndArray();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

bool starts_with(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

}  // namespace

std::string draw_routing_id(const std::string& core_id) {
  return "gorgone-" + core_id + "-" + protocol::to_hex(protocol::random_bytes(12));
}

std::string register_frame(const std::string& core_id, const std::string& routing_id) {
  return protocol::build_frame("REGISTERNODES", "", "", nodes_json(core_id, &routing_id));
}

std::string unregister_frame(const std::string& core_id) {
  return protocol::build_frame("UNREGISTERNODES", "", "", nodes_json(core_id, nullptr));
}

bool for_core(std::string_view frame) { return !starts_with(frame, "[ACK]"); }

std::optional<std::string> to_central(std::string_view message) {
  auto r = protocol::parse_response(message);
  if (!r) return std::nullopt;
  if (r->type == "PONG" || r->type == "SYNCLOGS") return std::string(message);
  if (r->type != "ACK") return std::nullopt;
  json::Document doc;
  if (!json::parse(doc, r->json)) return std::string(message);  // Gorgone sends it on as it is
  if (!doc.IsObject()) return std::nullopt;
  auto data = doc.FindMember("data");
  if (data == doc.MemberEnd() || !data->value.IsObject()) return std::nullopt;
  auto action = data->value.FindMember("action");
  if (action == data->value.MemberEnd() || !action->value.IsString() ||
      std::string_view(action->value.GetString(), action->value.GetStringLength()) != "getlog")
    return std::nullopt;
  return "[SETLOGS] [" + r->token + "] [] " + r->json;
}

std::int64_t Backoff::next() {
  std::int64_t delay = next_;
  next_ = std::min<std::int64_t>(next_ * 2, 30);
  return delay;
}

void KeepAlive::connected(std::int64_t now) {
  last_received_ = now;
  last_sent_ = now;
  waiting_ = false;
}

void KeepAlive::received(std::int64_t now) {
  last_received_ = now;
  waiting_ = false;
}

KeepAlive::Action KeepAlive::due(std::int64_t now) {
  if (ping_ <= 0) return Action::kNone;
  if (waiting_) {
    if (now - sent_at_ > ping_timeout_) {
      waiting_ = false;
      return Action::kReconnect;
    }
    return Action::kNone;
  }
  if (now - last_sent_ < kMinInterval || now - last_received_ <= ping_) return Action::kNone;
  last_sent_ = now;
  sent_at_ = now;
  waiting_ = true;
  return Action::kSend;
}

}  // namespace gorgone::pull
