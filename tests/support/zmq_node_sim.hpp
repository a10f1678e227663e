// Test support (benchmarks): N push_zmq nodes played by one thread of this process, one
// external ROUTER each on 127.0.0.1, with the real server side of the handshake. They answer
// PING with PONG and GETLOG with an empty page, ACK everything else, and can report each
// frame they receive.
// Thread-safety: construct, read ports() and set_ids() on one thread before frames arrive;
// the callback runs on the simulator's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <ctime>
#include <functional>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "gorgone/protocol/frame.hpp"
#include "gorgone/protocol/handshake.hpp"

namespace gorgone::testing {

class ZmqNodeSim {
 public:
  using OnFrame = std::function<void(const protocol::Frame&)>;

  ZmqNodeSim(zmq::context_t& ctx, int nodes, protocol::RsaKey key, std::string authorized, OnFrame on_frame = {})
      : server_(config(std::move(key), std::move(authorized))), on_frame_(std::move(on_frame)) {
    for (int i = 0; i < nodes; ++i) {
      sockets_.emplace_back(ctx, zmq::socket_type::router);
      sockets_.back().set(zmq::sockopt::linger, 0);
      sockets_.back().bind("tcp://127.0.0.1:0");
      std::string ep = sockets_.back().get(zmq::sockopt::last_endpoint);
      ports_.push_back(std::atoi(ep.substr(ep.rfind(':') + 1).c_str()));
      ids_.push_back(std::to_string(i + 2));
    }
    thread_ = std::thread([this] { run(); });
  }
  ~ZmqNodeSim() {
    stop_ = true;
    thread_.join();
  }
  const std::vector<int>& ports() const { return ports_; }
  // The node ids the answers carry (default "2", "3", ...), before any frame arrives.
  void set_ids(std::vector<std::string> ids) { ids_ = std::move(ids); }
  int undecryptable() const { return undecryptable_.load(); }

 private:
  // One handshake server plays every node: no per-address HELO limit (they all come from the
  // central's one address).
  static protocol::HandshakeServer::Config config(protocol::RsaKey key, std::string authorized) {
    protocol::HandshakeServer::Config c{std::move(key), {std::move(authorized)}, "sim", 32};
    c.helo_per_minute = 0;
    return c;
  }
  void run() {
    std::vector<zmq::pollitem_t> items;
    for (auto& s : sockets_) items.push_back({static_cast<void*>(s), 0, ZMQ_POLLIN, 0});
    while (!stop_) {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100));
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (!(items[i].revents & ZMQ_POLLIN)) continue;
        zmq::message_t id, body;
        while (sockets_[i].recv(id, zmq::recv_flags::dontwait)) {
          (void)sockets_[i].recv(body, zmq::recv_flags::none);
          answer(sockets_[i], id.to_string(), body.to_string_view(), i);
        }
      }
    }
  }
  void answer(zmq::socket_t& s, const std::string& id, std::string_view body, std::size_t index) {
    auto out = server_.on_message(id, body, ::time(nullptr));
    std::string reply;
    if (out.kind != protocol::HandshakeServer::Outcome::Kind::kMessage) {
      if (out.reply.empty()) return;
      reply = out.reply;
    } else {
      auto f = protocol::parse_frame(out.plaintext);
      if (!f) {
        ++undecryptable_;
        return;
      }
      if (on_frame_) on_frame_(*f);
      std::string token = f->token.empty() ? "t" : f->token;
      const std::string& node = ids_[index];
      if (f->action == "PING")
        reply = protocol::build_response("PONG", token, 0,
                                         R"({"action":"ping","message":"ping ok","id":")" + node + R"(","data":{}})");
      else if (f->action == "GETLOG")
        reply = protocol::build_response("ACK", token, 0, R"({"action":"getlog","result":[],"id":")" + node + "\"}");
      else
        reply = protocol::build_response("ACK", token, 0, "null");
      reply = *server_.encrypt_for(id, reply);
    }
    s.send(zmq::buffer(id), zmq::send_flags::sndmore);
    s.send(zmq::buffer(reply), zmq::send_flags::none);
  }

  protocol::HandshakeServer server_;
  OnFrame on_frame_;
  std::vector<zmq::socket_t> sockets_;
  std::vector<int> ports_;
  std::vector<std::string> ids_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> undecryptable_{0};
};

}  // namespace gorgone::testing
