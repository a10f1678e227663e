#include "frames.hpp"

#include "html_entities.hpp"

#include "../pull/wire.hpp"
#include "gorgone/json.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/protocol/response.hpp"

namespace gorgone::pullwss {
namespace {

// Gorgone's pullwss builds the node with id, type and identity (a Perl hash: any order on the
// wire; the captured registrations show type, identity, id).
std::string nodes_json(const std::string& core_id, bool registering) {
  rapidjson::StringBuffer sb;
  json::Writer w(sb);
  auto str = [&](const std::string& s) { w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size())); };
  w.StartObject();
  w.Key("nodes");
  w.StartArray();
  w.StartObject();
  if (registering) {
    w.Key("type");
    w.String("wss");
    w.Key("identity");
    str(core_id);
    w.Key("id");
    str(core_id);
  } else {
    w.Key("id");
    str(core_id);
    w.Key("type");
    w.String("wss");
    w.Key("identity");
    str(core_id);
  }
  w.EndObject();
  w.EndArray();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace

std::string register_frame(const std::string& core_id) {
  return protocol::build_frame("REGISTERNODES", "", "", nodes_json(core_id, true));
}

std::string unregister_frame(const std::string& core_id) {
  return protocol::build_frame("UNREGISTERNODES", "", "", nodes_json(core_id, false));
}

std::string encode_entities(std::string_view text) { return proxy::encode_html_entities(text); }

bool for_core(std::string_view message) {
  return !message.empty() && message.front() == '[' && message.substr(0, 5) != "[ACK]";
}

std::optional<std::string> refusal_reason(std::string_view message) {
  json::Document doc;
  if (message.empty() || message.front() != '{' || !json::parse(doc, message) || !doc.IsObject()) return std::nullopt;
  auto m = doc.FindMember("message");
  if (m == doc.MemberEnd() || !m->value.IsString() || !doc.HasMember("code")) return std::nullopt;
  return std::string(m->value.GetString(), m->value.GetStringLength());
}

std::optional<std::string> to_central(std::string_view core_message) {
  auto out = pull::to_central(core_message);
  if (!out) return std::nullopt;
  return encode_entities(*out);
}

std::string describe(std::string_view frame) {
  auto r = protocol::parse_response(frame);
  if (!r) return "(not a frame)";
  return r->type + (r->token.empty() ? std::string(" without token") : " token " + r->token);
}

KeepAlive::Action KeepAlive::due(std::int64_t now) {
  if (ping_timeout_ > 0 && now - last_received_ > ping_timeout_) {
    last_received_ = now;  // once per silence
    return Action::kReconnect;
  }
  if (now - last_sent_ >= ping_) {
    last_sent_ = now;
    return Action::kSend;
  }
  return Action::kNone;
}

}  // namespace gorgone::pullwss
