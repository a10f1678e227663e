// The two history stores side by side, in one run on the same rows: SqliteHistory (a file, WAL,
// synchronous=FULL) against PgHistory (a private PostgreSQL cluster, measured with fsync on,
// as a server runs, and off, as the test suites run it), for
//   SETLOGS   store_synced of a 10 000-row page (one transaction; a central storing a page)
//   add       10 000 rows added one at a time (each its own transaction; the worst case of
//             a host's history thread, which batches queued rows in transactions of 1 000)
// Each kind runs on a fresh database or file per round; the best of the rounds is printed.
// Prints figures only; doc/performance.md has them and how to run it.
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "history_pg.hpp"
#include "history_sqlite.hpp"
#include "pg_fixture.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// Rows shaped like a command's result rows: a 128-hex token and a few hundred bytes of data.
std::vector<gorgone::HistoryRow> MakeRows(int n) {
  std::vector<gorgone::HistoryRow> rows(n);
  std::string token(128, 'a');
  for (int i = 0; i < n; ++i) {
    gorgone::HistoryRow& r = rows[i];
    std::string suffix = std::to_string(i);
    r.token = token.substr(0, 128 - suffix.size()) + suffix;
    r.code = i % 4 == 2 ? 100 : i % 4 == 3 ? 2 : 0;
    r.etime = 1764000000 + i;
    r.data = "{\"message\":\"command has finished successfully\",\"command\":\"echo row " + suffix +
             "\",\"metadata\":null,\"result\":{\"exit_code\":0,\"stdout\":\"row " + suffix +
             " output\\twith\\\\escapes\"},\"exit_code\":0}";
  }
  return rows;
}

void Fail(const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  std::exit(1);
}

}  // namespace

int main() {
  constexpr int kRows = 10000;
  constexpr int kRounds = 3;
  const std::vector<gorgone::HistoryRow> rows = MakeRows(kRows);
  gorgone_test::PgCluster cluster;
  std::string dir = (std::filesystem::temp_directory_path() / "gorgone-store-bench.XXXXXX").string();
  if (::mkdtemp(dir.data()) == nullptr) Fail("mkdtemp failed");
  int files = 0;

  // fsync is reloadable: one cluster serves both PostgreSQL settings.
  auto set_fsync = [&](bool on) {
    PGconn* c = PQconnectdb(cluster.conninfo().c_str());
    for (const char* sql : {on ? "ALTER SYSTEM SET fsync = on" : "ALTER SYSTEM SET fsync = off", "SELECT pg_reload_conf()"}) {
      PGresult* r = PQexec(c, sql);
      if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) Fail(PQerrorMessage(c));
      PQclear(r);
    }
    PQfinish(c);
  };

  // A fresh store of each kind: 0 SQLite, 1 PostgreSQL with fsync, 2 PostgreSQL without.
  auto fresh = [&](int kind) -> std::unique_ptr<gorgone::History> {
    if (kind == 0) {
      auto h = gorgone::SqliteHistory::open(dir + "/history-" + std::to_string(++files) + ".sdb");
      if (!h) Fail(h.error());
      return std::move(h.value());
    }
    auto h = gorgone::PgHistory::open(cluster.create_database());
    if (!h) Fail(h.error());
    return std::move(h.value());
  };
  auto seconds = [](const std::function<void()>& body) {
    auto start = Clock::now();
    body();
    return std::chrono::duration<double>(Clock::now() - start).count();
  };

  std::printf("%d rows per measurement, best of %d rounds (fresh database or file each time)\n", kRows, kRounds);
  std::printf("%-24s %-8s %12s %12s\n", "store", "what", "ms", "rows/s");
  // Best seconds per (store, measurement); the kinds alternate within a round, so that load
  // from elsewhere on the machine weighs on all alike.
  double best[3][2] = {{1e9, 1e9}, {1e9, 1e9}, {1e9, 1e9}};
  for (int round = 0; round < kRounds; ++round) {
    for (int kind = 0; kind < 3; ++kind) {
      if (kind > 0) set_fsync(kind == 1);
      auto h = fresh(kind);
      double page = seconds([&] {
        gorgone::Status st = h->store_synced("2", rows, 1764000000.5);
        if (!st) Fail(st.message());
      });
      best[kind][0] = std::min(best[kind][0], page);
      h = fresh(kind);
      double adds = seconds([&] {
        for (const auto& r : rows) {
          auto id = h->add(r);
          if (!id) Fail(id.error());
        }
      });
      best[kind][1] = std::min(best[kind][1], adds);
    }
  }
  const char* names[3] = {"SQLite (sync FULL)", "PostgreSQL (fsync on)", "PostgreSQL (fsync off)"};
  for (int kind = 0; kind < 3; ++kind) {
    std::printf("%-24s %-8s %12.1f %12.0f\n", names[kind], "SETLOGS", best[kind][0] * 1000, kRows / best[kind][0]);
    std::printf("%-24s %-8s %12.1f %12.0f\n", names[kind], "add", best[kind][1] * 1000, kRows / best[kind][1]);
  }
  std::printf("SQLite / PostgreSQL (fsync on) time: SETLOGS %.2f, add %.2f\n", best[0][0] / best[1][0],
              best[0][1] / best[1][1]);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
