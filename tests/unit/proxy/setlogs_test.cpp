// Proxy::setlogs on a real history store, PostgreSQL (private cluster) and SQLite (a file in a
// temporary directory; test names end in /Pg and /SQLite): what a SETLOGS stores, what it
// refuses, and that a log-sync cursor survives its JSON round trip bit for bit.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>

#include "gorgone/json.hpp"
#include "history_pg.hpp"
#include "pg_fixture.hpp"
#include "fresh_store.hpp"
#include "proxy.hpp"
#include "recording_host.hpp"

namespace gorgone::proxy {
namespace {

using gorgone_test::FreshStore;
using gorgone_test::StoreKind;
using gorgone_test::StoreValue;

// Records what the proxy asks of its host; history() is a real store.
class FakeHost : public gorgone::testing::RecordingHost {
 public:
  explicit FakeHost(History& history) : RecordingHost(&history, CoreInfo{"1", "central", "", "", "", "first"}) {}
};

std::string StoreParamName(const ::testing::TestParamInfo<StoreKind>& info) { return gorgone_test::StoreName(info.param); }

class SetlogsTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    store_ = std::make_unique<FreshStore>(GetParam());
    auto h = store_->open();
    ASSERT_TRUE(h.ok()) << h.error();
    history_ = std::move(h.value());
    host_ = std::make_unique<FakeHost>(*history_);
    proxy_ = std::make_unique<Proxy>(*host_, Settings());  // no core id: no worker starts
    send("REGISTERNODES", R"({"nodes":[{"id":"2","type":"push_zmq","address":"127.0.0.1","port":1}]})");
  }

  void send(const std::string& action, const std::string& data, const std::string& token = "tok") {
    proxy_->routing(protocol::Frame{action, token, "", data}, RouteContext{"internal", "x"});
    host_->run_posted();  // what the loop would run next: the ends of history jobs
  }
  // As if the proxy had sent GETLOG to node 2 and was waiting for the answer.
  void asked() { proxy_->registry().sync()["2"].in_progress = true; }
  std::string setlogs(const std::string& rows, const std::string& extra = "") {
    return R"({"code":0,"data":{"action":"getlog","id":"2","result":)" + rows + extra + "}}";
  }
  std::string Value(const std::string& sql) { return StoreValue(store_->ref(), sql); }
  long stored() { return std::stol(Value("SELECT count(*) FROM gorgone_history")); }
  double position() { return history_->sync_position("2").value(); }
  bool logged(const std::string& text) {
    for (const auto& l : host_->logs())
      if (l.find(text) != std::string::npos) return true;
    return false;
  }

  std::unique_ptr<FreshStore> store_;
  std::unique_ptr<History> history_;
  std::unique_ptr<FakeHost> host_;
  std::unique_ptr<Proxy> proxy_;
};

TEST_P(SetlogsTest, StoresRowsMovesThePositionCountsAsPongAndTellsParents) {
  asked();
  send("SETLOGS", setlogs(R"([{"id":"7","token":"t","code":2,"etime":5,"ctime":100.25,"instant":0,"data":"{\"a\":1}"},
                             {"id":"8","token":null,"code":0,"etime":6,"ctime":"100.5","instant":1,"data":"{}"}])"));
  EXPECT_EQ(stored(), 2);
  EXPECT_EQ(position(), 100.5);
  EXPECT_EQ(Value("SELECT token || '|' || code || '|' || etime || '|' || instant || '|' || data "
                  "FROM gorgone_history WHERE token = 't'"),
            "t|2|5|0|{\"a\":1}");
  EXPECT_EQ(Value("SELECT count(*) FROM gorgone_history WHERE token IS NULL AND instant = 1"), "1");
  EXPECT_FALSE(proxy_->registry().sync()["2"].in_progress);
  EXPECT_GT(proxy_->registry().status()["2"].last_ping_recv, 0);
  ASSERT_EQ(host_->parents().size(), 1u);
  EXPECT_EQ(host_->parents()[0].action, "SYNCLOGS");
  // The core id is empty here: the proxy was never given one (init), so no worker runs.
  EXPECT_EQ(host_->parents()[0].data, R"({"code":0,"data":{"id":""}})");
  EXPECT_TRUE(host_->rows().empty());
}

TEST_P(SetlogsTest, AnAnswerNobodyWaitsForIsRefused) {
  send("SETLOGS", setlogs(R"([{"ctime":1,"code":0,"data":"{}"}])"));
  EXPECT_EQ(stored(), 0);
  ASSERT_EQ(host_->rows().size(), 1u);
  EXPECT_EQ(host_->rows()[0].data,
            R"({"message":"proxy - skip setlogs response. Maybe too much time to get response. Retry"})");
}

TEST_P(SetlogsTest, MalformedPayloadsAreRefusedAndChangeNothing) {
  const std::vector<std::string> bad = {
      "{not json",
      setlogs(R"({"ctime":1})"),                          // result not a list
      setlogs(R"([{"ctime":1,"data":"{}"}, 42])"),         // a row that is not an object
      setlogs(R"([["ctime", 1]])"),
  };
  for (const auto& payload : bad) {
    host_->clear_rows();
    asked();
    send("SETLOGS", payload);
    EXPECT_EQ(stored(), 0) << payload;
    EXPECT_EQ(position(), 0) << payload;
    ASSERT_EQ(host_->rows().size(), 1u) << payload;
    EXPECT_EQ(host_->rows()[0].code, 1) << payload;
    EXPECT_EQ(host_->rows()[0].token, "tok") << payload;
  }
  EXPECT_TRUE(host_->parents().empty());
}

TEST_P(SetlogsTest, RowsWithABadCtimeAreSkippedWithALogLine) {
  asked();
  send("SETLOGS", setlogs(R"([{"ctime":"abc","data":"{}"},{"data":"{}"},{"ctime":null,"data":"{}"},
                             {"ctime":7,"code":0,"data":"{}"}])"));
  EXPECT_EQ(stored(), 1);
  EXPECT_EQ(position(), 7);
  EXPECT_TRUE(logged("wrong ctime for '2'"));
}

TEST_P(SetlogsTest, RowsAtOrBelowTheCursorAreNotStoredTwice) {
  asked();
  send("SETLOGS", setlogs(R"([{"ctime":10,"data":"{\"n\":1}"},{"ctime":20,"data":"{\"n\":2}"}])"));
  ASSERT_EQ(stored(), 2);
  // A late answer to an earlier GETLOG (same cursor) carries the same rows and one more.
  asked();
  send("SETLOGS", setlogs(R"([{"ctime":10,"data":"{\"n\":1}"},{"ctime":20,"data":"{\"n\":2}"},
                             {"ctime":30,"data":"{\"n\":3}"}])"));
  EXPECT_EQ(stored(), 3);
  EXPECT_EQ(position(), 30);
  EXPECT_TRUE(logged("(1 rows, 2 already stored)"));
}

// A ctime far ahead (a broken clock, or a hostile 1e300) would move the cursor there, and
// no later row of the node would ever be synced again.
TEST_P(SetlogsTest, ACtimeFarAheadIsRefusedOnceLoggedAndNeverMovesTheCursor) {
  const double now = static_cast<double>(std::time(nullptr));
  auto ctime = [](double v) {
    char b[40];
    std::snprintf(b, sizeof b, "%.17g", v);
    return std::string(b);
  };
  asked();
  send("SETLOGS", setlogs("[{\"ctime\":100,\"token\":\"a\",\"data\":\"{}\"},"
                          "{\"ctime\":1e300,\"token\":\"far\",\"data\":\"{}\"},"
                          "{\"ctime\":" + ctime(now + 2 * 86400) + ",\"token\":\"far2\",\"data\":\"{}\"},"
                          "{\"ctime\":200,\"token\":\"b\",\"data\":\"{}\"}]"));
  EXPECT_EQ(stored(), 2);
  EXPECT_EQ(position(), 200);
  EXPECT_EQ(Value("SELECT count(*) FROM gorgone_history WHERE token LIKE 'far%'"), "0");
  EXPECT_TRUE(logged("(2 rows, 2 refused for a ctime ahead)"));
  auto lines = [&](const std::string& text) {
    int n = 0;
    for (const auto& l : host_->logs()) n += l.find("node '2'") != std::string::npos && l.find(text) != std::string::npos;
    return n;
  };
  EXPECT_EQ(lines("1.0000000000000001e+300"), 1);
  EXPECT_EQ(lines(ctime(now + 2 * 86400)), 1);
  // The node sends them again at every sync: stored never, logged once per value.
  asked();
  send("SETLOGS", setlogs("[{\"ctime\":1e300,\"token\":\"far\",\"data\":\"{}\"},"
                          "{\"ctime\":" + ctime(now + 3600) + ",\"token\":\"soon\",\"data\":\"{}\"}]"));
  EXPECT_EQ(stored(), 3);  // within a day: accepted
  EXPECT_EQ(position(), now + 3600);
  EXPECT_EQ(lines("1.0000000000000001e+300"), 1);
  EXPECT_TRUE(host_->rows().empty());
}

// A Perl poller passes a command's Latin-1 output through, and a NUL as "\u0000": the rows
// are stored with U+FFFD and the cursor moves on.
TEST_P(SetlogsTest, Latin1AndNulRowsAreStoredReplaced) {
  asked();
  send("SETLOGS", setlogs("[{\"ctime\":10,\"token\":\"l1\",\"data\":\"{\\\"stdout\\\":\\\"caf\xE9\\\"}\"},"
                          "{\"ctime\":20,\"token\":\"nul\",\"data\":\"a\\u0000b\"},"
                          "{\"ctime\":30,\"token\":\"ok\",\"data\":\"{}\"}]"));
  EXPECT_EQ(stored(), 3);
  EXPECT_EQ(position(), 30);
  EXPECT_EQ(Value("SELECT data FROM gorgone_history WHERE token = 'l1'"), "{\"stdout\":\"caf\xEF\xBF\xBD\"}");
  EXPECT_EQ(Value("SELECT data FROM gorgone_history WHERE token = 'nul'"), "a\xEF\xBF\xBD" "b");
}

// A row the database refuses on its own (here an operator's size limit) gets a KO row with
// its token and a log line; the others go in and the cursor moves.
TEST_P(SetlogsTest, ARowTheStoreRefusesBecomesAKoRowAndALogLine) {
  ASSERT_EQ(gorgone_test::StoreExec(store_->ref(), store_->refuse_data_longer_than("data_size", 1000)), "");
  asked();
  send("SETLOGS", setlogs("[{\"ctime\":10,\"token\":\"a\",\"data\":\"{}\"},"
                          "{\"ctime\":20,\"token\":\"big\",\"data\":\"" + std::string(2000, 'x') + "\"},"
                          "{\"ctime\":30,\"token\":\"b\",\"data\":\"{}\"}]"));
  EXPECT_EQ(stored(), 3);
  EXPECT_EQ(position(), 30);
  EXPECT_EQ(Value("SELECT code FROM gorgone_history WHERE token = 'big'"), "1");
  EXPECT_EQ(Value("SELECT count(*) FROM gorgone_history WHERE token IN ('a', 'b') AND code = 0"), "2");
  EXPECT_TRUE(logged("a row of node '2' (token \"big\") was refused by the history store"));
  EXPECT_TRUE(logged("data_size"));
}

TEST_P(SetlogsTest, TheCursorSurvivesTheJsonRoundTripBitForBit) {
  // What a node writes (Writer::Double) and the proxy reads back (json::parse) must be the
  // same double, or the next GETLOG re-sends the last row or skips one. RapidJSON's default
  // number parsing is off by an ULP for about one microsecond timestamp in 10^4.
  std::mt19937_64 random(42);
  int mismatches = 0;
  for (int i = 0; i < 200000; ++i) {
    double ctime = static_cast<double>(1700000000000000LL + static_cast<long long>(random() % 400000000000000ULL)) / 1e6;
    if (i % 2 == 1) ctime += std::uniform_real_distribution<double>(0, 1e-6)(random);  // any double
    rapidjson::StringBuffer sb;
    json::Writer w(sb);
    w.StartObject();
    w.Key("ctime");
    w.Double(ctime);
    w.EndObject();
    json::Document d;
    ASSERT_TRUE(json::parse(d, std::string(sb.GetString(), sb.GetSize())));
    double back = json::as_number(d["ctime"]).value();
    if (std::memcmp(&back, &ctime, sizeof(double)) != 0) ++mismatches;
  }
  EXPECT_EQ(mismatches, 0);

  // And through SETLOGS into the database.
  const double last = 1764106074.1234567;
  asked();
  rapidjson::StringBuffer sb;
  json::Writer w(sb);
  w.Double(last);
  send("SETLOGS", setlogs(std::string(R"([{"ctime":)") + sb.GetString() + R"(,"data":"{}"}])"));
  double got = position();
  EXPECT_EQ(std::memcmp(&got, &last, sizeof(double)), 0);
}

// A store that counts how the proxy reads positions, over a real store.
class CountingHistory : public History {
 public:
  explicit CountingHistory(History& real) : real_(real) {}
  Result<std::int64_t> add(const HistoryRow& row) override { return real_.add(row); }
  Result<std::vector<HistoryRow>> getlog(const GetlogFilter& f) override { return real_.getlog(f); }
  Result<double> sync_position(const std::string& id) override {
    ++one_by_one;
    return real_.sync_position(id);
  }
  Result<std::map<std::string, double>> sync_positions() override {
    ++all_at_once;
    return real_.sync_positions();
  }
  Status store_synced(const std::string& id, const std::vector<HistoryRow>& rows, double p) override {
    return real_.store_synced(id, rows, p);
  }
  Status save_identity(const IdentityRow& r) override { return real_.save_identity(r); }
  Status touch_identity(const std::string& i, std::int64_t m) override { return real_.touch_identity(i, m); }
  Result<std::vector<IdentityRow>> load_identities() override { return real_.load_identities(); }
  Result<std::optional<std::string>> target_fingerprint(const std::string& t) override {
    return real_.target_fingerprint(t);
  }
  Status add_target_fingerprint(const std::string& t, const std::string& f) override {
    return real_.add_target_fingerprint(t, f);
  }
  int one_by_one = 0, all_at_once = 0;

 private:
  History& real_;
};

// A central registering its fleet reads every node's position in one query, not one query
// per node.
class SyncPositions : public ::testing::TestWithParam<StoreKind> {};

TEST_P(SyncPositions, AFleetRegisteringReadsEveryPositionInOneQuery) {
  FreshStore db(GetParam());
  auto pg = db.open();
  ASSERT_TRUE(pg.ok()) << pg.error();
  std::string nodes;
  for (int i = 2; i < 42; ++i) {
    if (i % 2 == 0) {
      ASSERT_TRUE(pg.value()->store_synced(std::to_string(i), {}, 1700000000.5 + i).ok());
    }
    nodes += std::string(nodes.empty() ? "" : ",") + R"({"id":")" + std::to_string(i) +
             R"(","type":"push_zmq","address":"127.0.0.1","port":1})";
  }
  CountingHistory counting(*pg.value());
  FakeHost host(counting);
  Proxy proxy(host, Settings());
  proxy.routing(protocol::Frame{"REGISTERNODES", "tok", "", R"({"nodes":[)" + nodes + "]}"}, RouteContext{"internal", "x"});
  host.run_posted();
  EXPECT_EQ(counting.all_at_once, 1);
  EXPECT_EQ(counting.one_by_one, 0);
  for (int i = 2; i < 42; ++i)
    EXPECT_EQ(proxy.registry().sync()[std::to_string(i)].ctime, i % 2 == 0 ? 1700000000.5 + i : 0.0) << i;
  // One more node later reads its own.
  proxy.routing(protocol::Frame{"REGISTERNODES", "tok", "",
                                R"({"nodes":[{"id":"50","type":"push_zmq","address":"127.0.0.1","port":1}]})"},
                RouteContext{"internal", "x"});
  host.run_posted();
  EXPECT_EQ(counting.all_at_once, 1);
  EXPECT_EQ(counting.one_by_one, 1);
}

// The loop never waits for the database: registering nodes and storing a page only queue
// work for the history thread. A SETLOGS page is stored before the cursor moves, and an
// answer arriving meanwhile is refused instead of being stored twice.
TEST_P(SyncPositions, TheLoopQueuesDatabaseWorkAndSyncsFromThePositionOnceKnown) {
  FreshStore db(GetParam());
  auto pg = db.open();
  ASSERT_TRUE(pg.ok()) << pg.error();
  ASSERT_TRUE(pg.value()->store_synced("2", {}, 1700000000.25).ok());
  CountingHistory counting(*pg.value());
  FakeHost host(counting);
  host.defer_history_jobs = true;
  Proxy proxy(host, Settings());
  proxy.routing(protocol::Frame{"REGISTERNODES", "tok", "",
                                R"({"nodes":[{"id":"2","type":"push_zmq","address":"127.0.0.1","port":1}]})"},
                RouteContext{"internal", "x"});
  EXPECT_EQ(counting.one_by_one + counting.all_at_once, 0) << "the position was read on the loop";
  EXPECT_EQ(proxy.registry().sync()["2"].ctime, 0.0);
  host.run_posted();
  EXPECT_EQ(proxy.registry().sync()["2"].ctime, 1700000000.25);
  proxy.registry().sync()["2"].in_progress = true;  // as if the GETLOG had gone
  const std::string page =
      R"({"code":0,"data":{"action":"getlog","id":"2","result":[{"ctime":1700000001.5,"code":2,"token":"t1","data":"{}"}]}})";
  proxy.routing(protocol::Frame{"SETLOGS", "tok", "", page}, RouteContext{"internal", "x"});
  EXPECT_TRUE(proxy.registry().sync()["2"].in_progress) << "the sync ended before its page was stored";
  EXPECT_EQ(StoreValue(db.ref(), "SELECT count(*) FROM gorgone_history"), "0") << "stored on the loop";
  proxy.routing(protocol::Frame{"SETLOGS", "tok2", "", page}, RouteContext{"internal", "x"});
  host.run_posted();
  EXPECT_EQ(StoreValue(db.ref(), "SELECT count(*) FROM gorgone_history WHERE token = 't1'"), "1");
  EXPECT_EQ(proxy.registry().sync()["2"].ctime, 1700000001.5);
  EXPECT_FALSE(proxy.registry().sync()["2"].in_progress);
  bool refused = false;
  for (const auto& r : host.rows_for("tok2")) refused |= r.data.find("skip setlogs response") != std::string::npos;
  EXPECT_TRUE(refused) << "the repeated answer was not refused";
}

INSTANTIATE_TEST_SUITE_P(Stores, SetlogsTest, ::testing::Values(StoreKind::kPg, StoreKind::kSqlite), StoreParamName);
INSTANTIATE_TEST_SUITE_P(Stores, SyncPositions, ::testing::Values(StoreKind::kPg, StoreKind::kSqlite), StoreParamName);

}  // namespace
}  // namespace gorgone::proxy
