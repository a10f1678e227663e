// History store on PostgreSQL (libpq).
//
// One connection, serialised by a mutex. A connection found lost (server restart,
// backend killed) is reset once per call; every value is bound as a parameter.
// ctime values written by this object are strictly increasing (steps of 10 us), so a
// parent that syncs with "ctime > cursor" cannot miss a row inserted here.
// Every text it writes into gorgone_history (token, data, node id) goes through
// utf8::sanitize: a database in UTF8 refuses ill-formed bytes and NUL, and one such row
// (a command's Latin-1 output, a foreign node's page) would otherwise be lost or, synced,
// block its node's log sync for good.
// Thread-safety: thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "gorgone/history.hpp"
#include "history_rows.hpp"

namespace gorgone {

class PgHistory : public History {
 public:
  // Connects (conninfo: libpq key=value string or URI) and creates the schema if
  // missing; safe when several processes open the same database at once.
  static Result<std::unique_ptr<PgHistory>> open(const std::string& conninfo);

  ~PgHistory() override;
  PgHistory(const PgHistory&) = delete;
  PgHistory& operator=(const PgHistory&) = delete;

  Result<std::int64_t> add(const HistoryRow& row) override;
  // An empty filter returns every row (the GETLOG handler rejects it first).
  Result<std::vector<HistoryRow>> getlog(const GetlogFilter& filter) override;

  Result<double> sync_position(const std::string& node_id) override;
  Result<std::map<std::string, double>> sync_positions() override;
  // etime 0 in a row means "now", as in add(). new_position 0 leaves the position alone.
  // The page goes in with one COPY; when the server refuses it (and the connection is
  // still up), it is stored again row by row in one transaction, each refused row
  // replaced by a KO row (code 1, its token).
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
  Result<std::string> target_fingerprint_or_add(const std::string& target, const std::string& fingerprint) override;

  Status purge(double now, std::int64_t history_seconds, std::int64_t session_seconds) override;
  Result<std::int64_t> purge_some(double now, std::int64_t history_seconds, std::int64_t session_seconds,
                                  std::int64_t max_rows) override;

 private:
  class Conn;  // libpq connection and statement helpers (history_pg.cpp)

  explicit PgHistory(std::unique_ptr<Conn> conn);

  // REQUIRES: mu_ held and a COPY ... FROM STDIN in progress.
  Status copy_rows(const std::vector<HistoryRow>& rows);
  // The ways of store_synced. REQUIRES: mu_ held; rows and node_id sanitized.
  // A page: one statement when small (store_small_page), else a transaction around a COPY.
  Status store_page(const std::string& node_id, const std::vector<HistoryRow>& rows, double new_position);
  Status store_small_page(const std::string& node_id, const std::vector<HistoryRow>& rows, double new_position);
  // In the caller's transaction: sets the node's position; false when it was there already
  // (the page is stored: this is a second run of the same store_synced).
  Result<bool> move_position(const std::string& node_id, double position);
  Status store_row_by_row(const std::string& node_id, const std::vector<HistoryRow>& rows,
                          double new_position, std::vector<RefusedRow>& refused);

  std::mutex mu_;
  std::unique_ptr<Conn> conn_;      // guarded by mu_
  history_rows::CtimeClock clock_;  // local ctimes; guarded by mu_
};

}  // namespace gorgone
