#include "history_sqlite.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <utility>

#include "gorgone/json.hpp"
#include "gorgone/status_codes.hpp"
#include "gorgone/utf8.hpp"
#include "history_rows.hpp"

namespace gorgone {

namespace {

// Gorgone's schema for its SQLite file (gorgone/standard/library.pm, create_schema): the
// same tables, column types and index names, so that either program opens the other's
// file. Run in one write transaction: two processes opening a new file at once do not race.
// Tables first, then the columns older files lack, then the indexes (one is on such a column).
constexpr const char* kSchemaTables[] = {
    "CREATE TABLE IF NOT EXISTS gorgone_information (\"key\" varchar(1024) DEFAULT NULL, "
    "value varchar(1024) DEFAULT NULL)",
    "CREATE TABLE IF NOT EXISTS gorgone_identity (id INTEGER PRIMARY KEY, ctime int(11) DEFAULT NULL, "
    "mtime int(11) DEFAULT NULL, identity varchar(2048) DEFAULT NULL, \"key\" varchar(1024) DEFAULT NULL, "
    "oldkey varchar(1024) DEFAULT NULL, iv varchar(1024) DEFAULT NULL, oldiv varchar(1024) DEFAULT NULL, "
    "parent int(11) DEFAULT '0')",
    "CREATE TABLE IF NOT EXISTS gorgone_history (id INTEGER PRIMARY KEY, token varchar(2048) DEFAULT NULL, "
    "code int(11) DEFAULT NULL, etime int(11) DEFAULT NULL, ctime FLOAT DEFAULT NULL, "
    "instant int(11) DEFAULT '0', data TEXT DEFAULT NULL)",
    "CREATE TABLE IF NOT EXISTS gorgone_synchistory (id int(11) NOT NULL, ctime FLOAT DEFAULT NULL, "
    "last_id int(11) DEFAULT NULL)",
    "CREATE TABLE IF NOT EXISTS gorgone_target_fingerprint (id INTEGER PRIMARY KEY, "
    "target varchar(2048) DEFAULT NULL, fingerprint varchar(4096) DEFAULT NULL)",
    "CREATE TABLE IF NOT EXISTS gorgone_centreon_judge_spare (cluster_name varchar(2048) NOT NULL, "
    "status int(11) NOT NULL, data TEXT DEFAULT NULL)",
};

// Columns older Gorgone files lack, added (as Gorgone's own upgrade does) only when missing.
struct UpgradeColumn {
  const char* table;
  const char* column;
  const char* type;
};
constexpr UpgradeColumn kUpgradeColumns[] = {
    {"gorgone_identity", "mtime", "int(11) DEFAULT NULL"},
    {"gorgone_identity", "oldkey", "varchar(1024) DEFAULT NULL"},
    {"gorgone_identity", "oldiv", "varchar(1024) DEFAULT NULL"},
    {"gorgone_identity", "iv", "varchar(1024) DEFAULT NULL"},
    {"gorgone_history", "instant", "int(11) DEFAULT '0'"},
};

constexpr const char* kSchemaIndexes[] = {
    "CREATE INDEX IF NOT EXISTS idx_gorgone_identity ON gorgone_identity (identity)",
    "CREATE INDEX IF NOT EXISTS idx_gorgone_parent ON gorgone_identity (parent)",
    "CREATE INDEX IF NOT EXISTS idx_gorgone_history_id ON gorgone_history (id)",
    "CREATE INDEX IF NOT EXISTS idx_gorgone_history_token ON gorgone_history (token)",
    "CREATE INDEX IF NOT EXISTS idx_gorgone_history_etime ON gorgone_history (etime)",
    "CREATE INDEX IF NOT EXISTS idx_gorgone_history_code ON gorgone_history (code)",
    "CREATE INDEX IF NOT EXISTS idx_gorgone_history_ctime ON gorgone_history (ctime)",
    "CREATE INDEX IF NOT EXISTS idx_gorgone_history_instant ON gorgone_history (instant)",
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_gorgone_synchistory_id ON gorgone_synchistory (id)",
    "CREATE INDEX IF NOT EXISTS idx_gorgone_target_fingerprint_target ON gorgone_target_fingerprint (target)",
    "CREATE INDEX IF NOT EXISTS idx_gorgone_centreon_judge_spare_cluster_name "
    "ON gorgone_centreon_judge_spare (cluster_name)",
    "INSERT INTO gorgone_information (\"key\", value) SELECT 'version', '23.10.0' "
    "WHERE NOT EXISTS (SELECT 1 FROM gorgone_information WHERE \"key\" = 'version')",
};

constexpr const char* kHistoryColumns = "id, token, code, etime, ctime, instant, data";

constexpr const char* kInsertRowSql =
    "INSERT INTO gorgone_history (token, code, etime, ctime, instant, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

// Statements are prepared on first use and kept; getlog's filters make at most a few dozen
// shapes. Past this many, new shapes run prepared for one use.
constexpr std::size_t kMaxPrepared = 64;

constexpr mode_t kFileMode = 0600;
constexpr mode_t kDirMode = 0750;

Error Failure(const std::string& what, const std::string& detail) {
  return make_error("history: " + what + " failed (" + detail + ")");
}

std::string Errno(int e) { return std::strerror(e); }

std::string Trim(const std::string& s) {
  std::size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return std::string();
  std::size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Creates the missing directories above `file`, top down, each kDirMode whatever the umask.
Status MakeParents(const std::string& file) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(file).parent_path();
  std::vector<fs::path> missing;
  for (fs::path d = dir; !d.empty(); d = d.parent_path()) {
    struct stat st;
    if (::stat(d.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode))
        return Status::failure("history: cannot create the SQLite database '" + file + "': '" + d.string() +
                               "' is not a directory");
      break;
    }
    // ENOTDIR: a file above stands where a directory must be; the walk up names it.
    if (errno != ENOENT && errno != ENOTDIR)
      return Status::failure("history: cannot create the SQLite database '" + file + "': '" + d.string() +
                             "': " + Errno(errno));
    missing.push_back(d);
    if (d == d.parent_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), kDirMode) != 0) {
      if (errno == EEXIST) continue;  // made meanwhile by another process
      return Status::failure("history: cannot create the directory '" + it->string() + "' of the SQLite database '" +
                             file + "': " + Errno(errno));
    }
    if (::chmod(it->c_str(), kDirMode) != 0)
      return Status::failure("history: cannot set the mode of the directory '" + it->string() + "': " + Errno(errno));
  }
  return Status::success();
}

// Creates the file kFileMode (whatever the umask) when it does not exist; leaves it alone if it does.
Status MakeFile(const std::string& file) {
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, kFileMode);
  if (fd < 0) {
    if (errno == EEXIST) return Status::success();
    return Status::failure("history: cannot create the SQLite database '" + file + "': " + Errno(errno));
  }
  Status st;
  if (::fchmod(fd, kFileMode) != 0)
    st = Status::failure("history: cannot set the mode of the SQLite database '" + file + "': " + Errno(errno));
  ::close(fd);
  return st;
}

}  // namespace

// A cached statement in use: binds parameters in order, steps, reads columns; reset and
// unbound when it goes (so that no read transaction stays open behind it). Used with mu_ held.
class SqliteHistory::Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* s, bool owned) : db_(db), s_(s), owned_(owned) {}
  Stmt(Stmt&& o) noexcept : db_(o.db_), s_(o.s_), owned_(o.owned_), n_(o.n_) { o.s_ = nullptr; }
  Stmt& operator=(Stmt&&) = delete;
  Stmt(const Stmt&) = delete;
  ~Stmt() {
    if (s_ == nullptr) return;
    if (owned_) {
      sqlite3_finalize(s_);
    } else {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }
  }

  // The value is copied by SQLite unless `keep`: the caller then keeps it alive until the step.
  Stmt& text(const std::string& v, bool keep = false) {
    sqlite3_bind_text64(s_, ++n_, v.data(), v.size(), keep ? SQLITE_STATIC : SQLITE_TRANSIENT, SQLITE_UTF8);
    return *this;
  }
  Stmt& optional(const std::optional<std::string>& v, bool keep = false) {
    if (v) return text(*v, keep);
    sqlite3_bind_null(s_, ++n_);
    return *this;
  }
  // Empty means "absent" for the hex fields of gorgone_identity.
  Stmt& text_or_null(const std::string& v) {
    if (!v.empty()) return text(v);
    sqlite3_bind_null(s_, ++n_);
    return *this;
  }
  Stmt& integer(std::int64_t v) {
    sqlite3_bind_int64(s_, ++n_, v);
    return *this;
  }
  Stmt& real(double v) {
    sqlite3_bind_double(s_, ++n_, v);
    return *this;
  }

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(s_); }
  std::string error() const { return sqlite3_errmsg(db_); }

  bool is_null(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::int64_t get_int(int col) const { return sqlite3_column_int64(s_, col); }
  double get_double(int col) const { return sqlite3_column_double(s_, col); }
  std::string get_text(int col) const {
    const unsigned char* p = sqlite3_column_text(s_, col);
    if (p == nullptr) return std::string();
    return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(s_, col)));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_;
  bool owned_;
  int n_ = 0;
};

Result<std::string> SqliteHistory::path_from_db_name(const std::string& db_name) {
  std::string text = Trim(db_name);
  if (text.empty()) text = kDefaultDbName;
  if (text.find('=') == std::string::npos) return text;  // a bare path
  std::string path;
  bool named = false;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(';', start);
    if (end == std::string::npos) end = text.size();
    std::string attr = text.substr(start, end - start);
    std::size_t eq = attr.find('=');
    if (eq != std::string::npos) {
      std::string key = Lower(Trim(attr.substr(0, eq)));
      if (key == "dbname" || key == "db" || key == "database") {
        path = Trim(attr.substr(eq + 1));
        named = true;
      }
    }
    start = end + 1;
  }
  if (!named) return make_error("'" + db_name + "' names no file: write dbname=/path/to/history.sdb");
  if (path.empty()) return make_error("'" + db_name + "': dbname= is empty");
  return path;
}

Status SqliteHistory::check_location(const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty()) return Status::failure("no SQLite database file given");
  struct stat st;
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) return Status::failure("'" + path + "' exists and is not a regular file");
    if (::access(path.c_str(), R_OK | W_OK) != 0)
      return Status::failure("cannot write the SQLite database '" + path + "': " + Errno(errno));
    // WAL: the -wal and -shm files live next to the database.
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
      return Status::failure("cannot write in '" + dir.string() + "', where the SQLite database '" + path +
                             "' keeps its journal: " + Errno(errno));
    return Status::success();
  }
  if (errno != ENOENT && errno != ENOTDIR)
    return Status::failure("cannot use the SQLite database '" + path + "': " + Errno(errno));
  fs::path d = dir;
  while (::stat(d.c_str(), &st) != 0) {
    if (errno != ENOENT && errno != ENOTDIR)
      return Status::failure("cannot create the SQLite database '" + path + "': '" + d.string() + "': " + Errno(errno));
    if (d == "." || d == d.parent_path())
      return Status::failure("cannot create the SQLite database '" + path + "': no existing directory above it");
    d = d.parent_path();
    if (d.empty()) d = ".";  // a relative path: the working directory is the nearest parent
  }
  if (!S_ISDIR(st.st_mode))
    return Status::failure("cannot create the SQLite database '" + path + "': '" + d.string() + "' is not a directory");
  if (::access(d.c_str(), W_OK | X_OK) != 0)
    return Status::failure("cannot create the SQLite database '" + path + "' in '" + d.string() + "': " + Errno(errno));
  return Status::success();
}

SqliteHistory::SqliteHistory(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

SqliteHistory::~SqliteHistory() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

Result<std::unique_ptr<SqliteHistory>> SqliteHistory::open(const std::string& path) {
  if (path.empty()) return make_error("history: no SQLite database file given");
  Status st = MakeParents(path);
  if (st.ok()) st = MakeFile(path);
  if (!st.ok()) return make_error(st.message());
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return make_error("history: cannot open the SQLite database '" + path + "' (" + why + ")");
  }
  std::unique_ptr<SqliteHistory> h(new SqliteHistory(db, path));
  auto opening = [&](const std::string& why) {
    return make_error("history: cannot open the SQLite database '" + path + "' (" + why + ")");
  };
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  std::lock_guard<std::mutex> lock(h->mu_);
  // Only effective on a new file; Gorgone sets the same.
  if (Status s = h->exec("setting the encoding", "PRAGMA encoding = 'UTF-8'"); !s.ok()) return opening(s.message());
  {
    auto mode = h->statement("setting the journal mode", "PRAGMA journal_mode = WAL");
    if (!mode.ok()) return opening(mode.error());
    if (mode->step() != SQLITE_ROW) return opening("setting the journal mode: " + mode->error());
  }
  if (Status s = h->exec("setting synchronous", "PRAGMA synchronous = FULL"); !s.ok()) return opening(s.message());
  if (Status s = h->exec("creating the schema", "BEGIN IMMEDIATE"); !s.ok()) return opening(s.message());
  auto schema = [&]() -> Status {
    for (const char* sql : kSchemaTables) {
      Status s = h->exec("creating the schema", sql);
      if (!s.ok()) return s;
    }
    for (const auto& c : kUpgradeColumns) {
      auto q = h->statement("upgrading the schema", "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2");
      if (!q.ok()) return Status::failure(q.error());
      q->text(c.table).text(c.column);
      if (q->step() != SQLITE_ROW) return Failure("upgrading the schema", q->error());
      if (q->get_int(0) > 0) continue;
      std::string alter = std::string("ALTER TABLE ") + c.table + " ADD COLUMN " + c.column + " " + c.type;
      Status s = h->exec("upgrading the schema", alter.c_str());
      if (!s.ok()) return s;
    }
    for (const char* sql : kSchemaIndexes) {
      Status s = h->exec("creating the schema", sql);
      if (!s.ok()) return s;
    }
    return h->exec("creating the schema (COMMIT)", "COMMIT");
  }();
  if (!schema.ok()) {
    h->rollback();
    return opening(schema.message());
  }
  return h;
}

Result<SqliteHistory::Stmt> SqliteHistory::statement(const std::string& what, const std::string& sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return Stmt(db_, it->second, false);
  const bool keep = statements_.size() < kMaxPrepared;
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()), keep ? SQLITE_PREPARE_PERSISTENT : 0, &s,
                              nullptr);
  if (rc != SQLITE_OK) {
    std::string why = sqlite3_errmsg(db_);
    sqlite3_finalize(s);
    return Failure(what, why);
  }
  if (!keep) return Stmt(db_, s, true);
  statements_.emplace(sql, s);
  return Stmt(db_, s, false);
}

Status SqliteHistory::exec(const std::string& what, const char* sql) {
  char* error = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return Status::success();
  std::string why = error != nullptr ? error : sqlite3_errstr(rc);
  sqlite3_free(error);
  return Failure(what, why);
}

void SqliteHistory::rollback() {
  if (sqlite3_get_autocommit(db_) != 0) return;  // no transaction open (or SQLite ended it)
  sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

Result<std::int64_t> SqliteHistory::run_change(const std::string& what, Stmt& stmt) {
  int rc = stmt.step();
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return Failure(what, stmt.error());
  return static_cast<std::int64_t>(sqlite3_changes(db_));
}

Status SqliteHistory::insert_row(const std::string& what, const HistoryRow& row, double ctime, std::int64_t now) {
  auto s = statement(what, kInsertRowSql);
  if (!s.ok()) return Status::failure(s.error());
  s->optional(row.token, true)
      .integer(row.code)
      .integer(row.etime != 0 ? row.etime : now)
      .real(ctime)
      .integer(row.instant)
      .text(row.data, true);
  if (s->step() != SQLITE_DONE) return Failure(what, s->error());
  return Status::success();
}

Result<bool> SqliteHistory::set_position(const std::string& node_id, double position) {
  const std::string what = "store_synced (position)";
  auto update = statement(what, "UPDATE gorgone_synchistory SET ctime = ?2 WHERE id = ?1 AND ctime IS NOT ?2");
  if (!update.ok()) return make_error(update.error());
  update->text(node_id).real(position);
  auto changed = run_change(what, *update);
  if (!changed.ok()) return make_error(changed.error());
  if (*changed > 0) return true;
  auto there = statement(what, "SELECT 1 FROM gorgone_synchistory WHERE id = ?1");
  if (!there.ok()) return make_error(there.error());
  there->text(node_id);
  int rc = there->step();
  if (rc == SQLITE_ROW) return false;
  if (rc != SQLITE_DONE) return Failure(what, there->error());
  auto insert = statement(what, "INSERT INTO gorgone_synchistory (id, ctime) VALUES (?1, ?2)");
  if (!insert.ok()) return make_error(insert.error());
  insert->text(node_id).real(position);
  auto inserted = run_change(what, *insert);
  if (!inserted.ok()) return make_error(inserted.error());
  return true;
}

Result<std::int64_t> SqliteHistory::add(const HistoryRow& original) {
  std::optional<HistoryRow> fixed = history_rows::sanitized(original);
  const HistoryRow& row = fixed ? *fixed : original;
  std::lock_guard<std::mutex> lock(mu_);
  rollback();  // a transaction left open by a failure: never expected
  Status st = insert_row("add", row, row.ctime != 0 ? row.ctime : clock_.next(),
                         static_cast<std::int64_t>(std::time(nullptr)));
  if (!st.ok()) return make_error(st.message());
  return static_cast<std::int64_t>(sqlite3_last_insert_rowid(db_));
}

Result<std::vector<HistoryRow>> SqliteHistory::getlog(const GetlogFilter& filter) {
  if (filter.limit && *filter.limit < 0) return make_error("history: getlog: limit must not be negative");
  if (filter.ctime_page && *filter.ctime_page < 1) return make_error("history: getlog: ctime_page must be positive");
  // Only numbered placeholders go into the SQL text; every value is bound, in this order.
  int params = 0;
  std::string where;
  auto add_condition = [&](const char* condition) {
    where += where.empty() ? " WHERE " : " AND ";
    where += condition;
    where += std::to_string(++params);
  };
  if (filter.id) add_condition("id > ?");
  if (filter.token) add_condition("token = ?");
  if (filter.ctime) add_condition("ctime > ?");
  if (filter.etime) add_condition("etime > ?");
  if (filter.code) add_condition("code = ?");

  std::string sql;
  const bool page = filter.ctime && filter.ctime_page && !filter.limit;
  if (page) {
    // The page ends at the ctime of its ctime_page-th row, ties included: the caller's next
    // cursor is that ctime, so a row sharing it must come now. 9e999 reads as +infinity.
    std::string page_end = std::string("SELECT ctime FROM gorgone_history") + where + " ORDER BY ctime LIMIT 1 OFFSET ?" +
                           std::to_string(params + 1);
    where += " AND ctime <= COALESCE((" + page_end + "), 9e999)";
    sql = std::string("SELECT ") + kHistoryColumns + " FROM gorgone_history" + where + " ORDER BY ctime, id";
  } else if (filter.limit) {
    // The highest ids, given back in ascending order.
    sql = std::string("SELECT * FROM (SELECT ") + kHistoryColumns + " FROM gorgone_history" + where +
          " ORDER BY id DESC LIMIT ?" + std::to_string(params + 1) + ") ORDER BY id";
  } else {
    sql = std::string("SELECT ") + kHistoryColumns + " FROM gorgone_history" + where + " ORDER BY id";
  }

  std::lock_guard<std::mutex> lock(mu_);
  auto s = statement("getlog", sql);
  if (!s.ok()) return make_error(s.error());
  if (filter.id) s->integer(*filter.id);
  if (filter.token) s->text(*filter.token);
  if (filter.ctime) s->real(*filter.ctime);
  if (filter.etime) s->integer(*filter.etime);
  if (filter.code) s->integer(*filter.code);
  if (page) s->integer(*filter.ctime_page - 1);
  else if (filter.limit) s->integer(*filter.limit);
  std::vector<HistoryRow> rows;
  int rc;
  while ((rc = s->step()) == SQLITE_ROW) {
    HistoryRow out;
    out.id = s->get_int(0);
    if (!s->is_null(1)) out.token = s->get_text(1);
    out.code = static_cast<int>(s->get_int(2));
    out.etime = s->get_int(3);
    out.ctime = s->get_double(4);
    out.instant = static_cast<int>(s->get_int(5));
    out.data = s->get_text(6);
    rows.push_back(std::move(out));
  }
  if (rc != SQLITE_DONE) return Failure("getlog", s->error());
  return rows;
}

Result<double> SqliteHistory::sync_position(const std::string& node_id) {
  std::lock_guard<std::mutex> lock(mu_);
  // max(): a file of an older Gorgone may lack the unique index and hold a node twice.
  auto s = statement("sync_position", "SELECT max(ctime) FROM gorgone_synchistory WHERE id = ?1");
  if (!s.ok()) return make_error(s.error());
  s->text(utf8::sanitize(node_id));  // the id as store_synced writes it
  if (s->step() != SQLITE_ROW) return Failure("sync_position", s->error());
  return s->is_null(0) ? 0.0 : s->get_double(0);
}

Result<std::map<std::string, double>> SqliteHistory::sync_positions() {
  std::lock_guard<std::mutex> lock(mu_);
  auto s = statement("sync_positions",
                     "SELECT id, max(ctime) FROM gorgone_synchistory WHERE id IS NOT NULL GROUP BY id");
  if (!s.ok()) return make_error(s.error());
  std::map<std::string, double> out;
  int rc;
  while ((rc = s->step()) == SQLITE_ROW) out[s->get_text(0)] = s->get_double(1);
  if (rc != SQLITE_DONE) return Failure("sync_positions", s->error());
  return out;
}

Status SqliteHistory::store_synced(const std::string& node_id, const std::vector<HistoryRow>& rows,
                                   double new_position) {
  std::vector<RefusedRow> refused;
  return store_synced_reporting(node_id, rows, new_position, refused);
}

Status SqliteHistory::store_synced_reporting(const std::string& node_id, const std::vector<HistoryRow>& original,
                                             double new_position, std::vector<RefusedRow>& refused) {
  refused.clear();
  if (original.empty() && new_position == 0) return Status::success();
  const std::string node = utf8::sanitize(node_id);
  std::vector<HistoryRow> repaired;
  const std::vector<HistoryRow>& rows = history_rows::sanitized_page(original, repaired);

  std::lock_guard<std::mutex> lock(mu_);
  rollback();  // a transaction left open by a failure: never expected
  auto fail = [&](const Status& st) {
    rollback();
    refused.clear();
    return st;
  };
  Status st = exec("store_synced (BEGIN)", "BEGIN IMMEDIATE");
  if (!st.ok()) return st;
  if (new_position != 0) {
    auto moved = set_position(node, new_position);
    if (!moved.ok()) return fail(Status::failure(moved.error()));
    if (!*moved) {  // the same page again: stored already
      rollback();
      return Status::success();
    }
  }
  const std::int64_t now = std::time(nullptr);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const HistoryRow& row = rows[i];
    st = insert_row("storing row " + std::to_string(i) + " synced from node '" + node + "'", row, clock_.next(), now);
    if (st.ok()) continue;
    // An error that ended the transaction (disk full, I/O) says nothing about the row:
    // nothing is stored and the caller asks again.
    if (sqlite3_get_autocommit(db_) != 0) return fail(st);
    // Only the refused statement was undone. Its place is taken by a KO row: whoever waits
    // on its token learns why. If even that cannot be written, nothing is stored.
    std::string reason = history_rows::ko_reason(st.message());
    HistoryRow ko;
    ko.token = row.token;
    ko.code = code::kActionFinishKo;
    ko.etime = now;
    ko.data = json::message(reason);
    Status k = insert_row("store_synced (KO row)", ko, clock_.next(), now);
    if (!k.ok()) return fail(k);
    refused.push_back(RefusedRow{i, std::move(reason)});
  }
  st = exec("store_synced (COMMIT)", "COMMIT");
  if (!st.ok()) return fail(st);
  return Status::success();
}

Status SqliteHistory::save_identity(const IdentityRow& row) {
  std::lock_guard<std::mutex> lock(mu_);
  auto s = statement("save_identity",
                     "INSERT INTO gorgone_identity (ctime, mtime, identity, \"key\", oldkey, iv, oldiv) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  if (!s.ok()) return Status::failure(s.error());
  s->integer(row.ctime)
      .integer(row.mtime)
      .text(row.identity)
      .text_or_null(row.key)
      .text_or_null(row.oldkey)
      .text_or_null(row.iv)
      .text_or_null(row.oldiv);
  auto r = run_change("save_identity", *s);
  return r.ok() ? Status::success() : Status::failure(r.error());
}

Status SqliteHistory::touch_identity(const std::string& identity_hex, std::int64_t mtime) {
  std::lock_guard<std::mutex> lock(mu_);
  auto s = statement("touch_identity",
                     "UPDATE gorgone_identity SET mtime = ?2 WHERE id = "
                     "(SELECT max(id) FROM gorgone_identity WHERE identity = ?1)");
  if (!s.ok()) return Status::failure(s.error());
  s->text(identity_hex).integer(mtime);
  auto r = run_change("touch_identity", *s);
  return r.ok() ? Status::success() : Status::failure(r.error());
}

Result<std::vector<IdentityRow>> SqliteHistory::load_identities() {
  std::lock_guard<std::mutex> lock(mu_);
  // Newest usable row per identity: rows without a key or mtime are skipped.
  auto s = statement("load_identities",
                     "SELECT identity, \"key\", iv, oldkey, oldiv, ctime, mtime FROM gorgone_identity "
                     "WHERE id IN (SELECT max(id) FROM gorgone_identity WHERE identity IS NOT NULL "
                     "AND \"key\" IS NOT NULL AND \"key\" <> '' AND mtime IS NOT NULL GROUP BY identity) "
                     "ORDER BY identity");
  if (!s.ok()) return make_error(s.error());
  std::vector<IdentityRow> rows;
  int rc;
  while ((rc = s->step()) == SQLITE_ROW) {
    IdentityRow row;
    row.identity = s->get_text(0);
    row.key = s->get_text(1);
    row.iv = s->get_text(2);
    row.oldkey = s->get_text(3);
    row.oldiv = s->get_text(4);
    row.ctime = s->get_int(5);
    row.mtime = s->get_int(6);
    rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return Failure("load_identities", s->error());
  return rows;
}

Status SqliteHistory::update_identity_keys(const IdentityRow& row) {
  std::lock_guard<std::mutex> lock(mu_);
  auto s = statement("update_identity_keys",
                     "UPDATE gorgone_identity SET \"key\" = ?2, iv = ?3, oldkey = ?4, oldiv = ?5, ctime = ?6 "
                     "WHERE id = (SELECT max(id) FROM gorgone_identity WHERE identity = ?1)");
  if (!s.ok()) return Status::failure(s.error());
  s->text(row.identity)
      .text_or_null(row.key)
      .text_or_null(row.iv)
      .text_or_null(row.oldkey)
      .text_or_null(row.oldiv)
      .integer(row.ctime);
  auto r = run_change("update_identity_keys", *s);
  if (!r.ok()) return Status::failure(r.error());
  if (*r == 0) return Failure("update_identity_keys", "no row for identity " + row.identity);
  return Status::success();
}

Result<std::optional<std::string>> SqliteHistory::target_fingerprint(const std::string& target) {
  std::lock_guard<std::mutex> lock(mu_);
  auto s = statement("target_fingerprint",
                     "SELECT fingerprint FROM gorgone_target_fingerprint WHERE target = ?1 ORDER BY id LIMIT 1");
  if (!s.ok()) return make_error(s.error());
  s->text(target);
  int rc = s->step();
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  if (rc != SQLITE_ROW) return Failure("target_fingerprint", s->error());
  return std::optional<std::string>(s->get_text(0));
}

Status SqliteHistory::add_target_fingerprint(const std::string& target, const std::string& fingerprint) {
  std::lock_guard<std::mutex> lock(mu_);
  auto s = statement("add_target_fingerprint",
                     "INSERT INTO gorgone_target_fingerprint (target, fingerprint) VALUES (?1, ?2)");
  if (!s.ok()) return Status::failure(s.error());
  s->text(target).text(fingerprint);
  auto r = run_change("add_target_fingerprint", *s);
  return r.ok() ? Status::success() : Status::failure(r.error());
}

Status SqliteHistory::purge(double now, std::int64_t history_seconds, std::int64_t session_seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  {
    auto s = statement("purge (identities)", "DELETE FROM gorgone_identity WHERE mtime < ?1");
    if (!s.ok()) return Status::failure(s.error());
    s->integer(static_cast<std::int64_t>(now) - session_seconds);
    auto r = run_change("purge (identities)", *s);
    if (!r.ok()) return Status::failure(r.error());
  }
  // Transient rows live one day whatever the retention.
  auto s = statement("purge (history)", "DELETE FROM gorgone_history WHERE (instant = 1 AND ctime < ?1) OR ctime < ?2");
  if (!s.ok()) return Status::failure(s.error());
  s->real(now - 86400).real(now - static_cast<double>(history_seconds));
  auto r = run_change("purge (history)", *s);
  return r.ok() ? Status::success() : Status::failure(r.error());
}

Result<std::int64_t> SqliteHistory::purge_some(double now, std::int64_t history_seconds, std::int64_t session_seconds,
                                               std::int64_t max_rows) {
  std::lock_guard<std::mutex> lock(mu_);
  std::int64_t deleted = 0;
  {
    auto s = statement("purge (identities)",
                       "DELETE FROM gorgone_identity WHERE id IN "
                       "(SELECT id FROM gorgone_identity WHERE mtime < ?1 LIMIT ?2)");
    if (!s.ok()) return make_error(s.error());
    s->integer(static_cast<std::int64_t>(now) - session_seconds).integer(max_rows);
    auto r = run_change("purge (identities)", *s);
    if (!r.ok()) return make_error(r.error());
    deleted += *r;
  }
  if (deleted >= max_rows) return deleted;
  // Transient rows live one day whatever the retention. The ctime index serves both terms.
  auto s = statement("purge (history)",
                     "DELETE FROM gorgone_history WHERE id IN (SELECT id FROM gorgone_history "
                     "WHERE (instant = 1 AND ctime < ?1) OR ctime < ?2 LIMIT ?3)");
  if (!s.ok()) return make_error(s.error());
  s->real(now - 86400).real(now - static_cast<double>(history_seconds)).integer(max_rows - deleted);
  auto r = run_change("purge (history)", *s);
  if (!r.ok()) return make_error(r.error());
  deleted += *r;
  return deleted;
}

}  // namespace gorgone
