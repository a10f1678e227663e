// Log synchronisation from nodes that answer GETLOG with what a real poller may send but our
// own never would: text that is not UTF-8 (a Perl poller passes a command's Latin-1 output
// through), NUL characters, absurd ctimes, pages larger than the central accepts. The node
// is played in-process (FakeNode) so that each answer is exactly the one under test. In
// every case the odd row costs itself at most, never the rows after it. And what starts a
// sync besides the period: a node's SYNCLOGS, the log endpoint (which waits for its sync).
#include <gtest/gtest.h>

#include <ctime>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "fake_node.hpp"
#include "scripted_log.hpp"
#include "fleet.hpp"
#include "gorgone/protocol/response.hpp"
#include "wire_client.hpp"

namespace gorgone::testing {
namespace {

using gorgone_test::PgValue;

class LogSyncHostile : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) std::cerr << fleet_.logs();
  }

  // A central (id 1) that knows the fake node "2" (and "3" with `second`, serving log3_);
  // waits until it is pinged.
  void start(const std::string& proxy_extra = "", const std::string& directives = HostSpec::kProxyDirectives,
             bool second = false) {
    fleet_.declare(HostSpec{"1"});
    node_ = std::make_unique<FakeNode>("2", std::vector<std::string>{fleet_.thumbprint("1")}, dir_ + "/node2",
                                       [this](const protocol::Frame& f) { return log_.answer("2", f); });
    std::string nodes = "  - id: 2\n    type: push_zmq\n    address: 127.0.0.1\n    port: " +
                        std::to_string(node_->port()) + "\n";
    if (second) {
      node3_ = std::make_unique<FakeNode>("3", std::vector<std::string>{fleet_.thumbprint("1")}, dir_ + "/node3",
                                          [this](const protocol::Frame& f) { return log3_.answer("3", f); });
      nodes += "  - id: 3\n    type: push_zmq\n    address: 127.0.0.1\n    port: " + std::to_string(node3_->port()) + "\n";
    }
    HostSpec central{"1", false, {}, true, directives + proxy_extra, nodes, true};
    fleet_.declare(central);
    fleet_.start("1");
    ASSERT_TRUE(eventually([&] {
      auto cs = fleet_.constatus("1");
      return cs.HasMember("data") && cs["data"].HasMember("2") && cs["data"]["2"]["ping_ok"].GetInt64() > 0;
    })) << "the central never got a pong from the fake node";
  }

  std::string central(const std::string& sql) { return PgValue(fleet_.db("1"), sql); }
  std::string data(const std::string& token) {
    return central("SELECT data FROM gorgone_history WHERE token = '" + token + "'");
  }
  // How many GETLOG the node got so far.
  std::size_t getlogs(const FakeNode* node = nullptr) {
    std::size_t n = 0;
    for (const auto& f : (node ? node : node_.get())->received()) n += f.action == "GETLOG";
    return n;
  }
  // Waits until the central asked again `n` times: the odd row went through its sync.
  void wait_getlogs(std::size_t n) {
    std::size_t start = getlogs();
    ASSERT_TRUE(eventually([&] { return getlogs() >= start + n; }));
  }
  // Nothing the node served is stored twice at the central.
  void expect_no_duplicates() {
    EXPECT_EQ(central("SELECT count(*) FROM (SELECT token FROM gorgone_history WHERE token IS NOT NULL "
                      "GROUP BY token HAVING count(*) > 1) AS d"),
              "0");
  }
  double now() { return static_cast<double>(std::time(nullptr)); }
  long count(const std::string& token) {
    return std::stol(central("SELECT count(*) FROM gorgone_history WHERE token = '" + token + "'"));
  }
  bool arrives(const std::string& token) {
    return eventually([&] { return count(token) > 0; });
  }

  std::string dir_ = make_temp_dir("gorgone-fake");
  Fleet fleet_;
  ScriptedLog log_, log3_;
  std::unique_ptr<FakeNode> node_, node3_;
};

// Periodic sync once an hour: only what a test does starts one.
constexpr const char* kHourlySync = "      pool: 2\n      ping: 1\n      synchistory_time: 3600\n";

// A node's SYNCLOGS (new rows) gets that node synced at once, and only that node, whatever
// id the message names: it comes from node 2's connection, so node 2 is synced, not node 3.
TEST_F(LogSyncHostile, ANodesSynclogsSyncsThatNodeAtOnce) {
  start("", kHourlySync, true);
  ASSERT_TRUE(eventually([&] { return getlogs() >= 1 && getlogs(node3_.get()) >= 1; }));  // the sync at start
  const std::size_t node3_before = getlogs(node3_.get());
  log_.add(now() - 1, Row("live-1", now() - 1, R"("{\"n\":1}")", 2));
  node_->push(R"([SYNCLOGS] [] [] {"code":0,"data":{"id":"3"}})");
  EXPECT_TRUE(arrives("live-1")) << "the row of node 2 waited for the hourly sync";
  EXPECT_EQ(getlogs(node3_.get()), node3_before) << "node 3 was synced for node 2's rows";
}

// GET /api/nodes/2/log/:token waits for the sync it asked for (the node takes 300 ms to
// answer): one call returns rows the central did not have when it was made.
TEST_F(LogSyncHostile, TheLogEndpointReturnsTheRowsOfTheSyncItAskedFor) {
  start("", kHourlySync);
  ASSERT_TRUE(eventually([&] { return getlogs() >= 1; }));
  node_->set_handler([this](const protocol::Frame& f) {
    if (f.action == "GETLOG") std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return log_.answer("2", f);
  });
  log_.add(now() - 1, Row("asked-1", now() - 1, R"("{\"n\":1}")", 2));
  ASSERT_EQ(count("asked-1"), 0);
  auto [status, body] = fleet_.get("1", "/api/nodes/2/log/asked-1");
  EXPECT_EQ(status, 200);
  EXPECT_NE(body.find("\"token\":\"asked-1\""), std::string::npos) << body;
  EXPECT_EQ(body.find("no_log"), std::string::npos) << body;
}

// Concurrent calls for one node share the sync in flight (and at most one after it, for rows
// written after its snapshot): every call gets the rows, the node gets at most two GETLOGs.
TEST_F(LogSyncHostile, ConcurrentLogCallsShareTheSync) {
  start("", kHourlySync);
  ASSERT_TRUE(eventually([&] { return getlogs() >= 1; }));
  node_->set_handler([this](const protocol::Frame& f) {
    if (f.action == "GETLOG") std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return log_.answer("2", f);
  });
  log_.add(now() - 1, Row("shared-1", now() - 1, R"("{\"n\":1}")", 2));
  const std::size_t before = getlogs();
  std::vector<std::pair<int, std::string>> answers(6);
  std::vector<std::thread> clients;
  for (auto& a : answers) clients.emplace_back([&] { a = fleet_.get("1", "/api/nodes/2/log/shared-1"); });
  for (auto& c : clients) c.join();
  for (const auto& [status, body] : answers) {
    EXPECT_EQ(status, 200);
    EXPECT_NE(body.find("\"token\":\"shared-1\""), std::string::npos) << body;
  }
  EXPECT_LE(getlogs() - before, 2u);
  EXPECT_EQ(count("shared-1"), 1);
  EXPECT_EQ(central("SELECT count(*) FROM gorgone_history WHERE data LIKE '%already in progress%'"), "0");
}

TEST_F(LogSyncHostile, RowsOfAFakeNodeArriveOnce) {
  start();
  log_.add(1700000000.5, Row("plain-1", 1700000000.5, R"("{\"n\":1}")"));
  ASSERT_TRUE(arrives("plain-1"));
  log_.add(1700000001.5, Row("plain-2", 1700000001.5, R"("{\"n\":2}")"));
  ASSERT_TRUE(arrives("plain-2"));
  EXPECT_EQ(count("plain-1"), 1);
  EXPECT_EQ(count("plain-2"), 1);
  bool getlog = false;
  for (const auto& f : node_->received()) getlog = getlog || f.action == "GETLOG";
  EXPECT_TRUE(getlog);
}

// (a) A Perl poller passes a Latin-1 command output through: the byte used to make the
// central's COPY fail, so the cursor never moved and nothing after it ever arrived.
TEST_F(LogSyncHostile, ALatin1RowIsStoredReplacedAndTheNextRowsArrive) {
  start();
  double c = now() - 100;
  log_.add(c, Row("latin", c, "\"{\\\"stdout\\\":\\\"caf\xE9\\\"}\""));
  ASSERT_TRUE(arrives("latin"));
  wait_getlogs(2);
  log_.add(c + 1, Row("after-latin", c + 1, R"("{}")"));
  ASSERT_TRUE(arrives("after-latin"));
  EXPECT_EQ(data("latin"), "{\"stdout\":\"caf\xEF\xBF\xBD\"}");
  wait_getlogs(2);
  expect_no_duplicates();
}

// (b) JSON "\u0000" is a valid escape, and PostgreSQL text cannot hold the byte.
TEST_F(LogSyncHostile, ANulRowIsStoredReplacedAndTheNextRowsArrive) {
  start();
  double c = now() - 100;
  log_.add(c, Row("nul", c, R"("a\u0000b")"));
  ASSERT_TRUE(arrives("nul"));
  wait_getlogs(2);
  log_.add(c + 1, Row("after-nul", c + 1, R"("{}")"));
  ASSERT_TRUE(arrives("after-nul"));
  EXPECT_EQ(data("nul"), "a\xEF\xBF\xBD" "b");
  wait_getlogs(2);
  expect_no_duplicates();
}

// (c) A ctime of 1e300 used to become the cursor: no later row was ever asked for.
TEST_F(LogSyncHostile, AnAbsurdCtimeIsRefusedOnceLoggedAndTheNextRowsArrive) {
  start();
  double c = now() - 100;
  log_.add(c, Row("before-far", c, R"("{}")"));
  log_.add(1e300, Row("far", 1e300, R"("{}")"));
  ASSERT_TRUE(arrives("before-far"));
  wait_getlogs(3);  // the node sends the far row at each of these syncs
  log_.add(c + 1, Row("after-far", c + 1, R"("{}")"));
  ASSERT_TRUE(arrives("after-far"));
  wait_getlogs(2);
  EXPECT_EQ(count("far"), 0);
  expect_no_duplicates();
  std::string log = fleet_.daemon("1").log();
  std::string line = "node '2' sent a row with ctime 1.0000000000000001e+300";
  std::size_t first = log.find(line);
  EXPECT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find(line, first + 1), std::string::npos) << "logged more than once";
}

// (d) A page larger than the central's max_frame_size: ZMQ drops the connection (a
// protocol error: that socket does not reconnect by itself), the GETLOG times out (a KO row)
// and the pings too (log lines), until the proxy closes the session and opens a new one.
// Once the node sends smaller pages, every row arrives, once.
TEST_F(LogSyncHostile, AnOversizePageIsRefusedAndSmallerPagesThenArrive) {
  start("      synchistory_timeout: 2\n      max_frame_size: 65536\n      pong_discard_timeout: 2\n"
        "      pong_max_timeout: 1\n");
  double c = now() - 100;
  for (int i = 0; i < 10; ++i)
    log_.add(c + i, Row("big-" + std::to_string(i), c + i, "\"" + std::string(10000, 'a' + i) + "\""));
  std::size_t before = getlogs();
  ASSERT_TRUE(eventually([&] {
    return central("SELECT count(*) FROM gorgone_history WHERE data = "
                   "'{\"message\":\"proxy - getlog in timeout for ''2''\"}'") != "0";
  })) << "the oversize answer was not noticed";
  EXPECT_EQ(central("SELECT count(*) FROM gorgone_history WHERE token LIKE 'big-%'"), "0");
  EXPECT_GT(getlogs(), before);
  EXPECT_TRUE(eventually([&] { return fleet_.daemon("1").log().find("Ping timeout from '2'") != std::string::npos; }));
  log_.set_page(3);  // about 30 KiB, about 40 KiB encrypted
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(arrives("big-" + std::to_string(i))) << i;
  log_.add(c + 20, Row("after-big", c + 20, R"("{}")"));
  ASSERT_TRUE(arrives("after-big"));
  wait_getlogs(2);
  expect_no_duplicates();
  EXPECT_EQ(data("big-3"), std::string(10000, 'd'));
}

// Our own poller: a command whose output is Latin-1 (common in monitoring plugins).
TEST(LogSyncOurPoller, ANonUtf8OutputReachesTheCentralReplaced) {
  Fleet fleet;
  fleet.declare(HostSpec{"2", true, {"1"}});
  fleet.start("2");
  fleet.declare(HostSpec{"1", false, {}, true, HostSpec::kProxyDirectives,
                         "  - id: 2\n    type: push_zmq\n    address: 127.0.0.1\n    port: " +
                             std::to_string(fleet.port("2")) + "\n",
                         true});
  fleet.start("1");
  std::string token = fleet.command("1", "2", "printf 'caf\\351'");
  ASSERT_FALSE(token.empty());
  std::string out;
  EXPECT_TRUE(eventually([&] { return !(out = fleet.result("1", token, "2")).empty(); })) << fleet.logs();
  EXPECT_EQ(out, "caf\xEF\xBF\xBD");
  // The command text itself in Latin-1 (a REST client's encoding): every row of the
  // command repeats it, and each used to be refused by the poller's PostgreSQL.
  token = fleet.command("1", "2", "echo 'caf\xE9' done");
  ASSERT_FALSE(token.empty());
  EXPECT_TRUE(eventually([&] { return !(out = fleet.result("1", token, "2")).empty(); })) << fleet.logs();
  EXPECT_EQ(out, "caf\xEF\xBF\xBD done");
  auto rows = fleet.rows("1", token);
  ASSERT_EQ(rows.size(), 4u);
  json::Document started;
  ASSERT_TRUE(json::parse(started, rows[1].second));
  ASSERT_TRUE(started.HasMember("command"));
  EXPECT_STREQ(started["command"].GetString(), "echo 'caf\xEF\xBF\xBD' done");
}

// Our host bounds a log-sync page in bytes (getlog_max_bytes), cuts it only between two
// ctimes, and sends a row larger than the bound as a placeholder: walking the pages with
// the "ctime > cursor" rule gives every row exactly once.
TEST(LogSyncOurPoller, PagesAreCutByBytesAtACtimeBoundary) {
  Fleet fleet;
  HostSpec poller{"2", true, {"1"}};
  poller.core_directives = "    getlog_max_bytes: 16384\n";
  fleet.declare(poller);
  fleet.start("2");
  const std::string& db = fleet.db("2");
  ASSERT_TRUE(eventually([&] { return gorgone_test::PgExec(db, "SELECT 1 FROM gorgone_history LIMIT 1").empty(); }));
  // 60 rows of 3000 bytes, three on each ctime, an hour ago; row 30 is 50000 bytes.
  ASSERT_EQ(gorgone_test::PgExec(
                db, "INSERT INTO gorgone_history (token, code, etime, ctime, instant, data) "
                    "SELECT 'cut-' || i, 100, 1700000000 + i, floor(extract(epoch from now())) - 3600 + (i / 3), 0, "
                    "repeat(chr(97 + i % 26), CASE WHEN i = 30 THEN 50000 ELSE 3000 END) "
                    "FROM generate_series(0, 59) AS i"),
            "");
  zmq::context_t ctx;
  WireClient client(ctx, "test", fleet.private_key("1"), fleet.port("2"));  // as a parent's proxy would
  ASSERT_TRUE(client.handshake());
  std::map<std::string, int> seen;
  std::set<double> ctimes_seen;
  double cursor = 1;
  int pages = 0;
  for (bool more = true; more && pages < 100; ++pages) {
    char request[64];
    std::snprintf(request, sizeof request, "{\"ctime\":%.17g}", cursor);
    auto answer = client.ask("GETLOG", request);
    ASSERT_TRUE(answer) << "no answer to " << request;
    json::Document d;
    ASSERT_TRUE(json::parse(d, answer->json));
    const json::Value& page = d["data"];
    EXPECT_LE(json::dump(page).size(), 16384u) << "page " << pages;
    more = page.HasMember("more") && page["more"].GetBool();
    std::set<double> in_page;
    for (const auto& r : page["result"].GetArray()) {
      double ctime = r["ctime"].GetDouble();
      EXPECT_EQ(ctimes_seen.count(ctime), 0u) << "a ctime split across two pages";
      in_page.insert(ctime);
      cursor = std::max(cursor, ctime);
      std::string token = r["token"].IsString() ? r["token"].GetString() : "";
      ++seen[token];
      if (token == "cut-30") {
        EXPECT_STREQ(r["data"].GetString(), "{\"message\":\"row too large to sync (50000 bytes)\"}");
        EXPECT_EQ(r["code"].GetInt(), 100);
        EXPECT_EQ(r["etime"].GetInt64(), 1700000030);
      } else if (token.rfind("cut-", 0) == 0) {
        EXPECT_EQ(std::string(r["data"].GetString()).size(), 3000u) << token;
      }
    }
    ctimes_seen.insert(in_page.begin(), in_page.end());
  }
  for (int i = 0; i < 60; ++i) EXPECT_EQ(seen["cut-" + std::to_string(i)], 1) << i;
  EXPECT_GE(pages, 12) << "180 kB of rows in pages of at most 16 KiB";
  EXPECT_NE(fleet.daemon("2").log().find("exceeds getlog_max_bytes: sent as a placeholder"), std::string::npos);
}

// End to end: a poller's backlog far larger than the central accepts in one message
// (max_frame_size) arrives in pages of getlog_max_bytes, every row once; a row larger than
// a page arrives as its placeholder and does not hold the rows after it.
TEST(LogSyncOurPoller, ABacklogLargerThanTheCentralsFrameArrivesInPages) {
  Fleet fleet;
  HostSpec poller{"2", true, {"1"}};
  poller.core_directives = "    getlog_max_bytes: 32768\n";
  fleet.declare(poller);
  fleet.start("2");
  const std::string& db = fleet.db("2");
  ASSERT_TRUE(eventually([&] { return gorgone_test::PgExec(db, "SELECT 1 FROM gorgone_history LIMIT 1").empty(); }));
  ASSERT_EQ(gorgone_test::PgExec(
                db, "INSERT INTO gorgone_history (token, code, etime, ctime, instant, data) "
                    "SELECT 'page-' || i, 0, 1700000000, extract(epoch from now()) - 3600 + i * 0.001, 0, "
                    "repeat('p', CASE WHEN i = 50 THEN 100000 ELSE 3000 END) "
                    "FROM generate_series(0, 99) AS i"),
            "");
  fleet.declare(HostSpec{"1", false, {}, true,
                         std::string(HostSpec::kProxyDirectives) +
                             "      synchistory_timeout: 2\n      max_frame_size: 65536\n"
                             "      pong_discard_timeout: 2\n      pong_max_timeout: 1\n",
                         "  - id: 2\n    type: push_zmq\n    address: 127.0.0.1\n    port: " +
                             std::to_string(fleet.port("2")) + "\n",
                         false});
  fleet.start("1");
  const std::string central = fleet.db("1");
  ASSERT_TRUE(eventually([&] { return gorgone_test::PgExec(central, "SELECT 1 FROM gorgone_history LIMIT 1").empty(); }));
  auto rows = [&] {
    return PgValue(central, "SELECT count(*) FROM gorgone_history WHERE token LIKE 'page-%'");
  };
  EXPECT_TRUE(eventually([&] { return rows() == "100"; }, std::chrono::seconds(60))) << rows() << "\n" << fleet.logs();
  EXPECT_EQ(PgValue(central, "SELECT count(DISTINCT token) FROM gorgone_history WHERE token LIKE 'page-%'"), "100");
  EXPECT_EQ(PgValue(central, "SELECT data FROM gorgone_history WHERE token = 'page-50'"),
            "{\"message\":\"row too large to sync (100000 bytes)\"}");
  EXPECT_EQ(PgValue(central, "SELECT octet_length(data) FROM gorgone_history WHERE token = 'page-99'"), "3000");
  EXPECT_EQ(PgValue(central, "SELECT count(*) FROM gorgone_history WHERE data LIKE '%getlog in timeout%'"), "0");
}

// Live results: our poller tells the central when an action ended (SYNCLOGS), so a command's
// result reaches the central's history with nobody polling and no periodic sync due.
TEST(LogSyncOurPoller, AResultReachesTheCentralWithNobodyAsking) {
  Fleet fleet;
  fleet.declare(HostSpec{"2", true, {"1"}});
  fleet.start("2");
  fleet.declare(HostSpec{"1", false, {}, true, kHourlySync,
                         "  - id: 2\n    type: push_zmq\n    address: 127.0.0.1\n    port: " +
                             std::to_string(fleet.port("2")) + "\n",
                         true});
  fleet.start("1");
  const std::string central = fleet.db("1");
  ASSERT_TRUE(eventually([&] {
    auto cs = fleet.constatus("1");
    return cs.HasMember("data") && cs["data"].HasMember("2") && cs["data"]["2"]["ping_ok"].GetInt64() > 0;
  })) << fleet.logs();
  auto [status, body] = fleet.post("1", "/api/nodes/2/core/action/command", R"([{"command":"echo live"}])");
  ASSERT_EQ(status, 200) << body;
  json::Document d;
  ASSERT_TRUE(json::parse(d, body) && d.IsObject() && d.HasMember("token")) << body;
  std::string token = d["token"].GetString();
  EXPECT_TRUE(eventually([&] {
    return PgValue(central, "SELECT count(*) FROM gorgone_history WHERE token = '" + token + "' AND code = 2") == "1";
  })) << fleet.logs();
  EXPECT_NE(PgValue(central, "SELECT data FROM gorgone_history WHERE token = '" + token + "' AND code = 100")
                .find("live"),
            std::string::npos);
}

}  // namespace
}  // namespace gorgone::testing
