#include "registry.hpp"

#include <algorithm>
#include <random>

namespace gorgone::proxy {
namespace {

std::string text_or(const json::Value& obj, const char* name, std::string fallback = "") {
  auto v = json::member_text(obj, name);
  return v ? *v : fallback;
}

bool is_control_action(const std::string& a) {
  return a == "PING" || a == "PROXYADDNODE" || a == "PROXYDELNODE" || a == "PROXYADDSUBNODE" ||
         a == "PROXYCLOSECONNECTION" || a == "PROXYSTOPREADCHANNEL";
}

std::int64_t random_below(std::int64_t n) {
  if (n <= 1) return 0;
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(n));
}

}  // namespace

const Node* Registry::node(const std::string& id) const {
  auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : &it->second;
}
Node* Registry::node(const std::string& id) {
  auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : &it->second;
}

void Registry::drop_parent_everywhere(const std::string& parent, bool statics, bool dynamics) {
  for (auto it = subnodes_.begin(); it != subnodes_.end();) {
    if (statics) it->second.statics.erase(parent);
    if (dynamics) it->second.dynamics.erase(parent);
    if (it->second.statics.empty() && it->second.dynamics.empty()) it = subnodes_.erase(it);
    else ++it;
  }
}

std::vector<Effect> Registry::register_nodes(const json::Value& nodes, std::int64_t now, std::int64_t ping,
                                             std::vector<std::string>& log) {
  std::vector<Effect> effects;
  if (!nodes.IsArray()) return effects;
  for (const auto& entry : nodes.GetArray()) {
    if (!entry.IsObject()) continue;
    std::string id = text_or(entry, "id");
    if (id.empty() || id.find("~~") != std::string::npos) {
      log.push_back("cannot register a node without a valid id");
      continue;
    }
    if (prevails_subnodes_.count(id)) {
      log.push_back("cannot register node '" + id + "': already defined as a subnode [prevails]");
      continue;
    }
    auto parsed = node_type_of(entry);
    if (!parsed) {
      log.push_back("cannot register node '" + id + "': " + parsed.error());
      continue;
    }
    const NodeType type = parsed->type;
    bool prevail = prevails_.count(id) > 0;
    bool wants_prevail = text_or(entry, "prevail") == "1";
    if (wants_prevail) prevails_.insert(id);
    if (prevail) log.push_back("cannot override node '" + id + "' registration: prevails!!!");

    bool new_node = true;
    auto existing = nodes_.find(id);
    if (existing != nodes_.end()) {
      if (!prevail) drop_parent_everywhere(id, true, true);
      new_node = false;
      // A node a worker held becomes one nobody holds: the worker lets it go.
      if (kind(existing->second.type).pool_worker && !kind(type).pool_worker) {
        unregister_one(id, &entry, effects, log);
        new_node = true;
      }
    }
    if (!prevail) {
      Node n;
      n.id = id;
      n.type = type;
      n.type_name = parsed->name;
      n.json = json::dump(entry);
      n.prevail = wants_prevail;
      std::string pt = text_or(entry, "ping_timeout");
      if (!pt.empty() && pt.size() < 7 && std::all_of(pt.begin(), pt.end(), ::isdigit) && std::stol(pt) > 0)
        n.ping_timeout = std::stol(pt);
      auto subs = entry.FindMember("nodes");
      if (subs != entry.MemberEnd() && subs->value.IsArray()) {
        for (const auto& sub : subs->value.GetArray()) {
          std::string sid = sub.IsObject() ? text_or(sub, "id") : json::as_text(sub).value_or("");
          if (sid.empty() || sid == id) continue;
          long score = 1;
          if (sub.IsObject()) {
            std::string ps = text_or(sub, "pathscore");
            if (!ps.empty() && std::all_of(ps.begin(), ps.end(), ::isdigit) && ps.size() < 10) score = std::stol(ps);
          }
          n.subnodes.emplace_back(sid, score);
          subnodes_[sid].statics[id] = score;
          if (wants_prevail) {
            if (nodes_.count(sid)) unregister_one(sid, nullptr, effects, log);
            prevails_subnodes_.insert(sid);
          }
        }
      }
      // A pull node redefined here keeps the connection it announced.
      auto current = nodes_.find(id);  // `existing` may be gone (unregistered above)
      if (current != nodes_.end() && kind(current->second.type).needs_identity && kind(n.type).needs_identity)
        n.identity = current->second.identity;
      else if (current != nodes_.end())
        clear_identity(current->second);
      nodes_[id] = std::move(n);
    }
    Node& registered = nodes_[id];
    if (kind(type).needs_identity) {
      std::string identity = text_or(entry, "identity");
      if (!identity.empty() && kind(registered.type).needs_identity) bind_identity(id, identity, now);
    }
    if (!last_pong_.count(id)) last_pong_[id] = 0;
    if (!sync_.count(id)) sync_[id] = SyncState{};
    if (kind(registered.type).pool_worker) effects.push_back(Effect{Effect::Kind::kAddNode, id, registered.json});
    if (new_node || !status_.count(id)) {
      PingStatus st;
      st.type = registered.type;
      st.type_name = registered.type_name;
      st.next_ping = now + random_below(ping);
      status_[id] = st;
      log.push_back("Node '" + id + "' is registered");
    }
  }
  return effects;
}

void Registry::unregister_one(const std::string& id, const json::Value* entry, std::vector<Effect>& effects,
                              std::vector<std::string>& log) {
  auto it = nodes_.find(id);
  bool prevail = prevails_.count(id) > 0;
  if (it != nodes_.end() && kind(it->second.type).pool_worker)
    effects.push_back(Effect{Effect::Kind::kDelNode, id, entry ? json::dump(*entry) : "{\"id\":" + json::quote(id) + "}"});
  if (it != nodes_.end() && kind(it->second.type).needs_identity && prevail) clear_identity(it->second);
  log.push_back("Node '" + id + "' is unregistered");
  if (it != nodes_.end()) {
    for (const auto& [sid, score] : it->second.subnodes) {
      (void)score;
      auto s = subnodes_.find(sid);
      if (s == subnodes_.end()) continue;
      if (!prevail) s->second.statics.erase(id);
      s->second.dynamics.erase(id);
      if (s->second.statics.empty() && s->second.dynamics.empty()) subnodes_.erase(s);
    }
    drop_parent_everywhere(id, false, true);
    for (auto c = claimed_subnodes_.begin(); c != claimed_subnodes_.end();)
      c = c->second == id ? claimed_subnodes_.erase(c) : std::next(c);
    if (!prevail) {
      clear_identity(it->second);
      nodes_.erase(it);
      // A prevailing pull node keeps its status so that its pings keep being accounted.
      sync_.erase(id);
      status_.erase(id);
      last_pong_.erase(id);
    }
  }
}

std::vector<Effect> Registry::unregister_nodes(const json::Value& nodes, std::vector<std::string>& log) {
  std::vector<Effect> effects;
  if (!nodes.IsArray()) return effects;
  for (const auto& entry : nodes.GetArray()) {
    std::string id = entry.IsObject() ? text_or(entry, "id") : json::as_text(entry).value_or("");
    if (id.empty()) continue;
    unregister_one(id, &entry, effects, log);
  }
  return effects;
}

void Registry::clear_identity(Node& n) {
  auto b = by_identity_.find(n.identity);
  if (b != by_identity_.end() && b->second == n.id) by_identity_.erase(b);
  n.identity.clear();
}

void Registry::bind_identity(const std::string& id, const std::string& identity, std::int64_t now) {
  auto it = nodes_.find(id);
  if (it == nodes_.end() || !kind(it->second.type).needs_identity) return;
  clear_identity(it->second);
  // A connection speaks for one node: a routing id reused for another node leaves the first.
  auto previous = by_identity_.find(identity);
  if (previous != by_identity_.end() && previous->second != id)
    if (auto other = nodes_.find(previous->second); other != nodes_.end()) other->second.identity.clear();
  it->second.identity = identity;
  by_identity_[identity] = id;
  if (last_pong_.count(id)) last_pong_[id] = now;
}

const Node* Registry::node_by_identity(const std::string& identity) const {
  auto b = by_identity_.find(identity);
  return b == by_identity_.end() ? nullptr : node(b->second);
}

std::vector<Effect> Registry::register_from_node(const Claimant& from, const json::Value& nodes, std::int64_t now,
                                                 std::int64_t ping, std::vector<std::string>& log,
                                                 std::vector<Takeover>& takeovers) {
  std::vector<Effect> effects;
  if (!nodes.IsArray()) return effects;
  std::string who = from.node.empty() ? "an unregistered connection" : "node '" + from.node + "'";
  auto refuse = [&](const std::string& id, const std::string& why) {
    log.push_back("refused: " + who + " registered node '" + id + "': " + why);
  };
  for (const auto& entry : nodes.GetArray()) {
    if (!entry.IsObject()) continue;
    std::string id = text_or(entry, "id");
    if (id.empty() || id.find("~~") != std::string::npos) {
      refuse(id, "not a valid id");
      continue;
    }
    std::string identity = text_or(entry, "identity");
    bool self = !from.identity.empty() && (from.node.empty() || from.node == id);
    if (self) {
      // A pull poller announcing itself on the connection that carries the announcement.
      auto parsed = node_type_of(entry);
      if (!parsed) {
        refuse(id, parsed.error());
        continue;
      }
      if (!kind(parsed->type).pull()) {
        refuse(id, "a connected node can only announce itself as pull, not '" + parsed->name + "'");
        continue;
      }
      const std::string& type = parsed->name;
      if (identity != from.identity) {
        refuse(id, "the identity it gives is not the one of its connection");
        continue;
      }
      if (prevails_subnodes_.count(id) || (subnodes_.count(id) && !nodes_.count(id))) {
        refuse(id, "it is a subnode of another node here");
        continue;
      }
      auto existing = nodes_.find(id);
      if (existing != nodes_.end() && !kind(existing->second.type).pull()) {
        refuse(id, "it is a " + existing->second.type_name + " node here; a node cannot change its type");
        continue;
      }
      if (existing == nodes_.end()) {
        Node n;
        n.id = id;
        n.type = parsed->type;
        n.type_name = type;
        n.local = false;
        rapidjson::StringBuffer sb;
        json::Writer w(sb);
        w.StartObject();
        w.Key("id");
        w.String(id.c_str(), static_cast<rapidjson::SizeType>(id.size()));
        w.Key("type");
        w.String(type.c_str(), static_cast<rapidjson::SizeType>(type.size()));
        w.EndObject();
        n.json.assign(sb.GetString(), sb.GetSize());
        nodes_[id] = std::move(n);
        if (!last_pong_.count(id)) last_pong_[id] = 0;
        if (!sync_.count(id)) sync_[id] = SyncState{};
        PingStatus st;
        st.type = parsed->type;
        st.type_name = type;
        st.next_ping = now + random_below(ping);
        status_[id] = st;
        log.push_back("Node '" + id + "' is registered (announced by its connection)");
      }
      const Node& n = nodes_[id];
      if (!n.identity.empty() && n.identity != identity) {
        takeovers.push_back(Takeover{id, n.identity, identity});
        continue;
      }
      bind_identity(id, identity, now);
      continue;
    }
    // Anything else is an id below the sender.
    if (from.node.empty()) {
      refuse(id, "the connection has not announced which node it is");
      continue;
    }
    if (!from.may_register_below) {
      refuse(id, "its configuration here does not set accept_remote_registration");
      continue;
    }
    if (id == from.node || nodes_.count(id) || prevails_subnodes_.count(id)) {
      refuse(id, "that id is defined here");
      continue;
    }
    auto claimed = claimed_subnodes_.find(id);
    auto sub = subnodes_.find(id);
    bool defined_here = sub != subnodes_.end() && !sub->second.statics.empty() &&
                        (claimed == claimed_subnodes_.end() || sub->second.statics.size() > 1 ||
                         !sub->second.statics.count(claimed->second));
    if (defined_here || (claimed != claimed_subnodes_.end() && claimed->second != from.node)) {
      refuse(id, "that id is defined here or registered by another node");
      continue;
    }
    claimed_subnodes_[id] = from.node;
    subnodes_[id].statics[from.node] = 1;
    log.push_back("Node '" + id + "' is registered below node '" + from.node + "'");
  }
  return effects;
}

std::vector<Effect> Registry::unregister_from_node(const Claimant& from, const json::Value& nodes,
                                                   std::vector<std::string>& log) {
  std::vector<Effect> effects;
  if (!nodes.IsArray()) return effects;
  std::string who = from.node.empty() ? "an unregistered connection" : "node '" + from.node + "'";
  for (const auto& entry : nodes.GetArray()) {
    std::string id = entry.IsObject() ? text_or(entry, "id") : json::as_text(entry).value_or("");
    if (id.empty()) continue;
    if (!from.node.empty() && id == from.node && !from.identity.empty()) {
      Node* n = node(id);
      if (!n || n->identity != from.identity) continue;
      if (n->local) {
        clear_identity(*n);  // a node defined here stays; it is just not connected any more
        log.push_back("Node '" + id + "' is unregistered (its connection left)");
      } else {
        unregister_one(id, &entry, effects, log);
      }
      continue;
    }
    auto claimed = claimed_subnodes_.find(id);
    if (claimed != claimed_subnodes_.end() && claimed->second == from.node && !from.node.empty()) {
      auto sub = subnodes_.find(id);
      if (sub != subnodes_.end()) {
        sub->second.statics.erase(from.node);
        if (sub->second.statics.empty() && sub->second.dynamics.empty()) subnodes_.erase(sub);
      }
      claimed_subnodes_.erase(claimed);
      log.push_back("Node '" + id + "' is unregistered from below node '" + from.node + "'");
      continue;
    }
    log.push_back("refused: " + who + " unregistered node '" + id + "': it does not own it");
  }
  return effects;
}

bool Registry::pong(const std::string& id, const json::Value* status, std::int64_t now) {
  auto it = status_.find(id);
  if (it == status_.end()) return false;
  PingStatus& s = it->second;
  s.in_progress_ping = 0;
  s.ping_timeout = 0;
  s.last_ping_recv = now;
  s.ping_ok += 1;
  last_pong_[id] = now;
  if (status && status->IsObject()) {
    s.nodes = json::dump(*status);
    learn_dynamic(id, *status);
  }
  return true;
}

bool Registry::pong_reset(const std::string& id) {
  auto it = status_.find(id);
  if (it == status_.end()) return false;
  it->second.in_progress_ping = 0;
  it->second.ping_timeout = 0;
  it->second.ping_failed += 1;
  return true;
}

void Registry::learn_dynamic(const std::string& id, const json::Value& status) {
  drop_parent_everywhere(id, false, true);
  std::set<std::string> seen{id};
  learn_dynamic_rec(id, status, 0, seen);
}

void Registry::learn_dynamic_rec(const std::string& parent, const json::Value& status, int depth,
                                 std::set<std::string>& seen) {
  if (!status.IsObject() || depth > 32) return;
  for (const auto& m : status.GetObject()) {
    std::string sub(m.name.GetString(), m.name.GetStringLength());
    if (sub.empty() || !seen.insert(sub).second) continue;  // a node is never its own subnode; no cycles
    subnodes_[sub].dynamics.insert(parent);
    if (m.value.IsObject()) {
      auto nested = m.value.FindMember("nodes");
      if (nested != m.value.MemberEnd()) learn_dynamic_rec(parent, nested->value, depth + 1, seen);
    }
  }
}

Pathway Registry::pathway(const std::string& action, const std::optional<std::string>& target, std::int64_t now,
                          std::int64_t pong_discard_timeout, std::vector<std::string>* log) const {
  Pathway p;
  if (!target || target->empty()) {
    p.error = "proxy - need a valid node id";
    return p;
  }
  const std::string& t = *target;
  auto sub = subnodes_.find(t);
  if (!nodes_.count(t) && sub == subnodes_.end()) {
    p.error = "proxy - unknown target " + t;
    return p;
  }
  std::vector<std::string> candidates;
  if (nodes_.count(t)) candidates.push_back(t);
  if (sub != subnodes_.end()) {
    std::vector<std::pair<long, std::string>> statics;
    for (const auto& [parent, score] : sub->second.statics) statics.emplace_back(score, parent);
    std::stable_sort(statics.begin(), statics.end());
    for (const auto& s : statics) candidates.push_back(s.second);
    for (const auto& parent : sub->second.dynamics) candidates.push_back(parent);
  }
  std::string first;
  for (const auto& c : candidates) {
    auto n = nodes_.find(c);
    if (n == nodes_.end()) continue;  // a parent that is not (or no longer) a node
    if (kind(n->second.type).needs_identity && n->second.identity.empty()) {
      if (log) log->push_back("skip node " + n->second.type_name + " target '" + c + "' for node '" + t + "' - never connected");
      continue;
    }
    p.parent = c;
    p.target = t;
    if (is_control_action(action) && c == t) {
      p.ok = true;
      p.control = true;
      return p;
    }
    auto lp = last_pong_.find(c);
    if (lp == last_pong_.end() || lp->second == 0 || now - pong_discard_timeout < lp->second) {
      p.ok = true;
      return p;
    }
    if (first.empty()) first = c;
  }
  if (first.empty()) {
    p = Pathway{};
    p.error = "proxy - no pathway for target " + t;
    return p;
  }
  p.ok = true;
  p.control = false;
  p.parent = first;
  p.target = t;
  return p;
}

std::string Registry::constatus_json() const {
  rapidjson::StringBuffer sb;
  json::Writer w(sb);
  w.StartObject();
  for (const auto& [id, s] : status_) {
    w.Key(id.c_str());
    w.StartObject();
    w.Key("type"); w.String(s.type_name.c_str());
    w.Key("in_progress_ping"); w.Int(s.in_progress_ping);
    if (kind(s.type).pull()) { w.Key("in_progress_ping_pull"); w.Int64(s.in_progress_ping_pull); }
    w.Key("ping_timeout"); w.Int64(s.ping_timeout);
    w.Key("last_ping_sent"); w.Int64(s.last_ping_sent);
    w.Key("last_ping_recv"); w.Int64(s.last_ping_recv);
    w.Key("next_ping"); w.Int64(s.next_ping);
    w.Key("ping_ok"); w.Int64(s.ping_ok);
    w.Key("ping_failed"); w.Int64(s.ping_failed);
    w.Key("nodes");
    w.RawValue(s.nodes.c_str(), s.nodes.size(), rapidjson::kObjectType);
    w.EndObject();
  }
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace gorgone::proxy
