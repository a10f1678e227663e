// Test support: a WebSocket client (Boost.Beast), plain or TLS, that plays a wss/pullwss
// poller from the test process: it upgrades with a bearer token and exchanges text
// messages. Every call has a time limit.
// Thread-safety: one thread at a time.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <variant>

namespace gorgone::testing {

class WsClient {
 public:
  WsClient(int port, bool tls = false) : port_(port), tls_(tls) {}

  // TCP, TLS (no certificate check) and the upgrade with `Authorization: Bearer <token>`.
  // False when any step fails or takes more than 10 s.
  bool connect(const std::string& token) {
    namespace net = boost::asio;
    using tcp = net::ip::tcp;
    boost::beast::error_code ec;
    tcp::endpoint ep(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_));
    auto decorate = [token](boost::beast::websocket::request_type& req) {
      req.set(boost::beast::http::field::authorization, "Bearer " + token);
      req.set(boost::beast::http::field::user_agent, "gorgone mojo");
    };
    bool done = false;
    if (tls_) {
      ssl_.set_verify_mode(net::ssl::verify_none);
      auto& ws = ws_.emplace<Tls>(io_, ssl_);
      ws.set_option(boost::beast::websocket::stream_base::decorator(decorate));
      boost::beast::get_lowest_layer(ws).async_connect(ep, [&](boost::beast::error_code e) {
        if (e) return void(ec = e);
        ws.next_layer().async_handshake(net::ssl::stream_base::client, [&](boost::beast::error_code e2) {
          if (e2) return void(ec = e2);
          ws.async_handshake("127.0.0.1", "/", [&](boost::beast::error_code e3) {
            ec = e3;
            done = true;
          });
        });
      });
    } else {
      auto& ws = ws_.emplace<Plain>(io_);
      ws.set_option(boost::beast::websocket::stream_base::decorator(decorate));
      boost::beast::get_lowest_layer(ws).async_connect(ep, [&](boost::beast::error_code e) {
        if (e) return void(ec = e);
        ws.async_handshake("127.0.0.1", "/", [&](boost::beast::error_code e3) {
          ec = e3;
          done = true;
        });
      });
    }
    run_until([&] { return done || ec; }, std::chrono::seconds(10));
    return done && !ec;
  }

  bool send(const std::string& text) {
    boost::beast::error_code ec;
    bool done = false;
    with([&](auto& ws) {
      ws.text(true);
      ws.async_write(boost::asio::buffer(text), [&](boost::beast::error_code e, std::size_t) {
        ec = e;
        done = true;
      });
    });
    run_until([&] { return done || closed_; }, std::chrono::seconds(10));
    return done && !ec;
  }

  // The next text message, or none after `limit` (or when the connection closed: closed()).
  std::optional<std::string> next(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    if (closed_) return std::nullopt;
    if (!reading_) {
      reading_ = true;
      got_.reset();
      with([&](auto& ws) {
        ws.async_read(buffer_, [this](boost::beast::error_code e, std::size_t) {
          reading_ = false;
          if (e) {
            closed_ = true;
            return;
          }
          got_ = boost::beast::buffers_to_string(buffer_.data());
          buffer_.consume(buffer_.size());
        });
      });
    }
    run_until([&] { return got_.has_value() || closed_; }, limit);
    if (!got_) return std::nullopt;
    auto out = std::move(got_);
    got_.reset();
    return out;
  }
  // The next message that starts with `prefix` (others skipped).
  std::optional<std::string> next_starting(const std::string& prefix, std::chrono::seconds limit = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline && !closed_) {
      auto m = next(std::chrono::milliseconds(500));
      if (m && m->rfind(prefix, 0) == 0) return m;
    }
    return std::nullopt;
  }
  bool closed() const { return closed_; }
  // Reads until the server closes the connection (true) or `limit` passes.
  bool wait_closed(std::chrono::seconds limit = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!closed_ && std::chrono::steady_clock::now() < deadline) next(std::chrono::milliseconds(200));
    return closed_;
  }

 private:
  using Plain = boost::beast::websocket::stream<boost::beast::tcp_stream>;
  using Tls = boost::beast::websocket::stream<boost::beast::ssl_stream<boost::beast::tcp_stream>>;

  template <class F>
  void with(F f) {
    if (auto* p = std::get_if<Plain>(&ws_)) f(*p);
    if (auto* t = std::get_if<Tls>(&ws_)) f(*t);
  }
  // Runs handlers until `done()` or `limit` (an unfinished read stays pending for the next call).
  template <class P>
  void run_until(P done, std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    io_.restart();
    while (!done() && std::chrono::steady_clock::now() < deadline) io_.run_one_for(std::chrono::milliseconds(50));
  }

  int port_;
  bool tls_;
  boost::asio::io_context io_;
  boost::asio::ssl::context ssl_{boost::asio::ssl::context::tls_client};
  std::variant<std::monostate, Plain, Tls> ws_;
  boost::beast::flat_buffer buffer_;
  std::optional<std::string> got_;
  bool reading_ = false;
  bool closed_ = false;
};

}  // namespace gorgone::testing
