// Gorgone's REST API (the httpserver module's routes, served by the host).
// Runs on its own threads; talks to the core through DEALER sockets on the internal router,
// exactly like a module. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "config.hpp"
#include "gorgone/result.hpp"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace gorgone {

class Core;

class RestServer {
 public:
  RestServer(Core& core, HttpConfig config);
  ~RestServer();
  // Binds and starts serving; fails with a clear message when the address is unusable.
  Status start();
  void stop();
  int port() const { return port_; }

 private:
  void handle(const httplib::Request& req, httplib::Response& res);

  Core& core_;
  HttpConfig config_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace gorgone
