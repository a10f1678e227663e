// Gorgone's REST API (the httpserver module's routes, served by the host).
// Runs on its own threads; talks to the core through DEALER sockets on the internal router,
// exactly like a module. Thread-safe.
//
// Before a body is read, every request goes through allowed_hosts, then the declared body
// size (max_body_size), then Basic auth. Reading a request and writing its answer each have
// a deadline, keep-alive is bounded, and one client address may use at most kThreadsPerPeer
// of the kWorkerThreads threads, so that a few slow or hostile clients cannot take the API
// away from the others.
#pragma once

#include <vector>

#include <utility>

#include <cstdint>

#include <atomic>

#include <array>

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "config.hpp"
#include "gorgone/result.hpp"
#include "rest_request.hpp"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace gorgone {

class Core;

class RestServer {
 public:
  // Threads serving connections: a connection holds one while its request is read, waits
  // for the core (at most a few seconds) and its answer is written.
  static constexpr int kWorkerThreads = 64;
  // Connections from one address served at once: no single peer can hold the whole pool.
  static constexpr int kThreadsPerPeer = 32;
  // Connections the kernel queues while every thread is busy (capped by net.core.somaxconn).
  static constexpr int kListenBacklog = 1024;
  // A new connection must start its request (after TLS) within this.
  static constexpr int kReadTimeoutSeconds = 5;
  // Reading a request, from its first byte to the end of its body, and writing its answer,
  // have this long each; past it the connection is closed.
  static constexpr int kRequestSeconds = 10;
  // Between two requests on a kept-alive connection; at most kKeepAliveRequests of them.
  static constexpr int kKeepAliveSeconds = 2;
  static constexpr int kKeepAliveRequests = 20;

  RestServer(Core& core, HttpConfig config);
  ~RestServer();
  // Binds and starts serving; fails with a clear message when the address is unusable.
  Status start();
  void stop();
  int port() const { return port_; }
  // Requests answered so far, by HTTP status (metrics). Thread-safe.
  std::vector<std::pair<int, std::uint64_t>> status_counts() const;

 private:
  // The checks made before the body is read. False: `res` holds the refusal.
  bool admit(const httplib::Request& req, httplib::Response& res) const;
  // `read_body`: reads the body into `body`, nullptr for a GET.
  void handle(const httplib::Request& req, httplib::Response& res,
              const std::function<bool(std::string& body, bool& too_large)>* read_body);

  Core& core_;
  HttpConfig config_;
  rest::AccessPolicy policy_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::array<std::atomic<std::uint64_t>, 600> statuses_{};  // index: HTTP status
};

}  // namespace gorgone
