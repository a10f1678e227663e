// Private PostgreSQL clusters for tests, run by tests/support/pg-private.sh.
//
//   PgCluster& pg = PgCluster::shared();        // one cluster per test binary
//   std::string conninfo = pg.create_database(); // a fresh, empty database per test
//
// The shared cluster is stopped and removed when the test program ends (gtest
// environment tear-down, or static destruction as a fallback).
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace gorgone_test {

// Runs one SQL text on conninfo. Returns "" on success, else the error message; `rows`
// gets the rows of the result as text (NULL as "").
inline std::string PgRows(const std::string& conninfo, const std::string& sql,
                          std::vector<std::vector<std::string>>* rows) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  std::string error;
  if (PQstatus(conn) != CONNECTION_OK) {
    error = PQerrorMessage(conn);
  } else {
    PGresult* r = PQexec(conn, sql.c_str());
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
      error = PQresultErrorMessage(r);
    } else if (rows != nullptr) {
      for (int i = 0; i < PQntuples(r); ++i) {
        std::vector<std::string> row;
        for (int j = 0; j < PQnfields(r); ++j) row.emplace_back(PQgetvalue(r, i, j));
        rows->push_back(std::move(row));
      }
    }
    PQclear(r);
  }
  PQfinish(conn);
  return error;
}

// The same; `first_value` gets the first column of the first row ("" when none).
inline std::string PgExec(const std::string& conninfo, const std::string& sql,
                          std::string* first_value = nullptr) {
  std::vector<std::vector<std::string>> rows;
  std::string error = PgRows(conninfo, sql, first_value ? &rows : nullptr);
  if (first_value) *first_value = !rows.empty() && !rows[0].empty() ? rows[0][0] : "";
  return error;
}

// First column of the first row of a query, "" when none; throws on error.
inline std::string PgValue(const std::string& conninfo, const std::string& sql) {
  std::string value;
  std::string error = PgExec(conninfo, sql, &value);
  if (!error.empty()) throw std::runtime_error("query failed: " + sql + ": " + error);
  return value;
}

class PgCluster {
 public:
  // Creates and starts a cluster in a fresh directory under /tmp. Throws on failure.
  PgCluster() {
    char tmpl[] = "/tmp/gorgone-pg-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("PgCluster: mkdtemp failed");
    dir_ = tmpl;
    // As root the server runs as postgres, which must be able to enter the directory.
    chmod(dir_.c_str(), 0755);
    conninfo_ = run("start");
  }

  ~PgCluster() {
    run_quietly("stop");
    shell("rm -rf " + quote(dir_));
  }

  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  // Database "gorgone".
  const std::string& conninfo() const { return conninfo_; }
  const std::string& dir() const { return dir_; }

  // The same cluster, another database.
  std::string conninfo(const std::string& dbname) const {
    std::string out = conninfo_;
    const std::string from = "dbname=gorgone";
    out.replace(out.find(from), from.size(), "dbname=" + dbname);
    return out;
  }

  // Creates an empty database t_<random> and returns its conninfo.
  std::string create_database() {
    std::random_device rd;
    std::uniform_int_distribution<unsigned long long> dist;
    char name[40];
    std::snprintf(name, sizeof(name), "t_%016llx", dist(rd));
    std::string error = PgExec(conninfo_, std::string("CREATE DATABASE ") + name);
    if (!error.empty()) throw std::runtime_error("PgCluster: CREATE DATABASE failed: " + error);
    return conninfo(name);
  }

  // Fast restart: every client connection is dropped.
  void restart() { run("restart"); }
  void stop() { run_quietly("stop"); }
  void start() { run("start"); }

  // One cluster for the whole test binary, started on first use.
  static PgCluster& shared() {
    std::unique_ptr<PgCluster>& c = holder();
    if (!c) c = std::make_unique<PgCluster>();
    return *c;
  }
  static void release_shared() { holder().reset(); }

 private:
  static std::unique_ptr<PgCluster>& holder() {
    static std::unique_ptr<PgCluster> cluster;
    return cluster;
  }

  static std::string quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
  }

  static std::string script() {
    const char* root = std::getenv("GORGONE_SOURCE_ROOT");
    if (root == nullptr) throw std::runtime_error("PgCluster: GORGONE_SOURCE_ROOT is not set");
    return quote(std::string(root) + "/tests/support/pg-private.sh");
  }

  // Runs the script and returns the line it printed (the conninfo).
  std::string run(const std::string& action) {
    std::string cmd = script() + " " + action + " " + quote(dir_);
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) throw std::runtime_error("PgCluster: cannot run " + cmd);
    std::string out;
    char buf[512];
    while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
    int status = pclose(p);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    if (status != 0 || out.empty()) {
      throw std::runtime_error("PgCluster: " + cmd + " failed (see stderr and " + dir_ +
                               "/pg.log)");
    }
    return out;
  }

  // For tear-down paths: failures are reported by the script on stderr.
  void run_quietly(const std::string& action) {
    const char* root = std::getenv("GORGONE_SOURCE_ROOT");
    if (root == nullptr) return;
    shell(quote(std::string(root) + "/tests/support/pg-private.sh") + " " + action + " " +
          quote(dir_) + " >/dev/null");
  }

  static void shell(const std::string& cmd) {
    int rc = std::system(cmd.c_str());
    (void)rc;
  }

  std::string dir_;
  std::string conninfo_;
};

// Stops the shared cluster once all tests ran, while gtest still reports errors.
class PgEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { PgCluster::release_shared(); }
};

inline ::testing::Environment* const kPgEnvironment =
    ::testing::AddGlobalTestEnvironment(new PgEnvironment);

}  // namespace gorgone_test
