// The action module's request lanes end to end: a gorgone-host poller with its own REST API
// (and a central in front of it where the routing matters), a private PostgreSQL, real
// commands. Assertions are on the order of rows and on processes, never on timings.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>

#include "fleet.hpp"
#include "proc_stats.hpp"

namespace gorgone::testing {
namespace {

using json::Document;

class ActionPool : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = make_temp_dir("gorgone-action"); }
  void TearDown() override {
    if (HasFailure()) std::cerr << fleet_.logs();
    // A sleeper left by a failed test must not outlive it.
    for (pid_t pid : sleepers_)
      if (pid > 0) ::kill(pid, SIGKILL);
    std::filesystem::remove_all(dir_);
  }

  // The poller (id 2) with its REST API, so that requests and rows need no central.
  void start_poller(const std::string& action_directives, const std::string& core_directives = "") {
    HostSpec poller{"2", true, {"1"}, false, "", "", true};
    poller.action_directives = action_directives;
    poller.core_directives = core_directives;
    fleet_.declare(poller);
    fleet_.start("2");
  }
  // The central (id 1) with the poller as a push_zmq node.
  void start_central() {
    fleet_.declare(HostSpec{"1", false, {}, true, HostSpec::kProxyDirectives,
                            "  - id: 2\n    type: push_zmq\n    address: 127.0.0.1\n    port: " +
                                std::to_string(fleet_.port("2")) + "\n",
                            true});
    fleet_.start("1");
  }

  // POSTs to host `via` and returns the token ("" when refused).
  std::string post(const std::string& via, const std::string& path, const std::string& body) {
    auto [status, answer] = fleet_.post(via, path, body);
    Document d;
    if (status != 200 || !json::parse(d, answer) || !d.IsObject() || !d.HasMember("token")) {
      ADD_FAILURE() << "POST " << path << ": " << status << " " << answer;
      return "";
    }
    return d["token"].GetString();
  }
  std::string command(const std::string& cmd, int timeout = 90) {
    return post("2", "/api/core/action/command",
                R"([{"command":)" + json::quote(cmd) + R"(,"timeout":)" + std::to_string(timeout) + "}]");
  }
  // A command on the poller that writes its shell's pid to a file, then becomes `sleep`.
  // Returns the pid once it runs (-1 if it never did).
  pid_t start_sleeper(const std::string& name, int seconds, std::string* token = nullptr) {
    std::string file = dir_ + "/" + name + ".pid";
    std::string t = command("echo $$ > " + file + "; exec sleep " + std::to_string(seconds), seconds + 30);
    if (token) *token = t;
    std::string text;
    if (!eventually([&] { return !(text = read_file(file)).empty() && text.back() == '\n'; })) return -1;
    pid_t pid = static_cast<pid_t>(std::stol(text));
    sleepers_.push_back(pid);
    return pid;
  }
  // Codes of the rows host `via` holds for `token` (synced from node 2 first when asked).
  std::vector<int> codes(const std::string& via, const std::string& token, bool from_node = false) {
    std::vector<int> out;
    for (const auto& row : fleet_.rows(via, token, from_node ? "2" : "")) out.push_back(row.first);
    return out;
  }
  static bool has(const std::vector<int>& codes, int code) {
    return std::find(codes.begin(), codes.end(), code) != codes.end();
  }
  // The message of the first row of `token` with `code`, once there is one.
  std::string message(const std::string& via, const std::string& token, int code, bool from_node = false) {
    std::string out;
    eventually([&] {
      for (const auto& [c, data] : fleet_.rows(via, token, from_node ? "2" : "")) {
        Document d;
        if (c == code && json::parse(d, data) && d.HasMember("message")) {
          out = d["message"].GetString();
          return true;
        }
      }
      return false;
    }, std::chrono::seconds(60));
    return out;
  }
  static bool dead(pid_t pid) { return gorgone::testing::process_gone(pid); }

  Fleet fleet_;
  std::string dir_;
  std::vector<pid_t> sleepers_;
};

TEST_F(ActionPool, AnEchoFinishesWhileAnEarlierSleepStillRuns) {
  start_poller("      command_concurrency: 2\n");
  std::string slow;
  pid_t sleeper = start_sleeper("slow", 60, &slow);
  ASSERT_GT(sleeper, 0) << "the sleep never started";
  std::string quick = command("echo quick");
  ASSERT_FALSE(quick.empty());
  ASSERT_TRUE(eventually([&] { return has(codes("2", quick), 2); })) << "the echo never finished";
  // The echo is done; the sleep, posted first, has neither a result nor a final row yet.
  auto slow_codes = codes("2", slow);
  EXPECT_FALSE(has(slow_codes, 100));
  EXPECT_FALSE(has(slow_codes, 1) || has(slow_codes, 2));
  EXPECT_FALSE(dead(sleeper));
  EXPECT_EQ(codes("2", quick), (std::vector<int>{0, 0, 100, 2}));
}

TEST_F(ActionPool, ACopySeriesCompletesWhileALongCommandRuns) {
  start_poller("      command_concurrency: 1\n");
  start_central();
  std::string slow;
  pid_t sleeper = start_sleeper("slow", 150, &slow);
  ASSERT_GT(sleeper, 0) << "the sleep never started";
  // The only command runner is busy for longer than remote_copy_lands waits.
  EXPECT_EQ(remote_copy_lands(fleet_, "1", "2"), "");
  auto slow_codes = codes("2", slow);
  EXPECT_FALSE(has(slow_codes, 100) || has(slow_codes, 1) || has(slow_codes, 2));
  EXPECT_FALSE(dead(sleeper));
}

TEST_F(ActionPool, BeyondTheQueueBoundARequestGetsAKoRowAndNothingElseIsLost) {
  start_poller("      command_concurrency: 1\n      command_queue: 1\n");
  pid_t sleeper = start_sleeper("busy", 60);
  ASSERT_GT(sleeper, 0);
  std::string waiting = command("echo waiting");
  std::string refused = command("echo refused");
  ASSERT_FALSE(waiting.empty());
  ASSERT_FALSE(refused.empty());
  EXPECT_EQ(message("2", refused, 1),
            "action module is busy: 1 requests already wait for a command runner (command_queue)");
  EXPECT_EQ(codes("2", refused), std::vector<int>{1});
  EXPECT_TRUE(codes("2", waiting).empty());
  // Once the runner is free, the waiting request runs.
  ::kill(sleeper, SIGKILL);
  EXPECT_TRUE(eventually([&] { return has(codes("2", waiting), 2); }));
  EXPECT_EQ(codes("2", refused), std::vector<int>{1});
}

TEST_F(ActionPool, ActionEngineThroughTheCentral) {
  start_poller("");
  start_central();
  std::string file = dir_ + "/engine.out";
  // Centreon's body: {"command": ..., "plugins": ...}; the REST layer makes it the content.
  std::string token = post("1", "/api/nodes/2/core/action/engine", R"({"command":)" + json::quote("echo reloaded > " + file) + "}");
  ASSERT_FALSE(token.empty());
  EXPECT_EQ(message("1", token, 2, true), "actionengine has finished successfully");
  EXPECT_EQ(codes("1", token, true), std::vector<int>{2});
  EXPECT_EQ(read_file(file), "reloaded\n");

  std::string bad = post("1", "/api/nodes/2/core/action/engine", R"({"plugins":"/var/cache/plugins.json"})");
  ASSERT_FALSE(bad.empty());
  EXPECT_EQ(message("1", bad, 1, true), "need valid command argument");
  EXPECT_EQ(codes("1", bad, true), std::vector<int>{1});

  // The poller serves it on its own REST API too.
  std::string local = post("2", "/api/core/action/engine", R"({"command":"true"})");
  EXPECT_EQ(message("2", local, 2), "actionengine has finished successfully");
}

TEST_F(ActionPool, StoppingKillsEveryRunningCommandAndTheHostExits) {
  // gorgonecore.timeout 1: after a second of gently, the host calls the module's kill.
  start_poller("      command_concurrency: 3\n", "    timeout: 1\n");
  pid_t first = start_sleeper("first", 60);
  ASSERT_GT(first, 0);
  pid_t second = start_sleeper("second", 60);  // on another runner, at the same time
  ASSERT_GT(second, 0);
  ASSERT_FALSE(dead(first));
  ASSERT_FALSE(dead(second));
  // The host ends by itself with status 0 (no SIGKILL from the test, no sanitizer report)
  // and both sleeps are gone with it.
  EXPECT_EQ(fleet_.daemon("2").stop(), 0);
  EXPECT_TRUE(dead(first)) << "sleep " << first << " survived the host";
  EXPECT_TRUE(dead(second)) << "sleep " << second << " survived the host";
  std::string log = read_file(fleet_.log_path("2"));
  EXPECT_NE(log.find("gorgone core stopped"), std::string::npos) << log;
}

}  // namespace
}  // namespace gorgone::testing
