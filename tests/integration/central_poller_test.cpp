// End to end on real parts: a private PostgreSQL, a poller and a central (two gorgone-host
// processes) on loopback, checked through the central's REST API.
#include <gtest/gtest.h>
#include <httplib.h>

#include "daemon.hpp"
#include "gorgone/json.hpp"
#include "gorgone/protocol/crypto.hpp"
#include "pg_fixture.hpp"

namespace gorgone::testing {
namespace {

using json::Document;
using gorgone_test::PgCluster;

struct Node {
  std::unique_ptr<Daemon> daemon;
  int port = 0;
};

class CentralPoller : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("gorgone-it");
    central_priv_ = dir_ + "/central/rsakey.priv.pem";
    central_pub_ = dir_ + "/central/rsakey.pub.pem";
    ASSERT_TRUE(protocol::generate_key_files(central_priv_, central_pub_));
    auto pub = protocol::RsaKey::load_public_file(central_pub_);
    ASSERT_TRUE(pub);
    central_thumbprint_ = pub->jwk_thumbprint();
  }
  void TearDown() override {
    if (HasFailure()) {
      if (central_.daemon) std::cerr << "---- central log\n" << central_.daemon->log();
      if (poller_.daemon) std::cerr << "---- poller log\n" << poller_.daemon->log();
    }
    central_.daemon.reset();
    poller_.daemon.reset();
    std::filesystem::remove_all(dir_);
  }

  void start_poller(const std::string& authorized) {
    poller_.port = free_port();
    std::string db = PgCluster::shared().create_database();
    std::string cfg = dir_ + "/poller.yaml";
    write_file(cfg, "gorgone:\n  gorgonecore:\n    id: 2\n    hostname: poller-2\n"
                    "    external_com_type: tcp\n    external_com_path: 127.0.0.1:" + std::to_string(poller_.port) + "\n"
                    "    authorized_clients:\n      - key: " + authorized + "\n"
                    "    privkey: " + dir_ + "/poller/rsakey.priv.pem\n    pubkey: " + dir_ + "/poller/rsakey.pub.pem\n"
                    "    gorgone_db_type: Pg\n    gorgone_db_name: \"" + db + "\"\n"
                    "  modules:\n    - name: action\n      package: gorgone::modules::core::action::hooks\n      enable: true\n");
    poller_.daemon = std::make_unique<Daemon>(cfg, dir_ + "/poller.log");
    poller_.daemon->start();
  }

  void start_central() {
    central_.port = free_port();
    std::string db = PgCluster::shared().create_database();
    write_file(dir_ + "/nodes.yaml", "nodes:\n  - id: 2\n    type: push_zmq\n    address: 127.0.0.1\n    port: " +
                                         std::to_string(poller_.port) + "\n");
    std::string cfg = dir_ + "/central.yaml";
    write_file(dir_ + "/central.d/core.yaml",
               "gorgone:\n  gorgonecore:\n    id: 1\n    hostname: central\n"
               "    privkey: " + central_priv_ + "\n    pubkey: " + central_pub_ + "\n"
               "    gorgone_db_type: Pg\n    gorgone_db_name: \"" + db + "\"\n");
    write_file(dir_ + "/central.d/modules.yaml",
               "gorgone:\n  modules:\n"
               "    - name: httpserver\n      package: gorgone::modules::core::httpserver::hooks\n      enable: true\n"
               "      address: 127.0.0.1\n      port: " + std::to_string(central_.port) + "\n"
               "    - name: proxy\n      package: gorgone::modules::core::proxy::hooks\n      enable: true\n"
               "      pool: 2\n      ping: 1\n      synchistory_time: 2\n"
               "    - name: register\n      package: gorgone::modules::core::register::hooks\n      enable: true\n"
               "      config_file: " + dir_ + "/nodes.yaml\n"
               // As on a real central: only events of loaded modules are routable.
               "    - name: action\n      package: gorgone::modules::core::action::hooks\n      enable: true\n");
    write_file(cfg, "configuration: !include central.d/*.yaml\n");
    central_.daemon = std::make_unique<Daemon>(cfg, dir_ + "/central.log");
    central_.daemon->start();
    ASSERT_TRUE(eventually([&] { return get("/api/internal/constatus").first == 200; }))
        << "central REST API never answered";
  }

  std::pair<int, std::string> get(const std::string& path) {
    httplib::Client c("127.0.0.1", central_.port);
    c.set_read_timeout(15, 0);
    auto r = c.Get(path.c_str());
    if (!r) return {0, ""};
    return {r->status, r->body};
  }
  std::pair<int, std::string> post(const std::string& path, const std::string& body) {
    httplib::Client c("127.0.0.1", central_.port);
    c.set_read_timeout(15, 0);
    auto r = c.Post(path.c_str(), body, "application/json");
    if (!r) return {0, ""};
    return {r->status, r->body};
  }
  std::string token_of(const std::string& body) {
    Document d;
    if (!json::parse(d, body) || !d.IsObject() || !d.HasMember("token")) return "";
    return d["token"].GetString();
  }
  long ping_ok(const std::string& node) {
    auto [status, body] = get("/api/internal/constatus");
    Document d;
    if (status != 200 || !json::parse(d, body) || !d.HasMember("data") || !d["data"].HasMember(node.c_str())) return -1;
    return d["data"][node.c_str()]["ping_ok"].GetInt64();
  }
  // Rows of a token known on the central (after a sync of node 2 when via_node).
  std::vector<std::pair<int, std::string>> rows(const std::string& token, bool via_node) {
    auto [status, body] = get((via_node ? "/api/nodes/2/log/" : "/api/log/") + token + "?sync_wait=300000");
    std::vector<std::pair<int, std::string>> out;
    Document d;
    if (status != 200 || !json::parse(d, body) || !d.HasMember("data") || !d["data"].IsArray()) return out;
    for (const auto& r : d["data"].GetArray()) out.emplace_back(r["code"].GetInt(), r["data"].GetString());
    return out;
  }

  std::string dir_, central_priv_, central_pub_, central_thumbprint_;
  Node central_, poller_;
};

TEST_F(CentralPoller, PingsThePollerAndShowsGorgonesConstatus) {
  start_poller(central_thumbprint_);
  start_central();
  ASSERT_TRUE(eventually([&] { return ping_ok("2") >= 1; })) << get("/api/internal/constatus").second;
  auto [status, body] = get("/api/internal/constatus");
  Document d;
  ASSERT_TRUE(json::parse(d, body));
  EXPECT_STREQ(d["action"].GetString(), "constatus");
  EXPECT_STREQ(d["message"].GetString(), "ok");
  const auto& n = d["data"]["2"];
  for (const char* field : {"type", "in_progress_ping", "ping_timeout", "last_ping_sent", "last_ping_recv",
                            "next_ping", "ping_ok", "ping_failed", "nodes"})
    EXPECT_TRUE(n.HasMember(field)) << field;
  EXPECT_STREQ(n["type"].GetString(), "push_zmq");
  EXPECT_EQ(n["ping_failed"].GetInt(), 0);
}

TEST_F(CentralPoller, CommandRunsOnThePollerAndItsResultReachesTheCentralOnce) {
  start_poller(central_thumbprint_);
  start_central();
  ASSERT_TRUE(eventually([&] { return ping_ok("2") >= 1; }));
  auto [status, body] = post("/api/nodes/2/core/action/command", R"([{"command":"echo hello"}])");
  ASSERT_EQ(status, 200) << body;
  std::string token = token_of(body);
  ASSERT_EQ(token.size(), 128u) << body;
  std::vector<std::pair<int, std::string>> got;
  ASSERT_TRUE(eventually([&] {
    got = rows(token, true);
    for (const auto& r : got)
      if (r.first == 2) return true;
    return false;
  })) << "no final row for " << token;
  int results = 0, finished = 0;
  for (const auto& [code, data] : got) {
    Document d;
    ASSERT_TRUE(json::parse(d, data)) << data;
    if (code == 100) {
      ++results;
      EXPECT_STREQ(d["result"]["stdout"].GetString(), "hello");
      EXPECT_EQ(d["result"]["exit_code"].GetInt(), 0);
    }
    if (code == 2) ++finished;
  }
  EXPECT_EQ(results, 1);
  EXPECT_EQ(finished, 1);
  // Later syncs do not copy the rows again.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_EQ(rows(token, true).size(), got.size());
}

TEST_F(CentralPoller, UnknownTargetGetsGorgonesKo) {
  start_poller(central_thumbprint_);
  start_central();
  auto [status, body] = post("/api/nodes/99/core/action/command", R"([{"command":"echo x"}])");
  ASSERT_EQ(status, 200);
  std::string token = token_of(body);
  std::vector<std::pair<int, std::string>> got;
  ASSERT_TRUE(eventually([&] { return !(got = rows(token, false)).empty(); }));
  EXPECT_EQ(got[0].first, 1);
  EXPECT_EQ(got[0].second, R"({"message":"proxy - unknown target 99"})");
}

TEST_F(CentralPoller, APollerThatDoesNotAuthorizeTheCentralRefusesIt) {
  start_poller("not-the-central-thumbprint-aaaaaaaaaaaaaaaaaaa");
  start_central();
  auto [status, body] = post("/api/nodes/2/core/action/command", R"([{"command":"echo x"}])");
  ASSERT_EQ(status, 200) << body;
  std::string token = token_of(body);
  std::vector<std::pair<int, std::string>> got;
  ASSERT_TRUE(eventually([&] { return !(got = rows(token, false)).empty(); }));
  EXPECT_EQ(got[0].first, 1);
  EXPECT_NE(got[0].second.find("Send message problem for '2'"), std::string::npos) << got[0].second;
  EXPECT_NE(got[0].second.find("handshake issue"), std::string::npos) << got[0].second;
  EXPECT_EQ(ping_ok("2"), 0);
  EXPECT_NE(poller_.daemon->log().find("Thumbprint is '" + central_thumbprint_ + "'"), std::string::npos);
}

TEST_F(CentralPoller, RestAnswersInGorgonesShapes) {
  start_poller(central_thumbprint_);
  start_central();
  auto [s1, b1] = get("/api/log/0000");
  EXPECT_EQ(s1, 200);
  Document d;
  ASSERT_TRUE(json::parse(d, b1));
  EXPECT_STREQ(d["error"].GetString(), "no_log");
  EXPECT_STREQ(d["token"].GetString(), "0000");
  EXPECT_TRUE(d["data"].IsArray() && d["data"].Empty());

  auto [s2, b2] = post("/api/nodes/2/core/action/command", "{not json");
  EXPECT_EQ(s2, 400);
  EXPECT_NE(b2.find("decode_error"), std::string::npos);

  auto [s3, b3] = get("/api/nothing/here/at/all");
  EXPECT_EQ(s3, 404);
  EXPECT_NE(b3.find("method_unknown"), std::string::npos);

  auto [s4, b4] = get("/api/internal/thumbprint");
  EXPECT_EQ(s4, 200);
  EXPECT_NE(b4.find(central_thumbprint_), std::string::npos) << b4;

  auto [s5, b5] = get("/elsewhere");
  EXPECT_EQ(s5, 403);

  // A hostile, very long path gets a clean answer and the server keeps serving.
  auto [s6, b6] = get("/api/nodes/2/" + std::string(200000, 'a'));
  EXPECT_TRUE(s6 == 404 || s6 == 414) << s6;
  EXPECT_EQ(get("/api/internal/constatus").first, 200);
}

}  // namespace
}  // namespace gorgone::testing

