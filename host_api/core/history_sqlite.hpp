// History store in an embedded SQLite file (libsqlite3), as Gorgone keeps it on a poller.
//
// The tables, columns and indexes are Gorgone's own (gorgone_history, gorgone_synchistory,
// gorgone_identity, gorgone_target_fingerprint, gorgone_information...): a history.sdb that
// Gorgone wrote opens and keeps working, and Gorgone can open a file this store created.
// The only schema changes made to an existing file are Gorgone's own upgrades (the columns
// gorgone_identity gained over time, and gorgone_history.instant), each added only when missing.
//
// One connection, serialised by a mutex, with its statements prepared once and cached. The
// file is in WAL mode with a busy timeout: another process (a second host, a `sqlite3`
// shell) reading it never makes a write fail, and one writing it delays ours, up to the
// timeout. Write transactions take the write lock at BEGIN (BEGIN IMMEDIATE), so they never
// fail half way on a lock. synchronous=FULL: a committed row survives a power loss, as with
// PostgreSQL.
// ctime values written by this object are strictly increasing (steps of 10 us), so a parent
// that syncs with "ctime > cursor" cannot miss a row inserted here. Every text it writes
// into gorgone_history (token, data, node id) goes through utf8::sanitize, as PgHistory
// does, so both stores hold and answer the same bytes.
// Thread-safety: thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "gorgone/history.hpp"
#include "history_rows.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace gorgone {

class SqliteHistory : public History {
 public:
  // Gorgone's gorgone_db_name when none is configured (its core.pm default).
  static constexpr const char* kDefaultDbName = "dbname=/var/lib/centreon-gorgone/history.sdb";
  // How long a write waits for another process holding the write lock.
  static constexpr int kBusyTimeoutMs = 10000;

  // The file named by a gorgone_db_name for SQLite: Gorgone's (DBD::SQLite's) "dbname=PATH",
  // with optional ";"-separated attributes ("db=" and "database=" are synonyms), or a bare
  // path. Empty: Gorgone's default path. An error says what was expected.
  static Result<std::string> path_from_db_name(const std::string& db_name);

  // Whether open(path) could create or write the file, without creating or changing
  // anything (--check-config): the directory exists and is writable, or the nearest
  // existing parent is a writable directory; an existing file is a writable regular file.
  static Status check_location(const std::string& path);

  // Opens (creating the file and its missing directories) and creates Gorgone's schema if
  // missing; safe when several processes open the same file at once. A file it creates is
  // mode 0600 and a directory 0750, whatever the umask; existing ones keep theirs. Errors
  // name the file (or the directory) and the reason.
  static Result<std::unique_ptr<SqliteHistory>> open(const std::string& path);

  ~SqliteHistory() override;
  SqliteHistory(const SqliteHistory&) = delete;
  SqliteHistory& operator=(const SqliteHistory&) = delete;

  const std::string& path() const { return path_; }

  Result<std::int64_t> add(const HistoryRow& row) override;
  // An empty filter returns every row (the GETLOG handler rejects it first).
  Result<std::vector<HistoryRow>> getlog(const GetlogFilter& filter) override;

  Result<double> sync_position(const std::string& node_id) override;
  Result<std::map<std::string, double>> sync_positions() override;
  // etime 0 in a row means "now", as in add(). new_position 0 leaves the position alone.
  // One transaction for the page and the position. SQLite undoes only the statement that
  // failed, so a row the database refuses (a constraint or trigger an operator added) is
  // replaced in place by a KO row (code 1, its token) and the rest of the page goes on: the
  // outcome of PgHistory's fall back to row by row, without writing the page twice. An
  // error that ends the transaction (disk full, I/O) or a KO row refused too stores nothing.
  Status store_synced(const std::string& node_id, const std::vector<HistoryRow>& rows,
                      double new_position) override;
  Status store_synced_reporting(const std::string& node_id, const std::vector<HistoryRow>& rows,
                                double new_position, std::vector<RefusedRow>& refused) override;

  Status save_identity(const IdentityRow& row) override;
  Status touch_identity(const std::string& identity_hex, std::int64_t mtime) override;
  Result<std::vector<IdentityRow>> load_identities() override;
  Status update_identity_keys(const IdentityRow& row) override;

  Result<std::optional<std::string>> target_fingerprint(const std::string& target) override;
  Status add_target_fingerprint(const std::string& target, const std::string& fingerprint) override;

  Status purge(double now, std::int64_t history_seconds, std::int64_t session_seconds) override;
  Result<std::int64_t> purge_some(double now, std::int64_t history_seconds, std::int64_t session_seconds,
                                  std::int64_t max_rows) override;

 private:
  class Stmt;  // a bound, cached statement (history_sqlite.cpp)

  SqliteHistory(sqlite3* db, std::string path);

  // The cached statement for sql, reset and unbound. REQUIRES: mu_ held.
  Result<Stmt> statement(const std::string& what, const std::string& sql);
  // Runs one statement without parameters or rows. REQUIRES: mu_ held.
  Status exec(const std::string& what, const char* sql);
  // Best effort when the transaction is still open. REQUIRES: mu_ held.
  void rollback();
  // Inserts one row of gorgone_history. REQUIRES: mu_ held.
  Status insert_row(const std::string& what, const HistoryRow& row, double ctime, std::int64_t now);
  // Moves a node's position (UPDATE, else INSERT: works whether or not the file has
  // Gorgone's unique index on gorgone_synchistory.id); false when it was there already.
  // REQUIRES: mu_ held.
  Result<bool> set_position(const std::string& node_id, double position);
  // A statement changing rows: runs it, returns how many it changed. REQUIRES: mu_ held.
  Result<std::int64_t> run_change(const std::string& what, Stmt& stmt);

  std::mutex mu_;
  sqlite3* db_;                                      // guarded by mu_
  std::string path_;
  std::map<std::string, sqlite3_stmt*> statements_;  // SQL text -> prepared; guarded by mu_
  history_rows::CtimeClock clock_;                   // local ctimes; guarded by mu_
};

}  // namespace gorgone
