// Test support: a scriptable push_zmq node played in-process. A ZMQ ROUTER bound on a free
// loopback port speaks the real server side of Gorgone's handshake (HandshakeServer); each
// decrypted frame is recorded and answered by the test's handler, or by a default answer
// (PONG to PING, an empty page to GETLOG, ACK code 0 to anything else). Lets a test play a
// node that answers what no real poller of ours would (hostile or foreign pages).
// Thread-safety: the socket and the handshake state belong to the node's own thread; every
// public member function is thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "daemon.hpp"
#include "gorgone/json.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/protocol/handshake.hpp"

namespace gorgone::testing {

class FakeNode {
 public:
  // What to answer to one decrypted frame: each string is a plaintext response sent back
  // encrypted (e.g. protocol::build_response("ACK", token, 0, json)). std::nullopt: the
  // default answer.
  using Handler = std::function<std::optional<std::vector<std::string>>(const protocol::Frame&)>;

  // authorized: JWK thumbprints of the clients allowed to connect. key_dir: where its own
  // RSA pair is generated.
  FakeNode(std::string id, std::vector<std::string> authorized, std::string key_dir, Handler handler = {})
      : id_(std::move(id)), handler_(std::move(handler)), socket_(ctx_, zmq::socket_type::router) {
    std::filesystem::create_directories(key_dir);
    std::string priv = key_dir + "/rsakey.priv.pem", pub = key_dir + "/rsakey.pub.pem";
    if (!protocol::generate_key_files(priv, pub)) throw std::runtime_error("fake node " + id_ + ": cannot generate keys");
    auto key = protocol::RsaKey::load_private_file(priv);
    if (!key) throw std::runtime_error("fake node " + id_ + ": cannot load its key");
    server_.emplace(protocol::HandshakeServer::Config{std::move(*key), std::move(authorized), "fake-" + id_, 32});
    thumbprint_ = server_->thumbprint();
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind("tcp://127.0.0.1:0");
    std::string ep = socket_.get(zmq::sockopt::last_endpoint);
    port_ = std::atoi(ep.substr(ep.rfind(':') + 1).c_str());
    thread_ = std::thread([this] { run(); });
  }
  ~FakeNode() {
    stop_ = true;
    thread_.join();
  }
  FakeNode(const FakeNode&) = delete;
  FakeNode& operator=(const FakeNode&) = delete;

  int port() const { return port_; }
  const std::string& id() const { return id_; }
  std::string thumbprint() const { return thumbprint_; }  // its server key's JWK thumbprint

  // Sends `plaintext` encrypted to every client with an established session.
  void push(const std::string& plaintext) {
    std::lock_guard<std::mutex> lock(mutex_);
    pushes_.push_back(plaintext);
  }
  // Every decrypted frame received so far, in order.
  std::vector<protocol::Frame> received() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }
  void set_handler(Handler h) {
    std::lock_guard<std::mutex> lock(mutex_);
    handler_ = std::move(h);
  }

  // The default answers, for handlers that only change some of them.
  std::vector<std::string> default_answer(const protocol::Frame& f) const {
    std::string token = f.token.empty() ? protocol::generate_token() : f.token;
    if (f.action == "PING")
      return {protocol::build_response("PONG", token, 0,
                                       R"({"action":"ping","message":"ping ok","id":)" + json::quote(id_) +
                                           R"(,"hostname":)" + json::quote("fake-" + id_) + R"(,"data":{}})")};
    if (f.action == "GETLOG")
      return {protocol::build_response("ACK", token, 0,
                                       R"({"action":"getlog","result":[],"id":)" + json::quote(id_) + "}")};
    return {protocol::build_response("ACK", token, 0, "null")};
  }

 private:
  void run() {
    zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
    while (!stop_) {
      zmq::poll(&item, 1, std::chrono::milliseconds(10));
      if (item.revents & ZMQ_POLLIN) {
        zmq::message_t identity, body;
        while (socket_.recv(identity, zmq::recv_flags::dontwait)) {
          if (!identity.more() || !socket_.recv(body, zmq::recv_flags::none)) continue;
          zmq::message_t extra;  // a ROUTER peer sends one body part; drop any other
          while (body.more() && socket_.recv(extra, zmq::recv_flags::none) && extra.more()) {
          }
          on_message(identity.to_string(), body.to_string_view());
        }
      }
      std::vector<std::string> pushes;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        pushes.swap(pushes_);
      }
      for (const auto& p : pushes)
        for (const auto& [identity, session] : server_->sessions()) send_encrypted(identity, p);
    }
  }

  void on_message(const std::string& identity, std::string_view wire) {
    auto out = server_->on_message(identity, wire, ::time(nullptr));
    if (out.kind != protocol::HandshakeServer::Outcome::Kind::kMessage) {
      send(identity, out.reply);
      return;
    }
    auto frame = protocol::parse_frame(out.plaintext);
    if (!frame) return;
    Handler handler;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      received_.push_back(*frame);
      handler = handler_;
    }
    std::optional<std::vector<std::string>> answers;
    if (handler) answers = handler(*frame);
    if (!answers) answers = default_answer(*frame);
    for (const auto& a : *answers) send_encrypted(identity, a);
  }

  void send_encrypted(const std::string& identity, const std::string& plaintext) {
    if (auto wire = server_->encrypt_for(identity, plaintext)) send(identity, *wire);
  }
  void send(const std::string& identity, const std::string& body) {
    // A peer that went away (e.g. ZMQ closed it on an oversize frame) is skipped by the ROUTER.
    socket_.send(zmq::buffer(identity), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(body), zmq::send_flags::none);
  }

  std::string id_;
  std::optional<protocol::HandshakeServer> server_;  // thread-bound once the thread runs
  std::string thumbprint_;
  mutable std::mutex mutex_;
  Handler handler_;
  std::vector<protocol::Frame> received_;
  std::vector<std::string> pushes_;
  zmq::context_t ctx_;
  zmq::socket_t socket_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace gorgone::testing
