#include "node_type.hpp"

namespace gorgone::proxy {
namespace {

constexpr bool table_is_indexed_by_type() {
  for (std::size_t i = 0; i < sizeof(kNodeKinds) / sizeof(kNodeKinds[0]); ++i)
    if (static_cast<std::size_t>(kNodeKinds[i].type) != i) return false;
  return true;
}
static_assert(table_is_indexed_by_type(), "kNodeKinds must list the types in NodeType order");
static_assert(sizeof(kNodeKinds) / sizeof(kNodeKinds[0]) == static_cast<std::size_t>(NodeType::kWss) + 1,
              "every NodeType has a row in kNodeKinds");

constexpr const char* kAccepted = "push_zmq, push_ssh, pull, wss, pullwss";

}  // namespace

Result<NodeType> parse_node_type(std::string_view name) {
  for (const auto& k : kNodeKinds)
    if (name == k.name) return k.type;
  // The name Gorgone's documentation gives the websocket kind; its pullwss module registers
  // itself as "wss".
  if (name == "pullwss") return NodeType::kWss;
  return make_error("unknown node type " + json::quote(name) + " (accepted: " + kAccepted + ")");
}

Result<TypeName> node_type_of(const json::Value& node) {
  const json::Value* value = nullptr;
  if (node.IsObject())
    if (auto member = node.FindMember("type"); member != node.MemberEnd()) value = &member->value;
  if (!value || value->IsNull()) return TypeName{kDefaultNodeType, std::string(kind(kDefaultNodeType).name)};
  if (!value->IsString())
    return make_error("unknown node type " + json::dump(*value) + " (accepted: " + kAccepted + ")");
  std::string name(value->GetString(), value->GetStringLength());
  auto type = parse_node_type(name);
  if (!type) return make_error(type.error());
  return TypeName{*type, std::move(name)};
}

}  // namespace gorgone::proxy
