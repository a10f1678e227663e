// The pull module (gorgone-pull.so) in a real poller process dialling a real central: it
// registers, answers the central's pings, runs the commands sent to it through the central's
// REST API and hands their results back through the log sync; it comes back after a restart,
// reaches a central that starts after it, unregisters on a clean stop, and refuses a central
// whose key is not the pinned one.
#include <gtest/gtest.h>

#include "fleet.hpp"

namespace gorgone::testing {
namespace {

constexpr const char* kCentral = "1";
constexpr const char* kPoller = "3";

class PullModuleTest : public ::testing::Test {
 protected:
  // The central with an external router that authorizes the poller, a proxy and a REST API,
  // and the poller declared there as a pull node (it binds its connection when it registers).
  void declare(const std::string& server_pubkey = "") {
    fleet_.declare({kCentral, true, {kPoller}, true, HostSpec().proxy_directives,
                    "  - id: 3\n    type: pull\n    prevail: 1\n", true});
    HostSpec poller{kPoller};
    poller.extra_modules = "    - name: pull\n      package: gorgone::modules::core::pull::hooks\n      enable: true\n"
                           "      target_type: tcp\n      target_path: 127.0.0.1:" +
                           std::to_string(fleet_.port(kCentral)) + "\n      ping: 1\n      ping_timeout: 30\n" +
                           "      server_pubkey: " + (server_pubkey.empty() ? public_key(kCentral) : server_pubkey) + "\n";
    fleet_.declare(poller);
  }
  std::string public_key(const std::string& id) {
    std::string path = fleet_.private_key(id);
    return path.replace(path.rfind("rsakey.priv.pem"), 15, "rsakey.pub.pem");
  }
  bool pinged() {
    auto cs = fleet_.constatus(kCentral);
    return cs.HasMember("data") && cs["data"].IsObject() && cs["data"].HasMember(kPoller) &&
           cs["data"][kPoller]["ping_ok"].GetInt() >= 1;
  }
  int ping_ok() {
    auto cs = fleet_.constatus(kCentral);
    if (!cs.HasMember("data") || !cs["data"].IsObject() || !cs["data"].HasMember(kPoller)) return 0;
    return cs["data"][kPoller]["ping_ok"].GetInt();
  }
  // A command sent to the poller through the central's REST API, and its output once synced.
  std::string run_on_poller(const std::string& text, std::chrono::seconds limit = std::chrono::seconds(60)) {
    return echo_on(fleet_, kCentral, kPoller, text, limit);
  }
  std::string log_of(const std::string& id) { return read_file(fleet_.log_path(id)); }

  Fleet fleet_;
};

TEST_F(PullModuleTest, RegistersIsPingedAndRunsCommandsSentThroughTheCentral) {
  declare();
  fleet_.start(kCentral);
  fleet_.start(kPoller);
  ASSERT_TRUE(eventually([&] { return pinged(); }, std::chrono::seconds(60))) << fleet_.logs();
  auto cs = fleet_.constatus(kCentral);
  EXPECT_STREQ(cs["data"][kPoller]["type"].GetString(), "pull");
  EXPECT_EQ(run_on_poller("pulled"), "pulled") << fleet_.logs();
  // The command ran on the poller: its own history has the rows.
  std::string poller_log = log_of(kPoller);
  EXPECT_NE(poller_log.find("[pull] connected to central tcp://127.0.0.1:" + std::to_string(fleet_.port(kCentral)) +
                            " as gorgone-3-"),
            std::string::npos)
      << poller_log;
  EXPECT_NE(log_of(kCentral).find("Received setlogs for '3'"), std::string::npos);
}

TEST_F(PullModuleTest, ComesBackAfterARestart) {
  declare();
  fleet_.start(kCentral);
  fleet_.start(kPoller);
  ASSERT_TRUE(eventually([&] { return pinged(); }, std::chrono::seconds(60))) << fleet_.logs();
  ASSERT_EQ(run_on_poller("before"), "before") << fleet_.logs();
  fleet_.stop(kPoller);
  fleet_.start(kPoller);
  // A new connection (new routing id, new handshake), registered again.
  ASSERT_TRUE(eventually([&] {
    std::string log = log_of(kPoller);
    std::size_t first = log.find("[pull] connected to central");
    return first != std::string::npos && log.find("[pull] connected to central", first + 1) != std::string::npos;
  }, std::chrono::seconds(60))) << fleet_.logs();
  EXPECT_EQ(run_on_poller("after"), "after") << fleet_.logs();
}

// A poller that dies (no clean stop: no UNREGISTERNODES) misses nothing: a command sent
// while it is down is held by the central and runs once the restarted poller has connected
// again, with its result synced.
TEST_F(PullModuleTest, ACommandSentWhileThePollerIsDownRunsWhenItReturns) {
  declare();
  fleet_.start(kCentral);
  fleet_.start(kPoller);
  ASSERT_TRUE(eventually([&] { return pinged(); }, std::chrono::seconds(60))) << fleet_.logs();
  ASSERT_EQ(run_on_poller("before"), "before") << fleet_.logs();
  fleet_.daemon(kPoller).kill();
  std::string token = fleet_.command(kCentral, kPoller, "echo while-down");
  ASSERT_FALSE(token.empty());
  ASSERT_TRUE(eventually([&] {
    return log_of(kCentral).find("pull node '" + std::string(kPoller) + "' cannot be reached") != std::string::npos;
  })) << fleet_.logs();
  EXPECT_TRUE(fleet_.rows(kCentral, token).empty()) << "the held command got a row while the poller was down";
  fleet_.stop(kPoller);
  fleet_.start(kPoller);
  std::string out;
  ASSERT_TRUE(eventually([&] { return !(out = fleet_.result(kCentral, token, kPoller)).empty(); },
                         std::chrono::seconds(90)))
      << fleet_.logs();
  EXPECT_EQ(out, "while-down");
}

// The restarted central has forgotten which connection speaks for node 3 and does not ping
// it; the poller hears nothing for more than `ping` s and, at most 60 s after its last
// REGISTERNODES, sends it again (Gorgone's keep-alive), which binds it anew.
TEST_F(PullModuleTest, RegistersAgainWithItsKeepAliveWhenTheCentralRestarts) {
  declare();
  fleet_.start(kCentral);
  fleet_.start(kPoller);
  ASSERT_TRUE(eventually([&] { return pinged(); }, std::chrono::seconds(60))) << fleet_.logs();
  fleet_.stop(kCentral);
  fleet_.start(kCentral);
  ASSERT_TRUE(eventually([&] { return pinged(); }, std::chrono::seconds(150))) << fleet_.logs();
  EXPECT_NE(log_of(kPoller).find("REGISTERNODES sent again as keep-alive"), std::string::npos) << log_of(kPoller);
  EXPECT_EQ(run_on_poller("still-here"), "still-here") << fleet_.logs();
}

TEST_F(PullModuleTest, ReachesACentralThatStartsAfterIt) {
  declare();
  fleet_.start(kPoller);
  // Nobody listens yet: the poller retries with a back-off.
  ASSERT_TRUE(eventually([&] { return log_of(kPoller).find("[pull] no connection to central") != std::string::npos; },
                         std::chrono::seconds(30)))
      << log_of(kPoller);
  EXPECT_NE(log_of(kPoller).find("retrying in 1 s"), std::string::npos);
  fleet_.start(kCentral);
  ASSERT_TRUE(eventually([&] { return pinged(); }, std::chrono::seconds(120))) << fleet_.logs();
  EXPECT_EQ(run_on_poller("late"), "late") << fleet_.logs();
}

TEST_F(PullModuleTest, ACleanStopUnregistersThePoller) {
  declare();
  fleet_.start(kCentral);
  fleet_.start(kPoller);
  ASSERT_TRUE(eventually([&] { return pinged(); }, std::chrono::seconds(60))) << fleet_.logs();
  // SIGTERM: the module unregisters, its thread ends and the process exits by itself.
  EXPECT_EQ(fleet_.daemon(kPoller).stop(), 0);
  fleet_.stop(kPoller);
  EXPECT_NE(log_of(kPoller).find("[pull] stopping: node '3' unregistered from central"), std::string::npos)
      << log_of(kPoller);
  ASSERT_TRUE(eventually([&] { return log_of(kCentral).find("Node '3' is unregistered") != std::string::npos; }))
      << log_of(kCentral);
  // The central no longer has a way to the poller: a command gets a KO at once.
  std::string token = fleet_.command(kCentral, kPoller, "echo gone");
  ASSERT_FALSE(token.empty());
  ASSERT_TRUE(eventually([&] { return !fleet_.rows(kCentral, token).empty(); }));
  EXPECT_EQ(fleet_.rows(kCentral, token)[0].second, R"({"message":"proxy - no pathway for target 3"})");
}

TEST_F(PullModuleTest, ACentralWhoseKeyIsNotThePinnedOneIsRefused) {
  fleet_.declare({"9"});  // a key pair that is not the central's
  declare(public_key("9"));
  fleet_.start(kCentral);
  fleet_.start(kPoller);
  ASSERT_TRUE(eventually([&] {
    return log_of(kPoller).find("does not match server_pubkey") != std::string::npos;
  }, std::chrono::seconds(30))) << log_of(kPoller);
  std::string log = log_of(kPoller);
  EXPECT_NE(log.find("[pull] central tcp://127.0.0.1:" + std::to_string(fleet_.port(kCentral)) +
                     " refused the handshake (server key of target"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("[pull] connected to central"), std::string::npos) << log;
  // Refused before HELO: the central never learnt the poller's key nor registered it.
  std::string token = fleet_.command(kCentral, kPoller, "echo never");
  ASSERT_FALSE(token.empty());
  ASSERT_TRUE(eventually([&] { return !fleet_.rows(kCentral, token).empty(); }));
  EXPECT_EQ(fleet_.rows(kCentral, token)[0].second, R"({"message":"proxy - no pathway for target 3"})");
}

TEST_F(PullModuleTest, ACentralThatDoesNotAuthorizeThePollerIsRetriedWithABackOff) {
  declare();
  fleet_.declare({kCentral, true, {"9"}, true, HostSpec().proxy_directives,
                  "  - id: 3\n    type: pull\n    prevail: 1\n", true});  // authorizes another key only
  fleet_.start(kCentral);
  fleet_.start(kPoller);
  std::string refused = "[pull] central tcp://127.0.0.1:" + std::to_string(fleet_.port(kCentral)) +
                        " refused the handshake (issue: [ACK] [] {\"code\":1,\"data\":{\"message\":\"handshake issue\"}})";
  ASSERT_TRUE(eventually([&] {
    std::string log = log_of(kPoller);
    return log.find(refused + ": retrying in 1 s") != std::string::npos &&
           log.find(refused + ": retrying in 2 s") != std::string::npos;
  }, std::chrono::seconds(30))) << log_of(kPoller);
  EXPECT_EQ(log_of(kPoller).find("[pull] connected to central"), std::string::npos);
  // The central authorizes it now: the next attempt gets through.
  fleet_.stop(kCentral);
  declare();
  fleet_.start(kCentral);
  ASSERT_TRUE(eventually([&] { return pinged(); }, std::chrono::seconds(90))) << fleet_.logs();
  EXPECT_EQ(run_on_poller("admitted"), "admitted") << fleet_.logs();
}

TEST_F(PullModuleTest, ABadDirectiveStopsTheModuleWithAnErrorNamingIt) {
  fleet_.declare({kCentral, true, {kPoller}, true});
  HostSpec poller{kPoller};
  poller.extra_modules = "    - name: pull\n      package: gorgone::modules::core::pull::hooks\n      enable: true\n"
                         "      target_path: 127.0.0.1:" + std::to_string(fleet_.port(kCentral)) + "\n      ping: soon\n";
  fleet_.declare(poller);
  fleet_.start(kPoller);
  ASSERT_TRUE(eventually([&] {
    return log_of(kPoller).find("[core] module 'pull' cannot be loaded: pull: directive 'ping' must be an integer "
                                "between 0 and 86400, got 'soon'") != std::string::npos;
  })) << log_of(kPoller);
}

// REMOTECOPY of a directory through the central reaches the poller's action module as
// PROCESSCOPY over this connection, and the files land byte for byte.
TEST_F(PullModuleTest, RemoteCopyOfADirectoryLandsByteForByte) {
  declare();
  fleet_.start(kCentral);
  fleet_.start(kPoller);
  ASSERT_TRUE(eventually([&] { return ping_ok() >= 1; }, std::chrono::seconds(60))) << fleet_.logs();
  EXPECT_EQ(remote_copy_lands(fleet_, kCentral, kPoller), "") << fleet_.logs();
}

}  // namespace
}  // namespace gorgone::testing
