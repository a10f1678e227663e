// How fast synced rows are stored: PgHistory::store_synced (what SETLOGS does) against two
// references on identical rows, in a private PostgreSQL with the real schema and indexes:
//   row by row   one INSERT per row in one transaction, then the position (the Perl proxy);
//   raw COPY     the rows pre-formatted, one COPY in one transaction (an upper bound).
// Prints rows/s and the ratios; doc/performance.md has the figures and how to run it.
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "history_pg.hpp"
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
    r.instant = 0;
    r.data = "{\"message\":\"command has finished successfully\",\"command\":\"echo row " + suffix +
             "\",\"metadata\":null,\"result\":{\"exit_code\":0,\"stdout\":\"row " + suffix +
             " output\\twith\\\\escapes\"},\"exit_code\":0}";
  }
  return rows;
}

void Check(PGresult* r, const char* what) {
  ExecStatusType s = PQresultStatus(r);
  if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_COPY_IN) {
    std::fprintf(stderr, "%s failed: %s\n", what, PQresultErrorMessage(r));
    std::exit(1);
  }
  PQclear(r);
}

void Exec(PGconn* c, const char* sql) { Check(PQexec(c, sql), sql); }

// Best of `runs` (each on an emptied table), in rows per second.
double RowsPerSecond(PGconn* admin, int rows, int runs, const std::function<void()>& body) {
  double best = 0;
  for (int i = 0; i < runs; ++i) {
    Exec(admin, "TRUNCATE gorgone_history; DELETE FROM gorgone_synchistory");
    Exec(admin, "VACUUM ANALYZE gorgone_history");
    auto start = Clock::now();
    body();
    double s = std::chrono::duration<double>(Clock::now() - start).count();
    best = std::max(best, rows / s);
  }
  return best;
}

// Distinct, increasing ctimes, as store_synced writes them (the ctime index sees the same keys).
std::string Ctime(std::size_t i) {
  char out[32];
  std::snprintf(out, sizeof(out), "%.17g", static_cast<double>(176400000000000LL + static_cast<long long>(i)) / 1e5);
  return out;
}

void RowByRow(PGconn* c, const std::vector<gorgone::HistoryRow>& rows) {
  Exec(c, "BEGIN");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const gorgone::HistoryRow& r = rows[i];
    std::string code = std::to_string(r.code), etime = std::to_string(r.etime), instant = std::to_string(r.instant);
    std::string ctime = Ctime(i);
    const char* values[] = {r.token->c_str(), code.c_str(), etime.c_str(), ctime.c_str(), instant.c_str(),
                            r.data.c_str()};
    Check(PQexecParams(c,
                       "INSERT INTO gorgone_history (token, code, etime, ctime, instant, data) "
                       "VALUES ($1, $2, $3, $4, $5, $6)",
                       6, nullptr, values, nullptr, nullptr, 0),
          "INSERT");
  }
  Exec(c, "INSERT INTO gorgone_synchistory (id, ctime) VALUES ('2', 1) "
          "ON CONFLICT (id) DO UPDATE SET ctime = EXCLUDED.ctime");
  Exec(c, "COMMIT");
}

// COPY text of the rows, built before the clock starts.
std::string CopyText(const std::vector<gorgone::HistoryRow>& rows) {
  std::string out;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const gorgone::HistoryRow& r = rows[i];
    out += *r.token + "\t" + std::to_string(r.code) + "\t" + std::to_string(r.etime) + "\t" + Ctime(i) + "\t" +
           std::to_string(r.instant) + "\t";
    for (char ch : r.data) {
      if (ch == '\\') out += "\\\\";
      else if (ch == '\t') out += "\\t";
      else if (ch == '\n') out += "\\n";
      else out += ch;
    }
    out += '\n';
  }
  return out;
}

void RawCopy(PGconn* c, const std::string& text) {
  Exec(c, "BEGIN");
  Check(PQexec(c, "COPY gorgone_history (token, code, etime, ctime, instant, data) FROM STDIN"), "COPY");
  if (PQputCopyData(c, text.data(), static_cast<int>(text.size())) != 1 || PQputCopyEnd(c, nullptr) != 1) {
    std::fprintf(stderr, "COPY data failed: %s\n", PQerrorMessage(c));
    std::exit(1);
  }
  while (PGresult* r = PQgetResult(c)) Check(r, "COPY end");
  Exec(c, "INSERT INTO gorgone_synchistory (id, ctime) VALUES ('2', 1) "
          "ON CONFLICT (id) DO UPDATE SET ctime = EXCLUDED.ctime");
  Exec(c, "COMMIT");
}

}  // namespace

int main() {
  gorgone_test::PgCluster cluster;
  std::string db = cluster.create_database();
  auto opened = gorgone::PgHistory::open(db);
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.error().c_str());
    return 1;
  }
  auto& history = *opened.value();
  PGconn* admin = PQconnectdb(db.c_str());
  PGconn* client = PQconnectdb(db.c_str());
  if (PQstatus(admin) != CONNECTION_OK || PQstatus(client) != CONNECTION_OK) {
    std::fprintf(stderr, "connect: %s\n", PQerrorMessage(admin));
    return 1;
  }
  const int kTotal = 10000;
  const int kRuns = 5;
  const std::vector<gorgone::HistoryRow> rows = MakeRows(kTotal);

  std::printf("10000 rows per measurement into gorgone_history (5 indexes), best of %d rounds\n", kRuns);
  // The measurements alternate within each round, so that load from elsewhere on the
  // machine weighs on every kind alike; the best of each kind is kept.
  const std::vector<int> sizes = {1, 100, 10000};
  std::vector<std::vector<std::vector<gorgone::HistoryRow>>> batches(sizes.size());
  for (std::size_t k = 0; k < sizes.size(); ++k)
    for (int i = 0; i < kTotal; i += sizes[k])
      batches[k].emplace_back(rows.begin() + i, rows.begin() + std::min(kTotal, i + sizes[k]));
  const std::string text = CopyText(rows);
  std::vector<double> synced(sizes.size(), 0);
  double by_row = 0, copy = 0, position = 0;
  for (int round = 0; round < kRuns; ++round) {
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      synced[k] = std::max(synced[k], RowsPerSecond(admin, kTotal, 1, [&] {
        for (const auto& b : batches[k]) {
          gorgone::Status s = history.store_synced("2", b, ++position);
          if (!s.ok()) {
            std::fprintf(stderr, "store_synced: %s\n", s.message().c_str());
            std::exit(1);
          }
        }
      }));
    }
    by_row = std::max(by_row, RowsPerSecond(admin, kTotal, 1, [&] { RowByRow(client, rows); }));
    copy = std::max(copy, RowsPerSecond(admin, kTotal, 1, [&] { RawCopy(client, text); }));
  }
  for (std::size_t k = 0; k < sizes.size(); ++k)
    std::printf("  store_synced, batches of %5d rows: %9.0f rows/s\n", sizes[k], synced[k]);
  std::printf("  row-by-row INSERTs, one transaction:  %9.0f rows/s\n", by_row);
  std::printf("  raw COPY of pre-formatted rows:       %9.0f rows/s\n", copy);
  std::printf("ratios on 10000-row batches: store_synced / row-by-row = %.2f, store_synced / raw COPY = %.2f\n",
              synced.back() / by_row, synced.back() / copy);
  PQfinish(admin);
  PQfinish(client);
  return 0;
}
