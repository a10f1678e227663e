// The proxy's WebSocket listener for wss/pullwss pollers, against a poller played by the test
// (tests/support/ws_client.hpp) speaking what Gorgone's Perl pullwss poller speaks
// (tests/vectors/wss_transcript.json): token, first REGISTERNODES, HTML-entity encoded answers.
#include <gtest/gtest.h>

#include <memory>

#include "fleet.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "gorgone/protocol/frame.hpp"
#include "html_entities.hpp"
#include "ws_client.hpp"

namespace gorgone::testing {
namespace {

// What Perl's HTML::Entities does to the poller's messages (byte by byte).
std::string entities(const std::string& text) { return proxy::encode_html_entities(text); }

class Wss : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) std::cerr << fleet_.logs();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  // The central, its listener on a free port; `extra`: more httpserver lines (8-space indent).
  void start_central(const std::string& extra = "", const std::string& nodes = "") {
    port_ = free_port();
    fleet_.declare({"1", false, {}, true,
                    std::string(HostSpec::kProxyDirectives) + "      httpserver:\n        enable: true\n        token: " +
                        kToken + "\n        address: 127.0.0.1\n        port: " + std::to_string(port_) + "\n" + extra,
                    nodes, true});
    fleet_.start("1");
  }
  std::unique_ptr<WsClient> poller(const std::string& id, const std::string& token = kToken, bool tls = false) {
    auto c = std::make_unique<WsClient>(port_, tls);
    EXPECT_TRUE(c->connect(token)) << "cannot connect to the listener";
    if (!id.empty()) {
      EXPECT_TRUE(c->send("[REGISTERNODES] [] [] {\"nodes\":[{\"type\":\"wss\",\"identity\":\"" + id + "\",\"id\":\"" + id + "\"}]}"));
    }
    return c;
  }
  bool central_logged(const std::string& text) { return read_file(fleet_.log_path("1")).find(text) != std::string::npos; }
  // The central's registry knows the node (a frame routed before gets Gorgone's KO).
  bool registered(const std::string& id) {
    return eventually([&] { return central_logged("Node '" + id + "' is registered"); });
  }
  // Answers one PING with a PONG, entity-encoded as the Perl poller sends it.
  bool answer_ping(WsClient& c, const std::string& id) {
    auto ping = c.next_starting("[PING]");
    if (!ping) return false;
    auto f = protocol::parse_frame(*ping);
    return f && c.send("[PONG] [" + f->token + "] [] " +
                       entities(R"({"data":{"action":"ping","data":{},"message":"ping ok","id":")" + id +
                                R"(","hostname":"poller-)" + id + R"("},"code":0})"));
  }
  int ping_ok(const std::string& id) {
    auto cs = fleet_.constatus("1");
    if (!cs.HasMember("data") || !cs["data"].HasMember(id.c_str())) return 0;
    return cs["data"][id.c_str()]["ping_ok"].GetInt();
  }

  static constexpr const char* kToken = "s3cret-t0ken";
  Fleet fleet_;
  int port_ = 0;
  std::string dir_;
};

// A poller connects with the token, registers, is pinged (its entity-encoded PONG counts) and
// receives the commands sent to it.
TEST_F(Wss, APollerRegistersIsPingedAndReceivesItsCommands) {
  start_central();
  auto c = poller("6");
  ASSERT_TRUE(eventually([&] {
    answer_ping(*c, "6");
    return ping_ok("6") >= 1;
  })) << fleet_.get("1", "/api/internal/constatus").second;
  EXPECT_STREQ(fleet_.constatus("1")["data"]["6"]["type"].GetString(), "wss");
  std::string token = fleet_.command("1", "6", "echo over-ws");
  auto command = c->next_starting("[COMMAND]");
  ASSERT_TRUE(command);
  auto f = protocol::parse_frame(*command);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->token, token);
  EXPECT_EQ(f->target, "") << "Gorgone's wss frames name no target for the node itself";
  EXPECT_NE(f->data.find("echo over-ws"), std::string::npos);
}

// The poller's SETLOGS answer to the central's GETLOG, entity-encoded, lands in the central's
// history under the poller's id.
TEST_F(Wss, ItsEntityEncodedSetlogsAreStored) {
  start_central();
  auto c = poller("6");
  auto getlog = c->next_starting("[GETLOG]");
  ASSERT_TRUE(getlog) << fleet_.logs();
  auto f = protocol::parse_frame(*getlog);
  ASSERT_TRUE(f);
  std::string rows = R"({"code":0,"data":{"id":"6","action":"getlog","result":[{"code":2,"id":"1","ctime":1795634692.5,"instant":0,"etime":1795634692,"data":"{\"message\":\"caf)"
                     "\xC3\xA9"
                     R"( <ok> & done\"}","token":"wss-row-token"}]}})";
  ASSERT_TRUE(c->send("[SETLOGS] [" + f->token + "] [] " + entities(rows)));
  std::vector<std::pair<int, std::string>> got;
  ASSERT_TRUE(eventually([&] { return !(got = fleet_.rows("1", "wss-row-token")).empty(); })) << fleet_.logs();
  EXPECT_EQ(got[0].first, 2);
  EXPECT_EQ(got[0].second, "{\"message\":\"caf\xC3\xA9 <ok> & done\"}");
}

// A wrong token: Gorgone's refusal message, the connection closed, a log line; the
// listener still serves the others.
TEST_F(Wss, AWrongTokenIsRefused) {
  start_central();
  WsClient bad(port_);
  ASSERT_TRUE(bad.connect("not-the-token"));
  auto m = bad.next();
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, R"({"code":500,"message":"token authorization unallowed"})");
  EXPECT_TRUE(bad.wait_closed());
  EXPECT_TRUE(eventually([&] { return central_logged("wrong or missing bearer token"); }));
  EXPECT_EQ(read_file(fleet_.log_path("1")).find("not-the-token"), std::string::npos) << "a token was logged";
  auto good = poller("6");
  EXPECT_TRUE(eventually([&] {
    answer_ping(*good, "6");
    return ping_ok("6") >= 1;
  }));
}

// A second connection claiming a node id another live connection speaks for is refused (both
// named in the log); the first keeps working.
TEST_F(Wss, ASecondConnectionClaimingARegisteredIdIsRefused) {
  start_central();
  auto first = poller("6");
  ASSERT_TRUE(eventually([&] { return central_logged("node '6' connected from"); }));
  auto second = poller("6");
  auto m = second->next_starting("{\"code\":500");
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, R"({"code":500,"message":"node '6' is already connected"})");
  EXPECT_TRUE(second->wait_closed());
  EXPECT_TRUE(central_logged("registered node '6', which 127.0.0.1:")) << fleet_.logs();
  std::string token = fleet_.command("1", "6", "echo first-still");
  auto command = first->next_starting("[COMMAND]");
  ASSERT_TRUE(command);
  EXPECT_NE(command->find(token), std::string::npos);
}

// A message beyond max_message_size closes that connection only.
TEST_F(Wss, AnOversizedMessageClosesThatConnectionOnly) {
  start_central("        max_message_size: 4096\n");
  auto big = poller("6");
  ASSERT_TRUE(eventually([&] { return central_logged("node '6' connected from"); }));
  big->send("[SYNCLOGS] [] [] {\"pad\":\"" + std::string(10000, 'x') + "\"}");
  EXPECT_TRUE(big->wait_closed());
  EXPECT_TRUE(eventually([&] { return central_logged("a message larger than max_message_size (4096 bytes)"); }));
  auto other = poller("7");
  EXPECT_TRUE(eventually([&] {
    answer_ping(*other, "7");
    return ping_ok("7") >= 1;
  })) << fleet_.logs();
}

// Frames for a poller whose connection went away are held and delivered, in order, once it
// connects again; nothing gets a KO meanwhile.
TEST_F(Wss, FramesHeldWhileItIsAwayAreDeliveredWhenItReturns) {
  start_central();
  auto c = poller("6");
  ASSERT_TRUE(registered("6"));
  std::string before = fleet_.command("1", "6", "echo before");
  ASSERT_TRUE(c->next_starting("[COMMAND] [" + before + "]"));
  c.reset();  // the poller goes away
  ASSERT_TRUE(eventually([&] { return central_logged("node '6' disconnected"); }));
  std::vector<std::string> held;
  for (int i = 0; i < 3; ++i) held.push_back(fleet_.command("1", "6", "echo held-" + std::to_string(i)));
  ASSERT_TRUE(eventually([&] { return central_logged("node '6': not connected to the wss listener"); })) << fleet_.logs();
  for (const auto& t : held) EXPECT_TRUE(fleet_.rows("1", t).empty()) << t;
  auto again = poller("6");
  for (const auto& t : held) {
    auto m = again->next_starting("[COMMAND]");
    ASSERT_TRUE(m) << "held frame " << t << " not delivered";
    EXPECT_NE(m->find("[" + t + "]"), std::string::npos) << *m;
  }
}

// The listener over TLS, with the configured certificate and key (a passphrase-protected key).
TEST_F(Wss, OverTls) {
  dir_ = make_temp_dir("gorgone-wss-tls");
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -days 2 -subj /CN=127.0.0.1 -passout pass:kpass -keyout " +
                    dir_ + "/key.pem -out " + dir_ + "/cert.pem >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  start_central("        ssl: true\n        ssl_cert_file: " + dir_ + "/cert.pem\n        ssl_key_file: " + dir_ +
                "/key.pem\n        passphrase: kpass\n");
  ASSERT_TRUE(eventually([&] { return central_logged("wss listener on https://127.0.0.1:"); })) << fleet_.logs();
  auto c = poller("6", kToken, true);
  EXPECT_TRUE(eventually([&] {
    answer_ping(*c, "6");
    return ping_ok("6") >= 1;
  })) << fleet_.logs();
  WsClient plain(port_);
  EXPECT_FALSE(plain.connect(kToken)) << "a plain connection to the TLS listener was upgraded";
}

// REMOTECOPY to a wss poller: the PROCESSCOPY series arrives on its websocket, and the chunks
// put together are the file.
TEST_F(Wss, RemoteCopyReachesItAsAProcessCopySeries) {
  start_central();
  auto c = poller("6");
  ASSERT_TRUE(registered("6"));
  dir_ = make_temp_dir("gorgone-wsscopy");
  std::string content;
  for (int i = 0; i < 400000; ++i) content += static_cast<char>('A' + (i * 13) % 26);
  write_file(dir_ + "/file.cfg", content);
  auto [status, body] = fleet_.post("1", "/api/nodes/6/core/proxy/remotecopy",
                                    R"({"source":")" + dir_ + R"(/file.cfg","destination":"/etc/x/file.cfg","cache_dir":")" +
                                        dir_ + R"("})");
  ASSERT_EQ(status, 200) << body;
  std::string received;
  for (;;) {
    auto m = c->next_starting("[PROCESSCOPY]");
    ASSERT_TRUE(m) << fleet_.logs();
    auto f = protocol::parse_frame(*m);
    ASSERT_TRUE(f);
    json::Document d;
    ASSERT_TRUE(json::parse(d, f->data));
    std::string status_text = d["content"]["status"].GetString();
    if (status_text == "inprogress") {
      received += protocol::base64_decode_lenient(d["content"]["chunk"]["data"].GetString());
      continue;
    }
    ASSERT_EQ(status_text, "end");
    break;
  }
  EXPECT_EQ(received, content);
}

}  // namespace
}  // namespace gorgone::testing
