// The pull module's connection to its central, on a thread of its own: a DEALER to the
// central's external router (client side of the handshake, REGISTERNODES, keep-alive,
// reconnection with back-off) and a DEALER `gorgone-pull` on this host's internal router,
// through which every frame of the central reaches the core and the core's answers come
// back (filtered as Gorgone filters them, wire.hpp).
// Thread-safety: start/request_stop/stop/live_threads are called from the host's loop thread
// (hooks); everything else runs on the module's thread, which owns both sockets.
#pragma once

#include <atomic>
#include <memory>
#include <thread>

#include "gorgone/module.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "settings.hpp"

namespace gorgone::pull {

class PullClient {
 public:
  PullClient(Host& host, Settings settings, protocol::RsaKey client_key);
  ~PullClient();
  PullClient(const PullClient&) = delete;
  PullClient& operator=(const PullClient&) = delete;

  // Starts the thread (again after a stop). Never blocks.
  void start();
  // Asks the thread to unregister from the central and end; never blocks.
  void request_stop();
  // request_stop() and waits for the thread (it ends within one poll round, ~200 ms).
  void stop();
  // 1 while the thread runs; joins a thread that has ended.
  int live_threads();

 private:
  void run();

  Host& host_;
  const Settings settings_;
  const protocol::RsaKey client_key_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::thread thread_;
};

}  // namespace gorgone::pull
