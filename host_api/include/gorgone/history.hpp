// The history store (gorgone_history, gorgone_synchistory, gorgone_identity,
// gorgone_target_fingerprint) as the host offers it to itself and to modules.
// Thread-safety: thread-safe (implementations serialise access internally).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gorgone/result.hpp"

namespace gorgone {

struct HistoryRow {
  std::int64_t id = 0;                // local id (ignored on insert)
  std::optional<std::string> token;   // NULL when absent
  int code = 0;
  std::int64_t etime = 0;             // event time (epoch s); 0 on insert = now
  double ctime = 0;                   // insertion time; 0 on insert = now (10 us steps)
  int instant = 0;
  std::string data;                   // JSON text
};

struct GetlogFilter {
  std::optional<std::int64_t> id;      // id > ?
  std::optional<std::string> token;    // token = ?
  std::optional<double> ctime;         // ctime > ?
  std::optional<std::int64_t> etime;   // etime > ?
  std::optional<int> code;             // code = ?
  std::optional<std::int64_t> limit;   // highest ids, then numeric order
  // With ctime and without limit: the oldest matching rows by ctime, in ascending
  // (ctime, id) order, at most ctime_page of them plus any row tied with the last
  // one's ctime, so that a "ctime > last" cursor never skips a row. Log sync pages.
  std::optional<std::int64_t> ctime_page;
  bool empty() const { return !id && !token && !ctime && !etime && !code; }
};

// A synced row the store could not take even on its own: its index in the rows given and
// the store's reason. A KO row took its place (see History::store_synced_reporting).
struct RefusedRow {
  std::size_t index = 0;
  std::string reason;
};

struct IdentityRow {
  std::string identity;  // hex of the routing id
  std::string key, iv, oldkey, oldiv;  // hex
  std::int64_t ctime = 0, mtime = 0;
};

class History {
 public:
  virtual ~History() = default;

  // Inserts one row. Returns its id.
  virtual Result<std::int64_t> add(const HistoryRow& row) = 0;
  // Rows matching the filter, in ascending numeric id order (ctime order for a
  // ctime_page filter).
  virtual Result<std::vector<HistoryRow>> getlog(const GetlogFilter& filter) = 0;

  // Log sync: the largest node-side ctime stored for a node (0 when none).
  virtual Result<double> sync_position(const std::string& node_id) = 0;
  // Stores rows synced from a node and moves its position to new_position, in one
  // transaction; rows get a fresh local ctime and keep token/code/etime/instant/data.
  // Nothing is stored when it fails. A row the store refuses on its own (PgHistory: after
  // its text was made valid UTF-8) does not fail the call: it is replaced by a KO row
  // with its token and a message naming the node and the reason, and the rest goes in.
  // When the node's position is already new_position (non-zero), nothing is stored and the
  // call succeeds: only this page can have set it, so this is the same page again (a
  // statement run again after a connection lost before its answer).
  virtual Status store_synced(const std::string& node_id, const std::vector<HistoryRow>& rows,
                              double new_position) = 0;

  // Server-side sessions of the external router.
  virtual Status save_identity(const IdentityRow& row) = 0;
  virtual Status touch_identity(const std::string& identity_hex, std::int64_t mtime) = 0;
  virtual Result<std::vector<IdentityRow>> load_identities() = 0;
  // Key rotation: sets key, iv, oldkey, oldiv and ctime of the newest row for
  // row.identity (mtime is left alone).
  virtual Status update_identity_keys(const IdentityRow& row) {
    (void)row;
    return Status::failure("history: update_identity_keys not supported");
  }

  // Server fingerprints seen by clients (fingerprint manager). nullopt: no row.
  virtual Result<std::optional<std::string>> target_fingerprint(const std::string& target) = 0;
  virtual Status add_target_fingerprint(const std::string& target, const std::string& fingerprint) = 0;

  // dbcleaner: deletes history rows with ctime < now - history_seconds, instant rows
  // with ctime < now - 86400, and identity rows with mtime < now - session_seconds.
  virtual Status purge(double now, std::int64_t history_seconds, std::int64_t session_seconds) {
    (void)now, (void)history_seconds, (void)session_seconds;
    return Status::failure("history: purge not supported");
  }

  // ABI 1.1. store_synced, and which rows were replaced by a KO row (`refused` is cleared
  // first), so that the caller can log them.
  virtual Status store_synced_reporting(const std::string& node_id, const std::vector<HistoryRow>& rows,
                                        double new_position, std::vector<RefusedRow>& refused) {
    refused.clear();
    return store_synced(node_id, rows, new_position);
  }

  // ABI 1.3. dbcleaner in bounded steps: deletes at most max_rows of what purge() would
  // (identities first, then history rows), and returns how many it deleted; fewer than
  // max_rows means it is done. The default runs purge() whole and returns 0.
  virtual Result<std::int64_t> purge_some(double now, std::int64_t history_seconds, std::int64_t session_seconds,
                                          std::int64_t max_rows) {
    (void)max_rows;
    Status s = purge(now, history_seconds, session_seconds);
    if (!s) return make_error(s.message());
    return std::int64_t{0};
  }

  // ABI 1.2. Every stored log-sync position (node id -> largest node-side ctime), in one
  // query: a central registering thousands of nodes reads them at once, not one by one. A
  // node without a position is absent (its position is 0).
  virtual Result<std::map<std::string, double>> sync_positions() {
    return make_error("history: sync_positions not supported");
  }

  // ABI 1.4. Trust on first use in one step: the fingerprint stored for `target` (the oldest
  // row), or `fingerprint` once stored as its first one. The default looks up, then adds.
  virtual Result<std::string> target_fingerprint_or_add(const std::string& target, const std::string& fingerprint) {
    auto known = target_fingerprint(target);
    if (!known) return make_error(known.error());
    if (known->has_value()) return **known;
    Status s = add_target_fingerprint(target, fingerprint);
    if (!s) return make_error(s.message());
    return fingerprint;
  }
};

}  // namespace gorgone
