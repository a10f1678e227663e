// Log synchronisation from pollers into the central's PostgreSQL, on real processes: every
// row of every poller reaches the central exactly once, also across a central crash, a
// database restart, a poller restart and a poller frozen longer than synchistory_timeout.
//
// Each poller starts with a backlog written straight into its database and answers GETLOG
// in small pages (getlog_max_rows), so a sync lasts long enough for the faults to land in
// the middle of it; commands sent through the central add rows while it runs.
//
// LogSync runs pollers on PostgreSQL; LogSyncSqlitePollers runs the same checks with the
// pollers on SQLite files (gorgone_db_type: SQLite, as Gorgone packages a poller) and the
// central on PostgreSQL.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <map>
#include <set>

#include "fleet.hpp"

namespace gorgone::testing {
namespace {

using gorgone_test::PgCluster;
using gorgone_test::PgValue;

const std::vector<std::string> kPollers = {"2", "3"};
constexpr int kCommands = 20;   // per poller
constexpr int kBacklog = 12000;  // rows per poller written before the central starts
constexpr const char* kPage = "40";

// Runs a query whose rows are (key, count); throws on error.
std::map<std::string, long> CountsBy(const gorgone_test::StoreRef& db, const std::string& sql) {
  gorgone_test::Rows rows;
  std::string error = gorgone_test::StoreExec(db, sql, &rows);
  if (!error.empty()) throw std::runtime_error("query failed: " + sql + ": " + error);
  std::map<std::string, long> out;
  for (const auto& r : rows) out[r.at(0)] = std::strtol(r.at(1).c_str(), nullptr, 10);
  return out;
}

class LogSync : public ::testing::Test {
 protected:
  // Where the pollers keep their history.
  virtual bool sqlite_pollers() const { return false; }

  void TearDown() override {
    if (HasFailure()) std::cerr << fleet_.logs();
  }

  std::string node(const std::string& id) {
    return "  - id: " + id + "\n    type: push_zmq\n    address: 127.0.0.1\n    port: " +
           std::to_string(fleet_.port(id)) + "\n";
  }

  // Pollers with a backlog, then the central; waits until the central pings both.
  void start_all() {
    for (const auto& p : kPollers) {
      HostSpec spec;
      spec.id = p;
      spec.external = true;
      spec.authorized = {"1"};
      spec.core_directives = std::string("    getlog_max_rows: ") + kPage + "\n";
      spec.sqlite = sqlite_pollers();
      fleet_.declare(spec);
      fleet_.start(p);
    }
    for (const auto& p : kPollers) write_backlog(p, kBacklog, -3600);
    HostSpec central;
    central.id = "1";
    central.proxy = true;
    central.proxy_directives = "      pool: 2\n      ping: 1\n      synchistory_time: 1\n      synchistory_timeout: 2\n";
    central.nodes_yaml = node("2") + node("3");
    central.http = true;
    fleet_.declare(central);
    fleet_.start("1");
    for (const auto& p : kPollers)
      ASSERT_TRUE(eventually([&] { return ping_ok(p); })) << "central never got a pong from " << p;
  }

  bool ping_ok(const std::string& p) {
    auto cs = fleet_.constatus("1");
    return cs.HasMember("data") && cs["data"].HasMember(p.c_str()) && cs["data"][p.c_str()]["ping_ok"].GetInt64() > 0;
  }

  // n rows with tokens bl-<poller>-<k> (four rows per token, like a command), strictly
  // increasing ctimes from now + `from_now` seconds, written behind the poller's back.
  void write_backlog(const std::string& p, int n, int from_now) {
    const gorgone_test::StoreRef db = fleet_.store(p);
    ASSERT_TRUE(eventually([&] { return gorgone_test::StoreExec(db, "SELECT 1 FROM gorgone_history LIMIT 1").empty(); }));
    int start = ++backlogs_[p] * 1000000;
    const std::string first = std::to_string(start), last = std::to_string(start + n - 1);
    const std::string select = "SELECT 'bl-" + p + "-' || (i / 4), i % 4, 1700000000 + i, " +
                               gorgone_test::SqlEpochNow(db) + " + (" + std::to_string(from_now) + ") + (i - " + first +
                               ") * 0.000001, 0, '{\"n\":' || i || '}' ";
    const std::string insert = "INSERT INTO gorgone_history (token, code, etime, ctime, instant, data) ";
    std::string error = gorgone_test::StoreExec(
        db, db.sqlite() ? "WITH RECURSIVE s(i) AS (SELECT " + first + " UNION ALL SELECT i + 1 FROM s WHERE i < " +
                              last + ") " + insert + select + "FROM s"
                        : insert + select + "FROM generate_series(" + first + ", " + last + ") AS i");
    ASSERT_EQ(error, "");
  }

  // complete: the command is expected to run to its end (no fault while it runs).
  void send_commands(const std::string& p, int n, bool complete = true) {
    for (int i = 0; i < n; ++i) {
      std::string token = fleet_.command("1", p, "echo " + p + "-" + std::to_string(i));
      ASSERT_FALSE(token.empty()) << "command " << i << " to " << p << " refused";
      tokens_[p].push_back(token);
      if (complete) complete_.insert(token);
    }
  }

  // The rows of poller p that must reach the central: its backlog and its commands.
  std::string rows_of(const std::string& p) {
    std::string where = "token LIKE 'bl-" + p + "-%'";
    for (const auto& t : tokens_[p]) where += " OR token = '" + t + "'";  // hex tokens
    return where;
  }

  // Multiset of the rows of poller p in database `db`: each (token, code, etime, instant,
  // data) with its number of occurrences.
  // (The same text from either store: none of these columns is NULL in these rows.)
  std::map<std::string, long> multiset(const gorgone_test::StoreRef& db, const std::string& p) {
    return CountsBy(db, "SELECT token || '|' || code || '|' || etime || '|' || instant || '|' || data, count(*) "
                        "FROM gorgone_history WHERE " + rows_of(p) + " GROUP BY 1");
  }

  // Waits until the central stored some rows of a backlog, polling often: the fault that
  // follows must land in the middle of the sync.
  void wait_for_sync_start(const std::string& like) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (central_rows(like) < 80 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

  long central_rows(const std::string& like) {
    return std::stol(PgValue(fleet_.db("1"), "SELECT count(*) FROM gorgone_history WHERE token LIKE '" + like + "'"));
  }

  // Every command expected to complete wrote its four rows on poller p.
  bool commands_done(const std::string& p) {
    std::string list;
    long expected = 0;
    for (const auto& t : tokens_[p]) {
      if (!complete_.count(t)) continue;
      list += (list.empty() ? "'" : ", '") + t + "'";
      expected += 4;
    }
    if (list.empty()) return true;
    return std::stol(gorgone_test::StoreValue(fleet_.store(p), "SELECT count(*) FROM gorgone_history WHERE token IN (" +
                                                                   list + ")")) == expected;
  }

  // Waits until the central holds exactly the pollers' rows, then checks it once more.
  void expect_every_row_exactly_once() {
    for (const auto& p : kPollers) {
      std::map<std::string, long> want, got;
      bool same = eventually([&] {
        if (!commands_done(p)) return false;
        want = multiset(fleet_.store(p), p);
        got = multiset(fleet_.store("1"), p);
        return want == got;
      }, std::chrono::seconds(40));
      long want_rows = 0, got_rows = 0;
      for (const auto& [k, n] : want) want_rows += n;
      for (const auto& [k, n] : got) got_rows += n;
      EXPECT_TRUE(same) << "poller " << p << ": " << want_rows << " rows, central has " << got_rows;
      // Every command ran and wrote its four rows on the poller.
      for (const auto& t : tokens_[p]) {
        if (!complete_.count(t)) continue;
        EXPECT_EQ(gorgone_test::StoreValue(fleet_.store(p), "SELECT count(*) FROM gorgone_history WHERE token = '" + t + "'"),
                  "4")
            << t;
      }
    }
    std::string duplicates = PgValue(
        fleet_.db("1"), "SELECT count(*) FROM (SELECT token, code, data, count(*) FROM gorgone_history "
                        "WHERE token LIKE 'bl-%' OR length(token) = 128 GROUP BY token, code, data "
                        "HAVING count(*) > 1) AS d");
    EXPECT_EQ(duplicates, "0");
  }

  // The scenarios, run by the tests below with the pollers on either store.
  void every_row_once_and_the_cursor_is_the_nodes_last_ctime();
  void poller_restarted_mid_sync();
  void late_answer_of_a_frozen_poller();

  Fleet fleet_;
  std::map<std::string, std::vector<std::string>> tokens_;
  std::set<std::string> complete_;
  std::map<std::string, int> backlogs_;
};

// The bits of a ctime column as hex: equality is bit-for-bit equality.
std::string Bits(const gorgone_test::StoreRef& db, const std::string& from) {
  return gorgone_test::DoubleBits(gorgone_test::StoreDouble(db, "SELECT ctime FROM " + from));
}

// The same checks with the pollers on SQLite.
class LogSyncSqlitePollers : public LogSync {
 protected:
  bool sqlite_pollers() const override { return true; }
};

TEST_F(LogSync, EveryRowOnceAndTheCursorIsTheNodesLastCtime) { every_row_once_and_the_cursor_is_the_nodes_last_ctime(); }
TEST_F(LogSyncSqlitePollers, EveryRowOnceAndTheCursorIsTheNodesLastCtime) {
  every_row_once_and_the_cursor_is_the_nodes_last_ctime();
}

void LogSync::every_row_once_and_the_cursor_is_the_nodes_last_ctime() {
  start_all();
  for (const auto& p : kPollers) send_commands(p, kCommands);
  expect_every_row_exactly_once();
  // The stored position is the node's largest ctime exactly, after its JSON round trip.
  for (const auto& p : kPollers) {
    std::string mine, theirs;
    EXPECT_TRUE(eventually([&] {
      theirs = Bits(fleet_.store(p), "gorgone_history ORDER BY ctime DESC LIMIT 1");
      mine = Bits(fleet_.store("1"), "gorgone_synchistory WHERE id = '" + p + "'");
      return mine == theirs;
    })) << "poller " << p << ": central position " << mine << ", poller's last ctime " << theirs;
  }
  // The backlog came in pages, and later syncs bring nothing new.
  std::string log = fleet_.daemon("1").log();
  EXPECT_NE(log.find(std::string("Received setlogs for '2' (") + kPage + " rows)"), std::string::npos);
  std::map<std::string, long> before = multiset(fleet_.store("1"), "2");
  std::this_thread::sleep_for(std::chrono::seconds(3));  // three more sync periods
  EXPECT_EQ(multiset(fleet_.store("1"), "2"), before);
  EXPECT_NE(fleet_.daemon("1").log().find("Received setlogs for '2' (0 rows)"), std::string::npos);
}

TEST_F(LogSync, CentralKilledMidSyncAndRestarted) {
  start_all();
  for (const auto& p : kPollers) send_commands(p, kCommands);
  // A command still on its way when the central dies dies with it (SIGKILL loses what the
  // process holds); the point here is the rows: let the commands reach the pollers first.
  for (const auto& p : kPollers) ASSERT_TRUE(eventually([&] { return commands_done(p); })) << "poller " << p;
  wait_for_sync_start("bl-%");
  fleet_.daemon("1").kill();
  EXPECT_LT(central_rows("bl-%"), 2 * kBacklog) << "the sync was over before the crash";
  fleet_.start("1");
  for (const auto& p : kPollers) send_commands(p, kCommands);
  expect_every_row_exactly_once();
}

TEST_F(LogSync, PostgresRestartedMidSync) {
  start_all();
  for (const auto& p : kPollers) send_commands(p, kCommands, false);
  wait_for_sync_start("bl-%");
  EXPECT_LT(central_rows("bl-%"), 2 * kBacklog) << "the sync was over before the restart";
  // Rows the pollers write meanwhile are lost at the source: the commands sent before
  // may not complete, but whatever the pollers hold must arrive once.
  PgCluster::shared().restart();
  for (const auto& p : kPollers) send_commands(p, kCommands);
  expect_every_row_exactly_once();
}

TEST_F(LogSync, PollerRestartedMidSync) { poller_restarted_mid_sync(); }
TEST_F(LogSyncSqlitePollers, PollerRestartedMidSync) { poller_restarted_mid_sync(); }

void LogSync::poller_restarted_mid_sync() {
  start_all();
  for (const auto& p : kPollers) send_commands(p, kCommands, p != "2");
  wait_for_sync_start("bl-2-%");
  EXPECT_LT(central_rows("bl-2-%"), kBacklog) << "the sync was over before the restart";
  fleet_.stop("2");  // its running commands die with it
  fleet_.start("2");
  send_commands("2", kCommands);
  expect_every_row_exactly_once();
}

TEST_F(LogSync, LateAnswerOfAFrozenPollerIsRefusedAndNothingIsStoredTwice) { late_answer_of_a_frozen_poller(); }
TEST_F(LogSyncSqlitePollers, LateAnswerOfAFrozenPollerIsRefusedAndNothingIsStoredTwice) {
  late_answer_of_a_frozen_poller();
}

void LogSync::late_answer_of_a_frozen_poller() {
  start_all();
  expect_every_row_exactly_once();
  fleet_.daemon("2").pause();
  // New rows while it is frozen: every GETLOG queued meanwhile will carry them.
  write_backlog("2", 400, 0);
  std::this_thread::sleep_for(std::chrono::seconds(7));  // > synchistory_timeout, several GETLOGs
  fleet_.daemon("2").resume();
  expect_every_row_exactly_once();
  const std::string central = fleet_.db("1");
  EXPECT_TRUE(eventually([&] {
    return PgValue(central, "SELECT count(*) FROM gorgone_history WHERE data = "
                            "'{\"message\":\"proxy - getlog in timeout for ''2''\"}'") != "0";
  }));
  EXPECT_TRUE(eventually([&] {
    return PgValue(central, "SELECT count(*) FROM gorgone_history WHERE data = '{\"message\":\"proxy - skip "
                            "setlogs response. Maybe too much time to get response. Retry\"}'") != "0";
  })) << "no late answer was refused";
  // The rows of the poller's other node are untouched by all this.
  send_commands("3", 5);
  expect_every_row_exactly_once();
}

}  // namespace
}  // namespace gorgone::testing
