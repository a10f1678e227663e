// Registry and pathway: Gorgone's registration semantics and route choice.
#include <gtest/gtest.h>

#include "registry.hpp"
#include "settings.hpp"

namespace gorgone::proxy {
namespace {

json::Document parse(const std::string& text) {
  json::Document d;
  EXPECT_TRUE(json::parse(d, text)) << text;
  return d;
}

struct RegistryTest : ::testing::Test {
  Registry reg;
  std::vector<std::string> log;
  std::vector<Effect> add(const std::string& nodes_json, std::int64_t now = 1000) {
    auto d = parse(nodes_json);
    return reg.register_nodes(d, now, 60, log);
  }
  std::vector<Effect> remove(const std::string& nodes_json) {
    auto d = parse(nodes_json);
    return reg.unregister_nodes(d, log);
  }
};

TEST_F(RegistryTest, RegistersPushNodeAndAsksAWorkerToAddIt) {
  auto effects = add(R"([{"id":"4","type":"push_zmq","address":"127.0.0.1","port":"25571","nodes":[{"id":"2","pathscore":"1"}]}])");
  ASSERT_EQ(effects.size(), 1u);
  EXPECT_EQ(effects[0].kind, Effect::Kind::kAddNode);
  EXPECT_EQ(effects[0].id, "4");
  ASSERT_TRUE(reg.status().count("4"));
  EXPECT_GE(reg.status()["4"].next_ping, 1000);
  EXPECT_LT(reg.status()["4"].next_ping, 1060);
}

TEST_F(RegistryTest, PathwayPrefersTheNodeThenStaticParentsByPathscore) {
  add(R"([{"id":"4","type":"push_zmq","nodes":[{"id":"2","pathscore":"5"}]},
          {"id":"5","type":"push_zmq","nodes":[{"id":"2","pathscore":"1"}]}])");
  auto p = reg.pathway("COMMAND", std::string("2"), 1000, 300);
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.parent, "5");
  EXPECT_EQ(p.target_complete(), "5~~2");
  add(R"([{"id":"2","type":"push_zmq"}])");
  EXPECT_EQ(reg.pathway("COMMAND", std::string("2"), 1000, 300).parent, "2");
}

TEST_F(RegistryTest, StaleParentsAreSkippedButTheFirstIsUsedWhenAllAreStale) {
  add(R"([{"id":"4","type":"push_zmq","nodes":[{"id":"2","pathscore":"1"}]},
          {"id":"5","type":"push_zmq","nodes":[{"id":"2","pathscore":"2"}]}])");
  reg.last_pong()["4"] = 100;   // stale at now=1000 with discard 300
  reg.last_pong()["5"] = 990;   // fresh
  EXPECT_EQ(reg.pathway("COMMAND", std::string("2"), 1000, 300).parent, "5");
  reg.last_pong()["5"] = 200;
  auto p = reg.pathway("COMMAND", std::string("2"), 1000, 300);
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.parent, "4");
}

TEST_F(RegistryTest, GorgoneErrorTexts) {
  EXPECT_EQ(reg.pathway("COMMAND", std::nullopt, 0, 300).error, "proxy - need a valid node id");
  EXPECT_EQ(reg.pathway("COMMAND", std::string("99"), 0, 300).error, "proxy - unknown target 99");
  add(R"([{"id":"3","type":"pull","prevail":"1"}])");
  EXPECT_EQ(reg.pathway("COMMAND", std::string("3"), 0, 300).error, "proxy - no pathway for target 3");
}

TEST_F(RegistryTest, ControlActionsToTheNodeItselfUseTheControlChannel) {
  add(R"([{"id":"4","type":"push_zmq"}])");
  EXPECT_TRUE(reg.pathway("PING", std::string("4"), 0, 300).control);
  EXPECT_FALSE(reg.pathway("COMMAND", std::string("4"), 0, 300).control);
}

TEST_F(RegistryTest, PrevailKeepsTheFirstDefinitionAndLearnsThePullIdentity) {
  add(R"([{"id":"3","type":"pull","prevail":"1"}])");
  add(R"([{"id":"3","type":"pull","identity":"gorgone-3-abc"}])");
  ASSERT_NE(reg.node("3"), nullptr);
  EXPECT_EQ(reg.node("3")->identity, "gorgone-3-abc");
  EXPECT_TRUE(reg.node("3")->prevail);
  EXPECT_NE(std::find(log.begin(), log.end(), "cannot override node '3' registration: prevails!!!"), log.end());
}

TEST_F(RegistryTest, SubnodesOfAPrevailingNodeCannotBeNodes) {
  add(R"([{"id":"4","type":"push_zmq","prevail":"1","nodes":[{"id":"2"}]}])");
  add(R"([{"id":"2","type":"push_zmq"}])");
  EXPECT_EQ(reg.node("2"), nullptr);
  EXPECT_EQ(reg.pathway("COMMAND", std::string("2"), 0, 300).parent, "4");
}

TEST_F(RegistryTest, UnregisterRemovesTheNodeAndItsSubnodeRoutes) {
  add(R"([{"id":"4","type":"push_zmq","nodes":[{"id":"2"}]}])");
  auto effects = remove(R"([{"id":"4"}])");
  ASSERT_EQ(effects.size(), 1u);
  EXPECT_EQ(effects[0].kind, Effect::Kind::kDelNode);
  EXPECT_EQ(reg.node("4"), nullptr);
  EXPECT_FALSE(reg.known("2"));
  EXPECT_FALSE(reg.status().count("4"));
}

TEST_F(RegistryTest, PongCountsAndLearnsDynamicSubnodesRecursively) {
  add(R"([{"id":"4","type":"push_zmq"}])");
  auto status = parse(R"({"2":{"type":"push_zmq","nodes":{"7":{"type":"push_zmq","nodes":{}}}}})");
  ASSERT_TRUE(reg.pong("4", &status, 1010));
  EXPECT_EQ(reg.status()["4"].ping_ok, 1);
  EXPECT_EQ(reg.status()["4"].last_ping_recv, 1010);
  EXPECT_EQ(reg.pathway("COMMAND", std::string("2"), 1010, 300).target_complete(), "4~~2");
  EXPECT_EQ(reg.pathway("COMMAND", std::string("7"), 1010, 300).target_complete(), "4~~7");
  // The constatus carries the node's own tree under "nodes".
  auto cs = parse(reg.constatus_json());
  EXPECT_TRUE(cs["4"]["nodes"]["2"]["nodes"].HasMember("7"));
}

TEST_F(RegistryTest, DynamicDataNamingTheNodeItselfOrCyclesIsHarmless) {
  add(R"([{"id":"4","type":"push_zmq"}])");
  auto status = parse(R"({"4":{"nodes":{"4":{}}},"2":{"nodes":{"2":{"nodes":{"4":{}}}}}})");
  ASSERT_TRUE(reg.pong("4", &status, 1010));
  EXPECT_EQ(reg.pathway("COMMAND", std::string("4"), 1010, 300).parent, "4");
  EXPECT_EQ(reg.pathway("COMMAND", std::string("2"), 1010, 300).parent, "4");
}

TEST_F(RegistryTest, PongResetCountsAFailure) {
  add(R"([{"id":"4","type":"push_zmq"}])");
  reg.status()["4"].in_progress_ping = 1;
  ASSERT_TRUE(reg.pong_reset("4"));
  EXPECT_EQ(reg.status()["4"].ping_failed, 1);
  EXPECT_EQ(reg.status()["4"].in_progress_ping, 0);
  EXPECT_FALSE(reg.pong_reset("nope"));
}

TEST(Settings, DefaultsAreGorgones) {
  auto s = parse_settings(YAML::Node());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->pool, 5);
  EXPECT_EQ(s->synchistory_time, 60);
  EXPECT_EQ(s->synchistory_timeout, 30);
  EXPECT_EQ(s->ping, 60);
  EXPECT_EQ(s->pong_discard_timeout, 300);
  EXPECT_EQ(s->pong_max_timeout, 3);
  EXPECT_EQ(s->buffer_size, 150000);
}

TEST(Settings, BadValuesNameTheDirective) {
  auto s = parse_settings(YAML::Load("{pool: 0}"));
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().find("'pool'"), std::string::npos) << s.error();
  s = parse_settings(YAML::Load("{ping: abc}"));
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().find("'ping'"), std::string::npos);
  EXPECT_NE(s.error().find("abc"), std::string::npos);
  EXPECT_TRUE(parse_settings(YAML::Load("{pool: 2, ping: 5}")));
}

// The proxy's httpserver block (the wss listener), Gorgone's keys.
TEST(Settings, HttpserverBlock) {
  auto s = parse_settings(YAML::Load("{httpserver: {enable: false, port: 8086}}"));
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->wss);
  s = parse_settings(YAML::Load(
      "{httpserver: {enable: true, ssl: true, ssl_cert_file: /c.pem, ssl_key_file: /k.pem, passphrase: p, token: t,"
      " address: 127.0.0.1, port: 8086}}"));
  ASSERT_TRUE(s) << s.error();
  ASSERT_TRUE(s->wss);
  EXPECT_TRUE(s->wss->ssl);
  EXPECT_EQ(s->wss->port, 8086);
  EXPECT_EQ(s->wss->address, "127.0.0.1");
  EXPECT_EQ(s->wss->token, "t");
  EXPECT_EQ(s->wss->max_message_size, 64u << 20);
  s = parse_settings(YAML::Load("{httpserver: {enable: true, port: 8086}}"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), "proxy: httpserver.token is required when httpserver is enabled");
  s = parse_settings(YAML::Load("{httpserver: {enable: true, token: t, port: 99999}}"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), "proxy: httpserver.port must be a port number (0-65535), got '99999'");
  s = parse_settings(YAML::Load("{httpserver: {enable: true, token: t, port: 1, ssl: true}}"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), "proxy: httpserver.ssl needs ssl_cert_file and ssl_key_file");
}

}  // namespace
}  // namespace gorgone::proxy

namespace gorgone::proxy {
namespace {

// What nodes may say about nodes (doc/security.md, "a compromised node").
struct NodeClaims : ::testing::Test {
  Registry reg;
  std::vector<std::string> log;
  std::vector<Takeover> takeovers;
  void SetUp() override {
    auto d = parse(R"([{"id":"2","type":"push_zmq","address":"10.0.0.2","port":"5556"},
                       {"id":"3","type":"push_zmq","address":"10.0.0.3","port":"5556"},
                       {"id":"4","type":"pull","prevail":"1"},
                       {"id":"6","type":"push_zmq","address":"10.0.0.6","nodes":[{"id":"7"}]}])");
    reg.register_nodes(d, 1000, 60, log);
    log.clear();
  }
  std::vector<Effect> claim(const Claimant& from, const std::string& nodes) {
    auto d = parse(nodes);
    return reg.register_from_node(from, d, 1001, 60, log, takeovers);
  }
  std::vector<Effect> unclaim(const Claimant& from, const std::string& nodes) {
    auto d = parse(nodes);
    return reg.unregister_from_node(from, d, log);
  }
  bool refused_line() const {
    for (const auto& l : log)
      if (l.rfind("refused: ", 0) == 0) return true;
    return false;
  }
};

TEST_F(NodeClaims, APushNodeCannotRedefineAnotherNode) {
  // Node 3 re-registers node 2 at its own address: nothing changes, one refusal line.
  auto effects = claim(Claimant{"3", "", false}, R"([{"id":"2","type":"push_zmq","address":"10.6.6.6","port":"1"}])");
  EXPECT_TRUE(effects.empty());
  EXPECT_NE(reg.node("2")->json.find("10.0.0.2"), std::string::npos);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0], "refused: node '3' registered node '2': its configuration here does not set accept_remote_registration");
  // Nor itself with other settings, nor with prevail.
  claim(Claimant{"3", "", true}, R"([{"id":"3","address":"10.6.6.6","prevail":"1"},{"id":"2","prevail":"1"}])");
  EXPECT_NE(reg.node("3")->json.find("10.0.0.3"), std::string::npos);
  EXPECT_EQ(reg.pathway("COMMAND", std::string("2"), 1001, 300).parent, "2");
}

TEST_F(NodeClaims, APullNodeAnnouncesOnlyItselfOnItsOwnConnection) {
  claim(Claimant{"", "gorgone-4-aaa", false}, R"([{"id":"4","type":"pull","identity":"gorgone-4-aaa"}])");
  EXPECT_EQ(reg.node("4")->identity, "gorgone-4-aaa");
  EXPECT_EQ(reg.node_by_identity("gorgone-4-aaa")->id, "4");
  // An identity that is not the connection's, a type change, another node's id: refused.
  claim(Claimant{"", "gorgone-x", false}, R"([{"id":"5","type":"pull","identity":"gorgone-y"}])");
  claim(Claimant{"", "gorgone-x", false}, R"([{"id":"2","type":"pull","identity":"gorgone-x"}])");
  claim(Claimant{"4", "gorgone-4-aaa", false}, R"([{"id":"5","type":"pull","identity":"gorgone-4-aaa"}])");
  EXPECT_EQ(reg.node("5"), nullptr);
  EXPECT_EQ(reg.node("2")->type, NodeType::kPushZmq);
  EXPECT_EQ(std::count_if(log.begin(), log.end(), [](const std::string& l) { return l.rfind("refused", 0) == 0; }), 3);
}

TEST_F(NodeClaims, ASecondConnectionForABoundPullNodeIsATakeoverForTheCallerToDecide) {
  claim(Claimant{"", "gorgone-4-aaa", false}, R"([{"id":"4","type":"pull","identity":"gorgone-4-aaa"}])");
  claim(Claimant{"", "gorgone-4-bbb", false}, R"([{"id":"4","type":"pull","identity":"gorgone-4-bbb"}])");
  ASSERT_EQ(takeovers.size(), 1u);
  EXPECT_EQ(takeovers[0].bound_identity, "gorgone-4-aaa");
  EXPECT_EQ(takeovers[0].claimed_identity, "gorgone-4-bbb");
  EXPECT_EQ(reg.node("4")->identity, "gorgone-4-aaa");
  reg.bind_identity("4", "gorgone-4-bbb", 1002);
  EXPECT_EQ(reg.node_by_identity("gorgone-4-aaa"), nullptr);
  EXPECT_EQ(reg.node_by_identity("gorgone-4-bbb")->id, "4");
}

TEST_F(NodeClaims, IdsBelowANodeOnlyWhenItsConfigSaysSoAndNeverLocalOnes) {
  claim(Claimant{"3", "", true}, R"([{"id":"30"},{"id":"7"},{"id":"2"},{"id":"3"}])");
  EXPECT_EQ(reg.pathway("COMMAND", std::string("30"), 1001, 300).parent, "3");
  EXPECT_EQ(reg.pathway("COMMAND", std::string("7"), 1001, 300).parent, "6");  // a local subnode
  EXPECT_EQ(std::count_if(log.begin(), log.end(), [](const std::string& l) { return l.rfind("refused", 0) == 0; }), 3);
  // Another node cannot take 30 over, nor unregister it, nor unregister a node it does not own.
  log.clear();
  claim(Claimant{"2", "", true}, R"([{"id":"30"}])");
  unclaim(Claimant{"2", "", true}, R"([{"id":"30"},{"id":"3"},{"id":"6"}])");
  EXPECT_EQ(reg.pathway("COMMAND", std::string("30"), 1001, 300).parent, "3");
  EXPECT_NE(reg.node("3"), nullptr);
  EXPECT_NE(reg.node("6"), nullptr);
  EXPECT_EQ(log.size(), 4u);
  EXPECT_TRUE(refused_line());
  // Its owner can.
  unclaim(Claimant{"3", "", true}, R"([{"id":"30"}])");
  EXPECT_FALSE(reg.pathway("COMMAND", std::string("30"), 1001, 300).ok);
}

TEST_F(NodeClaims, APullNodeLeavingKeepsItsLocalDefinition) {
  claim(Claimant{"", "gorgone-4-aaa", false}, R"([{"id":"4","type":"pull","identity":"gorgone-4-aaa"}])");
  unclaim(Claimant{"4", "gorgone-4-aaa", false}, R"([{"id":"4"}])");
  ASSERT_NE(reg.node("4"), nullptr);
  EXPECT_TRUE(reg.node("4")->identity.empty());
  // A pull node that only announced itself goes away with its connection.
  claim(Claimant{"", "gorgone-9-a", false}, R"([{"id":"9","type":"pull","identity":"gorgone-9-a"}])");
  ASSERT_NE(reg.node("9"), nullptr);
  EXPECT_FALSE(reg.node("9")->local);
  unclaim(Claimant{"9", "gorgone-9-a", false}, R"([{"id":"9"}])");
  EXPECT_EQ(reg.node("9"), nullptr);
}

}  // namespace
}  // namespace gorgone::proxy
