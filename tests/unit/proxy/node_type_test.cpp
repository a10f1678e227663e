// Node types: the names Gorgone accepts, and the one table of what each type means.
#include <gtest/gtest.h>

#include "node_type.hpp"
#include "registry.hpp"

namespace gorgone::proxy {
namespace {

json::Document parse(const std::string& text) {
  json::Document d;
  EXPECT_TRUE(json::parse(d, text)) << text;
  return d;
}

TEST(NodeTypeParse, EveryNameGorgoneAccepts) {
  EXPECT_EQ(parse_node_type("push_zmq").value(), NodeType::kPushZmq);
  EXPECT_EQ(parse_node_type("push_ssh").value(), NodeType::kPushSsh);
  EXPECT_EQ(parse_node_type("pull").value(), NodeType::kPull);
  EXPECT_EQ(parse_node_type("wss").value(), NodeType::kWss);
  EXPECT_EQ(parse_node_type("pullwss").value(), NodeType::kWss);
}

TEST(NodeTypeParse, AnyOtherNameIsAnErrorNamingIt) {
  for (const char* name : {"", "PUSH_ZMQ", "push_zmq ", "zmq", "ssh", "pull_wss"}) {
    auto t = parse_node_type(name);
    ASSERT_FALSE(t) << name;
    EXPECT_EQ(t.error(), "unknown node type " + json::quote(name) +
                             " (accepted: push_zmq, push_ssh, pull, wss, pullwss)");
  }
}

TEST(NodeTypeParse, ANodeWithoutATypeIsPushZmqAsInGorgone) {
  for (const char* node : {R"({"id":"4"})", R"({"id":"4","type":null})"}) {
    auto t = node_type_of(parse(node));
    ASSERT_TRUE(t) << node;
    EXPECT_EQ(t->type, NodeType::kPushZmq);
    EXPECT_EQ(t->name, "push_zmq");
  }
}

TEST(NodeTypeParse, TheRegisteredNameIsKeptForDisplay) {
  auto t = node_type_of(parse(R"({"id":"6","type":"pullwss"})"));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->type, NodeType::kWss);
  EXPECT_EQ(t->name, "pullwss");
  t = node_type_of(parse(R"({"id":"6","type":"wss"})"));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->name, "wss");
}

TEST(NodeTypeParse, ATypeThatIsNotAStringIsAnError) {
  auto t = node_type_of(parse(R"({"id":"4","type":5})"));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error(), "unknown node type 5 (accepted: push_zmq, push_ssh, pull, wss, pullwss)");
  EXPECT_FALSE(node_type_of(parse(R"({"id":"4","type":["pull"]})")));
  EXPECT_FALSE(node_type_of(parse(R"({"id":"4","type":"bogus"})")));
}

TEST(NodeKindTable, IsIndexedByTypeAndNamesEachTypeOnce) {
  for (NodeType t : {NodeType::kPushZmq, NodeType::kPushSsh, NodeType::kPull, NodeType::kWss}) {
    EXPECT_EQ(kind(t).type, t);
    auto back = parse_node_type(kind(t).name);
    ASSERT_TRUE(back) << kind(t).name;
    EXPECT_EQ(*back, t);
  }
}

TEST(NodeKindTable, PushTypesAreConnectedByAPoolWorker) {
  for (NodeType t : {NodeType::kPushZmq, NodeType::kPushSsh}) {
    EXPECT_FALSE(kind(t).pull());
    EXPECT_TRUE(kind(t).pool_worker);      // PROXYADDNODE / PROXYDELNODE
    EXPECT_FALSE(kind(t).needs_identity);  // routable as soon as registered
  }
  EXPECT_EQ(kind(NodeType::kPushZmq).link, Link::kZmq);
  EXPECT_EQ(kind(NodeType::kPushSsh).link, Link::kSsh);
}

TEST(NodeKindTable, PullTypesConnectHereAndNeedAnIdentity) {
  for (NodeType t : {NodeType::kPull, NodeType::kWss}) {
    EXPECT_TRUE(kind(t).pull());
    EXPECT_TRUE(kind(t).needs_identity);
  }
  // A worker holds their frames (the node's queue, its bound); the hooks (pull) or the
  // wss listener send them.
  EXPECT_TRUE(kind(NodeType::kPull).pool_worker);
  EXPECT_TRUE(kind(NodeType::kWss).pool_worker);
  EXPECT_EQ(kind(NodeType::kPull).link, Link::kExternalRouter);
  EXPECT_EQ(kind(NodeType::kWss).link, Link::kWebsocket);
}

TEST(NodeKindTable, OnlyPushSshDoesNotAnswerGetlog) {
  EXPECT_TRUE(kind(NodeType::kPushZmq).answers_getlog);
  EXPECT_FALSE(kind(NodeType::kPushSsh).answers_getlog);
  EXPECT_TRUE(kind(NodeType::kPull).answers_getlog);
  EXPECT_TRUE(kind(NodeType::kWss).answers_getlog);
}

// The registry parses a type once, at registration.
struct RegistryTypes : ::testing::Test {
  Registry reg;
  std::vector<std::string> log;
  std::vector<Effect> add(const std::string& nodes_json) {
    auto d = parse(nodes_json);
    return reg.register_nodes(d, 1000, 60, log);
  }
};

TEST_F(RegistryTypes, AnUnknownTypeIsRefusedWithOneLineNamingTheNodeAndTheType) {
  add(R"([{"id":"4","type":"push_zmq","address":"10.0.0.4"}])");
  log.clear();
  auto effects = add(R"([{"id":"8","type":"push_zqm"},{"id":"9"},{"id":"4","type":"ssh","prevail":"1"}])");
  EXPECT_EQ(reg.node("8"), nullptr);
  EXPECT_FALSE(reg.known("8"));
  EXPECT_FALSE(reg.status().count("8"));
  ASSERT_NE(reg.node("9"), nullptr);
  EXPECT_EQ(reg.node("9")->type, NodeType::kPushZmq);
  // A known node is left as it was, and the refused entry did not make it prevail.
  ASSERT_NE(reg.node("4"), nullptr);
  EXPECT_EQ(reg.node("4")->type, NodeType::kPushZmq);
  EXPECT_NE(reg.node("4")->json.find("10.0.0.4"), std::string::npos);
  EXPECT_FALSE(reg.node("4")->prevail);
  ASSERT_EQ(effects.size(), 1u);
  EXPECT_EQ(effects[0].id, "9");
  std::vector<std::string> expected{
      "cannot register node '8': unknown node type \"push_zqm\" (accepted: push_zmq, push_ssh, pull, wss, pullwss)",
      "Node '9' is registered",
      "cannot register node '4': unknown node type \"ssh\" (accepted: push_zmq, push_ssh, pull, wss, pullwss)"};
  EXPECT_EQ(log, expected);
  add(R"([{"id":"4","type":"push_zmq","address":"10.0.0.5"}])");
  EXPECT_NE(reg.node("4")->json.find("10.0.0.5"), std::string::npos);
}

TEST_F(RegistryTypes, PushSshIsHeldByAWorkerAndKeepsItsName) {
  auto effects = add(R"([{"id":"7","type":"push_ssh","address":"10.0.0.7","ssh_username":"centreon"}])");
  ASSERT_EQ(effects.size(), 1u);
  EXPECT_EQ(effects[0].kind, Effect::Kind::kAddNode);
  EXPECT_EQ(reg.node("7")->type, NodeType::kPushSsh);
  EXPECT_EQ(reg.node("7")->type_name, "push_ssh");
  EXPECT_TRUE(reg.pathway("COMMAND", std::string("7"), 1000, 300).ok);
}

TEST_F(RegistryTypes, PullwssIsAWssNodeShownUnderTheNameItRegisteredWith) {
  auto effects = add(R"([{"id":"6","type":"pullwss"}])");
  ASSERT_EQ(effects.size(), 1u);  // a worker will hold its frames (once it has connected)
  EXPECT_EQ(effects[0].kind, Effect::Kind::kAddNode);
  ASSERT_NE(reg.node("6"), nullptr);
  EXPECT_EQ(reg.node("6")->type, NodeType::kWss);
  EXPECT_EQ(reg.node("6")->type_name, "pullwss");
  EXPECT_FALSE(reg.pathway("COMMAND", std::string("6"), 1000, 300).ok);  // never connected
  reg.bind_identity("6", "6", 1000);
  EXPECT_TRUE(reg.pathway("COMMAND", std::string("6"), 1000, 300).ok);
}

// Constatus is what Gorgone shows: the registered name, and in_progress_ping_pull for
// pulled nodes only, field for field in the same order.
TEST_F(RegistryTypes, ConstatusShowsTheRegisteredNames) {
  add(R"([{"id":"3","type":"pull"},{"id":"4","type":"push_zmq"},{"id":"5"},{"id":"6","type":"pullwss"},
          {"id":"7","type":"push_ssh"},{"id":"8","type":"wss"}])");
  for (auto& [id, s] : reg.status()) s.next_ping = 1795634433;
  reg.status()["3"].in_progress_ping_pull = 1795634423;
  auto push = [](const char* type) {
    return std::string(R"({"type":")") + type +
           R"(","in_progress_ping":0,"ping_timeout":0,"last_ping_sent":0,"last_ping_recv":0,"next_ping":1795634433,"ping_ok":0,"ping_failed":0,"nodes":{}})";
  };
  auto pull = [](const char* type, const char* since) {
    return std::string(R"({"type":")") + type + R"(","in_progress_ping":0,"in_progress_ping_pull":)" + since +
           R"(,"ping_timeout":0,"last_ping_sent":0,"last_ping_recv":0,"next_ping":1795634433,"ping_ok":0,"ping_failed":0,"nodes":{}})";
  };
  std::string expected = R"({"3":)" + pull("pull", "1795634423") + R"(,"4":)" + push("push_zmq") + R"(,"5":)" +
                         push("push_zmq") + R"(,"6":)" + pull("pullwss", "0") + R"(,"7":)" + push("push_ssh") +
                         R"(,"8":)" + pull("wss", "0") + "}";
  EXPECT_EQ(reg.constatus_json(), expected);
}

}  // namespace
}  // namespace gorgone::proxy
