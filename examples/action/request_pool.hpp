// The action module's request lanes. Gorgone forks a process per request, so one slow
// command never delays another; here:
//
//  * the command lane: `runners` threads take COMMAND and ACTIONENGINE requests from one
//    queue, in arrival order. Each request runs whole on one runner (its commands one
//    after the other, as Gorgone); different requests run side by side. At most
//    `max_waiting` requests wait for a runner, and at most `max_engines` ACTIONENGINE
//    requests wait or run at a time; beyond either bound a request is refused at once;
//  * the copy lane: one thread takes the PROCESSCOPY messages in arrival order, so that
//    the chunks of a series are written in order, one series at a time, and a copy never
//    waits behind a command nor a command behind a copy.
//
// Each lane also bounds the bytes of its waiting messages (`max_queued_bytes`), so that a
// flood of copy chunks cannot exhaust memory. A refused request gets `reject` (the module
// writes Gorgone's KO row with the message) and push() returns a failure: nothing is lost
// silently.
//
// Stopping: request_stop() (the module's gently) lets each thread finish the request in
// hand; requests still waiting get `reject` ("action module is stopping: ..."). stop(true)
// (kill) also raises the abort flag that the handlers pass to the commands they run (the
// runner kills the command's process group within ~100 ms) and to an archive extraction,
// then joins every thread.
//
// Thread-safety: push, request_stop, stop, live_threads and start are thread-safe (the
// host calls them from its loop thread; the destructor may run on any thread). The
// handlers run on the lanes' threads, several command handlers at a time: they must be
// reentrant. A handler's exception is caught and turned into `reject`.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gorgone/result.hpp"

namespace gorgone::action {

struct Request {
  std::string action;  // COMMAND, ACTIONENGINE or PROCESSCOPY
  std::string token;
  std::string data;
};

struct PoolLimits {
  std::size_t runners = 4;
  std::size_t max_waiting = 1000;
  std::size_t max_engines = 3;
  std::size_t max_queued_bytes = 256u << 20;  // per lane
};

class RequestPool {
 public:
  using Handler = std::function<void(const Request&, const std::atomic<bool>* abort)>;
  using Reject = std::function<void(const Request&, const std::string& message)>;

  RequestPool(PoolLimits limits, Handler command, Handler copy, Reject reject);
  ~RequestPool();
  RequestPool(const RequestPool&) = delete;
  RequestPool& operator=(const RequestPool&) = delete;

  // Starts the threads (again after a stop: the old ones are joined first).
  Status start();
  // Queues the request on its lane, or refuses it (reject, then a failure naming why).
  Status push(Request request);
  // gently: no new request; each thread ends after the request in hand.
  void request_stop();
  // Stops and joins every thread; with kill_running, running commands are killed first.
  void stop(bool kill_running);
  // Threads not yet ended (joined once all have ended), for the module's check().
  int live_threads();
  // True for the request's whole run when kill_running stopped it.
  const std::atomic<bool>* abort_flag() const { return &abort_; }

 private:
  struct Lane {
    std::deque<Request> queue;
    std::size_t bytes = 0;
    std::condition_variable cv;
  };
  void run_lane(Lane& lane, const Handler& handler);
  void handle(const Request& request, const Handler& handler);
  void drop(Lane& lane);
  void join_all();

  const PoolLimits limits_;
  const Handler command_, copy_;
  const Reject reject_;

  std::mutex mu_;
  Lane commands_, copies_;  // guarded by mu_
  std::size_t engines_ = 0;  // ACTIONENGINE requests waiting or running; guarded by mu_
  bool accepting_ = false;   // guarded by mu_
  bool stopping_ = false;    // guarded by mu_
  std::atomic<bool> abort_{false};
  std::atomic<int> live_{0};

  std::mutex threads_mu_;  // start/stop/join from different threads
  std::vector<std::thread> threads_;  // guarded by threads_mu_
};

}  // namespace gorgone::action
