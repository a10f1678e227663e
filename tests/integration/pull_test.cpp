// A pull node, played by the test itself over the real wire protocol: it connects to the
// central's external router, handshakes, registers, and answers what the central sends.
#include <gtest/gtest.h>
#include <zmq.hpp>

#include "fleet.hpp"
#include "gorgone/protocol/frame.hpp"
#include "wire_client.hpp"

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

}  // namespace
}  // namespace gorgone::testing
