// Log synchronisation from pollers into the central's PostgreSQL, on real processes: every
// row of every poller reaches the central exactly once, also across a central crash, a
// database restart, a poller restart and a poller frozen longer than synchistory_timeout.
//
// Each poller starts with a backlog written straight into its database and answers GETLOG
// in small pages (getlog_max_rows), so a sync lasts long enough for the faults to land in
// the middle of it; commands sent through the central add rows while it runs.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <map>
#include <set>

#include "fleet.hpp"

namespace gorgone::testing {
namespace {

using gorgone_test::PgCluster;
using gorgone_test::PgExec;
using gorgone_test::PgValue;

const std::vector<std::string> kPollers = {"2", "3"};
constexpr int kCommands = 20;   // per poller
constexpr int kBacklog = 12000;  // rows per poller written before the central starts
constexpr const char* kPage = "40";

// Runs a query whose rows are (key, count); throws on error.
std::map<std::string, long> CountsBy(const std::string& conninfo, const std::string& sql) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  std::map<std::string, long> out;
  std::string error;
  if (PQstatus(conn) != CONNECTION_OK) {
    error = PQerrorMessage(conn);
  } else {
    PGresult* r = PQexec(conn, sql.c_str());
    if (PQresultStatus(r) != PGRES_TUPLES_OK) error = PQresultErrorMessage(r);
    for (int i = 0; error.empty() && i < PQntuples(r); ++i)
      out[PQgetvalue(r, i, 0)] = std::strtol(PQgetvalue(r, i, 1), nullptr, 10);
    PQclear(r);
  }
  PQfinish(conn);
  if (!error.empty()) throw std::runtime_error("query failed: " + sql + ": " + error);
  return out;
}

class LogSync : public ::testing::Test {
 protected:
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
      fleet_.declare(spec);
      fleet_.start(p);
    }
    for (const auto& p : kPollers) write_backlog(p, kBacklog, "extract(epoch from now()) - 3600");
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
  // increasing ctimes from `first_ctime` (SQL), written behind the poller's back.
  void write_backlog(const std::string& p, int n, const std::string& first_ctime) {
    const std::string& db = fleet_.db(p);
    ASSERT_TRUE(eventually([&] { return PgExec(db, "SELECT 1 FROM gorgone_history LIMIT 1").empty(); }));
    int start = ++backlogs_[p] * 1000000;
    std::string error = PgExec(
        db, "INSERT INTO gorgone_history (token, code, etime, ctime, instant, data) "
            "SELECT 'bl-" + p + "-' || (i / 4), i % 4, 1700000000 + i, (" + first_ctime + ") + (i - " +
                std::to_string(start) + ") * 0.000001, 0, '{\"n\":' || i || '}' "
            "FROM generate_series(" + std::to_string(start) + ", " + std::to_string(start + n - 1) + ") AS i");
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
  std::map<std::string, long> multiset(const std::string& db, const std::string& p) {
    return CountsBy(db, "SELECT concat_ws('|', token, code, etime, instant, data), count(*) "
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
    return std::stol(PgValue(fleet_.db(p), "SELECT count(*) FROM gorgone_history WHERE token IN (" + list + ")")) ==
           expected;
  }

  // Waits until the central holds exactly the pollers' rows, then checks it once more.
  void expect_every_row_exactly_once() {
    for (const auto& p : kPollers) {
      std::map<std::string, long> want, got;
      bool same = eventually([&] {
        if (!commands_done(p)) return false;
        want = multiset(fleet_.db(p), p);
        got = multiset(fleet_.db("1"), p);
        return want == got;
      }, std::chrono::seconds(40));
      long want_rows = 0, got_rows = 0;
      for (const auto& [k, n] : want) want_rows += n;
      for (const auto& [k, n] : got) got_rows += n;
      EXPECT_TRUE(same) << "poller " << p << ": " << want_rows << " rows, central has " << got_rows;
      // Every command ran and wrote its four rows on the poller.
      for (const auto& t : tokens_[p]) {
        if (!complete_.count(t)) continue;
        EXPECT_EQ(PgValue(fleet_.db(p), "SELECT count(*) FROM gorgone_history WHERE token = '" + t + "'"), "4") << t;
      }
    }
    std::string duplicates = PgValue(
        fleet_.db("1"), "SELECT count(*) FROM (SELECT token, code, data, count(*) FROM gorgone_history "
                        "WHERE token LIKE 'bl-%' OR length(token) = 128 GROUP BY token, code, data "
                        "HAVING count(*) > 1) AS d");
    EXPECT_EQ(duplicates, "0");
  }

  Fleet fleet_;
  std::map<std::string, std::vector<std::string>> tokens_;
  std::set<std::string> complete_;
  std::map<std::string, int> backlogs_;
};

// The bits of a float8 column as hex: equality is bit-for-bit equality.
std::string Bits(const std::string& db, const std::string& from) {
  return PgValue(db, "SELECT encode(float8send(ctime), 'hex') FROM " + from);
}

TEST_F(LogSync, EveryRowOnceAndTheCursorIsTheNodesLastCtime) {
  start_all();
  for (const auto& p : kPollers) send_commands(p, kCommands);
  expect_every_row_exactly_once();
  // The stored position is the node's largest ctime exactly, after its JSON round trip.
  for (const auto& p : kPollers) {
    std::string mine, theirs;
    EXPECT_TRUE(eventually([&] {
      theirs = Bits(fleet_.db(p), "gorgone_history ORDER BY ctime DESC LIMIT 1");
      mine = Bits(fleet_.db("1"), "gorgone_synchistory WHERE id = '" + p + "'");
      return mine == theirs;
    })) << "poller " << p << ": central position " << mine << ", poller's last ctime " << theirs;
  }
  // The backlog came in pages, and later syncs bring nothing new.
  std::string log = fleet_.daemon("1").log();
  EXPECT_NE(log.find(std::string("Received setlogs for '2' (") + kPage + " rows)"), std::string::npos);
  std::map<std::string, long> before = multiset(fleet_.db("1"), "2");
  std::this_thread::sleep_for(std::chrono::seconds(3));  // three more sync periods
  EXPECT_EQ(multiset(fleet_.db("1"), "2"), before);
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

TEST_F(LogSync, PollerRestartedMidSync) {
  start_all();
  for (const auto& p : kPollers) send_commands(p, kCommands, p != "2");
  wait_for_sync_start("bl-2-%");
  EXPECT_LT(central_rows("bl-2-%"), kBacklog) << "the sync was over before the restart";
  fleet_.stop("2");  // its running commands die with it
  fleet_.start("2");
  send_commands("2", kCommands);
  expect_every_row_exactly_once();
}

TEST_F(LogSync, LateAnswerOfAFrozenPollerIsRefusedAndNothingIsStoredTwice) {
  start_all();
  expect_every_row_exactly_once();
  fleet_.daemon("2").pause();
  // New rows while it is frozen: every GETLOG queued meanwhile will carry them.
  write_backlog("2", 400, "extract(epoch from clock_timestamp())");
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
