#include "zmq_link.hpp"

#include <optional>

#include "fingerprint_policy.hpp"
#include "gorgone/protocol/handshake.hpp"

namespace gorgone::proxy {
namespace {

// Unanswered frames remembered per session (only used to resend after a lost session).
constexpr std::size_t kMaxInFlight = 10000;

std::string text_or(const json::Value& obj, const char* name, std::string fallback = "") {
  auto v = json::member_text(obj, name);
  return v && !v->empty() ? *v : fallback;
}

class ZmqLink : public NodeLink {
 public:
  ZmqLink(Host& host, const Settings& settings, std::string id, std::string endpoint, std::string identity,
          protocol::RsaKey client_key, protocol::HandshakeClient::ServerKeyCheck check)
      : host_(host),
        settings_(settings),
        id_(std::move(id)),
        endpoint_(std::move(endpoint)),
        handshake_identity_(std::move(identity)),
        client_key_(std::move(client_key)),
        check_(std::move(check)) {}

  bool is_open() const override { return socket_ != nullptr; }

  bool open(Clock::time_point) override {
    auto socket = std::make_unique<zmq::socket_t>(host_.zmq_context(), zmq::socket_type::dealer);
    // A new routing id per session, as Gorgone draws a new one per connection object.
    socket->set(zmq::sockopt::routing_id, handshake_identity_ + "-" + protocol::to_hex(protocol::random_bytes(12)));
    socket->set(zmq::sockopt::linger, 0);
    socket->set(zmq::sockopt::reconnect_ivl, 1000);
    socket->set(zmq::sockopt::connect_timeout, 30000);
    // A node that sends more than max_frame_size gets its connection closed by ZMQ rather than
    // making this process buffer it.
    socket->set(zmq::sockopt::maxmsgsize, settings_.max_frame_size);
    // Queue only on a live connection: while the node is away, frames stay in the worker's
    // bounded queue (visible, counted) instead of ZMQ's, which a close would discard.
    socket->set(zmq::sockopt::immediate, 1);
    try {
      socket->connect(endpoint_);
    } catch (const zmq::error_t& e) {
      host_.log(Severity::kError, "[proxy] node '" + id_ + "': cannot connect to " + endpoint_ + ": " + e.what());
      return false;
    }
    host_.log(Severity::kInfo, "[proxy] connect for " + id_ + " (" + endpoint_ + ")");
    socket_ = std::move(socket);
    handshake_.emplace(handshake_identity_, client_key_, check_);
    hello_ = handshake_->start();
    waiting_ = false;
    return true;
  }

  void close() override {
    in_flight_.clear();
    socket_.reset();
    handshake_.reset();
    hello_.clear();
    waiting_ = false;
  }

  std::optional<zmq::pollitem_t> poll_item(bool frames_waiting) const override {
    if (!socket_) return std::nullopt;
    short events = ZMQ_POLLIN;
    // With ZMQ_IMMEDIATE a socket is writable only once connected: a node that is down
    // costs one poll entry and never wakes the loop.
    if (!hello_.empty() || (established() && frames_waiting)) events |= ZMQ_POLLOUT;
    return zmq::pollitem_t{static_cast<void*>(*socket_), 0, events, 0};
  }

  bool ready(Clock::time_point now) override {
    if (!socket_) return false;
    if (!hello_.empty()) {
      if (!socket_->send(zmq::buffer(hello_), zmq::send_flags::dontwait)) return false;  // not connected yet
      hello_.clear();
      waiting_ = true;
      deadline_ = now + std::chrono::seconds(settings_.handshake_timeout);
      return false;
    }
    return established();
  }

  bool send(const Frame& frame) override {
    std::string wire = handshake_->encrypt(frame.text);
    if (!socket_->send(zmq::buffer(wire), zmq::send_flags::dontwait)) return false;  // node away
    in_flight_.push_back(frame);
    if (in_flight_.size() > kMaxInFlight) in_flight_.pop_front();
    return true;
  }

  Event receive(Clock::time_point now) override {
    using Kind = protocol::HandshakeClient::Step::Kind;
    Event ev;
    if (!socket_) return ev;
    zmq::message_t msg;
    if (!socket_->recv(msg, zmq::recv_flags::dontwait)) return ev;
    bool was_established = established();
    auto step = handshake_->on_message(msg.to_string_view());
    switch (step.kind) {
      case Kind::kSend:
        hello_ = step.text;
        ready(now);
        ev.kind = Event::Kind::kIgnored;
        break;
      case Kind::kEstablished:
        waiting_ = false;
        ev.kind = Event::Kind::kEstablished;
        break;
      case Kind::kMessage: {
        ev.kind = Event::Kind::kIgnored;
        auto r = protocol::parse_response(step.text);
        if (!r) break;
        // REGISTERNODES, UNREGISTERNODES and SYNCLOGS are the node's own requests; anything
        // else is its answer to our oldest unanswered frame.
        bool request = r->type == "REGISTERNODES" || r->type == "UNREGISTERNODES" || r->type == "SYNCLOGS";
        if (!request && !in_flight_.empty()) in_flight_.pop_front();
        ev.kind = Event::Kind::kResponse;
        ev.response = std::move(*r);
        break;
      }
      case Kind::kRotated:
        ev.kind = Event::Kind::kRotated;
        break;
      case Kind::kFailed:
        ev.reason = step.text;
        if (was_established) {
          // The node lost our session (restarted without it, or forgot it after 24 h idle).
          ev.kind = Event::Kind::kLost;
          ev.unanswered = std::move(in_flight_);
        } else {
          ev.kind = Event::Kind::kRefused;
        }
        close();
        break;
      case Kind::kIgnored:
        ev.kind = Event::Kind::kIgnored;
        break;
    }
    return ev;
  }

  std::optional<Clock::time_point> deadline() const override {
    if (!socket_ || !waiting_) return std::nullopt;
    return deadline_;
  }

  const std::deque<Frame>& in_flight() const override { return in_flight_; }

 private:
  bool established() const {
    return handshake_ && handshake_->state() == protocol::HandshakeClient::State::kEstablished;
  }

  Host& host_;
  Settings settings_;
  std::string id_;
  std::string endpoint_;
  std::string handshake_identity_;  // "gorgone-proxy-<core>-<node>"
  protocol::RsaKey client_key_;
  protocol::HandshakeClient::ServerKeyCheck check_;
  // Session.
  std::unique_ptr<zmq::socket_t> socket_;
  std::optional<protocol::HandshakeClient> handshake_;
  std::string hello_;          // handshake message waiting to be sent
  Clock::time_point deadline_;  // answer expected before this
  bool waiting_ = false;        // a handshake message was sent and is unanswered
  std::deque<Frame> in_flight_;
};

}  // namespace

std::unique_ptr<NodeLink> make_zmq_link(Host& host, const Settings& settings, const std::string& node_id,
                                        const json::Value& d, std::map<std::string, protocol::RsaKey>& client_keys) {
  std::string target_type = text_or(d, "target_type", "tcp");
  std::string target_path = text_or(d, "target_path", text_or(d, "address") + ":" + text_or(d, "port"));
  std::string endpoint = target_type + "://" + target_path;
  CoreInfo core = host.core_info();
  std::string privkey_path = text_or(d, "client_privkey", core.privkey_path);
  auto cached = client_keys.find(privkey_path);
  if (cached == client_keys.end()) {
    auto key = protocol::RsaKey::load_private_file(privkey_path);
    if (!key) {
      host.log(Severity::kError, "[proxy] node '" + node_id + "': cannot load client key: " + key.error());
      return nullptr;
    }
    cached = client_keys.emplace(privkey_path, std::move(key.value())).first;
  }
  // The file of a pinned key is read at each handshake (see fingerprint_policy.hpp).
  FingerprintPolicy policy{fingerprint_mode(core.fingerprint_mode), node_id, endpoint, text_or(d, "server_pubkey")};
  Host* h = &host;
  auto check = [h, policy](const protocol::RsaKey& server) { return policy.check(server, h->history()); };
  return std::make_unique<ZmqLink>(host, settings, node_id, endpoint, "gorgone-proxy-" + core.id + "-" + node_id,
                                   cached->second, std::move(check));
}

}  // namespace gorgone::proxy
