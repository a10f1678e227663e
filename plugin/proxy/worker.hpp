// A pool worker: one thread with its own event loop and its own node connections (a
// bounded queue and a back-off per node, the transport behind a NodeLink, node_link.hpp).
// It reads frames the hooks route to it on its control DEALER ("gorgone-proxy-<pool>"),
// connects to push_zmq nodes (asynchronous handshake, per-node timeouts) and push_ssh
// nodes (an SSH session on a thread per node, ssh_link.hpp), holds the frames of pull
// nodes (sent by the hooks, pull_link.hpp), and sends the
// nodes' answers (PONG, SETLOGS, REGISTERNODES, ...) back to the hooks, through the
// proxy's own channel (set_proxy_channel).
//
// Failure rule: nothing a frame contains may end the thread. An exception while handling
// one control frame, one node message or one queued frame is caught there: that frame's
// token gets a KO row, a log line says what failed for which node, and the loop goes on.
// Should run() end on an exception anyway, every frame the worker held (node queues,
// frames sent and unanswered, frames still unread on its control socket) gets a KO row
// before the thread ends; the proxy's check() then starts a new worker.
// Thread-safety: start()/stop()/running() are thread-safe; set_turn_hook() must be called
// before start(); everything else is thread-bound to the worker's thread.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gorgone/module.hpp"
#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "node_link.hpp"
#include "settings.hpp"
#include "wss_server.hpp"
#include "zmq_routers.hpp"

namespace gorgone::protocol {
struct Response;
}

namespace gorgone::proxy {

class NodeConnection;

class Worker {
 public:
  Worker(int pool_id, Host& host, Settings settings, std::string core_id);
  // Joins the thread. A worker that failed and was not adopted gives the frames left on its
  // control socket their KO rows first.
  ~Worker();
  // Connects the control socket (on the caller's thread) unless adopted, then starts the thread.
  void start();
  // Takes over the control socket and node configurations of a worker whose thread ended
  // on an error. Frames routed to the pool since then are still queued on that socket and
  // are handled by this worker instead of being lost between the failure and the restart;
  // keeping the socket also keeps the routing id in place on the core's router.
  // REQUIRES: `failed` is stopped (its thread joined); this worker is not started yet.
  void adopt(Worker& failed);
  // Asks the thread to stop and joins it.
  void stop();
  // stop(), then closes what a failed worker kept for a successor (the proxy is stopping).
  void shut_down();
  bool running() const { return running_.load(); }
  int pool_id() const { return pool_id_; }
  // What the worker publishes for the metrics, at most once a second, from its thread.
  // Frames/bytes sent count what went to the node's link (the frame as sent, plaintext);
  // received, the messages read from a push node's link (pull nodes answer through the
  // core's router). A node's counters start again when its connection is made anew.
  struct NodeFigures {
    std::string node;
    std::uint64_t frames_sent = 0, bytes_sent = 0, frames_received = 0, bytes_received = 0;
    std::size_t held = 0, in_flight = 0;
  };
  struct Figures {
    std::vector<NodeFigures> nodes;
    std::size_t held = 0, in_flight = 0;  // sums over the worker's nodes
  };
  // Thread-safe: the figures last published (empty before the first).
  std::shared_ptr<const Figures> figures() const {
    std::lock_guard lock(figures_mu_);
    return figures_;
  }
  // For tests only: called on the worker's thread at the start of every loop turn. An
  // exception it throws leaves run() as an internal error would, which is how the tests
  // check what a worker that stops does with the frames it holds. Unset in production.
  void set_turn_hook(std::function<void()> hook) { turn_hook_ = std::move(hook); }
  // For tests only, before start(): what makes the link of a node the worker handles (given
  // its id and PROXYADDNODE object; null: the node cannot be reached, logged by the
  // factory), and the clock the worker reads for deadlines and back-off. Unset in
  // production: ZMQ links and the steady clock.
  using LinkFactory = std::function<std::unique_ptr<NodeLink>(const std::string& node_id, const json::Value& node)>;
  void set_link_factory(LinkFactory factory) { link_factory_ = std::move(factory); }
  void set_clock(std::function<Clock::time_point()> clock) { clock_ = std::move(clock); }
  // Before start(): the WebSocket listener wss/pullwss nodes are reached through (none when
  // the proxy's httpserver is not enabled).
  void set_wss(std::shared_ptr<WssServer> wss) { wss_ = std::move(wss); }
  // Before start(): the proxy's own channel. The control socket connects to `endpoint` (the
  // proxy's ROUTER: the hooks reach the worker without the core's router), and what the
  // worker has for the hooks goes to `deliver` (which posts it to the loop thread) as a
  // frame, with its JSON already parsed when the worker had to read it anyway. Unset
  // (tests): the core's internal router both ways, as text.
  using Delivery = std::function<void(protocol::Frame frame, std::shared_ptr<json::Document> doc)>;
  void set_proxy_channel(std::string endpoint, Delivery deliver) {
    control_endpoint_ = std::move(endpoint);
    deliver_ = std::move(deliver);
  }

 private:
  void run();
  // One control frame, with the failure rule above.
  void handle_control(std::string_view text);
  void on_control(const protocol::Frame& frame);
  void to_core(std::string_view action, std::string_view token, std::string_view data);
  // To the hooks: `doc`, when given, is frame.data already parsed (frame.data is then unused).
  void to_proxy(protocol::Frame frame, std::shared_ptr<json::Document> doc = nullptr);
  void history_ko(const std::string& token, const std::string& message);
  void pong_reset(const std::string& node_id);
  void close_node(const std::string& node_id, bool reset);
  NodeConnection* connection_for(const std::string& node_id);
  void on_node_message(NodeConnection& c);
  // One event of a node's link; false when the link must not be read further now.
  bool on_node_event(NodeConnection& c);
  void on_node_text(NodeConnection& c, const protocol::Response& r);
  void on_node_response(NodeConnection& c, const protocol::Response& r);
  void fail_node(NodeConnection& c, const std::string& reason);
  // Frames a link handed back (never ran on the node): first in the node's queue, in order.
  void requeue(NodeConnection& c, std::deque<NodeLink::Frame>& frames);
  // The hooks' answer about a frame sent for a pull node (pull_link.hpp).
  void on_pull_answer(const protocol::Frame& frame, const std::string& node_id);
  // The node cannot be reached now (`why`): its session ends, its frames stay, and a new
  // session is tried after a back-off that grows with each failure in a row.
  void back_off(NodeConnection& c, const std::string& why);
  void end_session(NodeConnection& c);
  // Before a session closes: a PROCESSCOPY series with messages in flight cannot be
  // completed (the node may have some of them or none): it gets a KO row and leaves the queue.
  void cut_series(NodeConnection& c);
  // Sends what can be sent now: the pending handshake message, then held frames in order.
  // A failure on one frame gives that frame a KO row and drops it; a failure while opening
  // the session closes it and tries again later, keeping the frames.
  void flush(NodeConnection& c);
  void flush_queue(NodeConnection& c, bool& on_frame);
  // After run() failed: a KO row for every frame held (node queues, frames in flight,
  // frames unread on the control socket).
  void ko_held_on_stop();
  void fail_held(const std::string& why);
  // KO rows for the frames unread on the control socket (once per token in `done`).
  std::size_t ko_unread(const std::string& worker, std::set<std::string>& done);
  std::string stopped_text(const std::string& why) const;
  void check_timeouts();
  // Publishes figures() when a second passed since the last time.
  void publish_figures(Clock::time_point now);
  // How long the loop may wait for its sockets: less when a link asked to be retried soon.
  std::chrono::milliseconds poll_timeout();
  Clock::time_point now() const { return clock_ ? clock_() : Clock::now(); }

  int pool_id_;
  Host& host_;
  Settings settings_;
  std::string core_id_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::unique_ptr<zmq::socket_t> control_;
  std::string control_endpoint_;  // empty: the core's internal router
  Delivery deliver_;
  std::map<std::string, std::string> node_configs_;  // id -> node JSON from PROXYADDNODE
  // The ROUTERs push_zmq nodes are reached through; declared before connections_, whose ZMQ
  // links are connections of them.
  std::unique_ptr<ZmqRouters> routers_;
  std::map<std::string, std::shared_ptr<NodeConnection>> connections_;
  std::map<std::string, protocol::RsaKey> client_keys_;  // private key file -> parsed key
  std::shared_ptr<WssServer> wss_;
  std::function<void()> turn_hook_;  // tests only
  LinkFactory link_factory_;          // tests only
  std::function<Clock::time_point()> clock_;  // tests only
  mutable std::mutex figures_mu_;
  std::shared_ptr<const Figures> figures_;  // guarded by figures_mu_
  Clock::time_point figures_at_{};          // worker's thread
  std::optional<std::string> failure_;  // why run() failed; written by the thread before running_ = false
};

}  // namespace gorgone::proxy
