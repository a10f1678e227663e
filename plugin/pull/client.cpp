#include "client.hpp"

#include <chrono>
#include <optional>
#include <zmq.hpp>

#include "fingerprint_policy.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/protocol/handshake.hpp"
#include "gorgone/protocol/response.hpp"
#include "wire.hpp"

namespace gorgone::pull {
namespace {

using Clock = std::chrono::steady_clock;
using protocol::HandshakeClient;
using proxy::FingerprintPolicy;

// Gorgone's clientzmq waits 10 s for PUBKEY, then 10 s for KEY.
constexpr auto kHandshakeStep = std::chrono::seconds(10);
constexpr auto kPollInterval = std::chrono::milliseconds(200);
// How long a clean stop lets UNREGISTERNODES reach the central.
constexpr int kUnregisterLingerMs = 2000;
constexpr const char* kInternalIdentity = "gorgone-pull";

std::int64_t seconds(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string action_of(std::string_view frame) {
  auto r = protocol::parse_response(frame);
  return r ? r->type : std::string("(not a frame)");
}

// One run of the module's thread: the internal socket for its whole life, the external one
// per connection. Thread-bound.
class Connection {
 public:
  Connection(Host& host, const Settings& settings, const protocol::RsaKey& key, const std::atomic<bool>& stop)
      : host_(host), settings_(settings), key_(key), stop_(stop), endpoint_(settings.endpoint()) {}

  void run() {
    internal_.emplace(host_.zmq_context(), zmq::socket_type::dealer);
    internal_->set(zmq::sockopt::routing_id, kInternalIdentity);
    internal_->set(zmq::sockopt::linger, 0);
    internal_->connect(host_.core_info().internal_endpoint);
    // Gorgone's pull child announces itself to its hooks (its only event).
    internal_->send(zmq::buffer(protocol::build_frame("PULLREADY", "", "", "{}")), zmq::send_flags::dontwait);

    bool said_waiting = false;
    while (!stop_) {
      auto now = Clock::now();
      if (core_id_.empty()) {
        core_id_ = host_.core_info().id;
        if (core_id_.empty()) {
          if (!said_waiting) log(Severity::kInfo, "waiting for this host's id (gorgonecore.id or SETCOREID) before connecting");
          said_waiting = true;
          drain_internal();
          std::this_thread::sleep_for(kPollInterval);
          continue;
        }
      }
      if (!socket_ && now >= retry_at_) open(now);
      poll_once();
      tick(Clock::now());
    }
    shutdown();
  }

 private:
  enum class State { kClosed, kHandshake, kEstablished };

  void log(Severity severity, const std::string& message) { host_.log(severity, "[pull] " + message); }

  void open(Clock::time_point now) {
    routing_id_ = draw_routing_id(core_id_);
    auto socket = std::make_unique<zmq::socket_t>(host_.zmq_context(), zmq::socket_type::dealer);
    socket->set(zmq::sockopt::routing_id, routing_id_);
    socket->set(zmq::sockopt::linger, 0);
    socket->set(zmq::sockopt::reconnect_ivl, 1000);
    // Only on a live connection: while the central is away nothing waits in a ZMQ buffer
    // that closing the socket would discard.
    socket->set(zmq::sockopt::immediate, 1);
    if (settings_.target_type == "tcp") socket->set(zmq::sockopt::tcp_keepalive, 1);
    try {
      socket->connect(endpoint_);
    } catch (const zmq::error_t& e) {
      retry("cannot connect to central " + endpoint_ + ": " + e.what(), now);
      return;
    }
    socket_ = std::move(socket);
    // The HELO names "gorgone-<id>", without the routing id's random part, as Gorgone's.
    FingerprintPolicy policy{proxy::fingerprint_mode(host_.core_info().fingerprint_mode), endpoint_, endpoint_,
                             settings_.server_pubkey};
    Host* host = &host_;
    handshake_.emplace("gorgone-" + core_id_, key_, [host, policy](const protocol::RsaKey& server) {
      return policy.check(server, host->history());
    });
    pending_ = handshake_->start();
    pending_sent_ = false;
    state_ = State::kHandshake;
    deadline_ = now + kHandshakeStep;
    log(Severity::kInfo, "connecting to central " + endpoint_ + " as " + routing_id_);
    send_pending();
  }

  void close() {
    socket_.reset();
    handshake_.reset();
    pending_.clear();
    state_ = State::kClosed;
  }

  // Closes the connection and retries after the next back-off delay.
  void retry(const std::string& why, Clock::time_point now) {
    std::int64_t delay = backoff_.next();
    log(Severity::kError, why + ": retrying in " + std::to_string(delay) + " s");
    close();
    retry_at_ = now + std::chrono::seconds(delay);
  }

  // The handshake message waiting for the connection (ZMQ_IMMEDIATE refuses it before).
  void send_pending() {
    if (!socket_ || pending_.empty()) return;
    if (!socket_->send(zmq::buffer(pending_), zmq::send_flags::dontwait)) return;
    pending_.clear();
    pending_sent_ = true;
    deadline_ = Clock::now() + kHandshakeStep;
  }

  bool send_encrypted(const std::string& frame) {
    if (state_ != State::kEstablished) return false;
    try {
      return socket_->send(zmq::buffer(handshake_->encrypt(frame)), zmq::send_flags::dontwait).has_value();
    } catch (const zmq::error_t& e) {
      log(Severity::kError, "cannot send " + action_of(frame) + " to central " + endpoint_ + ": " + e.what());
      return false;
    }
  }

  void poll_once() {
    zmq::pollitem_t items[2] = {{static_cast<void*>(*internal_), 0, ZMQ_POLLIN, 0},
                                {socket_ ? static_cast<void*>(*socket_) : nullptr, 0, ZMQ_POLLIN, 0}};
    int n = socket_ ? 2 : 1;
    if (socket_ && !pending_.empty()) items[1].events |= ZMQ_POLLOUT;
    try {
      zmq::poll(items, n, kPollInterval);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) log(Severity::kError, std::string("poll: ") + e.what());
      return;
    }
    if (items[0].revents & ZMQ_POLLIN) drain_internal();
    if (n == 2 && (items[1].revents & ZMQ_POLLOUT)) send_pending();
    if (n == 2 && (items[1].revents & ZMQ_POLLIN)) drain_external();
  }

  // What the core answered on gorgone-pull: on to the central, or kept here.
  void drain_internal() {
    for (int batch = 0; batch < 1000; ++batch) {
      zmq::message_t msg;
      if (!internal_->recv(msg, zmq::recv_flags::dontwait)) return;
      std::string_view text = msg.to_string_view();
      auto out = to_central(text);
      if (!out) continue;  // the core's ACKs of what the central sent, as in Gorgone
      if (state_ != State::kEstablished) {
        log(Severity::kInfo, action_of(*out) + " not sent: no connection to central " + endpoint_ +
                                 " (the central asks again after its timeout)");
        continue;
      }
      if (!send_encrypted(*out))
        log(Severity::kError, action_of(*out) + " not sent to central " + endpoint_ + ": its queue is full");
    }
  }

  void drain_external() {
    using Kind = HandshakeClient::Step::Kind;
    for (int batch = 0; batch < 1000 && socket_; ++batch) {
      zmq::message_t msg;
      if (!socket_->recv(msg, zmq::recv_flags::dontwait)) return;
      auto now = Clock::now();
      bool was_established = state_ == State::kEstablished;
      if (was_established) keepalive_.received(seconds(now));
      auto step = handshake_->on_message(msg.to_string_view());
      switch (step.kind) {
        case Kind::kSend:
          pending_ = std::move(step.text);
          send_pending();
          break;
        case Kind::kEstablished:
          established(now);
          break;
        case Kind::kMessage:
          if (!for_core(step.text)) break;
          if (!internal_->send(zmq::buffer(step.text), zmq::send_flags::dontwait))
            log(Severity::kError, action_of(step.text) + " from central " + endpoint_ + " dropped: the core is not reachable");
          break;
        case Kind::kRotated:
          log(Severity::kDebug, "central " + endpoint_ + " rotated the session key");
          break;
        case Kind::kFailed:
          if (was_established) {
            // The central lost our session (restarted without it, or forgot it): a new one.
            backoff_.reset();
            retry("central " + endpoint_ + " no longer accepts this connection (" + step.text + ")", now);
          } else {
            retry("central " + endpoint_ + " refused the handshake (" + step.text + ")", now);
          }
          return;
        case Kind::kIgnored:
          break;
      }
    }
  }

  void established(Clock::time_point now) {
    state_ = State::kEstablished;
    backoff_.reset();
    keepalive_.connected(seconds(now));
    if (send_encrypted(register_frame(core_id_, routing_id_)))
      log(Severity::kInfo, "connected to central " + endpoint_ + " as " + routing_id_ + ": node '" + core_id_ +
                               "' registered (REGISTERNODES sent)");
    else
      retry("connected to central " + endpoint_ + " but REGISTERNODES could not be sent", now);
  }

  void tick(Clock::time_point now) {
    if (state_ == State::kHandshake && now > deadline_) {
      retry(pending_sent_ ? "central " + endpoint_ + " did not answer the handshake within 10 s"
                          : "no connection to central " + endpoint_ + " within 10 s (not listening or not reachable)",
            now);
      return;
    }
    if (state_ != State::kEstablished) return;
    switch (keepalive_.due(seconds(now))) {
      case KeepAlive::Action::kNone:
        break;
      case KeepAlive::Action::kSend:
        log(Severity::kDebug, "nothing from central " + endpoint_ + " for more than " + std::to_string(settings_.ping) +
                                  " s: REGISTERNODES sent again as keep-alive");
        (void)send_encrypted(register_frame(core_id_, routing_id_));
        break;
      case KeepAlive::Action::kReconnect:
        log(Severity::kError, "no answer from central " + endpoint_ + " within ping_timeout (" +
                                  std::to_string(settings_.ping_timeout) + " s) after a keep-alive: new connection");
        close();
        retry_at_ = now;  // at once, with a new routing id, as Gorgone
        break;
    }
  }

  void shutdown() {
    if (state_ == State::kEstablished) {
      bool sent = send_encrypted(unregister_frame(core_id_));
      // Closing lets ZMQ deliver what is queued for up to the linger.
      socket_->set(zmq::sockopt::linger, kUnregisterLingerMs);
      log(Severity::kInfo, sent ? "stopping: node '" + core_id_ + "' unregistered from central " + endpoint_ +
                                      " (UNREGISTERNODES sent)"
                                : "stopping: UNREGISTERNODES could not be sent to central " + endpoint_);
    } else {
      log(Severity::kInfo, "stopping (not connected to central " + endpoint_ + ": nothing to unregister)");
    }
    close();
    internal_.reset();
  }

  Host& host_;
  const Settings& settings_;
  const protocol::RsaKey& key_;
  const std::atomic<bool>& stop_;
  const std::string endpoint_;
  std::string core_id_;
  std::optional<zmq::socket_t> internal_;
  // Connection.
  std::unique_ptr<zmq::socket_t> socket_;
  std::optional<HandshakeClient> handshake_;
  std::string routing_id_;
  std::string pending_;       // handshake message not yet taken by ZMQ
  bool pending_sent_ = false;  // the central has been reached at least once on this socket
  State state_ = State::kClosed;
  Clock::time_point deadline_{};
  Clock::time_point retry_at_{};
  Backoff backoff_;
  KeepAlive keepalive_{settings_.ping, settings_.ping_timeout};
};

}  // namespace

PullClient::PullClient(Host& host, Settings settings, protocol::RsaKey client_key)
    : host_(host), settings_(std::move(settings)), client_key_(std::move(client_key)) {}

PullClient::~PullClient() { stop(); }

void PullClient::start() {
  if (running_) return;
  if (thread_.joinable()) thread_.join();  // stopped earlier, never reaped by check()
  stop_ = false;
  running_ = true;
  thread_ = std::thread([this] { run(); });
}

void PullClient::request_stop() { stop_ = true; }

void PullClient::stop() {
  request_stop();
  if (thread_.joinable()) thread_.join();
}

int PullClient::live_threads() {
  if (running_) return 1;
  if (thread_.joinable()) thread_.join();  // it has left run(): returns at once
  return 0;
}

void PullClient::run() {
  try {
    Connection(host_, settings_, client_key_, stop_).run();
  } catch (const std::exception& e) {
    host_.log(Severity::kError, std::string("[pull] the connection thread stopped: ") + e.what());
  } catch (...) {
    host_.log(Severity::kError, "[pull] the connection thread stopped: unknown error");
  }
  running_ = false;
}

}  // namespace gorgone::pull
