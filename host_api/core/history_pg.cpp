#include "history_pg.hpp"

#include <libpq-fe.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <string_view>
#include <utility>

#include "gorgone/json.hpp"
#include "gorgone/status_codes.hpp"
#include "gorgone/utf8.hpp"
#include "history_rows.hpp"

namespace gorgone {

namespace {

// pg_advisory_xact_lock key serialising schema creation between processes: CREATE
// TABLE IF NOT EXISTS alone can still fail on a race (duplicate pg_type row).
constexpr const char* kSchemaSql = R"sql(
SELECT pg_advisory_xact_lock(4766020231023);
CREATE TABLE IF NOT EXISTS gorgone_history (
  id BIGSERIAL PRIMARY KEY,
  token TEXT,
  code INTEGER,
  etime BIGINT,
  ctime DOUBLE PRECISION,
  instant INTEGER DEFAULT 0,
  data TEXT);
CREATE INDEX IF NOT EXISTS idx_gorgone_history_token ON gorgone_history (token);
CREATE INDEX IF NOT EXISTS idx_gorgone_history_etime ON gorgone_history (etime);
CREATE INDEX IF NOT EXISTS idx_gorgone_history_code ON gorgone_history (code);
CREATE INDEX IF NOT EXISTS idx_gorgone_history_ctime ON gorgone_history (ctime);
CREATE INDEX IF NOT EXISTS idx_gorgone_history_instant ON gorgone_history (instant);
CREATE TABLE IF NOT EXISTS gorgone_synchistory (
  id TEXT PRIMARY KEY,
  ctime DOUBLE PRECISION,
  last_id BIGINT);
CREATE TABLE IF NOT EXISTS gorgone_identity (
  id BIGSERIAL PRIMARY KEY,
  ctime BIGINT,
  mtime BIGINT,
  identity TEXT,
  key TEXT,
  oldkey TEXT,
  iv TEXT,
  oldiv TEXT,
  parent INTEGER DEFAULT 0);
CREATE INDEX IF NOT EXISTS idx_gorgone_identity_identity ON gorgone_identity (identity);
CREATE TABLE IF NOT EXISTS gorgone_target_fingerprint (
  id BIGSERIAL PRIMARY KEY,
  target TEXT,
  fingerprint TEXT);
CREATE INDEX IF NOT EXISTS idx_gorgone_target_fingerprint_target ON gorgone_target_fingerprint (target);
CREATE TABLE IF NOT EXISTS gorgone_information (
  key TEXT,
  value TEXT);
INSERT INTO gorgone_information (key, value)
  SELECT 'version', '23.10.0'
  WHERE NOT EXISTS (SELECT 1 FROM gorgone_information WHERE key = 'version');
)sql";

constexpr const char* kHistoryColumns = "id, token, code, etime, ctime, instant, data";

// COPY buffers are handed to libpq in chunks of about this size.
constexpr std::size_t kCopyChunk = 1 << 20;

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

// libpq messages span lines and are indented with tabs: make them one line.
std::string OneLine(const char* message) {
  std::string out;
  for (const char* p = message != nullptr ? message : ""; *p != '\0'; ++p) {
    bool space = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
    if (!space) {
      out += *p;
    } else if (!out.empty() && out.back() != ' ') {
      out += ' ';
    }
  }
  if (!out.empty() && out.back() == ' ') out.pop_back();
  return out.empty() ? "unknown error" : out;
}

// The server's message, its detail and context (for COPY: the line), without the
// severity prefix and the query excerpt of the full text.
std::string ServerMessage(const PGresult* r) {
  const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  if (primary == nullptr) return std::string();
  std::string out = primary;
  for (int field : {PG_DIAG_MESSAGE_DETAIL, PG_DIAG_CONTEXT}) {
    const char* extra = PQresultErrorField(r, field);
    if (extra != nullptr) out += std::string("; ") + extra;
  }
  return OneLine(out.c_str());
}

std::string FormatDouble(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);  // 17 digits: exact round trip
  return buf;
}

bool HasNul(std::string_view v) { return v.find('\0') != std::string_view::npos; }

// Text parameters for PQexecParams; nullopt binds SQL NULL.
class Params {
 public:
  Params& text(std::string v) {
    values_.emplace_back(std::move(v));
    return *this;
  }
  Params& optional(const std::optional<std::string>& v) {
    values_.push_back(v);
    return *this;
  }
  // Empty means "absent" for the hex fields of gorgone_identity.
  Params& text_or_null(const std::string& v) {
    if (v.empty()) {
      values_.emplace_back(std::nullopt);
    } else {
      values_.emplace_back(v);
    }
    return *this;
  }
  Params& integer(std::int64_t v) { return text(std::to_string(v)); }
  Params& real(double v) { return text(FormatDouble(v)); }

  int size() const { return static_cast<int>(values_.size()); }
  // libpq takes C strings: a NUL would silently cut the value, so refuse it.
  bool has_nul() const {
    for (const auto& v : values_) {
      if (v && HasNul(*v)) return true;
    }
    return false;
  }
  // Valid while *this is alive and unchanged.
  std::vector<const char*> pointers() const {
    std::vector<const char*> out;
    out.reserve(values_.size());
    for (const auto& v : values_) out.push_back(v ? v->c_str() : nullptr);
    return out;
  }

 private:
  std::vector<std::optional<std::string>> values_;
};

bool IsNull(const PGresult* r, int row, int col) { return PQgetisnull(r, row, col) != 0; }

std::int64_t GetInt(const PGresult* r, int row, int col) {
  return IsNull(r, row, col) ? 0 : std::strtoll(PQgetvalue(r, row, col), nullptr, 10);
}

double GetDouble(const PGresult* r, int row, int col) {
  return IsNull(r, row, col) ? 0 : std::strtod(PQgetvalue(r, row, col), nullptr);
}

std::string GetText(const PGresult* r, int row, int col) {
  return std::string(PQgetvalue(r, row, col), PQgetlength(r, row, col));
}

HistoryRow ToHistoryRow(const PGresult* r, int row) {
  HistoryRow out;
  out.id = GetInt(r, row, 0);
  if (!IsNull(r, row, 1)) out.token = GetText(r, row, 1);
  out.code = static_cast<int>(GetInt(r, row, 2));
  out.etime = GetInt(r, row, 3);
  out.ctime = GetDouble(r, row, 4);
  out.instant = static_cast<int>(GetInt(r, row, 5));
  out.data = GetText(r, row, 6);
  return out;
}

// COPY text format: backslash escapes for the delimiter, line ends and backslash.
// Runs without such characters (nearly all of a JSON text) are copied at once.
void AppendCopyText(std::string& out, std::string_view v) {
  while (!v.empty()) {
    std::size_t run = v.find_first_of("\\\t\n\r");
    out.append(v.data(), run == std::string_view::npos ? v.size() : run);
    if (run == std::string_view::npos) return;
    char c = v[run];
    v.remove_prefix(run + 1);
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += c;
    }
  }
}

// A small page of synced rows, and the node's new position, in one statement (one round
// trip, one implicit transaction) instead of BEGIN, COPY, position and COMMIT: a live sync
// carries a few rows, and those five round trips were most of its cost to both sides.
// The statement may run again after a lost connection (the server may have committed it
// before the link dropped): like every way of store_synced, it stores nothing when the
// node's position is already the page's end (kMovePositionSql), which only this page can
// have set. The host's own rows (no position) are doubled in that case, as a retried
// COMMIT of the writer's batch would double them.
// The node's position set, returning a row only when it changed. $1 node, $2 position
// (the one-statement form numbers them after its six arrays).
#define GORGONE_MOVE_POSITION(id, ctime)                                                        \
  "INSERT INTO gorgone_synchistory (id, ctime) VALUES (" id ", " ctime ") "                     \
  "ON CONFLICT (id) DO UPDATE SET ctime = EXCLUDED.ctime "                                      \
  "WHERE gorgone_synchistory.ctime IS DISTINCT FROM EXCLUDED.ctime RETURNING 1"
constexpr const char* kMovePositionSql = GORGONE_MOVE_POSITION("$1", "$2");
constexpr std::size_t kSmallPageRows = 64;
constexpr std::size_t kSmallPageBytes = 256 * 1024;
constexpr const char* kInsertUnnestSql =
    "INSERT INTO gorgone_history (token, code, etime, ctime, instant, data) "
    "SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::double precision[], $5::integer[], $6::text[])";
constexpr const char* kInsertUnnestAndPositionSql =
    "WITH position AS (" GORGONE_MOVE_POSITION("$7", "$8") ") "
    "INSERT INTO gorgone_history (token, code, etime, ctime, instant, data) "
    "SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::double precision[], $5::integer[], $6::text[]) "
    "WHERE EXISTS (SELECT 1 FROM position)";
#undef GORGONE_MOVE_POSITION

// A fresh ctime as its exact decimal: the server reads it as ticks / 1e5, as clock_.next().
void AppendTicks(std::string& out, std::int64_t ticks) {
  char ctime[32];
  std::snprintf(ctime, sizeof(ctime), "%lld.%05lld", static_cast<long long>(ticks / 100000),
                static_cast<long long>(ticks % 100000));
  out += ctime;
}

// One element of a PostgreSQL array literal: quoted, with backslash before '"' and '\'.
void AppendArrayText(std::string& out, std::string_view v) {
  out += '"';
  while (!v.empty()) {
    std::size_t run = v.find_first_of("\\\"");
    out.append(v.data(), run == std::string_view::npos ? v.size() : run);
    if (run == std::string_view::npos) break;
    out += '\\';
    out += v[run];
    v.remove_prefix(run + 1);
  }
  out += '"';
}

constexpr const char* kInsertRowSql =
    "INSERT INTO gorgone_history (token, code, etime, ctime, instant, data) "
    "VALUES ($1, $2, $3, $4, $5, $6)";

// Notices ("relation already exists, skipping") and the FATAL a backend sends
// before closing an idle connection would go to stderr by default.
void IgnoreNotice(void*, const char*) {}

Error Failure(const std::string& what, const std::string& detail) {
  return make_error("history: " + what + " failed (" + detail + ")");
}

}  // namespace

// The connection and the statement helpers. Callers hold PgHistory::mu_.
class PgHistory::Conn {
 public:
  explicit Conn(PGconn* conn) : conn_(conn) {}
  ~Conn() { PQfinish(conn_); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // kAlone: a statement of its own; the connection is checked first and, if found
  // lost, reset and the statement run once more. kInTransaction: neither, since a
  // lost connection has rolled the transaction back. The rerun of a lone write can
  // duplicate it only if the link dropped between the server's commit and its
  // reply: acceptable for log rows, and store_synced never reruns anything but BEGIN.
  enum class Mode { kAlone, kInTransaction };

  // Runs one statement with bound parameters.
  Result<PgResult> exec(const std::string& what, const char* sql, const Params& params,
                        Mode mode = Mode::kAlone) {
    if (params.has_nul()) return Failure(what, "a value contains a NUL byte");
    std::vector<const char*> values = params.pointers();
    return run(what, mode, [&] {
      // Prepared once per connection: the server then neither parses nor plans the
      // statement again (parsing was most of its CPU on a busy central).
      // A statement the server refuses to prepare would fail to run the same way: its
      // error is the answer.
      auto it = prepared_.find(sql);
      if (it == prepared_.end()) {
        if (prepared_.size() >= kMaxPrepared)
          return PQexecParams(conn_, sql, params.size(), nullptr, values.data(), nullptr, nullptr, 0);
        std::string name = "gorgone_" + std::to_string(prepared_.size());
        PGresult* r = PQprepare(conn_, name.c_str(), sql, params.size(), nullptr);
        if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) return r;
        PQclear(r);
        it = prepared_.emplace(sql, std::move(name)).first;
      }
      return PQexecPrepared(conn_, it->second.c_str(), params.size(), values.data(), nullptr, nullptr, 0);
    });
  }

  // Runs several statements without parameters, in one implicit transaction.
  Status exec_script(const std::string& what, const char* sql) {
    auto r = run(what, Mode::kAlone, [&] { return PQexec(conn_, sql); });
    return r.ok() ? Status::success() : Status::failure(r.error());
  }

  // Starts a transaction; the connection is reset first if it was lost.
  Status begin(const std::string& what) { return exec_script(what + " (BEGIN)", "BEGIN"); }

  Status commit(const std::string& what) {
    auto r = exec(what + " (COMMIT)", "COMMIT", Params(), Mode::kInTransaction);
    if (!r.ok()) return Status::failure(r.error());
    // COMMIT of an aborted transaction "succeeds" with the tag ROLLBACK.
    if (std::strcmp(PQcmdStatus(r->get()), "COMMIT") != 0) {
      return Failure(what, "transaction rolled back");
    }
    return Status::success();
  }

  // False once the connection is lost: a failure then says nothing about the data.
  bool connected() const { return PQstatus(conn_) == CONNECTION_OK; }

  // Best effort: the server rolls back by itself if the connection is gone.
  void rollback() {
    if (PQstatus(conn_) != CONNECTION_OK) return;
    if (PQtransactionStatus(conn_) == PQTRANS_IDLE) return;
    PgResult r(PQexec(conn_, "ROLLBACK"));
  }

  // COPY ... FROM STDIN, inside the caller's transaction.
  Status copy_start(const std::string& what, const char* sql) {
    PgResult r(PQexec(conn_, sql));
    if (!r || PQresultStatus(r.get()) != PGRES_COPY_IN) return Failure(what, message(r.get()));
    return Status::success();
  }
  Status copy_put(const std::string& what, const std::string& buf) {
    if (PQputCopyData(conn_, buf.data(), static_cast<int>(buf.size())) != 1) {
      return Failure(what, message(nullptr));
    }
    return Status::success();
  }
  // abort_reason non-null: make the server fail the COPY with that message.
  Status copy_end(const std::string& what, const char* abort_reason) {
    Status st;
    if (PQputCopyEnd(conn_, abort_reason) != 1) st = Failure(what, message(nullptr));
    // Drain every result so the connection is usable again.
    while (PGresult* raw = PQgetResult(conn_)) {
      PgResult r(raw);
      if (st.ok() && PQresultStatus(raw) != PGRES_COMMAND_OK) st = Failure(what, message(raw));
    }
    return st;
  }

 private:
  template <typename F>
  Result<PgResult> run(const std::string& what, Mode mode, F&& send) {
    Status st;
    if (mode == Mode::kAlone) st = ensure(what);
    if (!st.ok()) return make_error(st.message());
    for (int attempt = 0;; ++attempt) {
      PgResult r(send());
      ExecStatusType s = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
      if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) return r;
      if (attempt == 0 && mode == Mode::kAlone && PQstatus(conn_) == CONNECTION_BAD) {
        st = reset(what);
        if (st.ok()) continue;
        return make_error(st.message());
      }
      return Failure(what, message(r.get()));
    }
  }

  // Makes sure the connection is usable before a new operation.
  Status ensure(const std::string& what) {
    if (PQstatus(conn_) == CONNECTION_OK) {
      // A server restart closes idle connections; reading what is pending lets
      // libpq notice it now rather than in the middle of our statement.
      PQconsumeInput(conn_);
    }
    if (PQstatus(conn_) != CONNECTION_OK) return reset(what);
    if (PQtransactionStatus(conn_) != PQTRANS_IDLE) rollback();  // leftover, never expected
    return Status::success();
  }

  // Statements are prepared per connection on first use. They are few (getlog's filters
  // make at most a few dozen shapes); past kMaxPrepared new ones run unprepared.
  static constexpr std::size_t kMaxPrepared = 64;

  Status reset(const std::string& what) {
    prepared_.clear();  // a new session: the server forgot them
    PQreset(conn_);
    if (PQstatus(conn_) == CONNECTION_OK) return Status::success();
    return make_error("history: " + what +
                      ": connection to PostgreSQL lost and reconnecting failed (" +
                      OneLine(PQerrorMessage(conn_)) + ")");
  }

  std::string message(const PGresult* r) const {
    std::string m = r != nullptr ? ServerMessage(r) : std::string();
    return m.empty() ? OneLine(PQerrorMessage(conn_)) : m;
  }

  PGconn* conn_;
  std::map<std::string, std::string> prepared_;  // SQL text -> statement name
};

PgHistory::PgHistory(std::unique_ptr<Conn> conn) : conn_(std::move(conn)) {}

PgHistory::~PgHistory() = default;

Result<std::unique_ptr<PgHistory>> PgHistory::open(const std::string& conninfo) {
  // Parse first: libpq's parse errors quote pieces of the string, which may hold
  // a password, so they are not passed on.
  char* parse_error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &parse_error);
  if (parse_error != nullptr) PQfreemem(parse_error);
  if (parsed == nullptr) {
    return make_error("history: invalid PostgreSQL connection string (syntax error)");
  }
  PQconninfoFree(parsed);

  // Keywords before dbname are defaults the conninfo may override; later ones override it:
  // force UTF8 so that bytes pass through unchanged; it also survives PQreset.
  // The defaults bound what a dead or stuck server can cost: 5 s to connect, TCP keepalives
  // that notice a vanished server within about a minute, and no statement longer than 60 s.
  const char* keys[] = {"connect_timeout", "keepalives",      "keepalives_idle",          "keepalives_interval",
                        "keepalives_count", "options",        "dbname",                   "client_encoding",
                        "fallback_application_name", nullptr};
  const char* values[] = {"5", "1", "30", "10", "3", "-c statement_timeout=60000", conninfo.c_str(), "UTF8", "gorgone",
                          nullptr};
  PGconn* raw = PQconnectdbParams(keys, values, 1);
  if (raw == nullptr) return make_error("history: cannot connect to PostgreSQL (out of memory)");
  auto conn = std::make_unique<Conn>(raw);
  if (PQstatus(raw) != CONNECTION_OK) {
    return make_error("history: cannot connect to PostgreSQL (" + OneLine(PQerrorMessage(raw)) +
                      ")");
  }
  PQsetNoticeProcessor(raw, IgnoreNotice, nullptr);
  Status st = conn->exec_script("creating the schema", kSchemaSql);
  if (!st.ok()) return make_error(st.message());
  return std::unique_ptr<PgHistory>(new PgHistory(std::move(conn)));
}

Result<std::int64_t> PgHistory::add(const HistoryRow& original) {
  std::optional<HistoryRow> fixed = history_rows::sanitized(original);
  const HistoryRow& row = fixed ? *fixed : original;
  std::lock_guard<std::mutex> lock(mu_);
  Params p;
  p.optional(row.token)
      .integer(row.code)
      .integer(row.etime != 0 ? row.etime : static_cast<std::int64_t>(std::time(nullptr)))
      .real(row.ctime != 0 ? row.ctime : clock_.next())
      .integer(row.instant)
      .text(row.data);
  auto r = conn_->exec("add",
                       "INSERT INTO gorgone_history (token, code, etime, ctime, instant, data) "
                       "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                       p);
  if (!r.ok()) return make_error(r.error());
  return GetInt(r->get(), 0, 0);
}

Result<std::vector<HistoryRow>> PgHistory::getlog(const GetlogFilter& filter) {
  if (filter.limit && *filter.limit < 0) {
    return make_error("history: getlog: limit must not be negative");
  }
  if (filter.ctime_page && *filter.ctime_page < 1) {
    return make_error("history: getlog: ctime_page must be positive");
  }
  // Only placeholders are pasted into the SQL text; every value is bound.
  Params p;
  std::string where;
  // Called right after binding the condition's value: $n is the last parameter.
  auto add_condition = [&](const char* condition) {
    where += where.empty() ? " WHERE " : " AND ";
    where += condition;
    where += std::to_string(p.size());
  };
  if (filter.id) {
    p.integer(*filter.id);
    add_condition("id > $");
  }
  if (filter.token) {
    p.text(*filter.token);
    add_condition("token = $");
  }
  if (filter.ctime) {
    p.real(*filter.ctime);
    add_condition("ctime > $");
  }
  if (filter.etime) {
    p.integer(*filter.etime);
    add_condition("etime > $");
  }
  if (filter.code) {
    p.integer(*filter.code);
    add_condition("code = $");
  }

  std::string sql;
  if (filter.ctime && filter.ctime_page && !filter.limit) {
    // The page ends at the ctime of its ctime_page-th row, ties included: the
    // caller's next cursor is that ctime, so a row sharing it must come now.
    std::string page_end = std::string("SELECT ctime FROM gorgone_history") + where +
                           " ORDER BY ctime OFFSET $" + std::to_string(p.size() + 1) + " LIMIT 1";
    p.integer(*filter.ctime_page - 1);
    where += " AND ctime <= COALESCE((" + page_end + "), 'Infinity'::float8)";
    sql = std::string("SELECT ") + kHistoryColumns + " FROM gorgone_history" + where +
          " ORDER BY ctime, id";
  } else if (filter.limit) {
    p.integer(*filter.limit);
    // The highest ids, given back in ascending order.
    sql = std::string("SELECT * FROM (SELECT ") + kHistoryColumns + " FROM gorgone_history" +
          where + " ORDER BY id DESC LIMIT $" + std::to_string(p.size()) +
          ") AS newest ORDER BY id";
  } else {
    sql =
        std::string("SELECT ") + kHistoryColumns + " FROM gorgone_history" + where + " ORDER BY id";
  }

  std::lock_guard<std::mutex> lock(mu_);
  auto r = conn_->exec("getlog", sql.c_str(), p);
  if (!r.ok()) return make_error(r.error());
  std::vector<HistoryRow> rows;
  int n = PQntuples(r->get());
  rows.reserve(n);
  for (int i = 0; i < n; ++i) rows.push_back(ToHistoryRow(r->get(), i));
  return rows;
}

Result<double> PgHistory::sync_position(const std::string& node_id) {
  std::lock_guard<std::mutex> lock(mu_);
  // The id as store_synced writes it.
  auto r = conn_->exec("sync_position", "SELECT ctime FROM gorgone_synchistory WHERE id = $1",
                       Params().text(utf8::sanitize(node_id)));
  if (!r.ok()) return make_error(r.error());
  if (PQntuples(r->get()) == 0) return 0.0;
  return GetDouble(r->get(), 0, 0);
}

Result<std::map<std::string, double>> PgHistory::sync_positions() {
  std::lock_guard<std::mutex> lock(mu_);
  auto r = conn_->exec("sync_positions", "SELECT id, ctime FROM gorgone_synchistory", Params());
  if (!r.ok()) return make_error(r.error());
  std::map<std::string, double> out;
  const int n = PQntuples(r->get());
  for (int i = 0; i < n; ++i)
    if (!IsNull(r->get(), i, 0)) out[GetText(r->get(), i, 0)] = GetDouble(r->get(), i, 1);
  return out;
}

Status PgHistory::copy_rows(const std::vector<HistoryRow>& rows) {
  const std::string what = "store_synced (COPY)";
  std::string buf;
  buf.reserve(kCopyChunk + 4096);
  const std::int64_t now = std::time(nullptr);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const HistoryRow& row = rows[i];
    if ((row.token && HasNul(*row.token)) || HasNul(row.data)) {
      // Text columns cannot hold NUL; abort so the server discards what it got.
      std::string reason = "row " + std::to_string(i) + " contains a NUL byte";
      conn_->copy_end(what, reason.c_str());
      return Failure(what, reason);
    }
    if (row.token) {
      AppendCopyText(buf, *row.token);
    } else {
      buf += "\\N";
    }
    buf += '\t';
    buf += std::to_string(row.code);
    buf += '\t';
    buf += std::to_string(row.etime != 0 ? row.etime : now);
    buf += '\t';
    AppendTicks(buf, clock_.next_ticks());
    buf += '\t';
    buf += std::to_string(row.instant);
    buf += '\t';
    AppendCopyText(buf, row.data);
    buf += '\n';
    if (buf.size() >= kCopyChunk) {
      Status st = conn_->copy_put(what, buf);
      if (!st.ok()) {
        conn_->copy_end(what, "client error");
        return st;
      }
      buf.clear();
    }
  }
  if (!buf.empty()) {
    Status st = conn_->copy_put(what, buf);
    if (!st.ok()) {
      conn_->copy_end(what, "client error");
      return st;
    }
  }
  return conn_->copy_end(what, nullptr);
}

Status PgHistory::store_synced(const std::string& node_id, const std::vector<HistoryRow>& rows,
                               double new_position) {
  std::vector<RefusedRow> refused;
  return store_synced_reporting(node_id, rows, new_position, refused);
}

Status PgHistory::store_synced_reporting(const std::string& node_id,
                                         const std::vector<HistoryRow>& original,
                                         double new_position, std::vector<RefusedRow>& refused) {
  refused.clear();
  if (original.empty() && new_position == 0) return Status::success();
  const std::string node = utf8::sanitize(node_id);
  std::vector<HistoryRow> repaired;
  const std::vector<HistoryRow>& rows = history_rows::sanitized_page(original, repaired);

  std::lock_guard<std::mutex> lock(mu_);
  Status st = store_page(node, rows, new_position);
  // A lost connection says nothing about the rows: the caller asks again. Otherwise the
  // server refused something in the page; row by row, one bad row costs itself only.
  if (st.ok() || rows.empty() || !conn_->connected()) return st;
  return store_row_by_row(node, rows, new_position, refused);
}

Result<bool> PgHistory::move_position(const std::string& node_id, double position) {
  auto r = conn_->exec("store_synced (position)", kMovePositionSql, Params().text(node_id).real(position),
                       Conn::Mode::kInTransaction);
  if (!r.ok()) return make_error(r.error());
  return PQntuples(r->get()) > 0;
}

Status PgHistory::store_small_page(const std::string& node_id, const std::vector<HistoryRow>& rows,
                                   double new_position) {
  std::string tokens = "{", codes = "{", etimes = "{", ctimes = "{", instants = "{", data = "{";
  const std::int64_t now = std::time(nullptr);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const HistoryRow& row = rows[i];
    if (i > 0) {
      for (std::string* a : {&tokens, &codes, &etimes, &ctimes, &instants, &data}) *a += ',';
    }
    if (row.token) AppendArrayText(tokens, *row.token);
    else tokens += "NULL";
    codes += std::to_string(row.code);
    etimes += std::to_string(row.etime != 0 ? row.etime : now);
    AppendTicks(ctimes, clock_.next_ticks());
    instants += std::to_string(row.instant);
    AppendArrayText(data, row.data);
  }
  for (std::string* a : {&tokens, &codes, &etimes, &ctimes, &instants, &data}) *a += '}';
  Params p;
  p.text(std::move(tokens)).text(std::move(codes)).text(std::move(etimes)).text(std::move(ctimes));
  p.text(std::move(instants)).text(std::move(data));
  const bool position = new_position != 0;
  if (position) p.text(node_id).real(new_position);
  auto r = conn_->exec("store_synced", position ? kInsertUnnestAndPositionSql : kInsertUnnestSql, p);
  return r.ok() ? Status::success() : Status::failure(r.error());
}

Status PgHistory::store_page(const std::string& node_id, const std::vector<HistoryRow>& rows,
                             double new_position) {
  if (!rows.empty() && rows.size() <= kSmallPageRows) {
    std::size_t bytes = 0;
    for (const auto& row : rows) bytes += row.data.size() + (row.token ? row.token->size() : 0);
    if (bytes <= kSmallPageBytes) return store_small_page(node_id, rows, new_position);
  }
  // Only BEGIN may be retried after a reconnection: once rows are sent, a lost
  // connection means the server rolled everything back and the caller asks again.
  Status st = conn_->begin("store_synced");
  if (!st.ok()) return st;
  if (new_position != 0) {
    auto moved = move_position(node_id, new_position);
    if (!moved.ok() || !*moved) {
      conn_->rollback();
      return moved.ok() ? Status::success() : Status::failure(moved.error());
    }
  }
  if (!rows.empty()) {
    st = conn_->copy_start(
        "store_synced (COPY)",
        "COPY gorgone_history (token, code, etime, ctime, instant, data) FROM STDIN");
    if (st.ok()) st = copy_rows(rows);
  }
  if (st.ok()) st = conn_->commit("store_synced");
  if (!st.ok()) conn_->rollback();
  return st;
}

Status PgHistory::store_row_by_row(const std::string& node_id, const std::vector<HistoryRow>& rows,
                                   double new_position, std::vector<RefusedRow>& refused) {
  using Mode = Conn::Mode;
  const std::string what = "store_synced (row by row)";
  auto fail = [&](const std::string& message) {
    conn_->rollback();
    refused.clear();
    return Status::failure(message);
  };
  Status st = conn_->begin(what);
  if (!st.ok()) return fail(st.message());
  if (new_position != 0) {
    auto moved = move_position(node_id, new_position);
    if (!moved.ok()) return fail(moved.error());
    if (!*moved) {
      conn_->rollback();
      return Status::success();
    }
  }
  const std::int64_t now = std::time(nullptr);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const HistoryRow& row = rows[i];
    auto mark = conn_->exec(what, "SAVEPOINT synced_row", Params(), Mode::kInTransaction);
    if (!mark.ok()) return fail(mark.error());
    Params p;
    p.optional(row.token)
        .integer(row.code)
        .integer(row.etime != 0 ? row.etime : now)
        .real(clock_.next())
        .integer(row.instant)
        .text(row.data);
    auto r = conn_->exec("storing row " + std::to_string(i) + " synced from node '" + node_id + "'",
                         kInsertRowSql, p, Mode::kInTransaction);
    if (r.ok()) {
      // Released at once: thousands of nested subtransactions would slow the server down.
      auto release = conn_->exec(what, "RELEASE SAVEPOINT synced_row", Params(), Mode::kInTransaction);
      if (!release.ok()) return fail(release.error());
      continue;
    }
    if (!conn_->connected()) return fail(r.error());
    auto back = conn_->exec(what, "ROLLBACK TO SAVEPOINT synced_row", Params(), Mode::kInTransaction);
    if (!back.ok()) return fail(back.error());
    // The row's place is taken by a KO row: whoever waits on its token learns why. If even
    // that cannot be written, nothing is stored and the caller asks again.
    std::string reason = history_rows::ko_reason(r.error());
    Params ko;
    ko.optional(row.token)
        .integer(code::kActionFinishKo)
        .integer(now)
        .real(clock_.next())
        .integer(0)
        .text(json::message(reason));
    auto k = conn_->exec(what + " (KO row)", kInsertRowSql, ko, Mode::kInTransaction);
    if (!k.ok()) return fail(k.error());
    refused.push_back(RefusedRow{i, std::move(reason)});
  }
  st = conn_->commit(what);
  if (!st.ok()) return fail(st.message());
  return Status::success();
}

Status PgHistory::save_identity(const IdentityRow& row) {
  std::lock_guard<std::mutex> lock(mu_);
  Params p;
  p.integer(row.ctime)
      .integer(row.mtime)
      .text(row.identity)
      .text_or_null(row.key)
      .text_or_null(row.oldkey)
      .text_or_null(row.iv)
      .text_or_null(row.oldiv);
  auto r = conn_->exec("save_identity",
                       "INSERT INTO gorgone_identity (ctime, mtime, identity, key, oldkey, iv, "
                       "oldiv) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                       p);
  return r.ok() ? Status::success() : Status::failure(r.error());
}

Status PgHistory::touch_identity(const std::string& identity_hex, std::int64_t mtime) {
  std::lock_guard<std::mutex> lock(mu_);
  auto r = conn_->exec("touch_identity",
                       "UPDATE gorgone_identity SET mtime = $2 WHERE id = "
                       "(SELECT max(id) FROM gorgone_identity WHERE identity = $1)",
                       Params().text(identity_hex).integer(mtime));
  return r.ok() ? Status::success() : Status::failure(r.error());
}

Result<std::vector<IdentityRow>> PgHistory::load_identities() {
  std::lock_guard<std::mutex> lock(mu_);
  // Newest usable row per identity: rows without a key or mtime are skipped.
  auto r = conn_->exec(
      "load_identities",
      "SELECT DISTINCT ON (identity) identity, key, iv, oldkey, oldiv, ctime, mtime "
      "FROM gorgone_identity "
      "WHERE identity IS NOT NULL AND key IS NOT NULL AND key <> '' AND mtime IS NOT NULL "
      "ORDER BY identity, id DESC",
      Params());
  if (!r.ok()) return make_error(r.error());
  const PGresult* res = r->get();
  std::vector<IdentityRow> rows;
  for (int i = 0; i < PQntuples(res); ++i) {
    IdentityRow row;
    row.identity = GetText(res, i, 0);
    row.key = GetText(res, i, 1);
    row.iv = GetText(res, i, 2);
    row.oldkey = GetText(res, i, 3);
    row.oldiv = GetText(res, i, 4);
    row.ctime = GetInt(res, i, 5);
    row.mtime = GetInt(res, i, 6);
    rows.push_back(std::move(row));
  }
  return rows;
}

Status PgHistory::update_identity_keys(const IdentityRow& row) {
  std::lock_guard<std::mutex> lock(mu_);
  Params p;
  p.text(row.identity)
      .text_or_null(row.key)
      .text_or_null(row.iv)
      .text_or_null(row.oldkey)
      .text_or_null(row.oldiv)
      .integer(row.ctime);
  auto r = conn_->exec("update_identity_keys",
                       "UPDATE gorgone_identity SET key = $2, iv = $3, oldkey = $4, oldiv = $5, "
                       "ctime = $6 WHERE id = "
                       "(SELECT max(id) FROM gorgone_identity WHERE identity = $1)",
                       p);
  if (!r.ok()) return Status::failure(r.error());
  if (std::strcmp(PQcmdTuples(r->get()), "0") == 0) {
    return Failure("update_identity_keys", "no row for identity " + row.identity);
  }
  return Status::success();
}

Result<std::optional<std::string>> PgHistory::target_fingerprint(const std::string& target) {
  std::lock_guard<std::mutex> lock(mu_);
  auto r = conn_->exec("target_fingerprint",
                       "SELECT fingerprint FROM gorgone_target_fingerprint WHERE target = $1 "
                       "ORDER BY id LIMIT 1",
                       Params().text(target));
  if (!r.ok()) return make_error(r.error());
  if (PQntuples(r->get()) == 0) return std::optional<std::string>();
  return std::optional<std::string>(GetText(r->get(), 0, 0));
}

Status PgHistory::add_target_fingerprint(const std::string& target,
                                         const std::string& fingerprint) {
  std::lock_guard<std::mutex> lock(mu_);
  auto r = conn_->exec("add_target_fingerprint",
                       "INSERT INTO gorgone_target_fingerprint (target, fingerprint) "
                       "VALUES ($1, $2)",
                       Params().text(target).text(fingerprint));
  return r.ok() ? Status::success() : Status::failure(r.error());
}

// One round trip instead of a lookup and an insert: a central meeting thousands of new nodes
// at once does one statement per node.
Result<std::string> PgHistory::target_fingerprint_or_add(const std::string& target, const std::string& fingerprint) {
  std::lock_guard<std::mutex> lock(mu_);
  auto r = conn_->exec("target_fingerprint_or_add",
                       "WITH known AS (SELECT fingerprint FROM gorgone_target_fingerprint WHERE target = $1 "
                       "ORDER BY id LIMIT 1), "
                       "added AS (INSERT INTO gorgone_target_fingerprint (target, fingerprint) "
                       "SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM known) RETURNING fingerprint) "
                       "SELECT fingerprint FROM known UNION ALL SELECT fingerprint FROM added",
                       Params().text(target).text(fingerprint));
  if (!r.ok()) return make_error(r.error());
  if (PQntuples(r->get()) == 0) return make_error("no fingerprint stored for target '" + target + "'");
  return std::string(GetText(r->get(), 0, 0));
}

Status PgHistory::purge(double now, std::int64_t history_seconds, std::int64_t session_seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  auto r = conn_->exec("purge (identities)", "DELETE FROM gorgone_identity WHERE mtime < $1",
                       Params().integer(static_cast<std::int64_t>(now) - session_seconds));
  if (!r.ok()) return Status::failure(r.error());
  // Transient rows live one day whatever the retention.
  r = conn_->exec("purge (history)",
                  "DELETE FROM gorgone_history "
                  "WHERE (instant = 1 AND ctime < $1) OR ctime < $2",
                  Params().real(now - 86400).real(now - static_cast<double>(history_seconds)));
  return r.ok() ? Status::success() : Status::failure(r.error());
}

Result<std::int64_t> PgHistory::purge_some(double now, std::int64_t history_seconds, std::int64_t session_seconds,
                                           std::int64_t max_rows) {
  std::lock_guard<std::mutex> lock(mu_);
  std::int64_t deleted = 0;
  auto r = conn_->exec("purge (identities)",
                       "DELETE FROM gorgone_identity WHERE id IN "
                       "(SELECT id FROM gorgone_identity WHERE mtime < $1 LIMIT $2)",
                       Params().integer(static_cast<std::int64_t>(now) - session_seconds).integer(max_rows));
  if (!r.ok()) return make_error(r.error());
  deleted += std::atoll(PQcmdTuples(r->get()));
  if (deleted >= max_rows) return deleted;
  // Transient rows live one day whatever the retention. The ctime index serves both terms.
  r = conn_->exec("purge (history)",
                  "DELETE FROM gorgone_history WHERE id IN "
                  "(SELECT id FROM gorgone_history WHERE (instant = 1 AND ctime < $1) OR ctime < $2 LIMIT $3)",
                  Params().real(now - 86400).real(now - static_cast<double>(history_seconds)).integer(max_rows - deleted));
  if (!r.ok()) return make_error(r.error());
  deleted += std::atoll(PQcmdTuples(r->get()));
  return deleted;
}

}  // namespace gorgone
