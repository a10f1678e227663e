// Proxy workers against hostile input, with real processes: a request that used to end a
// worker thread (and lose the frames it held) gets its KO row and the worker goes on.
#include <gtest/gtest.h>

#include "fleet.hpp"

namespace gorgone::testing {
namespace {

class Worker : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) std::cerr << fleet_.logs();
  }
  std::string node(const std::string& id) {
    return "  - id: " + id + "\n    type: push_zmq\n    address: 127.0.0.1\n    port: " +
           std::to_string(fleet_.port(id)) + "\n";
  }
  // POSTs a REMOTECOPY for node 2 and returns its token.
  std::string remote_copy(const std::string& content_json) {
    auto [status, body] = fleet_.post("1", "/api/nodes/2/core/proxy/remotecopy", content_json);
    json::Document d;
    EXPECT_EQ(status, 200) << body;
    return json::parse(d, body) && d.HasMember("token") ? std::string(d["token"].GetString()) : std::string();
  }
  std::vector<std::pair<int, std::string>> first_rows(const std::string& token) {
    std::vector<std::pair<int, std::string>> got;
    EXPECT_TRUE(eventually([&] { return !(got = fleet_.rows("1", token)).empty(); })) << "no row for " << token;
    return got;
  }
  Fleet fleet_;
};

TEST_F(Worker, HostileRemoteCopyFieldsGetAKoAndTheWorkerKeepsWhatItHolds) {
  fleet_.declare({"2", true, {"1"}});  // the poller: down for now
  // One worker: the held command and the hostile copies share it.
  fleet_.declare({"1", false, {}, true, "      pool: 1\n      ping: 1\n      synchistory_time: 1\n", node("2"), true});
  fleet_.start("1");
  std::string held = fleet_.command("1", "2", "echo still-here");
  ASSERT_FALSE(held.empty());

  std::string dir = make_temp_dir("gorgone-worker");
  write_file(dir + "/tree/a.cfg", "alpha\n");  // a directory with a file: the mode reaches the archive
  std::filesystem::create_directories(dir + "/cache");
  auto request = [&](const std::string& extra) {
    return R"({"source":")" + dir + R"(/tree","destination":")" + dir + R"(/dst","cache_dir":")" + dir + R"(/cache")" +
           extra + "}";
  };
  // Octal digits, but far too many: this used to throw out of the archive writer and end
  // the worker thread with the command above in its queue.
  std::string bad_mode = remote_copy(request(R"(,"mode":"07777777777777777777")"));
  std::string bad_owner = remote_copy(request(R"(,"owner":"-rf")"));
  ASSERT_FALSE(bad_mode.empty());
  auto rows = first_rows(bad_mode);
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows[0].first, 1);
  EXPECT_EQ(rows[0].second,
            R"({"message":"remote copy failed: mode must be 1 to 4 octal digits, got '07777777777777777777'"})");
  rows = first_rows(bad_owner);
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows[0].first, 1);
  EXPECT_NE(rows[0].second.find("remote copy failed: owner must be a user name"), std::string::npos) << rows[0].second;

  // The worker never stopped, and the command it held runs once the poller is there.
  fleet_.start("2");
  EXPECT_TRUE(eventually([&] { return fleet_.result("1", held, "2") == "still-here"; }, std::chrono::seconds(60)));
  std::string log = fleet_.daemon("1").log();
  EXPECT_EQ(log.find("is not running: restarting it"), std::string::npos);
  EXPECT_EQ(log.find("stopped on error"), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_empty(dir + "/cache")) << "no archive left behind";
  std::filesystem::remove_all(dir);
}

TEST_F(Worker, FramesHeldForADownNodeGetAKoWhenTheCentralStops) {
  fleet_.declare({"2", true, {"1"}});  // never started
  fleet_.declare({"1", false, {}, true, "      pool: 1\n      ping: 3600\n      synchistory_time: 3600\n", node("2"), true});
  fleet_.start("1");
  std::string held = fleet_.command("1", "2", "echo never");
  ASSERT_FALSE(held.empty());
  ASSERT_TRUE(eventually([&] { return fleet_.daemon("1").log().find("connect for 2") != std::string::npos; }));
  EXPECT_EQ(fleet_.daemon("1").stop(), 0);
  // The central is gone; its history says what became of the frame.
  std::string data = gorgone_test::PgValue(fleet_.db("1"), "SELECT data FROM gorgone_history WHERE token = '" + held +
                                                            "' AND code = 1");
  EXPECT_NE(data.find("the proxy is stopping; the frame held for node '2' was not sent"), std::string::npos) << data;
}

}  // namespace
}  // namespace gorgone::testing
