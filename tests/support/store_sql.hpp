// Test support: SQL on a history store from outside the process under test, whichever kind
// it is (a PostgreSQL database of the private cluster, or an SQLite file).
//
//   StoreRef db{StoreKind::kSqlite, "/tmp/x/history.sdb"};
//   StoreValue(db, "SELECT count(*) FROM gorgone_history");  // "0"
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "pg_fixture.hpp"

namespace gorgone_test {

enum class StoreKind { kPg, kSqlite };

inline const char* StoreName(StoreKind kind) { return kind == StoreKind::kPg ? "Pg" : "SQLite"; }

struct StoreRef {
  StoreKind kind = StoreKind::kPg;
  std::string where;  // a libpq conninfo, or the SQLite file
  bool sqlite() const { return kind == StoreKind::kSqlite; }
};

using Rows = std::vector<std::vector<std::string>>;

// Runs `sql` (one or more statements) on its own connection. Returns "" on success, else
// the error; `rows` gets the rows of the statements as text (NULL as "").
inline std::string StoreExec(const StoreRef& db, const std::string& sql, Rows* rows = nullptr) {
  if (!db.sqlite()) return PgRows(db.where, sql, rows);
  sqlite3* conn = nullptr;
  if (sqlite3_open_v2(db.where.c_str(), &conn, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    std::string error = conn ? sqlite3_errmsg(conn) : "cannot open";
    sqlite3_close(conn);
    return error;
  }
  sqlite3_busy_timeout(conn, 10000);
  char* message = nullptr;
  auto collect = [](void* out, int n, char** values, char**) {
    if (out == nullptr) return 0;
    std::vector<std::string> row;
    for (int i = 0; i < n; ++i) row.emplace_back(values[i] ? values[i] : "");
    static_cast<Rows*>(out)->push_back(std::move(row));
    return 0;
  };
  int rc = sqlite3_exec(conn, sql.c_str(), collect, rows, &message);
  std::string error = rc == SQLITE_OK ? "" : (message ? message : sqlite3_errstr(rc));
  sqlite3_free(message);
  sqlite3_close(conn);
  return error;
}

// First column of the first row, "" when none; throws on error.
inline std::string StoreValue(const StoreRef& db, const std::string& sql) {
  Rows rows;
  std::string error = StoreExec(db, sql, &rows);
  if (!error.empty()) throw std::runtime_error("query failed: " + sql + ": " + error);
  return rows.empty() || rows[0].empty() ? "" : rows[0][0];
}

// The first column of the first row as a double, exactly (0 when none); throws on error.
inline double StoreDouble(const StoreRef& db, const std::string& sql) {
  if (!db.sqlite()) {
    // PostgreSQL (12+) prints a float8 in its shortest exact form: strtod gives it back.
    std::string text = StoreValue(db, sql);
    return text.empty() ? 0 : std::strtod(text.c_str(), nullptr);
  }
  sqlite3* conn = nullptr;
  sqlite3_stmt* s = nullptr;
  double v = 0;
  std::string error;
  if (sqlite3_open_v2(db.where.c_str(), &conn, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(conn, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
    error = conn ? sqlite3_errmsg(conn) : "cannot open";
  } else {
    sqlite3_busy_timeout(conn, 10000);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) v = sqlite3_column_double(s, 0);
    else if (rc != SQLITE_DONE) error = sqlite3_errmsg(conn);
  }
  sqlite3_finalize(s);
  sqlite3_close(conn);
  if (!error.empty()) throw std::runtime_error("query failed: " + sql + ": " + error);
  return v;
}

// The bits of a double as hex: equality is bit-for-bit equality.
inline std::string DoubleBits(double v) {
  std::uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  char out[20];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(bits));
  return out;
}

// "now" in epoch seconds, as SQL of the store's dialect.
inline std::string SqlEpochNow(const StoreRef& db) {
  return db.sqlite() ? "((julianday('now') - 2440587.5) * 86400.0)" : "extract(epoch from clock_timestamp())";
}

}  // namespace gorgone_test
