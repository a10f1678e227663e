// Test support: a peer that speaks Gorgone's external protocol from the test process (a
// pull poller, or any authorized client of a node's external router).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "gorgone/protocol/crypto.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/protocol/handshake.hpp"
#include "gorgone/protocol/response.hpp"

namespace gorgone::testing {

class WireClient {
 public:
  WireClient(zmq::context_t& ctx, const std::string& id, const std::string& key_file, int port)
      : socket_(ctx, zmq::socket_type::dealer),
        identity_("gorgone-" + id + "-" + protocol::to_hex(protocol::random_bytes(12))),
        client_("gorgone-" + id, protocol::RsaKey::load_private_file(key_file).value()) {
    socket_.set(zmq::sockopt::routing_id, identity_);
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect("tcp://127.0.0.1:" + std::to_string(port));
  }
  const std::string& identity() const { return identity_; }

  bool handshake() {
    send_raw(client_.start());
    while (auto msg = recv_raw(std::chrono::seconds(10))) {
      auto step = client_.on_message(*msg);
      using Kind = protocol::HandshakeClient::Step::Kind;
      if (step.kind == Kind::kSend) send_raw(step.text);
      if (step.kind == Kind::kEstablished) return true;
      if (step.kind == Kind::kFailed) return false;
    }
    return false;
  }
  void send(const std::string& frame) { send_raw(client_.encrypt(frame)); }
  // The bytes send() would put on the wire (to record them, as an eavesdropper would).
  std::string encrypt(const std::string& frame) const { return client_.encrypt(frame); }
  void send_raw(const std::string& text) { socket_.send(zmq::buffer(text), zmq::send_flags::none); }
  // Reads and drops whatever arrived (the central's ACKs), keeping key rotations applied.
  void drain() {
    zmq::message_t m;
    while (socket_.recv(m, zmq::recv_flags::dontwait)) (void)client_.on_message(m.to_string_view());
  }
  // Sends a request and returns the first answer carrying its token.
  std::optional<protocol::Response> ask(const std::string& action, const std::string& data,
                                        std::chrono::seconds limit = std::chrono::seconds(15)) {
    std::string token = protocol::generate_token(8);
    send(protocol::build_frame(action, token, "", data));
    std::optional<protocol::Response> answer;
    next_matching(limit, [&](const std::string& text) {
      answer = protocol::parse_response(text);
      return answer && answer->token == token;
    });
    return answer && answer->token == token ? answer : std::nullopt;
  }
  // Next decrypted frame from the central, skipping its ACKs.
  std::optional<std::string> next(std::chrono::seconds limit) {
    return next_matching(limit, [](const std::string& text) { return text.rfind("[ACK]", 0) != 0; });
  }

 private:
  // The first decrypted frame that `wanted` accepts before `limit` passes (key rotations and
  // other frames on the way are applied or skipped).
  template <typename F>
  std::optional<std::string> next_matching(std::chrono::seconds limit, F wanted) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      auto msg = recv_raw(std::chrono::seconds(1));
      if (!msg) continue;
      auto step = client_.on_message(*msg);
      if (step.kind == protocol::HandshakeClient::Step::Kind::kMessage && wanted(step.text)) return step.text;
    }
    return std::nullopt;
  }
  std::optional<std::string> recv_raw(std::chrono::milliseconds limit) {
    zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, limit);
    zmq::message_t m;
    if (!(item.revents & ZMQ_POLLIN) || !socket_.recv(m, zmq::recv_flags::dontwait)) return std::nullopt;
    return m.to_string();
  }
  zmq::socket_t socket_;
  std::string identity_;
  protocol::HandshakeClient client_;
};

}  // namespace gorgone::testing
