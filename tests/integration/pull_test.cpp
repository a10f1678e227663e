// A pull node, played by the test itself over the real wire protocol: it connects to the
// central's external router, handshakes, registers, and answers what the central sends.
#include <gtest/gtest.h>
#include <zmq.hpp>

#include "fleet.hpp"
#include "gorgone/protocol/frame.hpp"
#include "wire_client.hpp"

#include <memory>

namespace gorgone::testing {
namespace {

TEST(Pull, APullNodeRegistersIsPingedAndReceivesItsCommands) {
  Fleet fleet;
  fleet.declare({"3"});
  fleet.declare({"1", true, {"3"}, true, HostSpec().proxy_directives,
                 "  - id: 3\n    type: pull\n    prevail: 1\n", true});
  fleet.start("1");
  zmq::context_t ctx;
  WireClient poller(ctx, "3", fleet.private_key("3"), fleet.port("1"));
  ASSERT_TRUE(poller.handshake()) << fleet.logs();

  // Before it registers, the central has no way to reach it.
  std::string early = fleet.command("1", "3", "echo too-early");
  ASSERT_TRUE(eventually([&] { return !fleet.rows("1", early).empty(); }));
  EXPECT_EQ(fleet.rows("1", early)[0].second, R"({"message":"proxy - no pathway for target 3"})");

  poller.send("[REGISTERNODES] [] [] {\"nodes\":[{\"id\":\"3\",\"type\":\"pull\",\"identity\":\"" +
              poller.identity() + "\"}]}");
  // The central pings it with the final target in TARGET, as Gorgone does for pull nodes.
  std::optional<std::string> ping;
  ASSERT_TRUE(eventually([&] {
    ping = poller.next(std::chrono::seconds(1));
    return ping && ping->rfind("[PING]", 0) == 0;
  }, std::chrono::seconds(20))) << fleet.logs();
  auto frame = protocol::parse_frame(*ping);
  ASSERT_TRUE(frame);
  EXPECT_EQ(frame->target, "3");
  poller.send("[PONG] [" + frame->token + R"(] [] {"code":0,"data":{"action":"ping","message":"ping ok","id":"3","hostname":"pull-3","data":{}}})");
  ASSERT_TRUE(eventually([&] {
    auto cs = fleet.constatus("1");
    return cs.HasMember("data") && cs["data"].HasMember("3") && cs["data"]["3"]["ping_ok"].GetInt() >= 1;
  })) << fleet.get("1", "/api/internal/constatus").second;
  EXPECT_STREQ(fleet.constatus("1")["data"]["3"]["type"].GetString(), "pull");

  std::string token = fleet.command("1", "3", "echo pulled");
  std::optional<std::string> command;
  ASSERT_TRUE(eventually([&] {
    command = poller.next(std::chrono::seconds(1));
    return command && command->rfind("[COMMAND]", 0) == 0;
  }, std::chrono::seconds(20)));
  auto cf = protocol::parse_frame(*command);
  ASSERT_TRUE(cf);
  EXPECT_EQ(cf->token, token);
  EXPECT_EQ(cf->target, "3");
  EXPECT_NE(cf->data.find("echo pulled"), std::string::npos);
}

// A pull poller played by the test: a wire client that registers itself and reads frames.
class PullPoller {
 public:
  PullPoller(zmq::context_t& ctx, Fleet& fleet) : client_(ctx, "3", fleet.private_key("3"), fleet.port("1")) {}
  bool connect() {
    if (!client_.handshake()) return false;
    client_.send("[REGISTERNODES] [] [] {\"nodes\":[{\"id\":\"3\",\"type\":\"pull\",\"identity\":\"" +
                 client_.identity() + "\"}]}");
    return true;
  }
  // The next frame of `action` (pings and other frames skipped).
  std::optional<protocol::Frame> next(const std::string& action, std::chrono::seconds limit = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      auto text = client_.next(std::chrono::seconds(1));
      if (!text) continue;
      auto f = protocol::parse_frame(*text);
      if (f && f->action == action) return f;
    }
    return std::nullopt;
  }
  WireClient& client() { return client_; }

 private:
  WireClient client_;
};

class PullNode : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) std::cerr << fleet_.logs();
  }
  void start_central(const std::string& node_extra = "", const std::string& directives = HostSpec().proxy_directives) {
    fleet_.declare({"3"});
    fleet_.declare({"1", true, {"3"}, true, directives, "  - id: 3\n    type: pull\n    prevail: 1\n" + node_extra, true});
    fleet_.start("1");
  }
  Fleet fleet_;
  zmq::context_t ctx_;
};

// Frames for a pull node whose connection went away are held (no KO) and delivered, in order,
// on its next connection, as a push node's are.
TEST_F(PullNode, FramesHeldWhileItIsAwayAreDeliveredInOrderWhenItReturns) {
  start_central();
  auto first = std::make_unique<PullPoller>(ctx_, fleet_);
  ASSERT_TRUE(first->connect());
  ASSERT_TRUE(first->next("PING")) << "the central never learnt the connection";
  std::string before = fleet_.command("1", "3", "echo before");
  auto got = first->next("COMMAND");
  ASSERT_TRUE(got) << fleet_.logs();
  EXPECT_EQ(got->token, before);
  first.reset();  // the poller goes away (its connection closes)

  std::vector<std::string> held;
  for (int i = 0; i < 3; ++i) held.push_back(fleet_.command("1", "3", "echo held-" + std::to_string(i)));
  ASSERT_TRUE(eventually([&] {
    return read_file(fleet_.log_path("1")).find("pull node '3' cannot be reached") != std::string::npos;
  })) << fleet_.logs();
  for (const auto& t : held) EXPECT_TRUE(fleet_.rows("1", t).empty()) << "a held frame got a row: " << t;

  PullPoller second(ctx_, fleet_);
  ASSERT_TRUE(second.connect());
  for (const auto& t : held) {
    auto f = second.next("COMMAND");
    ASSERT_TRUE(f) << "held frame " << t << " not delivered\n" << fleet_.logs();
    EXPECT_EQ(f->token, t);
    EXPECT_EQ(f->target, "3");
  }
}

// REMOTECOPY to a pull node: the PROCESSCOPY series arrives on its connection, and the
// chunks put together are the file, with Gorgone's MD5 in the end message.
TEST_F(PullNode, RemoteCopyReachesItAsAProcessCopySeries) {
  start_central("", "      pool: 2\n      ping: 1\n      synchistory_time: 1\n      buffer_size: 50000\n");
  PullPoller poller(ctx_, fleet_);
  ASSERT_TRUE(poller.connect());
  ASSERT_TRUE(poller.next("PING")) << "the central never learnt the connection";
  std::string dir = make_temp_dir("gorgone-pullcopy");
  std::string content;
  for (int i = 0; i < 12345; ++i) content += static_cast<char>('a' + (i * 7) % 26);
  write_file(dir + "/file.cfg", content);
  auto [status, body] = fleet_.post("1", "/api/nodes/3/core/proxy/remotecopy",
                                    R"({"source":")" + dir + R"(/file.cfg","destination":"/etc/x/file.cfg","cache_dir":")" + dir + R"("})");
  ASSERT_EQ(status, 200) << body;
  std::string received;
  for (;;) {
    auto f = poller.next("PROCESSCOPY");
    ASSERT_TRUE(f) << fleet_.logs();
    EXPECT_EQ(f->target, "3");
    json::Document d;
    ASSERT_TRUE(json::parse(d, f->data));
    std::string status_text = d["content"]["status"].GetString();
    if (status_text == "inprogress") {
      received += protocol::base64_decode_lenient(d["content"]["chunk"]["data"].GetString());
      continue;
    }
    ASSERT_EQ(status_text, "end");
    EXPECT_EQ(std::string(d["content"]["destination"].GetString()), "/etc/x/file.cfg");
    break;
  }
  EXPECT_EQ(received, content);
  std::filesystem::remove_all(dir);
}

// A pull node's own ping_timeout (here 2 s, Gorgone's default 30) decides when an unanswered
// ping is given up.
TEST_F(PullNode, ItsPingTimeoutIsHonoured) {
  start_central("    ping_timeout: 2\n");
  PullPoller poller(ctx_, fleet_);  // never answers a ping
  ASSERT_TRUE(poller.connect());
  auto count = [&] {
    std::string log = read_file(fleet_.log_path("1"));
    std::size_t n = 0;
    for (std::size_t at = log.find("Ping timeout from '3'"); at != std::string::npos;
         at = log.find("Ping timeout from '3'", at + 1))
      ++n;
    return n;
  };
  EXPECT_TRUE(eventually([&] { return count() >= 2; }, std::chrono::seconds(25))) << fleet_.logs();
}

// Only this host's workers may ask the hooks to send a frame to a pull node: a node that
// sends PROXYPULLSEND (to make the central send frames of its choosing to another node) is
// refused with a log line, and nothing is sent.
TEST_F(PullNode, ANodeCannotAskTheHooksToSendForIt) {
  start_central();
  PullPoller poller(ctx_, fleet_);
  ASSERT_TRUE(poller.connect());
  ASSERT_TRUE(eventually([&] { return poller.next("PING", std::chrono::seconds(2)).has_value(); }));
  poller.client().send("[PROXYPULLSEND] [1] [3] [COMMAND] [forged-token] [3] {\"content\":[{\"command\":\"echo forged\"}]}");
  ASSERT_TRUE(eventually([&] {
    return read_file(fleet_.log_path("1")).find("PROXYPULLSEND from node '3' refused: only this host's workers send it") !=
           std::string::npos;
  })) << fleet_.logs();
  EXPECT_FALSE(poller.next("COMMAND", std::chrono::seconds(3)).has_value());
}

}  // namespace
}  // namespace gorgone::testing
