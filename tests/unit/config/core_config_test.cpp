// gorgone.gorgonecore and gorgone.modules as the host reads them.
#include <gtest/gtest.h>

#include "config.hpp"

namespace gorgone {
namespace {

Result<CoreConfig> parse(const std::string& yaml) { return parse_core_config(YAML::Load(yaml), "test.yaml"); }

TEST(CoreConfig, PackagedLayoutAndDefaults) {
  auto c = parse(R"(
configuration:
  gorgone:
    gorgonecore:
      id: 2
      gorgone_db_type: Pg
      gorgone_db_name: dbname=gorgone
      external_com_type: tcp
      external_com_path: "*:5556"
      authorized_clients:
        - key: pnI6EWkiTbazjikJXRkLmjml5wvVECYtQduJUjS4QK4
)");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->id, "2");
  EXPECT_EQ(c->external_com_rotation, 1440 * 60);
  EXPECT_EQ(c->external_com_keysize, 32u);
  EXPECT_EQ(c->fingerprint_mode, "first");
  EXPECT_EQ(c->proxy_name, "proxy");
  ASSERT_EQ(c->authorized_clients.size(), 1u);
  EXPECT_EQ(c->authorized_clients[0], "pnI6EWkiTbazjikJXRkLmjml5wvVECYtQduJUjS4QK4");
}

TEST(CoreConfig, DatabaseFieldsCannotInjectConnectionKeywords) {
  // A password with a space and a quote stays one value: libpq would otherwise read
  // "sslmode=disable" (or any keyword) from it.
  auto c = parse(R"(gorgone: {gorgonecore: {id: 1, gorgone_db_name: "dbname=gorgone", gorgone_db_host: /run/postgresql,
    gorgone_db_password: "x sslmode=disable it's"}})");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->db_name, R"(dbname=gorgone host='/run/postgresql' password='x sslmode=disable it\'s')");
}

// The history store: Gorgone's SQLite file by default (a poller as Gorgone packages it),
// PostgreSQL when asked for (a central), and what this host read before it had SQLite (a
// libpq string without gorgone_db_type) still means PostgreSQL.
TEST(CoreConfig, HistoryStoreSqliteByDefaultPgWhenAskedFor) {
  auto c = parse("gorgone: {gorgonecore: {id: 2}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->db_type, "SQLite");
  EXPECT_EQ(c->db_path, "/var/lib/centreon-gorgone/history.sdb");
  EXPECT_TRUE(c->db_defaulted);

  c = parse("gorgone: {gorgonecore: {id: 2, gorgone_db_type: SQLite, gorgone_db_name: 'dbname=/srv/g/h.sdb'}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->db_type, "SQLite");
  EXPECT_EQ(c->db_path, "/srv/g/h.sdb");
  EXPECT_FALSE(c->db_defaulted);

  c = parse("gorgone: {gorgonecore: {id: 2, gorgone_db_type: sqlite, gorgone_db_name: /srv/bare.sdb}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->db_path, "/srv/bare.sdb");

  c = parse("gorgone: {gorgonecore: {id: 2, gorgone_db_type: SQLite}}");  // the name defaults alone too
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->db_path, "/var/lib/centreon-gorgone/history.sdb");

  c = parse("gorgone: {gorgonecore: {id: 2, gorgone_db_name: 'dbname=/var/lib/centreon-gorgone/history.sdb'}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->db_type, "SQLite");
  EXPECT_EQ(c->db_path, "/var/lib/centreon-gorgone/history.sdb");

  c = parse("gorgone: {gorgonecore: {id: 1, gorgone_db_type: PG, gorgone_db_name: 'dbname=gorgone'}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->db_type, "Pg");
  EXPECT_EQ(c->db_name, "dbname=gorgone");

  c = parse("gorgone: {gorgonecore: {id: 1, gorgone_db_name: 'host=/run/postgresql dbname=gorgone'}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->db_type, "Pg");
  c = parse("gorgone: {gorgonecore: {id: 1, gorgone_db_host: /run/postgresql}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->db_type, "Pg");
  EXPECT_EQ(c->db_name, "host='/run/postgresql'");

  c = parse("gorgone: {gorgonecore: {id: 2, gorgone_db_type: SQLite, gorgone_db_name: 'host=x'}}");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("gorgone.gorgonecore.gorgone_db_name"), std::string::npos) << c.error();
  EXPECT_NE(c.error().find("dbname="), std::string::npos) << c.error();
}

TEST(CoreConfig, ExternalSessionLimits) {
  auto c = parse("gorgone: {gorgonecore: {id: 1}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->external_com_max_sessions, 10000u);
  EXPECT_EQ(c->external_com_helo_per_minute, 600);
  c = parse("gorgone: {gorgonecore: {id: 1, external_com_max_sessions: 5, external_com_helo_per_minute: 0}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->external_com_max_sessions, 5u);
  EXPECT_EQ(c->external_com_helo_per_minute, 0);
  c = parse("gorgone: {gorgonecore: {id: 1, external_com_max_sessions: 0}}");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("gorgone.gorgonecore.external_com_max_sessions"), std::string::npos) << c.error();
}

TEST(CoreConfig, RotationInSecondsOverridesMinutes) {
  auto c = parse("gorgone: {gorgonecore: {id: 1, external_com_rotation: 10, external_com_rotation_seconds: 2}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->external_com_rotation, 2);
  c = parse("gorgone: {gorgonecore: {id: 1, external_com_rotation: 10}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->external_com_rotation, 600);
  c = parse("gorgone: {gorgonecore: {id: 1, external_com_rotation_seconds: 0}}");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("external_com_rotation_seconds"), std::string::npos);
}

TEST(CoreConfig, GetlogPageSize) {
  auto c = parse("gorgone: {gorgonecore: {id: 1}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->getlog_max_rows, 10000);
  c = parse("gorgone: {gorgonecore: {id: 1, getlog_max_rows: 250}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->getlog_max_rows, 250);
  c = parse("gorgone: {gorgonecore: {id: 1, getlog_max_rows: 0}}");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("getlog_max_rows"), std::string::npos);
}

TEST(CoreConfig, GetlogPageBytes) {
  auto c = parse("gorgone: {gorgonecore: {id: 1}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->getlog_max_bytes, 4 << 20);
  c = parse("gorgone: {gorgonecore: {id: 1, getlog_max_bytes: 65536}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->getlog_max_bytes, 65536);
  c = parse("gorgone: {gorgonecore: {id: 1, getlog_max_bytes: 10}}");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("getlog_max_bytes"), std::string::npos);
}

// The history thread's bound: 100 000 rows by default, 100 to 10 million, else an error
// naming the key (a bound of 0 would lose every row while the database is slow).
TEST(CoreConfig, HistoryQueueRows) {
  auto c = parse("gorgone: {gorgonecore: {id: 1}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->history_queue, 100000u);
  c = parse("gorgone: {gorgonecore: {id: 1, history_queue_rows: 500}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->history_queue, 500u);
  for (const char* bad : {"0", "99", "10000001", "lots"}) {
    c = parse(std::string("gorgone: {gorgonecore: {id: 1, history_queue_rows: ") + bad + "}}");
    ASSERT_FALSE(c) << bad;
    EXPECT_NE(c.error().find("gorgonecore.history_queue_rows"), std::string::npos) << c.error();
  }
}

TEST(CoreConfig, GorgoneAtTheTopIsAcceptedToo) {
  EXPECT_TRUE(parse("gorgone: {gorgonecore: {id: 1}}"));
}

TEST(CoreConfig, ErrorsNameTheFileAndTheKey) {
  auto c = parse("gorgone: {gorgonecore: {id: 1, gorgone_db_type: mysql}}");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("test.yaml"), std::string::npos);
  EXPECT_NE(c.error().find("gorgone_db_type"), std::string::npos);
  EXPECT_NE(c.error().find("gorgone_db_type: Pg"), std::string::npos) << "says what to write instead";
  EXPECT_NE(c.error().find("gorgone_db_type: SQLite"), std::string::npos) << "says what to write instead";

  c = parse("gorgone: {gorgonecore: {id: 1, external_com_type: udp, external_com_path: x}}");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("external_com_type"), std::string::npos);

  c = parse("gorgone: {gorgonecore: {id: 1, external_com_rotation: soon}}");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("external_com_rotation"), std::string::npos);

  c = parse("gorgone: {modules: []}");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("gorgonecore"), std::string::npos);

  c = parse("gorgone: {gorgonecore: {id: 1}, modules: [{name: x, enable: true}]}");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("modules[0].package"), std::string::npos);

  c = parse("gorgone: {gorgonecore: {id: '1~~2'}}");
  ASSERT_FALSE(c);
}

TEST(CoreConfig, ModulesEnableHttpserverAndRegister) {
  auto c = parse(R"(
gorgone:
  gorgonecore: {id: 1}
  modules:
    - {name: proxy, package: "gorgone::modules::core::proxy::hooks", enable: true, pool: 2}
    - {name: action, package: "gorgone::modules::core::action::hooks", enable: false}
    - {name: nodes, package: "gorgone::modules::centreon::nodes::hooks"}
    - name: httpserver
      package: "gorgone::modules::core::httpserver::hooks"
      enable: true
      address: 127.0.0.1
      port: 8085
      auth: {enabled: true, user: admin, password: secret}
      allowed_hosts: {enabled: true, subnets: [127.0.0.1/32]}
    - {name: register, package: "gorgone::modules::core::register::hooks", enable: true, config_file: nodes.yaml}
)");
  ASSERT_TRUE(c) << c.error();
  // Disabled and enable-less modules are not loaded; httpserver and register are built in.
  ASSERT_EQ(c->modules.size(), 1u);
  EXPECT_EQ(c->modules[0].name, "proxy");
  EXPECT_EQ(c->modules[0].node["pool"].as<int>(), 2);
  EXPECT_TRUE(c->http.enabled);
  EXPECT_EQ(c->http.port, 8085);
  EXPECT_TRUE(c->http.auth_enabled);
  EXPECT_EQ(c->http.auth_user, "admin");
  ASSERT_EQ(c->http.allowed_subnets.size(), 1u);
  EXPECT_EQ(c->register_config_file, "nodes.yaml");
}

TEST(CoreConfig, FingerprintModeAcceptsGorgonesSpellings) {
  EXPECT_EQ(parse("gorgone: {gorgonecore: {fingerprint_mode: ' Strict'}}")->fingerprint_mode, "strict");
  EXPECT_EQ(parse("gorgone: {gorgonecore: {fingerprint_mode: always}}")->fingerprint_mode, "always");
  EXPECT_EQ(parse("gorgone: {gorgonecore: {fingerprint_mode: whatever}}")->fingerprint_mode, "first");
}

TEST(CoreConfig, HttpAuthNeedsCredentials) {
  auto c = parse(R"(
gorgone:
  gorgonecore: {id: 1}
  modules:
    - {name: httpserver, package: "gorgone::modules::core::httpserver::hooks", enable: true, auth: {enabled: true}}
)");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("auth"), std::string::npos);
}


std::string httpserver(const std::string& directives) {
  return "gorgone:\n  gorgonecore: {id: 1}\n  modules:\n"
         "    - {name: httpserver, package: \"gorgone::modules::core::httpserver::hooks\", enable: true, " +
         directives + "}\n";
}

TEST(CoreConfig, AllowedHostsSubnetsAreCheckedAtLoad) {
  for (const char* bad : {"10.0.0.0/x", "10.0.0.0/", "/-1", "::1/200", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0/8",
                          "example.org", "10.0.0.0/8/8", "''", "10.0.0.0/0008"}) {
    auto c = parse(httpserver(std::string("allowed_hosts: {enabled: true, subnets: [127.0.0.1/32, ") + bad + "]}"));
    ASSERT_FALSE(c) << bad;
    EXPECT_NE(c.error().find("test.yaml"), std::string::npos) << c.error();
    EXPECT_NE(c.error().find("modules[0].allowed_hosts.subnets[1]"), std::string::npos) << c.error();
    std::string shown = std::string(bad) == "''" ? "''" : "'" + std::string(bad) + "'";
    EXPECT_NE(c.error().find(shown), std::string::npos) << c.error();
  }
  // Checked even when the list is not enabled: a typo must not wait to be switched on.
  EXPECT_FALSE(parse(httpserver("allowed_hosts: {enabled: false, subnets: [10.0.0.0/x]}")));
  auto c = parse(httpserver("allowed_hosts: {enabled: true, subnets: 10.0.0.0/8}"));
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("must be a list"), std::string::npos) << c.error();

  c = parse(httpserver("allowed_hosts: {enabled: true, subnets: [10.0.0.0/8, 192.168.1.7, '::1/128', '::1', "
                       "'fd00::/8', 0.0.0.0/0]}"));
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->http.allowed_subnets.size(), 6u);
}

TEST(CoreConfig, HttpMaxBodySize) {
  auto c = parse(httpserver("port: 8085"));
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->http.max_body_size, 1u << 20);
  c = parse(httpserver("max_body_size: 4096"));
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->http.max_body_size, 4096u);
  c = parse(httpserver("max_body_size: lots"));
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("max_body_size"), std::string::npos);
  EXPECT_FALSE(parse(httpserver("max_body_size: 0")));
}

TEST(CoreConfig, AnEmptyModulesListIsNoModules) {
  auto c = parse("gorgone:\n  gorgonecore: {id: 1}\n  modules:\n");
  ASSERT_TRUE(c) << c.error();
  EXPECT_TRUE(c->modules.empty());
  c = parse("gorgone: {gorgonecore: {id: 1}, modules: {name: x}}");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("modules: must be a list"), std::string::npos) << c.error();
}

TEST(CoreConfig, DbcleanerRetention) {
  auto c = parse("gorgone: {gorgonecore: {id: 1}}");
  ASSERT_TRUE(c) << c.error();
  EXPECT_FALSE(c->purge) << "nothing is purged unless dbcleaner is enabled, as in Gorgone";
  c = parse(R"(gorgone: {gorgonecore: {id: 1}, modules: [
    {name: dbcleaner, package: "gorgone::modules::core::dbcleaner::hooks", enable: true}]})");
  ASSERT_TRUE(c) << c.error();
  ASSERT_TRUE(c->purge);
  EXPECT_EQ(c->purge->sessions_seconds, 3600);
  EXPECT_EQ(c->purge->history_seconds, 604800);
  c = parse(R"(gorgone: {gorgonecore: {id: 1}, modules: [
    {name: dbcleaner, package: "gorgone::modules::core::dbcleaner::hooks", enable: true,
     purge_sessions_time: 7200, purge_history_time: 86400}]})");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->purge->sessions_seconds, 7200);
  EXPECT_EQ(c->purge->history_seconds, 86400);
  c = parse(R"(gorgone: {gorgonecore: {id: 1}, modules: [
    {name: dbcleaner, package: "gorgone::modules::core::dbcleaner::hooks", enable: true, purge_history_time: soon}]})");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("modules[0].purge_history_time"), std::string::npos) << c.error();
}

}  // namespace
}  // namespace gorgone
