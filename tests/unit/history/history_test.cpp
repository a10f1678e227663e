// The history stores: every test of the History behaviour runs against PgHistory on a real
// PostgreSQL cluster (tests/support/pg-private.sh) and against SqliteHistory on a file in a
// fresh temporary directory (test names end in /Pg and /SQLite); PostgreSQL's connection
// handling and SQLite's file handling have tests of their own.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "history_pg.hpp"
#include "history_sqlite.hpp"
#include "eventually.hpp"
#include "history_writer.hpp"
#include "pg_fixture.hpp"
#include "fresh_store.hpp"

namespace gorgone {
namespace {

using gorgone_test::FreshStore;
using gorgone_test::PgCluster;
using gorgone_test::PgValue;
using gorgone_test::StoreKind;

double Now() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6;
}

HistoryRow Row(std::optional<std::string> token, int code, std::string data, std::int64_t etime = 0,
               int instant = 0) {
  HistoryRow r;
  r.token = std::move(token);
  r.code = code;
  r.data = std::move(data);
  r.etime = etime;
  r.instant = instant;
  return r;
}

// Every row (id > 0).
GetlogFilter Everything() {
  GetlogFilter f;
  f.id = 0;
  return f;
}

GetlogFilter TokenFilter(const std::string& token) {
  GetlogFilter f;
  f.token = token;
  return f;
}

std::vector<std::int64_t> Ids(const std::vector<HistoryRow>& rows) {
  std::vector<std::int64_t> ids;
  for (const auto& r : rows) ids.push_back(r.id);
  return ids;
}

// A fresh store of Kind() per test.
class StoreTest : public ::testing::Test {
 protected:
  virtual StoreKind Kind() const = 0;

  void SetUp() override {
    store_ = std::make_unique<FreshStore>(Kind());
    auto h = store_->open();
    ASSERT_TRUE(h.ok()) << h.error();
    history_ = std::move(h.value());
  }

  bool IsPg() const { return Kind() == StoreKind::kPg; }
  // The SQL for this store's dialect.
  std::string Sql(const std::string& pg, const std::string& sqlite) const { return IsPg() ? pg : sqlite; }

  std::int64_t Add(const HistoryRow& row) {
    auto id = history_->add(row);
    EXPECT_TRUE(id.ok()) << id.error();
    return id.ok() ? id.value() : -1;
  }

  std::vector<HistoryRow> Getlog(const GetlogFilter& f) {
    auto rows = history_->getlog(f);
    EXPECT_TRUE(rows.ok()) << rows.error();
    return rows.ok() ? rows.value() : std::vector<HistoryRow>();
  }

  std::vector<HistoryRow> All() {
    GetlogFilter f;
    f.id = 0;
    return Getlog(f);
  }

  // SQL from a connection of its own.
  std::string Value(const std::string& sql) { return gorgone_test::StoreValue(store_->ref(), sql); }
  std::string Exec(const std::string& sql) { return gorgone_test::StoreExec(store_->ref(), sql); }
  std::string Count(const std::string& table) { return Value("SELECT count(*) FROM " + table); }

  std::unique_ptr<FreshStore> store_;
  std::unique_ptr<History> history_;
};

// The History behaviour, on both stores.
class HistoryTest : public StoreTest, public ::testing::WithParamInterface<StoreKind> {
 protected:
  StoreKind Kind() const override { return GetParam(); }
};

// What only PostgreSQL has: a server that restarts, backends that get killed.
class PgHistoryTest : public StoreTest {
 protected:
  StoreKind Kind() const override { return StoreKind::kPg; }
};

std::string StoreParamName(const ::testing::TestParamInfo<StoreKind>& info) { return gorgone_test::StoreName(info.param); }

TEST_P(HistoryTest, SchemaCreationTwiceIsHarmless) {
  Add(Row("t", 2, "{}"));
  auto again = store_->open();
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(All().size(), 1u);
  EXPECT_EQ(Value("SELECT count(*) FROM gorgone_information WHERE \"key\" = 'version'"), "1");
  EXPECT_EQ(Value("SELECT value FROM gorgone_information WHERE \"key\" = 'version'"), "23.10.0");
  // The SQLite file has Gorgone's own index names.
  std::vector<std::string> indexes = {"idx_gorgone_history_token", "idx_gorgone_history_etime",
                                      "idx_gorgone_history_code", "idx_gorgone_history_ctime",
                                      "idx_gorgone_history_instant"};
  indexes.push_back(IsPg() ? "idx_gorgone_identity_identity" : "idx_gorgone_identity");
  if (!IsPg()) {
    for (const char* more : {"idx_gorgone_history_id", "idx_gorgone_parent", "idx_gorgone_synchistory_id",
                             "idx_gorgone_target_fingerprint_target"})
      indexes.push_back(more);
  }
  for (const auto& index : indexes) {
    EXPECT_EQ(Value(Sql("SELECT count(*) FROM pg_indexes WHERE indexname = '" + index + "'",
                        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = '" + index + "'")),
              "1")
        << index;
  }
}

TEST_P(HistoryTest, ConcurrentSchemaCreation) {
  FreshStore fresh(GetParam());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      auto h = fresh.open();
      if (!h.ok()) {
        ADD_FAILURE() << h.error();
        ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(gorgone_test::StoreValue(fresh.ref(), "SELECT count(*) FROM gorgone_information"), "1");
}

TEST_P(HistoryTest, AddKeepsFieldsAndDefaultsTimes) {
  double before = Now();
  std::int64_t id1 = Add(Row("tok", 100, R"({"message":"hi"})", 12345, 1));
  std::int64_t id2 = Add(Row("tok", 2, "{}"));
  HistoryRow explicit_ctime = Row("tok", 0, "x");
  explicit_ctime.ctime = 1795634436.6373;
  std::int64_t id3 = Add(explicit_ctime);
  double after = Now();

  GetlogFilter f;
  f.token = "tok";
  auto rows = Getlog(f);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(Ids(rows), (std::vector<std::int64_t>{id1, id2, id3}));
  EXPECT_EQ(rows[0].token, std::optional<std::string>("tok"));
  EXPECT_EQ(rows[0].code, 100);
  EXPECT_EQ(rows[0].etime, 12345);
  EXPECT_EQ(rows[0].instant, 1);
  EXPECT_EQ(rows[0].data, R"({"message":"hi"})");
  // time() reads a coarse clock that may still be in the previous second.
  EXPECT_GE(rows[1].etime, static_cast<std::int64_t>(before) - 1);
  EXPECT_LE(rows[1].etime, static_cast<std::int64_t>(after) + 1);
  EXPECT_EQ(rows[1].instant, 0);
  // Default ctimes: now, 10 us resolution, strictly increasing.
  EXPECT_GE(rows[0].ctime, before - 1e-5);
  EXPECT_LE(rows[1].ctime, after + 1e-5);
  EXPECT_LT(rows[0].ctime, rows[1].ctime);
  EXPECT_EQ(rows[2].ctime, 1795634436.6373);
}

// PostgreSQL text holds neither NUL nor (in a UTF8 database) ill-formed UTF-8: such a row
// used to be refused, i.e. lost. It is stored with U+FFFD in place of the bad bytes.
TEST_P(HistoryTest, AddReplacesNulAndInvalidUtf8) {
  Add(Row("t", 1, std::string("ab\0cd", 5)));
  Add(Row("caf\xE9", 100, "{\"stdout\":\"caf\xE9 \xC3\xA9\"}"));
  auto rows = All();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].data, "ab\xEF\xBF\xBD" "cd");
  EXPECT_EQ(rows[1].token, std::optional<std::string>("caf\xEF\xBF\xBD"));
  EXPECT_EQ(rows[1].data, "{\"stdout\":\"caf\xEF\xBF\xBD \xC3\xA9\"}");  // valid é kept
}

TEST_P(HistoryTest, GetlogFilters) {
  std::int64_t a = Add(Row("a", 0, "1", 100));
  std::int64_t b = Add(Row("a", 2, "2", 200));
  std::int64_t c = Add(Row("b", 2, "3", 300));
  std::int64_t d = Add(Row("b", 1, "4", 400));
  auto all = All();
  ASSERT_EQ(all.size(), 4u);

  GetlogFilter f;
  f.id = b;
  EXPECT_EQ(Ids(Getlog(f)), (std::vector<std::int64_t>{c, d}));

  f = GetlogFilter();
  f.token = "a";
  EXPECT_EQ(Ids(Getlog(f)), (std::vector<std::int64_t>{a, b}));

  // ctime > x is exact: the row whose ctime is x is not returned.
  f = GetlogFilter();
  f.ctime = all[1].ctime;
  EXPECT_EQ(Ids(Getlog(f)), (std::vector<std::int64_t>{c, d}));

  f = GetlogFilter();
  f.etime = 250;
  EXPECT_EQ(Ids(Getlog(f)), (std::vector<std::int64_t>{c, d}));

  f = GetlogFilter();
  f.code = 2;
  EXPECT_EQ(Ids(Getlog(f)), (std::vector<std::int64_t>{b, c}));

  f = GetlogFilter();
  f.code = 2;
  f.token = "b";
  f.etime = 100;
  EXPECT_EQ(Ids(Getlog(f)), (std::vector<std::int64_t>{c}));

  f = GetlogFilter();
  f.token = "nope";
  EXPECT_TRUE(Getlog(f).empty());

  // No filter at all: every row (the GETLOG handler refuses this case itself).
  EXPECT_EQ(Getlog(GetlogFilter()).size(), 4u);
}

TEST_P(HistoryTest, GetlogLimitTakesHighestIdsInNumericOrder) {
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 12; ++i) ids.push_back(Add(Row("t", 0, std::to_string(i))));
  GetlogFilter f;
  f.token = "t";
  // Ids cross 9 -> 10: numeric order, not string order.
  EXPECT_EQ(Ids(Getlog(f)), ids);
  f.limit = 3;
  EXPECT_EQ(Ids(Getlog(f)), (std::vector<std::int64_t>{ids[9], ids[10], ids[11]}));
  f.limit = 0;
  EXPECT_TRUE(Getlog(f).empty());
  f.limit = 100;
  EXPECT_EQ(Getlog(f).size(), 12u);
  f.limit = -1;
  auto bad = history_->getlog(f);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("limit"), std::string::npos);
}

TEST_P(HistoryTest, GetlogCtimePagesInCtimeOrderAndKeepsTies) {
  // Ids and ctimes disagree on purpose (explicit ctimes): a page follows ctime.
  std::vector<std::int64_t> by_ctime(6);
  for (int i = 5; i >= 0; --i) {
    HistoryRow r = Row("t", 0, std::to_string(i));
    r.ctime = 1000.5 + i;
    by_ctime[i] = Add(r);
  }
  HistoryRow tie = Row("t", 0, "tie");
  tie.ctime = 1002.5;  // same ctime as by_ctime[2]
  std::int64_t late = Add(tie);

  GetlogFilter f;
  f.ctime = 0;
  f.ctime_page = 2;
  EXPECT_EQ(Ids(Getlog(f)), (std::vector<std::int64_t>{by_ctime[0], by_ctime[1]}));
  // The page would end on a tie: both rows of that ctime come, in id order.
  f.ctime = 1000.5;
  EXPECT_EQ(Ids(Getlog(f)), (std::vector<std::int64_t>{by_ctime[1], by_ctime[2], late}));
  f.ctime = 1003.5;
  f.ctime_page = 10;
  EXPECT_EQ(Ids(Getlog(f)), (std::vector<std::int64_t>{by_ctime[4], by_ctime[5]}));
  f.ctime = 1005.5;
  EXPECT_TRUE(Getlog(f).empty());
  // Other filters still apply inside the page.
  f.ctime = 0;
  f.ctime_page = 1;
  f.token = "nope";
  EXPECT_TRUE(Getlog(f).empty());
  f.token.reset();
  f.ctime_page = 0;
  EXPECT_FALSE(history_->getlog(f).ok());
}

TEST_P(HistoryTest, CtimesSurvivePerlsFifteenDigits) {
  // A Perl parent prints our ctime back with 15 significant digits in its next
  // GETLOG {"ctime"}: that text must name the very same double, or its cursor drifts.
  for (int i = 0; i < 200; ++i) Add(Row("t", 0, "x"));
  ASSERT_TRUE(history_->store_synced("9", std::vector<HistoryRow>(2000, Row("s", 0, "y")), 1).ok());
  auto rows = All();
  ASSERT_EQ(rows.size(), 2200u);
  int drift = 0;
  for (const auto& r : rows) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.15g", r.ctime);
    if (std::strtod(text, nullptr) != r.ctime) ++drift;
  }
  EXPECT_EQ(drift, 0);
}

TEST_P(HistoryTest, NullTokenAndEmptyTokenDiffer) {
  std::int64_t null_id = Add(Row(std::nullopt, 1, R"({"message":"gorgoned is starting..."})"));
  std::int64_t empty_id = Add(Row(std::string(), 1, R"({"message":"Send message problem"})"));
  auto rows = All();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].id, null_id);
  EXPECT_FALSE(rows[0].token.has_value());
  EXPECT_EQ(rows[1].id, empty_id);
  ASSERT_TRUE(rows[1].token.has_value());
  EXPECT_EQ(*rows[1].token, "");

  GetlogFilter f;
  f.token = "";
  EXPECT_EQ(Ids(Getlog(f)), (std::vector<std::int64_t>{empty_id}));
  EXPECT_EQ(Value("SELECT count(*) FROM gorgone_history WHERE token IS NULL"), "1");
}

TEST_P(HistoryTest, SyncPositionBeforeAndAfter) {
  auto pos = history_->sync_position("5");
  ASSERT_TRUE(pos.ok()) << pos.error();
  EXPECT_EQ(pos.value(), 0.0);

  ASSERT_TRUE(history_->store_synced("5", {Row("t", 0, "{}")}, 1795634441.27626).ok());
  EXPECT_EQ(history_->sync_position("5").value(), 1795634441.27626);
  EXPECT_EQ(history_->sync_position("6").value(), 0.0);

  // The upsert moves the position of an existing node.
  ASSERT_TRUE(history_->store_synced("5", {}, 1795634500.000001).ok());
  EXPECT_EQ(history_->sync_position("5").value(), 1795634500.000001);
  EXPECT_EQ(Count("gorgone_synchistory"), "1");
}

TEST_P(HistoryTest, SyncPositionsReadsEveryNodeAtOnce) {
  auto none = history_->sync_positions();
  ASSERT_TRUE(none.ok()) << none.error();
  EXPECT_TRUE(none.value().empty());
  ASSERT_TRUE(history_->store_synced("5", {Row("t", 0, "{}")}, 1795634441.27626).ok());
  ASSERT_TRUE(history_->store_synced("poller-\xc3\xa9", {Row("u", 0, "{}")}, 1795634442.5).ok());
  auto all = history_->sync_positions();
  ASSERT_TRUE(all.ok()) << all.error();
  EXPECT_EQ(all.value(), (std::map<std::string, double>{{"5", 1795634441.27626}, {"poller-\xc3\xa9", 1795634442.5}}));
}

// A server that accepts the TCP connection and never speaks (a hung PostgreSQL, a wrong
// port behind a firewall that proxies) makes open() fail after connect_timeout instead of
// hanging the daemon's start for ever.
TEST(PgHistoryOpen, AServerThatNeverAnswersFailsTheOpenWithAMessage) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  auto h = PgHistory::open("host=127.0.0.1 port=" + std::to_string(ntohs(a.sin_port)) + " dbname=x user=x");
  ::close(fd);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.error().find("cannot connect to PostgreSQL"), std::string::npos) << h.error();
}

TEST_P(HistoryTest, StoreSyncedNothingToDo) {
  ASSERT_TRUE(history_->store_synced("5", {}, 0).ok());
  EXPECT_EQ(Count("gorgone_synchistory"), "0");
  EXPECT_EQ(Count("gorgone_history"), "0");
}

TEST_P(HistoryTest, StoreSyncedRestampsCtimeAndKeepsTheRest) {
  std::vector<HistoryRow> rows;
  for (int i = 0; i < 5; ++i) {
    HistoryRow r = Row(i % 2 ? std::optional<std::string>("tok") : std::nullopt, i,
                       "d" + std::to_string(i), 1000 + i, i % 2);
    r.id = 900 + i;     // the node's ids are not kept
    r.ctime = 1.5 + i;  // nor its ctimes
    rows.push_back(r);
  }
  Add(Row("local", 0, "{}"));
  double before = Now();
  ASSERT_TRUE(history_->store_synced("7", rows, 5.5).ok());
  auto stored = All();
  ASSERT_EQ(stored.size(), 6u);
  for (int i = 0; i < 5; ++i) {
    const HistoryRow& s = stored[i + 1];
    EXPECT_EQ(s.token, rows[i].token);
    EXPECT_EQ(s.code, rows[i].code);
    EXPECT_EQ(s.etime, rows[i].etime);
    EXPECT_EQ(s.instant, rows[i].instant);
    EXPECT_EQ(s.data, rows[i].data);
    EXPECT_LT(s.id, 900);
    EXPECT_GE(s.ctime, before - 1e-5);
    EXPECT_GT(s.ctime, stored[i].ctime);  // strictly increasing, after the local row
  }
  EXPECT_EQ(history_->sync_position("7").value(), 5.5);
}

// A node's page with a NUL or a Latin-1 row used to fail as a whole, so the node's cursor
// never moved again. The rows go in with U+FFFD instead.
TEST_P(HistoryTest, StoreSyncedReplacesNulAndInvalidUtf8) {
  ASSERT_TRUE(history_->store_synced("5", {Row("t", 0, "first")}, 10).ok());
  std::vector<HistoryRow> rows;
  for (int i = 0; i < 3000; ++i) rows.push_back(Row("t", 0, std::string(200, 'x')));
  rows[2500].data = std::string("bad\0row", 7);
  rows[2600].data = "invalid UTF-8 \xff\xfe";
  rows[2700].token = "tok\xE9";
  std::vector<RefusedRow> refused;
  Status st = history_->store_synced_reporting("5", rows, 20, refused);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(refused.empty());
  auto stored = All();
  ASSERT_EQ(stored.size(), 3001u);
  EXPECT_EQ(stored[2501].data, "bad\xEF\xBF\xBDrow");
  EXPECT_EQ(stored[2601].data, "invalid UTF-8 \xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(stored[2701].token, std::optional<std::string>("tok\xEF\xBF\xBD"));
  EXPECT_EQ(Count("gorgone_history WHERE code = 1"), "0");
  EXPECT_EQ(history_->sync_position("5").value(), 20.0);
}

// A row the server refuses even once valid UTF-8 (here an operator's size limit on the
// table) costs that row only: it is replaced by a KO row with its token that names the node
// and the reason, the others go in, and the position moves.
TEST_P(HistoryTest, StoreSyncedFallsBackToRowByRowWhenTheServerRefusesARow) {
  ASSERT_EQ(Exec(store_->refuse_data_longer_than("data_size", 1000)), "");
  std::vector<HistoryRow> rows;
  for (int i = 0; i < 2000; ++i) rows.push_back(Row("t" + std::to_string(i), 0, "ok " + std::to_string(i)));
  rows[1500].data = std::string(2000, 'x');
  rows[1600].data = "caf\xE9";  // repaired as well on the way
  std::vector<RefusedRow> refused;
  Status st = history_->store_synced_reporting("node-5", rows, 20, refused);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].index, 1500u);
  EXPECT_NE(refused[0].reason.find("data_size"), std::string::npos) << refused[0].reason;
  auto stored = All();
  ASSERT_EQ(stored.size(), 2000u);
  for (int i = 0; i < 2000; ++i) {
    EXPECT_EQ(stored[i].token, rows[i].token) << i;
    if (i == 1500 || i == 1600) continue;
    EXPECT_EQ(stored[i].data, rows[i].data) << i;
    EXPECT_EQ(stored[i].code, 0) << i;
  }
  EXPECT_EQ(stored[1600].data, "caf\xEF\xBF\xBD");
  EXPECT_EQ(stored[1500].code, 1);
  EXPECT_NE(stored[1500].data.find("node-5"), std::string::npos) << stored[1500].data;
  EXPECT_NE(stored[1500].data.find("data_size"), std::string::npos) << stored[1500].data;
  EXPECT_EQ(stored[1500].data.rfind("{\"message\":", 0), 0u) << stored[1500].data;
  for (std::size_t i = 1; i < stored.size(); ++i) EXPECT_GT(stored[i].ctime, stored[i - 1].ctime);
  EXPECT_EQ(history_->sync_position("node-5").value(), 20.0);
  // The three-argument form does the same.
  ASSERT_TRUE(history_->store_synced("node-5", {Row("a", 0, std::string(2000, 'y')), Row("b", 0, "fine")}, 30).ok());
  EXPECT_EQ(Count("gorgone_history WHERE code = 1"), "2");
  EXPECT_EQ(Value("SELECT data FROM gorgone_history WHERE token = 'b'"), "fine");
  EXPECT_EQ(history_->sync_position("node-5").value(), 30.0);
}

// When even the KO row cannot be written, nothing is stored and the position stays.
TEST_P(HistoryTest, StoreSyncedRowByRowIsAtomicWhenTheKoRowFails) {
  ASSERT_TRUE(history_->store_synced("5", {}, 10).ok());
  ASSERT_EQ(Exec(Sql("ALTER TABLE gorgone_history ADD CONSTRAINT no_bad CHECK (token <> 'bad')",
                     "CREATE TRIGGER no_bad BEFORE INSERT ON gorgone_history WHEN NEW.token = 'bad' "
                     "BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: no_bad'); END")),
            "");
  std::vector<HistoryRow> rows(50, Row("t", 0, "{}"));
  rows[25].token = "bad";
  std::vector<RefusedRow> refused;
  Status st = history_->store_synced_reporting("5", rows, 20, refused);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("no_bad"), std::string::npos) << st.message();
  EXPECT_TRUE(refused.empty());
  EXPECT_EQ(Count("gorgone_history"), "0");
  EXPECT_EQ(history_->sync_position("5").value(), 10.0);
  EXPECT_TRUE(history_->add(Row("t", 0, "{}")).ok());  // the connection is usable
}

// The rows are in, the position update fails: the rows must go away too.
TEST_P(HistoryTest, StoreSyncedIsAtomicWhenThePositionFails) {
  ASSERT_TRUE(history_->store_synced("5", {}, 10).ok());
  ASSERT_EQ(Exec(Sql("ALTER TABLE gorgone_synchistory ADD CONSTRAINT small CHECK (ctime < 100)",
                     "CREATE TRIGGER small_i BEFORE INSERT ON gorgone_synchistory WHEN NEW.ctime >= 100 "
                     "BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: small'); END; "
                     "CREATE TRIGGER small_u BEFORE UPDATE ON gorgone_synchistory WHEN NEW.ctime >= 100 "
                     "BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: small'); END")),
            "");
  std::vector<HistoryRow> rows(100, Row("t", 0, "{}"));
  Status st = history_->store_synced("5", rows, 500);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("position"), std::string::npos) << st.message();
  EXPECT_EQ(Count("gorgone_history"), "0");
  EXPECT_EQ(history_->sync_position("5").value(), 10.0);
  EXPECT_TRUE(history_->add(Row("t", 0, "{}")).ok());
}

TEST_P(HistoryTest, StoreSyncedFailsCleanlyWithoutTheTable) {
  ASSERT_TRUE(history_->store_synced("5", {}, 10).ok());
  ASSERT_EQ(Exec("DROP TABLE gorgone_history"), "");
  Status st = history_->store_synced("5", {Row("t", 0, "{}")}, 20);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("gorgone_history"), std::string::npos) << st.message();
  EXPECT_EQ(history_->sync_position("5").value(), 10.0);
}

std::string SpecialData(int i) {
  static const char* const kPieces[] = {"\t",
                                        "\n",
                                        "\r\n",
                                        "\\",
                                        "\\N",
                                        "\\.",
                                        "\"",
                                        "'",
                                        "é",
                                        "日本語",
                                        "😀",
                                        "\\t",
                                        "{\"message\":\"a\\\"b\"}",
                                        "\x01",
                                        "\x7f",
                                        " ",
                                        ""};
  constexpr int kCount = sizeof(kPieces) / sizeof(kPieces[0]);
  std::string out = "{\"i\":" + std::to_string(i) + ",\"s\":\"";
  for (int k = 0; k < 1 + i % 7; ++k) out += kPieces[(i * 7 + k * 3) % kCount];
  if (i % 1000 == 0) out = "\\.";  // alone on a line, this would end a COPY
  if (i % 1000 == 1) out = "";
  if (i % 1000 == 2) out = "\\N";
  return out;
}

// Every synced row stored byte for byte, in order, each with a fresh increasing ctime.
// Stops at the first row that differs (a page of 10 000 would print 10 000 failures).
void ExpectSyncedAsSent(const std::vector<HistoryRow>& stored, const std::vector<HistoryRow>& rows) {
  ASSERT_EQ(stored.size(), rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    ASSERT_EQ(stored[i].token, rows[i].token) << i;
    ASSERT_EQ(stored[i].data, rows[i].data) << i;
    ASSERT_EQ(stored[i].code, rows[i].code) << i;
    ASSERT_EQ(stored[i].etime, rows[i].etime) << i;
    ASSERT_EQ(stored[i].instant, rows[i].instant) << i;
    if (i > 0) {
      ASSERT_GT(stored[i].ctime, stored[i - 1].ctime) << i;
    }
  }
}

// A live sync's small page goes in one statement (PgHistory: arrays of text), not a COPY:
// the same bytes must arrive, with the texts an array literal treats specially.
TEST_P(HistoryTest, StoreSyncedSmallPagesArriveByteIdentical) {
  const char* const kTexts[] = {"NULL", "null", "", " ", " padded ", "{", "}", "{}", "{a,b}", ",", "\"", "\\",
                                "\\\"", "a\"b\\c", "(1,2)", "[1:2]={3}"};
  std::vector<HistoryRow> rows;
  for (int i = 0; i < 64; ++i) {
    std::optional<std::string> token;
    if (i % 4 == 1) token = kTexts[i % 16];
    if (i % 4 == 2) token = "tok\t\\n\n" + std::to_string(i);
    std::string data = i < 16 ? std::string(kTexts[i]) : SpecialData(i) + kTexts[i % 16];
    rows.push_back(Row(token, i % 5, data, 1700000000 + i, i % 2));
  }
  for (std::size_t page = 0; page < rows.size(); page += 16)
    ASSERT_TRUE(history_->store_synced("node", std::vector<HistoryRow>(rows.begin() + page, rows.begin() + page + 16),
                                       100.0 + page).ok());
  ExpectSyncedAsSent(All(), rows);
  EXPECT_EQ(history_->sync_position("node").value(), 148.0);
}

// A store_synced whose first run was committed but whose answer was lost (the connection
// dropped) is run again: the page must not be stored twice. The node's position is already
// the page's end then, which only that page can have set. Small pages, large ones (COPY) and
// the row-by-row way alike; a page with a new position still goes in.
TEST_P(HistoryTest, StoreSyncedRunAgainAtItsPositionStoresNothing) {
  ASSERT_EQ(Exec(store_->refuse_data_longer_than("data_size", 1000)), "");
  auto page = [](const std::string& token, int n) {
    std::vector<HistoryRow> rows(n, Row(token, 0, "{}"));
    rows.back().data = "last";
    return rows;
  };
  auto count = [&](const std::string& token) { return history_->getlog(TokenFilter(token)).value().size(); };
  const std::vector<HistoryRow> small = page("small", 3), large = page("large", 500);
  std::vector<HistoryRow> refusing = page("refusing", 3);
  refusing[1].data = std::string(2000, 'x');  // refused: stored row by row, a KO row in its place
  for (int run = 0; run < 2; ++run) {
    ASSERT_TRUE(history_->store_synced("5", small, 10).ok());
    ASSERT_TRUE(history_->store_synced("6", large, 20).ok());
    std::vector<RefusedRow> refused;
    ASSERT_TRUE(history_->store_synced_reporting("7", refusing, 30, refused).ok());
    EXPECT_EQ(refused.size(), run == 0 ? 1u : 0u) << "run " << run;
  }
  EXPECT_EQ(count("small"), 3u);
  EXPECT_EQ(count("large"), 500u);
  EXPECT_EQ(count("refusing"), 3u);
  ASSERT_TRUE(history_->store_synced("5", small, 11).ok());
  EXPECT_EQ(count("small"), 6u);
  EXPECT_EQ(history_->sync_position("5").value(), 11.0);
}

TEST_P(HistoryTest, StoreSynced10000RowsArriveByteIdentical) {
  std::vector<HistoryRow> rows;
  for (int i = 0; i < 10000; ++i) {
    std::optional<std::string> token;
    if (i % 3 == 1) token = "";
    if (i % 3 == 2) token = "tok\t\\n\n" + std::to_string(i);
    rows.push_back(Row(token, i % 5, SpecialData(i), 1700000000 + i, i % 2));
  }
  auto start = std::chrono::steady_clock::now();
  Status st = history_->store_synced("node", rows, 1795634441.27626);
  auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(st.ok()) << st.message();
  std::cout << "[ info ] store_synced: 10000 rows in " << elapsed * 1000 << " ms ("
            << static_cast<long>(10000 / elapsed) << " rows/s)" << std::endl;

  ExpectSyncedAsSent(All(), rows);
  EXPECT_EQ(history_->sync_position("node").value(), 1795634441.27626);
}

TEST_P(HistoryTest, Identities) {
  IdentityRow a_old{"aa01", "k1", "iv1", "", "", 100, 100};
  IdentityRow a_new{"aa01", "k2", "iv2", "", "", 200, 200};
  IdentityRow b{"bb02", "k3", "iv3", "ok3", "oiv3", 300, 300};
  IdentityRow c_nokey{"cc03", "", "", "", "", 400, 400};
  for (const auto& r : {a_old, a_new, b, c_nokey}) {
    Status st = history_->save_identity(r);
    ASSERT_TRUE(st.ok()) << st.message();
  }
  ASSERT_TRUE(history_->touch_identity("aa01", 250).ok());
  ASSERT_TRUE(history_->touch_identity("unknown", 250).ok());  // nothing to touch

  auto loaded = history_->load_identities();
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  ASSERT_EQ(loaded->size(), 2u);
  const IdentityRow& a = loaded.value()[0];
  EXPECT_EQ(a.identity, "aa01");
  EXPECT_EQ(a.key, "k2");
  EXPECT_EQ(a.iv, "iv2");
  EXPECT_EQ(a.oldkey, "");
  EXPECT_EQ(a.ctime, 200);
  EXPECT_EQ(a.mtime, 250);
  const IdentityRow& lb = loaded.value()[1];
  EXPECT_EQ(lb.identity, "bb02");
  EXPECT_EQ(lb.oldkey, "ok3");
  EXPECT_EQ(lb.oldiv, "oiv3");
  // The older row of aa01 was not touched.
  EXPECT_EQ(Value("SELECT mtime FROM gorgone_identity WHERE \"key\" = 'k1'"), "100");

  IdentityRow rotated{"aa01", "k9", "iv9", "k2", "iv2", 900, 0};
  ASSERT_TRUE(history_->update_identity_keys(rotated).ok());
  loaded = history_->load_identities();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded.value()[0].key, "k9");
  EXPECT_EQ(loaded.value()[0].oldkey, "k2");
  EXPECT_EQ(loaded.value()[0].oldiv, "iv2");
  EXPECT_EQ(loaded.value()[0].ctime, 900);
  EXPECT_EQ(loaded.value()[0].mtime, 250);
  EXPECT_FALSE(history_->update_identity_keys(IdentityRow{"none", "k", "i", "", "", 1, 1}).ok());
}

TEST_P(HistoryTest, FingerprintsFirstRowWins) {
  auto none = history_->target_fingerprint("tcp://127.0.0.1:25571");
  ASSERT_TRUE(none.ok()) << none.error();
  EXPECT_FALSE(none.value().has_value());
  ASSERT_TRUE(history_->add_target_fingerprint("tcp://127.0.0.1:25571", "Evq4ALly").ok());
  ASSERT_TRUE(history_->add_target_fingerprint("tcp://127.0.0.1:25571", "other").ok());
  ASSERT_TRUE(history_->add_target_fingerprint("tcp://127.0.0.1:1", "x").ok());
  auto fp = history_->target_fingerprint("tcp://127.0.0.1:25571");
  ASSERT_TRUE(fp.ok()) << fp.error();
  EXPECT_EQ(fp.value(), std::optional<std::string>("Evq4ALly"));
}

// Trust on first use in one step: an unknown target stores the fingerprint given and answers
// it; a known one answers its first fingerprint and stores nothing more.
TEST_P(HistoryTest, FingerprintOrAddStoresTheFirstAndAnswersIt) {
  auto first = history_->target_fingerprint_or_add("tcp://127.0.0.1:25572", "first-key");
  ASSERT_TRUE(first.ok()) << first.error();
  EXPECT_EQ(first.value(), "first-key");
  auto again = history_->target_fingerprint_or_add("tcp://127.0.0.1:25572", "another-key");
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(again.value(), "first-key");
  auto stored = history_->target_fingerprint("tcp://127.0.0.1:25572");
  ASSERT_TRUE(stored.ok()) << stored.error();
  EXPECT_EQ(stored.value(), std::optional<std::string>("first-key"));
  // A target with rows already (added the two-step way) answers its oldest one.
  ASSERT_TRUE(history_->add_target_fingerprint("tcp://127.0.0.1:25573", "old").ok());
  ASSERT_TRUE(history_->add_target_fingerprint("tcp://127.0.0.1:25573", "newer").ok());
  auto oldest = history_->target_fingerprint_or_add("tcp://127.0.0.1:25573", "newest");
  ASSERT_TRUE(oldest.ok()) << oldest.error();
  EXPECT_EQ(oldest.value(), "old");
}

TEST_P(HistoryTest, Purge) {
  double now = Now();
  HistoryRow old_row = Row("t", 0, "old");
  old_row.ctime = now - 8 * 86400;
  HistoryRow old_instant = Row("t", 0, "old instant", 0, 1);
  old_instant.ctime = now - 2 * 86400;
  HistoryRow recent_instant = Row("t", 0, "recent instant", 0, 1);
  recent_instant.ctime = now - 3600;
  HistoryRow kept = Row("t", 0, "kept");
  kept.ctime = now - 2 * 86400;
  for (const auto& r : {old_row, old_instant, recent_instant, kept}) Add(r);
  ASSERT_TRUE(
      history_->save_identity({"aa", "k", "i", "", "", 1, static_cast<std::int64_t>(now) - 7200})
          .ok());
  ASSERT_TRUE(
      history_->save_identity({"bb", "k", "i", "", "", 1, static_cast<std::int64_t>(now) - 60})
          .ok());

  Status st = history_->purge(now, 604800, 3600);
  ASSERT_TRUE(st.ok()) << st.message();
  auto rows = All();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].data, "recent instant");
  EXPECT_EQ(rows[1].data, "kept");
  EXPECT_EQ(Value(Sql("SELECT string_agg(identity, ',') FROM gorgone_identity",
                      "SELECT group_concat(identity, ',') FROM gorgone_identity")),
            "bb");
}

TEST_P(HistoryTest, ConcurrentWriters) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 100; ++i) {
        if (i % 10 == 0) {
          std::vector<HistoryRow> batch(5, Row("batch", t, "b"));
          EXPECT_TRUE(history_->store_synced("n" + std::to_string(t), batch, i + 1).ok());
        } else {
          EXPECT_TRUE(history_->add(Row("single", t, "s")).ok());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  auto rows = All();
  EXPECT_EQ(rows.size(), 4u * (90 + 10 * 5));
  std::set<double> ctimes;
  for (const auto& r : rows) ctimes.insert(r.ctime);
  EXPECT_EQ(ctimes.size(), rows.size());  // one process: no two rows share a ctime
}

// dbcleaner in bounded steps: each call deletes at most its share, old identities first,
// then history rows older than the retention and instant rows older than a day; recent
// rows stay.
TEST_P(HistoryTest, PurgeSomeDeletesInBoundedSteps) {
  const double now = Now();
  for (int i = 0; i < 25; ++i) Add(Row("old", 0, "{}"));
  Add(Row("instant", 0, "{}", 0, 1));
  Add(Row("keep", 0, "{}"));
  Add(Row("keep-instant", 0, "{}", 0, 1));
  Exec("UPDATE gorgone_history SET ctime = ctime - 8 * 86400 WHERE token = 'old'");
  Exec("UPDATE gorgone_history SET ctime = ctime - 2 * 86400 WHERE token = 'instant'");
  ASSERT_TRUE(history_->save_identity(IdentityRow{"0a", "k", "i", "", "", 1, static_cast<std::int64_t>(now) - 7200}).ok());
  ASSERT_TRUE(history_->save_identity(IdentityRow{"0b", "k", "i", "", "", 1, static_cast<std::int64_t>(now)}).ok());
  std::vector<std::int64_t> steps;
  for (int guard = 0; guard < 10; ++guard) {
    auto n = history_->purge_some(now, 604800, 3600, 10);
    ASSERT_TRUE(n.ok()) << n.error();
    steps.push_back(*n);
    if (*n < 10) break;
  }
  EXPECT_EQ(steps, (std::vector<std::int64_t>{10, 10, 7})) << "1 identity + 25 old rows + 1 instant row, 10 at a time";
  EXPECT_EQ(Value(Sql("SELECT string_agg(token, ',' ORDER BY id) FROM gorgone_history",
                      "SELECT group_concat(token, ',') FROM (SELECT token FROM gorgone_history ORDER BY id)")),
            "keep,keep-instant");
  EXPECT_EQ(Value(Sql("SELECT string_agg(identity, ',') FROM gorgone_identity",
                      "SELECT group_concat(identity, ',') FROM gorgone_identity")),
            "0b");
}

TEST_F(PgHistoryTest, ReconnectsAfterServerRestart) {
  Add(Row("t", 0, "before"));
  PgCluster::shared().restart();
  auto id = history_->add(Row("t", 0, "after"));
  ASSERT_TRUE(id.ok()) << id.error();

  PgCluster::shared().restart();
  Status st = history_->store_synced("5", {Row("t", 0, "synced")}, 42);
  ASSERT_TRUE(st.ok()) << st.message();

  PgCluster::shared().restart();
  auto pos = history_->sync_position("5");
  ASSERT_TRUE(pos.ok()) << pos.error();
  EXPECT_EQ(pos.value(), 42.0);
  EXPECT_EQ(All().size(), 3u);
}

TEST_F(PgHistoryTest, ReconnectsAfterBackendKilled) {
  Add(Row("t", 0, "before"));
  // The connection identifies itself as "gorgone" (fallback_application_name).
  std::string killed =
      Value(
              "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
              "WHERE application_name = 'gorgone' AND datname = current_database()");
  ASSERT_EQ(killed, "1");
  auto rows = history_->getlog(GetlogFilter());
  ASSERT_TRUE(rows.ok()) << rows.error();
  EXPECT_EQ(rows->size(), 1u);
}

// Its own cluster: stopping the shared one would disturb the other tests.
TEST(PgHistoryServerDown, ClearErrorThenRecovers) {
  PgCluster cluster;
  auto h = PgHistory::open(cluster.conninfo());
  ASSERT_TRUE(h.ok()) << h.error();
  PgHistory& history = *h.value();
  ASSERT_TRUE(history.add(Row("t", 0, "{}")).ok());

  cluster.stop();
  auto id = history.add(Row("t", 0, "{}"));
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.error().find("history: add"), std::string::npos) << id.error();
  EXPECT_NE(id.error().find("reconnecting failed"), std::string::npos) << id.error();
  Status st = history.store_synced("5", {Row("t", 0, "{}")}, 1);
  EXPECT_FALSE(st.ok());
  EXPECT_FALSE(history.getlog(GetlogFilter()).ok());

  cluster.start();
  id = history.add(Row("t", 0, "{}"));
  ASSERT_TRUE(id.ok()) << id.error();
  auto rows = history.getlog(GetlogFilter());
  ASSERT_TRUE(rows.ok()) << rows.error();
  EXPECT_EQ(rows->size(), 2u);
}

// ---- HistoryWriter: the host's history thread, on a real store.

using gorgone::testing::eventually;

// Rows go in the order they were queued, in batches; a job queued after them (GETLOG)
// sees every one; its end runs on the thread that plays the loop, once woken.
class HistoryWriterTest : public ::testing::TestWithParam<StoreKind> {};

TEST_P(HistoryWriterTest, RowsGoInOrderAndAJobQueuedAfterThemSeesThem) {
  FreshStore db(GetParam());
  auto h = db.open();
  ASSERT_TRUE(h.ok()) << h.error();
  std::atomic<int> wakes{0};
  HistoryWriter writer(*h.value(), [&] { ++wakes; });
  writer.start();
  const int n = 2500;  // more than two batches
  for (int i = 0; i < n; ++i) ASSERT_TRUE(writer.add(Row("t", 0, std::to_string(i))));
  std::size_t seen = 0;
  bool ended = false;
  writer.job([&](History& store) { seen = store.getlog(TokenFilter("t")).value().size(); },
             [&] { ended = true; });
  ASSERT_TRUE(eventually([&] { return wakes.load() > 0; }));
  EXPECT_FALSE(ended) << "a job's end ran on the history thread";
  writer.run_done();
  EXPECT_TRUE(ended);
  EXPECT_EQ(seen, static_cast<std::size_t>(n));
  auto rows = h.value()->getlog(TokenFilter("t"));
  ASSERT_TRUE(rows.ok()) << rows.error();
  ASSERT_EQ(rows->size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) ASSERT_EQ((*rows)[i].data, std::to_string(i)) << "row " << i << " out of order";
  for (int i = 1; i < n; ++i) ASSERT_LT((*rows)[i - 1].ctime, (*rows)[i].ctime);
  EXPECT_EQ(writer.stats().rows_written, static_cast<std::uint64_t>(n));
}

// A server restart (or a longer outage) costs no row: the rows wait and go in once the
// server is back, and the callers never waited.
TEST(PgHistoryWriterTest, RowsWaitWhileTheServerIsDownAndNoneIsLost) {
  PgCluster cluster;
  auto h = PgHistory::open(cluster.conninfo());
  ASSERT_TRUE(h.ok()) << h.error();
  HistoryWriter writer(*h.value(), nullptr);
  writer.start();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(writer.add(Row("t", 0, "before")));
  ASSERT_TRUE(eventually([&] { return writer.stats().rows_written == 10; }));
  cluster.stop();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(writer.add(Row("t", 0, "during")));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5)) << "add waited for the database";
  std::this_thread::sleep_for(std::chrono::milliseconds(700));  // a few failed attempts
  EXPECT_EQ(writer.stats().rows_written, 10u);
  cluster.start();
  ASSERT_TRUE(eventually([&] { return writer.stats().rows_written == 30; })) << writer.stats().rows_written;
  writer.stop();
  EXPECT_EQ(writer.stats().rows_dropped, 0u);
  EXPECT_EQ(PgValue(cluster.conninfo(), "SELECT count(*) FROM gorgone_history WHERE data = 'during'"), "20");
}

// The queue is bounded: with the store stuck, rows past the bound are refused (and counted)
// instead of growing the process without end; the ones queued are written once it moves.
TEST_P(HistoryWriterTest, PastItsBoundNewRowsAreRefusedAndCounted) {
  FreshStore db(GetParam());
  auto h = db.open();
  ASSERT_TRUE(h.ok()) << h.error();
  HistoryWriter writer(*h.value(), nullptr, 100);
  writer.start();
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<bool> stuck{false};
  writer.job(
      [&](History&) {
        stuck = true;
        gate.wait();
      },
      nullptr);
  ASSERT_TRUE(eventually([&] { return stuck.load(); }));
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(writer.add(Row("t", 0, "{}"))) << i;
  EXPECT_FALSE(writer.add(Row("t", 0, "{}")));
  EXPECT_EQ(writer.stats().rows_dropped, 1u);
  EXPECT_EQ(writer.stats().queued, 100u);
  release.set_value();
  writer.stop();
  EXPECT_EQ(gorgone_test::StoreValue(db.ref(), "SELECT count(*) FROM gorgone_history"), "100");
}

TEST(PgHistoryOpen, ErrorsSayWhatFailedWithoutThePassword) {
  auto h = PgHistory::open("host=/nonexistent port=1 dbname=x user=u password=s3cr3t");
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.error().find("history: cannot connect to PostgreSQL ("), std::string::npos)
      << h.error();
  EXPECT_EQ(h.error().find("s3cr3t"), std::string::npos) << h.error();

  h = PgHistory::open("host=/nonexistent password=se cret");
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().find("cret"), std::string::npos) << h.error();

  h = PgHistory::open("postgresql://u:s3cr3t@/x?host=/nonexistent&port=1");
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().find("s3cr3t"), std::string::npos) << h.error();
}

// ---- SqliteHistory: what only the SQLite file has.

// A temporary directory for one test, removed after it.
class SqliteFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "gorgone-sqlite-test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(dir_, ec);
  }
  static mode_t Mode(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return 0;
    return st.st_mode & 07777;
  }
  std::string dir_;
};

TEST(SqliteHistoryDbName, GorgonesDbnameSyntaxABarePathAndTheDefault) {
  EXPECT_EQ(SqliteHistory::path_from_db_name("").value(), "/var/lib/centreon-gorgone/history.sdb");
  EXPECT_EQ(std::string(SqliteHistory::kDefaultDbName), "dbname=/var/lib/centreon-gorgone/history.sdb");
  EXPECT_EQ(SqliteHistory::path_from_db_name("dbname=/var/lib/centreon-gorgone/history.sdb").value(),
            "/var/lib/centreon-gorgone/history.sdb");
  EXPECT_EQ(SqliteHistory::path_from_db_name("  dbname=/srv/h.sdb ").value(), "/srv/h.sdb");
  EXPECT_EQ(SqliteHistory::path_from_db_name("DBNAME=/srv/h.sdb;sqlite_unicode=1").value(), "/srv/h.sdb");
  EXPECT_EQ(SqliteHistory::path_from_db_name("database=/srv/h.sdb").value(), "/srv/h.sdb");
  EXPECT_EQ(SqliteHistory::path_from_db_name("/srv/bare path.sdb").value(), "/srv/bare path.sdb");
  auto none = SqliteHistory::path_from_db_name("host=/run/postgresql");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().find("dbname="), std::string::npos) << none.error();
  EXPECT_FALSE(SqliteHistory::path_from_db_name("dbname=").ok());
}

// The file holds every command's output: created 0600 and its new directories 0750 even
// under the loosest umask; the WAL files SQLite adds beside it take the file's mode.
TEST_F(SqliteFileTest, TheFileIsCreated0600AndItsDirectories0750WhateverTheUmask) {
  for (mode_t mask : {mode_t{0}, mode_t{0022}, mode_t{0277}}) {
    const std::string base = dir_ + "/umask" + std::to_string(mask);
    const std::string file = base + "/lib/centreon-gorgone/history.sdb";
    mode_t old = ::umask(mask);
    auto h = SqliteHistory::open(file);
    ::umask(old);
    ASSERT_TRUE(h.ok()) << h.error();
    ASSERT_TRUE(h.value()->add(Row("t", 0, "{}")).ok());
    EXPECT_EQ(Mode(file), 0600u) << "umask " << mask;
    EXPECT_EQ(Mode(base + "/lib"), 0750u) << "umask " << mask;
    EXPECT_EQ(Mode(base + "/lib/centreon-gorgone"), 0750u) << "umask " << mask;
    EXPECT_EQ(Mode(file + "-wal"), 0600u) << "umask " << mask;
    EXPECT_EQ(Mode(file + "-shm"), 0600u) << "umask " << mask;
  }
  // An existing directory keeps its mode: it is the operator's.
  ::chmod(dir_.c_str(), 0755);
  ASSERT_TRUE(SqliteHistory::open(dir_ + "/h.sdb").ok());
  EXPECT_EQ(Mode(dir_), 0755u);
}

// Runs as root too, so the place is made impossible rather than only forbidden: a regular
// file where a directory must be.
TEST_F(SqliteFileTest, AnUnusableLocationGivesAnErrorNamingTheFile) {
  const std::string blocker = dir_ + "/not-a-dir";
  std::ofstream(blocker) << "x";
  const std::string file = blocker + "/sub/history.sdb";
  auto h = SqliteHistory::open(file);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.error().find("history: cannot create the SQLite database '" + file + "'"), std::string::npos) << h.error();
  EXPECT_NE(h.error().find("is not a directory"), std::string::npos) << h.error();
  Status where = SqliteHistory::check_location(file);
  ASSERT_FALSE(where.ok());
  EXPECT_NE(where.message().find(file), std::string::npos) << where.message();

  // A directory where the file must be.
  std::filesystem::create_directories(dir_ + "/dir.sdb");
  h = SqliteHistory::open(dir_ + "/dir.sdb");
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.error().find("'" + dir_ + "/dir.sdb'"), std::string::npos) << h.error();
  EXPECT_FALSE(SqliteHistory::check_location(dir_ + "/dir.sdb").ok());

  // A file that is not a database.
  std::ofstream(dir_ + "/garbage.sdb") << std::string(4096, 'x');
  h = SqliteHistory::open(dir_ + "/garbage.sdb");
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.error().find("cannot open the SQLite database '" + dir_ + "/garbage.sdb'"), std::string::npos)
      << h.error();

  // What would be created is checked without creating anything.
  EXPECT_TRUE(SqliteHistory::check_location(dir_ + "/new/dir/history.sdb").ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/new"));
  EXPECT_TRUE(SqliteHistory::check_location("relative-dir-not-created/history.sdb").ok());  // under the working directory
  EXPECT_FALSE(std::filesystem::exists("relative-dir-not-created"));
}

// A `sqlite3` shell (here a second connection) reading the file, even inside a long read
// transaction, never makes the host's writes fail: the file is in WAL mode.
TEST_F(SqliteFileTest, AReaderHoldingATransactionDoesNotMakeWritesFail) {
  const std::string file = dir_ + "/history.sdb";
  auto h = SqliteHistory::open(file);
  ASSERT_TRUE(h.ok()) << h.error();
  ASSERT_TRUE(h.value()->add(Row("t", 0, "before")).ok());
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open_v2(file.c_str(), &reader, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  gorgone_test::StoreRef ref{StoreKind::kSqlite, file};
  EXPECT_EQ(gorgone_test::StoreValue(ref, "PRAGMA journal_mode"), "wal");
  ASSERT_EQ(sqlite3_exec(reader, "BEGIN", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(reader, "SELECT count(*) FROM gorgone_history", -1, &q, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(q, 0), 1);
  sqlite3_finalize(q);
  // The reader's snapshot is open; the writes go in.
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(h.value()->add(Row("t", 0, "during")).ok()) << i;
  Status st = h.value()->store_synced("2", std::vector<HistoryRow>(500, Row("s", 0, "{}")), 12.5);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(h.value()->purge_some(Now(), 604800, 3600, 100).ok());
  sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(reader);
  EXPECT_EQ(gorgone_test::StoreValue(ref, "SELECT count(*) FROM gorgone_history"), "551");
}

// Two stores on one file (two processes, or a host and Gorgone's tools) write at once: the
// busy timeout makes each wait for the other's transaction instead of failing.
TEST_F(SqliteFileTest, TwoConnectionsWritingAtOnceBothSucceed) {
  const std::string file = dir_ + "/history.sdb";
  auto a = SqliteHistory::open(file);
  auto b = SqliteHistory::open(file);
  ASSERT_TRUE(a.ok()) << a.error();
  ASSERT_TRUE(b.ok()) << b.error();
  std::atomic<int> failures{0};
  auto writer = [&](SqliteHistory& h, const std::string& node) {
    for (int i = 0; i < 40; ++i) {
      if (!h.add(Row(node, 0, "{}")).ok()) ++failures;
      if (!h.store_synced(node, std::vector<HistoryRow>(50, Row(node, 0, "{}")), i + 1).ok()) ++failures;
    }
  };
  std::thread ta(writer, std::ref(*a.value()), "a"), tb(writer, std::ref(*b.value()), "b");
  ta.join();
  tb.join();
  EXPECT_EQ(failures.load(), 0);
  gorgone_test::StoreRef ref{StoreKind::kSqlite, file};
  EXPECT_EQ(gorgone_test::StoreValue(ref, "SELECT count(*) FROM gorgone_history"), "4080");
  EXPECT_EQ(a.value()->sync_position("b").value(), 40.0);
}

// A history.sdb as Gorgone creates it (its schema's statements, word for word) with rows as
// Gorgone writes them: opened, its rows read, and it keeps working for both programs.
TEST_F(SqliteFileTest, AGorgoneDatabaseOpensAndItsRowsAreRead) {
  const std::string file = dir_ + "/history.sdb";
  gorgone_test::StoreRef ref{StoreKind::kSqlite, file};
  sqlite3* create = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &create), SQLITE_OK);
  sqlite3_close(create);
  const std::string gorgone_schema = R"sql(
PRAGMA encoding = "UTF-8";
CREATE TABLE `gorgone_information` (
    `key` varchar(1024) DEFAULT NULL,
    `value` varchar(1024) DEFAULT NULL
);
CREATE TABLE IF NOT EXISTS `gorgone_identity` (
  `id` INTEGER PRIMARY KEY,
  `ctime` int(11) DEFAULT NULL,
  `mtime` int(11) DEFAULT NULL,
  `identity` varchar(2048) DEFAULT NULL,
  `key` varchar(1024) DEFAULT NULL,
  `oldkey` varchar(1024) DEFAULT NULL,
  `iv` varchar(1024) DEFAULT NULL,
  `oldiv` varchar(1024) DEFAULT NULL,
  `parent` int(11) DEFAULT '0'
);
CREATE INDEX IF NOT EXISTS idx_gorgone_identity ON gorgone_identity (identity);
CREATE INDEX IF NOT EXISTS idx_gorgone_parent ON gorgone_identity (parent);
CREATE TABLE IF NOT EXISTS `gorgone_history` (
  `id` INTEGER PRIMARY KEY,
  `token` varchar(2048) DEFAULT NULL,
  `code` int(11) DEFAULT NULL,
  `etime` int(11) DEFAULT NULL,
  `ctime` FLOAT DEFAULT NULL,
  `instant` int(11) DEFAULT '0',
  `data` TEXT DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS idx_gorgone_history_id ON gorgone_history (id);
CREATE INDEX IF NOT EXISTS idx_gorgone_history_token ON gorgone_history (token);
CREATE INDEX IF NOT EXISTS idx_gorgone_history_etime ON gorgone_history (etime);
CREATE INDEX IF NOT EXISTS idx_gorgone_history_code ON gorgone_history (code);
CREATE INDEX IF NOT EXISTS idx_gorgone_history_ctime ON gorgone_history (ctime);
CREATE INDEX IF NOT EXISTS idx_gorgone_history_instant ON gorgone_history (instant);
CREATE TABLE IF NOT EXISTS `gorgone_synchistory` (
  `id` int(11) NOT NULL,
  `ctime` FLOAT DEFAULT NULL,
  `last_id` int(11) DEFAULT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_gorgone_synchistory_id ON gorgone_synchistory (id);
CREATE TABLE IF NOT EXISTS `gorgone_target_fingerprint` (
  `id` INTEGER PRIMARY KEY,
  `target` varchar(2048) DEFAULT NULL,
  `fingerprint` varchar(4096) DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS idx_gorgone_target_fingerprint_target ON gorgone_target_fingerprint (target);
CREATE TABLE IF NOT EXISTS `gorgone_centreon_judge_spare` (
  `cluster_name` varchar(2048) NOT NULL,
  `status` int(11) NOT NULL,
  `data` TEXT DEFAULT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_gorgone_centreon_judge_spare_cluster_name ON gorgone_centreon_judge_spare (cluster_name);
)sql";
  ASSERT_EQ(gorgone_test::StoreExec(ref, gorgone_schema), "");
  // Rows as Gorgone writes them (its add_history binds only the fields it has; its proxy
  // REPLACEs the node's position; its core saves sessions and fingerprints).
  ASSERT_EQ(gorgone_test::StoreExec(ref, R"sql(
INSERT INTO gorgone_information (`key`, `value`) VALUES ('version', '23.10.0');
INSERT INTO gorgone_history (data, token, ctime, etime, code) VALUES ('{"message":"gorgoned is starting..."}', NULL, 1764000000.123456, 1764000000, 1);
INSERT INTO gorgone_history (data, token, ctime, etime, code, instant) VALUES ('{"message":"command has started"}', 'tok1', 1764000001.5, 1764000001, 0, 0);
INSERT INTO gorgone_history (data, token, ctime, etime, code) VALUES ('{"message":"ok"}', 'tok1', 1764000002.25, 1764000002, 2);
REPLACE INTO gorgone_synchistory (`id`, `ctime`) VALUES (5, 1764000003.75);
INSERT INTO gorgone_identity (`ctime`, `mtime`, `identity`, `key`, `iv`) VALUES (1764000000, 1764000100, '6f6e65', 'aabb', 'ccdd');
INSERT INTO gorgone_target_fingerprint (`target`, `fingerprint`) VALUES ('tcp://127.0.0.1:5556', 'Evq4ALly');
)sql"),
            "");

  auto h = SqliteHistory::open(file);
  ASSERT_TRUE(h.ok()) << h.error();
  History& history = *h.value();
  GetlogFilter f;
  f.token = "tok1";
  auto rows = history.getlog(f);
  ASSERT_TRUE(rows.ok()) << rows.error();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].id, 2);
  EXPECT_EQ((*rows)[0].code, 0);
  EXPECT_EQ((*rows)[0].ctime, 1764000001.5);
  EXPECT_EQ((*rows)[1].data, R"({"message":"ok"})");
  EXPECT_EQ((*rows)[1].etime, 1764000002);
  f = GetlogFilter();
  f.ctime = 1764000000.123456;  // a Gorgone parent's cursor
  EXPECT_EQ(history.getlog(f).value().size(), 2u);
  EXPECT_FALSE(history.getlog(Everything()).value()[0].token.has_value());
  EXPECT_EQ(history.sync_position("5").value(), 1764000003.75);
  EXPECT_EQ(history.sync_positions().value(), (std::map<std::string, double>{{"5", 1764000003.75}}));
  auto identities = history.load_identities();
  ASSERT_TRUE(identities.ok()) << identities.error();
  ASSERT_EQ(identities->size(), 1u);
  EXPECT_EQ((*identities)[0].identity, "6f6e65");
  EXPECT_EQ((*identities)[0].key, "aabb");
  EXPECT_EQ((*identities)[0].mtime, 1764000100);
  EXPECT_EQ(history.target_fingerprint("tcp://127.0.0.1:5556").value(), std::optional<std::string>("Evq4ALly"));

  // New rows follow Gorgone's ids; the position moves in place (one row per node).
  auto id = history.add(Row("tok2", 2, "{}"));
  ASSERT_TRUE(id.ok()) << id.error();
  EXPECT_EQ(*id, 4);
  ASSERT_TRUE(history.store_synced("5", {Row("s", 0, "{}")}, 1764000009.5).ok());
  EXPECT_EQ(gorgone_test::StoreValue(ref, "SELECT count(*) FROM gorgone_synchistory WHERE id = '5'"), "1");
  EXPECT_EQ(gorgone_test::StoreValue(ref, "SELECT count(*) FROM gorgone_information"), "1");
  // Gorgone's own statements still work on it.
  EXPECT_EQ(gorgone_test::StoreExec(ref, "REPLACE INTO gorgone_synchistory (`id`, `ctime`) VALUES (5, 1764000010)"), "");
  EXPECT_EQ(history.sync_position("5").value(), 1764000010.0);
}

// An older Gorgone file (sessions without mtime/oldkey/iv/oldiv, history without instant,
// the position index not unique): the missing columns are added, nothing else changes.
TEST_F(SqliteFileTest, AnOlderGorgoneDatabaseGetsGorgonesUpgrade) {
  const std::string file = dir_ + "/history.sdb";
  gorgone_test::StoreRef ref{StoreKind::kSqlite, file};
  sqlite3* create = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &create), SQLITE_OK);
  sqlite3_close(create);
  ASSERT_EQ(gorgone_test::StoreExec(ref, R"sql(
CREATE TABLE IF NOT EXISTS `gorgone_identity` (
  `id` INTEGER PRIMARY KEY,
  `ctime` int(11) DEFAULT NULL,
  `identity` varchar(2048) DEFAULT NULL,
  `key` varchar(4096) DEFAULT NULL,
  `parent` int(11) DEFAULT '0'
);
CREATE INDEX IF NOT EXISTS idx_gorgone_identity ON gorgone_identity (identity);
CREATE TABLE IF NOT EXISTS `gorgone_history` (
  `id` INTEGER PRIMARY KEY,
  `token` varchar(2048) DEFAULT NULL,
  `code` int(11) DEFAULT NULL,
  `etime` int(11) DEFAULT NULL,
  `ctime` int(11) DEFAULT NULL,
  `data` TEXT DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS idx_gorgone_history_ctime ON gorgone_history (ctime);
CREATE TABLE IF NOT EXISTS `gorgone_synchistory` (
  `id` int(11) DEFAULT NULL,
  `ctime` int(11) DEFAULT NULL,
  `last_id` int(11) DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS idx_gorgone_synchistory_id ON gorgone_synchistory (id);
INSERT INTO gorgone_history (token, code, etime, ctime, data) VALUES ('old', 2, 1600000000, 1600000000, '{}');
INSERT INTO gorgone_synchistory (id, ctime) VALUES (3, 1600000000);
)sql"),
            "");
  auto h = SqliteHistory::open(file);
  ASSERT_TRUE(h.ok()) << h.error();
  for (const char* column : {"mtime", "oldkey", "iv", "oldiv"})
    EXPECT_EQ(gorgone_test::StoreValue(ref, std::string("SELECT count(*) FROM pragma_table_info('gorgone_identity') "
                                                        "WHERE name = '") + column + "'"),
              "1")
        << column;
  EXPECT_EQ(gorgone_test::StoreValue(ref, "SELECT count(*) FROM pragma_table_info('gorgone_history') WHERE name = 'instant'"),
            "1");
  auto rows = h.value()->getlog(Everything());
  ASSERT_TRUE(rows.ok()) << rows.error();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].instant, 0);
  EXPECT_EQ((*rows)[0].ctime, 1600000000.0);
  // A position moves without the unique index; an identity row keeps its session.
  ASSERT_TRUE(h.value()->store_synced("3", {Row("x", 0, "{}")}, 1700000000.5).ok());
  EXPECT_EQ(h.value()->sync_position("3").value(), 1700000000.5);
  EXPECT_EQ(gorgone_test::StoreValue(ref, "SELECT count(*) FROM gorgone_synchistory"), "1");
  ASSERT_TRUE(h.value()->save_identity(IdentityRow{"aa", "k", "i", "", "", 1, 2}).ok());
  EXPECT_EQ(h.value()->load_identities().value().size(), 1u);
  // Reopening changes nothing more.
  ASSERT_TRUE(SqliteHistory::open(file).ok());
}

INSTANTIATE_TEST_SUITE_P(Stores, HistoryTest, ::testing::Values(StoreKind::kPg, StoreKind::kSqlite), StoreParamName);
INSTANTIATE_TEST_SUITE_P(Stores, HistoryWriterTest, ::testing::Values(StoreKind::kPg, StoreKind::kSqlite),
                         StoreParamName);

}  // namespace
}  // namespace gorgone
