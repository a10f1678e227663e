#include "wss_server.hpp"

#include <openssl/crypto.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <deque>
#include <map>
#include <zmq.hpp>

#include "gorgone/json.hpp"
#include "gorgone/protocol/frame.hpp"
#include "html_entities.hpp"

namespace gorgone::proxy {
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

std::string scalar(const YAML::Node& n) { return n && n.IsScalar() ? n.Scalar() : std::string(); }

bool yes(const std::string& v) { return v == "true" || v == "1" || v == "yes" || v == "True" || v == "TRUE"; }

bool constant_time_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// "Bearer <token>" with spaces around, as Gorgone's /^\s*Bearer\s+<token>\s*$/.
std::string bearer(std::string_view header) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  header = trim(header);
  if (header.substr(0, 6) != "Bearer") return {};
  std::string_view rest = header.substr(6);
  if (rest.empty() || (rest.front() != ' ' && rest.front() != '\t')) return {};
  return std::string(trim(rest));
}

std::string refusal(const std::string& reason) {
  return "{\"code\":500,\"message\":" + json::quote(reason) + "}";
}

}  // namespace

Result<std::optional<WssConfig>> parse_wss_config(const YAML::Node& module_config) {
  if (!module_config || !module_config.IsMap()) return std::optional<WssConfig>{};
  const YAML::Node h = module_config["httpserver"];
  if (!h || h.IsNull()) return std::optional<WssConfig>{};
  if (!h.IsMap()) return make_error("proxy: httpserver must be a map");
  if (!yes(scalar(h["enable"]))) return std::optional<WssConfig>{};
  WssConfig c;
  c.ssl = yes(scalar(h["ssl"]));
  c.ssl_cert_file = scalar(h["ssl_cert_file"]);
  c.ssl_key_file = scalar(h["ssl_key_file"]);
  c.passphrase = scalar(h["passphrase"]);
  c.token = scalar(h["token"]);
  if (std::string a = scalar(h["address"]); !a.empty()) c.address = a;
  std::string port = scalar(h["port"]);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) > 65535)
    return make_error("proxy: httpserver.port must be a port number (0-65535), got '" + port + "'");
  c.port = std::stoi(port);
  // Without a token anyone reaching the port could speak for any poller.
  if (c.token.empty()) return make_error("proxy: httpserver.token is required when httpserver is enabled");
  if (c.ssl && (c.ssl_cert_file.empty() || c.ssl_key_file.empty()))
    return make_error("proxy: httpserver.ssl needs ssl_cert_file and ssl_key_file");
  if (std::string m = scalar(h["max_message_size"]); !m.empty()) {
    if (m.size() > 10 || m.find_first_not_of("0123456789") != std::string::npos || std::stoll(m) < 1024 ||
        std::stoll(m) > (1LL << 31))
      return make_error("proxy: httpserver.max_message_size must be between 1024 and 2147483648, got '" + m + "'");
    c.max_message_size = static_cast<std::size_t>(std::stoll(m));
  }
  return std::optional<WssConfig>{c};
}

// ---- the listener's state, all on its thread

struct WssServer::Impl {
  // One poller connection, whatever its stream (plain or TLS).
  struct Connection {
    virtual ~Connection() = default;
    virtual void write(std::string text, Done done) = 0;
    virtual void refuse(const std::string& reason) = 0;
    std::string node;   // bound node id ("" until its first REGISTERNODES)
    std::string peer;   // address:port, for log lines
  };

  Impl(Host& h, WssConfig c) : host(h), config(std::move(c)) {}

  Host& host;
  WssConfig config;
  net::io_context io{1};
  std::optional<ssl::context> tls;
  std::optional<tcp::acceptor> acceptor;
  std::unique_ptr<zmq::socket_t> relay;  // to the hooks, through the internal router
  std::map<std::string, std::weak_ptr<Connection>> bound;  // node id -> its connection
  std::map<std::string, std::uint64_t> failed_session;     // node id -> session whose frames fail
  std::optional<net::steady_timer> drain_timer;

  void log(Severity s, const std::string& m) { host.log(s, "[proxy] wss listener: " + m); }

  void forward(const std::string& action, const std::string& token, const std::string& node, const std::string& data) {
    if (!relay) return;
    relay->send(zmq::buffer(protocol::build_frame(action, token, node, data)), zmq::send_flags::dontwait);
    drain();
  }
  // The core acknowledges each relayed frame: nothing to do with those.
  void drain() {
    zmq::message_t m;
    while (relay && relay->recv(m, zmq::recv_flags::dontwait)) {
    }
  }
  void schedule_drain() {
    drain_timer->expires_after(std::chrono::seconds(1));
    drain_timer->async_wait([self = this](beast::error_code ec) {
      if (ec) return;
      self->drain();
      self->schedule_drain();
    });
  }

  // A message of a connection, entities decoded. False: refuse the connection.
  void on_message(const std::shared_ptr<Connection>& c, std::string_view raw) {
    std::string text = decode_html_entities(raw);
    auto frame = protocol::parse_frame(text);
    if (!frame) {
      if (c->node.empty()) c->refuse("please registernodes");
      return;
    }
    const std::string& a = frame->action;
    if (c->node.empty()) {
      if (a != "REGISTERNODES") return c->refuse("please registernodes");
      json::Document d;
      std::string id;
      if (json::parse(d, frame->data) && d.IsObject() && d.HasMember("nodes") && d["nodes"].IsArray() &&
          !d["nodes"].Empty() && d["nodes"][0].IsObject())
        id = json::member_text(d["nodes"][0], "id").value_or("");
      if (id.empty() || id.find("~~") != std::string::npos || id.size() > 255)
        return c->refuse("decode error: unsupported format");
      auto held = bound.find(id);
      if (held != bound.end()) {
        if (auto other = held->second.lock()) {
          log(Severity::kError, "refused: " + c->peer + " registered node '" + id + "', which " + other->peer +
                                    " speaks for (connected)");
          return c->refuse("node '" + id + "' is already connected");
        }
      }
      c->node = id;
      bound[id] = c;
      log(Severity::kInfo, "node '" + id + "' connected from " + c->peer);
    }
    const std::string& id = c->node;
    if (a == "REGISTERNODES") {
      // The connection speaks for its node alone, whatever the message lists.
      forward(a, frame->token, id,
              "{\"nodes\":[{\"id\":" + json::quote(id) + ",\"type\":\"wss\",\"identity\":" + json::quote("wss-" + id) + "}]}");
    } else if (a == "UNREGISTERNODES") {
      forward(a, frame->token, id, "{\"nodes\":[{\"id\":" + json::quote(id) + "}]}");
    } else if (a == "PONG" || a == "SETLOGS") {
      json::Document d;
      std::string error;
      if (!json::parse(d, frame->data, &error) || !d.IsObject()) {
        log(Severity::kError, "node '" + id + "': " + a + " ignored: " + (error.empty() ? "not a JSON object" : error));
        return;
      }
      if (!d.HasMember("data") || !d["data"].IsObject()) {
        d.RemoveMember("data");
        d.AddMember("data", json::Value(rapidjson::kObjectType), d.GetAllocator());
      }
      json::Value& data = d["data"];
      data.RemoveMember("id");
      data.AddMember("id", json::Value(id.c_str(), static_cast<rapidjson::SizeType>(id.size()), d.GetAllocator()),
                     d.GetAllocator());
      forward(a, frame->token, id, json::dump(d));
    } else if (a == "SYNCLOGS") {
      // New rows on this node, whatever id the message names.
      forward(a, frame->token, id, "{\"code\":0,\"data\":{\"id\":" + json::quote(id) + "}}");
    }
    // Anything else a poller sends is not for the central (Gorgone ignores it too).
  }

  void on_close(const std::shared_ptr<Connection>& c, const std::string& why) {
    if (c->node.empty()) return;
    auto it = bound.find(c->node);
    if (it != bound.end() && it->second.lock() == c) {
      bound.erase(it);
      log(Severity::kInfo, "node '" + c->node + "' disconnected (" + why + ")");
    }
  }

  void send(const std::string& node, std::uint64_t session, std::string text, Done done) {
    auto failed = failed_session.find(node);
    if (failed != failed_session.end() && failed->second == session) return done(false);
    auto it = bound.find(node);
    std::shared_ptr<Connection> c = it == bound.end() ? nullptr : it->second.lock();
    if (!c) {
      failed_session[node] = session;
      return done(false);
    }
    c->write(std::move(text), [this, node, session, done = std::move(done)](bool ok) {
      if (!ok) failed_session[node] = session;
      done(ok);
    });
  }

  void accept();
};

namespace {

template <class WsStream>
class Session : public WssServer::Impl::Connection, public std::enable_shared_from_this<Session<WsStream>> {
 public:
  // `server` outlives every session: its io_context (which holds them) is destroyed with it.
  Session(WssServer::Impl* server, WsStream ws) : server_(server), ws_(std::move(ws)) {}

  void run_tls() {
    if constexpr (std::is_same_v<typename WsStream::next_layer_type, beast::ssl_stream<beast::tcp_stream>>) {
      beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(30));
      ws_.next_layer().async_handshake(ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        if (ec) return self->server_->log(Severity::kError, "refused " + self->peer + ": TLS handshake: " + ec.message());
        self->read_request();
      });
    } else {
      read_request();
    }
  }

  void read_request() {
    beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(30));
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    parser_->body_limit(0);
    http::async_read(ws_.next_layer(), buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->server_->log(Severity::kError, "refused " + self->peer + ": " + ec.message());
                       self->upgrade();
                     });
  }

  void upgrade() {
    auto req = parser_->release();
    if (!websocket::is_upgrade(req)) {
      server_->log(Severity::kError, "refused " + peer + ": not a websocket upgrade");
      return;
    }
    auto header = req[http::field::authorization];
    authorized_ = constant_time_equal(bearer(std::string_view(header.data(), header.size())), server_->config.token);
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(30);
    t.idle_timeout = std::chrono::seconds(server_->config.idle_timeout);
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.set(http::field::server, "gorgone-proxy");
    }));
    ws_.read_message_max(server_->config.max_message_size);
    ws_.async_accept(req, [self = this->shared_from_this()](beast::error_code ec) {
      if (ec) return self->server_->log(Severity::kError, "refused " + self->peer + ": " + ec.message());
      if (!self->authorized_) {
        self->server_->log(Severity::kError, "refused " + self->peer + ": wrong or missing bearer token");
        return self->refuse("token authorization unallowed");
      }
      self->read();
    });
  }

  void read() {
    ws_.async_read(buffer_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) {
        std::string why = ec == websocket::error::message_too_big
                              ? "a message larger than max_message_size (" +
                                    std::to_string(self->server_->config.max_message_size) + " bytes)"
                              : ec.message();
        if (ec == websocket::error::message_too_big)
          self->server_->log(Severity::kError, "closing " + self->peer +
                                                   (self->node.empty() ? "" : " (node '" + self->node + "')") + ": " + why);
        self->closed(why);
        return;
      }
      std::string text = beast::buffers_to_string(self->buffer_.data());
      self->buffer_.consume(self->buffer_.size());
      if (!self->refused_) self->server_->on_message(self, text);
      if (!self->refused_) self->read();
    });
  }

  void write(std::string text, WssServer::Done done) override {
    if (closed_) return done(false);
    queue_.push_back({std::move(text), std::move(done), false});
    if (!writing_) write_next();
  }

  void refuse(const std::string& reason) override {
    if (refused_) return;
    refused_ = true;
    if (!node.empty()) server_->log(Severity::kError, "refused " + peer + " (node '" + node + "'): " + reason);
    queue_.push_back({refusal(reason), nullptr, true});
    if (!writing_) write_next();
  }

 private:
  struct Out {
    std::string text;
    WssServer::Done done;
    bool close_after = false;
  };

  // One write at a time: the front of the queue is the one in flight while writing_.
  void write_next() {
    if (queue_.empty() || closed_ || writing_) return;
    writing_ = true;
    ws_.text(true);
    ws_.async_write(net::buffer(queue_.front().text), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      self->writing_ = false;
      Out out = std::move(self->queue_.front());
      self->queue_.pop_front();
      if (out.done) out.done(!ec);
      if (ec) return self->closed(ec.message());
      if (out.close_after) {
        self->ws_.async_close(websocket::close_code::policy_error, [self](beast::error_code) { self->closed("refused"); });
        return;
      }
      self->write_next();
    });
  }

  void closed(const std::string& why) {
    if (closed_) return;
    closed_ = true;
    server_->on_close(this->shared_from_this(), why);
    // Frames waiting to be written never will be; the one in flight (if any) stays at the
    // front until its write completes (with an error, after the shutdown below).
    std::deque<Out> failed;
    while (queue_.size() > (writing_ ? 1u : 0u)) {
      failed.push_front(std::move(queue_.back()));
      queue_.pop_back();
    }
    for (auto& out : failed)  // in the order they were given
      if (out.done) out.done(false);
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
  }

  WssServer::Impl* server_;
  WsStream ws_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  std::deque<Out> queue_;
  bool authorized_ = false;
  bool refused_ = false;
  bool closed_ = false;
  bool writing_ = false;
};

using PlainWs = websocket::stream<beast::tcp_stream>;
using TlsWs = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;

}  // namespace

void WssServer::Impl::accept() {
  acceptor->async_accept([self = this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted) return;
    if (!ec) {
      beast::error_code pe;
      auto ep = socket.remote_endpoint(pe);
      std::string peer = pe ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
      if (self->tls) {
        auto s = std::make_shared<Session<TlsWs>>(self, TlsWs(beast::tcp_stream(std::move(socket)), *self->tls));
        s->peer = peer;
        s->run_tls();
      } else {
        auto s = std::make_shared<Session<PlainWs>>(self, PlainWs(beast::tcp_stream(std::move(socket))));
        s->peer = peer;
        s->run_tls();
      }
    } else {
      self->log(Severity::kError, "accept: " + ec.message());
    }
    self->accept();
  });
}

WssServer::WssServer(Host& host, WssConfig config) : host_(host), config_(std::move(config)) {}

WssServer::~WssServer() { stop(); }

Status WssServer::start() {
  auto impl = std::make_unique<Impl>(host_, config_);
  const std::string where = config_.address + ":" + std::to_string(config_.port);
  try {
    if (config_.ssl) {
      impl->tls.emplace(ssl::context::tls_server);
      impl->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                             ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
      std::string pass = config_.passphrase;
      impl->tls->set_password_callback([pass](std::size_t, ssl::context::password_purpose) { return pass; });
      impl->tls->use_certificate_chain_file(config_.ssl_cert_file);
      impl->tls->use_private_key_file(config_.ssl_key_file, ssl::context::pem);
    }
    tcp::endpoint ep(net::ip::make_address(config_.address), static_cast<unsigned short>(config_.port));
    impl->acceptor.emplace(impl->io);
    impl->acceptor->open(ep.protocol());
    impl->acceptor->set_option(net::socket_base::reuse_address(true));
    impl->acceptor->bind(ep);
    impl->acceptor->listen(1024);
    bound_port_ = impl->acceptor->local_endpoint().port();
    impl->relay = std::make_unique<zmq::socket_t>(host_.zmq_context(), zmq::socket_type::dealer);
    impl->relay->set(zmq::sockopt::routing_id, kWssRelay);
    impl->relay->set(zmq::sockopt::linger, 0);
    impl->relay->set(zmq::sockopt::sndhwm, 0);
    impl->relay->connect(host_.core_info().internal_endpoint);
  } catch (const std::exception& e) {
    return Status::failure("proxy: httpserver cannot listen on " + where + (config_.ssl ? " (TLS)" : "") + ": " + e.what());
  }
  impl->drain_timer.emplace(impl->io);
  impl->schedule_drain();
  impl->accept();
  Impl* raw = impl.get();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    impl_ = std::move(impl);
  }
  running_ = true;
  thread_ = std::thread([this, raw] {
    try {
      raw->io.run();
    } catch (const std::exception& e) {
      host_.log(Severity::kError, std::string("[proxy] wss listener stopped on an internal error: ") + e.what());
    }
    running_ = false;
  });
  host_.log(Severity::kInfo, "[proxy] wss listener on " + std::string(config_.ssl ? "https://" : "http://") +
                                 config_.address + ":" + std::to_string(bound_port_.load()));
  return Status::success();
}

void WssServer::stop() {
  std::unique_ptr<Impl> impl;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    impl = std::move(impl_);
  }
  if (!impl) return;
  impl->io.stop();
  if (thread_.joinable()) thread_.join();
  impl->relay.reset();
  // Destroying the io_context destroys the handlers still pending, and with them the
  // connections they hold.
  impl.reset();
}

void WssServer::send(const std::string& node, std::uint64_t session, std::string text, Done done) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!impl_ || !running_) return done(false);
  Impl* impl = impl_.get();
  net::post(impl->io, [impl, node, session, text = std::move(text), done = std::move(done)]() mutable {
    impl->send(node, session, std::move(text), std::move(done));
  });
}

}  // namespace gorgone::proxy
