#include "proxy.hpp"

#include <cmath>
#include <cstdio>
#include <ctime>

#include "gorgone/metrics.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "gorgone/status_codes.hpp"
#include "inproc_address.hpp"
#include "pull_link.hpp"

namespace gorgone::proxy {
namespace {

std::int64_t now_s() { return static_cast<std::int64_t>(::time(nullptr)); }

const char* const kLocalEvents[] = {"PONG", "PONGRESET", "UNREGISTERNODES", "REGISTERNODES", "PROXYREADY", "SETLOGS"};

}  // namespace

Proxy::Proxy(Host& host, Settings settings) : host_(host), settings_(settings) {
  // The hooks' own channel to the workers: a ROUTER on the loop thread that their control
  // sockets connect to. Unique per proxy (a test may run several in one process).
  workers_endpoint_ = unique_inproc_address("workers");
  workers_router_.emplace(host_.zmq_context(), zmq::socket_type::router);
  workers_router_->set(zmq::sockopt::linger, 0);
  workers_router_->set(zmq::sockopt::router_mandatory, 1);
  // In-process peers: a burst towards a busy worker waits in its queue (each node's own
  // queue is bounded by the worker) instead of being dropped.
  workers_router_->set(zmq::sockopt::sndhwm, 0);
  workers_router_->bind(workers_endpoint_);
}

Proxy::~Proxy() { stop(); }

Worker::Delivery Proxy::delivery(int pool_id) {
  // Runs on the worker's thread: the frame goes to the loop, where the hooks run.
  return [this, alive = std::weak_ptr<bool>(alive_), pool_id](protocol::Frame frame,
                                                              std::shared_ptr<json::Document> doc) {
    host_.post([this, alive, pool_id, frame = std::move(frame), doc = std::move(doc)] {
      if (!alive.lock()) return;
      from_worker(pool_id, frame, doc.get());
    });
  };
}

void Proxy::from_worker(int pool_id, const protocol::Frame& frame, json::Document* doc) {
  RouteContext ctx{"internal", "gorgone-proxy-" + std::to_string(pool_id)};
  if (!doc) return routing(frame, ctx);
  handle(frame, *doc, ctx);
}

void Proxy::to_worker(const std::string& identity, const protocol::Frame& frame) {
  if (!workers_router_) {  // stopped
    if (!frame.token.empty()) ko(&frame.token, "proxy - stopped");
    return;
  }
  std::string text = protocol::build_frame(frame);
  try {
    if (workers_router_->send(zmq::buffer(identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait) &&
        workers_router_->send(zmq::buffer(text), zmq::send_flags::dontwait))
      return;
    host_.log(Severity::kError, "[proxy] " + identity + " cannot take " + frame.action + " now: not sent");
  } catch (const zmq::error_t& e) {
    host_.log(Severity::kError, "[proxy] cannot send " + frame.action + " to " + identity + ": " + e.what());
  }
  if (!frame.token.empty()) ko(&frame.token, "proxy - cannot reach its worker");
}

void Proxy::init(const std::string& core_id) {
  core_id_ = core_id;
  if (settings_.wss && !wss_) {
    auto wss = std::make_shared<WssServer>(host_, *settings_.wss);
    Status s = wss->start();
    if (s) wss_ = std::move(wss);
    else host_.log(Severity::kError, "[proxy] " + s.message() + "; wss and pullwss pollers cannot connect");
  }
  start_workers();
}

void Proxy::set_core_id(const std::string& id) {
  if (!core_id_.empty()) return;
  core_id_ = id;
  start_workers();
}

void Proxy::start_workers() {
  if (core_id_.empty()) {
    host_.log(Severity::kError, "[proxy] Cannot create child, need a core id");
    return;
  }
  while (static_cast<int>(workers_.size()) < settings_.pool) {
    int pool_id = static_cast<int>(workers_.size()) + 1;
    workers_.push_back(std::make_unique<Worker>(pool_id, host_, settings_, core_id_));
    workers_.back()->set_wss(wss_);
    workers_.back()->set_proxy_channel(workers_endpoint_, delivery(pool_id));
    ready_.push_back(false);
    workers_.back()->start();
  }
}

void Proxy::stop() {
  stopping_ = true;
  for (auto& w : workers_) w->shut_down();
  if (wss_) wss_->stop();
  // Closed now, not with the library: a library that stays loaded until exit would keep the
  // socket open past the core's zmq_ctx_term, which then waits for it forever.
  workers_router_.reset();
}

int Proxy::ready_percent() const {
  if (workers_.empty()) return 0;
  int ready = 0;
  for (bool r : ready_) ready += r ? 1 : 0;
  return ready * 100 / static_cast<int>(workers_.size());
}

void Proxy::ko(const std::string* token, const std::string& message) {
  host_.add_history(token, code::kActionFinishKo, json::message(message));
}

std::string Proxy::describe(const RouteContext& ctx, const protocol::Frame& frame) const {
  if (ctx.router_type == "external") {
    const Node* n = registry_.node_by_identity(ctx.identity);
    return n ? "node '" + n->id + "'" : "connection " + protocol::to_hex(ctx.identity.substr(0, 48));
  }
  if (relayed(ctx)) return frame.target.empty() ? "worker " + ctx.identity : "node '" + frame.target + "'";
  return "local module";
}

bool Proxy::relayed(const RouteContext& ctx) { return ctx.router_type == "internal" && ctx.identity.rfind("gorgone-proxy-", 0) == 0; }

void Proxy::routing(const protocol::Frame& frame, const RouteContext& ctx) {
  if (frame.action == kPullSend) return pull_send(frame, ctx);  // its data is a frame, not JSON
  json::Document doc;
  std::string error;
  if (!json::parse(doc, frame.data, &error)) {
    host_.log(Severity::kError, "[proxy] Cannot decode json data for " + frame.action + " from " + describe(ctx, frame) +
                                    ": " + error);
    ko(&frame.token, "proxy - cannot decode json");
    return;
  }
  handle(frame, doc, ctx);
}

void Proxy::handle(const protocol::Frame& frame, json::Document& doc, const RouteContext& ctx) {
  const std::string& a = frame.action;
  const bool external = ctx.router_type == "external";
  const bool from_node = external || relayed(ctx);
  std::int64_t now = now_s();
  std::vector<std::string> log;
  // What a pull node's connection says about a node id comes from the connection itself.
  const Node* speaker = external ? registry_.node_by_identity(ctx.identity) : nullptr;
  if (a == "PONG" || a == "SETLOGS") {
    if (external) {
      if (!speaker) {
        host_.log(Severity::kError, "[proxy] " + a + " from " + describe(ctx, frame) +
                                        " refused: the connection has not registered as a node");
        return;
      }
      set_sender_id(doc, speaker->id);
    }
    if (a == "PONG") on_pong(doc);
    else setlogs(frame, doc);
  } else if (a == "PONGRESET" || a == "PROXYREADY") {
    if (external) {
      host_.log(Severity::kError, "[proxy] " + a + " from " + describe(ctx, frame) + " refused: only this host's workers send it");
      return;
    }
    if (a == "PONGRESET") {
      auto id = doc.IsObject() && doc.HasMember("data") ? json::member_text(doc["data"], "id") : std::nullopt;
      if (id && registry_.pong_reset(*id)) host_.log(Severity::kInfo, "[proxy] PongReset received from '" + *id + "'");
    } else {
      proxy_ready(doc);
    }
  } else if (a == "REGISTERNODES" || a == "UNREGISTERNODES") {
    if (!doc.IsObject() || !doc.HasMember("nodes")) return;
    if (from_node) return node_registration(frame, doc, ctx, speaker, now);
    std::vector<Effect> effects = a == "REGISTERNODES" ? registry_.register_nodes(doc["nodes"], now, settings_.ping, log)
                                                       : registry_.unregister_nodes(doc["nodes"], log);
    // "cannot register ..." is a refused entry; the rest says what changed.
    for (const auto& l : log)
      host_.log(l.rfind("cannot register", 0) == 0 ? Severity::kError : Severity::kInfo, "[proxy] " + l);
    after_registration(effects);
  } else if (a == "SYNCLOGS") {
    synclogs(doc, ctx, speaker);
  } else {
    // A module of this host asking for a node's logs (the REST log endpoint) is told when
    // that sync is stored.
    const bool waits = a == "GETLOG" && ctx.router_type == "internal" && !from_node && !ctx.identity.empty();
    route(frame, waits ? ctx.identity : std::string());
  }
}

void Proxy::synclogs(const json::Document& doc, const RouteContext& ctx, const Node* speaker) {
  // Whose rows are new: a pull node's connection says it itself; a worker or the wss
  // listener wrote the id of the node whose connection carried it; a local module names one.
  std::optional<std::string> id;
  if (ctx.router_type == "external") {
    if (!speaker) {
      host_.log(Severity::kError, "[proxy] SYNCLOGS from " + describe(ctx, protocol::Frame{}) +
                                      " refused: the connection has not registered as a node");
      return;
    }
    id = speaker->id;
  } else if (doc.IsObject() && doc.HasMember("data") && doc["data"].IsObject()) {
    id = json::member_text(doc["data"], "id");
  }
  const Node* n = id ? registry_.node(*id) : nullptr;
  if (n && kind(n->type).answers_getlog) {
    host_.log(Severity::kDebug, "[proxy] SYNCLOGS from '" + *id + "': syncing its logs now");
    sync_node(*id);
  } else {
    // Gorgone syncs every node on SYNCLOGS; we do so only when it names no node we know.
    full_sync();
  }
}

void Proxy::sync_node(const std::string& id) {
  auto& syncs = registry_.sync();
  auto it = syncs.find(id);
  if (it != syncs.end() && it->second.in_progress) {
    it->second.again = true;
    return;
  }
  route(protocol::Frame{"GETLOG", "", id, "{}"});
}

void Proxy::answer_waiter(const std::string& identity, const std::string& token, const std::string& id, bool stored,
                          const std::string& message) {
  rapidjson::StringBuffer sb;
  json::Writer w(sb);
  w.StartObject();
  w.Key("code");
  w.Int(stored ? code::kActionFinishOk : code::kActionFinishKo);
  w.Key("data");
  w.StartObject();
  w.Key("action");
  w.String("getlog");
  w.Key("id");
  w.String(id.c_str(), static_cast<rapidjson::SizeType>(id.size()));
  w.Key("message");
  w.String(message.c_str(), static_cast<rapidjson::SizeType>(message.size()));
  w.EndObject();
  w.EndObject();
  host_.send_internal(identity, protocol::Frame{"ACK", token, "", std::string(sb.GetString(), sb.GetSize())});
}

void Proxy::sync_ended(const std::string& id, bool stored, const std::string& why) {
  auto& syncs = registry_.sync();
  auto it = syncs.find(id);
  if (it == syncs.end()) return;
  SyncState& s = it->second;
  s.in_progress = false;
  s.ended = s.started;
  if (stored) s.last_synced = now_s();
  std::vector<SyncState::Waiter> done;
  for (auto w = s.waiters.begin(); w != s.waiters.end();) {
    if (w->need <= s.ended) {
      done.push_back(std::move(*w));
      w = s.waiters.erase(w);
    } else {
      ++w;
    }
  }
  const bool again = s.again;
  s.again = false;
  // `s` may move once route() touches the map again: nothing below uses it.
  for (const auto& w : done) answer_waiter(w.identity, w.token, id, stored, stored ? "logs synced" : why);
  if (again) route(protocol::Frame{"GETLOG", "", id, "{}"});
}

void Proxy::set_sender_id(json::Document& doc, const std::string& id) {
  if (!doc.IsObject()) doc.SetObject();
  if (!doc.HasMember("data") || !doc["data"].IsObject()) {
    doc.RemoveMember("data");
    doc.AddMember("data", json::Value(rapidjson::kObjectType), doc.GetAllocator());
  }
  json::Value& data = doc["data"];
  data.RemoveMember("id");
  data.AddMember("id", json::Value(id.c_str(), static_cast<rapidjson::SizeType>(id.size()), doc.GetAllocator()),
                 doc.GetAllocator());
}

void Proxy::proxy_ready(const json::Document& doc) {
  auto pool = json::member_text(doc, "pool_id");
  if (!pool) return;
  int p = std::atoi(pool->c_str());
  if (p < 1 || p > static_cast<int>(ready_.size())) return;
  ready_[p - 1] = true;
  // Re-sync a (re)started worker with its nodes.
  for (const auto& [id, pid] : nodes_pool_)
    if (pid == p)
      if (const Node* n = registry_.node(id))
        send_to_pool(id, protocol::Frame{"PROXYADDNODE", "", id + "~~" + id, n->json});
  flush_pending();
}

// REGISTERNODES/UNREGISTERNODES from a node: what it may say is in Registry::register_from_node.
void Proxy::node_registration(const protocol::Frame& frame, const json::Document& doc, const RouteContext& ctx,
                              const Node* speaker, std::int64_t now) {
  Claimant from;
  if (ctx.router_type == "external") {
    from.identity = ctx.identity;
    if (speaker) from.node = speaker->id;
  } else {
    from.node = frame.target;  // the worker names the node whose connection carried it
    // The wss listener has bound the connection to that node: it speaks for itself.
    if (ctx.identity == kWssRelay) from.identity = "wss-" + frame.target;
  }
  if (const Node* n = from.node.empty() ? nullptr : registry_.node(from.node)) {
    json::Document cfg;
    if (json::parse(cfg, n->json) && cfg.IsObject()) {
      std::string v = json::member_text(cfg, "accept_remote_registration").value_or("");
      from.may_register_below = v == "1" || v == "true" || v == "yes";
    }
  }
  std::vector<std::string> log;
  std::vector<Takeover> takeovers;
  std::vector<Effect> effects =
      frame.action == "REGISTERNODES"
          ? registry_.register_from_node(from, doc["nodes"], now, settings_.ping, log, takeovers)
          : registry_.unregister_from_node(from, doc["nodes"], log);
  for (const auto& t : takeovers) {
    // The id is held by another connection. If that one is gone (the router cannot reach it:
    // the poller restarted with a new identity) the new connection takes the id over; while
    // it is connected, nobody else may speak for that node.
    Status alive = host_.send_external(t.bound_identity, protocol::Frame{"PING", "", t.node, "{}"});
    if (!alive) {
      registry_.bind_identity(t.node, t.claimed_identity, now);
      log.push_back("Node '" + t.node + "' moved to a new connection (the previous one is gone: " + alive.message() + ")");
    } else {
      log.push_back("refused: connection " + protocol::to_hex(t.claimed_identity.substr(0, 48)) + " registered node '" +
                    t.node + "': another live connection speaks for it");
    }
  }
  for (const auto& l : log)
    host_.log(l.rfind("refused", 0) == 0 ? Severity::kError : Severity::kInfo, "[proxy] " + l);
  after_registration(effects);
  // A pull poller that announced itself on its (new) connection: its worker sends what it
  // holds for it now instead of after its back-off.
  if (!from.identity.empty() && frame.action == "REGISTERNODES" && doc["nodes"].IsArray()) {
    for (const auto& entry : doc["nodes"].GetArray()) {
      const Node* n = entry.IsObject() ? registry_.node(json::member_text(entry, "id").value_or("")) : nullptr;
      if (n && kind(n->type).pull() && n->identity == from.identity && ready_percent() > 0)
        send_to_pool(n->id, protocol::Frame{"PROXYADDNODE", "", n->id + "~~" + n->id, n->json});
    }
  }
}

void Proxy::pull_send(const protocol::Frame& frame, const RouteContext& ctx) {
  if (!relayed(ctx)) {
    host_.log(Severity::kError, "[proxy] " + frame.action + " from " + describe(ctx, frame) +
                                    " refused: only this host's workers send it");
    return;
  }
  const std::string& id = frame.target;
  auto answer = [&](const char* action) {
    to_worker(ctx.identity, protocol::Frame{action, frame.token, id + "~~" + id,
                                                      action == kPullReturn ? frame.data : std::string("{}")});
  };
  // After one frame of a session could not go, the later ones go back untried, so that the
  // worker gets them all back in order.
  auto failed = pull_failed_.find(id);
  if (failed != pull_failed_.end() && failed->second == frame.token) return answer(kPullReturn);
  const Node* n = registry_.node(id);
  auto inner = protocol::parse_frame(frame.data);
  Status s = !inner ? Status::failure("unreadable frame")
             : !n || n->identity.empty() ? Status::failure("the node has no connection")
                                         : host_.send_external(n->identity, *inner);
  if (s) return answer(kPullDone);
  pull_failed_[id] = frame.token;
  host_.log(Severity::kInfo, "[proxy] pull node '" + id + "' cannot be reached (" + s.message() +
                                 "): its frames are held until it connects again");
  answer(kPullReturn);
}

void Proxy::after_registration(const std::vector<Effect>& effects) {
  std::vector<std::string> missing;
  for (const auto& [id, sync] : registry_.sync())
    if (!sync.position_loaded && !sync.position_loading) missing.push_back(id);
  apply(effects);
  for (auto it = nodes_pool_.begin(); it != nodes_pool_.end();)
    it = registry_.node(it->first) ? std::next(it) : nodes_pool_.erase(it);
  if (!missing.empty()) load_positions(std::move(missing));
}

// The log-sync positions of nodes new to the registry, read on the host's history thread:
// every one in one query when several are new (a central registering its fleet). A GETLOG
// for one of them meanwhile waits (`again`) and goes once its position is known.
void Proxy::load_positions(std::vector<std::string> ids) {
  for (const auto& id : ids) registry_.sync()[id].position_loading = true;
  struct Loaded {
    std::map<std::string, double> positions;
    std::map<std::string, std::string> failed;  // id -> why
  };
  auto out = std::make_shared<Loaded>();
  host_.history_job(
      [out, ids](History& h) {
        if (ids.size() > 1) {
          auto all = h.sync_positions();
          if (all) {
            for (const auto& id : ids) {
              auto it = all->find(id);
              out->positions[id] = it == all->end() ? 0 : it->second;
            }
            return;
          }
        }
        for (const auto& id : ids) {
          auto pos = h.sync_position(id);
          if (pos) out->positions[id] = *pos;
          else out->failed[id] = pos.error();
        }
      },
      [this, alive = std::weak_ptr<bool>(alive_), out] {
        if (!alive.lock()) return;
        positions_loaded(out->positions, out->failed);
      });
}

void Proxy::positions_loaded(const std::map<std::string, double>& positions,
                             const std::map<std::string, std::string>& failed) {
  std::vector<std::string> go;
  auto& syncs = registry_.sync();
  for (const auto& [id, ctime] : positions) {
    auto it = syncs.find(id);
    if (it == syncs.end() || !registry_.node(id)) continue;  // unregistered meanwhile
    SyncState& s = it->second;
    s.position_loading = false;
    s.position_loaded = true;
    s.position_error = false;
    s.ctime = ctime;
    if (s.again) {
      s.again = false;
      go.push_back(id);
    }
  }
  for (const auto& [id, why] : failed) {
    auto it = syncs.find(id);
    if (it == syncs.end()) continue;
    SyncState& s = it->second;
    s.position_loading = false;
    s.position_loaded = true;
    s.position_error = true;  // the next GETLOG reads it again
    s.again = false;
    host_.log(Severity::kError, "[proxy] cannot read the log-sync position of node '" + id + "': " + why);
    std::vector<SyncState::Waiter> waiters;
    waiters.swap(s.waiters);
    for (const auto& w : waiters) answer_waiter(w.identity, w.token, id, false, "proxy - problem to getlog");
  }
  for (const auto& id : go) route(protocol::Frame{"GETLOG", "", id, "{}"});
}

void Proxy::apply(const std::vector<Effect>& effects) {
  for (const auto& e : effects) {
    if (e.kind == Effect::Kind::kAddNode) {
      // A pull node gets its worker when it first connects (see node_registration).
      const Node* n = registry_.node(e.id);
      if (n && kind(n->type).needs_identity && n->identity.empty()) continue;
      route(protocol::Frame{"PROXYADDNODE", "", e.id, e.data});
      continue;
    }
    pull_failed_.erase(e.id);
    // The node has already left the registry, so no pathway leads to it any more: tell
    // the worker that owns it directly (a node no worker knows has nothing to drop).
    auto pool = nodes_pool_.find(e.id);
    if (pool == nodes_pool_.end()) continue;
    to_worker("gorgone-proxy-" + std::to_string(pool->second),
              protocol::Frame{"PROXYDELNODE", "", e.id + "~~" + e.id, e.data});
    nodes_pool_.erase(pool);
  }
}

void Proxy::flush_pending() {
  std::deque<Held> held;
  held.swap(pending_);
  for (auto& h : held) route(h.frame, h.requester, h.continuation);
}

int Proxy::choose_pool(const std::string& parent) {
  auto it = nodes_pool_.find(parent);
  if (it != nodes_pool_.end()) return it->second;
  int n = static_cast<int>(workers_.size());
  for (int i = 0; i < n; ++i) {
    rr_ = rr_ % n + 1;
    if (ready_[rr_ - 1]) {
      nodes_pool_[parent] = rr_;
      return rr_;
    }
  }
  return 0;
}

// A worker has one inbound channel: control frames and data frames share its FIFO, which
// keeps them in the order the hooks routed them (Perl's per-node channels do not).
void Proxy::send_to_pool(const std::string& parent, const protocol::Frame& frame) {
  int pool = choose_pool(parent);
  if (pool == 0) {  // route() holds frames until a worker is ready, so this is a bug
    host_.log(Severity::kError, "[proxy] no ready worker for node '" + parent + "': " + frame.action + " not sent");
    if (!frame.token.empty()) ko(&frame.token, "proxy - still not ready");
    return;
  }
  to_worker("gorgone-proxy-" + std::to_string(pool), frame);
}

void Proxy::route(const protocol::Frame& in, const std::string& requester, bool continuation) {
  protocol::Frame frame = in;
  std::int64_t now = now_s();
  std::vector<std::string> log;
  std::optional<std::string> target;
  if (!frame.target.empty()) target = frame.target;
  Pathway p = registry_.pathway(frame.action, target, now, settings_.pong_discard_timeout, &log);
  for (const auto& l : log) host_.log(Severity::kDebug, "[proxy] " + l);
  // A module waiting for this sync hears of a refusal at once, as well as from the KO row.
  auto refuse = [&](const std::string& message) {
    ko(frame.token.empty() ? nullptr : &frame.token, message);
    if (!requester.empty()) answer_waiter(requester, frame.token, frame.target, false, message);
  };
  if (!p.ok) return refuse(p.error);
  if (ready_percent() == 0) {
    // Held until a worker is ready; check() answers with a KO after 10 s.
    pending_.push_back(Held{frame, now, requester, continuation});
    return;
  }
  const Node* parent = registry_.node(p.parent);
  if (frame.action == "GETLOG") {
    if (parent && !kind(parent->type).answers_getlog) return refuse("proxy - can't get log a ssh target or through a ssh node");
    if (registry_.node(p.target)) {
      SyncState& s = registry_.sync()[p.target];
      if (!s.position_loaded || s.position_error || s.position_loading) {
        // Its position is not known yet (or could not be read): read it, then sync.
        if (!s.position_loading) {
          s.position_error = false;
          s.position_loaded = false;
          load_positions({p.target});
        }
        SyncState& again = registry_.sync()[p.target];
        again.again = true;
        if (!requester.empty()) again.waiters.push_back({requester, frame.token, again.started + 1});
        return;
      }
      // A node that missed its last ping is not waited for: the asker hears so at once, and
      // the sync still goes (it runs when the node is back).
      std::string waiter = requester;
      auto st = registry_.status().find(p.target);
      if (!waiter.empty() && st != registry_.status().end() && st->second.ping_timeout > 0) {
        answer_waiter(waiter, frame.token, p.target, false,
                      "node '" + p.target + "' did not answer its last ping: its logs are synced when it is back");
        waiter.clear();
      }
      if (s.in_progress) {
        // The sync in flight may have taken its snapshot before what the asker wants to
        // see: the asker waits for the next one, which starts when this one ends.
        if (!requester.empty() || frame.token.empty()) {
          s.again = true;
          if (!waiter.empty()) s.waiters.push_back({waiter, frame.token, s.started + 1});
          return;
        }
        ko(&frame.token, "proxy - getlog already in progress");
        return;
      }
      if (!continuation) ++s.started;
      if (!waiter.empty()) s.waiters.push_back({waiter, frame.token, s.started});
      rapidjson::StringBuffer sb;
      json::Writer w(sb);
      w.StartObject();
      w.Key("ctime");
      w.Double(s.ctime);
      w.EndObject();
      frame.data.assign(sb.GetString(), sb.GetSize());
      s.in_progress = true;
      s.in_progress_time = now;
    }
  }
  send_to_pool(p.parent, protocol::Frame{frame.action, frame.token, p.target_complete(), frame.data});
}

void Proxy::on_pong(const json::Document& doc) {
  if (!doc.IsObject() || !doc.HasMember("data") || !doc["data"].IsObject()) return;
  const json::Value& data = doc["data"];
  auto id = json::member_text(data, "id");
  if (!id || id->empty()) return;
  auto nodes = data.FindMember("data");
  const json::Value* status = nodes != data.MemberEnd() ? &nodes->value : nullptr;
  if (registry_.pong(*id, status, now_s()))
    host_.log(Severity::kDebug, "[proxy] Pong received from '" + *id + "'");
  else
    host_.log(Severity::kDebug, "[proxy] Pong from unknown node '" + *id + "' ignored");
}

void Proxy::setlogs(const protocol::Frame& frame, const json::Document& doc) {
  const json::Value* data = nullptr;
  if (doc.IsObject() && doc.HasMember("data") && doc["data"].IsObject()) data = &doc["data"];
  auto id = data ? json::member_text(*data, "id") : std::nullopt;
  if (!id || id->empty()) {
    ko(&frame.token, "proxy - need a id to setlogs");
    return;
  }
  auto& syncs = registry_.sync();
  auto sit = syncs.find(*id);
  // While a page is being stored, its sync is still in progress: a second answer (late, or
  // a hostile repeat) would be filtered against a cursor that has not moved yet.
  if (sit == syncs.end() || !sit->second.in_progress || sit->second.storing) {
    ko(&frame.token, "proxy - skip setlogs response. Maybe too much time to get response. Retry");
    return;
  }
  std::int64_t now = now_s();
  auto& st = registry_.status();
  if (auto s = st.find(*id); s != st.end()) {
    s->second.in_progress_ping = 0;
    s->second.ping_timeout = 0;
    s->second.last_ping_recv = now;
  }
  if (registry_.last_pong().count(*id)) registry_.last_pong()[*id] = now;

  auto result = data->FindMember("result");
  if (result == data->MemberEnd() || !result->value.IsArray()) {
    ko(&frame.token, "proxy - setlogs without a result list from node '" + *id + "'");
    return sync_ended(*id, false, "the node's answer had no result list");
  }
  // A malformed answer changes nothing: the same rows are asked again next period.
  for (const auto& r : result->value.GetArray()) {
    if (!r.IsObject()) {
      ko(&frame.token, "proxy - setlogs with a row that is not an object from node '" + *id + "'");
      return sync_ended(*id, false, "the node's answer had a row that is not an object");
    }
  }
  const double cursor = sit->second.ctime;
  double position = cursor;
  std::size_t stale = 0, ahead = 0;
  // A ctime far ahead of our clock (a node's broken clock, or a hostile 1e300) would move
  // the cursor there, and "ctime > cursor" would never bring a later row again.
  const double horizon = static_cast<double>(std::time(nullptr)) + 86400;
  std::vector<HistoryRow> rows;
  rows.reserve(result->value.Size());
  for (const auto& r : result->value.GetArray()) {
    auto c = r.FindMember("ctime");
    std::optional<double> ctime = c != r.MemberEnd() ? json::as_number(c->value) : std::nullopt;
    if (!ctime || !std::isfinite(*ctime)) {
      host_.log(Severity::kError, "[proxy] wrong ctime for '" + *id + "'");
      continue;
    }
    // Every row at or below the cursor is stored already: this is a late answer to an
    // earlier GETLOG (timed out, then asked again), and storing it would duplicate rows.
    if (*ctime <= cursor) {
      ++stale;
      continue;
    }
    if (*ctime > horizon) {
      ++ahead;
      std::set<double>& logged = future_ctimes_logged_[*id];
      if (logged.size() < 64 && logged.insert(*ctime).second) {
        char text[32];
        std::snprintf(text, sizeof(text), "%.17g", *ctime);
        host_.log(Severity::kError, "[proxy] node '" + *id + "' sent a row with ctime " + text +
                                        ", more than one day ahead of this clock: refused, the sync position "
                                        "does not move there");
      }
      continue;
    }
    HistoryRow row;
    auto token = r.FindMember("token");
    if (token != r.MemberEnd() && !token->value.IsNull()) row.token = json::as_text(token->value).value_or("");
    if (r.HasMember("code")) row.code = static_cast<int>(json::as_number(r["code"]).value_or(0));
    if (r.HasMember("etime")) row.etime = static_cast<std::int64_t>(json::as_number(r["etime"]).value_or(0));
    if (r.HasMember("instant")) row.instant = static_cast<int>(json::as_number(r["instant"]).value_or(0));
    auto d = r.FindMember("data");
    if (d != r.MemberEnd()) row.data = d->value.IsString() ? std::string(d->value.GetString(), d->value.GetStringLength()) : json::dump(d->value);
    rows.push_back(std::move(row));
    if (*ctime > position) position = *ctime;
  }
  host_.log(Severity::kInfo, "[proxy] Received setlogs for '" + *id + "' (" + std::to_string(rows.size()) + " rows" +
                                 (stale ? ", " + std::to_string(stale) + " already stored" : std::string()) +
                                 (ahead ? ", " + std::to_string(ahead) + " refused for a ctime ahead" : std::string()) +
                                 ")");
  if (rows.empty()) return sync_ended(*id, true, "");
  auto more = data->FindMember("more");
  const bool next_page = more != data->MemberEnd() && more->value.IsBool() && more->value.GetBool();
  // Stored on the host's history thread; the sync stays in progress (no other GETLOG for
  // this node) until the page is in.
  sit->second.storing = true;
  struct Stored {
    Status status;
    std::vector<RefusedRow> refused;
    std::vector<std::string> refused_tokens;
  };
  auto out = std::make_shared<Stored>();
  host_.history_job(
      [out, node = *id, rows = std::move(rows), position](History& h) {
        out->status = h.store_synced_reporting(node, rows, position, out->refused);
        for (const auto& r : out->refused) out->refused_tokens.push_back(rows[r.index].token.value_or(""));
      },
      [this, alive = std::weak_ptr<bool>(alive_), out, node = *id, position, next_page] {
        if (!alive.lock()) return;
        page_stored(node, position, next_page, out->status, out->refused, out->refused_tokens);
      });
}

void Proxy::page_stored(const std::string& id, double position, bool next_page, const Status& s,
                        const std::vector<RefusedRow>& refused, const std::vector<std::string>& tokens) {
  auto& syncs = registry_.sync();
  auto sit = syncs.find(id);
  if (sit == syncs.end()) return;  // unregistered meanwhile
  sit->second.storing = false;
  if (!s) {
    host_.log(Severity::kError, "[proxy] cannot store logs of node '" + id + "': " + s.message());
    return sync_ended(id, false, "cannot store the logs: " + s.message());
  }
  for (std::size_t i = 0; i < refused.size(); ++i)
    host_.log(Severity::kError, "[proxy] a row of node '" + id + "' (token " + json::quote(tokens[i]) +
                                    ") was refused by the history store, a KO row took its place: " + refused[i].reason);
  sit->second.ctime = position;
  host_.send_to_parents(protocol::Frame{"SYNCLOGS", "", "", "{\"code\":0,\"data\":{\"id\":" + json::quote(core_id_) + "}}"});
  // A node that pages its backlog says so; fetch the next page now rather than one
  // synchistory_time later. The cursor moved, so this cannot loop on the same page.
  if (next_page) {
    sit->second.in_progress = false;
    route(protocol::Frame{"GETLOG", "", id, "{}"}, std::string(), true);
  } else {
    sync_ended(id, true, "");
  }
}

void Proxy::ping_send(std::int64_t now) {
  std::vector<std::string> due;
  for (auto& [id, s] : registry_.status()) {
    if (s.in_progress_ping == 1 || now < s.next_ping) continue;
    const Node* n = registry_.node(id);
    if (!n) continue;
    // A pull node that is not connected cannot be pinged: try again next period instead of
    // writing a KO row every period and holding in_progress_ping for the pull timeout.
    if (!registry_.pathway("PING", id, now, settings_.pong_discard_timeout).ok) {
      s.next_ping = now + settings_.ping;
      continue;
    }
    s.last_ping_sent = now;
    s.next_ping = now + settings_.ping;
    s.in_progress_ping = 1;
    if (kind(n->type).pull()) s.in_progress_ping_pull = now;
    due.push_back(id);
  }
  for (const auto& id : due) route(protocol::Frame{"PING", "", id, "{}"});
}

void Proxy::full_sync() {
  last_full_sync_ = now_s();
  std::vector<std::string> ids;
  for (const auto& [id, n] : registry_.nodes())
    if (kind(n.type).answers_getlog) ids.push_back(id);
  for (const auto& id : ids) {
    SyncState& s = registry_.sync()[id];
    if (s.in_progress) continue;  // the timeout below will free it
    route(protocol::Frame{"GETLOG", "", id, "{}"});
  }
}

CheckResult Proxy::check() {
  CheckResult r;
  for (const auto& w : workers_) r.count += w->running() ? 1 : 0;
  r.keepalive = true;
  if (stopping_ || host_.stopping()) return r;
  std::int64_t now = now_s();
  ping_send(now);
  for (auto& [id, s] : registry_.status()) {
    const Node* n = registry_.node(id);
    if (!n || s.in_progress_ping != 1) continue;
    if (kind(n->type).pull()) {
      if (now - s.in_progress_ping_pull > n->ping_timeout) {
        host_.log(Severity::kInfo, "[proxy] Ping timeout from '" + id + "'");
        s.in_progress_ping = 0;
      }
    } else if (now - s.last_ping_sent > settings_.pong_discard_timeout) {
      host_.log(Severity::kInfo, "[proxy] Ping timeout from '" + id + "'");
      s.in_progress_ping = 0;
      s.ping_timeout += 1;
      s.ping_failed += 1;
      if (s.ping_timeout % settings_.pong_max_timeout == 0) {
        host_.log(Severity::kInfo, "[proxy] Ping max timeout reached from '" + id + "'");
        route(protocol::Frame{"PROXYCLOSECONNECTION", "", id, "{\"id\":" + json::quote(id) + "}"});
      }
    }
  }
  std::vector<std::string> timed_out;
  for (auto& [id, s] : registry_.sync()) {
    if (s.in_progress && !s.storing && now - s.in_progress_time > settings_.synchistory_timeout) {
      ko(nullptr, "proxy - getlog in timeout for '" + id + "'");
      timed_out.push_back(id);
    }
  }
  for (const auto& id : timed_out) sync_ended(id, false, "proxy - getlog in timeout for '" + id + "'");
  if (now - last_full_sync_ > settings_.synchistory_time) full_sync();
  while (!pending_.empty() && now - pending_.front().since > 10) {
    const auto& f = pending_.front().frame;
    ko(f.token.empty() ? nullptr : &f.token, "proxy - still not ready");
    if (!pending_.front().requester.empty())
      answer_waiter(pending_.front().requester, f.token, f.target, false, "proxy - still not ready");
    pending_.pop_front();
  }
  // Restart a worker that died. It gave every frame it held a KO row; the new one takes
  // over its control socket (frames routed to the pool since are handled, not lost) and its
  // node configurations, and its PROXYREADY makes routing() send them again anyway.
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    if (!workers_[i]->running()) {
      host_.log(Severity::kError, "[proxy] worker " + std::to_string(i + 1) + " is not running: restarting it");
      ready_[i] = false;
      auto next = std::make_unique<Worker>(static_cast<int>(i + 1), host_, settings_, core_id_);
      workers_[i]->stop();  // its thread has ended: this only joins it
      next->adopt(*workers_[i]);
      next->set_wss(wss_);
      next->set_proxy_channel(workers_endpoint_, delivery(static_cast<int>(i + 1)));
      workers_[i] = std::move(next);
      workers_[i]->start();
    }
  }
  return r;
}

namespace {

bool same_wss(const std::optional<WssConfig>& a, const std::optional<WssConfig>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a) return true;
  return a->ssl == b->ssl && a->ssl_cert_file == b->ssl_cert_file && a->ssl_key_file == b->ssl_key_file &&
         a->passphrase == b->passphrase && a->token == b->token && a->address == b->address && a->port == b->port &&
         a->max_message_size == b->max_message_size && a->idle_timeout == b->idle_timeout;
}

}  // namespace

Status Proxy::reload(const YAML::Node& module_config, std::string& summary) {
  auto next = parse_settings(module_config);
  if (!next) return Status::failure(next.error() + "; the proxy's directives stay as they were");
  std::string applied, restart;
  auto note = [](std::string& list, const std::string& what) { list += (list.empty() ? "" : ", ") + what; };
  auto live = [&](const char* name, std::int64_t& current, std::int64_t wanted) {
    if (current == wanted) return;
    note(applied, std::string(name) + " " + std::to_string(current) + " -> " + std::to_string(wanted));
    current = wanted;
  };
  const std::int64_t old_ping = settings_.ping;
  live("ping", settings_.ping, next->ping);
  live("pong_discard_timeout", settings_.pong_discard_timeout, next->pong_discard_timeout);
  live("pong_max_timeout", settings_.pong_max_timeout, next->pong_max_timeout);
  live("synchistory_time", settings_.synchistory_time, next->synchistory_time);
  live("synchistory_timeout", settings_.synchistory_timeout, next->synchistory_timeout);
  // A shorter period holds from now on: no node waits out the longer one first.
  if (settings_.ping < old_ping) {
    const std::int64_t latest = now_s() + settings_.ping;
    for (auto& [id, st] : registry_.status())
      if (st.next_ping > latest) st.next_ping = latest;
  }
  if (next->pool != settings_.pool) note(restart, "pool");
  if (next->buffer_size != settings_.buffer_size) note(restart, "buffer_size");
  if (next->handshake_timeout != settings_.handshake_timeout) note(restart, "handshake_timeout");
  if (next->max_queue != settings_.max_queue) note(restart, "max_queue");
  if (next->max_frame_size != settings_.max_frame_size) note(restart, "max_frame_size");
  if (!same_wss(next->wss, settings_.wss)) note(restart, "httpserver");
  summary = "proxy directives: " + (applied.empty() ? std::string("none changed") : "applied " + applied);
  if (!restart.empty()) summary += "; changed but kept until a restart: " + restart;
  return Status::success();
}

std::string Proxy::metrics() const {
  metrics::Text m;
  const std::int64_t now = now_s();
  const auto& status = registry_.status();
  const auto& syncs = registry_.sync();
  m.family("gorgone_node_up", "gauge",
           "1 when the node answered its last ping (or was not pinged yet), 0 when its last ping timed out");
  for (const auto& [id, s] : status) m.sample("gorgone_node_up", {{"node", id}, {"type", s.type_name}}, s.ping_timeout > 0 ? 0 : 1);
  m.family("gorgone_node_pings_ok_total", "counter", "Pings the node answered");
  for (const auto& [id, s] : status) m.sample("gorgone_node_pings_ok_total", {{"node", id}}, static_cast<double>(s.ping_ok));
  m.family("gorgone_node_pings_failed_total", "counter", "Pings the node did not answer in time");
  for (const auto& [id, s] : status)
    m.sample("gorgone_node_pings_failed_total", {{"node", id}}, static_cast<double>(s.ping_failed));
  m.family("gorgone_node_ping_rtt_seconds", "gauge", "Round trip of the node's last answered ping (1 s resolution)");
  for (const auto& [id, s] : status)
    if (s.last_ping_recv >= s.last_ping_sent && s.last_ping_sent > 0)
      m.sample("gorgone_node_ping_rtt_seconds", {{"node", id}}, static_cast<double>(s.last_ping_recv - s.last_ping_sent));
  m.family("gorgone_node_last_pong_timestamp_seconds", "gauge", "When the node last answered (Unix time)");
  for (const auto& [id, s] : status)
    if (s.last_ping_recv > 0)
      m.sample("gorgone_node_last_pong_timestamp_seconds", {{"node", id}}, static_cast<double>(s.last_ping_recv));
  m.family("gorgone_node_sync_position_seconds", "gauge", "Log sync cursor: the newest node-side ctime stored here");
  for (const auto& [id, s] : syncs)
    if (registry_.node(id)) m.sample("gorgone_node_sync_position_seconds", {{"node", id}}, s.ctime);
  m.family("gorgone_node_last_sync_timestamp_seconds", "gauge", "When the node's logs were last synced successfully");
  // (Each family's samples follow its own TYPE line, as the text format requires.)
  for (const auto& [id, s] : syncs)
    if (registry_.node(id) && s.last_synced != 0)
      m.sample("gorgone_node_last_sync_timestamp_seconds", {{"node", id}}, static_cast<double>(s.last_synced));
  m.family("gorgone_node_sync_lag_seconds", "gauge", "Seconds since the node's logs were last synced successfully");
  for (const auto& [id, s] : syncs)
    if (registry_.node(id) && s.last_synced != 0)
      m.sample("gorgone_node_sync_lag_seconds", {{"node", id}}, static_cast<double>(now - s.last_synced));
  // What the workers published (at most a second old).
  std::vector<std::shared_ptr<const Worker::Figures>> figures;
  for (const auto& w : workers_) figures.push_back(w ? w->figures() : nullptr);
  struct NodeFamily {
    const char* name;
    const char* type;
    const char* help;
    double (*value)(const Worker::NodeFigures&);
  };
  static const NodeFamily node_families[] = {
      {"gorgone_node_frames_held", "gauge", "Frames waiting in the node's queue (not sent yet)",
       [](const Worker::NodeFigures& n) { return static_cast<double>(n.held); }},
      {"gorgone_node_frames_in_flight", "gauge", "Frames sent to the node and not answered yet",
       [](const Worker::NodeFigures& n) { return static_cast<double>(n.in_flight); }},
      {"gorgone_node_frames_sent_total", "counter", "Frames sent to the node",
       [](const Worker::NodeFigures& n) { return static_cast<double>(n.frames_sent); }},
      {"gorgone_node_bytes_sent_total", "counter", "Bytes of the frames sent to the node (before encryption)",
       [](const Worker::NodeFigures& n) { return static_cast<double>(n.bytes_sent); }},
      {"gorgone_node_frames_received_total", "counter", "Messages read from a push node's link",
       [](const Worker::NodeFigures& n) { return static_cast<double>(n.frames_received); }},
      {"gorgone_node_bytes_received_total", "counter", "Bytes of the messages read from a push node's link (decrypted)",
       [](const Worker::NodeFigures& n) { return static_cast<double>(n.bytes_received); }},
  };
  for (const auto& family : node_families) {
    m.family(family.name, family.type, family.help);
    for (const auto& f : figures)
      if (f)
        for (const auto& n : f->nodes) m.sample(family.name, {{"node", n.node}}, family.value(n));
  }
  struct WorkerFamily {
    const char* name;
    const char* help;
    double (*value)(const Worker::Figures&);
  };
  static const WorkerFamily worker_families[] = {
      {"gorgone_proxy_worker_frames_held", "Frames waiting in the queues of the worker's nodes",
       [](const Worker::Figures& f) { return static_cast<double>(f.held); }},
      {"gorgone_proxy_worker_frames_in_flight", "Frames the worker's nodes have not answered yet",
       [](const Worker::Figures& f) { return static_cast<double>(f.in_flight); }},
      {"gorgone_proxy_worker_nodes", "Nodes the worker has a connection for",
       [](const Worker::Figures& f) { return static_cast<double>(f.nodes.size()); }},
  };
  for (const auto& family : worker_families) {
    m.family(family.name, "gauge", family.help);
    for (std::size_t i = 0; i < figures.size(); ++i)
      if (figures[i]) m.sample(family.name, {{"worker", std::to_string(i + 1)}}, family.value(*figures[i]));
  }
  m.family("gorgone_proxy_workers_ready_ratio", "gauge", "Share of the proxy's pool workers that are ready");
  m.sample("gorgone_proxy_workers_ready_ratio", ready_percent() / 100.0);
  m.family("gorgone_proxy_frames_waiting_for_workers", "gauge", "Frames held until a worker is ready");
  m.sample("gorgone_proxy_frames_waiting_for_workers", static_cast<double>(pending_.size()));
  return m.take();
}

void Proxy::broadcast(const protocol::Frame& frame) {
  (void)frame;  // Workers run in-process: BCASTCOREKEY/BCASTLOGGER need no forwarding.
}

}  // namespace gorgone::proxy
