#include "client.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <zmq.hpp>

#include "../pull/wire.hpp"
#include "frames.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "gorgone/protocol/frame.hpp"

namespace gorgone::pullwss {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Each step of a connection (TCP connect, proxy CONNECT, TLS handshake, upgrade) gets this.
constexpr auto kStepTimeout = std::chrono::seconds(10);
// The internal socket is watched through its ZMQ_FD; this tick is the fallback (and runs the
// keep-alive, the reconnection and the stop request).
constexpr auto kTick = std::chrono::milliseconds(200);
// How long a clean stop lets UNREGISTERNODES and the close reach the central.
constexpr auto kStopLinger = std::chrono::seconds(2);
constexpr const char* kInternalIdentity = "gorgone-pullwss";
// Gorgone's pullwss names its user agent so; a central may look at it.
constexpr const char* kUserAgent = "gorgone mojo";
// How much of an unexpected message of the central a log line shows.
constexpr std::size_t kShownMax = 200;

std::int64_t seconds(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// What a websocket link reports to its owner (the connection), on the io_context's thread.
class LinkOwner {
 public:
  virtual void on_open() = 0;
  virtual void on_message(std::string message) = 0;
  virtual void on_closed(const std::string& why) = 0;

 protected:
  ~LinkOwner() = default;
};

// One websocket connection, plain or TLS, from an already connected TCP stream.
class Link {
 public:
  virtual ~Link() = default;
  // TLS handshake (wss), then the upgrade; on_open or on_closed follows.
  virtual void start() = 0;
  // Queues a text message (after on_open).
  virtual void send(std::string text) = 0;
  // Closes once the queue is sent; on_closed follows.
  virtual void close() = 0;
  // Closes at once; nothing follows.
  virtual void abort() = 0;
};

struct LinkParams {
  std::string host_header;   // Host of the upgrade request
  std::string address;       // the central's name, for SNI and the certificate's name check
  std::string authorization;  // "Bearer <token>"
  std::size_t max_message = 0;
  bool verify = true;
};

template <class Ws>
class WsLink : public Link, public std::enable_shared_from_this<WsLink<Ws>> {
  static constexpr bool kTls = !std::is_same_v<Ws, websocket::stream<beast::tcp_stream>>;

 public:
  template <class... Args>
  WsLink(LinkOwner& owner, LinkParams params, Args&&... args)
      : owner_(&owner), params_(std::move(params)), ws_(std::forward<Args>(args)...) {}

  void start() override {
    if constexpr (kTls) {
      auto& tls = ws_.next_layer();
      // SNI carries a name, never an address.
      if (!is_ip_literal(params_.address)) SSL_set_tlsext_host_name(tls.native_handle(), params_.address.c_str());
      if (params_.verify) tls.set_verify_callback(ssl::host_name_verification(params_.address));
      beast::get_lowest_layer(ws_).expires_after(kStepTimeout);
      tls.async_handshake(ssl::stream_base::client, [self = this->shared_from_this()](beast::error_code ec) {
        if (!self->owner_) return;
        if (ec) return self->fail("TLS handshake failed: " + ec.message());
        self->upgrade();
      });
    } else {
      upgrade();
    }
  }

  void send(std::string text) override {
    queue_.push_back(std::move(text));
    if (open_ && !writing_) write_next();
  }

  void close() override {
    closing_ = true;
    if (open_ && !writing_) do_close();
  }

  void abort() override {
    owner_ = nullptr;
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

 private:
  void upgrade() {
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = kStepTimeout;
    timeouts.idle_timeout = websocket::stream_base::none();
    timeouts.keep_alive_pings = false;
    ws_.set_option(timeouts);
    std::string authorization = params_.authorization;
    ws_.set_option(websocket::stream_base::decorator([authorization](websocket::request_type& req) {
      req.set(http::field::user_agent, kUserAgent);
      req.set(http::field::authorization, authorization);
    }));
    ws_.read_message_max(params_.max_message);
    ws_.async_handshake(response_, params_.host_header, "/", [self = this->shared_from_this()](beast::error_code ec) {
      if (!self->owner_) return;
      if (ec) return self->fail(self->upgrade_error(ec));
      self->ws_.text(true);
      self->open_ = true;
      self->owner_->on_open();
      if (!self->owner_) return;
      self->read();
      if (!self->queue_.empty() && !self->writing_) self->write_next();
      else if (self->closing_ && !self->writing_) self->do_close();
    });
  }

  std::string upgrade_error(const beast::error_code& ec) const {
    if (ec != websocket::error::upgrade_declined) return "websocket upgrade failed: " + ec.message();
    std::string why = "the central declined the websocket upgrade (HTTP " + std::to_string(response_.result_int()) + ")";
    if (auto reason = refusal_reason(response_.body())) why += ": " + *reason;
    return why;
  }

  void read() {
    ws_.async_read(buffer_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (!self->owner_) return;
      if (ec) return self->fail(self->read_error(ec));
      std::string message = beast::buffers_to_string(self->buffer_.data());
      self->buffer_.consume(self->buffer_.size());
      self->owner_->on_message(std::move(message));
      if (self->owner_) self->read();
    });
  }

  std::string read_error(const beast::error_code& ec) const {
    if (ec == websocket::error::closed) {
      const auto& reason = ws_.reason();
      std::string why = "closed by the central (code " + std::to_string(static_cast<int>(reason.code));
      if (!reason.reason.empty()) why += ": " + std::string(reason.reason.c_str());
      return why + ")";
    }
    if (ec == websocket::error::message_too_big)
      return "the central sent a message larger than max_message_size (" + std::to_string(params_.max_message) + " bytes)";
    return ec.message();
  }

  void write_next() {
    writing_ = true;
    ws_.async_write(asio::buffer(queue_.front()), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      self->writing_ = false;
      if (!self->owner_) return;
      if (ec) return self->fail("cannot send: " + ec.message());
      self->queue_.pop_front();
      if (!self->queue_.empty()) self->write_next();
      else if (self->closing_) self->do_close();
    });
  }

  void do_close() {
    ws_.async_close(websocket::close_code::normal, [self = this->shared_from_this()](beast::error_code ec) {
      self->fail(ec ? "closed by this poller (" + ec.message() + ")" : "closed by this poller");
    });
  }

  // Reports the end once and closes the socket (what is still pending ends with it).
  void fail(const std::string& why) {
    LinkOwner* owner = owner_;
    if (!owner) return;
    abort();
    owner->on_closed(why);
  }

  LinkOwner* owner_;
  const LinkParams params_;
  Ws ws_;
  beast::flat_buffer buffer_;
  websocket::response_type response_;
  std::deque<std::string> queue_;
  bool open_ = false;
  bool writing_ = false;
  bool closing_ = false;
};

using PlainWs = websocket::stream<beast::tcp_stream>;
using TlsWs = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;

// One run of the module's thread: the internal socket for its whole life, the websocket per
// connection. Thread-bound: everything runs in io_.run().
class Connection final : public LinkOwner {
 public:
  Connection(Host& host, const Settings& settings, const std::atomic<bool>& stop)
      : host_(host), settings_(settings), stop_(stop), url_(settings.url()) {}

  void run() {
    if (settings_.ssl) {
      if (settings_.ssl_insecure) {
        tls_.set_verify_mode(ssl::verify_none);
      } else {
        tls_.set_verify_mode(ssl::verify_peer);
        if (settings_.ssl_ca_file.empty()) tls_.set_default_verify_paths();
        else tls_.load_verify_file(settings_.ssl_ca_file);
      }
    }
    internal_.emplace(host_.zmq_context(), zmq::socket_type::dealer);
    internal_->set(zmq::sockopt::routing_id, kInternalIdentity);
    internal_->set(zmq::sockopt::linger, 0);
    internal_->connect(host_.core_info().internal_endpoint);
    // Gorgone's pullwss child announces itself to its hooks (its only event).
    internal_->send(zmq::buffer(protocol::build_frame("PULLWSSREADY", "", "", "{}")), zmq::send_flags::dontwait);
    internal_fd_.emplace(io_, internal_->get(zmq::sockopt::fd));
    watch_internal();
    tick();
    io_.run();
    if (link_) link_->abort();
    link_.reset();
    tcp_.reset();
    internal_fd_->release();  // the descriptor is libzmq's
    internal_fd_.reset();
    internal_.reset();
  }

  void on_open() override {
    state_ = State::kOpen;
    keepalive_.connected(seconds(Clock::now()));
    link_->send(register_frame(core_id_));
    log(Severity::kInfo, "connected to central " + url_ + ": node '" + core_id_ + "' registering (REGISTERNODES sent)");
  }

  void on_message(std::string message) override {
    keepalive_.received(seconds(Clock::now()));
    if (for_core(message)) {
      if (!accepted_) {
        // The central talks to us: it accepted the registration.
        accepted_ = true;
        backoff_.reset();
      }
      if (!internal_->send(zmq::buffer(message), zmq::send_flags::dontwait))
        log(Severity::kError, describe(message) + " from central " + url_ + " dropped: the core is not reachable");
      drain_internal();
      return;
    }
    if (message.rfind("[ACK]", 0) == 0) return;  // the central's ACKs stay here, as in Gorgone
    if (auto reason = refusal_reason(message)) {
      refused_ = *reason;
      log(Severity::kError, "central " + url_ + " refused this poller: " + *reason);
      return;
    }
    log(Severity::kInfo, "message from central " + url_ + " ignored (not a frame): " + message.substr(0, kShownMax));
  }

  void on_closed(const std::string& why) override {
    link_.reset();
    state_ = State::kIdle;
    if (stopping_) return finish();
    if (!refused_.empty()) {
      failed("central " + url_ + " closed the connection after refusing this poller (" + refused_ + ")");
    } else {
      if (accepted_) backoff_.reset();
      failed("connection to central " + url_ + " lost: " + why);
    }
  }

 private:
  enum class State { kIdle, kConnecting, kOpen };

  void log(Severity severity, const std::string& message) { host_.log(severity, "[pullwss] " + message); }

  void watch_internal() {
    internal_fd_->async_wait(asio::posix::descriptor_base::wait_read, [this](beast::error_code ec) {
      if (ec) return;
      drain_internal();
      watch_internal();
    });
  }

  void tick() {
    tick_.expires_after(kTick);
    tick_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      on_tick();
      if (!done_) tick();
    });
  }

  void on_tick() {
    if (stopping_) return;
    if (stop_) return begin_stop();
    drain_internal();
    if (core_id_.empty()) {
      core_id_ = host_.core_info().id;
      if (core_id_.empty()) {
        if (!said_waiting_) log(Severity::kInfo, "waiting for this host's id (gorgonecore.id or SETCOREID) before connecting");
        said_waiting_ = true;
        return;
      }
    }
    auto now = Clock::now();
    if (state_ == State::kIdle && now >= retry_at_) return open();
    if (state_ != State::kOpen) return;
    switch (keepalive_.due(seconds(now))) {
      case KeepAlive::Action::kNone:
        break;
      case KeepAlive::Action::kSend:
        log(Severity::kDebug, "REGISTERNODES sent again to central " + url_ + " as keep-alive");
        link_->send(register_frame(core_id_));
        break;
      case KeepAlive::Action::kReconnect:
        log(Severity::kError, "nothing from central " + url_ + " for more than ping_timeout (" +
                                  std::to_string(settings_.ping_timeout) + " s): new connection");
        drop();
        retry_at_ = now;
        break;
    }
  }

  // Forgets the current connection (no callback of it follows).
  void drop() {
    ++generation_;
    resolver_.cancel();
    if (link_) link_->abort();
    link_.reset();
    tcp_.reset();
    state_ = State::kIdle;
  }

  // Drops the connection and retries after the next back-off delay.
  void failed(const std::string& why) {
    drop();
    std::int64_t delay = backoff_.next();
    log(Severity::kError, why + ": retrying in " + std::to_string(delay) + " s");
    retry_at_ = Clock::now() + std::chrono::seconds(delay);
  }

  void open() {
    drop();
    state_ = State::kConnecting;
    accepted_ = false;
    refused_.clear();
    const bool proxied = !settings_.proxy.empty();
    const std::string& host = proxied ? settings_.proxy_url.host : settings_.address;
    const std::string& port = proxied ? settings_.proxy_url.port : settings_.port;
    std::string through = proxied ? " through proxy " + settings_.proxy_url.host + ":" + settings_.proxy_url.port : "";
    log(Severity::kInfo, "connecting to central " + url_ + through);
    unsigned g = generation_;
    resolver_.async_resolve(host, port, [this, g, host, through](beast::error_code ec, tcp::resolver::results_type results) {
      if (g != generation_) return;
      if (ec) return failed("cannot resolve '" + host + "' to reach central " + url_ + ": " + ec.message());
      tcp_ = std::make_unique<beast::tcp_stream>(io_);
      tcp_->expires_after(kStepTimeout);
      tcp_->async_connect(results, [this, g, through](beast::error_code ec, const tcp::endpoint&) {
        if (g != generation_) return;
        if (ec) return failed("no connection to central " + url_ + through + ": " + ec.message());
        if (!settings_.proxy.empty()) return proxy_connect(g);
        make_link();
      });
    });
  }

  // HTTP CONNECT to the central through the proxy (as Gorgone's user agent does for
  // websockets).
  void proxy_connect(unsigned g) {
    connect_request_ = {};
    connect_request_.method(http::verb::connect);
    connect_request_.target(settings_.host_header());
    connect_request_.version(11);
    connect_request_.set(http::field::host, settings_.host_header());
    connect_request_.set(http::field::user_agent, kUserAgent);
    if (!settings_.proxy_url.credentials.empty())
      connect_request_.set(http::field::proxy_authorization,
                           "Basic " + protocol::base64_encode(settings_.proxy_url.credentials));
    std::string proxy = settings_.proxy_url.host + ":" + settings_.proxy_url.port;
    http::async_write(*tcp_, connect_request_, [this, g, proxy](beast::error_code ec, std::size_t) {
      if (g != generation_) return;
      if (ec) return failed("proxy " + proxy + ": cannot send CONNECT: " + ec.message());
      connect_response_.emplace();
      connect_response_->skip(true);  // a CONNECT answer has no body
      proxy_buffer_.clear();
      http::async_read(*tcp_, proxy_buffer_, *connect_response_, [this, g, proxy](beast::error_code ec, std::size_t) {
        if (g != generation_) return;
        if (ec) return failed("proxy " + proxy + " did not answer CONNECT: " + ec.message());
        unsigned status = connect_response_->get().result_int();
        if (status != 200)
          return failed("proxy " + proxy + " refused to CONNECT to " + settings_.host_header() + " (HTTP " +
                        std::to_string(status) + ")");
        make_link();
      });
    });
  }

  void make_link() {
    tcp_->expires_never();
    LinkParams params{settings_.host_header(), settings_.address, "Bearer " + settings_.token,
                      static_cast<std::size_t>(settings_.max_message_size), !settings_.ssl_insecure};
    if (settings_.ssl)
      link_ = std::make_shared<WsLink<TlsWs>>(*this, std::move(params), std::move(*tcp_), tls_);
    else
      link_ = std::make_shared<WsLink<PlainWs>>(*this, std::move(params), std::move(*tcp_));
    tcp_.reset();
    link_->start();
  }

  // What the core answered on gorgone-pullwss: on to the central, or kept here.
  void drain_internal() {
    for (int batch = 0; batch < 1000; ++batch) {
      zmq::message_t msg;
      if (!internal_->recv(msg, zmq::recv_flags::dontwait)) return;
      auto out = to_central(msg.to_string_view());
      if (!out) continue;  // the core's ACKs of what the central sent, as in Gorgone
      if (state_ != State::kOpen) {
        log(Severity::kInfo, describe(*out) + " not sent: no connection to central " + url_ +
                                 " (the central asks again after its timeout)");
        continue;
      }
      if (out->size() > static_cast<std::size_t>(settings_.max_message_size)) {
        log(Severity::kError, describe(*out) + " not sent to central " + url_ + ": " + std::to_string(out->size()) +
                                  " bytes exceed max_message_size (" + std::to_string(settings_.max_message_size) + ")");
        continue;
      }
      link_->send(std::move(*out));
    }
  }

  void begin_stop() {
    stopping_ = true;
    if (state_ == State::kOpen && link_) {
      link_->send(unregister_frame(core_id_));
      link_->close();
      log(Severity::kInfo, "stopping: node '" + core_id_ + "' unregistered from central " + url_ + " (UNREGISTERNODES sent)");
      stop_timer_.expires_after(kStopLinger);
      stop_timer_.async_wait([this](beast::error_code ec) {
        if (!ec) finish();
      });
      return;
    }
    log(Severity::kInfo, "stopping (not connected to central " + url_ + ": nothing to unregister)");
    finish();
  }

  void finish() {
    done_ = true;
    drop();
    io_.stop();
  }

  // The io_context first: it is destroyed last, after everything that uses it.
  asio::io_context io_{1};
  Host& host_;
  const Settings& settings_;
  const std::atomic<bool>& stop_;
  const std::string url_;
  ssl::context tls_{ssl::context::tls_client};
  tcp::resolver resolver_{io_};
  asio::steady_timer tick_{io_};
  asio::steady_timer stop_timer_{io_};
  std::optional<zmq::socket_t> internal_;
  std::optional<asio::posix::stream_descriptor> internal_fd_;
  std::string core_id_;
  bool said_waiting_ = false;
  bool stopping_ = false;
  bool done_ = false;
  // Connection.
  unsigned generation_ = 0;  // callbacks of a dropped connection see another value
  State state_ = State::kIdle;
  std::unique_ptr<beast::tcp_stream> tcp_;
  http::request<http::empty_body> connect_request_;
  std::optional<http::response_parser<http::empty_body>> connect_response_;
  beast::flat_buffer proxy_buffer_;
  std::shared_ptr<Link> link_;
  bool accepted_ = false;  // the central sent a frame on this connection
  std::string refused_;    // the reason of the central's refusal on this connection
  Clock::time_point retry_at_{};
  pull::Backoff backoff_;
  KeepAlive keepalive_{settings_.ping, settings_.ping_timeout};
};

}  // namespace

PullWssClient::PullWssClient(Host& host, Settings settings) : host_(host), settings_(std::move(settings)) {}

PullWssClient::~PullWssClient() { stop(); }

void PullWssClient::start() {
  if (running_) return;
  if (thread_.joinable()) thread_.join();  // stopped earlier, never reaped by check()
  stop_ = false;
  running_ = true;
  thread_ = std::thread([this] { run(); });
}

void PullWssClient::request_stop() { stop_ = true; }

void PullWssClient::stop() {
  request_stop();
  if (thread_.joinable()) thread_.join();
}

int PullWssClient::live_threads() {
  if (running_) return 1;
  if (thread_.joinable()) thread_.join();  // it has left run(): returns at once
  return 0;
}

void PullWssClient::run() {
  try {
    Connection(host_, settings_, stop_).run();
  } catch (const std::exception& e) {
    host_.log(Severity::kError, std::string("[pullwss] the connection thread stopped: ") + e.what());
  } catch (...) {
    host_.log(Severity::kError, "[pullwss] the connection thread stopped: unknown error");
  }
  running_ = false;
}

}  // namespace gorgone::pullwss
