// The host with its history in SQLite, as Gorgone packages a poller: --check-config with no
// gorgone_db_* at all (Gorgone's default file) and with a place that cannot hold the file, a
// run that answers a command with its rows in the file, and a run refused at start.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fleet.hpp"
#include "host_run.hpp"

namespace gorgone::testing {
namespace {


class SqliteHost : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = make_temp_dir("gorgone-sqlite-host"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A minimal configuration with `db_lines` (gorgonecore lines, 4-space indent).
  std::string write(const std::string& db_lines) {
    std::string file = dir_ + "/gorgoned.yaml";
    std::ofstream(file) << "gorgone:\n  gorgonecore:\n    id: 2\n    privkey: " << dir_ << "/rsakey.priv.pem\n"
                        << "    pubkey: " << dir_ << "/rsakey.pub.pem\n" << db_lines << "  modules:\n";
    return file;
  }

  std::string dir_;
};

// Gorgone's default when no gorgone_db_* is set: SQLite at its packaged path. The check names
// it and creates nothing.
TEST_F(SqliteHost, CheckConfigWithoutAnyDatabaseKeyTakesGorgonesSqliteDefault) {
  const std::string def = "/var/lib/centreon-gorgone/history.sdb";
  const bool existed = std::filesystem::exists(def);
  HostRun r = run_host({"--check-config", "--config", write("")});
  EXPECT_NE(r.out.find("history in the SQLite database '" + def + "' (no gorgone_db_* set: Gorgone's default)"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(std::filesystem::exists(def), existed) << "the check created the database";
}

TEST_F(SqliteHost, CheckConfigNamesTheKeyWhenTheFileCannotBeCreated) {
  std::ofstream(dir_ + "/a-file") << "x";
  HostRun r = run_host({"--check-config", "--config",
                    write("    gorgone_db_type: SQLite\n    gorgone_db_name: dbname=" + dir_ + "/a-file/sub/history.sdb\n")});
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("gorgone.gorgonecore.gorgone_db_name: cannot create the SQLite database '" + dir_ +
                       "/a-file/sub/history.sdb'"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("configuration NOT usable"), std::string::npos) << r.out;
  // A usable place passes, and is not created by the check.
  r = run_host({"--check-config", "--config",
                write("    gorgone_db_type: sqlite\n    gorgone_db_name: dbname=" + dir_ + "/new/history.sdb\n")});
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/new"));
}

// The daemon refuses to start on a file it cannot create, and says which and why.
TEST_F(SqliteHost, AFileThatCannotBeCreatedStopsTheStartWithItsName) {
  std::ofstream(dir_ + "/a-file") << "x";
  std::string config =
      write("    gorgone_db_type: SQLite\n    gorgone_db_name: dbname=" + dir_ + "/a-file/history.sdb\n");
  Daemon d(config, dir_ + "/gorgone.log");
  d.start();
  ASSERT_TRUE(eventually([&] { return !d.alive(); })) << "the host started anyway";
  EXPECT_EQ(d.stop(), 1);
  EXPECT_NE(d.log().find("gorgone_db_name: history: cannot create the SQLite database '" + dir_ + "/a-file/history.sdb'"),
            std::string::npos)
      << d.log();
}

// gorgone_db_type: SQLite with Gorgone's dbname= syntax: the host starts, runs a command, and
// its rows are in the file (0600).
TEST(SqliteHostRun, StartsAnswersACommandAndTheRowsAreInTheFile) {
  Fleet fleet;
  HostSpec spec{"2"};
  spec.sqlite = true;
  spec.http = true;
  fleet.declare(spec);
  fleet.start("2");
  auto [status, body] = fleet.post("2", "/api/core/action/command", R"([{"command":"echo from-sqlite"}])");
  ASSERT_EQ(status, 200) << body << fleet.logs();
  json::Document d;
  ASSERT_TRUE(json::parse(d, body) && d.HasMember("token")) << body;
  const std::string token = d["token"].GetString();
  std::string out;
  ASSERT_TRUE(eventually([&] {
    for (const auto& [code, data] : fleet.rows("2", token)) {
      json::Document row;
      if (code == 100 && json::parse(row, data) && row.HasMember("result")) out = row["result"]["stdout"].GetString();
    }
    return out.find("from-sqlite") != std::string::npos;
  })) << fleet.logs();
  const gorgone_test::StoreRef file = fleet.store("2");
  ASSERT_TRUE(file.sqlite());
  EXPECT_TRUE(eventually([&] {
    return gorgone_test::StoreValue(file, "SELECT count(*) FROM gorgone_history WHERE token = '" + token +
                                              "' AND code = 2") == "1";
  }));
  EXPECT_NE(gorgone_test::StoreValue(file, "SELECT data FROM gorgone_history WHERE token = '" + token +
                                               "' AND code = 100")
                .find("from-sqlite"),
            std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat(file.where.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(fleet.daemon("2").log().find("history in the SQLite database '" + file.where + "'"), std::string::npos);
}

}  // namespace
}  // namespace gorgone::testing
