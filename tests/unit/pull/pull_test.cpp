// The pull module without a network: its directives (strict, errors naming the directive),
// its key pair, the frames it sends, what it lets through in each direction (Gorgone's
// transmit_back), and its reconnection and keep-alive rules on a given clock.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <regex>
#include <set>

#include "settings.hpp"
#include "wire.hpp"

namespace gorgone::pull {
namespace {
namespace fs = std::filesystem;

CoreInfo core() {
  CoreInfo c;
  c.id = "3";
  c.privkey_path = "/etc/gorgone/rsakey.priv.pem";
  c.pubkey_path = "/etc/gorgone/rsakey.pub.pem";
  return c;
}

Result<Settings> parse(const std::string& yaml) { return parse_settings(YAML::Load(yaml), core()); }

std::string error_of(const std::string& yaml) {
  auto s = parse(yaml);
  return s ? std::string("(accepted)") : s.error();
}

TEST(PullSettings, DefaultsAreGorgonesAndTheKeysAreTheCores) {
  auto s = parse("name: pull\npackage: gorgone::modules::core::pull::hooks\nenable: true\ntarget_path: 10.0.0.1:5556\n");
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->target_type, "tcp");
  EXPECT_EQ(s->endpoint(), "tcp://10.0.0.1:5556");
  EXPECT_EQ(s->ping, 0);  // no keep-alive unless asked, as Perl (ping unset)
  EXPECT_EQ(s->ping_timeout, 30);
  EXPECT_EQ(s->client_privkey, "/etc/gorgone/rsakey.priv.pem");
  EXPECT_EQ(s->client_pubkey, "/etc/gorgone/rsakey.pub.pem");
  EXPECT_EQ(s->server_pubkey, "");
  EXPECT_TRUE(s->warnings.empty());
}

TEST(PullSettings, EveryDirective) {
  auto s = parse(
      "target_type: tcp\ntarget_path: central.example:5556\nping: 1\nping_timeout: 45\n"
      "client_pubkey: /k/pub.pem\nclient_privkey: /k/priv.pem\nserver_pubkey: /k/central.pem\n"
      "cipher: Cipher::AES\nvector: 0123456789012345\n");
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->endpoint(), "tcp://central.example:5556");
  EXPECT_EQ(s->ping, 1);
  EXPECT_EQ(s->ping_timeout, 45);
  EXPECT_EQ(s->client_pubkey, "/k/pub.pem");
  EXPECT_EQ(s->client_privkey, "/k/priv.pem");
  EXPECT_EQ(s->server_pubkey, "/k/central.pem");
  EXPECT_TRUE(s->warnings.empty());  // cipher and vector are Gorgone's (unused) directives
}

TEST(PullSettings, EmptyKeyPathsMeanTheCoresAsInGorgone) {
  auto s = parse("target_path: 10.0.0.1:5556\nclient_pubkey: ''\nclient_privkey: ''\n");
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->client_privkey, "/etc/gorgone/rsakey.priv.pem");
  EXPECT_EQ(s->client_pubkey, "/etc/gorgone/rsakey.pub.pem");
}

TEST(PullSettings, IpcTargets) {
  auto s = parse("target_type: ipc\ntarget_path: /run/gorgone/central.ipc\n");
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->endpoint(), "ipc:///run/gorgone/central.ipc");
}

TEST(PullSettings, UnknownDirectivesAreReportedNotFatal) {
  auto s = parse("target_path: 10.0.0.1:5556\npingg: 1\n");
  ASSERT_TRUE(s) << s.error();
  ASSERT_EQ(s->warnings.size(), 1u);
  EXPECT_EQ(s->warnings[0], "unknown directive 'pingg' ignored");
}

TEST(PullSettings, ErrorsNameTheDirectiveAndTheValue) {
  EXPECT_EQ(error_of("enable: true\n"),
            "pull: directive 'target_path' is required (the central's external router, <host>:<port>)");
  EXPECT_EQ(error_of("- a\n- b\n"), "pull: the module configuration must be a map");
  EXPECT_EQ(error_of("target_type: udp\ntarget_path: 10.0.0.1:5556\n"),
            "pull: directive 'target_type' must be tcp or ipc, got 'udp'");
  for (const char* bad : {"10.0.0.1", "10.0.0.1:", ":5556", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:port",
                          "*:5556", "10.0.0.1:123456"})
    EXPECT_EQ(error_of(std::string("target_path: '") + bad + "'\n"),
              std::string("pull: directive 'target_path' must be <host>:<port> with a port 1-65535, got '") + bad + "'")
        << bad;
  EXPECT_EQ(error_of("target_path: '10.0.0.1 :5556'\n"),
            "pull: directive 'target_path' must not contain spaces, got '10.0.0.1 :5556'");
  EXPECT_EQ(error_of("target_path: [a, b]\n"), "pull: directive 'target_path' must be a string");
  EXPECT_EQ(error_of("target_path: 10.0.0.1:5556\nping: soon\n"),
            "pull: directive 'ping' must be an integer between 0 and 86400, got 'soon'");
  EXPECT_EQ(error_of("target_path: 10.0.0.1:5556\nping: -1\n"),
            "pull: directive 'ping' must be an integer between 0 and 86400, got '-1'");
  EXPECT_EQ(error_of("target_path: 10.0.0.1:5556\nping: 86401\n"),
            "pull: directive 'ping' must be an integer between 0 and 86400, got '86401'");
  EXPECT_EQ(error_of("target_path: 10.0.0.1:5556\nping_timeout: 0\n"),
            "pull: directive 'ping_timeout' must be an integer between 1 and 86400, got '0'");
  EXPECT_EQ(error_of("target_path: 10.0.0.1:5556\nping_timeout: {a: 1}\n"),
            "pull: directive 'ping_timeout' must be an integer between 1 and 86400, got '<not a scalar>'");
  EXPECT_EQ(error_of("target_path: 10.0.0.1:5556\nclient_privkey: [x]\n"),
            "pull: directive 'client_privkey' must be a string");
  EXPECT_EQ(error_of("target_path: 10.0.0.1:5556\nserver_pubkey: {a: b}\n"),
            "pull: directive 'server_pubkey' must be a string");
  EXPECT_EQ(error_of("target_path: 10.0.0.1:5556\ncipher: [x]\n"), "pull: directive 'cipher' must be a string");
}

TEST(PullSettings, NoKeyAtAll) {
  CoreInfo none;
  auto s = parse_settings(YAML::Load("target_path: 10.0.0.1:5556\n"), none);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), "pull: directive 'client_privkey' is empty and the core has no privkey");
}

class PullKeys : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = (fs::temp_directory_path() / "gorgone-pull-keys-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = new std::string(tmpl);
    ASSERT_TRUE(protocol::generate_key_files(*dir_ + "/a.pem", *dir_ + "/a.pub.pem"));
    ASSERT_TRUE(protocol::generate_key_files(*dir_ + "/b.pem", *dir_ + "/b.pub.pem"));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    dir_ = nullptr;
  }
  Settings settings(const std::string& priv, const std::string& pub, const std::string& server = "") const {
    Settings s;
    s.target_path = "127.0.0.1:5556";
    s.client_privkey = *dir_ + "/" + priv;
    s.client_pubkey = *dir_ + "/" + pub;
    if (!server.empty()) s.server_pubkey = *dir_ + "/" + server;
    return s;
  }
  static std::string* dir_;
};
std::string* PullKeys::dir_ = nullptr;

TEST_F(PullKeys, AMatchingPairLoads) {
  auto key = load_client_key(settings("a.pem", "a.pub.pem", "b.pub.pem"));
  ASSERT_TRUE(key) << key.error();
  EXPECT_TRUE(key->has_private());
  EXPECT_EQ(key->jwk_thumbprint(), protocol::RsaKey::load_public_file(*dir_ + "/a.pub.pem")->jwk_thumbprint());
}

TEST_F(PullKeys, APublicKeyOfAnotherPairIsRefused) {
  auto key = load_client_key(settings("a.pem", "b.pub.pem"));
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error(), "pull: directive 'client_pubkey' ('" + *dir_ + "/b.pub.pem') is not the public key of client_privkey ('" +
                             *dir_ + "/a.pem')");
}

TEST_F(PullKeys, UnreadableFilesNameTheirDirective) {
  auto missing = load_client_key(settings("none.pem", "a.pub.pem"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().rfind("pull: directive 'client_privkey': ", 0), 0u) << missing.error();
  EXPECT_NE(missing.error().find("none.pem"), std::string::npos) << missing.error();
  // A public key where a private one is expected, and the reverse.
  auto swapped = load_client_key(settings("a.pub.pem", "a.pub.pem"));
  ASSERT_FALSE(swapped);
  EXPECT_EQ(swapped.error().rfind("pull: directive 'client_privkey': ", 0), 0u) << swapped.error();
  auto pub = load_client_key(settings("a.pem", "a.pem"));
  ASSERT_FALSE(pub);
  EXPECT_EQ(pub.error().rfind("pull: directive 'client_pubkey': ", 0), 0u) << pub.error();
  auto server = load_client_key(settings("a.pem", "a.pub.pem", "missing.pub.pem"));
  ASSERT_FALSE(server);
  EXPECT_EQ(server.error().rfind("pull: directive 'server_pubkey': ", 0), 0u) << server.error();
}

TEST(PullWire, RoutingIdsAreGorgonesAndNewEachTime) {
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    std::string id = draw_routing_id("3");
    EXPECT_TRUE(std::regex_match(id, std::regex("^gorgone-3-[0-9a-f]{24}$"))) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 20u);
}

TEST(PullWire, RegistrationFrames) {
  EXPECT_EQ(register_frame("3", "gorgone-3-0123456789abcdef01234567"),
            R"([REGISTERNODES] [] [] {"nodes":[{"id":"3","type":"pull","identity":"gorgone-3-0123456789abcdef01234567"}]})");
  EXPECT_EQ(unregister_frame("3"), R"([UNREGISTERNODES] [] [] {"nodes":[{"id":"3"}]})");
  // An id is configuration text: it is escaped, never pasted.
  EXPECT_EQ(unregister_frame("a\"b"), R"([UNREGISTERNODES] [] [] {"nodes":[{"id":"a\"b"}]})");
}

TEST(PullWire, TheCentralsAcksStayHere) {
  EXPECT_FALSE(for_core(R"([ACK] [t] {"code":0,"data":null})"));
  EXPECT_TRUE(for_core(R"([PING] [t] [3] {})"));
  EXPECT_TRUE(for_core(R"([COMMAND] [t] [3] {"content":[{"command":"echo"}]})"));
  EXPECT_TRUE(for_core(R"([GETLOG] [t] [3] {"ctime":0})"));
}

TEST(PullWire, AGetlogAnswerBecomesSetlogsWithItsJsonUnchanged) {
  std::string json = R"({"code":0,"data":{"action":"getlog","result":[{"id":"1","token":"t","code":2,"etime":1,"ctime":1.5,"instant":0,"data":"{}"}],"id":"3"}})";
  auto out = to_central("[ACK] [tok] " + json);
  ASSERT_TRUE(out);
  EXPECT_EQ(*out, "[SETLOGS] [tok] [] " + json);
  // An empty page too: the central's sync must be answered.
  auto empty = to_central(R"([ACK] [tok] {"code":0,"data":{"action":"getlog","result":[],"id":"3"}})");
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, R"([SETLOGS] [tok] [] {"code":0,"data":{"action":"getlog","result":[],"id":"3"}})");
}

TEST(PullWire, OnlyPongSynclogsAndGetlogAnswersGoToTheCentral) {
  std::string pong = R"([PONG] [tok] [] {"code":0,"data":{"action":"ping","message":"ping ok","id":"3"}})";
  EXPECT_EQ(to_central(pong), pong);
  std::string synclogs = R"([SYNCLOGS] [] [] {})";
  EXPECT_EQ(to_central(synclogs), synclogs);
  // The core's ACKs of what the central sent, and its other answers, stay here.
  EXPECT_FALSE(to_central(R"([ACK] [tok] {"code":0,"data":null})"));
  EXPECT_FALSE(to_central(R"([ACK] [tok] {"code":1,"data":{"message":"action 'X' is unknown"}})"));
  EXPECT_FALSE(to_central(R"([ACK] [tok] {"code":0,"data":{"action":"synclog","message":"synclog launched"}})"));
  EXPECT_FALSE(to_central(R"([ACK] [tok] {"code":0,"data":{"action":["getlog"]}})"));
  EXPECT_FALSE(to_central(R"([ACK] [tok] {"code":0,"data":"getlog"})"));
  EXPECT_FALSE(to_central(R"([CONSTATUS] [tok] {"code":2,"data":{}})"));
  EXPECT_FALSE(to_central(R"([INFORMATION] [tok] {"code":2,"data":{}})"));
  EXPECT_FALSE(to_central("not a frame"));
  // Gorgone sends an ACK whose JSON it cannot read as it is (the central logs it).
  EXPECT_EQ(to_central("[ACK] [tok] {broken"), std::string("[ACK] [tok] {broken"));
}

TEST(PullBackoff, DoublesFromOneToThirtyAndStartsAgainAfterASuccess) {
  Backoff b;
  std::vector<std::int64_t> delays;
  for (int i = 0; i < 8; ++i) delays.push_back(b.next());
  EXPECT_EQ(delays, (std::vector<std::int64_t>{1, 2, 4, 8, 16, 30, 30, 30}));
  b.reset();
  EXPECT_EQ(b.next(), 1);
}

TEST(PullKeepAlive, NoneWithoutPing) {
  KeepAlive k(0, 30);
  k.connected(0);
  for (std::int64_t t : {0, 61, 1000, 100000}) EXPECT_EQ(k.due(t), KeepAlive::Action::kNone) << t;
}

TEST(PullKeepAlive, AtMostEveryMinuteWhenNothingCameForPingSeconds) {
  KeepAlive k(1, 30);
  k.connected(100);  // its REGISTERNODES counts as the first keep-alive
  EXPECT_EQ(k.due(130), KeepAlive::Action::kNone);
  EXPECT_EQ(k.due(159), KeepAlive::Action::kNone);
  EXPECT_EQ(k.due(160), KeepAlive::Action::kSend);
  EXPECT_TRUE(k.waiting());
  EXPECT_EQ(k.due(161), KeepAlive::Action::kNone);  // one at a time
  k.received(162);                                    // the central's ACK
  EXPECT_FALSE(k.waiting());
  EXPECT_EQ(k.due(200), KeepAlive::Action::kNone);  // less than 60 s since the last one
  EXPECT_EQ(k.due(220), KeepAlive::Action::kSend);
}

TEST(PullKeepAlive, TrafficWithinPingSecondsNeedsNoKeepAlive) {
  KeepAlive k(100, 30);
  k.connected(0);
  k.received(50);
  EXPECT_EQ(k.due(120), KeepAlive::Action::kNone);  // 70 s of silence <= ping
  EXPECT_EQ(k.due(151), KeepAlive::Action::kSend);
}

TEST(PullKeepAlive, SilenceAfterAKeepAliveDropsTheConnection) {
  KeepAlive k(1, 30);
  k.connected(0);
  ASSERT_EQ(k.due(60), KeepAlive::Action::kSend);
  EXPECT_EQ(k.due(90), KeepAlive::Action::kNone);  // ping_timeout not passed yet
  EXPECT_EQ(k.due(91), KeepAlive::Action::kReconnect);
  EXPECT_FALSE(k.waiting());
  // A new connection starts the clock again.
  k.connected(92);
  EXPECT_EQ(k.due(100), KeepAlive::Action::kNone);
}

}  // namespace
}  // namespace gorgone::pull
