// The proxy's hooks side: registry, routing decisions, ping and log-sync timers, SETLOGS.
// Thread-bound: every method runs on the host's loop thread (called from the hooks).
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gorgone/module.hpp"
#include "registry.hpp"
#include "settings.hpp"
#include "worker.hpp"

namespace gorgone::proxy {

class Proxy {
 public:
  Proxy(Host& host, Settings settings);
  ~Proxy();

  void init(const std::string& core_id);
  void routing(const protocol::Frame& frame, const RouteContext& ctx);
  CheckResult check();
  // The module's configuration read again: the directives the loop reads (ping,
  // pong_discard_timeout, pong_max_timeout, synchistory_time, synchistory_timeout) take effect
  // now; the others (pool, the workers' buffer_size, handshake_timeout, max_queue,
  // max_frame_size, the httpserver block) are named in `summary` as needing a restart. A
  // configuration parse_settings() refuses changes nothing.
  Status reload(const YAML::Node& module_config, std::string& summary);
  void broadcast(const protocol::Frame& frame);
  void stop();  // gently, kill, kill_internal: stop every worker now
  int ready_percent() const;
  std::string constatus() const { return registry_.constatus_json(); }
  // The proxy's metrics, Prometheus text (doc/running.md lists them).
  std::string metrics() const;
  void full_sync();
  void set_core_id(const std::string& id);
  Registry& registry() { return registry_; }

 private:
  static bool relayed(const RouteContext& ctx);  // a node's own frame, relayed by a worker
  // The proxy's own channel to its workers (worker.hpp, set_proxy_channel).
  Worker::Delivery delivery(int pool_id);
  void from_worker(int pool_id, const protocol::Frame& frame, json::Document* doc);
  void to_worker(const std::string& identity, const protocol::Frame& frame);
  // routing() once frame.data is parsed.
  void handle(const protocol::Frame& frame, json::Document& doc, const RouteContext& ctx);
  std::string describe(const RouteContext& ctx, const protocol::Frame& frame) const;
  static void set_sender_id(json::Document& doc, const std::string& id);
  void proxy_ready(const json::Document& doc);
  void node_registration(const protocol::Frame& frame, const json::Document& doc, const RouteContext& ctx,
                         const Node* speaker, std::int64_t now);
  void after_registration(const std::vector<Effect>& effects);
  void load_positions(std::vector<std::string> ids);
  void positions_loaded(const std::map<std::string, double>& positions, const std::map<std::string, std::string>& failed);
  // A SETLOGS page stored (or not) on the history thread: moves the cursor, asks the next page.
  void page_stored(const std::string& id, double position, bool next_page, const Status& s,
                   const std::vector<RefusedRow>& refused, const std::vector<std::string>& tokens);
  // A worker's frame for a pull node: sent on the node's connection, then answered to the
  // worker (pull_link.hpp).
  void pull_send(const protocol::Frame& frame, const RouteContext& ctx);
  void ko(const std::string* token, const std::string& message);
  // `requester`: the internal identity of a module of this host that sent a GETLOG and
  // waits for the sync (non-empty only then). `continuation`: the next page of a sync.
  void route(const protocol::Frame& frame, const std::string& requester = std::string(), bool continuation = false);
  // A node said it has new rows (SYNCLOGS): sync it now, or once the sync in flight ends.
  void sync_node(const std::string& id);
  // The sync in flight for `id` ended (stored, or not): answers the modules waiting for it
  // and starts the one asked for meanwhile.
  void sync_ended(const std::string& id, bool stored, const std::string& why);
  void answer_waiter(const std::string& identity, const std::string& token, const std::string& id, bool stored,
                     const std::string& message);
  void synclogs(const json::Document& doc, const RouteContext& ctx, const Node* speaker);
  void send_to_pool(const std::string& parent, const protocol::Frame& frame);
  void apply(const std::vector<Effect>& effects);
  void setlogs(const protocol::Frame& frame, const json::Document& doc);
  void on_pong(const json::Document& doc);
  void ping_send(std::int64_t now);
  void start_workers();
  int choose_pool(const std::string& parent);
  void flush_pending();

  Host& host_;
  Settings settings_;
  std::string core_id_;
  Registry registry_;
  std::shared_ptr<WssServer> wss_;  // the listener for wss/pullwss pollers, when enabled
  std::string workers_endpoint_;
  std::optional<zmq::socket_t> workers_router_;  // the workers' control sockets connect here
  std::vector<std::unique_ptr<Worker>> workers_;  // index = pool id - 1
  std::vector<bool> ready_;
  std::map<std::string, int> nodes_pool_;
  int rr_ = 0;
  std::int64_t last_full_sync_ = 0;
  struct Held {
    protocol::Frame frame;
    std::int64_t since;
    std::string requester;
    bool continuation = false;
  };
  std::deque<Held> pending_;  // frames waiting for the first ready worker
  // SETLOGS ctimes refused as too far ahead, per node, already logged (a node sends the
  // same rows at every sync); bounded per node.
  std::map<std::string, std::set<double>> future_ctimes_logged_;
  bool stopping_ = false;
  // What the proxy hands the host to run later (history jobs' ends) holds a weak copy: a
  // job that ends after the proxy is gone does nothing.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::map<std::string, std::string> pull_failed_;  // pull node -> worker session whose frames go back
};

}  // namespace gorgone::proxy
