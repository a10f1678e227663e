// The host's operator tooling: --version and --check-config, run as an administrator would,
// on configuration files written here. --check-config starts nothing: its database
// connection string here points nowhere.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <tuple>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "daemon.hpp"
#include "host_run.hpp"
#include "fleet.hpp"

namespace gorgone::testing {
namespace {


class CheckConfig : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = make_temp_dir("gorgone-check"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A central's configuration: the proxy with `proxy_lines`, the register module with a
  // nodes file holding `nodes`, and `more` module entries.
  std::string write(const std::string& proxy_lines, const std::string& nodes, const std::string& db = "dbname=gorgone",
                    const std::string& more = "") {
    std::ofstream(dir_ + "/nodes.yaml") << "nodes:\n" << nodes;
    std::string file = dir_ + "/gorgoned.yaml";
    std::ofstream(file) << "name: gorgoned.yaml\nconfiguration:\n  gorgone:\n    gorgonecore:\n      id: 1\n"
                        << "      privkey: " << dir_ << "/rsakey.priv.pem\n      pubkey: " << dir_ << "/rsakey.pub.pem\n"
                        << "      gorgone_db_type: Pg\n      gorgone_db_name: \"" << db << "\"\n    modules:\n"
                        << "      - name: proxy\n        package: gorgone::modules::core::proxy::hooks\n        enable: true\n"
                        << proxy_lines << "      - name: register\n        package: gorgone::modules::core::register::hooks\n"
                        << "        enable: true\n        config_file: " << dir_ << "/nodes.yaml\n"
                        << more;
    return file;
  }

  std::string dir_;
};

const std::string kNode2 = push_node("2", 5556);

TEST(HostVersion, PrintsTheVersionAndTheModuleAbi) {
  HostRun r = run_host({"--version"});
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.out.rfind("gorgone-host ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("(module ABI 1."), std::string::npos) << r.out;
}

TEST_F(CheckConfig, AUsableConfigurationSaysSoAndStartsNothing) {
  HostRun r = run_host({"--check-config", "--config", write("        pool: 2\n", kNode2)});
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("configuration OK (1 module(s), 1 node(s))"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("one is generated at the first start"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/rsakey.priv.pem")) << "the check generated keys";
}

TEST_F(CheckConfig, EachProblemIsNamedAndTheExitCodeSaysNo) {
  const std::string bogus = kNode2 + "  - id: 3\n    type: bogus\n";
  HostRun r = run_host({"--check-config", "--config",
                write("        pool: lots\n", bogus, "host='x",
                      "      - name: nothere\n        package: gorgone::modules::core::nothere::hooks\n        enable: true\n")});
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("gorgone.gorgonecore.gorgone_db_name: not a valid PostgreSQL connection string"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("module 'proxy' cannot be loaded: proxy: directive 'pool' must be an integer"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("module 'nothere': package 'gorgone::modules::core::nothere::hooks': no gorgone-nothere.so"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("configuration NOT usable (3 problem(s))"), std::string::npos) << r.out;
  // With the proxy loadable, its refusal of a node in the nodes file is a problem too.
  r = run_host({"--check-config", "--config", write("        pool: 2\n", bogus)});
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("nodes.yaml: [proxy] cannot register node '3': unknown node type \"bogus\""), std::string::npos)
      << r.out;
  // A YAML syntax error names its line.
  std::ofstream(dir_ + "/broken.yaml") << "gorgone:\n  gorgonecore: {id: 1\n";
  r = run_host({"--check-config", "--config", dir_ + "/broken.yaml"});
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("broken.yaml"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("line"), std::string::npos) << r.out;
}

// Reload without restart: SIGHUP (or POST /api/internal/reload) reads the nodes file again.
// A node added is registered, a node removed unregistered, a node whose settings changed is
// re-registered with the frames held for it kept: here a command for a poller configured on
// the wrong port runs once the file has the right one. A file that cannot be read changes
// nothing.
TEST(Reload, SighupAndTheApiApplyTheNodesFileAndKeepHeldFrames) {
  Fleet fleet;
  fleet.declare({"3", true, {"1"}});
  fleet.start("3");
  const std::string wrong = push_node("3", 1);
  const std::string node4 = push_node("4", 1);
  fleet.declare({"1", false, {}, true, HostSpec::kProxyDirectives, wrong + node4, true});
  fleet.start("1");
  const std::string nodes_file = std::filesystem::path(fleet.log_path("1")).parent_path().string() + "/nodes.yaml";
  auto registered = [&](const std::string& id) {
    auto cs = fleet.constatus("1");
    return cs.HasMember("data") && cs["data"].IsObject() && cs["data"].HasMember(id.c_str());
  };
  ASSERT_TRUE(eventually([&] { return registered("3") && registered("4"); })) << fleet.logs();
  const std::string token = fleet.command("1", "3", "echo kept");
  ASSERT_FALSE(token.empty());
  // Node 3 on its right port, node 4 gone, node 5 new.
  write_file(nodes_file, "nodes:\n" + push_node("3", fleet.port("3")) + push_node("5", 1));
  ASSERT_EQ(::kill(fleet.daemon("1").pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually([&] { return registered("5") && !registered("4"); })) << fleet.logs();
  EXPECT_TRUE(eventually([&] { return fleet.result("1", token, "3") == "kept"; }, std::chrono::seconds(60)))
      << fleet.logs();
  EXPECT_NE(fleet.daemon("1").log().find("[register] reload: 2 node(s) in " + nodes_file + ": 1 added, 1 changed, 1 removed"),
            std::string::npos)
      << fleet.daemon("1").log();
  // Broken: nothing changes, and the API says so.
  write_file(nodes_file, "nodes: [\n");
  auto [status, body] = fleet.post("1", "/api/internal/reload", "{}");
  EXPECT_EQ(status, 200) << body;
  EXPECT_NE(body.find("nodes file not (re)loaded"), std::string::npos) << body;
  EXPECT_TRUE(registered("3") && registered("5"));
  // Through the API: node 5 removed.
  write_file(nodes_file, "nodes:\n" + push_node("3", fleet.port("3")));
  std::tie(status, body) = fleet.post("1", "/api/internal/reload", "{}");
  EXPECT_EQ(status, 200) << body;
  EXPECT_NE(body.find("1 node(s) in " + nodes_file + ": 0 added, 0 changed, 1 removed"), std::string::npos) << body;
  EXPECT_TRUE(eventually([&] { return !registered("5"); })) << fleet.logs();
  EXPECT_TRUE(registered("3"));
}

// A reload also gives the proxy its directives again: those its loop reads (ping and the
// pong/sync timeouts) apply at once, the others are named as waiting for a restart, and a
// directive the proxy refuses changes nothing. Here pings go from hourly to every second.
TEST(Reload, TheProxysLoopDirectivesApplyAndTheOthersWaitForARestart) {
  Fleet fleet;
  fleet.declare({"2", true, {"1"}});
  fleet.start("2");
  const std::string hourly = "      pool: 2\n      ping: 3600\n      synchistory_time: 1\n";
  fleet.declare({"1", false, {}, true, hourly, push_node("2", fleet.port("2")), true});
  fleet.start("1");
  ASSERT_EQ(echo_on(fleet, "1", "2", "up", std::chrono::seconds(60)), "up") << fleet.logs();
  const std::string config_file = std::filesystem::path(fleet.log_path("1")).parent_path().string() + "/config.yaml";
  const std::string config = read_file(config_file);
  auto with_directives = [&](const std::string& directives) {
    std::string c = config;
    c.replace(c.find(hourly), hourly.size(), directives);
    write_file(config_file, c);
  };
  auto pings_ok = [&] {
    const std::string text = fleet.get("1", "/api/internal/metrics").second;
    const std::string sample = "gorgone_node_pings_ok_total{node=\"2\"} ";
    auto at = text.find(sample);
    return at == std::string::npos ? -1 : std::stoi(text.substr(at + sample.size()));
  };
  with_directives("      pool: 3\n      ping: 1\n      synchistory_time: 1\n");
  auto [status, body] = fleet.post("1", "/api/internal/reload", "{}");
  EXPECT_EQ(status, 200) << body;
  EXPECT_NE(body.find("module 'proxy': proxy directives: applied ping 3600 -> 1; changed but kept until a restart: pool"),
            std::string::npos)
      << body;
  const int before = pings_ok();
  EXPECT_TRUE(eventually([&] { return pings_ok() >= before + 2; }, std::chrono::seconds(30))) << fleet.logs();
  // Refused: nothing changes, and the answer says why.
  with_directives("      pool: 3\n      ping: -5\n      synchistory_time: 1\n");
  std::tie(status, body) = fleet.post("1", "/api/internal/reload", "{}");
  EXPECT_NE(body.find("directive 'ping'"), std::string::npos) << body;
  EXPECT_NE(body.find("the proxy's directives stay as they were"), std::string::npos) << body;
  // By SIGHUP, back to what runs now: nothing to apply.
  with_directives("      pool: 3\n      ping: 1\n      synchistory_time: 1\n");
  ASSERT_EQ(::kill(fleet.daemon("1").pid(), SIGHUP), 0);
  EXPECT_TRUE(eventually([&] {
    return fleet.daemon("1").log().find("[core] reload: module 'proxy': proxy directives: none changed; changed but "
                                        "kept until a restart: pool") != std::string::npos;
  })) << fleet.daemon("1").log();
}

// Run by tests/install/install_test.sh against the host installed into a DESTDIR, with no
// GORGONE_MODULE_PATH: the modules are found next to the installed host under the Gorgone
// package names of the configuration, and a central drives a poller. (Skipped elsewhere:
// the other suites run the build tree.)
TEST(Installed, ACentralDrivesAPollerFromTheInstalledFiles) {
  if (!std::getenv("GORGONE_INSTALLED")) GTEST_SKIP() << "run by tests/install/install_test.sh";
  ASSERT_EQ(std::getenv("GORGONE_MODULE_PATH"), nullptr);
  Fleet fleet;
  start_central_and_poller(fleet);
  EXPECT_EQ(echo_on(fleet, "1", "2", "installed", std::chrono::seconds(60)), "installed") << fleet.logs();
  EXPECT_NE(fleet.daemon("1").log().find("/gorgone/modules/gorgone-proxy.so"), std::string::npos) << fleet.daemon("1").log();
}

// GET /api/internal/metrics: Prometheus text with the host's and the proxy's families,
// behind the API's checks like every endpoint.
TEST(Metrics, ACentralExposesItsNodesHistoryAndRestFigures) {
  Fleet fleet;
  start_central_and_poller(fleet, push_node("9", 1));
  ASSERT_EQ(echo_on(fleet, "1", "2", "m", std::chrono::seconds(60)), "m") << fleet.logs();
  std::string text;
  ASSERT_TRUE(eventually([&] {
    auto [status, body] = fleet.get("1", "/api/internal/metrics");
    text = body;
    return status == 200 && body.find("gorgone_node_pings_ok_total{node=\"2\"} ") != std::string::npos &&
           body.find("gorgone_node_pings_ok_total{node=\"2\"} 0") == std::string::npos;
  }, std::chrono::seconds(60))) << text;
  for (const char* line : {"# TYPE gorgone_node_up gauge", "gorgone_node_up{node=\"2\",type=\"push_zmq\"} 1",
                           "gorgone_node_last_sync_timestamp_seconds{node=\"2\"} ", "gorgone_history_rows_written_total ",
                           "gorgone_history_queue_length ", "gorgone_frames_total{router=\"internal\",action=\"command\"} ",
                           "gorgone_rest_requests_total{status=\"200\"} ", "gorgone_proxy_workers_ready_ratio 1"})
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  // Node 9 cannot be reached: once its ping times out it shows down (pong_discard_timeout is
  // long by default, so here it is only listed).
  EXPECT_NE(text.find("gorgone_node_up{node=\"9\",type=\"push_zmq\"} "), std::string::npos) << text;
  // What went to node 2 and came back is counted; a command for node 9 waits in its queue.
  auto [status, body] = fleet.post("1", "/api/nodes/9/core/action/command", R"([{"command":"echo held"}])");
  ASSERT_EQ(status, 200) << body;
  auto number = [&](const std::string& sample) {
    auto at = text.find(sample + " ");
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + sample.size() + 1));
  };
  ASSERT_TRUE(eventually([&] {
    text = fleet.get("1", "/api/internal/metrics").second;
    // The workers publish their figures once a second.
    return number("gorgone_node_frames_held{node=\"9\"}") >= 1 &&
           number("gorgone_node_frames_sent_total{node=\"2\"}") >= 2 &&  // a ping and the command
           number("gorgone_node_frames_received_total{node=\"2\"}") >= 2;
  }, std::chrono::seconds(30))) << text;
  EXPECT_GT(number("gorgone_node_bytes_sent_total{node=\"2\"}"), 50) << text;
  EXPECT_GT(number("gorgone_node_bytes_received_total{node=\"2\"}"), 50) << text;
  EXPECT_EQ(number("gorgone_node_frames_in_flight{node=\"9\"}"), 0) << text;
  // The workers' queue depths add up to their nodes' (pings for node 9 wait there too).
  double held = 0;
  for (int w = 1; w <= 2; ++w) held += number("gorgone_proxy_worker_frames_held{worker=\"" + std::to_string(w) + "\"}");
  EXPECT_EQ(held, number("gorgone_node_frames_held{node=\"9\"}") + number("gorgone_node_frames_held{node=\"2\"}")) << text;
  // Every family's samples follow its own TYPE line.
  std::string current;
  std::set<std::string> seen;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# TYPE ", 0) == 0) {
      current = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(seen.insert(current).second) << "two TYPE lines for " << current;
    } else if (!line.empty() && line[0] != '#') {
      const std::string name = line.substr(0, line.find_first_of("{ "));
      EXPECT_EQ(name, current) << "a sample of " << name << " outside its family";
    }
  }
}

}  // namespace
}  // namespace gorgone::testing
