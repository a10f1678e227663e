// The pullwss module's connection to its central, on a thread of its own running an asio
// io_context: the websocket (ws:// or wss://, optionally through an HTTP proxy with CONNECT;
// REGISTERNODES first, keep-alive, reconnection with back-off) and a DEALER
// `gorgone-pullwss` on this host's internal router, watched on the same io_context (its
// ZMQ_FD, and a short timer), through which every frame of the central reaches the core and
// the core's answers come back (filtered and encoded, frames.hpp).
// Thread-safety: start/request_stop/stop/live_threads are called from the host's loop thread
// (hooks); everything else runs on the module's thread, which owns the sockets.
#pragma once

#include <atomic>
#include <thread>

#include "gorgone/module.hpp"
#include "settings.hpp"

namespace gorgone::pullwss {

class PullWssClient {
 public:
  PullWssClient(Host& host, Settings settings);
  ~PullWssClient();
  PullWssClient(const PullWssClient&) = delete;
  PullWssClient& operator=(const PullWssClient&) = delete;

  // Starts the thread (again after a stop). Never blocks.
  void start();
  // Asks the thread to unregister from the central and end; never blocks.
  void request_stop();
  // request_stop() and waits for the thread (it ends within ~2 s: the time UNREGISTERNODES
  // and the close get to leave).
  void stop();
  // 1 while the thread runs; joins a thread that has ended.
  int live_threads();

 private:
  void run();

  Host& host_;
  const Settings settings_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::thread thread_;
};

}  // namespace gorgone::pullwss
