// The pullwss module (gorgone-pullwss.so) in a real poller process dialling a websocket
// central. Here the central is played by the test (a Beast websocket server that behaves as
// Gorgone's proxy httpserver child: it checks "Authorization: Bearer <token>", refuses with
// {"code":500,"message":...} and a close, records what it receives and sends frames): the
// upgrade and the registration are Gorgone's, the central's PING and GETLOG reach the
// poller's core and its PONG and SETLOGS come back entity-encoded, a wrong token is refused
// and retried with a back-off, TLS is verified (a trusted CA file, the insecure option, an
// untrusted certificate refused), an HTTP proxy is crossed with CONNECT, nothing larger than
// max_message_size is sent, and a clean stop unregisters.
#include <gtest/gtest.h>
#include <poll.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <algorithm>
#include <deque>
#include <iostream>
#include <mutex>
#include <thread>

#include "fleet.hpp"

namespace gorgone::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr const char* kPoller = "6";
constexpr const char* kToken = "secret_token";

// A websocket central on 127.0.0.1, on its own io_context thread.
class FakeCentral {
 public:
  struct Upgrade {
    std::string target, authorization, user_agent, host;
  };

  // `cert_dir`: serve TLS with cert.pem/key.pem from there.
  explicit FakeCentral(std::string token, const std::string& cert_dir = "", int port = 0)
      : token_(std::move(token)),
        acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port))) {
    if (!cert_dir.empty()) {
      tls_.emplace(ssl::context::tls_server);
      tls_->use_certificate_chain_file(cert_dir + "/cert.pem");
      tls_->use_private_key_file(cert_dir + "/key.pem", ssl::context::pem);
    }
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FakeCentral() {
    io_.stop();
    thread_.join();
  }

  int port() const { return acceptor_.local_endpoint().port(); }

  std::vector<Upgrade> upgrades() {
    std::lock_guard<std::mutex> lock(mutex_);
    return upgrades_;
  }
  // Every message received, in order ("#<connection>" marks each new accepted connection).
  std::vector<std::string> received() {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }
  bool has(const std::string& prefix) {
    for (const auto& m : received())
      if (m.rfind(prefix, 0) == 0) return true;
    return false;
  }
  std::string first(const std::string& prefix) {
    for (const auto& m : received())
      if (m.rfind(prefix, 0) == 0) return m;
    return "";
  }
  int closed() {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_;
  }
  // Drops the last accepted connection (no close handshake), as a lost link.
  void drop() {
    asio::post(io_, [this] {
      if (auto s = current_.lock()) s->drop();
    });
  }
  // Sends a text message on the last accepted connection.
  void send(const std::string& text) {
    asio::post(io_, [this, text] {
      if (auto s = current_.lock()) s->send(text);
    });
  }

 private:
  struct Session {
    virtual ~Session() = default;
    virtual void send(std::string text) = 0;
    virtual void drop() = 0;
  };

  template <class Ws>
  struct WsSession : Session, std::enable_shared_from_this<WsSession<Ws>> {
    static constexpr bool kTls = !std::is_same_v<Ws, websocket::stream<beast::tcp_stream>>;
    template <class... A>
    WsSession(FakeCentral& c, A&&... a) : central(c), ws(std::forward<A>(a)...) {}

    void run() {
      auto self = this->shared_from_this();
      if constexpr (kTls) {
        ws.next_layer().async_handshake(ssl::stream_base::server, [self](beast::error_code ec) {
          if (!ec) self->read_request();
        });
      } else {
        read_request();
      }
    }
    void read_request() {
      auto self = this->shared_from_this();
      http::async_read(ws.next_layer(), buffer, request, [self](beast::error_code ec, std::size_t) {
        if (ec) return;
        self->central.upgraded({std::string(self->request.target()), std::string(self->request[http::field::authorization]),
                                std::string(self->request[http::field::user_agent]),
                                std::string(self->request[http::field::host])});
        self->ws.async_accept(self->request, [self](beast::error_code ec) {
          if (ec) return;
          self->ws.text(true);
          // Gorgone's central accepts the upgrade, then refuses a wrong token with a message
          // and a close.
          if (self->request[http::field::authorization] != "Bearer " + self->central.token_) {
            self->refusing = true;
            self->send("{\"code\":500,\"message\":\"token authorization unallowed\"}");
          } else {
            self->central.current_ = self->shared_from_this();
          }
          self->read();
        });
      });
    }
    void read() {
      auto self = this->shared_from_this();
      ws.async_read(buffer, [self](beast::error_code ec, std::size_t) {
        if (ec) return self->central.ended();
        self->central.record(beast::buffers_to_string(self->buffer.data()));
        self->buffer.consume(self->buffer.size());
        self->read();
      });
    }
    void drop() override {
      beast::error_code ignored;
      beast::get_lowest_layer(ws).socket().shutdown(tcp::socket::shutdown_both, ignored);
      beast::get_lowest_layer(ws).socket().close(ignored);
    }
    void send(std::string text) override {
      out.push_back(std::move(text));
      if (!writing) write();
    }
    void write() {
      writing = true;
      auto self = this->shared_from_this();
      ws.async_write(asio::buffer(out.front()), [self](beast::error_code ec, std::size_t) {
        self->writing = false;
        if (ec) return;
        self->out.pop_front();
        if (!self->out.empty()) return self->write();
        if (self->refusing) self->ws.async_close(websocket::close_code::policy_error, [self](beast::error_code) {});
      });
    }

    FakeCentral& central;
    Ws ws;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    std::deque<std::string> out;
    bool writing = false;
    bool refusing = false;
  };

  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec) return;
      if (tls_) {
        using Ws = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;
        std::make_shared<WsSession<Ws>>(*this, beast::tcp_stream(std::move(socket)), *tls_)->run();
      } else {
        using Ws = websocket::stream<beast::tcp_stream>;
        std::make_shared<WsSession<Ws>>(*this, beast::tcp_stream(std::move(socket)))->run();
      }
      accept();
    });
  }
  void upgraded(Upgrade u) {
    std::lock_guard<std::mutex> lock(mutex_);
    upgrades_.push_back(std::move(u));
    received_.push_back("#" + std::to_string(upgrades_.size()));
  }
  void record(std::string m) {
    std::lock_guard<std::mutex> lock(mutex_);
    received_.push_back(std::move(m));
  }
  void ended() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++closed_;
  }

  const std::string token_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::optional<ssl::context> tls_;
  std::thread thread_;
  std::weak_ptr<Session> current_;
  std::mutex mutex_;
  std::vector<Upgrade> upgrades_;
  std::vector<std::string> received_;
  int closed_ = 0;
};

// A self-signed certificate (cert.pem, key.pem) in a new directory, for 127.0.0.1 unless
// `san` names something else.
std::string make_certificate(const std::string& san = "IP:127.0.0.1") {
  std::string dir = make_temp_dir("pullwss-cert");
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=" + san +
                    " -keyout " + dir + "/key.pem -out " + dir + "/cert.pem >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("openssl req failed");
  return dir;
}

// An HTTP proxy that serves one CONNECT at a time and relays bytes; records the request head.
class ConnectProxy {
 public:
  ConnectProxy() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this] { serve(); });
  }
  ~ConnectProxy() {
    stop_ = true;
    beast::error_code ignored;
    tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ignored);
    thread_.join();
  }
  int port() const { return acceptor_.local_endpoint().port(); }
  std::string head() {
    std::lock_guard<std::mutex> lock(mutex_);
    return head_;
  }

 private:
  void serve() {
    while (!stop_) {
      tcp::socket client(io_);
      beast::error_code ec;
      acceptor_.accept(client, ec);
      if (ec || stop_) return;
      std::string head;
      char c;
      while (head.find("\r\n\r\n") == std::string::npos && asio::read(client, asio::buffer(&c, 1), ec) == 1) head += c;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        head_ = head;
      }
      // "CONNECT host:port HTTP/1.1"
      std::string target = head.substr(8, head.find(' ', 8) - 8);
      std::size_t colon = target.rfind(':');
      tcp::socket upstream(io_);
      upstream.connect(tcp::endpoint(asio::ip::make_address(target.substr(0, colon)),
                                     static_cast<unsigned short>(std::stoi(target.substr(colon + 1)))), ec);
      if (ec) {
        asio::write(client, asio::buffer(std::string("HTTP/1.1 502 Bad Gateway\r\n\r\n")), ec);
        continue;
      }
      asio::write(client, asio::buffer(std::string("HTTP/1.1 200 Connection established\r\n\r\n")), ec);
      relay(client, upstream);
    }
  }
  void relay(tcp::socket& a, tcp::socket& b) {
    char buf[16384];
    while (!stop_) {
      pollfd fds[2] = {{a.native_handle(), POLLIN, 0}, {b.native_handle(), POLLIN, 0}};
      if (::poll(fds, 2, 200) < 0) return;
      for (int i = 0; i < 2; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        tcp::socket& from = i == 0 ? a : b;
        tcp::socket& to = i == 0 ? b : a;
        beast::error_code ec;
        std::size_t n = from.read_some(asio::buffer(buf), ec);
        if (ec || n == 0) return;
        asio::write(to, asio::buffer(buf, n), ec);
        if (ec) return;
      }
    }
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::string head_;
};

class PullWssFakeCentralTest : public ::testing::Test {
 protected:
  void start_poller(int port, const std::string& extra = "", const std::string& token = kToken) {
    HostSpec poller{kPoller};
    poller.extra_modules = "    - name: pullwss\n      package: gorgone::modules::core::pullwss::hooks\n      enable: true\n"
                           "      address: 127.0.0.1\n      port: " + std::to_string(port) + "\n      token: " + token + "\n" + extra;
    fleet_.declare(poller);
    fleet_.start(kPoller);
  }
  std::string log() { return read_file(fleet_.log_path(kPoller)); }

  Fleet fleet_;
};

TEST_F(PullWssFakeCentralTest, UpgradesAndRegistersAsGorgonesPoller) {
  FakeCentral central(kToken);
  start_poller(central.port());
  ASSERT_TRUE(eventually([&] { return central.has("[REGISTERNODES]"); })) << log();
  auto ups = central.upgrades();
  ASSERT_GE(ups.size(), 1u);
  EXPECT_EQ(ups[0].target, "/");
  EXPECT_EQ(ups[0].authorization, "Bearer secret_token");
  EXPECT_EQ(ups[0].user_agent, "gorgone mojo");
  EXPECT_EQ(ups[0].host, "127.0.0.1:" + std::to_string(central.port()));
  // The first message of the connection is the registration, as the central requires.
  auto got = central.received();
  ASSERT_GE(got.size(), 2u);
  EXPECT_EQ(got[0], "#1");
  EXPECT_EQ(got[1], "[REGISTERNODES] [] [] {\"nodes\":[{\"type\":\"wss\",\"identity\":\"6\",\"id\":\"6\"}]}");
  EXPECT_NE(log().find("[pullwss] connected to central ws://127.0.0.1:" + std::to_string(central.port()) + "/"),
            std::string::npos);
  EXPECT_EQ(log().find(kToken), std::string::npos) << "the token is in the poller's log";
}

// The central's PING and GETLOG reach the poller's core; its PONG and the getlog answer (as
// SETLOGS with the GETLOG's token) come back HTML-entity encoded; a command sent by the
// central runs and its rows are in the next SETLOGS.
TEST_F(PullWssFakeCentralTest, ThePollersCoreAnswersTheCentralEncoded) {
  FakeCentral central(kToken);
  start_poller(central.port());
  ASSERT_TRUE(eventually([&] { return central.has("[REGISTERNODES]"); })) << log();
  central.send("[PING] [ping-token] [] {}");
  ASSERT_TRUE(eventually([&] { return central.has("[PONG] [ping-token] [] {&quot;"); })) << log();
  std::string pong = central.first("[PONG]");
  EXPECT_EQ(pong.find('"'), std::string::npos) << pong;
  EXPECT_NE(pong.find("&quot;action&quot;:&quot;ping&quot;"), std::string::npos) << pong;
  central.send("[COMMAND] [cmd-token] [] {\"content\":[{\"command\":\"echo \\\"quoted\\\" <tag> & amp\"}],\"parameters\":{}}");
  ASSERT_TRUE(eventually([&] {
    central.send("[GETLOG] [getlog-token] [] {\"ctime\":0}");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    for (const auto& m : central.received())
      if (m.rfind("[SETLOGS] [getlog-token] [] ", 0) == 0 && m.find("command has finished") != std::string::npos) return true;
    return false;
  })) << log();
  for (const auto& m : central.received()) {
    if (m.rfind("[SETLOGS]", 0) != 0) continue;
    EXPECT_EQ(m.find('"'), std::string::npos) << m;
    EXPECT_EQ(m.find('<'), std::string::npos) << m;
  }
  // The central's ACKs stay on the poller; nothing but PONG/SETLOGS/REGISTERNODES came.
  for (const auto& m : central.received()) {
    if (m[0] == '#') continue;
    EXPECT_TRUE(m.rfind("[PONG]", 0) == 0 || m.rfind("[SETLOGS]", 0) == 0 || m.rfind("[REGISTERNODES]", 0) == 0 ||
                m.rfind("[SYNCLOGS]", 0) == 0)
        << m;
  }
}

TEST_F(PullWssFakeCentralTest, AWrongTokenIsRefusedLoggedAndRetriedWithABackoff) {
  FakeCentral central("the-right-one");
  start_poller(central.port(), "", "a-wrong-token");
  ASSERT_TRUE(eventually([&] { return log().find("retrying in 2 s") != std::string::npos; })) << log();
  std::string l = log();
  EXPECT_NE(l.find("[pullwss] central ws://127.0.0.1:" + std::to_string(central.port()) +
                   "/ refused this poller: token authorization unallowed"),
            std::string::npos)
      << l;
  EXPECT_NE(l.find("closed the connection after refusing this poller (token authorization unallowed): retrying in 1 s"),
            std::string::npos)
      << l;
  EXPECT_EQ(l.find("a-wrong-token"), std::string::npos) << "the token is in the poller's log";
  EXPECT_GE(central.upgrades().size(), 2u);
}

TEST_F(PullWssFakeCentralTest, ACleanStopUnregisters) {
  FakeCentral central(kToken);
  start_poller(central.port());
  ASSERT_TRUE(eventually([&] { return central.has("[REGISTERNODES]"); })) << log();
  fleet_.stop(kPoller);
  ASSERT_TRUE(eventually([&] { return central.has("[UNREGISTERNODES]"); })) << log();
  EXPECT_EQ(central.first("[UNREGISTERNODES]"),
            "[UNREGISTERNODES] [] [] {\"nodes\":[{\"id\":\"6\",\"type\":\"wss\",\"identity\":\"6\"}]}");
  EXPECT_TRUE(eventually([&] { return central.closed() >= 1; }));
  EXPECT_NE(log().find("[pullwss] stopping: node '6' unregistered from central"), std::string::npos) << log();
}

TEST_F(PullWssFakeCentralTest, ConnectsAgainWhenTheConnectionIsLost) {
  FakeCentral central(kToken);
  start_poller(central.port());
  ASSERT_TRUE(eventually([&] { return central.has("[REGISTERNODES]"); })) << log();
  central.drop();
  ASSERT_TRUE(eventually([&] {
    return log().find("[pullwss] connection to central ws://127.0.0.1:" + std::to_string(central.port()) + "/ lost") !=
           std::string::npos;
  })) << log();
  // A new connection, registered again first.
  ASSERT_TRUE(eventually([&] {
    auto got = central.received();
    auto second = std::find(got.begin(), got.end(), "#2");
    return second != got.end() && second + 1 != got.end() && (second + 1)->rfind("[REGISTERNODES]", 0) == 0;
  }, std::chrono::seconds(60))) << log();
  central.send("[PING] [again] [] {}");
  ASSERT_TRUE(eventually([&] { return central.has("[PONG] [again]"); })) << log();
}

// REGISTERNODES again every `ping` s (not encoded); a central that says nothing for more
// than ping_timeout s is left for a new connection.
TEST_F(PullWssFakeCentralTest, KeepAliveAndASilentCentral) {
  FakeCentral central(kToken);
  start_poller(central.port(), "      ping: 1\n      ping_timeout: 3\n");
  ASSERT_TRUE(eventually([&] {
    auto got = central.received();
    return std::count(got.begin(), got.end(), got.size() > 1 ? got[1] : std::string("-")) >= 3;
  })) << log();
  EXPECT_EQ(central.received()[1], "[REGISTERNODES] [] [] {\"nodes\":[{\"type\":\"wss\",\"identity\":\"6\",\"id\":\"6\"}]}");
  ASSERT_TRUE(eventually([&] {
    return log().find("[pullwss] nothing from central ws://127.0.0.1:" + std::to_string(central.port()) +
                      "/ for more than ping_timeout (3 s): new connection") != std::string::npos;
  })) << log();
  ASSERT_TRUE(eventually([&] { return central.upgrades().size() >= 2; })) << log();
}

TEST_F(PullWssFakeCentralTest, TlsWithATrustedCaFile) {
  std::string certs = make_certificate();
  FakeCentral central(kToken, certs);
  start_poller(central.port(), "      ssl: true\n      ssl_ca_file: " + certs + "/cert.pem\n");
  ASSERT_TRUE(eventually([&] { return central.has("[REGISTERNODES]"); })) << log();
  central.send("[PING] [tls-ping] [] {}");
  ASSERT_TRUE(eventually([&] { return central.has("[PONG] [tls-ping]"); })) << log();
  EXPECT_NE(log().find("connected to central wss://127.0.0.1:" + std::to_string(central.port()) + "/"), std::string::npos);
  std::filesystem::remove_all(certs);
}

TEST_F(PullWssFakeCentralTest, AnUntrustedCertificateIsRefusedUnlessInsecure) {
  std::string certs = make_certificate();
  FakeCentral central(kToken, certs);
  start_poller(central.port(), "      ssl: true\n");  // the system's authorities do not know it
  ASSERT_TRUE(eventually([&] { return log().find("TLS handshake failed") != std::string::npos; })) << log();
  EXPECT_NE(log().find("certificate verify failed"), std::string::npos) << log();
  EXPECT_FALSE(central.has("[REGISTERNODES]"));
  EXPECT_TRUE(central.upgrades().empty()) << "the token was sent to an unverified central";
  fleet_.stop(kPoller);
  start_poller(central.port(), "      ssl: true\n      ssl_insecure: true\n");
  ASSERT_TRUE(eventually([&] { return central.has("[REGISTERNODES]"); })) << log();
  EXPECT_NE(log().find("ssl_insecure: the certificate of central"), std::string::npos);
  std::filesystem::remove_all(certs);
}

// A certificate signed by a trusted authority but issued to another name is refused too.
TEST_F(PullWssFakeCentralTest, ACertificateForAnotherNameIsRefused) {
  std::string certs = make_certificate("DNS:central.example");
  FakeCentral central(kToken, certs);
  start_poller(central.port(), "      ssl: true\n      ssl_ca_file: " + certs + "/cert.pem\n");
  ASSERT_TRUE(eventually([&] { return log().find("TLS handshake failed") != std::string::npos; })) << log();
  EXPECT_NE(log().find("certificate verify failed"), std::string::npos) << log();
  EXPECT_TRUE(central.upgrades().empty()) << "the token was sent to a central of another name";
  std::filesystem::remove_all(certs);
}

TEST_F(PullWssFakeCentralTest, ThroughAnHttpProxy) {
  FakeCentral central(kToken);
  ConnectProxy proxy;
  start_poller(central.port(), "      proxy: http://user:pw@127.0.0.1:" + std::to_string(proxy.port()) + "\n");
  ASSERT_TRUE(eventually([&] { return central.has("[REGISTERNODES]"); })) << log();
  std::string head = proxy.head();
  EXPECT_EQ(head.rfind("CONNECT 127.0.0.1:" + std::to_string(central.port()) + " HTTP/1.1\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("Proxy-Authorization: Basic dXNlcjpwdw==\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("Bearer"), std::string::npos) << "the central's token went to the proxy";
  EXPECT_EQ(log().find("user:pw"), std::string::npos);
  central.send("[PING] [proxied] [] {}");
  ASSERT_TRUE(eventually([&] { return central.has("[PONG] [proxied]"); })) << log();
}

// An answer larger than max_message_size is not sent: a log line names its token, and the
// connection goes on.
TEST_F(PullWssFakeCentralTest, NothingLargerThanMaxMessageSizeIsSent) {
  FakeCentral central(kToken);
  start_poller(central.port(), "      max_message_size: 1024\n");
  ASSERT_TRUE(eventually([&] { return central.has("[REGISTERNODES]"); })) << log();
  // A short command with a long output: the central's messages stay under the limit.
  central.send("[COMMAND] [big-cmd] [] {\"content\":[{\"command\":\"printf '%02000d' 0\"}]}");
  ASSERT_TRUE(eventually([&] {
    central.send("[GETLOG] [big-getlog] [] {\"ctime\":0}");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    return log().find("SETLOGS token big-getlog not sent to central") != std::string::npos;
  })) << log();
  EXPECT_NE(log().find("bytes exceed max_message_size (1024)"), std::string::npos) << log();
  for (const auto& m : central.received()) EXPECT_LE(m.size(), 1024u);
  central.send("[PING] [after-big] [] {}");
  ASSERT_TRUE(eventually([&] { return central.has("[PONG] [after-big]"); })) << log();
}

// Two real hosts: a central whose proxy runs the websocket listener (`httpserver:` block) with
// node 6 declared as wss, and the poller with this module.
class PullWssModuleTest : public ::testing::Test {
 protected:
  static constexpr const char* kCentral = "1";

  void TearDown() override {
    if (HasFailure()) std::cerr << fleet_.logs();
    if (!certs_.empty()) std::filesystem::remove_all(certs_);
  }
  // `central_extra`: more httpserver lines (8-space indent); `poller_extra`: more module lines.
  void declare(bool tls, const std::string& poller_token = kToken) {
    ws_port_ = free_port();
    std::string listener = "      httpserver:\n        enable: true\n        token: " + std::string(kToken) +
                           "\n        address: 127.0.0.1\n        port: " + std::to_string(ws_port_) + "\n";
    std::string poller_extra;
    if (tls) {
      certs_ = make_certificate();
      listener += "        ssl: true\n        ssl_cert_file: " + certs_ + "/cert.pem\n        ssl_key_file: " + certs_ + "/key.pem\n";
      poller_extra = "      ssl: true\n      ssl_ca_file: " + certs_ + "/cert.pem\n";
    }
    fleet_.declare({kCentral, false, {}, true, std::string(HostSpec::kProxyDirectives) + listener,
                    "  - id: 6\n    type: wss\n    prevail: 1\n", true});
    HostSpec poller{kPoller};
    poller.extra_modules = "    - name: pullwss\n      package: gorgone::modules::core::pullwss::hooks\n      enable: true\n"
                           "      address: 127.0.0.1\n      port: " + std::to_string(ws_port_) + "\n      token: " + poller_token +
                           "\n      ping: 1\n" + poller_extra;
    fleet_.declare(poller);
  }
  int ping_ok() {
    auto cs = fleet_.constatus(kCentral);
    if (!cs.HasMember("data") || !cs["data"].IsObject() || !cs["data"].HasMember(kPoller)) return 0;
    return cs["data"][kPoller]["ping_ok"].GetInt();
  }
  // A command sent to the poller through the central's REST API, and its output once synced.
  std::string run_on_poller(const std::string& text, std::chrono::seconds limit = std::chrono::seconds(60)) {
    return echo_on(fleet_, kCentral, kPoller, text, limit);
  }
  std::string log_of(const std::string& id) { return read_file(fleet_.log_path(id)); }

  Fleet fleet_;
  int ws_port_ = 0;
  std::string certs_;
};

TEST_F(PullWssModuleTest, RegistersIsPingedAndRunsCommandsSentThroughTheCentral) {
  declare(false);
  fleet_.start(kCentral);
  fleet_.start(kPoller);
  ASSERT_TRUE(eventually([&] { return ping_ok() >= 1; }, std::chrono::seconds(60)));
  auto cs = fleet_.constatus(kCentral);
  EXPECT_STREQ(cs["data"][kPoller]["type"].GetString(), "wss");
  // Quotes, brackets and ampersands travel entity-encoded, UTF-8 as it is, and come back intact.
  EXPECT_EQ(run_on_poller("'wss <ok> & \"fine\" d\u00e9j\u00e0'"), "wss <ok> & \"fine\" d\u00e9j\u00e0");
  EXPECT_NE(log_of(kCentral).find("[proxy] wss listener: node '6' connected from"), std::string::npos);
  EXPECT_EQ(log_of(kPoller).find(kToken), std::string::npos) << "the token is in the poller's log";
  EXPECT_EQ(log_of(kCentral).find(kToken), std::string::npos) << "the token is in the central's log";
}

TEST_F(PullWssModuleTest, OverTlsWithTheCentralsCertificateTrusted) {
  declare(true);
  fleet_.start(kCentral);
  fleet_.start(kPoller);
  ASSERT_TRUE(eventually([&] { return ping_ok() >= 1; }, std::chrono::seconds(60)));
  EXPECT_NE(log_of(kPoller).find("[pullwss] connected to central wss://127.0.0.1:" + std::to_string(ws_port_) + "/"),
            std::string::npos);
  EXPECT_EQ(run_on_poller("over-tls"), "over-tls");
}

TEST_F(PullWssModuleTest, AWrongTokenIsRefusedOnBothSides) {
  declare(false, "not-the-token");
  fleet_.start(kCentral);
  fleet_.start(kPoller);
  ASSERT_TRUE(eventually([&] {
    return log_of(kPoller).find("refused this poller: token authorization unallowed") != std::string::npos &&
           log_of(kPoller).find("retrying in 2 s") != std::string::npos;
  }));
  EXPECT_NE(log_of(kCentral).find("wrong or missing bearer token"), std::string::npos);
  EXPECT_EQ(ping_ok(), 0);
  EXPECT_EQ(log_of(kPoller).find("not-the-token"), std::string::npos);
  EXPECT_EQ(log_of(kCentral).find("not-the-token"), std::string::npos);
}

TEST_F(PullWssModuleTest, ComesBackAfterARestart) {
  declare(false);
  fleet_.start(kCentral);
  fleet_.start(kPoller);
  ASSERT_TRUE(eventually([&] { return ping_ok() >= 1; }, std::chrono::seconds(60)));
  ASSERT_EQ(run_on_poller("before"), "before");
  fleet_.stop(kPoller);
  // The clean stop unregistered and closed: the central saw the node go.
  ASSERT_TRUE(eventually([&] { return log_of(kCentral).find("node '6' disconnected") != std::string::npos; }));
  fleet_.start(kPoller);
  ASSERT_TRUE(eventually([&] {
    std::string log = log_of(kCentral);
    std::size_t first = log.find("node '6' connected from");
    return first != std::string::npos && log.find("node '6' connected from", first + 1) != std::string::npos;
  }, std::chrono::seconds(60)));
  EXPECT_EQ(run_on_poller("after"), "after");
}

// REMOTECOPY of a directory through the central reaches the poller's action module as
// PROCESSCOPY over this connection, and the files land byte for byte.
TEST_F(PullWssModuleTest, RemoteCopyOfADirectoryLandsByteForByte) {
  declare(false);
  fleet_.start(kCentral);
  fleet_.start(kPoller);
  ASSERT_TRUE(eventually([&] { return ping_ok() >= 1; }, std::chrono::seconds(60))) << fleet_.logs();
  EXPECT_EQ(remote_copy_lands(fleet_, kCentral, kPoller), "") << fleet_.logs();
}

}  // namespace
}  // namespace gorgone::testing
