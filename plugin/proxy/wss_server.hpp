// The proxy's WebSocket listener for wss/pullwss pollers (Gorgone's proxy httpserver):
// pollers behind NAT dial in, authenticate with the bearer token, register their node id as
// their first message, and then exchange Gorgone frames as text messages (TLS, when
// configured, is the only encryption, as in Gorgone).
//
// - The token is compared in constant time; a connection is bound to the node id of its
//   first REGISTERNODES and speaks for that node only (its PONG/SETLOGS carry that id, its
//   registrations name it alone); a second connection claiming a bound id is refused.
// - Refusals are Gorgone's: a text message {"code":500,"message":"<reason>"}, then a close,
//   and one log line (who, why). A message larger than `max_message_size` closes that
//   connection only.
// - What pollers send reaches the proxy's hooks through the internal router, from the
//   DEALER "gorgone-proxy-wss" (the hooks treat it as a node's frame relayed by this
//   process, target = the node).
// - Workers send frames to a node with send(); each gets its answer (written, or not: the
//   node is not connected). After one failure of a link session, later frames of that
//   session fail untried, so that a worker gets them back in order (wss_link.hpp).
//
// Thread-safety: start()/stop() from the loop thread; send() from any thread; the rest runs
// on the listener's own thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <yaml-cpp/yaml.h>

#include "gorgone/module.hpp"
#include "gorgone/result.hpp"

namespace gorgone::proxy {

// The proxy's `httpserver:` block (Gorgone's keys).
struct WssConfig {
  bool ssl = false;
  std::string ssl_cert_file, ssl_key_file, passphrase;
  std::string token;
  std::string address = "0.0.0.0";
  int port = 0;
  std::size_t max_message_size = 64u << 20;  // bytes per message, either way
  int idle_timeout = 300;                    // s without anything from a poller (pings included)
};

// None when the block is absent or `enable` is false. Errors name the key.
Result<std::optional<WssConfig>> parse_wss_config(const YAML::Node& module_config);

// The routing id of the listener's DEALER on the internal router.
inline constexpr const char* kWssRelay = "gorgone-proxy-wss";

class WssServer {
 public:
  WssServer(Host& host, WssConfig config);
  ~WssServer();
  WssServer(const WssServer&) = delete;
  WssServer& operator=(const WssServer&) = delete;

  // Binds and starts the listener's thread. An error names the address and why.
  Status start();
  void stop();
  bool running() const { return running_.load(); }
  // The port actually bound (useful with port 0).
  int port() const { return bound_port_.load(); }

  // Sends one frame text to node `node`'s connection; `done(true)` once written, `done(false)`
  // when it cannot be (not connected, the connection broke, or an earlier frame of the same
  // `session` failed). `done` runs on the listener's thread.
  using Done = std::function<void(bool written)>;
  void send(const std::string& node, std::uint64_t session, std::string text, Done done);

  struct Impl;

 private:
  Host& host_;
  WssConfig config_;
  std::mutex mutex_;  // guards impl_ between send() and stop()
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<int> bound_port_{0};
};

}  // namespace gorgone::proxy
