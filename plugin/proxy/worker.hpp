// A pool worker: one thread with its own event loop and its own node connections.
// It reads frames the hooks route to it on its control DEALER ("gorgone-proxy-<pool>"),
// connects to push_zmq nodes (asynchronous handshake, per-node timeouts), and sends the
// nodes' answers (PONG, SETLOGS, REGISTERNODES, ...) back to the core.
// Thread-safety: start()/stop()/running() are thread-safe; everything else is thread-bound
// to the worker's thread.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "gorgone/module.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "settings.hpp"

namespace gorgone::proxy {

class NodeConnection;

class Worker {
 public:
  Worker(int pool_id, Host& host, Settings settings, std::string core_id);
  ~Worker();
  void start();
  // Asks the thread to stop and joins it.
  void stop();
  bool running() const { return running_.load(); }
  int pool_id() const { return pool_id_; }

 private:
  void run();
  void on_control(std::string_view text);
  void to_core(std::string_view action, std::string_view token, std::string_view data);
  void history_ko(const std::string& token, const std::string& message);
  void pong_reset(const std::string& node_id);
  void close_node(const std::string& node_id, bool reset);
  NodeConnection* connection_for(const std::string& node_id);
  void on_node_message(NodeConnection& c);
  void on_node_text(NodeConnection& c, std::string_view text);
  void fail_node(NodeConnection& c, const std::string& reason);
  bool open_session(NodeConnection& c);
  void end_session(NodeConnection& c);
  // Sends what can be sent now: the pending handshake message, then held frames in order.
  void flush(NodeConnection& c);
  void check_timeouts();

  int pool_id_;
  Host& host_;
  Settings settings_;
  std::string core_id_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::unique_ptr<zmq::socket_t> control_;
  std::map<std::string, std::string> node_configs_;  // id -> node JSON from PROXYADDNODE
  std::map<std::string, std::unique_ptr<NodeConnection>> connections_;
  std::map<std::string, protocol::RsaKey> client_keys_;  // private key file -> parsed key
};

}  // namespace gorgone::proxy
