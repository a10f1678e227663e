// Routing across several real processes: static and dynamic subnodes, chains of hops, a
// dead node next to live ones, and frames held while a node is down.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "fleet.hpp"
#include "wire_client.hpp"

namespace gorgone::testing {
namespace {

// A TCP port that accepts connections and never says a word (a hung node).
class SilentListener {
 public:
  SilentListener() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd_, 16) != 0)
      throw std::runtime_error("SilentListener: cannot listen");
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

class Routing : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) std::cerr << fleet_.logs();
  }
  std::string node(const std::string& id, const std::string& extra = "") {
    return "  - id: " + id + "\n    type: push_zmq\n    address: 127.0.0.1\n    port: " +
           std::to_string(fleet_.port(id)) + "\n" + extra;
  }
  bool runs(const std::string& via, const std::string& target, const std::string& word,
            std::chrono::seconds limit = std::chrono::seconds(40)) {
    std::string token = fleet_.command(via, target, "echo " + word);
    if (token.empty()) return false;
    return eventually([&] { return fleet_.result(via, token, target) == word; }, limit);
  }
  Fleet fleet_;
};

TEST_F(Routing, CentralReachesAPollerBehindARemoteThroughAStaticSubnode) {
  fleet_.declare({"1", false, {}, true, HostSpec().proxy_directives, "", true});
  fleet_.declare({"4", true, {"1"}, true});
  fleet_.declare({"2", true, {"4"}});
  fleet_.start("2");
  HostSpec remote{"4", true, {"1"}, true, HostSpec().proxy_directives, node("2")};
  fleet_.declare(remote);  // re-declare with its nodes file now that 2's port is known
  fleet_.start("4");
  HostSpec central{"1", false, {}, true, HostSpec().proxy_directives,
                   node("4", "    nodes:\n      - id: 2\n        pathscore: 1\n"), true};
  fleet_.declare(central);
  fleet_.start("1");
  EXPECT_TRUE(runs("1", "2", "via-static-route"));
  // The remote itself is reachable too.
  EXPECT_TRUE(runs("1", "4", "on-the-remote"));
}

TEST_F(Routing, DynamicSubnodesAreLearntFromPongAndUsed) {
  fleet_.declare({"2", true, {"4"}});
  fleet_.start("2");
  fleet_.declare({"4", true, {"1"}, true, HostSpec().proxy_directives, node("2")});
  fleet_.start("4");
  // The central knows only node 4: node 2 must be learnt from 4's PONG.
  fleet_.declare({"1", false, {}, true, HostSpec().proxy_directives, node("4"), true});
  fleet_.start("1");
  ASSERT_TRUE(eventually([&] {
    auto cs = fleet_.constatus("1");
    return cs.HasMember("data") && cs["data"].HasMember("4") && cs["data"]["4"]["nodes"].HasMember("2");
  })) << "constatus of the central never showed node 2 under node 4";
  EXPECT_TRUE(runs("1", "2", "via-dynamic-route"));
}

TEST_F(Routing, ThreeHops) {
  fleet_.declare({"2", true, {"5"}});
  fleet_.start("2");
  fleet_.declare({"5", true, {"4"}, true, HostSpec().proxy_directives, node("2")});
  fleet_.start("5");
  fleet_.declare({"4", true, {"1"}, true, HostSpec().proxy_directives,
                  node("5", "    nodes:\n      - id: 2\n")});
  fleet_.start("4");
  fleet_.declare({"1", false, {}, true, HostSpec().proxy_directives,
                  node("4", "    nodes:\n      - id: 5\n      - id: 2\n"), true});
  fleet_.start("1");
  EXPECT_TRUE(runs("1", "2", "three-hops", std::chrono::seconds(60)));
}

TEST_F(Routing, ADeadNodeDoesNotDelayTheOthersOnItsWorker) {
  // Node 3 accepts TCP connections and never speaks: its handshake never completes.
  SilentListener silent;
  std::string dead = "  - id: 3\n    type: push_zmq\n    address: 127.0.0.1\n    port: " +
                     std::to_string(silent.port()) + "\n";
  fleet_.declare({"2", true, {"1"}});
  fleet_.start("2");
  // One worker for both nodes.
  fleet_.declare({"1", false, {}, true, "      pool: 1\n      ping: 1\n      synchistory_time: 1\n",
                  dead + node("2"), true});
  fleet_.start("1");
  std::string to_dead = fleet_.command("1", "3", "echo never");
  ASSERT_FALSE(to_dead.empty());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(runs("1", "2", "alive-" + std::to_string(i), std::chrono::seconds(20)));
  auto cs = fleet_.constatus("1");
  EXPECT_GE(cs["data"]["2"]["ping_ok"].GetInt(), 1);
  EXPECT_EQ(cs["data"]["3"]["ping_ok"].GetInt(), 0);
}

TEST_F(Routing, FramesForADownNodeAreHeldAndDeliveredInOrderWhenItComesBack) {
  fleet_.declare({"2", true, {"1"}});
  fleet_.declare({"1", false, {}, true, HostSpec().proxy_directives, node("2"), true});
  fleet_.start("1");
  std::vector<std::string> tokens;
  for (int i = 0; i < 5; ++i) tokens.push_back(fleet_.command("1", "2", "echo held-" + std::to_string(i)));
  std::this_thread::sleep_for(std::chrono::seconds(3));  // the node stays down a while
  fleet_.start("2");
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(eventually([&] { return fleet_.result("1", tokens[i], "2") == "held-" + std::to_string(i); },
                           std::chrono::seconds(40)))
        << "command " << i;
  // In order: the poller started them in the order they were sent.
  std::vector<long> starts;
  for (const auto& t : tokens) {
    for (const auto& [code, data] : fleet_.rows("1", t)) {
      json::Document d;
      if (code == 100 && json::parse(d, data)) starts.push_back(d["metrics"]["start"].GetInt64());
    }
  }
  ASSERT_EQ(starts.size(), 5u);
  EXPECT_TRUE(std::is_sorted(starts.begin(), starts.end()));
}

TEST_F(Routing, BeyondTheQueueBoundFramesGetAKoNamingNodeAndBound) {
  fleet_.declare({"2", true, {"1"}});
  fleet_.declare({"1", false, {}, true, "      pool: 1\n      ping: 60\n      synchistory_time: 3600\n      max_queue: 10\n",
                  node("2"), true});
  fleet_.start("1");
  std::vector<std::string> tokens;
  for (int i = 0; i < 15; ++i) tokens.push_back(fleet_.command("1", "2", "echo q-" + std::to_string(i)));
  int refused = 0;
  for (const auto& t : tokens) {
    auto got = fleet_.rows("1", t);
    if (!got.empty() && got[0].first == 1) {
      EXPECT_NE(got[0].second.find("node '2'"), std::string::npos) << got[0].second;
      EXPECT_NE(got[0].second.find("10 frames"), std::string::npos) << got[0].second;
      ++refused;
    }
  }
  // A periodic PING or GETLOG may hold a slot too.
  EXPECT_GE(refused, 5);
  EXPECT_LE(refused, 7);
  // The held ones are delivered once the node is there.
  fleet_.start("2");
  EXPECT_TRUE(eventually([&] { return fleet_.result("1", tokens[0], "2") == "q-0"; }, std::chrono::seconds(60)));
}

TEST_F(Routing, RepeatedPingTimeoutsCloseAndRebuildTheConnection) {
  SilentListener silent;
  fleet_.declare({"1", false, {}, true,
                  "      pool: 1\n      ping: 1\n      pong_discard_timeout: 1\n      pong_max_timeout: 2\n",
                  "  - id: 3\n    type: push_zmq\n    address: 127.0.0.1\n    port: " + std::to_string(silent.port()) + "\n",
                  true});
  fleet_.start("1");
  ASSERT_TRUE(eventually([&] {
    std::string log = fleet_.daemon("1").log();
    return log.find("Ping max timeout reached from '3'") != std::string::npos &&
           log.find("Close connection for 3") != std::string::npos;
  }, std::chrono::seconds(30)));
  auto cs = fleet_.constatus("1");
  EXPECT_GE(cs["data"]["3"]["ping_failed"].GetInt(), 2);
  EXPECT_EQ(cs["data"]["3"]["ping_ok"].GetInt(), 0);
}

TEST_F(Routing, ALongOutageWithManyFramesStaysBoundedAndLosesNothingSilently) {
  fleet_.declare({"9"});
  fleet_.declare({"2", true, {"1"}});  // down for now
  fleet_.declare({"1", true, {"9"}, true, "      pool: 1\n      ping: 3600\n      synchistory_time: 3600\n      max_queue: 100\n",
                  node("2"), true});
  fleet_.start("1");
  zmq::context_t ctx;
  WireClient sender(ctx, "9", fleet_.private_key("9"), fleet_.port("1"));
  ASSERT_TRUE(sender.handshake());
  const int frames = 3000;
  for (int i = 0; i < frames; ++i) {
    sender.send("[COMMAND] [tok-" + std::to_string(i) + "] [2] {\"content\":[{\"command\":\"echo n-" +
                std::to_string(i) + "\"}]}");
    if (i % 100 == 0) sender.drain();
  }
  // Every frame beyond the bound gets its own KO row; the held ones wait.
  auto refused = [&] {
    std::string sql = "SELECT count(*) FROM gorgone_history WHERE token LIKE 'tok-%' AND code = 1 "
                      "AND data LIKE '%(max_queue)%'";
    PGconn* c = PQconnectdb(fleet_.db("1").c_str());
    PGresult* r = PQexec(c, sql.c_str());
    long n = PQresultStatus(r) == PGRES_TUPLES_OK ? std::atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    PQfinish(c);
    return n;
  };
  // A periodic GETLOG may hold one slot.
  ASSERT_TRUE(eventually([&] { return refused() >= frames - 100; })) << refused();
  EXPECT_LE(refused(), frames - 99);
  // The held frames are delivered in order once the node is back: the first and the last
  // accepted ones run.
  fleet_.start("2");
  EXPECT_TRUE(eventually([&] { return fleet_.result("1", "tok-0", "2") == "n-0"; }, std::chrono::seconds(60)));
  EXPECT_TRUE(eventually([&] { return fleet_.result("1", "tok-98", "2") == "n-98"; }, std::chrono::seconds(60)));
}

TEST_F(Routing, RemoteCopyOfAFileAndADirectoryReachesThePoller) {
  fleet_.declare({"2", true, {"1"}});
  fleet_.start("2");
  HostSpec central{"1", false, {}, true, "      pool: 1\n      ping: 1\n      synchistory_time: 1\n      buffer_size: 1000\n",
                   node("2"), true};
  fleet_.declare(central);
  fleet_.start("1");
  std::string dir = make_temp_dir("gorgone-copy");
  std::string big(25000, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 % 251);
  write_file(dir + "/src/file.bin", big);
  write_file(dir + "/tree/a.cfg", "alpha\n");
  write_file(dir + "/tree/sub/b.cfg", "beta\n");
  std::filesystem::create_directories(dir + "/cache");  // as /var/cache/centreon exists on a poller
  auto copy = [&](const std::string& source, const std::string& destination) {
    auto [status, body] = fleet_.post("1", "/api/nodes/2/core/proxy/remotecopy",
                                      R"({"source":")" + source + R"(","destination":")" + destination +
                                          R"(","cache_dir":")" + dir + R"(/cache"})");
    json::Document d;
    EXPECT_EQ(status, 200) << body;
    return json::parse(d, body) && d.HasMember("token") ? std::string(d["token"].GetString()) : std::string();
  };
  auto finished = [&](const std::string& token) {
    for (const auto& [code, data] : fleet_.rows("1", token, "2"))
      if (code == 2) return true;
    return false;
  };
  std::string t1 = copy(dir + "/src/file.bin", dir + "/dst/");
  std::string t2 = copy(dir + "/tree", dir + "/dsttree");
  ASSERT_TRUE(eventually([&] { return finished(t1); }, std::chrono::seconds(40))) << fleet_.logs();
  ASSERT_TRUE(eventually([&] { return finished(t2); }, std::chrono::seconds(40))) << fleet_.logs();
  EXPECT_EQ(read_file(dir + "/dst/file.bin"), big);
  EXPECT_EQ(read_file(dir + "/dsttree/a.cfg"), "alpha\n");
  EXPECT_EQ(read_file(dir + "/dsttree/sub/b.cfg"), "beta\n");
  // 25 chunks of 1000 bytes, each acknowledged on the poller with a progress row.
  int progress = 0;
  for (const auto& [code, data] : fleet_.rows("1", t1)) progress += code == 101 ? 1 : 0;
  EXPECT_EQ(progress, 25);

  // No node: Gorgone's text.
  auto [status, body] = fleet_.post("1", "/api/core/proxy/remotecopy", R"({"source":"/etc/hostname","destination":"/tmp/"})");
  json::Document d;
  ASSERT_TRUE(json::parse(d, body));
  std::string token = d["token"].GetString();
  std::vector<std::pair<int, std::string>> got;
  ASSERT_TRUE(eventually([&] { return !(got = fleet_.rows("1", token)).empty(); }));
  EXPECT_EQ(got[0].second, R"({"message":"proxy - need a valid node id"})");
  std::filesystem::remove_all(dir);
}

// An authorized client of the central's external router may send REGISTERNODES, as a pull
// poller does: the tests use one to change the registry at run time.
// Registers nodes through a local module of the central (tests/integration/registrar_module.cpp),
// the trusted path: a node's own REGISTERNODES cannot redefine nodes (doc/security.md).
class Registrar {
 public:
  Registrar(Fleet& fleet, const std::string& central) : fleet_(fleet), central_(central) {}
  static constexpr const char* kModule =
      "    - name: registrar\n      package: registrar\n      enable: true\n";
  void send(const std::string& action, const std::string& nodes_json) {
    auto [status, body] = fleet_.post(central_, "/api/test/registrar/send",
                                      "{\"action\":\"" + action + "\",\"nodes\":" + nodes_json + "}");
    EXPECT_EQ(status, 200) << body;
  }

 private:
  Fleet& fleet_;
  std::string central_;
};

TEST_F(Routing, ReRegistrationWithNewConnectionParametersRecreatesTheSession) {
  fleet_.declare({"2", true, {"1"}});
  fleet_.declare({"7", true, {"1"}, false, "", "", true});
  fleet_.start("2");
  fleet_.start("7");
  HostSpec central{"1", false, {}, true, HostSpec().proxy_directives, node("2"), true};
  central.extra_modules = Registrar::kModule;
  fleet_.declare(central);
  fleet_.start("1");
  ASSERT_TRUE(runs("1", "2", "before"));
  Registrar registrar(fleet_, "1");
  registrar.send("REGISTERNODES", "[{\"id\":\"2\",\"type\":\"push_zmq\",\"address\":\"127.0.0.1\",\"port\":\"" +
                                      std::to_string(fleet_.port("7")) + "\"}]");
  // Node 2 now lives at host 7's address: the command runs there.
  std::string token;
  ASSERT_TRUE(eventually([&] {
    token = fleet_.command("1", "2", "echo after");
    return eventually([&] { return !fleet_.rows("7", token).empty() || !fleet_.rows("2", token).empty(); },
                      std::chrono::seconds(5)) &&
           !fleet_.rows("7", token).empty();
  }, std::chrono::seconds(40)));
  EXPECT_TRUE(eventually([&] { return fleet_.result("1", token, "2") == "after"; }));
  // The old session was reset (PONGRESET counts a failure).
  EXPECT_GE(fleet_.constatus("1")["data"]["2"]["ping_failed"].GetInt(), 1);
}

TEST_F(Routing, UnregisteringANodeGivesItsHeldFramesAKo) {
  fleet_.declare({"2", true, {"1"}});  // never started
  HostSpec central{"1", false, {}, true, "      pool: 1\n      ping: 60\n      synchistory_time: 3600\n", node("2"), true};
  central.extra_modules = Registrar::kModule;
  fleet_.declare(central);
  fleet_.start("1");
  std::vector<std::string> tokens;
  for (int i = 0; i < 3; ++i) tokens.push_back(fleet_.command("1", "2", "echo lost-" + std::to_string(i)));
  Registrar registrar(fleet_, "1");
  registrar.send("UNREGISTERNODES", "[{\"id\":\"2\"}]");
  for (const auto& t : tokens) {
    std::vector<std::pair<int, std::string>> got;
    ASSERT_TRUE(eventually([&] { return !(got = fleet_.rows("1", t)).empty(); }));
    EXPECT_EQ(got[0].first, 1);
    EXPECT_NE(got[0].second.find("was unregistered"), std::string::npos) << got[0].second;
  }
  // And the node is gone from the registry.
  std::string after = fleet_.command("1", "2", "echo nope");
  std::vector<std::pair<int, std::string>> got;
  ASSERT_TRUE(eventually([&] { return !(got = fleet_.rows("1", after)).empty(); }));
  EXPECT_EQ(got[0].second, R"({"message":"proxy - unknown target 2"})");
}

}  // namespace
}  // namespace gorgone::testing
