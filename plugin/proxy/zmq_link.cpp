#include "zmq_link.hpp"

#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "fingerprint_policy.hpp"
#include "gorgone/protocol/handshake.hpp"

namespace gorgone::proxy {
namespace {

// Unanswered frames remembered per session (only used to resend after a lost session).
constexpr std::size_t kMaxInFlight = 10000;
// How soon a frame the node's full pipe did not take is offered again.
constexpr auto kRetryFull = std::chrono::milliseconds(10);

std::string text_or(const json::Value& obj, const char* name, std::string fallback = "") {
  auto v = json::member_text(obj, name);
  return v && !v->empty() ? *v : fallback;
}

// What a node costs the central is mostly this object and its connection's libzmq state, once
// per node for thousands of nodes: members are kept to what a session needs (the handshake
// timeout rather than a copy of the settings, one trust policy that the key check reaches
// through `this`, buffers released once used, containers that allocate only while they hold
// something). doc/performance.md has the figures.
class ZmqLink : public NodeLink, public RouterPeer {
 public:
  ZmqLink(Host& host, const Settings& settings, ZmqRouters& routers, std::string id, std::string endpoint,
          std::string identity, protocol::RsaKey client_key, FingerprintPolicy policy)
      : host_(host),
        handshake_timeout_(settings.handshake_timeout),
        routers_(routers),
        id_(std::move(id)),
        endpoint_(std::move(endpoint)),
        handshake_identity_(std::move(identity)),
        client_key_(std::move(client_key)),
        policy_(std::move(policy)) {}
  ~ZmqLink() override { close(); }

  bool is_open() const override { return !local_id_.empty(); }

  bool open(Clock::time_point) override {
    try {
      // A new routing id per session, as Gorgone draws a new one per connection object.
      local_id_ = routers_.connect(id_, endpoint_,
                                   handshake_identity_ + "-" + protocol::to_hex(protocol::random_bytes(12)), *this);
    } catch (const zmq::error_t& e) {
      host_.log(Severity::kError, "[proxy] node '" + id_ + "': cannot connect to " + endpoint_ + ": " + e.what());
      return false;
    }
    host_.log(Severity::kInfo, "[proxy] connect for " + id_ + " (" + endpoint_ + ")");
    // The check captures only `this` (no allocation): the link outlives its handshake.
    handshake_.emplace(handshake_identity_, client_key_,
                       [this](const protocol::RsaKey& server) { return policy_.check(server, host_.history()); });
    hello_ = handshake_->start();
    waiting_ = false;
    connected_ = false;
    gone_ = false;
    return true;
  }

  void close() override {
    if (!local_id_.empty()) routers_.disconnect(local_id_);
    local_id_.clear();
    in_flight_.reset();
    clear_inbox();
    handshake_.reset();
    release(hello_);
    waiting_ = false;
    connected_ = false;
    gone_ = false;
    retry_at_.reset();
  }

  // The worker polls the routers, which hand this link its messages (on_message()).
  std::optional<zmq::pollitem_t> poll_item(bool) const override { return std::nullopt; }

  bool ready(Clock::time_point now) override {
    if (!is_open()) return false;
    if (!hello_.empty()) {
      // Only once the node's TCP connection is up, as a DEALER with ZMQ_IMMEDIATE did: the
      // handshake timeout counts from there.
      if (!connected_ || !hand_over(hello_)) return false;
      release(hello_);  // a HELO is about 1 KB: not kept for the life of the session
      waiting_ = true;
      deadline_ = now + std::chrono::seconds(handshake_timeout_);
      return false;
    }
    return established() && connected_;
  }

  bool send(const Frame& frame) override {
    // While the node is away, frames stay in the worker's bounded queue (visible, counted)
    // instead of a pipe, which a close would discard.
    if (!connected_) return false;
    if (!hand_over(handshake_->encrypt(frame.text))) return false;
    if (!in_flight_) in_flight_ = std::make_unique<std::deque<Frame>>();
    in_flight_->push_back(frame);
    if (in_flight_->size() > kMaxInFlight) in_flight_->pop_front();
    return true;
  }

  Event receive(Clock::time_point now) override {
    using Kind = protocol::HandshakeClient::Step::Kind;
    Event ev;
    if (!is_open()) return ev;
    if (gone_) {
      ev.kind = Event::Kind::kAway;
      ev.reason = "the connection to " + endpoint_ + " is gone";
      ev.unanswered = take_in_flight();
      close();
      return ev;
    }
    if (inbox_head_ == inbox_.size()) return ev;
    std::string msg = std::move(inbox_[inbox_head_++]);
    if (inbox_head_ == inbox_.size()) clear_inbox();
    bool was_established = established();
    auto step = handshake_->on_message(msg);
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
        if (!request && in_flight_) {
          in_flight_->pop_front();
          if (in_flight_->empty()) in_flight_.reset();
        }
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
          ev.unanswered = take_in_flight();
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
    if (!is_open() || !waiting_) return std::nullopt;
    return deadline_;
  }

  std::optional<Clock::time_point> retry_at() const override { return retry_at_; }

  const std::deque<Frame>& in_flight() const override {
    static const std::deque<Frame> none;
    return in_flight_ ? *in_flight_ : none;
  }

  // RouterPeer.
  void on_message(std::string body) override { inbox_.push_back(std::move(body)); }
  void on_connection(bool up) override {
    if (connected_ && !up)
      host_.log(Severity::kInfo, "[proxy] node '" + id_ + "': connection to " + endpoint_ +
                                     " lost; frames wait in its queue until it is back");
    connected_ = up;
  }

 private:
  std::deque<Frame> take_in_flight() {
    std::deque<Frame> out;
    if (in_flight_) out = std::move(*in_flight_);
    in_flight_.reset();
    return out;
  }
  // Empties `v` and gives its memory back (clear() keeps the capacity).
  static void release(std::string& v) { std::string().swap(v); }
  void clear_inbox() {
    std::vector<std::string>().swap(inbox_);
    inbox_head_ = 0;
  }
  bool established() const {
    return handshake_ && handshake_->state() == protocol::HandshakeClient::State::kEstablished;
  }
  // Gives `wire` to the router; false when it cannot take it now.
  bool hand_over(const std::string& wire) {
    switch (routers_.send(local_id_, wire)) {
      case ZmqRouters::Sent::kOk:
        retry_at_.reset();
        return true;
      case ZmqRouters::Sent::kFull:
        // The pipe is at its high-water mark: the frame stays with the worker, which tries
        // again shortly (the router gives no per-node writability to wait for).
        retry_at_ = Clock::now() + kRetryFull;
        return false;
      case ZmqRouters::Sent::kGone:
        // The connection vanished under us: receive() reports the node away.
        gone_ = true;
        routers_.touch(local_id_);
        return false;
    }
    return false;
  }

  Host& host_;
  std::int64_t handshake_timeout_;  // s
  ZmqRouters& routers_;
  std::string id_;
  std::string endpoint_;
  std::string handshake_identity_;  // "gorgone-proxy-<core>-<node>"
  protocol::RsaKey client_key_;
  FingerprintPolicy policy_;
  // Session.
  std::string local_id_;  // the connection's id on the routers ("" = no session)
  std::optional<protocol::HandshakeClient> handshake_;
  std::string hello_;          // handshake message waiting to be sent
  Clock::time_point deadline_;  // answer expected before this
  bool waiting_ = false;        // a handshake message was sent and is unanswered
  bool connected_ = false;      // the node's TCP connection is up
  bool gone_ = false;           // the routers no longer know the connection
  std::optional<Clock::time_point> retry_at_;  // a send found the pipe full
  // Messages the routers handed over, unread from inbox_head_ on (released once all are read).
  std::vector<std::string> inbox_;
  std::size_t inbox_head_ = 0;
  // Frames sent and not answered, oldest first; none while there are none (an empty
  // std::deque allocates about 600 bytes).
  std::unique_ptr<std::deque<Frame>> in_flight_;
};

}  // namespace

std::unique_ptr<NodeLink> make_zmq_link(Host& host, const Settings& settings, ZmqRouters& routers,
                                        const std::string& node_id, const json::Value& d,
                                        std::map<std::string, protocol::RsaKey>& client_keys) {
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
  return std::make_unique<ZmqLink>(host, settings, routers, node_id, endpoint, "gorgone-proxy-" + core.id + "-" + node_id,
                                   cached->second, std::move(policy));
}

}  // namespace gorgone::proxy
