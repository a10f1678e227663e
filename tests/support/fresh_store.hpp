// Test support: a fresh, empty history store of either kind, for the tests that run against
// both PgHistory and SqliteHistory.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "history_pg.hpp"
#include "history_sqlite.hpp"
#include "pg_fixture.hpp"
#include "store_sql.hpp"

namespace gorgone_test {

// A fresh, empty place for a store: a database of the shared private cluster, or a file in a
// fresh temporary directory (removed with this object).
class FreshStore {
 public:
  explicit FreshStore(StoreKind kind) : ref_{kind, ""} {
    if (kind == StoreKind::kPg) {
      ref_.where = PgCluster::shared().create_database();
      return;
    }
    std::string tmpl = (std::filesystem::temp_directory_path() / "gorgone-sqlite.XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp");
    dir_ = tmpl;
    ref_.where = dir_ + "/history.sdb";
  }
  ~FreshStore() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  FreshStore(const FreshStore&) = delete;
  FreshStore& operator=(const FreshStore&) = delete;

  const StoreRef& ref() const { return ref_; }
  const std::string& dir() const { return dir_; }

  // A store on it (creating the schema); the error of open() otherwise.
  gorgone::Result<std::unique_ptr<gorgone::History>> open() const {
    if (ref_.sqlite()) {
      auto h = gorgone::SqliteHistory::open(ref_.where);
      if (!h) return gorgone::make_error(h.error());
      return std::unique_ptr<gorgone::History>(std::move(h.value()));
    }
    auto h = gorgone::PgHistory::open(ref_.where);
    if (!h) return gorgone::make_error(h.error());
    return std::unique_ptr<gorgone::History>(std::move(h.value()));
  }

  // SQL that makes the store refuse a row of gorgone_history whose data is longer than
  // `max` bytes, the refusal naming `name` (PostgreSQL: a CHECK constraint; SQLite cannot
  // add one to a table, so a trigger).
  std::string refuse_data_longer_than(const std::string& name, int max) const {
    if (!ref_.sqlite())
      return "ALTER TABLE gorgone_history ADD CONSTRAINT " + name + " CHECK (octet_length(data) <= " +
             std::to_string(max) + ")";
    return "CREATE TRIGGER " + name + " BEFORE INSERT ON gorgone_history WHEN length(CAST(NEW.data AS BLOB)) > " +
           std::to_string(max) + " BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: " + name + "'); END";
  }

 private:
  StoreRef ref_;
  std::string dir_;
};

}  // namespace gorgone_test
