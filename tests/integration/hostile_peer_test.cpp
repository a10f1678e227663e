// Hostile peers on the wire, against real gorgone-host processes: recorded ciphertext sent
// again, HELOs forged from public keys, nodes that claim to be other nodes.
#include <gtest/gtest.h>
#include <zmq.hpp>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "fake_node.hpp"
#include "fleet.hpp"
#include "proc_stats.hpp"
#include "gorgone/protocol/frame.hpp"
#include "wire_client.hpp"

namespace gorgone::testing {
namespace {

using gorgone_test::PgValue;

int lines_of(const std::string& path) {
  std::ifstream in(path);
  int n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

int occurrences(const std::string& text, const std::string& needle) {
  int n = 0;
  for (std::size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

std::string command_frame(const std::string& token, const std::string& cmd) {
  return "[COMMAND] [" + token + "] [] {\"content\":[{\"command\":" + json::quote(cmd) +
         "}],\"parameters\":{},\"variables\":[]}";
}

TEST(HostilePeer, ARecordedCiphertextSentAgainRunsOnce) {
  Fleet fleet;
  fleet.declare({"2", true, {"1"}});
  fleet.start("2");
  std::string dir = make_temp_dir("gorgone-replay");
  std::string ran = dir + "/ran";
  zmq::context_t ctx;
  WireClient central(ctx, "1", fleet.private_key("1"), fleet.port("2"));
  ASSERT_TRUE(central.handshake()) << fleet.logs();
  std::string wire = central.encrypt(command_frame("replay-token-1", "echo run >> " + ran));
  central.send_raw(wire);
  ASSERT_TRUE(eventually([&] { return lines_of(ran) == 1; })) << fleet.logs();
  // Centreon sends several frames under one token (the commands of one request): not a replay.
  central.send(command_frame("replay-token-1", "echo second >> " + ran));
  ASSERT_TRUE(eventually([&] { return lines_of(ran) == 2; })) << fleet.logs();

  // An eavesdropper with the recorded bytes and the routing id, but no key, connects while
  // the central is still connected (the id is handed over to the newest connection, as a
  // reconnecting DEALER needs) and sends them again.
  auto dealer = [&] {
    auto s = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
    s->set(zmq::sockopt::routing_id, central.identity());
    s->set(zmq::sockopt::linger, 0);
    s->connect("tcp://127.0.0.1:" + std::to_string(fleet.port("2")));
    return s;
  };
  auto replayer = dealer();
  ASSERT_TRUE(eventually([&] {
    replayer->send(zmq::buffer(wire), zmq::send_flags::dontwait);
    return occurrences(fleet.daemon("2").log(), "replayed frame refused") >= 2;
  })) << fleet.logs();
  EXPECT_EQ(lines_of(ran), 2) << "the replayed command ran again";

  // The central reconnecting with its routing id (as after a network cut) goes on with its
  // session: its next frame runs.
  replayer.reset();
  auto reconnected = dealer();
  std::string third = central.encrypt(command_frame("replay-token-3", "echo third >> " + ran));
  ASSERT_TRUE(eventually([&] {
    reconnected->send(zmq::buffer(third), zmq::send_flags::dontwait);
    return lines_of(ran) >= 3;
  })) << fleet.logs();
  EXPECT_EQ(lines_of(ran), 3);
  std::filesystem::remove_all(dir);
}

TEST(HostilePeer, HelosForgedFromPublicKeysCreateNoSessionAndAreBounded) {
  Fleet fleet;
  HostSpec poller{"2", true, {"1"}};
  poller.core_directives = "    external_com_helo_per_minute: 10\n";
  fleet.declare(poller);
  fleet.start("2");
  zmq::context_t ctx;
  // A legitimate central connected before the flood.
  WireClient central(ctx, "1", fleet.private_key("1"), fleet.port("2"));
  ASSERT_TRUE(central.handshake()) << fleet.logs();
  central.send("[PING] [] [] {}");
  ASSERT_TRUE(central.next(std::chrono::seconds(10)));

  // Everything the attacker has is public: the poller's key and the central's key.
  auto poller_pub = protocol::RsaKey::load_public_file(std::filesystem::path(fleet.private_key("2")).parent_path() /
                                                       "rsakey.pub.pem");
  auto central_pub = protocol::RsaKey::load_public_file(std::filesystem::path(fleet.private_key("1")).parent_path() /
                                                        "rsakey.pub.pem");
  ASSERT_TRUE(poller_pub && central_pub);
  std::string helo = "[gorgone-1] [" + protocol::base64_encode(central_pub->public_pem_wire()) + "] [" +
                     protocol::base64_encode(poller_pub->encrypt_pkcs1("HELO").value()) + "]";
  int answered = 0;
  for (int i = 0; i < 300; ++i) {
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    s.set(zmq::sockopt::routing_id, "gorgone-flood-" + std::to_string(i));
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::rcvtimeo, 5000);
    s.connect("tcp://127.0.0.1:" + std::to_string(fleet.port("2")));
    s.send(zmq::buffer(helo), zmq::send_flags::none);
    zmq::message_t answer;
    if (s.recv(answer) && answer.to_string_view() != protocol::kHandshakeIssueReply) ++answered;
  }
  // 10 per minute from one address (the flood may straddle a minute: at most two windows).
  EXPECT_GT(answered, 0);
  EXPECT_LE(answered, 20);
  std::string log = fleet.daemon("2").log();
  int refusals = occurrences(log, "more than 10 HELO per minute from 127.0.0.1");
  EXPECT_TRUE(refusals == 1 || refusals == 2) << "one log line per minute, not one per HELO: " << refusals;
  // No session was stored, and the legitimate one still works.
  EXPECT_EQ(PgValue(fleet.db("2"), "SELECT count(*) FROM gorgone_identity WHERE identity LIKE '676f72676f6e652d666c6f6f64%'"),
            "0");
  central.send("[PING] [after-flood] [] {}");
  auto answer = central.next(std::chrono::seconds(10));
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->rfind("[PONG] [after-flood]", 0), 0u) << *answer;
}

// A compromised push node (played by the test) tries to take over node 2, a real poller.
TEST(HostilePeer, ANodeCannotRedefineOrUnregisterAnotherNode) {
  Fleet fleet;
  fleet.declare({"2", true, {"1"}});
  fleet.start("2");
  std::string dir = make_temp_dir("gorgone-rogue");
  fleet.declare({"1"});
  FakeNode rogue("3", {fleet.thumbprint("1")}, dir + "/3");
  HostSpec central{"1", false, {}, true, HostSpec().proxy_directives,
                   "  - id: 2\n    type: push_zmq\n    address: 127.0.0.1\n    port: " + std::to_string(fleet.port("2")) +
                       "\n  - id: 3\n    type: push_zmq\n    address: 127.0.0.1\n    port: " + std::to_string(rogue.port()) + "\n",
                   true};
  fleet.declare(central);
  fleet.start("1");
  ASSERT_TRUE(eventually([&] { return !rogue.received().empty(); })) << fleet.logs();
  std::string at_rogue = "{\"id\":\"2\",\"type\":\"push_zmq\",\"address\":\"127.0.0.1\",\"port\":\"" +
                         std::to_string(rogue.port()) + "\",\"prevail\":\"1\"}";
  rogue.push("[REGISTERNODES] [rogue-1] {\"nodes\":[" + at_rogue + "]}");
  rogue.push("[UNREGISTERNODES] [rogue-2] {\"nodes\":[{\"id\":\"2\"}]}");
  ASSERT_TRUE(eventually([&] {
    std::string log = fleet.daemon("1").log();
    return log.find("refused: node '3' registered node '2'") != std::string::npos &&
           log.find("refused: node '3' unregistered node '2': it does not own it") != std::string::npos;
  })) << fleet.logs();
  // Node 2 is still the real poller: its command runs there, and the rogue sees none.
  std::string token = fleet.command("1", "2", "echo still-node-2");
  ASSERT_FALSE(token.empty());
  EXPECT_TRUE(eventually([&] { return fleet.result("1", token, "2") == "still-node-2"; })) << fleet.logs();
  for (const auto& f : rogue.received()) EXPECT_NE(f.action, "COMMAND") << f.data;
  std::filesystem::remove_all(dir);
}

// Two pull connections claim node 3: the one that registered it keeps it while it is there.
TEST(HostilePeer, APullNodesIdStaysWithItsConnection) {
  Fleet fleet;
  fleet.declare({"3"});
  fleet.declare({"4"});
  fleet.declare({"1", true, {"3", "4"}, true, HostSpec().proxy_directives,
                 "  - id: 3\n    type: pull\n    prevail: 1\n", true});
  fleet.start("1");
  zmq::context_t ctx;
  auto registration = [](const WireClient& c, const std::string& id) {
    return "[REGISTERNODES] [] [] {\"nodes\":[{\"id\":\"" + id + "\",\"type\":\"pull\",\"identity\":\"" +
           c.identity() + "\"}]}";
  };
  auto owner = std::make_unique<WireClient>(ctx, "3", fleet.private_key("3"), fleet.port("1"));
  ASSERT_TRUE(owner->handshake()) << fleet.logs();
  owner->send(registration(*owner, "3"));
  WireClient intruder(ctx, "4", fleet.private_key("4"), fleet.port("1"));
  ASSERT_TRUE(intruder.handshake()) << fleet.logs();
  intruder.send(registration(intruder, "3"));
  // Its PONG for node 3 is not taken either: its connection is no node.
  intruder.send(R"([PONG] [fake] [] {"code":0,"data":{"action":"ping","message":"ping ok","id":"3","data":{}}})");
  ASSERT_TRUE(eventually([&] {
    std::string log = fleet.daemon("1").log();
    return log.find("registered node '3': another live connection speaks for it") != std::string::npos &&
           log.find("PONG from connection") != std::string::npos;
  })) << fleet.logs();
  std::string token = fleet.command("1", "3", "echo for-the-owner");
  std::optional<std::string> got;
  ASSERT_TRUE(eventually([&] {
    got = owner->next(std::chrono::seconds(1));
    return got && got->rfind("[COMMAND] [" + token + "]", 0) == 0;
  }, std::chrono::seconds(20))) << fleet.logs();
  EXPECT_FALSE(intruder.next(std::chrono::seconds(2)).has_value());
  // Once the owner is gone, a new connection may speak for node 3 (a restarted poller).
  owner.reset();
  ASSERT_TRUE(eventually([&] {
    intruder.send(registration(intruder, "3"));
    return fleet.daemon("1").log().find("Node '3' moved to a new connection") != std::string::npos;
  })) << fleet.logs();
}

// What a host's own API offers its operator (reload the nodes file, the metrics) is not for
// its parents: a central, even an authorized one, asking a poller for them through the
// external router is refused, and the poller's nodes file is not read again.
TEST(HostilePeer, AParentCannotReloadAPollerNorReadItsMetrics) {
  Fleet fleet;
  fleet.declare({"2", true, {"1"}});
  fleet.start("2");
  zmq::context_t ctx;
  WireClient central(ctx, "1", fleet.private_key("1"), fleet.port("2"));
  ASSERT_TRUE(central.handshake()) << fleet.logs();
  for (const char* action : {"RELOAD", "METRICS"}) {
    auto answer = central.ask(action, "{}");
    ASSERT_TRUE(answer.has_value()) << action << "\n" << fleet.logs();
    EXPECT_NE(answer->json.find("\"code\":1"), std::string::npos) << action << ": " << answer->json;
    EXPECT_NE(answer->json.find("for this host's own API"), std::string::npos) << answer->json;
    EXPECT_EQ(answer->json.find("gorgone_"), std::string::npos) << answer->json;
  }
  EXPECT_EQ(fleet.daemon("2").log().find("[register] reload"), std::string::npos);
}

// A central "1" with the proxy and the REST API, and nothing behind it.
Daemon& start_api_central(Fleet& fleet) {
  HostSpec central{"1"};
  central.proxy = true;
  central.http = true;
  fleet.declare(central);
  fleet.start("1");
  return fleet.daemon("1");
}

TEST(HostSignals, SighupReopensTheLogFileAndTheHostKeepsServing) {
  Fleet fleet;
  Daemon& host = start_api_central(fleet);
  std::string log_file = fleet.log_path("1");
  ASSERT_NE(read_file(log_file).find("REST API on"), std::string::npos);
  // What logrotate does: move the file, then SIGHUP.
  std::filesystem::rename(log_file, log_file + ".1");
  ASSERT_EQ(::kill(host.pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually([&] { return read_file(log_file).find("SIGHUP: log file reopened") != std::string::npos; }));
  EXPECT_TRUE(host.alive());
  EXPECT_EQ(fleet.get("1", "/api/internal/constatus").first, 200);
  // Twice in a row is no different.
  ASSERT_EQ(::kill(host.pid(), SIGHUP), 0);
  EXPECT_TRUE(eventually([&] { return occurrences(read_file(log_file), "SIGHUP: log file reopened") == 2; }));
  EXPECT_TRUE(host.alive());
}

// SIGTERM, SIGINT and SIGHUP are for the loop alone: every thread of the host (workers, REST
// threads, the history thread) has them blocked, so that none of their blocking calls is
// cut short by one, and the loop reads them from its signalfd: SIGTERM still stops the host
// cleanly.
TEST(HostSignals, EveryThreadBlocksTheStopSignalsAndSigtermStillStopsTheHost) {
  Fleet fleet;
  Daemon& host = start_api_central(fleet);
  ASSERT_TRUE(eventually([&] { return read_file(fleet.log_path("1")).find("REST API on") != std::string::npos; }));
  const unsigned long long wanted = (1ULL << (SIGHUP - 1)) | (1ULL << (SIGINT - 1)) | (1ULL << (SIGTERM - 1));
  int threads = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(host.pid()) + "/task", ec)) {
    std::string status = read_proc(task.path().string() + "/status");
    auto at = status.find("SigBlk:");
    if (at == std::string::npos) continue;  // the thread ended meanwhile
    unsigned long long blocked = std::strtoull(status.c_str() + at + 7, nullptr, 16);
    EXPECT_EQ(blocked & wanted, wanted) << "thread " << task.path().filename() << " can be interrupted by a stop signal";
    ++threads;
  }
  EXPECT_GT(threads, 3);
  EXPECT_EQ(host.stop(), 0);
  EXPECT_NE(read_file(fleet.log_path("1")).find("[core] gorgone core stopped"), std::string::npos);
}

}  // namespace
}  // namespace gorgone::testing
